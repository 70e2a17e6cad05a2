package auth_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"
	"gorm.io/gorm"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/auth"
	"github.com/berth-dev/berth/core"
)

// restClient drives the REST handlers and keeps every response body, so
// the test can check at the end that no secret was ever answered.
type restClient struct {
	t      *testing.T
	srv    *httptest.Server
	bodies []string
}

type reply struct {
	status int
	header http.Header
	raw    string
	json   map[string]any
}

func (c *restClient) do(method, path, authz string, body any) reply {
	c.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, c.srv.URL+path, rd)
	req.Header.Set("Content-Type", "application/json")
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := reply{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	_ = json.Unmarshal(raw, &r.json)
	c.bodies = append(c.bodies, r.raw)
	return r
}

func (c *restClient) want(r reply, status int) reply {
	c.t.Helper()
	if r.status != status {
		c.t.Fatalf("status %d, want %d: %s", r.status, status, r.raw)
	}
	return r
}

func basicAuth(user, pass string) string {
	r, _ := http.NewRequest(http.MethodGet, "/", nil)
	r.SetBasicAuth(user, pass)
	return r.Header.Get("Authorization")
}

func TestRESTHandlers(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, g *gorm.DB) {
		logs := &logBuffer{}
		s := newService(t, g, auth.WithLogger(slogTo(logs)))
		namespaces := resolver{"team": true, "open": false}
		nsFunc := func(c echo.Context) (auth.Namespace, error) {
			name := c.Param("name")
			private, ok := namespaces[name]
			if !ok {
				return auth.Namespace{}, core.NotFound("namespace", name)
			}
			return auth.Namespace{Name: name, Private: private}, nil
		}
		e := testEcho(t)
		doc := api.NewDoc("test", "test")
		rt := api.NewRouter(e, doc)
		s.APIRoutes(rt)
		auth.RoleRoutes{Service: s, Base: "/pulp/api/v3/pulp_container/namespaces/:name/", OperationPrefix: "namespaces",
			Namespace: nsFunc}.APIRoutes(rt)
		if err := rt.Err(); err != nil {
			t.Fatal(err)
		}
		if missing := api.Undocumented(e, doc); len(missing) > 0 {
			t.Fatalf("routes missing from the OpenAPI document: %v", missing)
		}
		if n := len(doc.Operations()); n != 27 {
			t.Fatalf("%d operations documented, want 27", n)
		}
		srv := httptest.NewServer(e)
		defer srv.Close()
		c := &restClient{t: t, srv: srv}

		const adminPW, quinnPW, rosaPW = "admin-secret-pw", "quinn-secret-pw", "rosa-secret-pw"
		if _, err := s.EnsureFirstAdmin(ctx, adminPW); err != nil {
			t.Fatal(err)
		}
		admin := basicAuth("admin", adminPW)

		// Users: superusers only.
		r := c.want(c.do("POST", "/pulp/api/v3/users/", admin, map[string]any{"username": "quinn", "password": quinnPW, "email": "q@example.com"}), 201)
		quinnID := r.json["id"].(string)
		if r.json["pulp_href"] != "/pulp/api/v3/users/"+quinnID+"/" || r.json["password"] != nil {
			t.Fatalf("created user %s", r.raw)
		}
		if hf := r.json["hidden_fields"].([]any)[0].(map[string]any); hf["name"] != "password" || hf["is_set"] != true {
			t.Fatalf("hidden_fields %v", hf)
		}
		c.want(c.do("POST", "/pulp/api/v3/users/", admin, map[string]any{"username": "rosa", "password": rosaPW}), 201)
		quinn, rosa := basicAuth("quinn", quinnPW), basicAuth("rosa", rosaPW)
		r = c.want(c.do("GET", "/pulp/api/v3/users/", "", nil), 401)
		if !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Basic ") {
			t.Fatalf("401 without a challenge: %v", r.header)
		}
		c.want(c.do("GET", "/pulp/api/v3/users/", quinn, nil), 403)
		c.want(c.do("GET", "/pulp/api/v3/users/", basicAuth("quinn", "wrong"), nil), 401)
		r = c.want(c.do("GET", "/pulp/api/v3/users/?limit=1&ordering=-username", admin, nil), 200)
		if r.json["count"].(float64) != 3 || r.json["next"] == nil || r.json["results"].([]any)[0].(map[string]any)["username"] != "rosa" {
			t.Fatalf("user list %s", r.raw)
		}
		r = c.want(c.do("GET", "/pulp/api/v3/users/?username__contains=uin", admin, nil), 200)
		if r.json["count"].(float64) != 1 {
			t.Fatalf("filtered list %s", r.raw)
		}
		c.want(c.do("GET", "/pulp/api/v3/users/?ordering=password_hash", admin, nil), 400)
		r = c.want(c.do("PATCH", "/pulp/api/v3/users/"+quinnID+"/", admin, map[string]any{"first_name": "Quinn"}), 200)
		if r.json["first_name"] != "Quinn" || r.json["email"] != "q@example.com" {
			t.Fatalf("patched %s", r.raw)
		}
		r = c.want(c.do("PATCH", "/pulp/api/v3/users/"+quinnID+"/", admin, map[string]any{"email": "not an email"}), 400)
		if r.json["email"] == nil {
			t.Fatalf("validation body %s", r.raw)
		}
		c.want(c.do("POST", "/pulp/api/v3/users/", admin, map[string]any{"username": "QUINN"}), 409)
		c.want(c.do("GET", "/pulp/api/v3/users/nope/", admin, nil), 404)

		// Groups and members.
		r = c.want(c.do("POST", "/pulp/api/v3/groups/", admin, map[string]any{"name": "devs"}), 201)
		devsID := r.json["id"].(string)
		c.want(c.do("POST", "/pulp/api/v3/groups/", quinn, map[string]any{"name": "mine"}), 403)
		c.want(c.do("POST", "/pulp/api/v3/groups/"+devsID+"/users/", admin, map[string]any{"username": "quinn"}), 201)
		c.want(c.do("POST", "/pulp/api/v3/groups/"+devsID+"/users/", admin, map[string]any{"username": "ghost"}), 400)
		r = c.want(c.do("GET", "/pulp/api/v3/groups/"+devsID+"/users/", admin, nil), 200)
		if r.json["count"].(float64) != 1 {
			t.Fatalf("members %s", r.raw)
		}
		r = c.want(c.do("GET", "/pulp/api/v3/users/"+quinnID+"/", admin, nil), 200)
		if gs := r.json["groups"].([]any); len(gs) != 1 || gs[0].(map[string]any)["name"] != "devs" {
			t.Fatalf("user's groups %s", r.raw)
		}
		c.want(c.do("PATCH", "/pulp/api/v3/groups/"+devsID+"/", admin, map[string]any{"name": "developers"}), 200)
		r = c.want(c.do("GET", "/pulp/api/v3/groups/?name=developers", admin, nil), 200)
		if r.json["count"].(float64) != 1 {
			t.Fatalf("renamed group %s", r.raw)
		}

		// Me.
		r = c.want(c.do("GET", "/pulp/api/v3/me/", quinn, nil), 200)
		if r.json["username"] != "quinn" || len(r.json["permissions"].([]any)) != 0 || len(r.json["groups"].([]any)) != 1 {
			t.Fatalf("me %s", r.raw)
		}
		r = c.want(c.do("GET", "/pulp/api/v3/me/", admin, nil), 200)
		if r.json["is_superuser"] != true || len(r.json["permissions"].([]any)) != 3 {
			t.Fatalf("admin me %s", r.raw)
		}
		c.want(c.do("GET", "/pulp/api/v3/me/", "", nil), 401)

		// Tokens: the value once, then never again.
		r = c.want(c.do("POST", "/api/v1/tokens/", quinn, map[string]any{"name": "ci"}), 201)
		apiTok, apiTokID := r.json["token"].(string), r.json["id"].(string)
		created := len(c.bodies) - 1
		r = c.want(c.do("GET", "/pulp/api/v3/me/", "Token "+apiTok, nil), 200)
		if r.json["username"] != "quinn" {
			t.Fatalf("me by token %s", r.raw)
		}
		c.want(c.do("GET", "/pulp/api/v3/me/", "Bearer "+apiTok, nil), 200)
		c.want(c.do("GET", "/pulp/api/v3/me/", basicAuth("quinn", apiTok), nil), 200)
		r = c.want(c.do("POST", "/api/v1/tokens/", quinn, map[string]any{"name": "podman", "kind": "registry", "expires_in": 3600}), 201)
		regTok := r.json["token"].(string)
		regCreated := len(c.bodies) - 1
		if r.json["registry"] != "registry.example.com" || r.json["username"] != "quinn" || r.json["expires_at"] == nil {
			t.Fatalf("registry token %s", r.raw)
		}
		c.want(c.do("GET", "/pulp/api/v3/me/", "Token "+regTok, nil), 401)
		r = c.want(c.do("GET", "/api/v1/tokens/", quinn, nil), 200)
		if r.json["count"].(float64) != 2 {
			t.Fatalf("token list %s", r.raw)
		}
		c.want(c.do("GET", "/api/v1/tokens/"+apiTokID+"/", rosa, nil), 404)
		c.want(c.do("DELETE", "/api/v1/tokens/"+apiTokID+"/", rosa, nil), 404)
		c.want(c.do("GET", "/api/v1/tokens/"+apiTokID+"/", quinn, nil), 200)
		c.want(c.do("DELETE", "/api/v1/tokens/"+apiTokID+"/", quinn, nil), 204)
		c.want(c.do("GET", "/pulp/api/v3/me/", "Token "+apiTok, nil), 401)
		c.want(c.do("GET", "/pulp/api/v3/me/", "Negotiate abc", nil), 401)

		// Namespace roles, Pulp's way.
		if err := s.GrantCreator(ctx, "team", quinnID); err != nil {
			t.Fatal(err)
		}
		roles := "/pulp/api/v3/pulp_container/namespaces/team/"
		r = c.want(c.do("POST", roles+"add_role/", quinn, map[string]any{"role": "collaborator", "users": []string{"rosa"}, "groups": []string{"developers"}}), 201)
		if r.json["role"] != "collaborator" {
			t.Fatalf("add_role %s", r.raw)
		}
		c.want(c.do("POST", roles+"add_role/", rosa, map[string]any{"role": "owner", "users": []string{"rosa"}}), 403)
		c.want(c.do("POST", roles+"add_role/", "", map[string]any{"role": "owner", "users": []string{"rosa"}}), 401)
		r = c.want(c.do("POST", roles+"add_role/", quinn, map[string]any{"role": "emperor", "users": []string{"nobody"}}), 400)
		if r.json["role"] == nil || r.json["users"] == nil {
			t.Fatalf("add_role validation %s", r.raw)
		}
		c.want(c.do("POST", roles+"add_role/", quinn, map[string]any{"role": "container.containernamespace_consumer", "users": []string{"admin"}}), 201)
		r = c.want(c.do("GET", roles+"list_roles/", quinn, nil), 200)
		var listed struct {
			Roles []struct {
				Role           string   `json:"role"`
				Users          []string `json:"users"`
				Groups         []string `json:"groups"`
				PermanentUsers []string `json:"permanent_users"`
			} `json:"roles"`
		}
		_ = json.Unmarshal([]byte(r.raw), &listed)
		if len(listed.Roles) != 3 || listed.Roles[0].Role != "owner" || listed.Roles[0].PermanentUsers[0] != "quinn" ||
			listed.Roles[1].Role != "collaborator" || listed.Roles[1].Users[0] != "rosa" || listed.Roles[1].Groups[0] != "developers" ||
			listed.Roles[2].Role != "consumer" {
			t.Fatalf("list_roles %s", r.raw)
		}
		c.want(c.do("GET", roles+"list_roles/", rosa, nil), 403)
		r = c.want(c.do("GET", roles+"my_permissions/", rosa, nil), 200)
		if got := r.json["permissions"].([]any); len(got) != 7 {
			t.Fatalf("collaborator permissions %s", r.raw)
		}
		r = c.want(c.do("GET", roles+"my_permissions/", "", nil), 200)
		if got := r.json["permissions"].([]any); len(got) != 0 {
			t.Fatalf("anonymous permissions on a private namespace %s", r.raw)
		}
		r = c.want(c.do("GET", "/pulp/api/v3/pulp_container/namespaces/open/my_permissions/", "", nil), 200)
		if got := r.json["permissions"].([]any); len(got) != 1 || got[0] != "pull" {
			t.Fatalf("anonymous permissions on a public namespace %s", r.raw)
		}
		r = c.want(c.do("POST", roles+"remove_role/", quinn, map[string]any{"role": "owner", "users": []string{"quinn"}}), 409)
		if !strings.Contains(r.json["detail"].(string), "for good") {
			t.Fatalf("permanent owner message %s", r.raw)
		}
		c.want(c.do("POST", roles+"remove_role/", quinn, map[string]any{"role": "owner", "users": []string{"rosa"}}), 400)
		c.want(c.do("POST", roles+"remove_role/", quinn, map[string]any{"role": "collaborator", "users": []string{"rosa"}}), 201)
		c.want(c.do("GET", "/pulp/api/v3/pulp_container/namespaces/nowhere/list_roles/", quinn, nil), 404)

		// Owners, Galaxy's way.
		r = c.want(c.do("GET", roles+"owners/", quinn, nil), 200)
		if gs := r.json["groups"].([]any); len(gs) != 1 || gs[0].(map[string]any)["name"] != "developers" {
			t.Fatalf("owners %s", r.raw)
		}
		c.want(c.do("GET", roles+"owners/", "", nil), 401)
		c.want(c.do("POST", "/pulp/api/v3/groups/", admin, map[string]any{"name": "ops"}), 201)
		r = c.want(c.do("POST", roles+"owners/", quinn, map[string]any{"name": "ops", "object_roles": []string{"owner", "consumer"}}), 201)
		if r.json["name"] != "ops" || len(r.json["object_roles"].([]any)) != 2 {
			t.Fatalf("add owner %s", r.raw)
		}
		c.want(c.do("POST", roles+"owners/", rosa, map[string]any{"name": "ops"}), 403)
		c.want(c.do("DELETE", roles+"owners/ops/", quinn, nil), 204)
		c.want(c.do("DELETE", roles+"owners/ops/", quinn, nil), 404)

		// Removing quinn from the group and deleting users work through the API.
		c.want(c.do("DELETE", "/pulp/api/v3/groups/"+devsID+"/users/"+quinnID+"/", admin, nil), 204)
		c.want(c.do("DELETE", "/pulp/api/v3/groups/"+devsID+"/users/"+quinnID+"/", admin, nil), 404)
		c.want(c.do("DELETE", "/pulp/api/v3/groups/"+devsID+"/", admin, nil), 204)

		// No secret in any answer (but the two token creations), nor in the log.
		hashes := tableText(t, g, "auth_users") + tableText(t, g, "auth_tokens")
		secrets := []string{adminPW, quinnPW, rosaPW, apiTok, regTok, "$argon2id$"}
		for _, line := range strings.Split(hashes, "\n") {
			if v, ok := strings.CutPrefix(line, "token_hash="); ok && v != "" {
				secrets = append(secrets, v)
			}
		}
		for i, body := range c.bodies {
			if i == created || i == regCreated {
				continue
			}
			for _, sec := range secrets {
				if strings.Contains(body, sec) {
					t.Errorf("response %d carries a secret (%.12s…): %s", i, sec, body)
				}
			}
		}
		out := logs.String()
		if !strings.Contains(out, "token created") || !strings.Contains(out, "login failed") {
			t.Fatalf("expected log lines missing:\n%s", out)
		}
		for _, sec := range secrets {
			if strings.Contains(out, sec) {
				t.Errorf("the log carries a secret (%.12s…)", sec)
			}
		}
	})
}
