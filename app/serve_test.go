package app

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/internal/config"
)

const adminPassword = "app-test-admin-password"

// server is berth serve's handler, assembled as Serve assembles it, on a
// fresh SQLite database with embedded workers.
type server struct {
	t   *testing.T
	app *App
	srv *api.Server
	url string
}

func newServer(t *testing.T) *server {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.Listen = "127.0.0.1:5001"
	cfg.AdminPassword = adminPassword
	cfg.SecretKey = "app-test-secret-key-0123456789"
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	a, err := Open(ctx, &cfg, log, "test", true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	if _, err := a.Auth.EnsureFirstAdmin(ctx, cfg.AdminPassword); err != nil {
		t.Fatal(err)
	}
	tb, err := a.openTasks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tb.close() })
	ts, err := api.NewTaskService(a.DB, tb.dispatcher, tb.enqueuer)
	if err != nil {
		t.Fatal(err)
	}
	e, srv, err := a.Handler(ts, api.Checks{})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(e)
	t.Cleanup(hs.Close)
	return &server{t: t, app: a, srv: srv, url: hs.URL}
}

// TestEveryRouteDocumented: the assembled server documents each route
// under the API's prefixes, among them those of auth and of the container
// plugin, and serves that document.
func TestEveryRouteDocumented(t *testing.T) {
	s := newServer(t)
	// The handler newServer built.
	r := s.do(http.MethodGet, api.DocPath, "", nil)
	if r.status != http.StatusOK {
		t.Fatalf("GET %s: %d", api.DocPath, r.status)
	}
	var doc struct {
		Paths map[string]map[string]any `json:"paths"`
	}
	if err := json.Unmarshal(r.body, &doc); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"get /pulp/api/v3/users/", "post /pulp/api/v3/users/", "patch /pulp/api/v3/users/{id}/", "delete /pulp/api/v3/users/{id}/",
		"get /pulp/api/v3/groups/", "post /pulp/api/v3/groups/{id}/users/", "delete /pulp/api/v3/groups/{id}/users/{user_id}/",
		"get /pulp/api/v3/me/",
		"get /api/v1/tokens/", "post /api/v1/tokens/", "delete /api/v1/tokens/{id}/",
		"get /pulp/api/v3/pulp_container/namespaces/", "post /pulp/api/v3/pulp_container/namespaces/",
		"get /pulp/api/v3/pulp_container/namespaces/{id}/",
		"post /pulp/api/v3/pulp_container/namespaces/{id}/add_role/", "post /pulp/api/v3/pulp_container/namespaces/{id}/remove_role/",
		"get /pulp/api/v3/pulp_container/namespaces/{id}/list_roles/", "get /pulp/api/v3/pulp_container/namespaces/{id}/my_permissions/",
		"get /pulp/api/v3/pulp_container/namespaces/{id}/owners/", "post /pulp/api/v3/pulp_container/namespaces/{id}/owners/",
		"delete /pulp/api/v3/pulp_container/namespaces/{id}/owners/{group}/",
		"patch /pulp/api/v3/distributions/container/container/{id}/",
	}
	for _, w := range want {
		method, path, _ := strings.Cut(w, " ")
		if _, ok := doc.Paths[path][method]; !ok {
			t.Errorf("the served document lacks %s", w)
		}
	}
	if !s.srv.Doc().Has(http.MethodPost, "/pulp/api/v3/pulp_container/namespaces/:id/add_role/") {
		t.Error("Doc().Has misses add_role")
	}
}

// TestAssembledRoutesUndocumented builds the handler as Serve does and
// finds no route of the API's prefixes missing from the document.
func TestAssembledRoutesUndocumented(t *testing.T) {
	s := newServer(t)
	tb, err := s.app.openTasks(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer tb.close()
	ts, err := api.NewTaskService(s.app.DB, tb.dispatcher, tb.enqueuer)
	if err != nil {
		t.Fatal(err)
	}
	e, srv, err := s.app.Handler(ts, api.Checks{})
	if err != nil {
		t.Fatal(err)
	}
	if missing := api.Undocumented(e, srv.Doc()); len(missing) > 0 {
		t.Fatalf("routes missing from the OpenAPI document:\n  %s", strings.Join(missing, "\n  "))
	}
	if n := len(srv.Doc().Operations()); n < 50 {
		t.Fatalf("only %d operations documented", n)
	}
}

// TestCoreWritesAndPrivacy: the core's generic writes are for superusers;
// a namespace's owner makes an image private through the distribution, and
// /v2/ applies it at once in this process; others may not.
func TestCoreWritesAndPrivacy(t *testing.T) {
	s := newServer(t)
	admin := basic("admin", adminPassword)
	for _, u := range []string{"olive", "nora"} {
		s.want(s.do(http.MethodPost, "/pulp/api/v3/users/", admin, map[string]any{"username": u, "password": u + "-password-1"}), 201)
	}
	olive, nora := basic("olive", "olive-password-1"), basic("nora", "nora-password-1")

	repos := api.TypedListHref(api.Repositories, "container.container")
	s.want(s.do(http.MethodPost, repos, "", map[string]any{"name": "r1"}), 401)
	s.want(s.do(http.MethodPost, repos, olive, map[string]any{"name": "r1"}), 403)
	s.want(s.do(http.MethodPost, repos, admin, map[string]any{"name": "r1"}), 201)

	// olive pushes olive/app: she created the namespace, she owns it.
	s.push(olive, "olive/app", "1")
	s.want(s.do(http.MethodGet, "/v2/olive/app/manifests/1", "", nil), 200)
	var dists struct {
		Results []struct {
			Href      string `json:"pulp_href"`
			Private   bool   `json:"private"`
			Namespace string `json:"namespace"`
		} `json:"results"`
	}
	s.json(s.want(s.do(http.MethodGet, api.TypedListHref(api.Distributions, "container.container")+"?base_path=olive/app", "", nil), 200), &dists)
	if len(dists.Results) != 1 || !strings.HasPrefix(dists.Results[0].Namespace, "/pulp/api/v3/pulp_container/namespaces/") {
		t.Fatalf("distribution list %+v", dists)
	}
	href := dists.Results[0].Href
	s.want(s.do(http.MethodPatch, href, nora, map[string]any{"private": true}), 403)
	s.want(s.do(http.MethodPatch, href, "", map[string]any{"private": true}), 401)
	r := s.want(s.do(http.MethodPatch, href, olive, map[string]any{"private": true}), 200)
	if !strings.Contains(string(r.body), `"private":true`) {
		t.Fatalf("patched %s", r.body)
	}
	// At once: the caches of this process were dropped.
	s.want(s.do(http.MethodGet, "/v2/olive/app/manifests/1", "", nil), 401)
	s.want(s.do(http.MethodGet, "/v2/olive/app/manifests/1", nora, nil), 403)
	s.want(s.do(http.MethodGet, "/v2/olive/app/manifests/1", olive, nil), 200)
	s.want(s.do(http.MethodPatch, href, olive, map[string]any{"base_path": "elsewhere/app"}), 400)
	// Nor may she have her image serve another namespace's repository.
	s.push(nora, "nora/secret", "1")
	var repoList struct {
		Results []struct {
			Href string `json:"pulp_href"`
		} `json:"results"`
	}
	s.json(s.want(s.do(http.MethodGet, repos+"?name=nora/secret", admin, nil), 200), &repoList)
	if len(repoList.Results) != 1 {
		t.Fatalf("repositories %+v", repoList)
	}
	s.want(s.do(http.MethodPatch, href, olive, map[string]any{"repository": repoList.Results[0].Href}), 400)
	s.want(s.do(http.MethodDelete, href, olive, nil), 403)
	s.want(s.do(http.MethodPatch, href, admin, map[string]any{"private": false}), 200)
	s.want(s.do(http.MethodGet, "/v2/olive/app/manifests/1", "", nil), 200)

	// Tasks and workers: reading is open, cancelling is not.
	s.want(s.do(http.MethodPatch, "/pulp/api/v3/tasks/00000000-0000-0000-0000-000000000000/", olive, map[string]any{"state": "canceled"}), 403)
}

type reply struct {
	status int
	body   []byte
}

func basic(user, pass string) string {
	r, _ := http.NewRequest(http.MethodGet, "/", nil)
	r.SetBasicAuth(user, pass)
	return r.Header.Get("Authorization")
}

func (s *server) do(method, path, authz string, body any, header ...string) reply {
	s.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	default:
		raw, _ := json.Marshal(b)
		rd = bytes.NewReader(raw)
		header = append(header, "Content-Type", "application/json")
	}
	req, err := http.NewRequest(method, s.url+path, rd)
	if err != nil {
		s.t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return reply{status: resp.StatusCode, body: raw}
}

func (s *server) want(r reply, status ...int) reply {
	s.t.Helper()
	if !slices.Contains(status, r.status) {
		s.t.Fatalf("status %d, want %v: %s", r.status, status, r.body)
	}
	return r
}

func (s *server) json(r reply, v any) {
	s.t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		s.t.Fatalf("decode %s: %v", r.body, err)
	}
}

// push uploads a config blob and an image manifest without layers.
func (s *server) push(authz, name, tag string) {
	s.t.Helper()
	cfg := []byte(fmt.Sprintf(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"comment":%q}`, name))
	dgst := fmt.Sprintf("sha256:%x", sha256.Sum256(cfg))
	s.want(s.do(http.MethodPost, "/v2/"+name+"/blobs/uploads/?digest="+dgst, authz, cfg, "Content-Type", "application/octet-stream"), 201)
	manifest := fmt.Sprintf(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",`+
		`"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":%q,"size":%d},"layers":[]}`, dgst, len(cfg))
	s.want(s.do(http.MethodPut, "/v2/"+name+"/manifests/"+tag, authz, []byte(manifest), "Content-Type", "application/vnd.oci.image.manifest.v1+json"), 201)
}
