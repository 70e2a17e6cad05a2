package auth

import (
	"context"
	"log/slog"
)

// Method says how a principal authenticated.
type Method string

const (
	MethodAnonymous Method = "anonymous"
	MethodPassword  Method = "password" // HTTP Basic with a password
	MethodToken     Method = "token"    // a personal API or registry login token
	MethodBearer    Method = "bearer"   // a registry bearer token from /token
)

// Principal is who makes a request: a user, or anonymous (empty UserID).
//
// Decisions never rest on Superuser or Groups: the Authorizer reads the
// current flags and memberships by UserID, so a change applies at once even
// to principals authenticated before it. Superuser and Groups describe the
// user as of authentication, for display (/me) and for RequireSuperuser on
// the REST API, whose principals are loaded fresh on every request. Bearer
// principals (from a registry token) carry no groups.
type Principal struct {
	UserID    string   `json:"id,omitempty"`
	Username  string   `json:"username"`
	Superuser bool     `json:"is_superuser"`
	Groups    []string `json:"groups"`
	Method    Method   `json:"method"`
	// TokenID is the personal token the request used, if any.
	TokenID string `json:"-"`
}

// Anonymous returns a fresh anonymous principal.
func Anonymous() *Principal { return &Principal{Method: MethodAnonymous, Groups: []string{}} }

// IsAnonymous reports whether p is nobody in particular (nil counts).
func (p *Principal) IsAnonymous() bool { return p == nil || p.UserID == "" }

// LogValue logs who, never how (no token).
func (p *Principal) LogValue() slog.Value {
	if p.IsAnonymous() {
		return slog.StringValue("anonymous")
	}
	return slog.GroupValue(slog.String("id", p.UserID), slog.String("username", p.Username), slog.String("method", string(p.Method)))
}

type principalKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFrom returns the request's principal, or an anonymous one when
// none was set. It never returns nil.
func PrincipalFrom(ctx context.Context) *Principal {
	if p, ok := ctx.Value(principalKey{}).(*Principal); ok && p != nil {
		return p
	}
	return Anonymous()
}

// principalFor builds the principal of an authenticated user.
func (s *Service) principalFor(ctx context.Context, u *User, m Method, tokenID string) (*Principal, error) {
	groups, err := s.store.groupsOfUser(ctx, u.ID)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(groups))
	for i, g := range groups {
		names[i] = g.Name
	}
	return &Principal{UserID: u.ID, Username: u.Username, Superuser: u.Superuser, Groups: names, Method: m, TokenID: tokenID}, nil
}
