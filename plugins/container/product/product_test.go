package product_test

import (
	"bytes"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/labstack/echo/v4"
	"gorm.io/gorm"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/api/apitest"
	"github.com/berth-dev/berth/auth"
	"github.com/berth-dev/berth/core"
	"github.com/berth-dev/berth/core/db"
	"github.com/berth-dev/berth/core/secret"
	"github.com/berth-dev/berth/core/storage/fs"
	"github.com/berth-dev/berth/internal/testdb"
	"github.com/berth-dev/berth/migrations"
	"github.com/berth-dev/berth/plugins/container"
	"github.com/berth-dev/berth/plugins/container/product"
)

// lateTasks is the task service of the apitest environment, known only
// once the environment exists (the product service is built before).
type lateTasks struct{ api.TaskService }

// env is the product API over one test database, with the /v2/ registry
// beside it (anyone may push) and users admin (superuser) and bob.
type env struct {
	*apitest.Env
	t      *testing.T
	auth   *auth.Service
	plugin *container.Plugin
	host   string
}

const (
	adminPass = "admin-password-123"
	bobPass   = "bob-password-12345"
)

func each(t *testing.T, fn func(t *testing.T, e *env)) {
	sets := []db.MigrationSet{migrations.Core, container.Migrations(), product.Migrations()}
	testdb.Each(t, sets, func(t *testing.T, g *gorm.DB) { fn(t, newEnv(t, g)) })
}

func newEnv(t *testing.T, g *gorm.DB) *env {
	box, err := secret.New(apitest.SecretKey)
	if err != nil {
		t.Fatal(err)
	}
	store := core.NewStore(g, box)
	blobs, err := fs.New(filepath.Join(t.TempDir(), "storage"))
	if err != nil {
		t.Fatal(err)
	}
	plugin, err := container.New(store, blobs, container.WithLogger(apitest.Logger()), container.WithLatestTTL(0))
	if err != nil {
		t.Fatal(err)
	}
	as, err := auth.New(g, auth.WithSecretKey(apitest.SecretKey), auth.WithPublicURL("http://registry.test:5001"), auth.WithLogger(apitest.Logger()))
	if err != nil {
		t.Fatal(err)
	}
	ts := &lateTasks{}
	svc, err := product.New(product.Deps{Store: store, Container: plugin, Auth: as, Tasks: ts,
		PublicURL: "http://registry.test:5001", Controllers: []string{"https://controller.example.com"}, Log: apitest.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	handlers := product.Tasks{Container: plugin}.TaskHandlers()
	maps.Copy(handlers, plugin.MaintenanceTasks().TaskHandlers()) // container.remove
	ae := apitest.New(t, g, apitest.Options{
		Routes: []api.Routes{svc}, Middleware: []echo.MiddlewareFunc{as.Authenticate}, TaskHandlers: handlers,
	})
	ts.TaskService, err = api.NewTaskService(g, ae.Tasks.Dispatcher(), ae.Tasks.Queue())
	if err != nil {
		t.Fatal(err)
	}
	plugin.ContentRoutes(ae.Echo)
	ae.StartWorkers()
	for _, u := range []auth.UserInput{{Username: "admin", Password: adminPass, Superuser: true}, {Username: "bob", Password: bobPass}} {
		if _, err := as.CreateUser(t.Context(), u); err != nil {
			t.Fatal(err)
		}
	}
	u, _ := url.Parse(ae.URL)
	return &env{Env: ae, t: t, auth: as, plugin: plugin, host: u.Host}
}

// call sends a request as user (password pw; "" for anonymous) with a JSON
// body (or a string sent as it is), checks the status and decodes the
// answer into out.
func (e *env) call(user, method, path string, body any, want int, out any) []byte {
	e.t.Helper()
	var rd io.Reader
	ct := "application/json"
	switch b := body.(type) {
	case nil:
	case string:
		rd, ct = strings.NewReader(b), "text/markdown"
	default:
		raw, _ := json.Marshal(b)
		rd = bytes.NewReader(raw)
	}
	req, _ := http.NewRequest(method, e.URL+path, rd)
	if rd != nil {
		req.Header.Set("Content-Type", ct)
	}
	switch user {
	case "admin":
		req.SetBasicAuth("admin", adminPass)
	case "bob":
		req.SetBasicAuth("bob", bobPass)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		e.t.Fatalf("%s %s as %q: status %d, want %d: %s", method, path, user, resp.StatusCode, want, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			e.t.Fatalf("decode %s: %v", raw, err)
		}
	}
	return raw
}

// task waits for the task of a 202 answer and fails unless it completed.
func (e *env) task(raw []byte) api.TaskResponse {
	e.t.Helper()
	var a api.TaskAccepted
	if err := json.Unmarshal(raw, &a); err != nil || a.Task == "" {
		e.t.Fatalf("not a task answer: %s", raw)
	}
	deadline := time.Now().Add(apitest.WaitTimeout)
	for {
		var t api.TaskResponse
		e.call("admin", http.MethodGet, a.Task, nil, http.StatusOK, &t)
		switch t.State {
		case "completed":
			return t
		case "failed", "canceled":
			e.t.Fatalf("task %s %s: %+v", t.Name, t.State, t.Error)
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("task %s still %s", t.Name, t.State)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// push writes an image with history to name:tag through /v2/.
func (e *env) push(ref string, marker string) v1.Hash {
	e.t.Helper()
	layer, err := random.Layer(64, "application/vnd.oci.image.layer.v1.tar")
	if err != nil {
		e.t.Fatal(err)
	}
	img, err := mutate.Append(empty.Image, mutate.Addendum{Layer: layer, History: v1.History{CreatedBy: "RUN make " + marker, Created: v1.Time{Time: time.Unix(1700000000, 0)}}})
	if err != nil {
		e.t.Fatal(err)
	}
	img, err = mutate.Config(img, v1.Config{Env: []string{"MARK=" + marker}, Cmd: []string{"/bin/sh"}})
	if err != nil {
		e.t.Fatal(err)
	}
	img, err = mutate.Append(img, mutate.Addendum{Layer: nil, History: v1.History{CreatedBy: "CMD [\"/bin/sh\"]", EmptyLayer: true}})
	if err != nil {
		e.t.Fatal(err)
	}
	tag, err := name.NewTag(e.host+"/"+ref, name.Insecure)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := remote.Write(tag, img); err != nil {
		e.t.Fatalf("push %s: %v", ref, err)
	}
	d, _ := img.Digest()
	return d
}

type page[T any] struct {
	Count   int64 `json:"count"`
	Results []T   `json:"results"`
}

func TestExecutionEnvironments(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		d1 := e.push("team/ee:1.0", "one")
		d2 := e.push("team/ee:2.0", "two")
		e.push("solo:latest", "solo")

		var list page[product.EEView]
		e.call("admin", http.MethodGet, "/api/v1/execution-environments/?namespace=team", nil, http.StatusOK, &list)
		if list.Count != 1 || list.Results[0].Name != "team/ee" || list.Results[0].Remote != nil {
			t.Fatalf("list = %+v", list)
		}
		e.call("admin", http.MethodGet, "/api/v1/execution-environments/?remote=true", nil, http.StatusOK, &list)
		if list.Count != 0 {
			t.Fatalf("remote list = %+v", list)
		}
		e.call("admin", http.MethodGet, "/api/v1/execution-environments/?bogus=1", nil, http.StatusBadRequest, nil)

		var d product.EEDetail
		e.call("bob", http.MethodGet, "/api/v1/execution-environments/team/ee/", nil, http.StatusOK, &d)
		if d.Pull == nil || d.Pull.ByTag != "registry.test:5001/team/ee:2.0" || d.Pull.ByDigest != "registry.test:5001/team/ee@"+d2.String() {
			t.Fatalf("pull = %+v", d.Pull)
		}
		if len(d.UseInController) != 1 || !strings.HasPrefix(d.UseInController[0].URL, "https://controller.example.com/#/execution_environments/add?image=registry.test") {
			t.Fatalf("controller links = %+v", d.UseInController)
		}
		e.call("admin", http.MethodGet, "/api/v1/execution-environments/nope/", nil, http.StatusNotFound, nil)
		e.call("admin", http.MethodGet, "/api/v1/execution-environments/Bad_Name/", nil, http.StatusBadRequest, nil)

		// Readme: JSON or markdown in, markdown out; edit_readme needed.
		readme := "/api/v1/execution-environments/team/ee/_content/readme/"
		e.call("admin", http.MethodPut, readme, map[string]string{"text": "# Team EE\n"}, http.StatusOK, nil)
		e.call("bob", http.MethodPut, readme, map[string]string{"text": "hijack"}, http.StatusForbidden, nil)
		e.call("", http.MethodPut, readme, map[string]string{"text": "hijack"}, http.StatusUnauthorized, nil)
		e.call("admin", http.MethodPut, readme, map[string]any{"text": 5}, http.StatusBadRequest, nil)
		e.call("admin", http.MethodPut, readme, strings.Repeat("x", product.MaxReadmeSize+1), http.StatusBadRequest, nil)
		var rv product.ReadmeView
		e.call("bob", http.MethodGet, readme, nil, http.StatusOK, &rv)
		if rv.Text != "# Team EE\n" || rv.UpdatedBy != "admin" || rv.UpdatedAt == nil {
			t.Fatalf("readme = %+v", rv)
		}
		e.call("admin", http.MethodPut, readme, "## markdown body\n", http.StatusOK, &rv)
		if rv.Text != "## markdown body\n" {
			t.Fatalf("markdown readme = %+v", rv)
		}

		// Images and the layers view.
		var imgs page[product.ImageView]
		e.call("bob", http.MethodGet, "/api/v1/execution-environments/team/ee/_content/images/", nil, http.StatusOK, &imgs)
		if imgs.Count != 2 || imgs.Results[0].Digest != d2.String() || strings.Join(imgs.Results[1].Tags, ",") != "1.0" {
			t.Fatalf("images = %+v", imgs)
		}
		var det product.ImageDetail
		e.call("bob", http.MethodGet, "/api/v1/execution-environments/team/ee/_content/images/"+d1.String()+"/", nil, http.StatusOK, &det)
		if len(det.Layers) != 1 || det.Config == nil || len(det.Config.History) != 2 ||
			det.Config.History[0].CreatedBy != "RUN make one" || det.Config.History[0].Layer != det.Layers[0].Digest || !det.Config.History[1].EmptyLayer {
			t.Fatalf("layers view = %+v config %+v", det, det.Config)
		}
		e.call("bob", http.MethodGet, "/api/v1/execution-environments/team/ee/_content/images/sha256:nothex/", nil, http.StatusBadRequest, nil)
		e.call("bob", http.MethodGet, "/api/v1/execution-environments/team/ee/_content/images/sha256:"+strings.Repeat("0", 64)+"/", nil, http.StatusNotFound, nil)

		// Tags: add (task), a conflict, move, untag; the image keeps its other tags.
		tags := "/api/v1/execution-environments/team/ee/_content/tags/"
		e.task(e.call("admin", http.MethodPost, tags, map[string]string{"tag": "stable", "digest": d1.String()}, http.StatusAccepted, nil))
		e.call("admin", http.MethodPost, tags, map[string]string{"tag": "stable", "digest": d2.String()}, http.StatusConflict, nil)
		e.call("admin", http.MethodPost, tags, map[string]string{"tag": "-bad", "digest": "nope"}, http.StatusBadRequest, nil)
		e.call("bob", http.MethodPost, tags, map[string]string{"tag": "x", "digest": d1.String()}, http.StatusForbidden, nil)
		e.call("admin", http.MethodPost, tags, map[string]string{"tag": "x", "digest": "sha256:" + strings.Repeat("1", 64)}, http.StatusNotFound, nil)
		e.call("admin", http.MethodGet, "/api/v1/execution-environments/team/ee/_content/images/?tag=stable", nil, http.StatusOK, &imgs)
		if imgs.Count != 1 || strings.Join(imgs.Results[0].Tags, ",") != "1.0,stable" {
			t.Fatalf("after tagging: %+v", imgs)
		}
		e.task(e.call("admin", http.MethodPut, tags+"stable/", map[string]string{"digest": d2.String()}, http.StatusAccepted, nil))
		e.call("admin", http.MethodGet, "/api/v1/execution-environments/team/ee/_content/images/", nil, http.StatusOK, &imgs)
		if strings.Join(imgs.Results[0].Tags, ",") != "2.0,stable" || strings.Join(imgs.Results[1].Tags, ",") != "1.0" {
			t.Fatalf("after moving: %+v", imgs)
		}
		e.task(e.call("admin", http.MethodDelete, tags+"2.0/", nil, http.StatusAccepted, nil))
		e.call("admin", http.MethodDelete, tags+"2.0/", nil, http.StatusNotFound, nil)

		// Delete an image by digest: its tags go with it.
		e.task(e.call("admin", http.MethodDelete, "/api/v1/execution-environments/team/ee/_content/images/"+d1.String()+"/", nil, http.StatusAccepted, nil))
		e.call("admin", http.MethodGet, "/api/v1/execution-environments/team/ee/_content/images/", nil, http.StatusOK, &imgs)
		if imgs.Count != 1 || imgs.Results[0].Digest != d2.String() {
			t.Fatalf("after delete: %+v", imgs)
		}

		// Activity: each change, newest first, with who made it.
		var act page[product.ActivityView]
		e.call("bob", http.MethodGet, "/api/v1/execution-environments/team/ee/_content/activity/", nil, http.StatusOK, &act)
		if act.Count != 6 {
			t.Fatalf("activity has %d versions, want 6: %+v", act.Count, act)
		}
		del := act.Results[0]
		if del.CreatedBy != "admin" || len(del.Removed) != 2 || del.Removed[0].Kind != "tag" && del.Removed[1].Kind != "tag" {
			t.Fatalf("delete activity = %+v", del)
		}
		move := act.Results[2]
		if len(move.Added) != 1 || move.Added[0].Tag != "stable" || move.Added[0].Digest != d2.String() || len(move.Removed) != 1 || move.Removed[0].Digest != d1.String() {
			t.Fatalf("move activity = %+v", move)
		}

		// Controllers by digest.
		var cv product.ControllersView
		e.call("bob", http.MethodGet, "/api/v1/execution-environments/team/ee/_content/controllers/?digest="+d2.String(), nil, http.StatusOK, &cv)
		if cv.Image != "registry.test:5001/team/ee@"+d2.String() || len(cv.Controllers) != 1 {
			t.Fatalf("controllers = %+v", cv)
		}

		// Delete the whole EE.
		e.task(e.call("admin", http.MethodDelete, "/api/v1/execution-environments/team/ee/", nil, http.StatusAccepted, nil))
		e.call("admin", http.MethodGet, "/api/v1/execution-environments/team/ee/", nil, http.StatusNotFound, nil)
		e.call("admin", http.MethodGet, "/api/v1/execution-environments/solo/", nil, http.StatusOK, nil)
	})
}

func TestPrivateExecutionEnvironmentsAreHidden(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		e.push("secret/ee:1", "s")
		e.push("open/ee:1", "o")
		ctx := t.Context()
		dist, err := e.Store.DistributionByBasePath(ctx, "secret/ee")
		if err != nil {
			t.Fatal(err)
		}
		dist.Private = true
		if err := e.Store.UpdateDistribution(ctx, dist); err != nil {
			t.Fatal(err)
		}
		var list page[product.EEView]
		e.call("bob", http.MethodGet, "/api/v1/execution-environments/", nil, http.StatusOK, &list)
		if list.Count != 1 || list.Results[0].Name != "open/ee" {
			t.Fatalf("bob sees %+v", list)
		}
		e.call("admin", http.MethodGet, "/api/v1/execution-environments/", nil, http.StatusOK, &list)
		if list.Count != 2 {
			t.Fatalf("admin sees %+v", list)
		}
		e.call("bob", http.MethodGet, "/api/v1/execution-environments/secret/ee/", nil, http.StatusNotFound, nil)
		e.call("", http.MethodGet, "/api/v1/execution-environments/secret/ee/", nil, http.StatusUnauthorized, nil)
		var refs []string
		e.call("bob", http.MethodGet, "/api/v1/registry/images/", nil, http.StatusOK, &refs)
		if strings.Join(refs, ",") != "open/ee:1" {
			t.Fatalf("bob's images = %v", refs)
		}
	})
}

func TestRegistryAPI(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		var reg product.RegistryView
		e.call("bob", http.MethodGet, "/api/v1/registry/", nil, http.StatusOK, &reg)
		if reg.Registry != "registry.test:5001" || reg.Username != "bob" {
			t.Fatalf("registry = %+v", reg)
		}
		e.call("", http.MethodGet, "/api/v1/registry/", nil, http.StatusUnauthorized, nil)
		var tok product.RegistryToken
		e.call("bob", http.MethodPost, "/api/v1/registry/token/", map[string]any{"expires_in": 3600}, http.StatusCreated, &tok)
		if !strings.HasPrefix(tok.Token, auth.TokenPrefix) || tok.ExpiresAt == nil || time.Until(*tok.ExpiresAt) > time.Hour+time.Minute {
			t.Fatalf("token = %+v", tok)
		}
		e.call("bob", http.MethodPost, "/api/v1/registry/token/", map[string]any{"expires_in": -1}, http.StatusBadRequest, nil)
		// The token works as a registry password, not as an API credential.
		p, err := e.auth.AuthenticateToken(t.Context(), tok.Token, auth.UsageRegistry)
		if err != nil || p.Username != "bob" {
			t.Fatalf("registry token: %v %+v", err, p)
		}

		var repo product.RepoView
		e.call("admin", http.MethodPost, "/api/v1/registry/repos/", map[string]string{"name": "proj/app"}, http.StatusCreated, &repo)
		e.call("admin", http.MethodPost, "/api/v1/registry/repos/", map[string]string{"name": "proj/app"}, http.StatusCreated, &repo)
		if repo.Created || repo.Namespace != "proj" {
			t.Fatalf("second create = %+v", repo)
		}
		e.call("admin", http.MethodPost, "/api/v1/registry/repos/", map[string]string{"name": "Not Valid"}, http.StatusBadRequest, nil)
		e.call("admin", http.MethodPost, "/api/v1/registry/repos/", map[string]string{}, http.StatusBadRequest, nil)
		var repos []string
		e.call("admin", http.MethodGet, "/api/v1/registry/repos", nil, http.StatusOK, &repos)
		if strings.Join(repos, ",") != "proj/app" {
			t.Fatalf("repos = %v", repos)
		}

		d := e.push("proj/app:v1", "v1")
		e.push("proj/app:v2", "v2")
		var st product.ImageStatus
		e.call("admin", http.MethodGet, "/api/v1/registry/images/proj/app:v1/", nil, http.StatusOK, &st)
		if st.Status != product.StatusReady || st.Digest != d.String() || st.Name != "proj/app" {
			t.Fatalf("status = %+v", st)
		}
		e.call("admin", http.MethodGet, "/api/v1/registry/images/proj/app:v9/", nil, http.StatusNotFound, nil)
		e.call("admin", http.MethodGet, "/api/v1/registry/images/proj/app/", nil, http.StatusBadRequest, nil)
		var refs []string
		e.call("admin", http.MethodGet, "/api/v1/registry/images/?repo=proj/app", nil, http.StatusOK, &refs)
		if strings.Join(refs, ",") != "proj/app:v1,proj/app:v2" {
			t.Fatalf("images = %v", refs)
		}
		e.call("bob", http.MethodDelete, "/api/v1/registry/images/proj/app:v1/", nil, http.StatusForbidden, nil)
		e.task(e.call("admin", http.MethodDelete, "/api/v1/registry/images/proj/app:v1/", nil, http.StatusAccepted, nil))
		e.call("admin", http.MethodGet, "/api/v1/registry/images/proj/app:v1/", nil, http.StatusNotFound, nil)
		e.call("admin", http.MethodGet, "/api/v1/registry/images/proj/app@"+d.String()+"/", nil, http.StatusNotFound, nil)
		e.call("admin", http.MethodDelete, "/api/v1/registry/images/proj/app:v1/", nil, http.StatusNotFound, nil)
		resp, err := http.Get(e.URL + "/v2/proj/app/manifests/v1")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Fatalf("deleted image: /v2/ answers %d", resp.StatusCode)
		}
	})
}

func TestCatalog(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		ctx := t.Context()
		g, err := e.auth.CreateGroup(ctx, "data-science")
		if err != nil {
			t.Fatal(err)
		}
		bob, _ := e.auth.UserByName(ctx, "bob")
		if err := e.auth.AddGroupMember(ctx, g.ID, bob.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := e.auth.CreateGroup(ctx, "other"); err != nil {
			t.Fatal(err)
		}
		var entry product.CatalogEntry
		body := map[string]any{"display_name": "tf.2-15", "type": "universal", "url": "registry.example.com/ml/tf:2.15",
			"pull_secret": "s3cret", "groups": []string{"data-science"}}
		e.call("admin", http.MethodPost, "/api/v1/catalog/", body, http.StatusCreated, &entry)
		if entry.Name != "tf-2-15" || !entry.HasPullSecret || entry.GPUURL != entry.URL || entry.Global || strings.Join(entry.Groups, ",") != "data-science" {
			t.Fatalf("entry = %+v", entry)
		}
		if raw := e.call("admin", http.MethodGet, entry.Href, nil, http.StatusOK, nil); strings.Contains(string(raw), "s3cret") {
			t.Fatal("the pull secret is shown")
		}
		e.call("admin", http.MethodPost, "/api/v1/catalog/", body, http.StatusCreated, &entry)
		if entry.Name != "tf-2-15-2" {
			t.Fatalf("second name = %q", entry.Name)
		}
		e.call("admin", http.MethodPost, "/api/v1/catalog/", map[string]any{"display_name": "base", "url": "docker.io/library/python:3.12", "global": true}, http.StatusCreated, nil)
		e.call("admin", http.MethodPost, "/api/v1/catalog/", map[string]any{"display_name": "hidden", "url": "x.example.com/h:1", "groups": []string{"other"}}, http.StatusCreated, nil)

		for _, bad := range []map[string]any{
			{"display_name": "My Image", "url": "a.example.com/b:1"},
			{"display_name": "ok", "url": "a.example.com/b:1", "type": "tpu"},
			{"display_name": "ok", "url": "a.example.com/b:1", "gpu_url": "a.example.com/b:gpu"},
			{"display_name": "ok"},
			{"display_name": "ok", "url": "a.example.com/b:1", "groups": []string{"nobody"}},
			{"display_name": "ok", "url": "a.example.com/b:1", "global": true, "groups": []string{"other"}},
			{"display_name": "ok", "url": "not a url"},
			{"display_name": "ok", "build": "b1"},
		} {
			raw := e.call("admin", http.MethodPost, "/api/v1/catalog/", bad, http.StatusBadRequest, nil)
			if !strings.Contains(string(raw), "[") {
				t.Fatalf("%v: unclear error %s", bad, raw)
			}
		}
		e.call("bob", http.MethodPost, "/api/v1/catalog/", map[string]any{"display_name": "mine", "url": "a.example.com/b:1"}, http.StatusForbidden, nil)

		var list page[product.CatalogEntry]
		e.call("bob", http.MethodGet, "/api/v1/catalog/", nil, http.StatusOK, &list)
		var names []string
		for _, r := range list.Results {
			names = append(names, r.Name)
		}
		if strings.Join(names, ",") != "base,tf-2-15,tf-2-15-2" {
			t.Fatalf("bob sees %v", names)
		}
		e.call("bob", http.MethodGet, "/api/v1/catalog/hidden/", nil, http.StatusNotFound, nil)
		e.call("admin", http.MethodGet, "/api/v1/catalog", nil, http.StatusOK, &list)
		if list.Count != 4 {
			t.Fatalf("admin sees %d", list.Count)
		}
		e.call("admin", http.MethodPatch, "/api/v1/catalog/hidden/", map[string]any{"global": true, "pull_secret": ""}, http.StatusOK, &entry)
		if !entry.Global || len(entry.Groups) != 0 || entry.HasPullSecret {
			t.Fatalf("patched = %+v", entry)
		}
		e.call("admin", http.MethodPatch, "/api/v1/catalog/hidden/", map[string]any{"type": "gpu", "gpu_url": "x.example.com/h:gpu"}, http.StatusBadRequest, nil)
		e.call("bob", http.MethodDelete, "/api/v1/catalog/hidden/", nil, http.StatusForbidden, nil)
		e.call("admin", http.MethodDelete, "/api/v1/catalog/hidden/", nil, http.StatusNoContent, nil)
		e.call("admin", http.MethodDelete, "/api/v1/catalog/hidden/", nil, http.StatusNotFound, nil)
	})
}

func TestEveryRouteDocumented(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		var missing []string
		for _, r := range api.Undocumented(e.Echo, e.Server.Doc()) {
			if strings.Contains(r, "/api/v1/") {
				missing = append(missing, r)
			}
		}
		if len(missing) > 0 {
			t.Fatalf("undocumented: %v", missing)
		}
	})
}
