package auth

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"slices"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Claims are a registry token's claims, in the Docker token format: the
// registered claims (iss = public URL, sub = user ID or "" for anonymous,
// aud = service, exp, iat, jti) and the granted access.
type Claims struct {
	jwt.RegisteredClaims
	Username string  `json:"username,omitempty"`
	Access   []Scope `json:"access"`
}

// Allows reports whether the token grants every action of need. A push
// grant covers pull; the wildcard action covers all. The zero Scope (the
// base /v2/ endpoint) is always allowed.
func (c *Claims) Allows(need Scope) bool {
	if need.IsZero() {
		return true
	}
	for _, a := range need.Actions {
		if !slices.ContainsFunc(c.Access, func(g Scope) bool { return g.grants(need.Type, need.Name, a) }) {
			return false
		}
	}
	return true
}

// Principal returns who the token was issued to.
func (c *Claims) Principal() *Principal {
	if c.Subject == "" {
		return &Principal{Method: MethodBearer, Groups: []string{}} // an anonymous token
	}
	return &Principal{UserID: c.Subject, Username: c.Username, Method: MethodBearer}
}

// issue signs a registry token for p granting access.
func (s *Service) issue(p *Principal, access []Scope) (raw string, issued time.Time, err error) {
	issued = s.now().Truncate(time.Second)
	jti := make([]byte, 16)
	if _, err := rand.Read(jti); err != nil {
		return "", issued, err
	}
	if access == nil {
		access = []Scope{}
	}
	c := &Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    s.opt.publicURL,
			Subject:   p.UserID,
			Audience:  jwt.ClaimStrings{s.opt.service},
			IssuedAt:  jwt.NewNumericDate(issued),
			ExpiresAt: jwt.NewNumericDate(issued.Add(s.opt.tokenLifetime)),
			ID:        hex.EncodeToString(jti),
		},
		Username: p.Username,
		Access:   access,
	}
	raw, err = jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(s.signKey)
	return raw, issued, err
}

// clockSkew is how far in the future a token's nbf may lie (replicas'
// clocks differ a little).
const clockSkew = 30 * time.Second

// parseBearer checks a token's signature, issuer, audience and times. It
// reports expiry separately instead of failing on it.
func (s *Service) parseBearer(raw string) (*Claims, bool, error) {
	c := &Claims{}
	_, err := jwt.ParseWithClaims(raw, c, func(*jwt.Token) (any, error) { return s.signKey, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}), jwt.WithoutClaimsValidation())
	if err != nil {
		return nil, false, fmt.Errorf("%w: %v", ErrInvalidToken, err)
	}
	if c.Issuer != s.opt.publicURL {
		return nil, false, fmt.Errorf("%w: issued by %q, not %q", ErrInvalidToken, c.Issuer, s.opt.publicURL)
	}
	if !slices.Contains(c.Audience, s.opt.service) {
		return nil, false, fmt.Errorf("%w: meant for service %q, not %q", ErrInvalidToken, []string(c.Audience), s.opt.service)
	}
	if c.ExpiresAt == nil {
		return nil, false, fmt.Errorf("%w: no expiry", ErrInvalidToken)
	}
	now := s.now()
	if c.NotBefore != nil && now.Add(clockSkew).Before(c.NotBefore.Time) {
		return nil, false, fmt.Errorf("%w: not valid yet", ErrInvalidToken)
	}
	return c, !now.Before(c.ExpiresAt.Time), nil
}

// VerifyBearer checks a registry token from "Authorization: Bearer": its
// signature, issuer, audience (this service) and expiry, and that it grants
// need (pass the zero Scope to check validity only). Errors match
// ErrInvalidToken (ErrTokenExpired when only the expiry fails) or
// ErrInsufficientScope.
func (s *Service) VerifyBearer(raw string, need Scope) (*Claims, error) {
	c, expired, err := s.parseBearer(raw)
	if err != nil {
		return nil, err
	}
	if expired {
		return nil, ErrTokenExpired
	}
	if !c.Allows(need) {
		return nil, fmt.Errorf("%w: %s", ErrInsufficientScope, need)
	}
	return c, nil
}

// VerifyAllowExpired is VerifyBearer for requests that continue an upload
// session: a token that expired less than the upload grace ago (see
// WithUploadGrace) is accepted and reported as expired. The caller must then
// accept it only for an upload session that the token's subject
// (Claims.Subject) began; AuthorizeRegistry does so given
// RegistryRequest.UploadOwner.
func (s *Service) VerifyAllowExpired(raw string, need Scope) (*Claims, bool, error) {
	c, expired, err := s.parseBearer(raw)
	if err != nil {
		return nil, false, err
	}
	if expired && !s.now().Before(c.ExpiresAt.Add(s.opt.uploadGrace)) {
		return nil, true, ErrTokenExpired
	}
	if !c.Allows(need) {
		return nil, expired, fmt.Errorf("%w: %s", ErrInsufficientScope, need)
	}
	return c, expired, nil
}
