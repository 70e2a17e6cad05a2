package auth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/berth-dev/berth/api/errcode"
	"github.com/berth-dev/berth/core"
)

// Challenge returns the WWW-Authenticate value that sends Docker clients to
// the token endpoint: Bearer realm="<public URL>/token",service="<service>"
// and, when given, scope="repository:<name>:pull,push" (several scopes are
// separated by spaces).
func (s *Service) Challenge(scopes ...Scope) string {
	return s.challenge("", scopes...)
}

func (s *Service) challenge(errParam string, scopes ...Scope) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Bearer realm=%q,service=%q", s.Realm(), s.opt.service)
	if len(scopes) > 0 {
		parts := make([]string, 0, len(scopes))
		for _, sc := range scopes {
			if !sc.IsZero() {
				parts = append(parts, sc.String())
			}
		}
		if len(parts) > 0 {
			fmt.Fprintf(&b, ",scope=%q", strings.Join(parts, " "))
		}
	}
	if errParam != "" {
		fmt.Fprintf(&b, ",error=%q", errParam)
	}
	return b.String()
}

// ChallengeError is the 401 UNAUTHORIZED a /v2/ handler returns to ask for
// a token: the OCI error with the Bearer challenge in WWW-Authenticate.
func (s *Service) ChallengeError(scopes ...Scope) *errcode.Error {
	return errcode.Unauthorized.New().WithHeader(echo.HeaderWWWAuthenticate, s.challenge("", scopes...))
}

func (s *Service) challengeErr(errParam, msg string, need Scope) *errcode.Error {
	e := errcode.Unauthorized.New()
	if msg != "" {
		e = errcode.Unauthorized.Errorf("%s", msg)
	}
	return e.WithHeader(echo.HeaderWWWAuthenticate, s.challenge(errParam, need))
}

// rateLimited turns a *RateLimitError into 429 TOOMANYREQUESTS with Retry-After.
func rateLimited(rl *RateLimitError) *errcode.Error {
	secs := int(rl.RetryAfter.Seconds() + 0.999)
	return errcode.TooManyRequests.Errorf("Too many failed login attempts; try again in %d seconds.", secs).
		WithHeader("Retry-After", strconv.Itoa(secs))
}

// RegistryRequest is what one /v2/ request needs.
type RegistryRequest struct {
	// Scope: RepositoryScope(name, ActionPull|ActionPush|ActionDelete…),
	// CatalogScope(), or the zero Scope for GET /v2/ itself.
	Scope Scope
	// UploadOwner is the user ID recorded on the upload session this request
	// continues, if any: that user's registry token is then accepted for up
	// to the upload grace after it expired, so a long upload can finish.
	UploadOwner string
}

// AuthorizeRegistry authenticates and authorizes a /v2/ request in one
// call, and returns the principal for the handler to record (for instance on
// a new upload session).
//
// Credentials may be a registry token (Bearer, from /token), Basic (a
// password or personal token; crane and skopeo fall back to it), or none.
// The token's scope must cover the request, and — whatever the token says —
// the principal's current rights must too (Authorizer.Can), so revoking a
// role takes effect at once even for tokens already issued.
//
// Errors are ready for the central handler: 401 UNAUTHORIZED with a Bearer
// challenge (error="invalid_token" or "insufficient_scope" when a token
// fell short) when credentials are missing, wrong or too narrow, 403 DENIED
// when an authenticated user lacks the right, 429 after repeated failed
// logins.
func (s *Service) AuthorizeRegistry(c echo.Context, req RegistryRequest) (*Principal, error) {
	ctx := c.Request().Context()
	need := req.Scope
	p, err := s.registryPrincipal(c, req)
	if err != nil {
		return nil, err
	}
	switch {
	case need.IsZero():
		if p.IsAnonymous() && p.Method != MethodBearer {
			return nil, s.challengeErr("", "", need)
		}
		return p, nil
	case need.Type == ScopeRegistry && need.Name == "catalog":
		if p.IsAnonymous() {
			return nil, s.challengeErr("", "", need)
		}
		return p, nil
	case need.Type != ScopeRepository || need.Name == "":
		return nil, errcode.Denied.Errorf("unsupported scope %q", need.String())
	}
	ns, err := s.opt.namespaces.ResolveNamespace(ctx, need.Name)
	if err != nil {
		return nil, err
	}
	for _, a := range need.Actions {
		act := Action(a)
		if act != ActionPull && act != ActionPush && act != ActionDelete {
			return nil, errcode.Denied.Errorf("unsupported action %q", a)
		}
		ok, err := s.authz.Can(ctx, p, act, ns)
		if err != nil {
			return nil, err
		}
		if !ok {
			if p.IsAnonymous() {
				return nil, s.challengeErr("", "", need)
			}
			return nil, errcode.Denied.Errorf("requested access to the resource is denied: %s", act)
		}
	}
	return p, nil
}

// registryPrincipal reads the credentials of a /v2/ request.
func (s *Service) registryPrincipal(c echo.Context, req RegistryRequest) (*Principal, error) {
	r := c.Request()
	header := r.Header.Get(echo.HeaderAuthorization)
	if header == "" {
		return Anonymous(), nil
	}
	scheme, cred, _ := strings.Cut(header, " ")
	switch strings.ToLower(scheme) {
	case "basic":
		user, pass, ok := r.BasicAuth()
		if !ok {
			return nil, s.challengeErr("invalid_request", "malformed basic credentials", req.Scope)
		}
		p, err := s.AuthenticateBasic(r.Context(), user, pass, c.RealIP(), UsageRegistry)
		var rl *RateLimitError
		switch {
		case errors.As(err, &rl):
			return nil, rateLimited(rl)
		case errors.Is(err, core.ErrUnauthorized):
			return nil, s.challengeErr("", "invalid username or password", req.Scope)
		}
		return p, err
	case "bearer":
		claims, expired, err := s.VerifyAllowExpired(strings.TrimSpace(cred), Scope{})
		if err != nil {
			return nil, s.challengeErr("invalid_token", "invalid or expired token", req.Scope)
		}
		if expired && (req.UploadOwner == "" || claims.Subject != req.UploadOwner) {
			return nil, s.challengeErr("invalid_token", "token expired", req.Scope)
		}
		if !claims.Allows(req.Scope) {
			return nil, s.challengeErr("insufficient_scope", scopeRefusal(claims, req.Scope), req.Scope)
		}
		return claims.Principal(), nil
	}
	return nil, s.challengeErr("invalid_request", "unsupported authorization scheme", req.Scope)
}

// scopeRefusal says why a token falls short of need, in words a podman or
// docker user can act on.
func scopeRefusal(claims *Claims, need Scope) string {
	if need.Type != ScopeRepository {
		return "the token does not grant " + need.String()
	}
	what := strings.Join(need.Actions, "/") + " " + need.Name
	if claims.Subject == "" {
		return fmt.Sprintf("authentication required: anonymous users may not %s; log in (podman login) as a user with a role on namespace %q (the token does not grant %s)",
			what, NamespaceOf(need.Name), need.String())
	}
	return fmt.Sprintf("access denied: user %s may not %s; a role on namespace %q is needed (the token does not grant %s)",
		claims.Username, what, NamespaceOf(need.Name), need.String())
}

// tokenResponse is the token endpoint's answer, in the shape of Docker's
// token specification (token and access_token hold the same value) and of
// its OAuth2 variant (scope, for POST).
type tokenResponse struct {
	Token       string `json:"token,omitempty"`
	AccessToken string `json:"access_token"`
	ExpiresIn   int    `json:"expires_in"`
	IssuedAt    string `json:"issued_at"`
	Scope       string `json:"scope,omitempty"`
}

// TokenHandler serves GET and POST /token, the Docker token endpoint.
//
// GET takes optional Basic credentials (a password or a personal token;
// none means anonymous), service, and any number of scope parameters
// (repository:NAME:pull,push, registry:catalog:*). POST is the OAuth2
// variant (grant_type=password with username and password form fields);
// other grant types answer 400, which containerd takes as a cue to use GET.
//
// The token grants, per scope, only the actions the principal holds now
// (push implies pull); unknown or ungranted scopes are left out rather than
// refused, as the specification asks.
func (s *Service) TokenHandler(c echo.Context) error {
	r := c.Request()
	ctx := r.Context()
	var (
		username, password string
		haveCreds          bool
		scopeParams        []string
		service            string
		oauth              = r.Method == http.MethodPost
	)
	if oauth {
		r.Body = http.MaxBytesReader(c.Response(), r.Body, 64<<10)
		if err := r.ParseForm(); err != nil {
			return errcode.Invalid.Errorf("malformed form: %v", err)
		}
		if gt := r.PostForm.Get("grant_type"); gt != "password" {
			return errcode.Invalid.Errorf("unsupported grant_type %q: use password, or GET with Basic credentials", gt)
		}
		username, password, haveCreds = r.PostForm.Get("username"), r.PostForm.Get("password"), true
		scopeParams, service = r.PostForm["scope"], r.PostForm.Get("service")
	} else {
		scopeParams, service = c.QueryParams()["scope"], c.QueryParam("service")
		if h := r.Header.Get(echo.HeaderAuthorization); h != "" {
			if username, password, haveCreds = r.BasicAuth(); !haveCreds {
				return errcode.Unauthorized.Errorf("the token endpoint takes Basic credentials or none").
					WithHeader(echo.HeaderWWWAuthenticate, s.basicChallenge())
			}
		}
	}
	if service != "" && service != s.opt.service {
		return errcode.Invalid.Errorf("unknown service %q: this registry is %q", service, s.opt.service)
	}
	scopes, err := ParseScopes(scopeParams)
	if err != nil {
		return err
	}
	p := Anonymous()
	if haveCreds {
		p, err = s.AuthenticateBasic(ctx, username, password, c.RealIP(), UsageRegistry)
		var rl *RateLimitError
		switch {
		case errors.As(err, &rl):
			return rateLimited(rl)
		case errors.Is(err, core.ErrUnauthorized):
			return errcode.Unauthorized.Errorf("invalid username or password").
				WithHeader(echo.HeaderWWWAuthenticate, s.basicChallenge())
		case err != nil:
			return err
		}
	}
	access, err := s.grantScopes(ctx, p, scopes)
	if err != nil {
		return err
	}
	raw, issued, err := s.issue(p, access)
	if err != nil {
		return err
	}
	granted := make([]string, len(access))
	for i, a := range access {
		granted[i] = a.String()
	}
	s.log.InfoContext(ctx, "registry token issued", "principal", p, "granted", granted)
	c.Response().Header().Set("Cache-Control", "no-store")
	c.Response().Header().Set("Pragma", "no-cache")
	resp := tokenResponse{AccessToken: raw, ExpiresIn: int(s.opt.tokenLifetime.Seconds()), IssuedAt: issued.Format(time.RFC3339)}
	if oauth {
		resp.Scope = strings.Join(granted, " ")
	} else {
		resp.Token = raw
	}
	return c.JSON(http.StatusOK, resp)
}

func (s *Service) basicChallenge() string { return fmt.Sprintf("Basic realm=%q", s.opt.service) }

// grantScopes decides, scope by scope, what p gets.
func (s *Service) grantScopes(ctx context.Context, p *Principal, scopes []Scope) ([]Scope, error) {
	var out []Scope
	index := map[string]int{}
	add := func(typ, name string, actions ...string) {
		key := typ + ":" + name
		i, ok := index[key]
		if !ok {
			index[key] = len(out)
			out = append(out, Scope{Type: typ, Name: name})
			i = len(out) - 1
		}
		for _, a := range actions {
			if !slices.Contains(out[i].Actions, a) {
				out[i].Actions = append(out[i].Actions, a)
			}
		}
	}
	for _, sc := range scopes {
		switch {
		case sc.Type == ScopeRegistry && sc.Name == "catalog":
			if !p.IsAnonymous() && slices.Contains(sc.Actions, ScopeAll) {
				add(sc.Type, sc.Name, ScopeAll)
			}
		case sc.Type == ScopeRepository && sc.Name != "":
			ns, err := s.opt.namespaces.ResolveNamespace(ctx, sc.Name)
			if errors.Is(err, core.ErrInvalid) || errors.Is(err, core.ErrNotFound) {
				continue // a malformed name gets nothing; the registry will say why
			}
			if err != nil {
				return nil, err
			}
			all := slices.Contains(sc.Actions, ScopeAll)
			var got []string
			for _, act := range []Action{ActionPush, ActionPull, ActionDelete} {
				if !all && !slices.Contains(sc.Actions, string(act)) {
					continue
				}
				ok, err := s.authz.Can(ctx, p, act, ns)
				if err != nil {
					return nil, err
				}
				if ok {
					got = append(got, string(act))
					if act == ActionPush && !slices.Contains(got, string(ActionPull)) {
						got = append(got, string(ActionPull)) // push implies pull
					}
				}
			}
			if len(got) > 0 {
				add(sc.Type, sc.Name, canonicalOrder(got)...)
			}
		}
	}
	return out, nil
}

// canonicalOrder sorts registry actions as pull, push, delete.
func canonicalOrder(acts []string) []string {
	var out []string
	for _, a := range []string{string(ActionPull), string(ActionPush), string(ActionDelete)} {
		if slices.Contains(acts, a) {
			out = append(out, a)
		}
	}
	return out
}
