package container_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/labstack/echo/v4"
	"github.com/opencontainers/go-digest"
	"gorm.io/gorm"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/api/apitest"
	"github.com/berth-dev/berth/core"
	"github.com/berth-dev/berth/internal/testdb"
	"github.com/berth-dev/berth/plugins/container"
)

// fakePerms lets every /v2/ request in as the X-Test-User header says, and
// answers the REST questions from a fixed table: roles[user][namespace] is
// "owner" or "consumer"; "root" is a superuser; "maker" may create
// namespaces.
type fakePerms struct {
	roles map[string]map[string]string
}

type callerKey struct{}

// callerFromHeader is the REST middleware that puts X-Test-User into the
// request's context, where fakePerms.Caller finds it.
func callerFromHeader(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		who := testUser(c)
		c.SetRequest(c.Request().WithContext(context.WithValue(c.Request().Context(), callerKey{}, who)))
		return next(c)
	}
}

func (f fakePerms) Authorize(c echo.Context, _ container.Access) (container.Identity, error) {
	return testUser(c), nil
}

func (f fakePerms) Caller(ctx context.Context) container.Identity {
	who, _ := ctx.Value(callerKey{}).(container.Identity)
	return who
}

func (f fakePerms) Can(_ context.Context, who container.Identity, act container.Action, ns container.NamespaceStatus) (bool, error) {
	switch {
	case who.Username == "root":
		return true, nil
	case act == container.ActionCreateNamespace:
		return who.Username == "maker", nil
	case act == container.ActionManageRoles:
		return f.roles[who.Username][ns.Name] == "owner", nil
	}
	return f.roles[who.Username][ns.Name] != "", nil
}

func (f fakePerms) Readable(_ context.Context, who container.Identity) ([]string, bool, error) {
	if who.Username == "root" {
		return nil, true, nil
	}
	var names []string
	for ns := range f.roles[who.Username] {
		names = append(names, ns)
	}
	return names, false, nil
}

// restEnv is a registry whose plugin also serves its REST routes.
type restEnv struct {
	*env
	api  *apitest.Env
	mu   sync.Mutex
	made []string // "namespace by user" told to the namespace hook
}

func eachREST(t *testing.T, fn func(t *testing.T, e *restEnv)) {
	testdb.Each(t, sets, func(t *testing.T, g *gorm.DB) {
		perms := fakePerms{roles: map[string]map[string]string{
			"ann": {"pub": "owner", "sec": "owner"},
			"bob": {"sec": "consumer"},
		}}
		re := &restEnv{}
		re.env = newEnv(t, g, t.TempDir(), container.WithAuthorizer(perms),
			container.WithNamespaceHook(func(_ context.Context, ns string, who container.Identity) error {
				re.mu.Lock()
				defer re.mu.Unlock()
				re.made = append(re.made, ns+" by "+who.Username)
				return nil
			}))
		re.api = apitest.New(t, g, apitest.Options{Plugins: []core.Plugin{re.plugin},
			Middleware: []echo.MiddlewareFunc{callerFromHeader}})
		fn(t, re)
	})
}

// call sends a REST request as user ("" for anonymous).
func (e *restEnv) call(method, path, user string, body any) resp {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		raw, _ := json.Marshal(body)
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, e.api.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if user != "" {
		req.Header.Set("X-Test-User", user)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	return resp{status: res.StatusCode, header: res.Header, body: raw}
}

func (e *restEnv) want(r resp, status int) resp {
	e.t.Helper()
	if r.status != status {
		e.t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
	}
	return r
}

type namespacePage struct {
	Count   int                           `json:"count"`
	Results []container.NamespaceResponse `json:"results"`
}

func (e *restEnv) namespaces(user, query string) []string {
	e.t.Helper()
	var p namespacePage
	if err := json.Unmarshal(e.want(e.call(http.MethodGet, container.NamespacesPath+query, user, nil), 200).body, &p); err != nil {
		e.t.Fatal(err)
	}
	var names []string
	for _, n := range p.Results {
		names = append(names, n.Name)
	}
	if p.Count < len(names) {
		e.t.Fatalf("count %d < %d results", p.Count, len(names))
	}
	return names
}

// pushAs pushes an image as user.
func (e *restEnv) pushAs(user, name, ref string, img image) {
	e.t.Helper()
	for _, b := range append([][]byte{img.config}, img.layers...) {
		r := e.do(http.MethodPost, "/v2/"+name+"/blobs/uploads/?digest="+digest.FromBytes(b).String(), b, "X-Test-User", user)
		expect(e.t, "push blob", r, http.StatusCreated, "")
	}
	expect(e.t, "push "+name, e.do(http.MethodPut, "/v2/"+name+"/manifests/"+ref, img.manifest, "Content-Type", img.mt, "X-Test-User", user), 201, "")
}

// distribution returns the href of the container distribution at name.
func (e *restEnv) distribution(name string) string {
	e.t.Helper()
	var p struct {
		Results []struct {
			Href      string `json:"pulp_href"`
			Namespace string `json:"namespace"`
		} `json:"results"`
	}
	raw := e.want(e.call(http.MethodGet, api.TypedListHref(api.Distributions, container.TypeDistribution)+"?base_path="+name, "", nil), 200).body
	if err := json.Unmarshal(raw, &p); err != nil || len(p.Results) != 1 {
		e.t.Fatalf("distribution %s: %v %s", name, err, raw)
	}
	if !strings.HasPrefix(p.Results[0].Namespace, container.NamespacesPath) {
		e.t.Fatalf("distribution %s shows no namespace: %s", name, raw)
	}
	return p.Results[0].Href
}

// TestNamespaceREST: namespaces are listed and shown to those who may see
// them; registry admins create them, owning them for good; owners make
// their images private.
func TestNamespaceREST(t *testing.T) {
	eachREST(t, func(t *testing.T, e *restEnv) {
		e.pushAs("ann", "pub/app", "1", newImage(1, "amd64"))
		e.pushAs("ann", "sec/app", "1", newImage(1, "amd64"))

		// Only the owner makes an image private, and /v2/ applies it at once.
		sec := e.distribution("sec/app")
		expect(t, "public pull", e.do(http.MethodGet, "/v2/sec/app/manifests/1", nil), 200, "")
		e.want(e.call(http.MethodPatch, sec, "", map[string]any{"private": true}), 401)
		e.want(e.call(http.MethodPatch, sec, "bob", map[string]any{"private": true}), 403)
		e.want(e.call(http.MethodPatch, sec, "ann", map[string]any{"private": true}), 200)
		st, err := e.plugin.ResolveNamespace(ctx, "sec/app")
		if err != nil || !st.Private {
			t.Fatalf("after the change, sec/app resolves as %+v (%v)", st, err)
		}
		e.want(e.call(http.MethodPatch, sec, "ann", map[string]any{"base_path": "pub/moved"}), 400)
		e.want(e.call(http.MethodPost, api.TypedListHref(api.Distributions, container.TypeDistribution), "root",
			map[string]any{"name": "ghost", "base_path": "ghost/app"}), 400)

		// Created through the API: empty, owned by its creator.
		e.want(e.call(http.MethodPost, container.NamespacesPath, "", map[string]any{"name": "made"}), 401)
		e.want(e.call(http.MethodPost, container.NamespacesPath, "ann", map[string]any{"name": "made"}), 403)
		e.want(e.call(http.MethodPost, container.NamespacesPath, "maker", map[string]any{"name": "a/b"}), 400)
		e.want(e.call(http.MethodPost, container.NamespacesPath, "maker", map[string]any{"name": "Made"}), 400)
		e.want(e.call(http.MethodPost, container.NamespacesPath, "maker", map[string]any{"nom": "made"}), 400)
		var made container.NamespaceResponse
		if err := json.Unmarshal(e.want(e.call(http.MethodPost, container.NamespacesPath, "maker", map[string]any{"name": "made"}), 201).body, &made); err != nil {
			t.Fatal(err)
		}
		if made.Name != "made" || made.CreatedBy != "maker" || made.Images != 0 || !made.Private || !strings.HasPrefix(made.Href, container.NamespacesPath) {
			t.Fatalf("created %+v", made)
		}
		e.want(e.call(http.MethodPost, container.NamespacesPath, "root", map[string]any{"name": "made"}), 409)
		e.want(e.call(http.MethodPost, container.NamespacesPath, "root", map[string]any{"name": "pub"}), 409)
		e.mu.Lock()
		if !slices.Contains(e.made, "made by maker") || !slices.Contains(e.made, "pub by ann") {
			t.Errorf("namespace hook told %v", e.made)
		}
		e.mu.Unlock()

		// Lists: public namespaces, those with a role, all for superusers.
		for user, want := range map[string][]string{
			"": {"pub"}, "carl": {"pub"}, "bob": {"pub", "sec"}, "ann": {"pub", "sec"}, "root": {"made", "pub", "sec"},
		} {
			if got := e.namespaces(user, ""); !slices.Equal(got, want) {
				t.Errorf("%q sees %v, want %v", user, got, want)
			}
		}
		if got := e.namespaces("root", "?name__startswith=s&ordering=-name"); !slices.Equal(got, []string{"sec"}) {
			t.Errorf("filtered: %v", got)
		}
		if got := e.namespaces("root", "?ordering=-name&limit=2"); !slices.Equal(got, []string{"sec", "pub"}) {
			t.Errorf("ordered: %v", got)
		}
		e.want(e.call(http.MethodGet, container.NamespacesPath+"?colour=red", "root", nil), 400)

		// Detail: a namespace one may not see is not found.
		var secNS container.NamespaceResponse
		var p namespacePage
		if err := json.Unmarshal(e.want(e.call(http.MethodGet, container.NamespacesPath+"?name=sec", "root", nil), 200).body, &p); err != nil || len(p.Results) != 1 {
			t.Fatalf("sec: %v %+v", err, p)
		}
		secNS = p.Results[0]
		e.want(e.call(http.MethodGet, secNS.Href, "", nil), 404)
		e.want(e.call(http.MethodGet, secNS.Href, "carl", nil), 404)
		var got container.NamespaceResponse
		if err := json.Unmarshal(e.want(e.call(http.MethodGet, secNS.Href, "bob", nil), 200).body, &got); err != nil {
			t.Fatal(err)
		}
		if got.Name != "sec" || !got.Private || got.Images != 1 || got.CreatedBy != "ann" {
			t.Fatalf("detail %+v", got)
		}
		e.want(e.call(http.MethodGet, container.NamespacesPath+"nope/", "root", nil), 404)
		id := strings.TrimSuffix(strings.TrimPrefix(secNS.Href, container.NamespacesPath), "/")
		if _, err := e.plugin.VisibleNamespace(ctx, id); !strings.Contains(errString(err), "not found") {
			t.Fatalf("VisibleNamespace without a caller: %v", err)
		}
	})
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// TestCatalogHidesPrivateImages: /v2/_catalog lists a private image only to
// those who may pull it, and pages through what is left.
func TestCatalogHidesPrivateImages(t *testing.T) {
	eachREST(t, func(t *testing.T, e *restEnv) {
		for _, name := range []string{"pub/a", "pub/b", "sec/a", "sec/b", "sec/c", "pub/c"} {
			e.pushAs("ann", name, "1", newImage(1, "amd64"))
		}
		for _, name := range []string{"sec/a", "sec/b", "sec/c"} {
			e.want(e.call(http.MethodPatch, e.distribution(name), "ann", map[string]any{"private": true}), 200)
		}
		public := []string{"pub/a", "pub/b", "pub/c"}
		all := []string{"pub/a", "pub/b", "pub/c", "sec/a", "sec/b", "sec/c"}
		for user, want := range map[string][]string{"": public, "carl": public, "bob": all, "root": all} {
			for _, n := range []string{"", "?n=2", "?n=1"} {
				var got []string
				for _, page := range pagesAs(t, e.env, user, "/v2/_catalog"+n) {
					got = append(got, page...)
				}
				if !slices.Equal(got, want) {
					t.Errorf("%q, catalog%s: %v, want %v", user, n, got, want)
				}
			}
		}
	})
}

// pagesAs follows a catalog's Link headers as user.
func pagesAs(t *testing.T, e *env, user, path string) [][]string {
	t.Helper()
	var out [][]string
	for path != "" && len(out) < 100 {
		r := e.do(http.MethodGet, path, nil, "X-Test-User", user)
		expect(t, path, r, 200, "")
		var body struct {
			Repositories []string `json:"repositories"`
		}
		if err := json.Unmarshal(r.body, &body); err != nil || body.Repositories == nil {
			t.Fatalf("%s: %v %s", path, err, r.body)
		}
		out = append(out, body.Repositories)
		path = ""
		if m := linkRE.FindStringSubmatch(r.header.Get("Link")); m != nil {
			path = m[1]
		}
	}
	return out
}
