package container_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/labstack/echo/v4"
	"github.com/opencontainers/go-digest"
	"gorm.io/gorm"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/api/apitest"
	"github.com/berth-dev/berth/core"
	"github.com/berth-dev/berth/core/secret"
	"github.com/berth-dev/berth/core/storage/fs"
	"github.com/berth-dev/berth/internal/testdb"
	"github.com/berth-dev/berth/plugins/container"
)

// upstreamReg is an in-memory registry (go-containerregistry's) counting
// the requests that reach it.
type upstreamReg struct {
	t   *testing.T
	srv *httptest.Server
	mu  sync.Mutex
	log []string // "METHOD path"
	// fail, when set, may answer a request instead of the registry.
	fail func(w http.ResponseWriter, r *http.Request) bool
}

func newUpstream(t *testing.T) *upstreamReg {
	u := &upstreamReg{t: t}
	reg := ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)))
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.log = append(u.log, r.Method+" "+r.URL.Path)
		fail := u.fail
		u.mu.Unlock()
		if fail != nil && fail(w, r) {
			return
		}
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(u.srv.Close)
	return u
}

// setFail sets (nil: clears) the hook that may answer requests.
func (u *upstreamReg) setFail(f func(w http.ResponseWriter, r *http.Request) bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.fail = f
}

func (u *upstreamReg) host() string { return strings.TrimPrefix(u.srv.URL, "http://") }

// requests returns and forgets the logged requests.
func (u *upstreamReg) requests() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	out := u.log
	u.log = nil
	return out
}

func (u *upstreamReg) ref(s string) name.Reference {
	r, err := name.ParseReference(u.host()+"/"+s, name.Insecure)
	if err != nil {
		u.t.Fatal(err)
	}
	return r
}

// push writes a random image under repo:tag and returns it.
func (u *upstreamReg) push(repo, tag string) v1.Image {
	u.t.Helper()
	img, err := random.Image(4096, 2)
	if err != nil {
		u.t.Fatal(err)
	}
	if err := remote.Write(u.ref(repo+":"+tag), img); err != nil {
		u.t.Fatal(err)
	}
	return img
}

// tag points repo:tag at img.
func (u *upstreamReg) tag(repo, tag string, img v1.Image) {
	u.t.Helper()
	if err := remote.Write(u.ref(repo+":"+tag), img); err != nil {
		u.t.Fatal(err)
	}
}

// pushIndex writes a random Docker manifest list of n images.
func (u *upstreamReg) pushIndex(repo, tag string, n int) v1.ImageIndex {
	u.t.Helper()
	idx, err := random.Index(2048, 1, int64(n))
	if err != nil {
		u.t.Fatal(err)
	}
	if err := remote.WriteIndex(u.ref(repo+":"+tag), idx); err != nil {
		u.t.Fatal(err)
	}
	return idx
}

func (u *upstreamReg) deleteTag(repo, tag string) {
	u.t.Helper()
	if err := remote.Delete(u.ref(repo + ":" + tag)); err != nil {
		u.t.Fatal(err)
	}
}

// lazyTasks lets routes made before the task service exist use it.
type lazyTasks struct{ api.TaskService }

// syncEnv is the REST API and the content app with the container plugin
// and its sync tasks, on one database.
type syncEnv struct {
	*apitest.Env
	plugin *container.Plugin
	blobs  *fs.Driver
}

func eachSync(t *testing.T, fn func(t *testing.T, e *syncEnv)) {
	testdb.Each(t, sets, func(t *testing.T, g *gorm.DB) {
		fn(t, newSyncEnv(t, g))
	})
}

func newSyncEnv(t *testing.T, g *gorm.DB, opts ...container.Option) *syncEnv {
	t.Helper()
	box, err := secret.New(apitest.SecretKey)
	if err != nil {
		t.Fatal(err)
	}
	blobs, err := fs.New(filepath.Join(t.TempDir(), "storage"))
	if err != nil {
		t.Fatal(err)
	}
	opts = append([]container.Option{container.WithLogger(apitest.Logger()), container.WithLatestTTL(0)}, opts...)
	p, err := container.New(core.NewStore(g, box), blobs, opts...)
	if err != nil {
		t.Fatal(err)
	}
	lt := &lazyTasks{}
	env := apitest.New(t, g, apitest.Options{
		Plugins:      []core.Plugin{p},
		TaskHandlers: p.SyncTasks().TaskHandlers(),
		Routes:       []api.Routes{container.RegistryRoutes{Plugin: p, Tasks: lt}},
		Middleware:   []echo.MiddlewareFunc{syncCallerFromHeader},
	})
	lt.TaskService, err = api.NewTaskService(g, env.Tasks.Dispatcher(), env.Tasks.Queue())
	if err != nil {
		t.Fatal(err)
	}
	p.ContentRoutes(env.Echo)
	env.StartWorkers()
	return &syncEnv{Env: env, plugin: p, blobs: blobs}
}

func (e *syncEnv) registry(body map[string]any) map[string]any {
	e.T.Helper()
	var out map[string]any
	e.Call(http.MethodPost, container.RegistriesPath, body, http.StatusCreated, &out)
	return out
}

func (e *syncEnv) remoteImage(body map[string]any) map[string]any {
	e.T.Helper()
	var out map[string]any
	e.Call(http.MethodPost, container.RemoteImagesPath, body, http.StatusCreated, &out)
	return out
}

// sync syncs a remote image and waits for the task.
func (e *syncEnv) sync(href string) api.TaskResponse {
	e.T.Helper()
	body := e.Call(http.MethodPost, href+"sync/", nil, http.StatusAccepted, nil)
	return e.RunTask(body)
}

func (e *syncEnv) v2(method, path string) (*http.Response, []byte) {
	e.T.Helper()
	req, err := http.NewRequest(method, e.URL+"/v2/"+path, nil)
	if err != nil {
		e.T.Fatal(err)
	}
	req.Header.Set("Accept", strings.Join([]string{string(types.OCIManifestSchema1), string(types.DockerManifestSchema2),
		string(types.DockerManifestList), string(types.OCIImageIndex)}, ", "))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.T.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// tagsOf lists an image's tags through /v2/.
func (e *syncEnv) tagsOf(image string) []string {
	e.T.Helper()
	resp, b := e.v2(http.MethodGet, image+"/tags/list")
	if resp.StatusCode != http.StatusOK {
		e.T.Fatalf("tags of %s: %d %s", image, resp.StatusCode, b)
	}
	var out struct{ Tags []string }
	if err := json.Unmarshal(b, &out); err != nil {
		e.T.Fatal(err)
	}
	slices.Sort(out.Tags)
	return out.Tags
}

func (e *syncEnv) digestOf(image, ref string) string {
	e.T.Helper()
	resp, b := e.v2(http.MethodGet, image+"/manifests/"+ref)
	if resp.StatusCode != http.StatusOK {
		e.T.Fatalf("manifest %s:%s: %d %s", image, ref, resp.StatusCode, b)
	}
	return digest.FromBytes(b).String()
}

func mustDigest(t *testing.T, x interface{ Digest() (v1.Hash, error) }) string {
	t.Helper()
	d, err := x.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

// counts counts the requests of a log by "METHOD kind" (kind: manifests,
// blobs, tags).
func counts(reqs []string) map[string]int {
	out := map[string]int{}
	for _, r := range reqs {
		method, path, _ := strings.Cut(r, " ")
		for _, k := range []string{"/manifests/", "/blobs/", "/tags/"} {
			if strings.Contains(path, k) {
				out[method+" "+strings.Trim(k, "/")]++
			}
		}
	}
	return out
}

func TestSyncMirror(t *testing.T) {
	eachSync(t, func(t *testing.T, e *syncEnv) {
		up := newUpstream(t)
		imgs := map[string]v1.Image{}
		for _, tag := range []string{"1.0", "1.1", "2.0-rc1", "latest", "old"} {
			imgs[tag] = up.push("team/app", tag)
		}
		reg := e.registry(map[string]any{"name": "local-upstream", "url": up.srv.URL, "download_concurrency": 3})
		if reg["pulp_href"] != container.RegistryHref(reg["id"].(string)) || reg["last_sync_task"] != nil {
			t.Fatalf("registry %v", reg)
		}
		ri := e.remoteImage(map[string]any{
			"name": "mirror/app", "upstream_name": "team/app", "registry": reg["pulp_href"],
			"include_tags": []string{"1.*", "latest", "2.*"}, "exclude_tags": []string{"*-rc*"},
		})
		href := ri["pulp_href"].(string)
		if ri["latest_version"] != float64(0) || ri["last_sync_task"] != nil || ri["namespace"] != "mirror" {
			t.Fatalf("remote image %v", ri)
		}
		// Present but empty until the first sync.
		if got := e.tagsOf("mirror/app"); len(got) != 0 {
			t.Fatalf("tags before the first sync: %v", got)
		}

		task := e.sync(href)
		var res container.SyncResult
		if err := json.Unmarshal(task.Result, &res); err != nil {
			t.Fatal(err)
		}
		if !res.Created || res.Tags != 3 || res.BlobsDownloaded != 9 {
			t.Fatalf("first sync result %+v", res)
		}
		if got := e.tagsOf("mirror/app"); !slices.Equal(got, []string{"1.0", "1.1", "latest"}) {
			t.Fatalf("tags after sync: %v", got)
		}
		for _, tag := range []string{"1.0", "1.1", "latest"} {
			if got, want := e.digestOf("mirror/app", tag), mustDigest(t, imgs[tag]); got != want {
				t.Errorf("tag %s: digest %s, upstream %s", tag, got, want)
			}
		}
		layers, _ := imgs["1.0"].Layers()
		ld, _ := layers[0].Digest()
		if resp, b := e.v2(http.MethodGet, "mirror/app/blobs/"+ld.String()); resp.StatusCode != 200 || digest.FromBytes(b).String() != ld.String() {
			t.Fatalf("layer: %d", resp.StatusCode)
		}
		var got map[string]any
		e.Call(http.MethodGet, href, nil, http.StatusOK, &got)
		last, _ := got["last_sync_task"].(map[string]any)
		if got["latest_version"] != float64(1) || last == nil || last["state"] != "completed" || last["task"] == "" {
			t.Fatalf("remote image after sync: %v", got)
		}
		// The sync history lists the task, also through the Pulp task list.
		var hist api.Page[api.TaskResponse]
		e.Call(http.MethodGet, href+"syncs/", nil, http.StatusOK, &hist)
		if hist.Count != 1 || hist.Results[0].Href != last["task"] {
			t.Fatalf("history %+v", hist)
		}
		e.Call(http.MethodGet, "/pulp/api/v3/tasks/?reserved_resources="+href, nil, http.StatusOK, &hist)
		if hist.Count != 1 {
			t.Fatalf("tasks by reserved resource: %+v", hist)
		}

		// Nothing changed upstream: HEADs only, no new version.
		up.requests()
		task = e.sync(href)
		res = container.SyncResult{}
		_ = json.Unmarshal(task.Result, &res)
		c := counts(up.requests())
		if res.Created || res.Version != 1 || c["GET manifests"]+c["GET blobs"] != 0 || c["HEAD manifests"] != 3 {
			t.Fatalf("re-sync: result %+v, requests %v", res, c)
		}

		// A tag removed and one moved upstream, a new one added: mirrored.
		up.deleteTag("team/app", "1.1")
		up.tag("team/app", "latest", imgs["1.0"])
		imgs["1.2"] = up.push("team/app", "1.2")
		task = e.sync(href)
		res = container.SyncResult{}
		_ = json.Unmarshal(task.Result, &res)
		if !res.Created || res.Version != 2 || res.ManifestsDownloaded != 1 {
			t.Fatalf("third sync %+v", res)
		}
		if got := e.tagsOf("mirror/app"); !slices.Equal(got, []string{"1.0", "1.2", "latest"}) {
			t.Fatalf("tags after upstream changes: %v", got)
		}
		if e.digestOf("mirror/app", "latest") != mustDigest(t, imgs["1.0"]) {
			t.Fatal("latest did not move")
		}
		// The removed manifest left the version.
		if resp, _ := e.v2(http.MethodGet, "mirror/app/manifests/"+mustDigest(t, imgs["1.1"])); resp.StatusCode != http.StatusNotFound {
			t.Fatalf("manifest of the removed tag: %d", resp.StatusCode)
		}
		var vs api.Page[api.RepositoryVersionResponse]
		e.Call(http.MethodGet, ri["repository"].(string)+"versions/", nil, http.StatusOK, &vs)
		if vs.Count != 3 {
			t.Fatalf("versions: %d", vs.Count)
		}
	})
}

func TestSyncIndexAndRename(t *testing.T) {
	eachSync(t, func(t *testing.T, e *syncEnv) {
		up := newUpstream(t)
		idx := up.pushIndex("vendor/multi", "1", 3)
		reg := e.registry(map[string]any{"name": "up", "url": up.srv.URL})
		ri := e.remoteImage(map[string]any{"name": "local/multi", "upstream_name": "vendor/multi", "registry": reg["id"]})
		e.sync(ri["pulp_href"].(string))
		if got := e.digestOf("local/multi", "1"); got != mustDigest(t, idx) {
			t.Fatalf("index digest %s", got)
		}
		im, err := idx.IndexManifest()
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range im.Manifests {
			if got := e.digestOf("local/multi", m.Digest.String()); got != m.Digest.String() {
				t.Fatalf("child %s", m.Digest)
			}
			img, _ := idx.Image(m.Digest)
			layers, _ := img.Layers()
			for _, l := range layers {
				d, _ := l.Digest()
				if resp, _ := e.v2(http.MethodHead, "local/multi/blobs/"+d.String()); resp.StatusCode != 200 {
					t.Fatalf("layer %s of child %s: %d", d, m.Digest, resp.StatusCode)
				}
			}
		}
	})
}

func TestSyncOnDemand(t *testing.T) {
	eachSync(t, func(t *testing.T, e *syncEnv) {
		up := newUpstream(t)
		img := up.push("lib/tool", "1")
		reg := e.registry(map[string]any{"name": "lazy", "url": up.srv.URL, "policy": "on_demand"})
		ri := e.remoteImage(map[string]any{"name": "lazy/tool", "upstream_name": "lib/tool", "registry": reg["pulp_href"]})
		if ri["policy"] != "on_demand" {
			t.Fatalf("policy %v", ri["policy"])
		}
		up.requests()
		task := e.sync(ri["pulp_href"].(string))
		var res container.SyncResult
		_ = json.Unmarshal(task.Result, &res)
		if res.BlobsOnDemand != 2 || res.BlobsDownloaded != 1 {
			t.Fatalf("on_demand sync result %+v", res)
		}
		layers, _ := img.Layers()
		ld, _ := layers[0].Digest()
		d := digest.Digest(ld.String())
		if _, err := e.blobs.Stat(context.Background(), d); err == nil {
			t.Fatal("layer stored by an on_demand sync")
		}
		// HEAD answers from the record, without fetching.
		up.requests()
		if resp, _ := e.v2(http.MethodHead, "lazy/tool/blobs/"+ld.String()); resp.StatusCode != 200 {
			t.Fatalf("HEAD of a lazy blob: %d", resp.StatusCode)
		}
		if c := counts(up.requests()); c["GET blobs"] != 0 {
			t.Fatalf("HEAD fetched: %v", c)
		}
		// Concurrent first pulls: one fetch, every client gets the bytes.
		want, _ := layers[0].Compressed()
		wantBytes, _ := io.ReadAll(want)
		var wg sync.WaitGroup
		var bad atomic.Int32
		for range 8 {
			wg.Go(func() {
				resp, b := e.v2(http.MethodGet, "lazy/tool/blobs/"+ld.String())
				if resp.StatusCode != 200 || !bytes.Equal(b, wantBytes) {
					bad.Add(1)
				}
			})
		}
		wg.Wait()
		if bad.Load() != 0 {
			t.Fatalf("%d pulls got a wrong answer", bad.Load())
		}
		if c := counts(up.requests()); c["GET blobs"] != 1 {
			t.Fatalf("upstream blob GETs for 8 concurrent first pulls: %v", c)
		}
		if _, err := e.blobs.Stat(context.Background(), d); err != nil {
			t.Fatalf("layer not stored after the first pull: %v", err)
		}
		// Served locally from now on.
		if resp, b := e.v2(http.MethodGet, "lazy/tool/blobs/"+ld.String()); resp.StatusCode != 200 || !bytes.Equal(b, wantBytes) {
			t.Fatal("second pull")
		}
		if c := counts(up.requests()); c["GET blobs"] != 0 {
			t.Fatalf("second pull went upstream: %v", c)
		}
	})
}

func TestSyncOnDemandBadUpstreamBlob(t *testing.T) {
	eachSync(t, func(t *testing.T, e *syncEnv) {
		up := newUpstream(t)
		img := up.push("lib/tool", "1")
		reg := e.registry(map[string]any{"name": "lazy", "url": up.srv.URL, "policy": "on_demand"})
		ri := e.remoteImage(map[string]any{"name": "lazy/tool", "upstream_name": "lib/tool", "registry": reg["pulp_href"]})
		e.sync(ri["pulp_href"].(string))
		layers, _ := img.Layers()
		ld, _ := layers[0].Digest()
		size, _ := layers[0].Size()
		// The upstream now answers the layer with other bytes of its size.
		up.setFail(func(w http.ResponseWriter, r *http.Request) bool {
			if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, ld.String()) {
				w.Header().Set("Content-Length", fmt.Sprint(size))
				w.Write(bytes.Repeat([]byte{'x'}, int(size)))
				return true
			}
			return false
		})
		resp, b := e.v2(http.MethodGet, "lazy/tool/blobs/"+ld.String())
		if resp.StatusCode == 200 && int64(len(b)) == size {
			t.Fatal("a wrong blob reached the client whole")
		}
		if _, err := e.blobs.Stat(context.Background(), digest.Digest(ld.String())); err == nil {
			t.Fatal("a wrong blob was stored")
		}
	})
}

func TestSyncFailureKeepsVersion(t *testing.T) {
	eachSync(t, func(t *testing.T, e *syncEnv) {
		up := newUpstream(t)
		up.push("lib/x", "1")
		reg := e.registry(map[string]any{"name": "up", "url": up.srv.URL})
		ri := e.remoteImage(map[string]any{"name": "lib/x", "upstream_name": "lib/x", "registry": reg["pulp_href"]})
		e.sync(ri["pulp_href"].(string))
		up.push("lib/x", "2")
		up.setFail(func(w http.ResponseWriter, r *http.Request) bool {
			if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/") {
				http.Error(w, "gone", http.StatusForbidden)
				return true
			}
			return false
		})
		body := e.Call(http.MethodPost, ri["pulp_href"].(string)+"sync/", nil, http.StatusAccepted, nil)
		var a api.TaskAccepted
		_ = json.Unmarshal(body, &a)
		task := e.WaitTask(a.Task)
		if task.State != "failed" || task.Error == nil || !strings.Contains(task.Error.Description, "403") {
			t.Fatalf("sync with failing blobs: %s %+v", task.State, task.Error)
		}
		if got := e.tagsOf("lib/x"); !slices.Equal(got, []string{"1"}) {
			t.Fatalf("tags after a failed sync: %v", got)
		}
		var got map[string]any
		e.Call(http.MethodGet, ri["pulp_href"].(string), nil, http.StatusOK, &got)
		if got["latest_version"] != float64(1) || got["last_sync_task"].(map[string]any)["state"] != "failed" {
			t.Fatalf("after a failed sync: %v", got)
		}
	})
}

func TestSyncCancel(t *testing.T) {
	eachSync(t, func(t *testing.T, e *syncEnv) {
		up := newUpstream(t)
		up.push("lib/slow", "1")
		reg := e.registry(map[string]any{"name": "up", "url": up.srv.URL})
		ri := e.remoteImage(map[string]any{"name": "lib/slow", "upstream_name": "lib/slow", "registry": reg["pulp_href"]})
		e.sync(ri["pulp_href"].(string))
		up.push("lib/slow", "2")
		started := make(chan struct{}, 16)
		release := make(chan struct{})
		up.setFail(func(w http.ResponseWriter, r *http.Request) bool {
			if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/") {
				started <- struct{}{}
				select {
				case <-release:
				case <-r.Context().Done():
				}
				return true
			}
			return false
		})
		defer close(release)
		body := e.Call(http.MethodPost, ri["pulp_href"].(string)+"sync/", nil, http.StatusAccepted, nil)
		var a api.TaskAccepted
		_ = json.Unmarshal(body, &a)
		select {
		case <-started:
		case <-time.After(apitest.WaitTimeout):
			t.Fatal("the sync never asked for a blob")
		}
		e.Call(http.MethodPatch, a.Task, map[string]any{"state": "canceled"}, http.StatusOK, nil)
		task := e.WaitTask(a.Task)
		if task.State != "canceled" {
			t.Fatalf("canceled sync ended %s", task.State)
		}
		if got := e.tagsOf("lib/slow"); !slices.Equal(got, []string{"1"}) {
			t.Fatalf("tags after a canceled sync: %v", got)
		}
	})
}

func TestRemoteRegistryValidation(t *testing.T) {
	eachSync(t, func(t *testing.T, e *syncEnv) {
		field := func(method, path string, body any, status int, field string) {
			t.Helper()
			r := e.Do(method, path, body)
			if r.Status != status {
				t.Fatalf("%s %s %v: %d %s, want %d", method, path, body, r.Status, r.Body, status)
			}
			if field != "" {
				if _, ok := r.Map(t)[field]; !ok {
					t.Fatalf("%s %s: error names no %q: %s", method, path, field, r.Body)
				}
			}
		}
		field(http.MethodPost, container.RegistriesPath, map[string]any{"name": "a", "url": "ftp://x"}, 400, "url")
		field(http.MethodPost, container.RegistriesPath, map[string]any{"name": "a", "url": "https://x.example/some/path"}, 400, "url")
		field(http.MethodPost, container.RegistriesPath, map[string]any{"name": "a", "url": "https://x.example", "rate_limit": -1}, 400, "rate_limit")
		field(http.MethodPost, container.RegistriesPath, map[string]any{"name": "a", "url": "https://x.example", "ca_cert": "nope"}, 400, "ca_cert")
		field(http.MethodPost, container.RegistriesPath, map[string]any{"name": "a", "url": "https://x.example", "policy": "lazy"}, 400, "policy")
		reg := e.registry(map[string]any{"name": "a", "url": "https://x.example", "username": "u", "password": "secret-pw"})
		if strings.Contains(fmt.Sprint(reg), "secret-pw") {
			t.Fatal("password shown")
		}
		field(http.MethodPost, container.RegistriesPath, map[string]any{"name": "a", "url": "https://y.example"}, 409, "")
		regHref := reg["pulp_href"].(string)

		ok := map[string]any{"name": "ns/img", "upstream_name": "team/img", "registry": regHref}
		with := func(k string, v any) map[string]any {
			m := map[string]any{}
			for a, b := range ok {
				m[a] = b
			}
			m[k] = v
			return m
		}
		field(http.MethodPost, container.RemoteImagesPath, with("include_tags", []string{"[abc"}), 400, "include_tags")
		field(http.MethodPost, container.RemoteImagesPath, with("exclude_tags", []string{""}), 400, "exclude_tags")
		field(http.MethodPost, container.RemoteImagesPath, with("registry", container.RegistryHref(core.NewID())), 400, "registry")
		field(http.MethodPost, container.RemoteImagesPath, with("upstream_name", "Bad Name"), 400, "upstream_name")
		field(http.MethodPost, container.RemoteImagesPath, with("name", "UPPER/case"), 400, "name")
		e.remoteImage(ok)
		field(http.MethodPost, container.RemoteImagesPath, ok, 409, "")
		// Nothing half-made: a refused name (namespace rules) leaves no remote.
		field(http.MethodPost, container.RemoteImagesPath, with("name", "ns/img/sub"), 400, "name")
		var remotes api.Page[map[string]any]
		e.Call(http.MethodGet, "/pulp/api/v3/remotes/container/container/", nil, http.StatusOK, &remotes)
		if remotes.Count != 1 || remotes.Results[0]["upstream_name"] != "team/img" || remotes.Results[0]["registry"] != regHref {
			t.Fatalf("container remotes: %+v", remotes)
		}
		// The registry in use cannot go; its changes reach its images' remotes.
		field(http.MethodDelete, regHref, nil, 409, "")
		e.Call(http.MethodPatch, regHref, map[string]any{"url": "https://z.example", "rate_limit": 2.5}, http.StatusOK, nil)
		e.Call(http.MethodGet, "/pulp/api/v3/remotes/container/container/", nil, http.StatusOK, &remotes)
		if remotes.Results[0]["url"] != "https://z.example" || remotes.Results[0]["rate_limit"] != 2.5 {
			t.Fatalf("the image's remote did not follow its registry: %v", remotes.Results[0])
		}
	})
}

func TestRegistryTestConnection(t *testing.T) {
	eachSync(t, func(t *testing.T, e *syncEnv) {
		up := newUpstream(t)
		reg := e.registry(map[string]any{"name": "up", "url": up.srv.URL})
		var res container.TestResult
		e.Call(http.MethodPost, reg["pulp_href"].(string)+"test/", nil, http.StatusOK, &res)
		if !res.OK {
			t.Fatalf("test of a working registry: %+v", res)
		}
		dead := httptest.NewServer(http.NotFoundHandler())
		deadURL := dead.URL
		dead.Close()
		reg = e.registry(map[string]any{"name": "dead", "url": deadURL})
		e.Call(http.MethodPost, reg["pulp_href"].(string)+"test/", nil, http.StatusOK, &res)
		if res.OK || res.Kind != "unreachable" || res.Error == "" {
			t.Fatalf("test of a dead registry: %+v", res)
		}
		web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			w.Write([]byte("<html></html>"))
		}))
		defer web.Close()
		reg = e.registry(map[string]any{"name": "web", "url": web.URL})
		e.Call(http.MethodPost, reg["pulp_href"].(string)+"test/", nil, http.StatusOK, &res)
		if res.OK || res.Kind != "not_registry" {
			t.Fatalf("test of a web server: %+v", res)
		}
	})
}

func TestSyncRegistryChildren(t *testing.T) {
	eachSync(t, func(t *testing.T, e *syncEnv) {
		up := newUpstream(t)
		up.push("a/one", "1")
		up.push("a/two", "1")
		reg := e.registry(map[string]any{"name": "up", "url": up.srv.URL})
		for _, n := range []string{"one", "two"} {
			e.remoteImage(map[string]any{"name": "m/" + n, "upstream_name": "a/" + n, "registry": reg["pulp_href"]})
		}
		body := e.Call(http.MethodPost, reg["pulp_href"].(string)+"sync/", nil, http.StatusAccepted, nil)
		parent := e.RunTask(body)
		var children api.Page[api.TaskResponse]
		deadline := time.Now().Add(apitest.WaitTimeout)
		for {
			e.Call(http.MethodGet, "/pulp/api/v3/tasks/?parent_task="+parent.Href, nil, http.StatusOK, &children)
			done := 0
			for _, c := range children.Results {
				if c.State == "completed" {
					done++
				}
			}
			if children.Count == 2 && done == 2 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("children %+v", children)
			}
			time.Sleep(20 * time.Millisecond)
		}
		var got map[string]any
		e.Call(http.MethodGet, reg["pulp_href"].(string), nil, http.StatusOK, &got)
		last := got["last_sync_task"].(map[string]any)
		if got["images"] != float64(2) || last["state"] != "completed" || last["task"] != parent.Href {
			t.Fatalf("registry after its sync: %v", got)
		}
		for _, n := range []string{"one", "two"} {
			if tags := e.tagsOf("m/" + n); !slices.Equal(tags, []string{"1"}) {
				t.Fatalf("m/%s tags %v", n, tags)
			}
		}
	})
}

type syncCallerKey struct{}

// syncCallerFromHeader makes X-Test-User the REST caller.
func syncCallerFromHeader(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		c.SetRequest(r.WithContext(context.WithValue(r.Context(), syncCallerKey{}, testUser(c))))
		return next(c)
	}
}

// syncRoles lets "admin" manage remotes and "dev" sync the namespace "team".
type syncRoles struct{}

func (syncRoles) Authorize(c echo.Context, _ container.Access) (container.Identity, error) {
	return testUser(c), nil
}

func (syncRoles) Caller(ctx context.Context) container.Identity {
	who, _ := ctx.Value(syncCallerKey{}).(container.Identity)
	return who
}

func (syncRoles) Can(_ context.Context, who container.Identity, act container.Action, ns container.NamespaceStatus) (bool, error) {
	switch {
	case who.Username == "admin":
		return true, nil
	case who.Username == "dev":
		return act == container.ActionSync && ns.Name == "team", nil
	}
	return false, nil
}

func (syncRoles) Readable(context.Context, container.Identity) ([]string, bool, error) {
	return nil, false, nil
}

func TestRegistryPermissions(t *testing.T) {
	testdb.Each(t, sets, func(t *testing.T, g *gorm.DB) {
		e := newSyncEnv(t, g, container.WithAuthorizer(syncRoles{}))
		up := newUpstream(t)
		up.push("x/y", "1")
		as := func(user, method, path string, body any) *apitest.Response {
			t.Helper()
			raw, _ := json.Marshal(body)
			req, _ := http.NewRequest(method, e.URL+path, bytes.NewReader(raw))
			req.Header.Set("Content-Type", "application/json")
			if user != "" {
				req.Header.Set("X-Test-User", user)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return &apitest.Response{Status: resp.StatusCode, Body: b}
		}
		want := func(r *apitest.Response, status int) map[string]any {
			t.Helper()
			if r.Status != status {
				t.Fatalf("status %d %s, want %d", r.Status, r.Body, status)
			}
			var m map[string]any
			_ = json.Unmarshal(r.Body, &m)
			return m
		}
		regBody := map[string]any{"name": "up", "url": up.srv.URL}
		want(as("", http.MethodPost, container.RegistriesPath, regBody), http.StatusUnauthorized)
		want(as("dev", http.MethodPost, container.RegistriesPath, regBody), http.StatusForbidden)
		reg := want(as("admin", http.MethodPost, container.RegistriesPath, regBody), http.StatusCreated)
		want(as("", http.MethodGet, container.RegistriesPath, nil), http.StatusUnauthorized)
		want(as("dev", http.MethodGet, container.RegistriesPath, nil), http.StatusOK)
		imgBody := map[string]any{"name": "team/y", "upstream_name": "x/y", "registry": reg["pulp_href"]}
		want(as("dev", http.MethodPost, container.RemoteImagesPath, imgBody), http.StatusForbidden)
		img := want(as("admin", http.MethodPost, container.RemoteImagesPath, imgBody), http.StatusCreated)
		other := want(as("admin", http.MethodPost, container.RemoteImagesPath,
			map[string]any{"name": "other/y", "upstream_name": "x/y", "registry": reg["pulp_href"]}), http.StatusCreated)
		want(as("dev", http.MethodPost, other["pulp_href"].(string)+"sync/", nil), http.StatusForbidden)
		want(as("dev", http.MethodPost, reg["pulp_href"].(string)+"sync/", nil), http.StatusForbidden)
		want(as("dev", http.MethodPost, reg["pulp_href"].(string)+"test/", nil), http.StatusForbidden)
		r := want(as("dev", http.MethodPost, img["pulp_href"].(string)+"sync/", nil), http.StatusAccepted)
		e.WaitTask(r["task"].(string))
		want(as("dev", http.MethodDelete, img["pulp_href"].(string), nil), http.StatusForbidden)
		want(as("admin", http.MethodDelete, img["pulp_href"].(string), nil), http.StatusNoContent)
		want(as("admin", http.MethodGet, img["pulp_href"].(string), nil), http.StatusNotFound)
	})
}

// TestSyncOnDemandClientGoesAway: the client of a first pull leaves while
// the blob is fetched; the fetch goes on and stores it.
func TestSyncOnDemandClientGoesAway(t *testing.T) {
	eachSync(t, func(t *testing.T, e *syncEnv) {
		up := newUpstream(t)
		img := up.push("lib/tool", "1")
		reg := e.registry(map[string]any{"name": "lazy", "url": up.srv.URL, "policy": "on_demand"})
		ri := e.remoteImage(map[string]any{"name": "lazy/tool", "upstream_name": "lib/tool", "registry": reg["pulp_href"]})
		e.sync(ri["pulp_href"].(string))
		layers, _ := img.Layers()
		ld, _ := layers[0].Digest()
		asked := make(chan struct{}, 1)
		release := make(chan struct{})
		up.setFail(func(_ http.ResponseWriter, r *http.Request) bool {
			if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, ld.String()) {
				asked <- struct{}{}
				<-release // then the registry answers
			}
			return false
		})
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.URL+"/v2/lazy/tool/blobs/"+ld.String(), nil)
		done := make(chan error, 1)
		go func() {
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				resp.Body.Close()
			}
			done <- err
		}()
		select {
		case <-asked:
		case <-time.After(apitest.WaitTimeout):
			t.Fatal("the pull never reached the upstream")
		}
		cancel()
		<-done
		close(release)
		d := digest.Digest(ld.String())
		deadline := time.Now().Add(apitest.WaitTimeout)
		for {
			if _, err := e.blobs.Stat(context.Background(), d); err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the blob was not stored after its client left")
			}
			time.Sleep(20 * time.Millisecond)
		}
		up.setFail(nil)
		up.requests()
		want, _ := layers[0].Compressed()
		wantBytes, _ := io.ReadAll(want)
		if resp, b := e.v2(http.MethodGet, "lazy/tool/blobs/"+ld.String()); resp.StatusCode != 200 || !bytes.Equal(b, wantBytes) {
			t.Fatalf("pull after the fetch: %d", resp.StatusCode)
		}
		if c := counts(up.requests()); c["GET blobs"] != 0 {
			t.Fatalf("the pull after the fetch went upstream: %v", c)
		}
	})
}

// TestPulpRepositorySync: the Pulp-shaped sync of a container repository
// from a container remote made through the Pulp API, additive by default.
func TestPulpRepositorySync(t *testing.T) {
	eachSync(t, func(t *testing.T, e *syncEnv) {
		up := newUpstream(t)
		up.push("lib/a", "1")
		reg := e.registry(map[string]any{"name": "up", "url": up.srv.URL})
		ri := e.remoteImage(map[string]any{"name": "lib/a", "upstream_name": "lib/a", "registry": reg["pulp_href"]})
		repo := ri["repository"].(string)
		var rem map[string]any
		e.Call(http.MethodPost, "/pulp/api/v3/remotes/container/container/",
			map[string]any{"name": "other", "url": up.srv.URL, "upstream_name": "lib/b"}, http.StatusCreated, &rem)
		up.push("lib/b", "2")
		r := e.Do(http.MethodPost, repo+"sync/", map[string]any{"remote": "/pulp/api/v3/remotes/container/registry/" + core.NewID() + "/"})
		if r.Status != http.StatusBadRequest {
			t.Fatalf("sync from a registry href: %d %s", r.Status, r.Body)
		}
		e.RunTask(e.Call(http.MethodPost, repo+"sync/", nil, http.StatusAccepted, nil)) // its own remote
		e.RunTask(e.Call(http.MethodPost, repo+"sync/", map[string]any{"remote": rem["pulp_href"]}, http.StatusAccepted, nil))
		if got := e.tagsOf("lib/a"); !slices.Equal(got, []string{"1", "2"}) {
			t.Fatalf("tags after an additive sync from another remote: %v", got)
		}
		e.RunTask(e.Call(http.MethodPost, repo+"sync/", map[string]any{"mirror": true}, http.StatusAccepted, nil))
		if got := e.tagsOf("lib/a"); !slices.Equal(got, []string{"1"}) {
			t.Fatalf("tags after a mirror sync: %v", got)
		}
	})
}
