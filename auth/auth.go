// Package auth is Berth's identity and access layer: users, groups and
// superusers with argon2id passwords; personal API tokens and registry login
// tokens (stored as SHA-256 only); Docker token authentication for /v2/ (the
// challenge, the /token endpoint, and the bearer verifier); and permissions
// on namespaces decided in one place, the Authorizer, by casbin over role
// bindings kept in Berth's own tables.
//
// Every HTTP-facing function returns errors for the central error handler
// (package api): *errcode.Error values where the status or headers matter
// (401 with WWW-Authenticate, 429 with Retry-After), core sentinels
// otherwise. No password, password hash or token is ever logged or answered,
// except a new token's value in the one response that creates it.
//
// Failed-login rate limiting and the verified-credential cache live in
// memory, per process; permission decisions always follow the database (see
// Authorizer), so several serve replicas agree at once.
//
// # Wiring
//
//	svc, err := auth.New(g, auth.WithSecretKey(cfg.SecretKey), auth.WithPublicURL(cfg.PublicURL),
//		auth.WithLogger(log), auth.WithNamespaces(containerPlugin))
//	first, err := svc.EnsureFirstAdmin(ctx, cfg.AdminPassword) // print first.Password once if set
//
//	e.IPExtractor = echo.ExtractIPDirect() // or ExtractIPFromXFFHeader(trusted proxies): rate limits key on it
//	e.GET("/token", svc.TokenHandler)
//	e.POST("/token", svc.TokenHandler)
//	srv, err := api.New(api.Deps{ // REST routes, each documented in the OpenAPI document
//		Middleware: []echo.MiddlewareFunc{svc.Authenticate}, // handlers read auth.PrincipalFrom(ctx)
//		Routes: []api.Routes{
//			svc, // users/, groups/, me/ under /pulp/api/v3/; tokens/ under /api/v1/
//			auth.RoleRoutes{Service: svc, Base: ".../namespaces/:id/", Namespace: nsFunc}, // add_role/, owners/ …
//		}, …})
//
// The container plugin's /v2/ requests are authorized with
// svc.AuthorizeRegistry(c, auth.RegistryRequest{Scope: auth.RepositoryScope(name, auth.ActionPull)}),
// svc.GrantCreator is called when a push or an API call creates a
// namespace, and API actions are checked with svc.Authorizer().Can (the
// application's glue maps the plugin's questions to these calls).
package auth

import (
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"gorm.io/gorm"

	"github.com/berth-dev/berth/core/secret"
)

// Service holds users, groups, tokens and role bindings, authenticates
// requests and issues registry tokens. It is safe for concurrent use; create
// one per process with New.
type Service struct {
	store   *store
	authz   *Authorizer
	log     *slog.Logger
	opt     options
	limiter *failureLimiter
	hasher  *hasher
	creds   *credCache
	signKey []byte
}

// New returns a Service over the database g, which must carry the core
// migrations (auth tables included). WithSecretKey is required.
func New(g *gorm.DB, opts ...Option) (*Service, error) {
	if g == nil {
		return nil, fmt.Errorf("auth: database is nil")
	}
	o := defaultOptions()
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, fmt.Errorf("auth: %w", err)
		}
	}
	if o.secretKey == "" {
		return nil, fmt.Errorf("auth: a secret key is required (WithSecretKey)")
	}
	if o.service == "" {
		u, _ := url.Parse(o.publicURL) // validated by WithPublicURL or the default
		o.service = u.Host
	}
	st := newStore(g)
	s := &Service{
		store:   st,
		log:     o.log.With("component", "auth"),
		opt:     o,
		limiter: newFailureLimiter(o.failureBurst, o.failureRefill, o.now),
		hasher:  newHasher(o.hashParams),
		creds:   newCredCache(o.credentialCacheTTL, o.now),
		signKey: secret.Derive(o.secretKey, "berth registry token signing"),
	}
	s.authz = newAuthorizer(st, o.pushCreates, o.policyRefresh, o.now, s.log)
	return s, nil
}

// Authorizer returns the one place permissions are decided.
func (s *Service) Authorizer() *Authorizer { return s.authz }

// Service names the registry service tokens are bound to.
func (s *Service) ServiceName() string { return s.opt.service }

// Realm is the URL of the token endpoint announced in challenges.
func (s *Service) Realm() string { return s.opt.publicURL + "/token" }

// TokenLifetime is the lifetime of registry bearer tokens.
func (s *Service) TokenLifetime() time.Duration { return s.opt.tokenLifetime }

func (s *Service) now() time.Time { return s.opt.now().UTC() }
