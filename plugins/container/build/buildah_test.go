package build

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/berth-dev/berth/core"
	"github.com/berth-dev/berth/internal/testimage"
)

// The tests in this file run the real buildah against an in-process
// registry, offline. They need buildah and a static busybox (Debian's
// busybox-static: /bin/busybox) and root; without them they are skipped,
// unless CI=true, where that is a failure.

const (
	testUser     = "builder"
	testPassword = "s3cret-build-password"
)

// requireBuildah skips (or, on CI, fails) the test when the machine cannot
// run buildah builds.
func requireBuildah(t *testing.T) {
	t.Helper()
	missing := ""
	switch {
	case runtime.GOOS != "linux":
		missing = "Linux"
	case os.Geteuid() != 0:
		missing = "root"
	default:
		if _, err := exec.LookPath("buildah"); err != nil {
			missing = "buildah (apt-get install buildah)"
		} else if out, err := exec.Command("file", "-L", testimage.BusyboxPath).Output(); err == nil && !bytes.Contains(out, []byte("statically linked")) {
			missing = "a static busybox (apt-get install busybox-static)"
		} else if _, err := os.Stat(testimage.BusyboxPath); err != nil {
			missing = "busybox (apt-get install busybox-static)"
		}
	}
	if missing == "" {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("this test needs %s, and CI=true", missing)
	}
	t.Skipf("this test needs %s", missing)
}

// testRegistry is an in-process registry on loopback that wants basic auth.
type testRegistry struct {
	host  string
	creds Credentials
}

func newTestRegistry(t *testing.T) *testRegistry {
	t.Helper()
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != testUser || p != testPassword {
			w.Header().Set("WWW-Authenticate", `Basic realm="berth-test"`)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`)
			return
		}
		reg.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return &testRegistry{host: strings.TrimPrefix(srv.URL, "http://"), creds: Credentials{Username: testUser, Password: testPassword}}
}

func (r *testRegistry) remoteOptions() []remote.Option {
	return []remote.Option{remote.WithAuth(&authn.Basic{Username: testUser, Password: testPassword})}
}

// standIn is a stand-in for a package manager: it appends a header and its
// arguments, one per line, to /args.log.
func standIn(name, extra string) string {
	return "#!/bin/sh\n" +
		`{ echo "== ` + name + ` as $(id -u)` + extra + `"; for a in "$@"; do printf '%s\n' "$a"; done; } >> /args.log` + "\n"
}

// pushBase builds a tiny base image FROM scratch (static busybox, a shell,
// stand-ins for apt-get, conda and pip, and an /etc/passwd) running as user
// 1000, and pushes it to reg as base/busybox:1.
func pushBase(t *testing.T, reg *testRegistry) string {
	t.Helper()
	img := testimage.Busybox(t, map[string]string{
		"usr/bin/apt-get": standIn("apt-get", " frontend=$DEBIAN_FRONTEND"),
		"usr/bin/conda":   standIn("conda", ""),
		"usr/bin/pip":     standIn("pip", ""),
	})
	ref := reg.host + "/base/busybox:1"
	if err := remote.Write(mustRef(t, ref), img, reg.remoteOptions()...); err != nil {
		t.Fatalf("pushing the base: %v", err)
	}
	return ref
}

// mustRef parses a reference to the test registry.
func mustRef(t *testing.T, s string) name.Reference {
	t.Helper()
	ref, err := name.ParseReference(s, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

// testLogger sends the runner's logs to the test log.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(LineFunc(func(l string) { t.Log(l) }), nil))
}

// logLines collects the build log and also shows it in the test log.
type logLines struct {
	t     *testing.T
	mu    sync.Mutex
	lines []string
	seen  func(string)
}

func (l *logLines) Write(p []byte) (int, error) {
	line := strings.TrimSuffix(string(p), "\n")
	l.mu.Lock()
	l.lines = append(l.lines, line)
	seen := l.seen
	l.mu.Unlock()
	l.t.Log("| " + line)
	if seen != nil {
		seen(line)
	}
	return len(p), nil
}

func (l *logLines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// buildEnv is what the buildah tests share: a registry with a base image, and
// a runner that may reach the registry over plain HTTP.
type buildEnv struct {
	reg    *testRegistry
	base   string
	runner *Runner
}

func newBuildEnv(t *testing.T, opts ...Option) *buildEnv {
	t.Helper()
	requireBuildah(t)
	reg := newTestRegistry(t)
	base := pushBase(t, reg)
	opts = append([]Option{WithInsecureRegistries(reg.host), WithRetry(0, 0), WithLogger(testLogger(t))}, opts...)
	runner, err := NewRunner(opts...)
	if err != nil {
		t.Fatal(err)
	}
	return &buildEnv{reg: reg, base: base, runner: runner}
}

// readImage pulls ref and returns its config and the files of its flattened
// file system.
func (e *buildEnv) readImage(t *testing.T, ref string) (*v1.ConfigFile, []v1.Layer, map[string]string) {
	t.Helper()
	img, err := remote.Image(mustRef(t, ref), e.reg.remoteOptions()...)
	if err != nil {
		t.Fatalf("pulling %s: %v", ref, err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	layers, err := img.Layers()
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
	return cfg, layers, files
}

func TestBuildahPackages(t *testing.T) {
	e := newBuildEnv(t)
	ctx := t.Context()
	creds := e.reg.creds
	spec := &Spec{
		Target: "team/app", Tag: "v1", Base: e.base, BaseCredentials: &creds,
		APT:   []string{"curl", "git=1:2.39.2-1.1", "", "# editors", "vim/bookworm-backports", "libc6:i386  # 32-bit"},
		Conda: []string{"-c conda-forge::numpy==1.17*", "scipy>=1.0,<2|1.5", "bioconda::samtools=1.9", "numpy[version='>=1.17']"},
		Pip: []string{"pkg[extra]>=1,<2", `requests ; python_version < "3.11"`, "numpy==1.26.*",
			"name @ https://example.com/a.whl#sha256=00ff", `x ; platform_version == "#1 SMP (a) {b} ~=!@%^*+,:/?"`},
	}
	user, err := e.runner.BaseUser(ctx, spec.Base, spec.BaseCredentials)
	if err != nil || user != "1000" {
		t.Fatalf("BaseUser() = %q, %v; want 1000", user, err)
	}
	job, err := spec.Job(e.reg.host, user)
	if err != nil {
		t.Fatal(err)
	}
	job.PushAuth = Auth{e.reg.host: creds}
	t.Logf("Containerfile:\n%s", job.Containerfile)

	out := &logLines{t: t}
	work := filepath.Join(t.TempDir(), "work")
	res, err := e.runner.Run(ctx, work, job, out)
	if err != nil {
		t.Fatalf("Run() = %v", err)
	}
	if _, err := os.Stat(work); !os.IsNotExist(err) {
		t.Errorf("work directory not removed: %v", err)
	}
	if len(res.Pushed) != 2 || res.Pushed[0].Digest != res.Digest || res.Pushed[1].Digest != res.Digest ||
		!strings.HasPrefix(res.Digest, "sha256:") || !strings.HasPrefix(res.ImageID, "sha256:") {
		t.Errorf("Result = %+v", res)
	}
	log := out.String()
	if strings.Contains(log, testPassword) {
		t.Error("the build log shows the password")
	}
	for _, want := range []string{"$ buildah --root ", " build --isolation chroot --layers=false", "STEP 1/", " push --authfile "} {
		if !strings.Contains(log, want) {
			t.Errorf("log does not contain %q", want)
		}
	}

	for _, ref := range job.Destinations {
		img, err := remote.Get(mustRef(t, ref), e.reg.remoteOptions()...)
		if err != nil || img.Digest.String() != res.Digest {
			t.Errorf("%s: digest %v, %v; want %s", ref, img, err, res.Digest)
		}
	}
	cfg, layers, files := e.readImage(t, job.Destinations[1])
	if cfg.Config.User != "1000" {
		t.Errorf("image user = %q, want the base's 1000", cfg.Config.User)
	}
	if strings.Contains(strings.Join(cfg.Config.Env, " "), "DEBIAN_FRONTEND") {
		t.Errorf("image env %q keeps the build's DEBIAN_FRONTEND", cfg.Config.Env)
	}
	if len(layers) != 2 {
		t.Errorf("image has %d layers, want the base's and one new", len(layers))
	}
	want := strings.Join([]string{
		"== apt-get as 0 frontend=noninteractive", "update",
		"== apt-get as 0 frontend=noninteractive", "install", "-y", "--no-install-recommends",
		"curl", "git=1:2.39.2-1.1", "vim/bookworm-backports", "libc6:i386",
		"== conda as 0", "install", "--yes", "-c", "conda-forge", "-c", "bioconda",
		"conda-forge::numpy==1.17*", "scipy>=1.0,<2|1.5", "bioconda::samtools=1.9", "numpy[version='>=1.17']",
		"== conda as 0", "clean", "-afy",
		"== pip as 0", "install", "--no-cache-dir",
		"pkg[extra]>=1,<2", `requests ; python_version < "3.11"`, "numpy==1.26.*",
		"name @ https://example.com/a.whl#sha256=00ff", `x ; platform_version == "#1 SMP (a) {b} ~=!@%^*+,:/?"`,
	}, "\n") + "\n"
	if got := files["args.log"]; got != want {
		t.Errorf("/args.log =\n%s\nwant\n%s", got, want)
	}
}

func TestBuildahRawModeWithContext(t *testing.T) {
	e := newBuildEnv(t)
	archive := tarFile(t,
		entry{name: "hello.txt", body: "hello from the context\n"},
		entry{name: "sub/", typ: tar.TypeDir, mode: 0o755},
		entry{name: "sub/link", typ: tar.TypeSymlink, link: "../hello.txt"},
	)
	spec := &Spec{Target: "team/raw", Tag: "v1", Containerfile: "FROM " + e.base + "\nCOPY . /ctx/\nRUN [\"cat\", \"/ctx/sub/link\"]\n"}
	job, err := spec.Job(e.reg.host, "")
	if err != nil {
		t.Fatal(err)
	}
	job.Context = bytes.NewReader(archive)
	job.PullAuth = Auth{e.reg.host: e.reg.creds}
	job.PushAuth = Auth{e.reg.host: e.reg.creds}
	out := &logLines{t: t}
	if _, err := e.runner.Run(t.Context(), filepath.Join(t.TempDir(), "work"), job, out); err != nil {
		t.Fatalf("Run() = %v", err)
	}
	if !strings.Contains(out.String(), "\nhello from the context\n") {
		t.Error("the RUN step did not print the context file")
	}
	cfg, _, files := e.readImage(t, job.Destinations[0])
	if files["ctx/hello.txt"] != "hello from the context\n" || cfg.Config.User != "1000" {
		t.Errorf("image files %v, user %q", files["ctx/hello.txt"], cfg.Config.User)
	}

	bad := job
	bad.Context = bytes.NewReader(tarFile(t, entry{name: "../escape", body: "x"}))
	work := filepath.Join(t.TempDir(), "work")
	if _, err := e.runner.Run(t.Context(), work, bad, nil); !errors.Is(err, core.ErrInvalid) {
		t.Errorf("Run(escaping context) = %v, want a validation error", err)
	}
	if _, err := os.Stat(work); !os.IsNotExist(err) {
		t.Errorf("work directory not removed: %v", err)
	}
}

func TestBuildahFailures(t *testing.T) {
	e := newBuildEnv(t)
	creds := e.reg.creds
	run := func(t *testing.T, job Job) (error, string) {
		t.Helper()
		if job.PullAuth == nil {
			job.PullAuth = Auth{e.reg.host: creds}
		}
		job.PushAuth = Auth{e.reg.host: creds}
		out := &logLines{t: t}
		work := filepath.Join(t.TempDir(), "work")
		res, err := e.runner.Run(t.Context(), work, job, out)
		if err == nil {
			t.Fatalf("Run() = %+v, want an error", res)
		}
		t.Logf("Run() = %v", err)
		if _, err := os.Stat(work); !os.IsNotExist(err) {
			t.Errorf("work directory not removed: %v", err)
		}
		return err, out.String()
	}
	dest := []string{e.reg.host + "/team/fail:v1"}

	t.Run("failing RUN", func(t *testing.T) {
		t.Parallel()
		err, log := run(t, Job{
			Containerfile: "FROM " + e.base + "\nUSER root\nRUN [\"sh\", \"-c\", \"echo about to fail; exit 7\"]\nRUN [\"echo\", \"never\"]\n",
			Destinations:  dest,
		})
		var be *BuildError
		if !errors.Is(err, ErrStepFailed) || !errors.As(err, &be) || be.ExitCode != 7 || be.Step != 3 || be.Steps != 4 {
			t.Fatalf("Run() = %#v", err)
		}
		if want := `step 3/4 (RUN ["sh", "-c", "echo about to fail; exit 7"]) exited with status 7`; err.Error() != want {
			t.Errorf("Error() = %q, want %q", err, want)
		}
		if !strings.Contains(log, "\nabout to fail\n") || !strings.Contains(log, "exit status 7") || strings.Contains(log, "never") {
			t.Errorf("log:\n%s", log)
		}
	})
	t.Run("missing base", func(t *testing.T) {
		t.Parallel()
		spec := &Spec{Target: "team/app", Tag: "v1", Base: e.reg.host + "/base/nope:1", Pip: []string{"numpy"}, BaseCredentials: &creds}
		_, err := e.runner.BaseUser(t.Context(), spec.Base, spec.BaseCredentials)
		if !errors.Is(err, ErrBaseNotFound) {
			t.Errorf("BaseUser() = %v, want ErrBaseNotFound", err)
		}
		job, err := spec.Job(e.reg.host, "")
		if err != nil {
			t.Fatal(err)
		}
		err, _ = run(t, job)
		if !errors.Is(err, ErrBaseNotFound) || !strings.HasPrefix(err.Error(), "base image "+spec.Base+": not found") {
			t.Errorf("Run() = %v, want base image %s: not found", err, spec.Base)
		}
	})
	t.Run("wrong pull credentials", func(t *testing.T) {
		t.Parallel()
		wrong := &Credentials{Username: testUser, Password: "not-the-password-123"}
		if _, err := e.runner.BaseUser(t.Context(), e.base, wrong); !errors.Is(err, ErrUnauthorized) {
			t.Errorf("BaseUser() = %v, want ErrUnauthorized", err)
		}
		err, log := run(t, Job{Containerfile: "FROM " + e.base + "\n", Destinations: dest, PullAuth: Auth{e.reg.host: *wrong}})
		if !errors.Is(err, ErrUnauthorized) || !strings.Contains(err.Error(), "access denied") {
			t.Errorf("Run() = %v, want ErrUnauthorized", err)
		}
		if strings.Contains(log, wrong.Password) {
			t.Errorf("log shows credentials:\n%s", log)
		}
	})
	t.Run("push refused", func(t *testing.T) {
		t.Parallel()
		job := Job{Containerfile: "FROM " + e.base + "\n", Destinations: dest, PullAuth: Auth{e.reg.host: creds}}
		job.PushAuth = Auth{e.reg.host: {Username: testUser, Password: "wrong"}}
		out := &logLines{t: t}
		_, err := e.runner.Run(t.Context(), filepath.Join(t.TempDir(), "work"), job, out)
		if !errors.Is(err, ErrUnauthorized) || !strings.HasPrefix(err.Error(), "push to "+dest[0]+": access denied") {
			t.Errorf("Run() = %v, want a refused push", err)
		}
	})
	t.Run("TLS required", func(t *testing.T) {
		t.Parallel()
		strict, err := NewRunner(WithRetry(0, 0), WithLogger(testLogger(t)))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := strict.BaseUser(t.Context(), e.base, &creds); err == nil || !strings.Contains(err.Error(), "refusing plain HTTP") {
			t.Errorf("BaseUser() without insecure registries = %v", err)
		}
		job := Job{Containerfile: "FROM " + e.base + "\n", Destinations: dest, PullAuth: Auth{e.reg.host: creds}}
		_, err = strict.Run(t.Context(), filepath.Join(t.TempDir(), "work"), job, &logLines{t: t})
		if !errors.Is(err, ErrBuildFailed) || !strings.Contains(err.Error(), "HTTP response to HTTPS client") {
			t.Errorf("Run() without insecure registries = %v", err)
		}
	})
}

// processesMentioning lists the processes whose command line contains s.
func processesMentioning(s string) []string {
	var found []string
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || len(cmdline) == 0 {
			continue
		}
		line := string(bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '}))
		if strings.Contains(line, s) && e.Name() != fmt.Sprint(os.Getpid()) {
			found = append(found, e.Name()+": "+line)
		}
	}
	return found
}

func TestBuildahCancel(t *testing.T) {
	e := newBuildEnv(t, WithKillGrace(2*time.Second))
	// A duration no other process uses, to find the RUN step's process.
	const sleeper = "sleep 3607"
	job := Job{
		Containerfile: "FROM " + e.base + "\nRUN [\"sleep\", \"3607\"]\n",
		Destinations:  []string{e.reg.host + "/team/slow:v1"},
		PullAuth:      Auth{e.reg.host: e.reg.creds},
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	running := make(chan struct{})
	var once sync.Once
	out := &logLines{t: t, seen: func(line string) {
		if strings.HasPrefix(line, "STEP 2/2: RUN") {
			once.Do(func() { close(running) })
		}
	}}
	work := filepath.Join(t.TempDir(), "work")
	type result struct {
		res *Result
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := e.runner.Run(ctx, work, job, out)
		done <- result{res, err}
	}()
	select {
	case <-running:
	case r := <-done:
		t.Fatalf("Run() ended before the RUN step: %v", r.err)
	case <-time.After(60 * time.Second):
		t.Fatal("the RUN step did not start within 60s")
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(processesMentioning(sleeper)) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the RUN step's sleep never started")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(processesMentioning(work)) == 0 {
		t.Fatal("no buildah process mentions the work directory")
	}

	start := time.Now()
	cancel()
	var r result
	select {
	case r = <-done:
	case <-time.After(15 * time.Second):
		t.Fatal("Run() did not return within 15s of the cancellation")
	}
	took := time.Since(start)
	t.Logf("Run() returned %v after %v", r.err, took)
	if took > 5*time.Second {
		t.Errorf("canceling took %v, want a few seconds at most", took)
	}
	if !errors.Is(r.err, context.Canceled) || r.res != nil {
		t.Errorf("Run() = %v, %v; want an error matching context.Canceled", r.res, r.err)
	}
	if left := append(processesMentioning(work), processesMentioning(sleeper)...); len(left) > 0 {
		t.Errorf("processes left behind: %q", left)
	}
	if _, err := os.Stat(work); !os.IsNotExist(err) {
		t.Errorf("work directory not removed: %v", err)
	}
}
