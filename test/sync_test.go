package test

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	ggrandom "github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/crypto/bcrypt"

	"github.com/berth-dev/berth/core/db"
)

// The sync tests mirror images from a real upstream registry: the
// distribution reference registry (bin/tools/registry, `make tools`) on a
// loopback port with filesystem storage and htpasswd authentication, seen
// through a small proxy of our own that records every request (and, for
// one test, injects faults). Berth runs as real processes: berth serve and
// a berth worker on PostgreSQL and Redis (the syncs run in the worker), or
// berth serve alone on SQLite.

const (
	upUser = "mirror"
	upPass = "upstream-e2e-password"
)

// upstreamRegistry is a running reference registry.
type upstreamRegistry struct {
	URL  string // http://127.0.0.1:port
	Host string // 127.0.0.1:port
	logs *logBuffer
}

// startUpstream runs the reference registry with htpasswd authentication
// (user upUser) and deletes enabled. It skips locally (fails in CI) when
// the binary is missing.
func startUpstream(t testing.TB) *upstreamRegistry {
	t.Helper()
	bin := requireTool(t, "registry")
	dir := t.TempDir()
	addr := freeAddr(t)
	hash, err := bcrypt.GenerateFromPassword([]byte(upPass), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	htpasswd := filepath.Join(dir, "htpasswd")
	if err := os.WriteFile(htpasswd, []byte(upUser+":"+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	secret := make([]byte, 16)
	_, _ = rand.Read(secret)
	config := fmt.Sprintf(`version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: %s
  secret: %s
auth:
  htpasswd:
    realm: upstream-e2e
    path: %s
`, filepath.Join(dir, "storage"), addr, hex.EncodeToString(secret), htpasswd)
	cfg := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfg, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", cfg)
	cmd.Env = append(os.Environ(), "OTEL_TRACES_EXPORTER=none", "OTEL_METRICS_EXPORTER=none", "OTEL_LOGS_EXPORTER=none")
	logs := &logBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("start the reference registry: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Signal(syscall.SIGKILL)
			<-done
		}
		if t.Failed() {
			t.Logf("---- upstream registry output ----\n%s", tail(logs.String(), 60))
		}
	})
	u := &upstreamRegistry{URL: "http://" + addr, Host: addr, logs: logs}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(u.URL + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusUnauthorized {
				return u
			}
		}
		select {
		case <-done:
			t.Fatalf("the reference registry exited during start:\n%s", tail(logs.String(), 50))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the reference registry is not ready after 30s:\n%s", tail(logs.String(), 50))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (u *upstreamRegistry) opts() []remote.Option {
	return []remote.Option{remote.WithAuth(&authn.Basic{Username: upUser, Password: upPass})}
}

func (u *upstreamRegistry) ref(t testing.TB, s string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(u.Host+"/"+s, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// image makes a small random image for platform arch, as Docker's format.
func syncImage(t testing.TB, arch string) v1.Image {
	t.Helper()
	img, err := ggrandom.Image(2048, 2)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", arch
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// push writes img as repo:tag upstream and returns its digest.
func (u *upstreamRegistry) push(t testing.TB, repo, tag string, img v1.Image) string {
	t.Helper()
	if err := remote.Write(u.ref(t, repo+":"+tag), img, u.opts()...); err != nil {
		t.Fatalf("push %s:%s upstream: %v", repo, tag, err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

// pushList writes a Docker manifest list of an amd64 and an arm64 image.
func (u *upstreamRegistry) pushList(t testing.TB, repo, tag string) (string, []string) {
	t.Helper()
	var adds []mutate.IndexAddendum
	var children []string
	for _, arch := range []string{"amd64", "arm64"} {
		img := syncImage(t, arch)
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: arch}}})
		d, _ := img.Digest()
		children = append(children, d.String())
	}
	idx := mutate.IndexMediaType(mutate.AppendManifests(empty.Index, adds...), types.DockerManifestList)
	if err := remote.WriteIndex(u.ref(t, repo+":"+tag), idx, u.opts()...); err != nil {
		t.Fatalf("push the manifest list %s:%s: %v", repo, tag, err)
	}
	d, _ := idx.Digest()
	return d.String(), children
}

// deleteTag removes a tag upstream by deleting its manifest (the reference
// registry deletes manifests, with every tag of them).
func (u *upstreamRegistry) deleteManifest(t testing.TB, repo, dgst string) {
	t.Helper()
	if err := remote.Delete(u.ref(t, repo+"@"+dgst), u.opts()...); err != nil {
		t.Fatalf("delete %s@%s upstream: %v", repo, dgst, err)
	}
}

// ---- the recording (and fault-injecting) proxy ----

// hit is one request that reached the proxy.
type hit struct {
	At     time.Time
	Method string
	Path   string
	Status int
}

// recorder is a reverse proxy in front of the upstream that records every
// request; fault, when set, may answer one itself.
type recorder struct {
	srv   *httptest.Server
	URL   string
	mu    sync.Mutex
	hits  []hit
	fault func(w http.ResponseWriter, r *http.Request, n int) bool
}

func newRecorder(t testing.TB, target string) *recorder {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ErrorLog = log.New(io.Discard, "", 0) // canceled requests are expected
	rec := &recorder{}
	rec.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec.mu.Lock()
		n := len(rec.hits)
		rec.hits = append(rec.hits, hit{At: time.Now(), Method: r.Method, Path: r.URL.Path})
		fault := rec.fault
		rec.mu.Unlock()
		if fault != nil && fault(w, r, n) {
			return
		}
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		rp.ServeHTTP(sw, r)
		rec.mu.Lock()
		rec.hits[n].Status = sw.status
		rec.mu.Unlock()
	}))
	t.Cleanup(rec.srv.Close)
	rec.URL = rec.srv.URL
	return rec
}

// take returns and forgets the hits so far.
func (r *recorder) take() []hit {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.hits
	r.hits = nil
	return out
}

// count counts hits by method and resource kind ("GET blobs", "HEAD
// manifests", "GET tags").
func countHits(hits []hit) map[string]int {
	out := map[string]int{}
	for _, h := range hits {
		for _, k := range []string{"/manifests/", "/blobs/", "/tags/"} {
			if strings.Contains(h.Path, k) {
				out[h.Method+" "+strings.Trim(k, "/")]++
			}
		}
	}
	return out
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// ---- Berth ----

// syncCluster is a Berth to mirror into, with its REST client and the
// upstream behind a recorder.
type syncCluster struct {
	env  *Env
	srv  *Server
	api  *Client
	up   *upstreamRegistry
	dir  string
	auth string // podman/skopeo auth file
}

// newSyncCluster starts berth serve (and, with a worker, a berth worker on
// PostgreSQL and Redis that runs the syncs) and the upstream registry.
func newSyncCluster(t *testing.T, withWorker bool) *syncCluster {
	t.Helper()
	up := startUpstream(t)
	var env *Env
	if withWorker {
		env = NewEnv(t, db.Postgres, true)
	} else {
		env = NewEnv(t, db.SQLite, false)
	}
	env.Extra = []string{"BERTH_ACCESS_LOG=false", "BERTH_LOG_LEVEL=info"}
	c := &syncCluster{env: env, up: up, dir: t.TempDir()}
	c.srv = env.Serve(t)
	if withWorker {
		env.Worker(t, "sync-worker")
	}
	c.api = c.srv.API(t)
	c.auth = filepath.Join(c.dir, "auth.json")
	return c
}

// call sends a REST request and fails the test unless it answers want.
func (c *syncCluster) call(t testing.TB, method, path string, body any, want int, out any) []byte {
	t.Helper()
	status, raw := c.api.Do(method, path, body, out)
	if status != want {
		t.Fatalf("%s %s: %d %s, want %d", method, path, status, raw, want)
	}
	return raw
}

// registry creates a remote registry for url (the recorder's, usually).
func (c *syncCluster) registry(t testing.TB, name, url string, extra map[string]any) string {
	t.Helper()
	body := map[string]any{"name": name, "url": url, "username": upUser, "password": upPass}
	for k, v := range extra {
		body[k] = v
	}
	var out struct {
		Href string `json:"pulp_href"`
	}
	c.call(t, http.MethodPost, "/api/v1/registries/", body, http.StatusCreated, &out)
	return out.Href
}

type remoteImageView struct {
	Href          string `json:"pulp_href"`
	Name          string `json:"name"`
	LatestVersion int    `json:"latest_version"`
	Repository    string `json:"repository"`
	LastSync      *struct {
		Task  string `json:"task"`
		State string `json:"state"`
	} `json:"last_sync_task"`
}

func (c *syncCluster) remoteImage(t testing.TB, body map[string]any) remoteImageView {
	t.Helper()
	var out remoteImageView
	c.call(t, http.MethodPost, "/api/v1/remote-images/", body, http.StatusCreated, &out)
	return out
}

func (c *syncCluster) image(t testing.TB, href string) remoteImageView {
	t.Helper()
	var out remoteImageView
	c.call(t, http.MethodGet, href, nil, http.StatusOK, &out)
	return out
}

type syncTask struct {
	Href   string `json:"pulp_href"`
	State  string `json:"state"`
	Error  *struct{ Description string }
	Result struct {
		Version             int   `json:"version"`
		Created             bool  `json:"created"`
		Tags                int   `json:"tags"`
		ManifestsDownloaded int   `json:"manifests_downloaded"`
		BlobsDownloaded     int   `json:"blobs_downloaded"`
		BytesDownloaded     int64 `json:"bytes_downloaded"`
		BlobsOnDemand       int   `json:"blobs_on_demand"`
	} `json:"result"`
	ProgressReports []struct {
		Code  string `json:"code"`
		Done  int64  `json:"done"`
		Total *int64 `json:"total"`
		State string `json:"state"`
	} `json:"progress_reports"`
}

// startSync dispatches a sync (POST …/sync/) and returns the task href.
func (c *syncCluster) startSync(t testing.TB, href string) string {
	t.Helper()
	var a struct{ Task string }
	c.call(t, http.MethodPost, href+"sync/", nil, http.StatusAccepted, &a)
	if a.Task == "" {
		t.Fatalf("sync of %s: no task", href)
	}
	return a.Task
}

// waitTask polls a task until it is finished.
func (c *syncCluster) waitTask(t testing.TB, href string, timeout time.Duration) syncTask {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var v syncTask
		c.call(t, http.MethodGet, href, nil, http.StatusOK, &v)
		switch v.State {
		case "completed", "failed", "canceled":
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("task %s still %s after %s", href, v.State, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// sync syncs a remote image and fails the test unless the task completes.
func (c *syncCluster) sync(t testing.TB, href string) syncTask {
	t.Helper()
	v := c.waitTask(t, c.startSync(t, href), 3*time.Minute)
	if v.State != "completed" {
		t.Fatalf("sync of %s ended %s: %+v", href, v.State, v.Error)
	}
	return v
}

// tags lists an image's tags through Berth's /v2/.
func (c *syncCluster) tags(t testing.TB, image string) []string {
	t.Helper()
	out := strings.Fields(run(t, requireTool(t, "crane"), "ls", "--insecure", c.srv.Addr+"/"+image))
	sort.Strings(out)
	return out
}

// waitTags waits until Berth serves image with the tags want. A version
// made by a worker reaches the serve process within its cache's TTL for
// "which version does this name serve" (1.5 s).
func (c *syncCluster) waitTags(t testing.TB, image string, want []string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := c.tags(t, image)
		if slices.Equal(got, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s serves the tags %v, want %v", image, got, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// digest is what a reference resolves to in Berth.
func (c *syncCluster) digest(t testing.TB, ref string) string {
	t.Helper()
	return strings.TrimSpace(run(t, requireTool(t, "crane"), "digest", "--insecure", c.srv.Addr+"/"+ref))
}

// stored reports whether Berth's blob storage holds blob d (fs layout).
func (c *syncCluster) stored(d string) bool {
	alg, hexd, _ := strings.Cut(d, ":")
	_, err := os.Stat(filepath.Join(c.env.DataDir, "storage", "blobs", alg, hexd[:2], hexd))
	return err == nil
}

// craneLogin makes crane (DOCKER_CONFIG) log in to Berth as the admin.
func (c *syncCluster) craneLogin(t *testing.T) {
	t.Helper()
	docker := filepath.Join(c.dir, "docker")
	if err := os.MkdirAll(docker, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DOCKER_CONFIG", docker)
	run(t, requireTool(t, "crane"), "auth", "login", c.srv.Addr, "-u", "admin", "-p", "admin-e2e-password")
}

// seed fills the upstream: team/tool (two tags of one image and one of
// another), multi/app:1.0 (a Docker manifest list, amd64 + arm64) and
// many/tags with 30 tags t00…t29 of distinct images.
type seeded struct {
	tool     map[string]string // tag → digest
	list     string
	children []string
	many     map[string]string
	toolImg  v1.Image
}

func seedUpstream(t *testing.T, up *upstreamRegistry) *seeded {
	t.Helper()
	s := &seeded{tool: map[string]string{}, many: map[string]string{}}
	s.toolImg = syncImage(t, "amd64")
	s.tool["1.0"] = up.push(t, "team/tool", "1.0", s.toolImg)
	s.tool["latest"] = up.push(t, "team/tool", "latest", s.toolImg)
	s.tool["0.9"] = up.push(t, "team/tool", "0.9", syncImage(t, "amd64"))
	s.list, s.children = up.pushList(t, "multi/app", "1.0")
	var wg sync.WaitGroup
	var mu sync.Mutex
	for i := range 30 {
		wg.Go(func() {
			tag := fmt.Sprintf("t%02d", i)
			d := up.push(t, "many/tags", tag, syncImage(t, "amd64"))
			mu.Lock()
			s.many[tag] = d
			mu.Unlock()
		})
	}
	wg.Wait()
	return s
}

// TestSyncMirror mirrors from the reference registry through berth worker
// (PostgreSQL, Redis): tag filters, a renamed image, a multi-arch list, a
// re-sync that changes nothing and fetches nothing, upstream removals
// mirrored, a registry-wide sync, and podman pulls of every synced tag
// with the upstream digests.
func TestSyncMirror(t *testing.T) {
	c := newSyncCluster(t, true)
	seed := seedUpstream(t, c.up)
	rec := newRecorder(t, c.up.URL)
	c.craneLogin(t)

	// Bad input is refused, naming the field.
	for _, bad := range []struct {
		body  map[string]any
		field string
	}{
		{map[string]any{"name": "x", "url": "not a url"}, "url"},
		{map[string]any{"name": "x", "url": rec.URL, "rate_limit": -2}, "rate_limit"},
		{map[string]any{"name": "x", "url": rec.URL, "download_concurrency": 0}, "download_concurrency"},
	} {
		status, raw := c.api.Do(http.MethodPost, "/api/v1/registries/", bad.body, nil)
		if status != http.StatusBadRequest || !strings.Contains(string(raw), `"`+bad.field+`"`) {
			t.Fatalf("registry %v: %d %s, want 400 naming %s", bad.body, status, raw, bad.field)
		}
	}
	reg := c.registry(t, "upstream", rec.URL, map[string]any{"download_concurrency": 4})
	if status, raw := c.api.Do(http.MethodPost, "/api/v1/registries/", map[string]any{"name": "upstream", "url": rec.URL}, nil); status != http.StatusConflict {
		t.Fatalf("duplicate registry: %d %s", status, raw)
	}
	var test struct {
		OK   bool   `json:"ok"`
		Kind string `json:"kind"`
	}
	c.call(t, http.MethodPost, reg+"test/", nil, http.StatusOK, &test)
	if !test.OK {
		t.Fatalf("connection test: %+v", test)
	}
	wrong := c.registry(t, "wrong-password", rec.URL, map[string]any{"password": "nope"})
	c.call(t, http.MethodPost, wrong+"test/", nil, http.StatusOK, &test)
	if test.OK || test.Kind != "unauthorized" {
		t.Fatalf("connection test with a wrong password: %+v", test)
	}
	for _, bad := range []struct {
		body  map[string]any
		field string
		want  int
	}{
		{map[string]any{"name": "m/x", "upstream_name": "a/b", "registry": "/api/v1/registries/00000000-0000-0000-0000-000000000000/"}, "registry", 400},
		{map[string]any{"name": "m/x", "upstream_name": "a/b", "registry": reg, "include_tags": []string{"[a-"}}, "include_tags", 400},
	} {
		status, raw := c.api.Do(http.MethodPost, "/api/v1/remote-images/", bad.body, nil)
		if status != bad.want || !strings.Contains(string(raw), `"`+bad.field+`"`) {
			t.Fatalf("remote image %v: %d %s", bad.body, status, raw)
		}
	}

	// Filtered: t1* without t15.
	many := c.remoteImage(t, map[string]any{"name": "mirror/many", "upstream_name": "many/tags", "registry": reg,
		"include_tags": []string{"t1*"}, "exclude_tags": []string{"t15"}})
	if many.LatestVersion != 0 || many.LastSync != nil {
		t.Fatalf("new remote image %+v", many)
	}
	// Renamed: team/tool is local/tool here.
	tool := c.remoteImage(t, map[string]any{"name": "local/tool", "upstream_name": "team/tool", "registry": reg,
		"exclude_tags": []string{"0.*"}})
	app := c.remoteImage(t, map[string]any{"name": "mirror/app", "upstream_name": "multi/app", "registry": reg})
	status, raw := c.api.Do(http.MethodPost, "/api/v1/remote-images/", map[string]any{"name": "local/tool", "upstream_name": "team/tool", "registry": reg}, nil)
	if status != http.StatusConflict {
		t.Fatalf("duplicate remote image: %d %s", status, raw)
	}

	// One registry-wide sync: a parent task and one child per image.
	var parent struct{ Task string }
	c.call(t, http.MethodPost, reg+"sync/", nil, http.StatusAccepted, &parent)
	deadline := time.Now().Add(3 * time.Minute)
	for {
		var children struct {
			Count   int
			Results []syncTask
		}
		c.call(t, http.MethodGet, "/pulp/api/v3/tasks/?parent_task="+url.QueryEscape(parent.Task), nil, http.StatusOK, &children)
		done := 0
		for _, ch := range children.Results {
			if ch.State == "completed" {
				done++
			} else if ch.State == "failed" || ch.State == "canceled" {
				t.Fatalf("child sync %s ended %s: %+v", ch.Href, ch.State, ch.Error)
			}
		}
		if children.Count == 3 && done == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("registry sync children: %+v", children)
		}
		time.Sleep(200 * time.Millisecond)
	}
	var regView struct {
		Images   int `json:"images"`
		LastSync struct {
			Task  string `json:"task"`
			State string `json:"state"`
		} `json:"last_sync_task"`
	}
	c.call(t, http.MethodGet, reg, nil, http.StatusOK, &regView)
	if regView.Images != 3 || regView.LastSync.Task != parent.Task || regView.LastSync.State != "completed" {
		t.Fatalf("registry after its sync: %+v", regView)
	}

	wantMany := []string{"t10", "t11", "t12", "t13", "t14", "t16", "t17", "t18", "t19"}
	c.waitTags(t, "mirror/many", wantMany)
	for _, tag := range wantMany {
		if got := c.digest(t, "mirror/many:"+tag); got != seed.many[tag] {
			t.Fatalf("mirror/many:%s is %s, upstream %s", tag, got, seed.many[tag])
		}
	}
	c.waitTags(t, "local/tool", []string{"1.0", "latest"})
	c.waitTags(t, "mirror/app", []string{"1.0"})
	if got := c.digest(t, "mirror/app:1.0"); got != seed.list {
		t.Fatalf("manifest list digest %s, upstream %s", got, seed.list)
	}
	// The multi-arch image came whole: skopeo copies every child out.
	skopeo := requireTool(t, "skopeo")
	run(t, skopeo, "copy", "--all", "--src-tls-verify=false", "--src-creds", "admin:admin-e2e-password",
		"docker://"+c.srv.Addr+"/mirror/app:1.0", "oci:"+filepath.Join(c.dir, "app-layout")+":1.0")
	for _, child := range seed.children {
		if got := c.digest(t, "mirror/app@"+child); got != child {
			t.Fatalf("child %s: %s", child, got)
		}
	}
	for _, img := range []*remoteImageView{&many, &tool, &app} {
		*img = c.image(t, img.Href)
		if img.LatestVersion != 1 || img.LastSync == nil || img.LastSync.State != "completed" {
			t.Fatalf("%s after its sync: %+v", img.Name, *img)
		}
	}

	// podman pulls every synced tag, with the upstream digests.
	podman := requireTool(t, "podman")
	pm := func(args ...string) string { return run(t, podman, podmanArgs(c.dir, args...)...) }
	pm("login", "--tls-verify=false", "--authfile", c.auth, "-u", "admin", "-p", "admin-e2e-password", c.srv.Addr)
	want := map[string]string{"local/tool:1.0": seed.tool["1.0"], "local/tool:latest": seed.tool["latest"], "mirror/app:1.0": seed.list}
	for _, tag := range wantMany {
		want["mirror/many:"+tag] = seed.many[tag]
	}
	for ref, d := range want {
		pm("pull", "-q", "--tls-verify=false", "--authfile", c.auth, c.srv.Addr+"/"+ref)
		digests := pm("image", "inspect", "--format", "{{.Digest}} {{range .RepoDigests}}{{.}} {{end}}", c.srv.Addr+"/"+ref)
		if !strings.Contains(digests, d) {
			t.Errorf("podman pulled %s with digests %q, upstream %s", ref, digests, d)
		}
	}

	// A re-sync with nothing new upstream: HEAD requests only, no version.
	rec.take()
	v := c.sync(t, many.Href)
	hits := countHits(rec.take())
	if v.Result.Created || v.Result.Version != 1 || hits["GET blobs"] != 0 || hits["GET manifests"] != 0 || hits["HEAD manifests"] != len(wantMany) {
		t.Fatalf("re-sync: result %+v, upstream requests %v", v.Result, hits)
	}
	if got := c.image(t, many.Href); got.LatestVersion != 1 {
		t.Fatalf("re-sync made version %d", got.LatestVersion)
	}

	// Upstream removes t12 and adds t1x: mirrored in one new version.
	c.up.deleteManifest(t, "many/tags", seed.many["t12"])
	seed.many["t1x"] = c.up.push(t, "many/tags", "t1x", syncImage(t, "amd64"))
	v = c.sync(t, many.Href)
	if !v.Result.Created || v.Result.Version != 2 || v.Result.ManifestsDownloaded != 1 {
		t.Fatalf("sync after upstream changes: %+v", v.Result)
	}
	wantMany = []string{"t10", "t11", "t13", "t14", "t16", "t17", "t18", "t19", "t1x"}
	c.waitTags(t, "mirror/many", wantMany)
	if out, err := runErr(requireTool(t, "crane"), "manifest", "--insecure", c.srv.Addr+"/mirror/many@"+seed.many["t12"]); err == nil {
		t.Fatalf("the manifest of the removed tag is still served:\n%s", out)
	}

	// The sync history: the tasks filed under the remote image.
	var hist struct{ Count int }
	c.call(t, http.MethodGet, many.Href+"syncs/", nil, http.StatusOK, &hist)
	if hist.Count != 3 {
		t.Fatalf("sync history of mirror/many: %d tasks", hist.Count)
	}
	c.call(t, http.MethodGet, "/pulp/api/v3/tasks/?reserved_resources="+url.QueryEscape(many.Href), nil, http.StatusOK, &hist)
	if hist.Count != 3 {
		t.Fatalf("tasks reserving mirror/many: %d", hist.Count)
	}
}

// TestSyncOnDemand: an on_demand registry's sync records the layers
// without downloading them; the first pull fetches each from the upstream
// while streaming it, and later pulls are served from storage.
func TestSyncOnDemand(t *testing.T) {
	c := newSyncCluster(t, false)
	seed := seedUpstream(t, c.up)
	rec := newRecorder(t, c.up.URL)
	c.craneLogin(t)
	reg := c.registry(t, "lazy", rec.URL, map[string]any{"policy": "on_demand"})
	img := c.remoteImage(t, map[string]any{"name": "lazy/tool", "upstream_name": "team/tool", "registry": reg, "include_tags": []string{"1.0"}})
	v := c.sync(t, img.Href)
	if v.Result.BlobsOnDemand != 2 || v.Result.BlobsDownloaded != 1 {
		t.Fatalf("on_demand sync: %+v", v.Result)
	}
	layers, err := seed.toolImg.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range layers {
		ld, _ := l.Digest()
		if c.stored(ld.String()) {
			t.Fatalf("layer %s stored by the on_demand sync", ld)
		}
		rec.take()
		crane := requireTool(t, "crane")
		got := run(t, crane, "blob", "--insecure", c.srv.Addr+"/lazy/tool@"+ld.String())
		rc, _ := l.Compressed()
		want, _ := io.ReadAll(rc)
		if !bytes.Equal([]byte(got), want) {
			t.Fatalf("layer %d pulled through differs from upstream (%d vs %d bytes)", i, len(got), len(want))
		}
		if !c.stored(ld.String()) {
			t.Fatalf("layer %s not stored after the first pull", ld)
		}
		if n := countHits(rec.take())["GET blobs"]; n != 1 {
			t.Fatalf("first pull: %d upstream blob GETs", n)
		}
		again := run(t, crane, "blob", "--insecure", c.srv.Addr+"/lazy/tool@"+ld.String())
		if again != got {
			t.Fatal("second pull differs")
		}
		if n := countHits(rec.take())["GET blobs"]; n != 0 {
			t.Fatalf("second pull went upstream (%d blob GETs)", n)
		}
	}
	// The whole image pulls, with the upstream digest.
	podman := requireTool(t, "podman")
	pm := func(args ...string) string { return run(t, podman, podmanArgs(c.dir, args...)...) }
	pm("login", "--tls-verify=false", "--authfile", c.auth, "-u", "admin", "-p", "admin-e2e-password", c.srv.Addr)
	pm("pull", "-q", "--tls-verify=false", "--authfile", c.auth, c.srv.Addr+"/lazy/tool:1.0")
	if got := pm("image", "inspect", "--format", "{{.Digest}}", c.srv.Addr+"/lazy/tool:1.0"); !strings.Contains(got, seed.tool["1.0"]) {
		t.Fatalf("podman pulled digest %s, upstream %s", got, seed.tool["1.0"])
	}
}

// TestSyncRateLimit measures the requests per second that reach the
// upstream during a sync with rate_limit 5 and checks the limit holds.
func TestSyncRateLimit(t *testing.T) {
	const limit = 5.0
	c := newSyncCluster(t, true)
	seedUpstream(t, c.up)
	rec := newRecorder(t, c.up.URL)
	reg := c.registry(t, "limited", rec.URL, map[string]any{"rate_limit": limit, "download_concurrency": 8})
	img := c.remoteImage(t, map[string]any{"name": "limited/many", "upstream_name": "many/tags", "registry": reg, "include_tags": []string{"t0*"}})
	rec.take()
	start := time.Now()
	v := c.sync(t, img.Href)
	took := time.Since(start)
	hits := rec.take()
	if v.Result.Tags != 10 || len(hits) < 40 {
		t.Fatalf("sync %+v with %d upstream requests", v.Result, len(hits))
	}
	first, last := hits[0].At, hits[len(hits)-1].At
	avg := float64(len(hits)-1) / last.Sub(first).Seconds()
	// The most requests in any one-second window (a token bucket of rate r
	// and burst 1 allows at most r+1 in a closed window of one second).
	peak := 0
	for i := range hits {
		n := 0
		for j := i; j < len(hits) && hits[j].At.Sub(hits[i].At) <= time.Second; j++ {
			n++
		}
		peak = max(peak, n)
	}
	t.Logf("rate limit %.0f/s: %d upstream requests in %.2fs (sync %.2fs): average %.2f/s, peak %d in a 1s window",
		limit, len(hits), last.Sub(first).Seconds(), took.Seconds(), avg, peak)
	if avg > limit*1.02 {
		t.Errorf("average rate %.2f/s above the limit %.0f/s", avg, limit)
	}
	if peak > int(limit)+1 {
		t.Errorf("%d requests within one second, limit %.0f/s", peak, limit)
	}
}

// TestSyncFaults syncs through a proxy that answers 429 with Retry-After
// to some requests and drops the connection in the middle of blob bodies:
// the sync completes and the content is right.
func TestSyncFaults(t *testing.T) {
	c := newSyncCluster(t, false)
	seed := seedUpstream(t, c.up)
	rec := newRecorder(t, c.up.URL)
	var limited, dropped atomic.Int32
	seenBlob := sync.Map{}
	rec.fault = func(w http.ResponseWriter, r *http.Request, n int) bool {
		switch {
		case n%6 == 5 && r.URL.Path != "/v2/":
			limited.Add(1)
			w.Header().Set("Retry-After", "1")
			http.Error(w, `{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}`, http.StatusTooManyRequests)
			return true
		case r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/"):
			if _, again := seenBlob.LoadOrStore(r.URL.Path, true); again {
				return false
			}
			dropped.Add(1)
			dropMidBody(w, r, c.up.URL)
			return true
		}
		return false
	}
	c.craneLogin(t)
	reg := c.registry(t, "flaky", rec.URL, nil)
	img := c.remoteImage(t, map[string]any{"name": "flaky/many", "upstream_name": "many/tags", "registry": reg, "include_tags": []string{"t2*"}})
	v := c.sync(t, img.Href)
	if v.Result.Tags != 10 || v.Result.BlobsDownloaded != 30 {
		t.Fatalf("sync through faults: %+v", v.Result)
	}
	if limited.Load() == 0 || dropped.Load() == 0 {
		t.Fatalf("no fault injected (429: %d, dropped: %d)", limited.Load(), dropped.Load())
	}
	t.Logf("sync completed through %d answers 429 and %d connections dropped mid-body", limited.Load(), dropped.Load())
	for tag, d := range seed.many {
		if !strings.HasPrefix(tag, "t2") {
			continue
		}
		if got := c.digest(t, "flaky/many:"+tag); got != d {
			t.Fatalf("%s: %s, upstream %s", tag, got, d)
		}
	}
	// Every layer arrived whole: crane validates the image end to end.
	run(t, requireTool(t, "crane"), "validate", "--insecure", "--remote", c.srv.Addr+"/flaky/many:t25")
}

// dropMidBody fetches the blob from the upstream and sends half of it,
// then closes the connection.
func dropMidBody(w http.ResponseWriter, r *http.Request, upstream string) {
	req, _ := http.NewRequestWithContext(r.Context(), r.Method, upstream+r.URL.Path, nil)
	req.Header = r.Header.Clone()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for k, vs := range resp.Header {
		w.Header()[k] = vs
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(body[:len(body)/2])
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	if hj, ok := w.(http.Hijacker); ok {
		if conn, buf, err := hj.Hijack(); err == nil {
			_ = buf.Flush()
			closeNow(conn)
		}
	}
}

func closeNow(conn net.Conn) {
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}

// TestSyncCancel cancels a sync in the middle of its downloads: the task
// ends canceled and the image keeps its previous version.
func TestSyncCancel(t *testing.T) {
	c := newSyncCluster(t, true)
	seed := seedUpstream(t, c.up)
	rec := newRecorder(t, c.up.URL)
	c.craneLogin(t)
	reg := c.registry(t, "slow", rec.URL, map[string]any{"rate_limit": 4})
	img := c.remoteImage(t, map[string]any{"name": "slow/many", "upstream_name": "many/tags", "registry": reg, "include_tags": []string{"t00"}})
	c.sync(t, img.Href)
	c.call(t, http.MethodPatch, img.Href, map[string]any{"include_tags": []string{"t*"}}, http.StatusOK, nil)
	task := c.startSync(t, img.Href)
	// Wait until blobs are being downloaded.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var v syncTask
		c.call(t, http.MethodGet, task, nil, http.StatusOK, &v)
		downloading := false
		for _, p := range v.ProgressReports {
			if p.Code == "sync.downloading_blobs" && p.Done > 0 {
				downloading = true
			}
		}
		if downloading {
			break
		}
		if v.State != "waiting" && v.State != "running" {
			t.Fatalf("sync ended %s before it could be canceled", v.State)
		}
		if time.Now().After(deadline) {
			t.Fatal("the sync did not start downloading")
		}
		time.Sleep(100 * time.Millisecond)
	}
	canceledAt := time.Now()
	c.call(t, http.MethodPatch, task, map[string]any{"state": "canceled"}, http.StatusOK, nil)
	v := c.waitTask(t, task, time.Minute)
	if v.State != "canceled" {
		t.Fatalf("canceled sync ended %s", v.State)
	}
	stopped := time.Since(canceledAt)
	// The downloads stopped: nothing more reaches the upstream.
	rec.take()
	time.Sleep(time.Second)
	if n := len(rec.take()); n != 0 {
		t.Fatalf("%d upstream requests after the cancel", n)
	}
	t.Logf("canceled in %.2fs", stopped.Seconds())
	if got := c.image(t, img.Href); got.LatestVersion != 1 || got.LastSync == nil || got.LastSync.State != "canceled" {
		t.Fatalf("after the cancel: %+v", got)
	}
	if got := c.tags(t, "slow/many"); !slices.Equal(got, []string{"t00"}) {
		t.Fatalf("tags after the cancel: %v", got)
	}
	if got := c.digest(t, "slow/many:t00"); got != seed.many["t00"] {
		t.Fatalf("t00 after the cancel: %s", got)
	}
}
