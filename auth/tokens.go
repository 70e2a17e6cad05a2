package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"log/slog"
	"strings"
	"time"

	"github.com/berth-dev/berth/core"
)

// TokenKind says what a personal token is for.
type TokenKind string

const (
	// TokenAPI authenticates REST calls (Authorization: Token|Bearer …) and
	// also works as a registry password.
	TokenAPI TokenKind = "api"
	// TokenRegistry is a registry login token: the password scripts give to
	// podman/docker login. It always expires and is refused by the REST API.
	TokenRegistry TokenKind = "registry"
)

// TokenPrefix starts every personal token, so that secret scanners and the
// Basic-auth path can recognise one.
const TokenPrefix = "berth_"

// Usage says where credentials are presented.
type Usage int

const (
	// UsageAPI: the REST API. Registry login tokens are refused.
	UsageAPI Usage = iota + 1
	// UsageRegistry: /token and /v2/.
	UsageRegistry
)

// Token is a personal token as stored: only a SHA-256 of its value is kept;
// Prefix (the first characters) lets its owner tell tokens apart.
type Token struct {
	ID         string     `gorm:"primaryKey" json:"id"`
	UserID     string     `json:"-"`
	Name       string     `json:"name"`
	Kind       TokenKind  `json:"kind"`
	Prefix     string     `json:"prefix"`
	Hash       string     `gorm:"column:token_hash" json:"-"`
	CreatedAt  time.Time  `json:"created"`
	ExpiresAt  *time.Time `json:"expires_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
}

// TableName is the tokens table.
func (Token) TableName() string { return "auth_tokens" }

// String describes the token without its hash (nor, for a NewToken, its
// value), so that fmt's %v and %+v never print them.
func (t Token) String() string { return "token " + t.Prefix + "… (" + t.ID + ")" }

// LogValue logs a token's identity, never its hash.
func (t Token) LogValue() slog.Value {
	return slog.GroupValue(slog.String("id", t.ID), slog.String("name", t.Name), slog.String("kind", string(t.Kind)), slog.String("user_id", t.UserID))
}

// Expired reports whether the token has expired at now.
func (t *Token) Expired(now time.Time) bool { return t.ExpiresAt != nil && !now.Before(*t.ExpiresAt) }

// NewToken is a token just created, with its value: the only moment the
// value exists outside its owner's hands. It is excluded from JSON and logs;
// the creating handler writes it explicitly, once.
type NewToken struct {
	Token
	Value string `json:"-"`
}

// LogValue logs the token without its value.
func (t NewToken) LogValue() slog.Value { return t.Token.LogValue() }

// TokenInput creates a token.
type TokenInput struct {
	Name string
	Kind TokenKind // default TokenAPI
	// Lifetime: 0 means API tokens never expire and registry tokens get the
	// configured login-token lifetime.
	Lifetime time.Duration
}

var tokenCols = core.Columns{"name": "name", "kind": "kind", "created": "created_at", "expires_at": "expires_at", "last_used_at": "last_used_at"}

func hashToken(raw string) string {
	sum := sha256.Sum256([]byte(raw))
	return hex.EncodeToString(sum[:])
}

// CreateToken makes a personal token for an active user and returns it with
// its value, which is not stored and cannot be shown again.
func (s *Service) CreateToken(ctx context.Context, userID string, in TokenInput) (*NewToken, error) {
	if in.Kind == "" {
		in.Kind = TokenAPI
	}
	v := &core.ValidationError{}
	if in.Kind != TokenAPI && in.Kind != TokenRegistry {
		v.Add("kind", "must be %q or %q", TokenAPI, TokenRegistry)
	}
	if len(in.Name) > 100 {
		v.Add("name", "must be at most 100 characters")
	}
	if in.Lifetime < 0 {
		v.Add("expires_in", "must not be negative")
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	u, err := s.store.userByID(ctx, userID)
	if err != nil {
		return nil, err
	}
	if !u.Active {
		return nil, core.Conflict("user %q is inactive", u.Username)
	}
	if in.Lifetime == 0 && in.Kind == TokenRegistry {
		in.Lifetime = s.opt.loginTokenLifetime
	}
	random := make([]byte, 32)
	if _, err := rand.Read(random); err != nil {
		return nil, err
	}
	raw := TokenPrefix + base64.RawURLEncoding.EncodeToString(random)
	t := &NewToken{Value: raw, Token: Token{ID: newID(), UserID: userID, Name: in.Name, Kind: in.Kind,
		Prefix: raw[:len(TokenPrefix)+6], Hash: hashToken(raw), CreatedAt: s.now()}}
	if in.Lifetime > 0 {
		exp := t.CreatedAt.Add(in.Lifetime)
		t.ExpiresAt = &exp
	}
	if err := s.store.insertToken(ctx, &t.Token); err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "token created", "token", t, "username", u.Username)
	return t, nil
}

// ListTokens returns a page of a user's tokens (expired ones included until
// revoked or pruned).
func (s *Service) ListTokens(ctx context.Context, userID string, q core.ListQuery) ([]Token, int64, error) {
	return s.store.listTokens(ctx, userID, q)
}

// TokenByID returns a token's record.
func (s *Service) TokenByID(ctx context.Context, id string) (*Token, error) {
	return s.store.tokenByID(ctx, id)
}

// RevokeToken deletes a token; it stops working at once.
func (s *Service) RevokeToken(ctx context.Context, id string) error {
	if err := s.store.deleteToken(ctx, id); err != nil {
		return err
	}
	s.log.InfoContext(ctx, "token revoked", "token_id", id)
	return nil
}

// PruneExpiredTokens deletes tokens that expired before now, for a periodic
// cleanup task.
func (s *Service) PruneExpiredTokens(ctx context.Context) (int64, error) {
	return s.store.deleteExpiredTokens(ctx, s.now())
}

// tokenTouchInterval bounds how often a token's last use is written.
const tokenTouchInterval = 10 * time.Minute

// AuthenticateToken checks a personal token and returns its user. Unknown,
// expired and revoked tokens, tokens of inactive users, and registry tokens
// presented to the REST API all fail alike with ErrInvalidCredentials.
func (s *Service) AuthenticateToken(ctx context.Context, raw string, use Usage) (*Principal, error) {
	if !strings.HasPrefix(raw, TokenPrefix) || len(raw) > 200 {
		return nil, ErrInvalidCredentials
	}
	t, err := s.store.tokenByHash(ctx, hashToken(raw))
	if errors.Is(err, core.ErrNotFound) {
		return nil, ErrInvalidCredentials
	}
	if err != nil {
		return nil, err
	}
	now := s.now()
	if t.Expired(now) || (t.Kind == TokenRegistry && use != UsageRegistry) {
		return nil, ErrInvalidCredentials
	}
	u, err := s.store.userByID(ctx, t.UserID)
	if errors.Is(err, core.ErrNotFound) {
		return nil, ErrInvalidCredentials
	}
	if err != nil {
		return nil, err
	}
	if !u.Active {
		return nil, ErrInvalidCredentials
	}
	if t.LastUsedAt == nil || now.Sub(*t.LastUsedAt) > tokenTouchInterval {
		if err := s.store.touchToken(ctx, t.ID, now); err != nil {
			s.log.DebugContext(ctx, "cannot record token use", "token_id", t.ID, "err", err)
		}
	}
	return s.principalFor(ctx, u, MethodToken, t.ID)
}
