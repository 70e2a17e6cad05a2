package test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	crrandom "github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/berth-dev/berth/core/db"
)

// cliUser runs the berth client commands as one person: a home of its own
// (so ~/.config/berth/config.json is the test's) and nothing of the
// server's configuration in the environment.
type cliUser struct {
	t    *testing.T
	home string
}

func newCLIUser(t *testing.T) *cliUser {
	return &cliUser{t: t, home: t.TempDir()}
}

// run executes berth with args and stdin; it returns stdout, stderr and
// the exit code.
func (u *cliUser) run(stdin string, args ...string) (string, string, int) {
	u.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, berthBinary, args...)
	cmd.Env = []string{"HOME=" + u.home, "XDG_CONFIG_HOME=" + filepath.Join(u.home, ".config"), "PATH=" + os.Getenv("PATH")}
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		u.t.Fatalf("berth %s: %v", strings.Join(args, " "), err)
	}
	return out.String(), errb.String(), code
}

// ok runs berth and fails the test unless it exits 0.
func (u *cliUser) ok(stdin string, args ...string) string {
	u.t.Helper()
	out, errOut, code := u.run(stdin, args...)
	if code != 0 {
		u.t.Fatalf("berth %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

func TestCLILoginListPushAndTasks(t *testing.T) {
	env := NewEnv(t, db.SQLite, false)
	srv := env.Serve(t, "BERTH_TEST_PLUGIN=true", "BERTH_PUSH_RETAIN_VERSIONS=0")
	u := newCLIUser(t)
	dir := t.TempDir()

	// Before login: a clear message, exit 2.
	if _, errOut, code := u.run("", "ee", "list"); code != 2 || !strings.Contains(errOut, "berth login") {
		t.Fatalf("not logged in: exit %d, %q", code, errOut)
	}
	if _, errOut, code := u.run("wrong-password\n", "login", srv.URL, "-u", "admin", "--password-stdin"); code == 0 || !strings.Contains(errOut, "wrong user name or password") {
		t.Fatalf("bad password: exit %d, %q", code, errOut)
	}
	out := u.ok("admin-e2e-password\n", "login", srv.URL, "-u", "admin", "--password-stdin")
	if !strings.Contains(out, "Logged in") {
		t.Fatalf("login said %q", out)
	}
	cfgPath := filepath.Join(u.home, ".config", "berth", "config.json")
	fi, err := os.Stat(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("config mode %v, want 0600", fi.Mode().Perm())
	}
	raw, _ := os.ReadFile(cfgPath)
	if strings.Contains(string(raw), "admin-e2e-password") || !strings.Contains(string(raw), `"token": "berth_`) {
		t.Fatalf("config holds %s", raw)
	}

	// berth push: a docker-save tarball made by go-containerregistry, and
	// an OCI layout.
	img, err := crrandom.Image(256, 2)
	if err != nil {
		t.Fatal(err)
	}
	tarPath := filepath.Join(dir, "image.tar")
	srcTag, _ := name.NewTag("example.com/cli/app:1")
	if err := tarball.WriteToFile(tarPath, srcTag, img); err != nil {
		t.Fatal(err)
	}
	out = u.ok("", "push", tarPath, "team/cli:1")
	want, _ := img.Digest()
	if !strings.Contains(out, want.String()) {
		t.Fatalf("push printed %q, want digest %s", out, want)
	}
	if got := strings.TrimSpace(run(t, requireTool(t, "crane"), "digest", "--insecure", srv.Addr+"/team/cli:1")); got != want.String() {
		t.Fatalf("pushed digest %s, want %s", got, want)
	}
	img2, _ := crrandom.Image(128, 1)
	lp, err := layout.Write(filepath.Join(dir, "layout"), empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := lp.AppendImage(img2); err != nil {
		t.Fatal(err)
	}
	var pushed map[string]string
	if err := json.Unmarshal([]byte(u.ok("", "push", filepath.Join(dir, "layout"), "team/cli:2", "-o", "json")), &pushed); err != nil {
		t.Fatal(err)
	}
	if d2, _ := img2.Digest(); pushed["digest"] != d2.String() {
		t.Fatalf("layout push = %v, want %s", pushed, d2)
	}
	if _, errOut, code := u.run("", "push", filepath.Join(dir, "missing.tar"), "team/cli:3"); code == 0 || !strings.Contains(errOut, "no such file") {
		t.Fatalf("push of a missing file: exit %d %q", code, errOut)
	}

	// ee list -o json is the API's JSON.
	var ees []struct {
		Name string `json:"name"`
		Pull struct {
			ByTag string `json:"by_tag"`
		} `json:"pull"`
	}
	if err := json.Unmarshal([]byte(u.ok("", "ee", "list", "-o", "json")), &ees); err != nil {
		t.Fatal(err)
	}
	if len(ees) != 1 || ees[0].Name != "team/cli" || ees[0].Pull.ByTag == "" {
		t.Fatalf("ee list = %+v", ees)
	}
	if table := u.ok("", "ee", "list"); !strings.Contains(table, "NAME") || !strings.Contains(table, "team/cli") {
		t.Fatalf("ee list table:\n%s", table)
	}
	if show := u.ok("", "ee", "show", "team/cli"); !strings.Contains(show, srv.Addr+"/team/cli:") {
		t.Fatalf("ee show:\n%s", show)
	}
	u.ok("# CLI readme\n", "ee", "readme", "team/cli", "--set", "-")
	if got := u.ok("", "ee", "readme", "team/cli"); got != "# CLI readme\n" {
		t.Fatalf("readme = %q", got)
	}

	// A tag change without waiting prints the task; task wait waits for it.
	href := strings.TrimSpace(u.ok("", "ee", "tag", "team/cli", "1", "stable", "--no-wait"))
	if !strings.HasPrefix(href, "/pulp/api/v3/tasks/") {
		t.Fatalf("ee tag --no-wait printed %q", href)
	}
	if out := u.ok("", "task", "wait", href); !strings.Contains(out, "completed") {
		t.Fatalf("task wait printed %q", out)
	}
	var task struct {
		State string `json:"state"`
	}
	if err := json.Unmarshal([]byte(u.ok("", "task", "show", href, "-o", "json")), &task); err != nil || task.State != "completed" {
		t.Fatalf("task show: %+v %v", task, err)
	}
	var images []string
	if err := json.Unmarshal([]byte(u.ok("", "images", "-o", "json")), &images); err != nil {
		t.Fatal(err)
	}
	if strings.Join(images, ",") != "team/cli:1,team/cli:2,team/cli:stable" {
		t.Fatalf("images = %v", images)
	}
	if st := u.ok("", "images", "team/cli:stable"); !strings.Contains(st, "READY") {
		t.Fatalf("image status:\n%s", st)
	}
	u.ok("", "ee", "untag", "team/cli", "stable")
	if _, errOut, code := u.run("", "ee", "untag", "team/cli", "stable"); code != 1 || !strings.Contains(errOut, "404") {
		t.Fatalf("untag of a missing tag: exit %d %q", code, errOut)
	}

	// task wait exits non-zero for a failed task.
	var accepted struct {
		Task string `json:"task"`
	}
	if st, body := srv.API(t).Do(http.MethodPost, "/pulp/api/v3/test/dispatch/", map[string]any{"args": map[string]any{"steps": 3, "step_ms": 50, "fail": true}}, &accepted); st != http.StatusAccepted {
		t.Fatalf("dispatch: %d %s", st, body)
	}
	if _, errOut, code := u.run("", "task", "wait", accepted.Task); code != 1 || !strings.Contains(errOut, "failed") {
		t.Fatalf("task wait of a failing task: exit %d, %q", code, errOut)
	}

	// The catalog from the command line.
	u.ok("", "catalog", "create", "cli-image", "--url", srv.Addr+"/team/cli:1", "--global")
	var entries []struct {
		Name string `json:"name"`
	}
	if err := json.Unmarshal([]byte(u.ok("", "catalog", "list", "-o", "json")), &entries); err != nil || len(entries) != 1 || entries[0].Name != "cli-image" {
		t.Fatalf("catalog list: %+v %v", entries, err)
	}
	if _, errOut, code := u.run("", "catalog", "create", "Bad Name", "--url", "x.example.com/a:1"); code != 1 || !strings.Contains(errOut, "lowercase") {
		t.Fatalf("bad display name: exit %d %q", code, errOut)
	}
	u.ok("", "catalog", "delete", "cli-image")

	// Delete an image by digest, then the whole EE, waiting for each.
	u.ok("", "ee", "delete", "team/cli", want.String())
	u.ok("", "ee", "delete", "team/cli")
	if _, errOut, code := u.run("", "ee", "show", "team/cli"); code != 1 || !strings.Contains(errOut, "404") {
		t.Fatalf("show after delete: exit %d %q", code, errOut)
	}
}

// TestCLIRemoteExecutionEnvironment mirrors an image from another registry
// (a second berth serve): the EE shows its remote and, after 'berth ee
// sync', its last sync.
func TestCLIRemoteExecutionEnvironment(t *testing.T) {
	crane := requireTool(t, "crane")
	upstream := NewEnv(t, db.SQLite, false).Serve(t)
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	run(t, crane, "auth", "login", upstream.Addr, "-u", "admin", "-p", "admin-e2e-password")
	d := cranePush(t, smallLayer(t, t.TempDir(), "upstream"), upstream.Addr+"/team/app:1.0")

	srv := NewEnv(t, db.SQLite, false).Serve(t)
	s := newProdSite(t, srv)
	admin := srv.API(t)
	var reg struct {
		Href string `json:"pulp_href"`
	}
	if st, raw := admin.Do(http.MethodPost, "/api/v1/registries/", map[string]any{"name": "upstream", "url": upstream.URL, "username": "admin", "password": "admin-e2e-password"}, &reg); st != http.StatusCreated {
		t.Fatalf("create registry: %d %s", st, raw)
	}
	if st, raw := admin.Do(http.MethodPost, "/api/v1/remote-images/", map[string]any{"name": "mirror/app", "upstream_name": "team/app", "registry": reg.Href}, nil); st != http.StatusCreated {
		t.Fatalf("create remote image: %d %s", st, raw)
	}
	type eeOut struct {
		Name   string `json:"name"`
		Pull   any    `json:"pull"`
		Remote *struct {
			Name         string `json:"name"`
			URL          string `json:"url"`
			UpstreamName string `json:"upstream_name"`
			LastSync     *struct {
				State string `json:"state"`
			} `json:"last_sync"`
		} `json:"remote"`
	}
	var before eeOut
	s.call(prodAdmin, http.MethodGet, "/api/v1/execution-environments/mirror/app/", nil, http.StatusOK, &before)
	if before.Remote == nil || before.Remote.UpstreamName != "team/app" || before.Remote.LastSync != nil || before.Pull != nil {
		t.Fatalf("remote EE before its first sync = %+v", before)
	}
	var imgs prodPage[prodImage]
	s.call(prodAdmin, http.MethodGet, "/api/v1/execution-environments/mirror/app/_content/images/", nil, http.StatusOK, &imgs)

	u := newCLIUser(t)
	u.ok("admin-e2e-password\n", "login", srv.URL, "-u", "admin", "--password-stdin")
	if out := u.ok("", "registries"); !strings.Contains(out, "upstream") || !strings.Contains(out, upstream.URL) {
		t.Fatalf("registries:\n%s", out)
	}
	var remote []struct {
		Name string `json:"name"`
	}
	if err := json.Unmarshal([]byte(u.ok("", "ee", "list", "--remote", "-o", "json")), &remote); err != nil || len(remote) != 1 || remote[0].Name != "mirror/app" {
		t.Fatalf("ee list --remote: %+v %v", remote, err)
	}
	u.ok("", "ee", "sync", "mirror/app")
	var after eeOut
	s.call(prodAdmin, http.MethodGet, "/api/v1/execution-environments/mirror/app/", nil, http.StatusOK, &after)
	if after.Remote == nil || after.Remote.LastSync == nil || after.Remote.LastSync.State != "completed" || after.Pull == nil {
		t.Fatalf("remote EE after a sync = %+v", after)
	}
	s.call(prodAdmin, http.MethodGet, "/api/v1/execution-environments/mirror/app/_content/images/", nil, http.StatusOK, &imgs)
	if imgs.Count != 1 || imgs.Results[0].Digest != d {
		t.Fatalf("mirrored images = %+v", imgs)
	}
	if out := u.ok("", "ee", "show", "mirror/app"); !strings.Contains(out, "last sync") || !strings.Contains(out, "completed") {
		t.Fatalf("ee show:\n%s", out)
	}
	// Readmes are never synced: the mirror's is its own.
	s.call(prodAdmin, http.MethodPut, "/api/v1/execution-environments/mirror/app/_content/readme/", map[string]string{"text": "mirror"}, http.StatusOK, nil)
	u.ok("", "ee", "sync", "mirror/app")
	if got := u.ok("", "ee", "readme", "mirror/app"); got != "mirror" {
		t.Fatalf("readme after a second sync = %q", got)
	}
}

// TestCLIBuilds drives image builds from the command line: create (waiting
// for it), logs, rebuild with a change, cancel.
func TestCLIBuilds(t *testing.T) {
	be := newBuildEnv(t, db.SQLite, false)
	u := newCLIUser(t)
	u.ok("admin-e2e-password\n", "login", be.srv.URL, "-u", "admin", "--password-stdin")
	dir := t.TempDir()
	apt := filepath.Join(dir, "apt.txt")
	if err := os.WriteFile(apt, []byte("curl\nvim\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := u.run("", "build", "create", "apps/cli:1", "--base", "base/busybox:1", "--apt", apt)
	if code != 0 || !strings.Contains(out, "completed") {
		t.Fatalf("build create: exit %d\n%s\n%s", code, out, errOut)
	}
	href := strings.TrimSpace(strings.TrimPrefix(strings.SplitN(errOut, "\n", 2)[0], "build "))
	if !strings.HasPrefix(href, buildsPath) {
		t.Fatalf("build create did not name the build: %q", errOut)
	}
	if logs := u.ok("", "build", "logs", href, "-f"); !strings.Contains(logs, "apt-get stand-in") {
		t.Fatalf("build logs:\n%s", logs)
	}
	if st := u.ok("", "images", "apps/cli:1"); !strings.Contains(st, "READY") {
		t.Fatalf("built image status:\n%s", st)
	}
	pip := filepath.Join(dir, "pip.txt")
	if err := os.WriteFile(pip, []byte("requests==2.31.0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, errOut, code := u.run("", "build", "rebuild", href, "--pip", pip); code != 0 || !strings.Contains(out, "completed") {
		t.Fatalf("build rebuild: exit %d\n%s\n%s", code, out, errOut)
	}
	var started struct {
		Href string `json:"pulp_href"`
	}
	if err := json.Unmarshal([]byte(u.ok("", "build", "create", "apps/slow:1", "--base", "base/busybox:1", "--apt", apt, "--no-wait", "-o", "json")), &started); err != nil || started.Href == "" {
		t.Fatalf("build create --no-wait: %+v %v", started, err)
	}
	u.ok("", "build", "cancel", started.Href)
	if b := be.wait(t, started.Href, 5*time.Minute); b.Phase != "cancelled" && b.Phase != "succeeded" {
		t.Fatalf("cancelled build ended %s", b.Phase)
	}
}
