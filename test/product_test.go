package test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/core/db"
)

// prodEnv is a berth serve (with its workers) for the product flows, with
// crane logged in as the admin.
type prodEnv struct {
	*prodSite
	dir string
	// pod is podman's directory: short, as podman wants its run root.
	pod string
}

func newProdEnv(t *testing.T, dialect db.Dialect, withRedis bool, extra ...string) *prodEnv {
	t.Helper()
	env := NewEnv(t, dialect, withRedis)
	// The default push retention (BERTH_PUSH_RETAIN_VERSIONS=1): the
	// activity keeps every change all the same.
	srv := env.Serve(t, extra...)
	if withRedis {
		env.Worker(t, "product-worker")
	}
	e := &prodEnv{prodSite: newProdSite(t, srv), dir: t.TempDir()}
	pod, err := os.MkdirTemp("", "pd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(pod) })
	e.pod = pod
	docker := filepath.Join(e.dir, "docker")
	if err := os.MkdirAll(docker, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DOCKER_CONFIG", docker)
	t.Setenv("REGISTRY_AUTH_FILE", filepath.Join(e.dir, "auth.json"))
	run(t, requireTool(t, "crane"), "auth", "login", srv.Addr, "-u", "admin", "-p", "admin-e2e-password")
	return e
}

func (e *prodEnv) ref(name string) string { return e.srv.Addr + "/" + name }

// page is a list answer.
type prodPage[T any] struct {
	Count   int64 `json:"count"`
	Results []T   `json:"results"`
}

type prodImage struct {
	Digest    string   `json:"digest"`
	Tags      []string `json:"tags"`
	IsIndex   bool     `json:"is_index"`
	OS        string   `json:"os"`
	Arch      string   `json:"architecture"`
	Platforms []struct {
		Digest string `json:"digest"`
		Arch   string `json:"architecture"`
	} `json:"platforms"`
}

type prodChange struct {
	Kind   string `json:"kind"`
	Tag    string `json:"tag"`
	Digest string `json:"digest"`
}

type prodActivity struct {
	Version   int          `json:"version"`
	CreatedBy string       `json:"created_by"`
	Added     []prodChange `json:"added"`
	Removed   []prodChange `json:"removed"`
}

func changes(cs []prodChange) string {
	var out []string
	for _, c := range cs {
		if c.Kind == "tag" {
			out = append(out, "tag "+c.Tag)
		} else {
			out = append(out, "manifest "+shortHex(c.Digest))
		}
	}
	return strings.Join(out, ",")
}

func shortHex(d string) string {
	if len(d) > 19 {
		return d[7:19]
	}
	return d
}

// TestProductGalaxyFlow is Galaxy NG's execution-environment flow: push
// with podman, the EE appears with an editable readme, images with tags
// and layers, tag/untag/delete as tasks, and the activity lists each
// change.
func TestProductGalaxyFlow(t *testing.T) {
	podman := requireTool(t, "podman")
	crane := requireTool(t, "crane")
	e := newProdEnv(t, db.SQLite, false, "BERTH_CONTROLLER_URLS=https://controller.example.com,https://awx.example.org/")
	auth := filepath.Join(e.dir, "auth.json")
	p := func(args ...string) string { return run(t, podman, podmanArgs(e.pod, args...)...) }
	seed := e.ref("seed/busybox:1")
	cranePush(t, busyboxLayer(t, e.dir, "galaxy"), seed)
	p("login", "--tls-verify=false", "--authfile", auth, "-u", "admin", "-p", "admin-e2e-password", e.srv.Addr)
	p("pull", "--tls-verify=false", "--authfile", auth, seed)
	p("tag", seed, e.ref("team/ee:1.0"))
	p("push", "--tls-verify=false", "--authfile", auth, e.ref("team/ee:1.0"))
	d1 := strings.TrimSpace(run(t, crane, "digest", "--insecure", e.ref("team/ee:1.0")))
	// A second image (another layer) with a second tag.
	d2 := cranePush(t, smallLayer(t, e.dir, "galaxy-2"), e.ref("team/ee:2.0"))

	var list prodPage[struct {
		Name   string `json:"name"`
		Remote any    `json:"remote"`
		Pull   *struct {
			ByTag string `json:"by_tag"`
		} `json:"pull"`
	}]
	e.call(prodAdmin, http.MethodGet, "/api/v1/execution-environments/?name=team/ee", nil, http.StatusOK, &list)
	if list.Count != 1 || list.Results[0].Remote != nil || list.Results[0].Pull == nil {
		t.Fatalf("EE list = %+v", list)
	}
	var local prodPage[any]
	e.call(prodAdmin, http.MethodGet, "/api/v1/execution-environments/?remote=false", nil, http.StatusOK, &local)
	if local.Count != 2 { // team/ee and seed/busybox
		t.Fatalf("local EEs = %d", local.Count)
	}

	// Detail: pull strings with the public host, and Use in Controller.
	var detail struct {
		Namespace string `json:"namespace"`
		Pull      struct {
			Tag      string `json:"tag"`
			ByTag    string `json:"by_tag"`
			ByDigest string `json:"by_digest"`
		} `json:"pull"`
		UseInController []struct {
			URL string `json:"url"`
		} `json:"use_in_controller"`
	}
	e.call(prodAdmin, http.MethodGet, "/api/v1/execution-environments/team/ee/", nil, http.StatusOK, &detail)
	if detail.Namespace != "team" || detail.Pull.ByDigest != e.ref("team/ee@"+detail.Pull.ByDigest[strings.Index(detail.Pull.ByDigest, "@")+1:]) ||
		!strings.HasPrefix(detail.Pull.ByTag, e.ref("team/ee:")) {
		t.Fatalf("detail = %+v", detail)
	}
	if len(detail.UseInController) != 2 || !strings.HasPrefix(detail.UseInController[1].URL, "https://awx.example.org/#/execution_environments/add?image=") {
		t.Fatalf("use in controller = %+v", detail.UseInController)
	}
	// What the pull string says pulls.
	p("pull", "--tls-verify=false", "--authfile", auth, detail.Pull.ByTag)

	// Readme: edited, returned raw.
	readme := "/api/v1/execution-environments/team/ee/_content/readme/"
	e.call(prodAdmin, http.MethodPut, readme, map[string]string{"text": "# Team EE\n\nUse `ansible-navigator`.\n"}, http.StatusOK, nil)
	var rv struct {
		Text      string `json:"text"`
		UpdatedBy string `json:"updated_by"`
	}
	e.call(prodAdmin, http.MethodGet, readme, nil, http.StatusOK, &rv)
	if rv.Text != "# Team EE\n\nUse `ansible-navigator`.\n" || rv.UpdatedBy != "admin" {
		t.Fatalf("readme = %+v", rv)
	}

	// Images with their tags, and the layers view with the build history.
	var imgs prodPage[prodImage]
	e.call(prodAdmin, http.MethodGet, "/api/v1/execution-environments/team/ee/_content/images/", nil, http.StatusOK, &imgs)
	if imgs.Count != 2 || imgs.Results[0].Digest != d2 || strings.Join(imgs.Results[1].Tags, ",") != "1.0" || imgs.Results[1].Digest != d1 {
		t.Fatalf("images = %+v", imgs)
	}
	var layers struct {
		Layers []struct {
			Digest string `json:"digest"`
			Size   int64  `json:"size"`
		} `json:"layers"`
		Config *struct {
			History []struct {
				CreatedBy  string `json:"created_by"`
				EmptyLayer bool   `json:"empty_layer"`
			} `json:"history"`
		} `json:"config"`
	}
	e.call(prodAdmin, http.MethodGet, "/api/v1/execution-environments/team/ee/_content/images/"+d1+"/", nil, http.StatusOK, &layers)
	if len(layers.Layers) != 1 || layers.Layers[0].Size == 0 || layers.Config == nil {
		t.Fatalf("layers view = %+v", layers)
	}

	// Tag, move, untag and delete, each a task making a version.
	tags := "/api/v1/execution-environments/team/ee/_content/tags/"
	e.done(e.call(prodAdmin, http.MethodPost, tags, map[string]string{"tag": "stable", "digest": d1}, http.StatusAccepted, nil))
	eventually(t, "tag stable pulls", func() error {
		if got, err := runErr(crane, "digest", "--insecure", e.ref("team/ee:stable")); err != nil || strings.TrimSpace(got) != d1 {
			return fmt.Errorf("crane digest: %s %v", got, err)
		}
		return nil
	})
	e.done(e.call(prodAdmin, http.MethodPut, tags+"stable/", map[string]string{"digest": d2}, http.StatusAccepted, nil))
	e.call(prodAdmin, http.MethodGet, "/api/v1/execution-environments/team/ee/_content/images/?digest="+d1, nil, http.StatusOK, &imgs)
	if strings.Join(imgs.Results[0].Tags, ",") != "1.0" {
		t.Fatalf("after moving stable away, %s keeps %v", d1, imgs.Results[0].Tags)
	}
	e.done(e.call(prodAdmin, http.MethodDelete, tags+"2.0/", nil, http.StatusAccepted, nil))
	e.done(e.call(prodAdmin, http.MethodDelete, "/api/v1/execution-environments/team/ee/_content/images/"+d1+"/", nil, http.StatusAccepted, nil))
	eventually(t, "deleted image gone from /v2/", func() error {
		if out, err := runErr(crane, "manifest", "--insecure", e.ref("team/ee:1.0")); err == nil {
			return fmt.Errorf("team/ee:1.0 still pulls: %.100s", out)
		}
		return nil
	})

	var act prodPage[prodActivity]
	e.call(prodAdmin, http.MethodGet, "/api/v1/execution-environments/team/ee/_content/activity/", nil, http.StatusOK, &act)
	var got []string
	for _, a := range act.Results {
		if a.CreatedBy != "admin" {
			t.Errorf("version %d made by %q, want admin", a.Version, a.CreatedBy)
		}
		got = append(got, fmt.Sprintf("+[%s] -[%s]", changes(a.Added), changes(a.Removed)))
	}
	want := []string{
		"+[] -[manifest " + shortHex(d1) + ",tag 1.0]",
		"+[] -[tag 2.0]",
		"+[tag stable] -[tag stable]",
		"+[tag stable] -[]",
		"+[manifest " + shortHex(d2) + ",tag 2.0] -[]",
		"+[manifest " + shortHex(d1) + ",tag 1.0] -[]",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("activity:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// A multi-arch index lists its platforms.
	a := cranePush(t, smallLayer(t, e.dir, "amd64"), e.ref("multi/parts:amd64"))
	b := cranePush(t, smallLayer(t, e.dir, "arm64"), e.ref("multi/parts:arm64"))
	idx := pushManifestList(t, &registryEnv{srv: e.srv}, e.ref("multi/app:1"), map[string]string{"amd64": e.ref("multi/parts@" + a), "arm64": e.ref("multi/parts@" + b)})
	e.call(prodAdmin, http.MethodGet, "/api/v1/execution-environments/multi/app/_content/images/", nil, http.StatusOK, &imgs)
	if imgs.Count != 1 || imgs.Results[0].Digest != idx || !imgs.Results[0].IsIndex || len(imgs.Results[0].Platforms) != 2 ||
		imgs.Results[0].Platforms[1].Arch != "arm64" {
		t.Fatalf("index images = %+v", imgs)
	}
	e.call(prodAdmin, http.MethodGet, "/api/v1/execution-environments/multi/app/_content/images/"+imgs.Results[0].Platforms[0].Digest+"/", nil, http.StatusOK, &layers)
	if len(layers.Layers) != 1 {
		t.Fatalf("platform image layers = %+v", layers)
	}

	// Delete the whole EE: gone from the API and from /v2/.
	e.done(e.call(prodAdmin, http.MethodDelete, "/api/v1/execution-environments/team/ee/", nil, http.StatusAccepted, nil))
	e.call(prodAdmin, http.MethodGet, "/api/v1/execution-environments/team/ee/", nil, http.StatusNotFound, nil)
	eventually(t, "deleted EE gone from /v2/", func() error {
		if out, err := runErr(crane, "manifest", "--insecure", e.ref("team/ee:stable")); err == nil {
			return fmt.Errorf("still pulls: %.100s", out)
		}
		return nil
	})
}

// TestProductRescaleFlow is the Rescale HTC flow for scripts: a registry
// token, podman login with it, push, READY, list, delete, gone from /v2/.
// It runs on PostgreSQL with a separate worker process.
func TestProductRescaleFlow(t *testing.T) {
	podman := requireTool(t, "podman")
	crane := requireTool(t, "crane")
	e := newProdEnv(t, db.Postgres, true)
	var reg struct {
		Registry string `json:"registry"`
		Username string `json:"username"`
	}
	e.call(prodAdmin, http.MethodGet, "/api/v1/registry/", nil, http.StatusOK, &reg)
	if reg.Registry != e.srv.Addr || reg.Username != "admin" {
		t.Fatalf("registry = %+v", reg)
	}
	var tok struct {
		Token     string `json:"token"`
		Username  string `json:"username"`
		ExpiresAt string `json:"expires_at"`
	}
	e.call(prodAdmin, http.MethodPost, "/api/v1/registry/token/", map[string]any{}, http.StatusCreated, &tok)
	if tok.Token == "" || tok.ExpiresAt == "" {
		t.Fatalf("token = %+v", tok)
	}
	var repo struct {
		Created bool `json:"created"`
	}
	e.call(prodAdmin, http.MethodPost, "/api/v1/registry/repos/", map[string]string{"name": "project/solver"}, http.StatusCreated, &repo)
	e.call(prodAdmin, http.MethodPost, "/api/v1/registry/repos/", map[string]string{"name": "project/solver"}, http.StatusCreated, &repo)
	if repo.Created {
		t.Fatal("creating an existing repository says it created it")
	}

	// podman login with the token as the password, then push.
	authFile := filepath.Join(e.dir, "token-auth.json")
	p := func(args ...string) string { return run(t, podman, podmanArgs(e.pod, args...)...) }
	seed := e.ref("seed/solver:1")
	cranePush(t, busyboxLayer(t, e.dir, "rescale"), seed)
	p("login", "--tls-verify=false", "--authfile", authFile, "-u", tok.Username, "-p", tok.Token, reg.Registry)
	p("pull", "--tls-verify=false", "--authfile", authFile, seed)
	image := "project/solver:run-42"
	p("tag", seed, e.ref(image))
	p("push", "--tls-verify=false", "--authfile", authFile, e.ref(image))

	var st struct {
		Status string `json:"status"`
		Digest string `json:"digest"`
	}
	e.call(prodAdmin, http.MethodGet, "/api/v1/registry/images/"+image+"/", nil, http.StatusOK, &st)
	if st.Status != "READY" || st.Digest == "" {
		t.Fatalf("status = %+v", st)
	}
	e.call(prodAdmin, http.MethodGet, "/api/v1/registry/images/project/solver:nope/", nil, http.StatusNotFound, nil)
	var images []string
	e.call(prodAdmin, http.MethodGet, "/api/v1/registry/images/", nil, http.StatusOK, &images)
	if !strings.Contains(strings.Join(images, " "), image) {
		t.Fatalf("images = %v", images)
	}
	var repos []string
	e.call(prodAdmin, http.MethodGet, "/api/v1/registry/repos/", nil, http.StatusOK, &repos)
	if !strings.Contains(strings.Join(repos, " "), "project/solver") {
		t.Fatalf("repos = %v", repos)
	}

	// Renewal: a new token works too.
	var tok2 struct {
		Token string `json:"token"`
	}
	e.call(prodAdmin, http.MethodPost, "/api/v1/registry/token/", nil, http.StatusCreated, &tok2)
	if tok2.Token == tok.Token {
		t.Fatal("the renewed token is the old one")
	}
	run(t, crane, "manifest", "--insecure", e.ref(image))

	// Delete (a task on the worker): gone from /v2/ afterwards.
	e.done(e.call(prodAdmin, http.MethodDelete, "/api/v1/registry/images/"+image+"/", nil, http.StatusAccepted, nil))
	eventually(t, "deleted image gone from /v2/", func() error {
		if out, err := runErr(crane, "manifest", "--insecure", e.ref(image)); err == nil {
			return fmt.Errorf("still pulls: %.100s", out)
		}
		if out, err := runErr(crane, "manifest", "--insecure", e.ref("project/solver@"+st.Digest)); err == nil {
			return fmt.Errorf("still pulls by digest: %.100s", out)
		}
		return nil
	})
	e.call(prodAdmin, http.MethodGet, "/api/v1/registry/images/"+image+"/", nil, http.StatusNotFound, nil)
	e.call(prodAdmin, http.MethodGet, "/api/v1/registry/images/", nil, http.StatusOK, &images)
	if strings.Contains(strings.Join(images, " "), image) {
		t.Fatalf("deleted image still listed: %v", images)
	}
}

// TestProductPrimeHubFlow is PrimeHub's image catalog: entries from
// existing URLs, visible to their groups only; administrators manage it.
func TestProductPrimeHubFlow(t *testing.T) {
	e := newProdEnv(t, db.SQLite, false)
	admin := e.srv.API(t)
	var user struct {
		Href string `json:"pulp_href"`
		ID   string `json:"id"`
	}
	if st, raw := admin.Do(http.MethodPost, "/pulp/api/v3/users/", map[string]any{"username": "carol", "password": "carol-password-123"}, &user); st != http.StatusCreated {
		t.Fatalf("create user: %d %s", st, raw)
	}
	var group struct {
		Href string `json:"pulp_href"`
	}
	if st, raw := admin.Do(http.MethodPost, "/pulp/api/v3/groups/", map[string]any{"name": "research"}, &group); st != http.StatusCreated {
		t.Fatalf("create group: %d %s", st, raw)
	}
	if st, raw := admin.Do(http.MethodPost, group.Href+"users/", map[string]any{"username": "carol"}, nil); st != http.StatusCreated {
		t.Fatalf("add member: %d %s", st, raw)
	}
	if st, raw := admin.Do(http.MethodPost, "/pulp/api/v3/groups/", map[string]any{"name": "finance"}, nil); st != http.StatusCreated {
		t.Fatalf("create group: %d %s", st, raw)
	}
	carol := prodUser{"carol", "carol-password-123"}

	type entry struct {
		Name          string   `json:"name"`
		DisplayName   string   `json:"display_name"`
		URL           string   `json:"url"`
		GPUURL        string   `json:"gpu_url"`
		HasPullSecret bool     `json:"has_pull_secret"`
		Groups        []string `json:"groups"`
		Ready         bool     `json:"ready"`
		Building      bool     `json:"building"`
	}
	var en entry
	raw := e.call(prodAdmin, http.MethodPost, "/api/v1/catalog/", map[string]any{
		"display_name": "pytorch-2.3", "description": "PyTorch with CUDA", "type": "universal",
		"url": e.ref("ml/pytorch:2.3"), "gpu_url": e.ref("ml/pytorch:2.3-cuda"), "pull_secret": "robot:hunter2",
		"groups": []string{"research"},
	}, http.StatusCreated, &en)
	if en.Name != "pytorch-2-3" || en.GPUURL != e.ref("ml/pytorch:2.3-cuda") || !en.HasPullSecret || !en.Ready || en.Building || strings.Contains(string(raw), "hunter2") {
		t.Fatalf("entry = %s", raw)
	}
	e.call(prodAdmin, http.MethodPost, "/api/v1/catalog/", map[string]any{"display_name": "pytorch-2.3", "url": "docker.io/pytorch/pytorch:2.3.0", "global": true, "system": true}, http.StatusCreated, &en)
	if en.Name != "pytorch-2-3-2" {
		t.Fatalf("second entry's name = %q", en.Name)
	}
	e.call(prodAdmin, http.MethodPost, "/api/v1/catalog/", map[string]any{"display_name": "ledger", "url": "registry.example.com/fin/ledger:1", "groups": []string{"finance"}}, http.StatusCreated, nil)
	bad := e.call(prodAdmin, http.MethodPost, "/api/v1/catalog/", map[string]any{"display_name": "My_Image", "url": "a.example.com/x:1"}, http.StatusBadRequest, nil)
	if !strings.Contains(string(bad), "lowercase letters") {
		t.Fatalf("unclear display name error: %s", bad)
	}
	e.call(carol, http.MethodPost, "/api/v1/catalog/", map[string]any{"display_name": "mine", "url": "a.example.com/x:1"}, http.StatusForbidden, nil)

	var seen prodPage[entry]
	e.call(carol, http.MethodGet, "/api/v1/catalog/", nil, http.StatusOK, &seen)
	var names []string
	for _, r := range seen.Results {
		names = append(names, r.Name)
	}
	if strings.Join(names, ",") != "pytorch-2-3,pytorch-2-3-2" {
		t.Fatalf("carol sees %v", names)
	}
	e.call(carol, http.MethodGet, "/api/v1/catalog/ledger/", nil, http.StatusNotFound, nil)
	e.call(prodAdmin, http.MethodGet, "/api/v1/catalog/", nil, http.StatusOK, &seen)
	if seen.Count != 3 {
		t.Fatalf("admin sees %d entries", seen.Count)
	}
	e.call(prodAdmin, http.MethodPatch, "/api/v1/catalog/ledger/", map[string]any{"groups": []string{"finance", "research"}}, http.StatusOK, &en)
	e.call(carol, http.MethodGet, "/api/v1/catalog/ledger/", nil, http.StatusOK, nil)
	e.call(prodAdmin, http.MethodDelete, "/api/v1/catalog/ledger/", nil, http.StatusNoContent, nil)
	e.call(carol, http.MethodGet, "/api/v1/catalog/ledger/", nil, http.StatusNotFound, nil)
}

// TestProductBadInput sends bad input to every product endpoint and wants
// a clear 400, 404 or 409 (never a 500), with a message naming the problem.
func TestProductBadInput(t *testing.T) {
	e := newProdEnv(t, db.SQLite, false)
	d := cranePush(t, smallLayer(t, e.dir, "bad-input"), e.ref("team/app:1"))
	zero := "sha256:" + strings.Repeat("0", 64)
	ee := "/api/v1/execution-environments/team/app/"
	for _, c := range []struct {
		method, path string
		body         any
		want         int
		says         string
	}{
		{"GET", "/api/v1/execution-environments/?limit=0", nil, 400, "limit"},
		{"GET", "/api/v1/execution-environments/?remote=maybe", nil, 400, "true or false"},
		{"GET", "/api/v1/execution-environments/?color=red", nil, 400, "Unknown filter"},
		{"GET", "/api/v1/execution-environments/no/such/", nil, 404, "does not exist"},
		{"GET", "/api/v1/execution-environments/UPPER/", nil, 400, "name"},
		{"DELETE", "/api/v1/execution-environments/no/such/", nil, 404, "does not exist"},
		{"GET", "/api/v1/execution-environments/no/such/_content/readme/", nil, 404, "does not exist"},
		{"PUT", ee + "_content/readme/", map[string]any{"txt": "x"}, 400, "text"},
		{"PUT", ee + "_content/readme/", map[string]any{"text": 1}, 400, "text"},
		{"PUT", ee + "_content/readme/", strings.Repeat("#", (1<<20)+1), 400, "limit"},
		{"GET", ee + "_content/images/?tag=-bad", nil, 400, "tag"},
		{"GET", ee + "_content/images/?digest=md5:1", nil, 400, "digest"},
		{"GET", ee + "_content/images/not-a-digest/", nil, 400, "digest"},
		{"GET", ee + "_content/images/" + zero + "/", nil, 404, "not"},
		{"DELETE", ee + "_content/images/" + zero + "/", nil, 404, "not"},
		{"GET", ee + "_content/tags/?limit=x", nil, 400, "limit"},
		{"POST", ee + "_content/tags/", map[string]any{"tag": "v2"}, 400, "digest"},
		{"POST", ee + "_content/tags/", map[string]any{"tag": "v 2", "digest": d}, 400, "tag"},
		{"POST", ee + "_content/tags/", map[string]any{"tag": "v2", "digest": zero}, 404, "not"},
		{"POST", ee + "_content/tags/", map[string]any{"tag": "v2", "digest": d, "extra": 1}, 400, "Unexpected"},
		{"PUT", ee + "_content/tags/v3/", map[string]any{"digest": "sha256:xyz"}, 400, "digest"},
		{"DELETE", ee + "_content/tags/nope/", nil, 404, "not"},
		{"GET", ee + "_content/activity/?offset=-1", nil, 400, "offset"},
		{"GET", ee + "_content/controllers/?tag=1&digest=" + d, nil, 400, "not both"},
		{"GET", ee + "_content/controllers/?tag=nope", nil, 404, "not"},
		{"POST", "/api/v1/registry/token/", map[string]any{"expires_in": "soon"}, 400, "expires_in"},
		{"POST", "/api/v1/registry/token/", map[string]any{"expires_in": 99999999}, 400, "expires_in"},
		{"POST", "/api/v1/registry/repos/", map[string]any{"name": "Bad Name"}, 400, "name"},
		{"POST", "/api/v1/registry/repos/", "not json", 415, "media type"},
		{"GET", "/api/v1/registry/images/?colour=red", nil, 400, "repo"},
		{"GET", "/api/v1/registry/images/team/app/", nil, 400, "repo:tag"},
		{"GET", "/api/v1/registry/images/team/app:nope/", nil, 404, "not found"},
		{"GET", "/api/v1/registry/images/team/app@sha256:1/", nil, 400, "digest"},
		{"DELETE", "/api/v1/registry/images/team/app:nope/", nil, 404, "not found"},
		{"DELETE", "/api/v1/registry/images/no/such:1/", nil, 404, "not"},
		{"POST", "/api/v1/catalog/", map[string]any{"display_name": "x", "url": "a.example.com/x:1", "type": "tpu"}, 400, "cpu, gpu or universal"},
		{"POST", "/api/v1/catalog/", map[string]any{"url": "a.example.com/x:1"}, 400, "display_name"},
		{"GET", "/api/v1/catalog/nope/", nil, 404, "not found"},
		{"PATCH", "/api/v1/catalog/nope/", map[string]any{"system": true}, 404, "not found"},
		{"DELETE", "/api/v1/catalog/nope/", nil, 404, "not found"},
		{"GET", "/api/v1/catalog/?type=tpu&bogus=1", nil, 400, "bogus"},
	} {
		t.Run(c.method+" "+c.path, func(t *testing.T) {
			raw := e.call(prodAdmin, c.method, c.path, c.body, c.want, nil)
			if !strings.Contains(strings.ToLower(string(raw)), strings.ToLower(c.says)) {
				t.Errorf("answer does not say %q: %s", c.says, truncateBody(raw))
			}
		})
	}
	// A tag that names another image already: 409, move it with PUT.
	d2 := cranePush(t, smallLayer(t, e.dir, "bad-input-2"), e.ref("team/app:2"))
	raw := e.call(prodAdmin, http.MethodPost, ee+"_content/tags/", map[string]any{"tag": "1", "digest": d2}, http.StatusConflict, nil)
	if !strings.Contains(string(raw), "PUT") {
		t.Errorf("conflict does not say how to move the tag: %s", raw)
	}
	// A task that fails leaves nothing half-done: the image is deleted
	// first (tasks on one image run in order), so a tag of it dispatched
	// after either is refused at once (404) or fails without a version.
	var before prodPage[prodActivity]
	e.call(prodAdmin, http.MethodGet, ee+"_content/activity/", nil, http.StatusOK, &before)
	del := e.call(prodAdmin, http.MethodDelete, ee+"_content/images/"+d+"/", nil, http.StatusAccepted, nil)
	status, tagged := e.do(prodAdmin, http.MethodPost, ee+"_content/tags/", map[string]any{"tag": "ghost", "digest": d})
	e.done(del)
	switch status {
	case http.StatusAccepted:
		if task := e.wait(tagged); task["state"] != "failed" {
			t.Fatalf("tagging a deleted image: task %v", task["state"])
		}
	case http.StatusNotFound:
	default:
		t.Fatalf("tagging an image being deleted: %d %s", status, tagged)
	}
	var after prodPage[prodActivity]
	e.call(prodAdmin, http.MethodGet, ee+"_content/activity/", nil, http.StatusOK, &after)
	// One new version (the delete's), which removed and added nothing else.
	if after.Results[0].Version != before.Results[0].Version+1 || changes(after.Results[0].Added) != "" ||
		changes(after.Results[0].Removed) != "manifest "+shortHex(d)+",tag 1" {
		t.Fatalf("after one delete and a failed tag: latest version %+v, before %+v", after.Results[0], before.Results[0])
	}
}

// TestProductOpenAPICoversAPIv1 checks that every /api/v1/ route the server
// answers is in the OpenAPI document it serves.
func TestProductOpenAPICoversAPIv1(t *testing.T) {
	e := newProdEnv(t, db.SQLite, false)
	for _, route := range [][2]string{
		{"GET", "/api/v1/execution-environments/"}, {"GET", "/api/v1/execution-environments/{name}/"},
		{"DELETE", "/api/v1/execution-environments/{name}/"},
		{"GET", "/api/v1/execution-environments/{name}/_content/readme/"}, {"PUT", "/api/v1/execution-environments/{name}/_content/readme/"},
		{"GET", "/api/v1/execution-environments/{name}/_content/images/"}, {"GET", "/api/v1/execution-environments/{name}/_content/images/{digest}/"},
		{"DELETE", "/api/v1/execution-environments/{name}/_content/images/{digest}/"},
		{"GET", "/api/v1/execution-environments/{name}/_content/tags/"}, {"POST", "/api/v1/execution-environments/{name}/_content/tags/"},
		{"PUT", "/api/v1/execution-environments/{name}/_content/tags/{tag}/"}, {"DELETE", "/api/v1/execution-environments/{name}/_content/tags/{tag}/"},
		{"GET", "/api/v1/execution-environments/{name}/_content/activity/"}, {"GET", "/api/v1/execution-environments/{name}/_content/controllers/"},
		{"GET", "/api/v1/registry/"}, {"POST", "/api/v1/registry/token/"}, {"GET", "/api/v1/registry/repos/"}, {"POST", "/api/v1/registry/repos/"},
		{"GET", "/api/v1/registry/images/"}, {"GET", "/api/v1/registry/images/{ref}/"}, {"DELETE", "/api/v1/registry/images/{ref}/"},
		{"GET", "/api/v1/catalog/"}, {"POST", "/api/v1/catalog/"}, {"GET", "/api/v1/catalog/{name}/"},
		{"PATCH", "/api/v1/catalog/{name}/"}, {"DELETE", "/api/v1/catalog/{name}/"},
	} {
		if !e.doc.has(route[0], route[1]) {
			t.Errorf("%s %s is not in the OpenAPI document", route[0], route[1])
		}
	}
	// Every /api/v1/ path of the document answers something other than
	// 404/405 for its documented methods (the document describes served
	// routes), and no /api/v1/ operation lacks a success response.
	paths, _ := e.doc.raw["paths"].(map[string]any)
	n := 0
	for p, ops := range paths {
		if !strings.HasPrefix(p, "/api/v1/") {
			continue
		}
		for m, op := range ops.(map[string]any) {
			n++
			resp, _ := op.(map[string]any)["responses"].(map[string]any)
			ok := false
			for code := range resp {
				if strings.HasPrefix(code, "2") {
					ok = true
				}
			}
			if !ok {
				t.Errorf("%s %s documents no success answer", strings.ToUpper(m), p)
			}
		}
	}
	if n < 26 {
		t.Fatalf("only %d /api/v1/ operations documented", n)
	}
	raw, _ := json.Marshal(e.doc.raw["paths"])
	if !strings.Contains(string(raw), "execution_environments_images_list") {
		t.Fatal("operation IDs missing")
	}
}

// TestProductBuildStatusAndCatalog follows an image build through the
// registry API (PENDING, then READY) and the catalog (an entry linked to
// the build shows it in progress, then ready).
func TestProductBuildStatusAndCatalog(t *testing.T) {
	be := newBuildEnv(t, db.SQLite, false)
	s := newProdSite(t, be.srv)
	b := be.submit(t, buildsPath, map[string]any{"target": "apps/tool", "tag": "1", "base": "base/busybox:1", "apt": "curl\n"})

	var st struct {
		Status string `json:"status"`
		Build  *struct {
			Href   string `json:"href"`
			Status string `json:"status"`
		} `json:"build"`
	}
	s.call(prodAdmin, http.MethodGet, "/api/v1/registry/images/apps/tool:1/", nil, http.StatusOK, &st)
	finished := false
	if st.Status != "PENDING" {
		// Only a build that already ended may say otherwise.
		if got := be.get(t, b.Href); got.Phase == "pending" || got.Phase == "running" {
			t.Fatalf("status of an image being built = %+v", st)
		}
		finished = true
	}
	if st.Build == nil || st.Build.Href != b.Href {
		t.Fatalf("status does not name the build: %+v", st)
	}
	var entry struct {
		Name     string `json:"name"`
		URL      string `json:"url"`
		Building bool   `json:"building"`
		Ready    bool   `json:"ready"`
		Build    *struct {
			Status string `json:"status"`
		} `json:"build"`
	}
	s.call(prodAdmin, http.MethodPost, "/api/v1/catalog/", map[string]any{"display_name": "tool", "type": "cpu", "build": b.Href, "global": true}, http.StatusCreated, &entry)
	if entry.URL != be.srv.Addr+"/apps/tool:1" || entry.Build == nil {
		t.Fatalf("entry from a build = %+v", entry)
	}
	if !finished && (!entry.Building || entry.Ready) {
		t.Fatalf("entry of a running build = %+v", entry)
	}
	if done := be.wait(t, b.Href, 5*time.Minute); done.Phase != "succeeded" {
		t.Fatalf("build %s: %v", done.Phase, done.Error)
	}
	s.call(prodAdmin, http.MethodGet, "/api/v1/registry/images/apps/tool:1/", nil, http.StatusOK, &st)
	if st.Status != "READY" {
		t.Fatalf("status after the build = %+v", st)
	}
	s.call(prodAdmin, http.MethodGet, "/api/v1/catalog/tool/", nil, http.StatusOK, &entry)
	if entry.Building || !entry.Ready || entry.Build.Status != "READY" {
		t.Fatalf("entry after the build = %+v", entry)
	}
	// A build that fails: FAILED, with the entry not ready.
	bad := be.submit(t, buildsPath, map[string]any{"target": "apps/broken", "tag": "1", "base": "base/busybox:nope", "pip": "requests"})
	be.wait(t, bad.Href, 5*time.Minute)
	s.call(prodAdmin, http.MethodGet, "/api/v1/registry/images/apps/broken:1/", nil, http.StatusOK, &st)
	if st.Status != "FAILED" {
		t.Fatalf("status of a failed build = %+v", st)
	}
	s.call(prodAdmin, http.MethodPost, "/api/v1/catalog/", map[string]any{"display_name": "broken", "build": bad.ID, "global": true}, http.StatusCreated, &entry)
	if entry.Ready || entry.Building {
		t.Fatalf("entry of a failed build = %+v", entry)
	}
}
