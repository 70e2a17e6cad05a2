package test

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/berth-dev/berth/core/db"
	"github.com/berth-dev/berth/internal/testimage"
)

// The tests in this file build images with the real buildah, offline, in
// real berth processes: a small base image (Debian's static busybox, an
// /etc/passwd, and stand-ins for apt-get, conda and pip that append their
// arguments to /args.log) is pushed into Berth, and builds start from it.

// buildsPath is the builds API.
const buildsPath = "/api/v1/builds/"

// buildView is what the tests read of a build.
type buildView struct {
	Href          string     `json:"pulp_href"`
	ID            string     `json:"id"`
	Target        string     `json:"target"`
	Tag           string     `json:"tag"`
	UniqueTag     string     `json:"unique_tag"`
	Images        []string   `json:"images"`
	Mode          string     `json:"mode"`
	ResolvedBase  string     `json:"resolved_base"`
	Containerfile string     `json:"containerfile"`
	Phase         string     `json:"phase"`
	Task          *string    `json:"task"`
	Previous      *string    `json:"previous"`
	StartedAt     *time.Time `json:"started_at"`
	FinishedAt    *time.Time `json:"finished_at"`
	Digest        *string    `json:"digest"`
	Error         *string    `json:"error"`
	Logs          string     `json:"logs"`
}

// requireBuilds skips (locally) or fails (CI) a test on a machine that
// cannot run buildah builds.
func requireBuilds(t *testing.T) {
	t.Helper()
	if runtime.GOOS != "linux" || os.Geteuid() != 0 {
		requireTool(t, "__root_on_linux_for_buildah__")
	}
	requireTool(t, "buildah")
	requireFile(t, testimage.BusyboxPath, "busybox-static")
}

// buildEnv is a berth serve (and, in Redis mode, a berth worker) with the
// base image base/busybox:1 pushed into it.
type buildEnv struct {
	env    *Env
	srv    *Server
	api    *Client
	worker *Proc // the separate build worker, with Redis
	dir    string
}

func newBuildEnv(t *testing.T, dialect db.Dialect, withRedis bool) *buildEnv {
	t.Helper()
	requireBuilds(t)
	env := NewEnv(t, dialect, withRedis)
	env.Extra = []string{"BERTH_BUILD_WORKERS=2", "BERTH_ACCESS_LOG=false", "BERTH_LOG_LEVEL=info"}
	e := &buildEnv{env: env, dir: t.TempDir()}
	e.srv = env.Serve(t)
	e.api = e.srv.API(t)
	if withRedis {
		// A worker elsewhere reaches Berth's registry at the address it is told.
		e.worker = env.Worker(t, "builder", "BERTH_BUILD_REGISTRY="+e.srv.Addr)
	}
	e.pushBase(t, "base/busybox:1")
	return e
}

// adminAuth are the admin's credentials for go-containerregistry.
func adminAuth() remote.Option {
	return remote.WithAuth(&authn.Basic{Username: "admin", Password: "admin-e2e-password"})
}

func (e *buildEnv) ref(t *testing.T, s string) name.Reference {
	t.Helper()
	ref, err := name.ParseReference(e.srv.Addr+"/"+s, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

// standIn is a package manager stand-in: it appends a header and its
// arguments, one per line, to /args.log, and says so on stdout.
func standIn(name string) string {
	return "#!/bin/sh\n" +
		"echo \"" + name + " stand-in: $# arguments\"\n" +
		`{ echo "== ` + name + `"; for a in "$@"; do printf '%s\n' "$a"; done; } >> /args.log` + "\n"
}

// pushBase pushes the base image: busybox with a shell, stand-ins for
// apt-get, conda and pip, and an /etc/passwd; it runs as user 1000.
func (e *buildEnv) pushBase(t *testing.T, ref string) {
	t.Helper()
	img := testimage.Busybox(t, map[string]string{
		"usr/bin/apt-get": standIn("apt-get"),
		"usr/bin/conda":   standIn("conda"),
		"usr/bin/pip":     standIn("pip"),
	})
	if err := remote.Write(e.ref(t, ref), img, adminAuth()); err != nil {
		t.Fatalf("push the base image: %v", err)
	}
}

// submit posts a build request and returns the 202 answer.
func (e *buildEnv) submit(t *testing.T, path string, body any) buildView {
	t.Helper()
	var b buildView
	if st, raw := e.api.Do(http.MethodPost, path, body, &b); st != http.StatusAccepted {
		t.Fatalf("POST %s: status %d: %s", path, st, raw)
	}
	return b
}

// submitMultipart posts a build request with a build context.
func (e *buildEnv) submitMultipart(t *testing.T, spec any, context []byte) buildView {
	t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	js, _ := json.Marshal(spec)
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", `form-data; name="spec"`)
	h.Set("Content-Type", "application/json")
	pw, _ := mw.CreatePart(h)
	pw.Write(js)
	fw, _ := mw.CreateFormFile("context", "context.tar")
	fw.Write(context)
	mw.Close()
	req, _ := http.NewRequest(http.MethodPost, e.srv.URL+buildsPath, &body)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.SetBasicAuth("admin", "admin-e2e-password")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("multipart POST: status %d: %s", resp.StatusCode, raw)
	}
	var b buildView
	if err := json.Unmarshal(raw, &b); err != nil {
		t.Fatal(err)
	}
	return b
}

func (e *buildEnv) get(t *testing.T, href string) buildView {
	t.Helper()
	var b buildView
	if st, raw := e.api.Do(http.MethodGet, href, nil, &b); st != http.StatusOK {
		t.Fatalf("GET %s: status %d: %s", href, st, raw)
	}
	return b
}

// wait polls a build until it is finished.
func (e *buildEnv) wait(t *testing.T, href string, timeout time.Duration) buildView {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		b := e.get(t, href)
		switch b.Phase {
		case "succeeded", "failed", "cancelled":
			return b
		}
		if time.Now().After(deadline) {
			t.Fatalf("build %s still %s after %s; log:\n%s", href, b.Phase, timeout, e.log(t, href))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// log reads a build's whole log.
func (e *buildEnv) log(t *testing.T, href string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.srv.URL+href+"logs/", nil)
	req.SetBasicAuth("admin", "admin-e2e-password")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("GET %slogs/: status %d, %s: %s", href, resp.StatusCode, resp.Header.Get("Content-Type"), raw)
	}
	return string(raw)
}

// follower reads a build's log with ?follow=true as it streams, keeping
// each line with the time it arrived.
type follower struct {
	mu    sync.Mutex
	lines []string
	at    []time.Time
	done  chan struct{}
	err   error
}

func (e *buildEnv) follow(t *testing.T, href string) *follower {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, e.srv.URL+href+"logs/?follow=true", nil)
	req.SetBasicAuth("admin", "admin-e2e-password")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		cancel()
		t.Fatalf("follow: status %d", resp.StatusCode)
	}
	f := &follower{done: make(chan struct{})}
	go func() {
		defer close(f.done)
		defer cancel()
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 128<<10), 1<<20)
		for sc.Scan() {
			f.mu.Lock()
			f.lines = append(f.lines, sc.Text())
			f.at = append(f.at, time.Now())
			f.mu.Unlock()
		}
		f.err = sc.Err()
	}()
	t.Cleanup(func() { cancel(); <-f.done })
	return f
}

// waitFor waits until a line containing s arrived and returns when.
func (f *follower) waitFor(t *testing.T, s string, timeout time.Duration) time.Time {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		f.mu.Lock()
		for i, l := range f.lines {
			if strings.Contains(l, s) {
				at := f.at[i]
				f.mu.Unlock()
				return at
			}
		}
		f.mu.Unlock()
		select {
		case <-f.done:
			t.Fatalf("log stream ended without a line containing %q:\n%s", s, f.text())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no log line containing %q after %s:\n%s", s, timeout, f.text())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// end waits for the stream to end (the build finished).
func (f *follower) end(t *testing.T, timeout time.Duration) string {
	t.Helper()
	select {
	case <-f.done:
	case <-time.After(timeout):
		t.Fatalf("log stream still open after %s:\n%s", timeout, f.text())
	}
	if f.err != nil {
		t.Fatalf("log stream: %v", f.err)
	}
	return f.text()
}

func (f *follower) text() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return strings.Join(f.lines, "\n")
}

// imageFiles pulls an image and returns its flattened regular files.
func (e *buildEnv) imageFiles(t *testing.T, ref string) (*v1.ConfigFile, map[string]string) {
	t.Helper()
	img, err := remote.Image(e.ref(t, ref), adminAuth())
	if err != nil {
		t.Fatalf("pull %s: %v", ref, err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{}
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if hdr.Typeflag == tar.TypeReg && hdr.Size < 1<<20 {
			b, _ := io.ReadAll(tr)
			files[strings.TrimPrefix(hdr.Name, "/")] = string(b)
		}
	}
	return cfg, files
}

func (e *buildEnv) digest(t *testing.T, ref string) (string, error) {
	t.Helper()
	d, err := remote.Head(e.ref(t, ref), adminAuth())
	if err != nil {
		return "", err
	}
	return d.Digest.String(), nil
}

// imageStatus asks for the PENDING/READY/FAILED status of an image.
func (e *buildEnv) imageStatus(t *testing.T, image string) (int, map[string]any) {
	t.Helper()
	var st map[string]any
	code, raw := e.api.Do(http.MethodGet, buildsPath+"status/?image="+image, nil, &st)
	if code == http.StatusOK && st == nil {
		t.Fatalf("status answer %s", raw)
	}
	return code, st
}

func TestBuildPackages(t *testing.T) {
	e := newBuildEnv(t, db.SQLite, false)
	skopeo := requireTool(t, "skopeo")
	podman := requireTool(t, "podman")

	start := time.Now()
	b := e.submit(t, buildsPath, map[string]any{
		"target": "team/tools", "tag": "v1", "base": "base/busybox:1",
		// A text block, one package per line, as a form sends it.
		"apt":   "curl\ngit=1:2.39.2-1.1\n# editors\nvim/bookworm-backports\nlibc6:i386  # 32-bit\n",
		"conda": []string{"-c conda-forge::numpy==1.17*", "scipy>=1.0,<2|1.5", "bioconda::samtools=1.9"},
		// "markerpkg>0.0.1" would make a shell create the file /0.0.1.
		"pip": []string{`requests ; python_version < "3.11"`, "markerpkg>0.0.1", "pkg[extra]>=1,<2", "numpy==1.26.*"},
	})
	if b.Phase != "pending" && b.Phase != "running" || b.Task == nil || b.Mode != "packages" ||
		b.ResolvedBase != e.srv.Addr+"/base/busybox:1" || !strings.HasPrefix(b.UniqueTag, "v1-") {
		t.Fatalf("created build = %+v", b)
	}
	f := e.follow(t, b.Href)
	firstStep := f.waitFor(t, "STEP 1/", 2*time.Minute)
	done := e.wait(t, b.Href, 3*time.Minute)
	t.Logf("build took %s", time.Since(start).Round(10*time.Millisecond))
	log := f.end(t, 30*time.Second)
	if done.Phase != "succeeded" || done.Digest == nil || done.Error != nil {
		t.Fatalf("build ended %+v; log:\n%s", done, log)
	}
	if done.FinishedAt == nil || !firstStep.Before(*done.FinishedAt) {
		t.Errorf("the follower got the first step at %v, not before the build finished at %v", firstStep, done.FinishedAt)
	}
	if !strings.HasSuffix(log, "Build succeeded: "+*done.Digest) || !strings.Contains(log, "$ buildah ") {
		t.Errorf("followed log does not end with the outcome:\n%s", log)
	}
	if whole := e.log(t, b.Href); strings.TrimSpace(whole) != log {
		t.Errorf("stored log differs from the followed one:\n%s\n----\n%s", whole, log)
	}
	if strings.Contains(log, "berth_") {
		t.Error("the log shows a registry token")
	}
	if !strings.Contains(done.Containerfile, "USER root\n") || !strings.HasSuffix(done.Containerfile, "USER 1000\n") {
		t.Errorf("Containerfile does not restore the base's user:\n%s", done.Containerfile)
	}
	var task struct{ State string }
	e.api.Do(http.MethodGet, *done.Task, nil, &task)
	if task.State != "completed" {
		t.Errorf("task state %q", task.State)
	}

	// Both tags hold the image; it pulls with skopeo and podman.
	for _, tag := range []string{"v1", done.UniqueTag} {
		if d, err := e.digest(t, "team/tools:"+tag); err != nil || d != *done.Digest {
			t.Errorf("team/tools:%s: digest %s, %v; want %s", tag, d, err, *done.Digest)
		}
	}
	ref := e.srv.Addr + "/team/tools:v1"
	run(t, skopeo, "copy", "--src-tls-verify=false", "--src-creds", "admin:admin-e2e-password", "docker://"+ref, "oci:"+filepath.Join(e.dir, "oci")+":v1")
	p := func(args ...string) string { return run(t, podman, podmanArgs(e.dir, args...)...) }
	p("pull", "--tls-verify=false", "--creds", "admin:admin-e2e-password", ref)

	// The stand-ins recorded exactly the packages asked for, each one
	// argument, and no shell ever read them.
	cfg, files := e.imageFiles(t, "team/tools:v1")
	want := strings.Join([]string{
		"== apt-get", "update",
		"== apt-get", "install", "-y", "--no-install-recommends", "curl", "git=1:2.39.2-1.1", "vim/bookworm-backports", "libc6:i386",
		"== conda", "install", "--yes", "-c", "conda-forge", "-c", "bioconda",
		"conda-forge::numpy==1.17*", "scipy>=1.0,<2|1.5", "bioconda::samtools=1.9",
		"== conda", "clean", "-afy",
		"== pip", "install", "--no-cache-dir", `requests ; python_version < "3.11"`, "markerpkg>0.0.1", "pkg[extra]>=1,<2", "numpy==1.26.*",
	}, "\n") + "\n"
	if got := files["args.log"]; got != want {
		t.Errorf("recorded arguments:\n%s\nwant:\n%s", got, want)
	}
	for path := range files {
		if strings.HasPrefix(path, "0.0.1") || strings.Contains(path, "=1,") {
			t.Errorf("a shell read a package line: the image has %q", path)
		}
	}
	if cfg.Config.User != "1000" {
		t.Errorf("image user %q, want the base's 1000", cfg.Config.User)
	}

	// Rescale's status: READY by tag and by unique tag.
	for _, tag := range []string{"v1", done.UniqueTag} {
		code, st := e.imageStatus(t, "team/tools:"+tag)
		if code != http.StatusOK || st["status"] != "READY" || st["digest"] != *done.Digest || st["build"] != b.Href {
			t.Errorf("status of team/tools:%s: %d %v", tag, code, st)
		}
	}
	if code, _ := e.imageStatus(t, "team/nothing:v1"); code != http.StatusNotFound {
		t.Errorf("status of an image never built nor pushed: %d, want 404", code)
	}

	// A rebuild with a change links to its predecessor; while it runs the
	// image is PENDING.
	rb := e.submit(t, b.Href+"rebuild/", map[string]any{"pip": "other==2.0\n"})
	if rb.Previous == nil || *rb.Previous != b.Href || rb.Target != "team/tools" || rb.Tag != "v1" || rb.UniqueTag == done.UniqueTag {
		t.Fatalf("rebuild = %+v", rb)
	}
	if _, st := e.imageStatus(t, "team/tools:v1"); st["status"] != "PENDING" && e.get(t, rb.Href).Phase != "succeeded" {
		t.Errorf("status during the rebuild: %v", st)
	}
	rdone := e.wait(t, rb.Href, 3*time.Minute)
	if rdone.Phase != "succeeded" {
		t.Fatalf("rebuild ended %s: %v\n%s", rdone.Phase, rdone.Error, e.log(t, rb.Href))
	}
	if _, files := e.imageFiles(t, "team/tools:"+rdone.UniqueTag); !strings.HasSuffix(files["args.log"], "== pip\ninstall\n--no-cache-dir\nother==2.0\n") {
		t.Errorf("rebuild recorded:\n%s", files["args.log"])
	}
	var page struct {
		Count int `json:"count"`
	}
	e.api.Do(http.MethodGet, buildsPath+"?target=team/tools&phase=succeeded", nil, &page)
	if page.Count != 2 {
		t.Errorf("list of succeeded builds of team/tools: count %d, want 2", page.Count)
	}

	// Bad lines are a 400 naming each; shell injections are refused as
	// such, and nothing is built.
	code, raw := e.api.Do(http.MethodPost, buildsPath, map[string]any{
		"target": "team/bad", "base": "base/busybox:1",
		"apt":   []string{"curl", "curl; touch /pwned", "vim"},
		"pip":   []string{"requests", "x $(touch /pwned)", "ok==1", "y`touch /pwned`"},
		"conda": "numpy\nnumpy && touch /pwned\n",
	}, nil)
	if code != http.StatusBadRequest {
		t.Fatalf("bad lines: status %d: %s", code, raw)
	}
	var verr map[string]any
	json.Unmarshal(raw, &verr)
	detail := fmt.Sprint(verr)
	for _, want := range []string{"line 2", "line 4", `curl; touch /pwned`, "numpy && touch /pwned"} {
		if !strings.Contains(detail, want) {
			t.Errorf("validation answer does not name %q: %s", want, raw)
		}
	}
	e.api.Do(http.MethodGet, buildsPath+"?target=team/bad", nil, &page)
	if page.Count != 0 {
		t.Errorf("a refused request made %d builds", page.Count)
	}
}

func TestBuildFailuresAndCancelRedis(t *testing.T) {
	e := newBuildEnv(t, db.Postgres, true)
	from := "FROM " + e.srv.Addr + "/base/busybox:1\n"

	// A base image that does not exist.
	missing := e.submit(t, buildsPath, map[string]any{"target": "team/missing", "tag": "v1", "base": "base/busybox:nope", "pip": "requests"})
	// A failing RUN.
	failing := e.submit(t, buildsPath, map[string]any{"target": "team/failing", "tag": "v1",
		"containerfile": from + "RUN echo about to fail && exit 3\n"})

	m := e.wait(t, missing.Href, 2*time.Minute)
	mlog := e.log(t, missing.Href)
	if m.Phase != "failed" || m.Error == nil || !strings.Contains(*m.Error, "base image") || !strings.Contains(*m.Error, "not found") ||
		!strings.Contains(mlog, "Build failed: base image") {
		t.Errorf("missing base: %s %v; log:\n%s", m.Phase, m.Error, mlog)
	}
	code, st := e.imageStatus(t, "team/missing:v1")
	if code != http.StatusOK || st["status"] != "FAILED" || !strings.Contains(fmt.Sprint(st["reason"]), "not found") {
		t.Errorf("status of the image of a failed build: %d %v", code, st)
	}
	fb := e.wait(t, failing.Href, 2*time.Minute)
	flog := e.log(t, failing.Href)
	if fb.Phase != "failed" || fb.Error == nil || !strings.Contains(*fb.Error, "exited with status 3") ||
		!strings.Contains(flog, "about to fail") || !strings.Contains(flog, "exit status 3") {
		t.Errorf("failing RUN: %s %v; log:\n%s", fb.Phase, fb.Error, flog)
	}

	// Cancel during a long RUN: the target keeps the image it had.
	old, err := random(t, e, "team/slow:v1")
	if err != nil {
		t.Fatal(err)
	}
	var ctxTar bytes.Buffer
	tw := tar.NewWriter(&ctxTar)
	tw.WriteHeader(&tar.Header{Name: "hello.txt", Mode: 0o644, Size: 6, Typeflag: tar.TypeReg})
	tw.Write([]byte("hello\n"))
	tw.Close()
	// A duration no other process uses, to find the RUN step's processes.
	sleeper := fmt.Sprintf("sleep %d", 10000+os.Getpid()%10000)
	slow := e.submitMultipart(t, map[string]any{"target": "team/slow", "tag": "v1",
		"containerfile": from + "COPY hello.txt /hello.txt\nRUN cat /hello.txt && echo slow-start && " + sleeper + "\n"}, ctxTar.Bytes())
	if slow.Mode != "containerfile" {
		t.Fatalf("raw build = %+v", slow)
	}
	// Should the test fail first, the build stops before the worker does.
	t.Cleanup(func() { e.api.Do(http.MethodPost, slow.Href+"cancel/", nil, nil) })
	f := e.follow(t, slow.Href)
	f.waitFor(t, "slow-start", 2*time.Minute) // read while the build runs, from the worker's log
	if b := e.get(t, slow.Href); b.Phase != "running" {
		t.Fatalf("build %s while its RUN sleeps", b.Phase)
	}
	if _, st := e.imageStatus(t, "team/slow:v1"); st["status"] != "PENDING" {
		t.Errorf("status during the build: %v", st)
	}
	work := filepath.Join(e.env.DataDir, "builds", slow.ID)
	for deadline := time.Now().Add(10 * time.Second); len(processes(t, work)) == 0 || len(processes(t, sleeper)) == 0; {
		if time.Now().After(deadline) {
			t.Fatalf("buildah (%q) or its RUN (%q) is not running", processes(t, work), processes(t, sleeper))
		}
		time.Sleep(50 * time.Millisecond)
	}
	canceledAt := time.Now()
	var cv buildView
	if code, raw := e.api.Do(http.MethodPost, slow.Href+"cancel/", nil, &cv); code != http.StatusAccepted {
		t.Fatalf("cancel: %d %s", code, raw)
	}
	c := e.wait(t, slow.Href, time.Minute)
	t.Logf("cancelled in %s", time.Since(canceledAt).Round(10*time.Millisecond))
	if c.Phase != "cancelled" {
		t.Fatalf("cancelled build ended %s: %v", c.Phase, c.Error)
	}
	var task struct{ State string }
	e.api.Do(http.MethodGet, *c.Task, nil, &task)
	if task.State != "canceled" {
		t.Errorf("task state %q, want canceled", task.State)
	}
	if log := f.end(t, 30*time.Second); !strings.HasSuffix(log, "Build cancelled.") {
		t.Errorf("followed log does not end with the cancel:\n%s", log)
	}
	if left := append(processes(t, work), processes(t, sleeper)...); len(left) > 0 {
		t.Errorf("processes left after the cancel: %q", left)
	}
	if _, err := os.Stat(work); !os.IsNotExist(err) {
		t.Errorf("work directory %s still there: %v", work, err)
	}
	if d, err := e.digest(t, "team/slow:v1"); err != nil || d != old {
		t.Errorf("team/slow:v1 is %s (%v) after the cancel, want the old %s", d, err, old)
	}
	if _, err := e.digest(t, "team/slow:"+c.UniqueTag); err == nil {
		t.Error("the cancelled build pushed its unique tag")
	}
	if code, raw := e.api.Do(http.MethodPost, slow.Href+"cancel/", nil, nil); code != http.StatusConflict {
		t.Errorf("cancelling a cancelled build: %d %s", code, raw)
	}
}

// TestBuildWorkerKilled: when the worker running a build dies without
// stopping it (kill -9), buildah dies with it instead of going on to push,
// and the next worker to start on the data directory kills what is left of
// the RUN step and removes the work directory.
func TestBuildWorkerKilled(t *testing.T) {
	e := newBuildEnv(t, db.Postgres, true)
	// A duration no other process uses, to find the RUN step's processes.
	sleeper := fmt.Sprintf("sleep %d", 20000+os.Getpid()%10000)
	b := e.submit(t, buildsPath, map[string]any{"target": "team/orphan", "tag": "v1",
		"containerfile": "FROM " + e.srv.Addr + "/base/busybox:1\nRUN echo orphan-start && " + sleeper + "\n"})
	t.Cleanup(func() { e.api.Do(http.MethodPost, b.Href+"cancel/", nil, nil) })
	e.follow(t, b.Href).waitFor(t, "orphan-start", 2*time.Minute)
	work := filepath.Join(e.env.DataDir, "builds", b.ID)
	for deadline := time.Now().Add(10 * time.Second); len(processes(t, work)) == 0 || len(processes(t, sleeper)) == 0; {
		if time.Now().After(deadline) {
			t.Fatalf("buildah (%q) or its RUN (%q) is not running", processes(t, work), processes(t, sleeper))
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Should the test fail, the RUN step must not outlive it.
	t.Cleanup(func() {
		for _, p := range processes(t, sleeper) {
			if pid, err := strconv.Atoi(strings.SplitN(p, ":", 2)[0]); err == nil {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	e.worker.Kill(t)
	gone := func(what string, d time.Duration) []string {
		var left []string
		for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			if left = processes(t, what); len(left) == 0 {
				break
			}
		}
		return left
	}
	if left := gone(work, 10*time.Second); len(left) > 0 {
		t.Fatalf("buildah outlived its killed worker by 10s: %q", left)
	}
	if _, err := e.digest(t, "team/orphan:v1"); err == nil {
		t.Error("the orphaned build pushed its image")
	}
	// buildah-chroot-exec's RUN step may survive buildah; a new worker on
	// the same data directory ends it.
	t.Logf("RUN step processes after the worker's death: %q", processes(t, sleeper))
	e.env.Worker(t, "builder-2", "BERTH_BUILD_REGISTRY="+e.srv.Addr)
	if left := gone(sleeper, 30*time.Second); len(left) > 0 {
		t.Errorf("the RUN step of the dead worker's build still runs after a new worker started: %q", left)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if _, err := os.Stat(work); os.IsNotExist(err) {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("work directory %s still there after a new worker started (%v)", work, err)
		}
	}
}

// random pushes a random image to ref and returns its digest.
func random(t *testing.T, e *buildEnv, ref string) (string, error) {
	t.Helper()
	layer := smallLayer(t, e.dir, ref)
	l, err := tarball.LayerFromFile(layer)
	if err != nil {
		return "", err
	}
	img, err := mutate.AppendLayers(empty.Image, l)
	if err != nil {
		return "", err
	}
	if err := remote.Write(e.ref(t, ref), img, adminAuth()); err != nil {
		return "", err
	}
	d, err := img.Digest()
	return d.String(), err
}

// processes lists the other processes whose command line contains s.
func processes(t *testing.T, s string) []string {
	t.Helper()
	entries, err := filepath.Glob("/proc/[0-9]*/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	self := fmt.Sprintf("/proc/%d/", os.Getpid())
	var found []string
	for _, p := range entries {
		b, _ := os.ReadFile(p)
		line := strings.ReplaceAll(string(b), "\x00", " ")
		if strings.Contains(line, s) && !strings.HasPrefix(p, self) {
			found = append(found, strings.TrimSuffix(strings.TrimPrefix(p, "/proc/"), "/cmdline")+": "+line)
		}
	}
	return found
}
