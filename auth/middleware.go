package auth

import (
	"context"
	"errors"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/api/errcode"
	"github.com/berth-dev/berth/core"
)

// authRequired is the REST API's 401.
func authRequired(msg string) *errcode.Error {
	e := errcode.AuthRequired.New()
	if msg != "" {
		e = errcode.AuthRequired.Errorf("%s", msg)
	}
	return e.WithHeader(echo.HeaderWWWAuthenticate, api.RESTChallenge)
}

type authenticatedKey struct{}

// Authenticate is the REST API's authentication middleware. It reads
// "Authorization: Basic" (a password, or a personal API token as the
// password) or "Authorization: Token|Bearer <personal API token>" and puts
// the Principal into the request context (see PrincipalFrom). A request
// without credentials goes on as anonymous: deciding what anonymous may do
// is the handlers' business. Wrong credentials answer 401, repeated
// failures 429.
//
// It is for REST routes only: /v2/ uses AuthorizeRegistry, whose Bearer
// tokens are registry tokens. Applying it twice is harmless (the second
// pass does nothing), so mount functions add it themselves.
func (s *Service) Authenticate(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		ctx := r.Context()
		if done, _ := ctx.Value(authenticatedKey{}).(bool); done {
			return next(c)
		}
		p := Anonymous()
		if header := r.Header.Get(echo.HeaderAuthorization); header != "" {
			scheme, cred, _ := strings.Cut(header, " ")
			var err error
			switch strings.ToLower(scheme) {
			case "basic":
				user, pass, ok := r.BasicAuth()
				if !ok {
					return authRequired("Malformed basic credentials.")
				}
				p, err = s.AuthenticateBasic(ctx, user, pass, c.RealIP(), UsageAPI)
			case "token", "bearer":
				p, err = s.AuthenticateToken(ctx, strings.TrimSpace(cred), UsageAPI)
			default:
				return authRequired("Unsupported authorization scheme; use Basic, Token or Bearer.")
			}
			var rl *RateLimitError
			switch {
			case errors.As(err, &rl):
				return rateLimited(rl)
			case errors.Is(err, core.ErrUnauthorized):
				return authRequired("Invalid username/password or token.")
			case err != nil:
				return err
			}
		}
		ctx = context.WithValue(WithPrincipal(ctx, p), authenticatedKey{}, true)
		c.SetRequest(r.WithContext(ctx))
		return next(c)
	}
}

// RequireAuthenticated is middleware that answers 401 to anonymous requests.
// Put it after Authenticate.
func RequireAuthenticated(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if PrincipalFrom(c.Request().Context()).IsAnonymous() {
			return authRequired("")
		}
		return next(c)
	}
}

// RequireSuperuser is middleware that answers 401 to anonymous requests and
// 403 to users who are not superusers. Put it after Authenticate.
func RequireSuperuser(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		p := PrincipalFrom(c.Request().Context())
		if p.IsAnonymous() {
			return authRequired("")
		}
		if !p.Superuser {
			return errcode.Forbidden.Errorf("Only superusers may do this.")
		}
		return next(c)
	}
}

// RequireAction is middleware that lets through only principals allowed the
// global action act (ActionCreateRemote, ActionManageUsers, …), as decided
// by the Authorizer. Put it after Authenticate.
func (s *Service) RequireAction(act Action) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			ctx := c.Request().Context()
			p := PrincipalFrom(ctx)
			if p.IsAnonymous() {
				return authRequired("")
			}
			if err := s.authz.Require(ctx, p, act, Namespace{}); err != nil {
				return err
			}
			return next(c)
		}
	}
}
