package auth_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"gorm.io/gorm"

	"github.com/berth-dev/berth/auth"
)

func TestChallenge(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, g *gorm.DB) {
		s := newService(t, g)
		if got, want := s.Challenge(), `Bearer realm="https://registry.example.com/token",service="registry.example.com"`; got != want {
			t.Fatalf("challenge %s, want %s", got, want)
		}
		got := s.Challenge(auth.RepositoryScope("foo/bar", auth.ActionPull, auth.ActionPush))
		if want := `Bearer realm="https://registry.example.com/token",service="registry.example.com",scope="repository:foo/bar:pull,push"`; got != want {
			t.Fatalf("challenge %s, want %s", got, want)
		}
		e := s.ChallengeError(auth.CatalogScope())
		if e.Status() != http.StatusUnauthorized || !strings.Contains(e.Header.Get("WWW-Authenticate"), `scope="registry:catalog:*"`) {
			t.Fatalf("challenge error %+v", e)
		}
	})
}

func TestParseScope(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"repository:foo/bar:pull,push":      "repository:foo/bar:pull,push",
		"repository(plugin):foo:pull":       "repository:foo:pull",
		"registry:catalog:*":                "registry:catalog:*",
		"repository:foo:pull,pull,":         "repository:foo:pull",
		"repository:host:5000/foo:pull":     "repository:host:5000/foo:pull",
		"repository:a/b/c:delete,push,pull": "repository:a/b/c:delete,push,pull",
	} {
		s, err := auth.ParseScope(in)
		if err != nil || s.String() != want {
			t.Errorf("ParseScope(%q) = %q, %v; want %q", in, s, err, want)
		}
	}
	for _, bad := range []string{"", "repository", "repository:foo", ":foo:pull", "repository:foo:"} {
		if _, err := auth.ParseScope(bad); err == nil {
			t.Errorf("ParseScope(%q) accepted", bad)
		}
	}
	scopes, err := auth.ParseScopes([]string{"repository:a:pull repository:b:push", "registry:catalog:*"})
	if err != nil || len(scopes) != 3 {
		t.Fatalf("ParseScopes: %v %v", scopes, err)
	}
}

func TestTokenHandler(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, g *gorm.DB) {
		logs := &logBuffer{}
		s := newService(t, g, auth.WithNamespaces(resolver{"pub": false, "priv": true}),
			auth.WithFailedLoginLimit(2, time.Hour), auth.WithLogger(slogTo(logs)))
		u := mustUser(t, s, "mia", false)
		if err := s.GrantRole(ctx, "priv", auth.RoleConsumer, auth.UserSubject(u.ID)); err != nil {
			t.Fatal(err)
		}
		e := testEcho(t)
		e.GET("/token", s.TokenHandler)
		e.POST("/token", s.TokenHandler)
		srv := httptest.NewServer(e)
		defer srv.Close()

		var issued []string
		get := func(query, user, pass string) (*http.Response, map[string]any) {
			t.Helper()
			req, _ := http.NewRequest(http.MethodGet, srv.URL+"/token?"+query, nil)
			if user != "" {
				req.SetBasicAuth(user, pass)
			}
			resp, body := do(t, req)
			if tok, ok := body["token"].(string); ok {
				issued = append(issued, tok)
			}
			return resp, body
		}

		// Anonymous, several scopes: only the public pull.
		resp, body := get("service=registry.example.com&scope=repository:pub/a:pull&scope=repository:priv/a:pull", "", "")
		if resp.StatusCode != 200 || body["token"] == "" || body["token"] != body["access_token"] {
			t.Fatalf("anonymous: %d %v", resp.StatusCode, body)
		}
		if resp.Header.Get("Cache-Control") != "no-store" {
			t.Fatalf("token response may be cached: %v", resp.Header)
		}
		if got := accessOf(t, body["token"].(string)); len(got) != 1 || got[0].String() != "repository:pub/a:pull" {
			t.Fatalf("anonymous access %v", got)
		}

		// Basic: both scopes.
		resp, body = get("service=registry.example.com&scope=repository:pub/a:pull&scope=repository:priv/a:pull", "mia", "mia-password")
		if resp.StatusCode != 200 || len(accessOf(t, body["token"].(string))) != 2 {
			t.Fatalf("basic: %d %v", resp.StatusCode, body)
		}
		// podman login: no scope at all, still a token.
		resp, body = get("account=mia&client_id=podman&offline_token=true&service=registry.example.com", "mia", "mia-password")
		if resp.StatusCode != 200 || len(accessOf(t, body["token"].(string))) != 0 {
			t.Fatalf("login: %d %v", resp.StatusCode, body)
		}

		// Errors.
		resp, body = get("service=registry.example.com", "mia", "wrong-password")
		if resp.StatusCode != 401 || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic ") {
			t.Fatalf("wrong password: %d %v %v", resp.StatusCode, resp.Header, body)
		}
		resp, _ = get("service=other.example.com", "", "")
		if resp.StatusCode != 400 {
			t.Fatalf("unknown service: %d", resp.StatusCode)
		}
		resp, _ = get("scope=nonsense", "", "")
		if resp.StatusCode != 400 {
			t.Fatalf("malformed scope: %d", resp.StatusCode)
		}
		resp, _ = get("service=registry.example.com", "mia", "wrong-again")
		resp, _ = get("service=registry.example.com", "mia", "mia-password")
		if resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" {
			t.Fatalf("after 2 failures: %d %v", resp.StatusCode, resp.Header)
		}

		// OAuth2 POST (containerd): password grant works, others say 400.
		// (A fresh user: the client address is still locked out for mia.)
		mustUser(t, s, "ned", false)
		form := url.Values{"grant_type": {"password"}, "username": {"ned"}, "password": {"ned-password"},
			"service": {"registry.example.com"}, "scope": {"repository:pub/a:pull"}, "client_id": {"containerd"}}
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/token", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, body = do(t, req)
		if resp.StatusCode != 200 || body["access_token"] == nil || body["scope"] != "repository:pub/a:pull" {
			t.Fatalf("oauth password grant: %d %v", resp.StatusCode, body)
		}
		form.Set("grant_type", "refresh_token")
		req, _ = http.NewRequest(http.MethodPost, srv.URL+"/token", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if resp, _ = do(t, req); resp.StatusCode != 400 {
			t.Fatalf("refresh_token grant: %d", resp.StatusCode)
		}

		if len(issued) < 3 {
			t.Fatalf("only %d tokens issued", len(issued))
		}
		for _, secret := range append(issued, "mia-password", "wrong-password", "ned-password") {
			if strings.Contains(logs.String(), secret) {
				t.Fatalf("a password reached the log:\n%s", logs)
			}
		}
	})
}

func do(t *testing.T, req *http.Request) (*http.Response, map[string]any) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return resp, body
}

// registryServer serves /token and a stand-in for /v2/ that authorizes
// like the container plugin will: GET/HEAD pull, PUT/POST/PATCH push,
// DELETE delete; the X-Upload-Owner header plays the upload session's
// recorded owner.
func registryServer(t *testing.T, s *auth.Service) *httptest.Server {
	e := testEcho(t)
	e.GET("/token", s.TokenHandler)
	e.GET("/v2/", func(c echo.Context) error {
		p, err := s.AuthorizeRegistry(c, auth.RegistryRequest{})
		if err != nil {
			return err
		}
		return c.String(http.StatusOK, p.Username)
	})
	e.GET("/v2/_catalog", func(c echo.Context) error {
		if _, err := s.AuthorizeRegistry(c, auth.RegistryRequest{Scope: auth.CatalogScope()}); err != nil {
			return err
		}
		return c.String(http.StatusOK, "{}")
	})
	e.Any("/v2/:ns/:img/blobs/x", func(c echo.Context) error {
		act := map[string]auth.Action{http.MethodGet: auth.ActionPull, http.MethodHead: auth.ActionPull,
			http.MethodDelete: auth.ActionDelete}[c.Request().Method]
		if act == "" {
			act = auth.ActionPush
		}
		p, err := s.AuthorizeRegistry(c, auth.RegistryRequest{
			Scope:       auth.RepositoryScope(c.Param("ns")+"/"+c.Param("img"), act),
			UploadOwner: c.Request().Header.Get("X-Upload-Owner"),
		})
		if err != nil {
			return err
		}
		return c.String(http.StatusOK, p.Username)
	})
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	return srv
}

func TestAuthorizeRegistry(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, g *gorm.DB) {
		clk := newClock()
		s := newService(t, g, auth.WithNamespaces(resolver{"pub": false, "priv": true}), auth.WithClock(clk.Now),
			auth.WithUploadGrace(time.Hour))
		owner := mustUser(t, s, "olga", false)
		mustUser(t, s, "paul", false)
		if err := s.GrantRole(ctx, "priv", auth.RoleCollaborator, auth.UserSubject(owner.ID)); err != nil {
			t.Fatal(err)
		}
		srv := registryServer(t, s)
		call := func(method, path, authz, uploadOwner string) (*http.Response, map[string]any) {
			t.Helper()
			req, _ := http.NewRequest(method, srv.URL+path, nil)
			if authz != "" {
				req.Header.Set("Authorization", authz)
			}
			if uploadOwner != "" {
				req.Header.Set("X-Upload-Owner", uploadOwner)
			}
			return do(t, req)
		}
		basic := func(user, pass string) string {
			r, _ := http.NewRequest(http.MethodGet, "/", nil)
			r.SetBasicAuth(user, pass)
			return r.Header.Get("Authorization")
		}
		code := func(body map[string]any) string {
			errs, _ := body["errors"].([]any)
			if len(errs) == 0 {
				return ""
			}
			return errs[0].(map[string]any)["code"].(string)
		}

		// GET /v2/ without credentials: the challenge.
		resp, body := call("GET", "/v2/", "", "")
		if resp.StatusCode != 401 || code(body) != "UNAUTHORIZED" ||
			resp.Header.Get("WWW-Authenticate") != `Bearer realm="https://registry.example.com/token",service="registry.example.com"` {
			t.Fatalf("GET /v2/: %d %v %v", resp.StatusCode, resp.Header, body)
		}
		anonTok, _ := issue(t, s, "", "", "repository:pub/app:pull")
		if resp, _ = call("GET", "/v2/", "Bearer "+anonTok, ""); resp.StatusCode != 200 {
			t.Fatalf("GET /v2/ with an anonymous token: %d", resp.StatusCode)
		}
		if resp, _ = call("GET", "/v2/", basic("olga", "olga-password"), ""); resp.StatusCode != 200 {
			t.Fatalf("GET /v2/ with Basic: %d", resp.StatusCode)
		}
		if resp, _ = call("GET", "/v2/", basic("olga", "nope"), ""); resp.StatusCode != 401 {
			t.Fatalf("GET /v2/ with a wrong password: %d", resp.StatusCode)
		}
		if resp, _ = call("GET", "/v2/", "Bearer not-a-token", ""); resp.StatusCode != 401 ||
			!strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="invalid_token"`) {
			t.Fatalf("GET /v2/ with a bad token: %d %v", resp.StatusCode, resp.Header)
		}

		// Public pulls need nothing; private ones send clients for a token.
		if resp, _ = call("GET", "/v2/pub/app/blobs/x", "", ""); resp.StatusCode != 200 {
			t.Fatalf("anonymous public pull: %d", resp.StatusCode)
		}
		resp, body = call("GET", "/v2/priv/app/blobs/x", "", "")
		if resp.StatusCode != 401 || !strings.HasSuffix(resp.Header.Get("WWW-Authenticate"), `,scope="repository:priv/app:pull"`) {
			t.Fatalf("anonymous private pull: %d %v", resp.StatusCode, resp.Header)
		}
		// A token without the scope: insufficient_scope.
		resp, _ = call("GET", "/v2/priv/app/blobs/x", "Bearer "+anonTok, "")
		if resp.StatusCode != 401 || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="insufficient_scope"`) {
			t.Fatalf("pull with a token for another scope: %d %v", resp.StatusCode, resp.Header)
		}

		// Push with a token; Basic without rights is DENIED.
		tok, _ := issue(t, s, "olga", "olga-password", "repository:priv/app:pull,push")
		if resp, _ = call("PUT", "/v2/priv/app/blobs/x", "Bearer "+tok, ""); resp.StatusCode != 200 {
			t.Fatalf("push with a token: %d", resp.StatusCode)
		}
		if resp, _ = call("HEAD", "/v2/priv/app/blobs/x", "Bearer "+tok, ""); resp.StatusCode != 200 {
			t.Fatalf("HEAD with a push token: %d", resp.StatusCode)
		}
		if resp, _ = call("PUT", "/v2/priv/app/blobs/x", basic("olga", "olga-password"), ""); resp.StatusCode != 200 {
			t.Fatalf("push with Basic: %d", resp.StatusCode)
		}
		resp, body = call("PUT", "/v2/priv/app/blobs/x", basic("paul", "paul-password"), "")
		if resp.StatusCode != 403 || code(body) != "DENIED" {
			t.Fatalf("push without rights: %d %v", resp.StatusCode, body)
		}
		if resp, _ = call("DELETE", "/v2/priv/app/blobs/x", "Bearer "+tok, ""); resp.StatusCode != 401 {
			t.Fatalf("delete with a pull,push token: %d", resp.StatusCode)
		}
		// Catalog: authenticated only.
		if resp, _ = call("GET", "/v2/_catalog", "", ""); resp.StatusCode != 401 {
			t.Fatalf("anonymous catalog: %d", resp.StatusCode)
		}
		if resp, _ = call("GET", "/v2/_catalog", basic("paul", "paul-password"), ""); resp.StatusCode != 200 {
			t.Fatalf("catalog: %d", resp.StatusCode)
		}

		// An upload that outlives its token: accepted for the session's owner only.
		clk.Advance(10 * time.Minute)
		if resp, _ = call("PATCH", "/v2/priv/app/blobs/x", "Bearer "+tok, ""); resp.StatusCode != 401 ||
			!strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="invalid_token"`) {
			t.Fatalf("expired token, no upload: %d %v", resp.StatusCode, resp.Header)
		}
		if resp, _ = call("PATCH", "/v2/priv/app/blobs/x", "Bearer "+tok, owner.ID); resp.StatusCode != 200 {
			t.Fatalf("expired token, own upload: %d", resp.StatusCode)
		}
		if resp, _ = call("PATCH", "/v2/priv/app/blobs/x", "Bearer "+tok, "someone-else"); resp.StatusCode != 401 {
			t.Fatalf("expired token, another's upload: %d", resp.StatusCode)
		}

		// Rights are checked now, not only when the token was issued.
		tok, _ = issue(t, s, "olga", "olga-password", "repository:priv/app:pull,push")
		if err := s.RevokeRole(ctx, "priv", auth.RoleCollaborator, auth.UserSubject(owner.ID)); err != nil {
			t.Fatal(err)
		}
		resp, body = call("PUT", "/v2/priv/app/blobs/x", "Bearer "+tok, "")
		if resp.StatusCode != 403 || code(body) != "DENIED" {
			t.Fatalf("push after the role was revoked: %d %v", resp.StatusCode, body)
		}
	})
}
