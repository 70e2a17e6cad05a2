package builds

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"gorm.io/gorm"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/auth"
	"github.com/berth-dev/berth/core"
	"github.com/berth-dev/berth/core/db"
	"github.com/berth-dev/berth/core/secret"
	"github.com/berth-dev/berth/internal/testdb"
	"github.com/berth-dev/berth/migrations"
	"github.com/berth-dev/berth/plugins/container"
	"github.com/berth-dev/berth/plugins/container/build"
	"github.com/berth-dev/berth/tasks"
)

var sets = []db.MigrationSet{migrations.Core, container.Migrations()}

// testRegistry is the registry host the tests' builds push to.
const testRegistry = "127.0.0.1:5999"

func testLog() *slog.Logger {
	if os.Getenv("BERTH_TEST_LOG") == "1" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// fakeImages is the registry's side: repositories with tags, some private.
type fakeImages struct {
	mu      sync.Mutex
	tags    map[string]map[string]string // repository → tag → digest
	private map[string]bool              // repository → private
}

func newFakeImages() *fakeImages {
	return &fakeImages{tags: map[string]map[string]string{}, private: map[string]bool{}}
}

func (f *fakeImages) put(repo, tag, digest string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.tags[repo] == nil {
		f.tags[repo] = map[string]string{}
	}
	f.tags[repo][tag] = digest
}

func (f *fakeImages) ResolveNamespace(_ context.Context, repo string) (container.NamespaceStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ns := auth.NamespaceOf(repo)
	st := container.NamespaceStatus{Name: ns, Private: f.private[repo]}
	for r := range f.tags {
		if auth.NamespaceOf(r) == ns {
			st.Exists = true
		}
	}
	return st, nil
}

func (f *fakeImages) ListTags(_ context.Context, name string, _ container.ListOptions) ([]container.TagInfo, int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	tags, ok := f.tags[name]
	if !ok {
		return nil, 0, core.NotFound("repository", name)
	}
	var out []container.TagInfo
	for t, d := range tags {
		out = append(out, container.TagInfo{Name: t, Digest: d})
	}
	return out, int64(len(out)), nil
}

func (f *fakeImages) GetManifest(_ context.Context, name, ref string) (*container.ManifestInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d, ok := f.tags[name][ref]
	if !ok {
		return nil, core.NotFound("manifest", name+":"+ref)
	}
	return &container.ManifestInfo{Digest: d}, nil
}

// fakeAuthz grants roles by user name and namespace: "push" (with pull)
// or "pull"; "admin" may do everything; public namespaces are pulled by
// all.
type fakeAuthz struct {
	roles map[string]map[string]string
}

func (a fakeAuthz) Can(_ context.Context, p *auth.Principal, act auth.Action, ns auth.Namespace) (bool, error) {
	if p.Username == "admin" || act == auth.ActionPull && !ns.Private && !ns.Missing {
		return true, nil
	}
	role := a.roles[p.Username][ns.Name]
	return role == "push" || role == "pull" && act == auth.ActionPull, nil
}

func (a fakeAuthz) Require(ctx context.Context, p *auth.Principal, act auth.Action, ns auth.Namespace) error {
	ok, err := a.Can(ctx, p, act, ns)
	switch {
	case err != nil:
		return err
	case ok:
		return nil
	case p.IsAnonymous():
		return core.ErrUnauthorized
	}
	return fmt.Errorf("%s on %q: %w", act, ns.Name, core.ErrForbidden)
}

// fakeUsers hands out registry tokens and remembers the revoked ones.
type fakeUsers struct {
	mu      sync.Mutex
	n       int
	revoked []string
}

func (u *fakeUsers) User(_ context.Context, id string) (*auth.User, error) {
	return &auth.User{ID: id, Username: strings.TrimPrefix(id, "id-"), Active: true}, nil
}

func (u *fakeUsers) CreateToken(_ context.Context, userID string, in auth.TokenInput) (*auth.NewToken, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.n++
	if in.Kind != auth.TokenRegistry || in.Lifetime <= 0 {
		return nil, fmt.Errorf("want a registry token with a lifetime, got %+v", in)
	}
	return &auth.NewToken{Token: auth.Token{ID: fmt.Sprintf("tok-%d", u.n), UserID: userID, Kind: in.Kind}, Value: fmt.Sprintf("berth_secret%d", u.n)}, nil
}

func (u *fakeUsers) RevokeToken(_ context.Context, id string) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.revoked = append(u.revoked, id)
	return nil
}

func (u *fakeUsers) revokedTokens() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return slices.Clone(u.revoked)
}

// run is one call of the fake runner.
type run struct {
	Dir     string
	Job     build.Job
	Context []byte
}

// fakeRunner plays buildah: it writes a few lines, then does what the test
// asks (by default: "push" to the fake images and succeed).
type fakeRunner struct {
	images   *fakeImages
	baseUser string
	baseErr  error

	mu   sync.Mutex
	runs []run
	// do, when set, runs instead of the default behaviour.
	do func(ctx context.Context, job build.Job, out io.Writer) (*build.Result, error)
}

func (r *fakeRunner) BaseUser(_ context.Context, base string, creds *build.Credentials) (string, error) {
	return r.baseUser, r.baseErr
}

func (r *fakeRunner) Run(ctx context.Context, dir string, job build.Job, out io.Writer) (*build.Result, error) {
	rn := run{Dir: dir, Job: job}
	if job.Context != nil {
		rn.Context, _ = io.ReadAll(job.Context)
	}
	r.mu.Lock()
	r.runs = append(r.runs, rn)
	do := r.do
	r.mu.Unlock()
	fmt.Fprintf(out, "STEP 1/2: FROM base\n")
	fmt.Fprintf(out, "STEP 2/2: RUN install\n")
	if do != nil {
		return do(ctx, job, out)
	}
	res := &build.Result{Digest: "sha256:" + strings.Repeat("ab", 32)}
	for _, d := range job.Destinations {
		repo, tag, _ := strings.Cut(strings.TrimPrefix(d, testRegistry+"/"), ":")
		r.images.put(repo, tag, res.Digest)
		res.Pushed = append(res.Pushed, build.Pushed{Reference: d, Digest: res.Digest})
	}
	return res, nil
}

func (r *fakeRunner) lastRun(t *testing.T) run {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.runs) == 0 {
		t.Fatal("the runner never ran")
	}
	return r.runs[len(r.runs)-1]
}

// env is the builds API over a test database, with embedded workers on the
// builds queue, fake registry, authorization, users and runner.
type env struct {
	t      *testing.T
	g      *gorm.DB
	store  *core.Store
	images *fakeImages
	users  *fakeUsers
	runner *fakeRunner
	svc    *Service
	srv    *httptest.Server
}

type envOptions struct {
	logHead, logTail int64
}

func newEnv(t *testing.T, g *gorm.DB, o envOptions) *env {
	t.Helper()
	box, err := secret.New("builds-test-secret-key-0123456789")
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, g: g, store: core.NewStore(g, box), images: newFakeImages(), users: &fakeUsers{}}
	e.runner = &fakeRunner{images: e.images}
	h, err := NewHandler(HandlerConfig{Store: e.store, Runner: e.runner, Users: e.users, Registry: testRegistry,
		WorkDir: t.TempDir(), LogHead: o.logHead, LogTail: o.logTail, Log: testLog()})
	if err != nil {
		t.Fatal(err)
	}
	reg := tasks.NewRegistry()
	if err := reg.RegisterProvider(h); err != nil {
		t.Fatal(err)
	}
	emb, err := tasks.NewEmbedded(g, reg, 1, tasks.WithLogger(testLog()), tasks.WithQueue(Queue, 2),
		tasks.WithHeartbeat(100*time.Millisecond), tasks.WithPollInterval(20*time.Millisecond),
		tasks.WithProgressInterval(20*time.Millisecond), tasks.WithSweepInterval(0))
	if err != nil {
		t.Fatal(err)
	}
	ts, err := api.NewTaskService(g, emb.Dispatcher(), emb.Queue())
	if err != nil {
		t.Fatal(err)
	}
	authz := fakeAuthz{roles: map[string]map[string]string{
		"alice": {"team": "push", "base": "pull"},
		"carol": {"team": "pull"},
	}}
	e.svc, err = NewService(ServiceConfig{Store: e.store, Images: e.images, Authorizer: authz, Tasks: ts,
		Registry: testRegistry, PublicURL: "https://registry.example.com", Log: testLog()})
	if err != nil {
		t.Fatal(err)
	}
	principal := func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if u := c.Request().Header.Get("X-User"); u != "" {
				p := &auth.Principal{UserID: "id-" + u, Username: u, Method: auth.MethodPassword}
				c.SetRequest(c.Request().WithContext(auth.WithPrincipal(c.Request().Context(), p)))
			}
			return next(c)
		}
	}
	srv, err := api.New(api.Deps{Store: e.store, Registry: core.NewRegistry(), Tasks: ts, Log: testLog(),
		Middleware: []echo.MiddlewareFunc{principal}, Routes: []api.Routes{Routes{Service: e.svc}}})
	if err != nil {
		t.Fatal(err)
	}
	ech := api.NewEcho(testLog())
	if err := srv.Register(ech); err != nil {
		t.Fatal(err)
	}
	if u := api.Undocumented(ech, srv.Doc()); len(u) > 0 {
		t.Fatalf("undocumented routes: %v", u)
	}
	e.srv = httptest.NewServer(ech)
	t.Cleanup(e.srv.Close)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- emb.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		// A test that ends while the workers register stops them there.
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) && !strings.Contains(err.Error(), "context canceled") {
			t.Errorf("workers: %v", err)
		}
	})
	return e
}

// each runs fn on SQLite and PostgreSQL.
func each(t *testing.T, o envOptions, fn func(t *testing.T, e *env)) {
	t.Helper()
	testdb.Each(t, sets, func(t *testing.T, g *gorm.DB) { fn(t, newEnv(t, g, o)) })
}

// do sends a request as user (none: anonymous) and returns status and body.
func (e *env) do(user, method, path string, body any) (int, []byte) {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return e.send(user, req)
}

func (e *env) send(user string, req *http.Request) (int, []byte) {
	e.t.Helper()
	if user != "" {
		req.Header.Set("X-User", user)
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp.StatusCode, raw
}

// call is do, failing unless the status is want, decoding into out.
func (e *env) call(user, method, path string, body any, want int, out any) []byte {
	e.t.Helper()
	code, raw := e.do(user, method, path, body)
	if code != want {
		e.t.Fatalf("%s %s as %q: status %d, want %d: %s", method, path, user, code, want, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			e.t.Fatalf("decode %s: %v", raw, err)
		}
	}
	return raw
}

// wait polls a build until its phase is final.
func (e *env) wait(user, href string) View {
	e.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var v View
		e.call(user, http.MethodGet, href, nil, http.StatusOK, &v)
		if v.Phase.Finished() && v.TaskState != nil && tasks.State(*v.TaskState).Finished() {
			return v
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("build %s still %s", href, v.Phase)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitPhase polls a build until it reaches phase.
func (e *env) waitPhase(user, href string, phase Phase) View {
	e.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var v View
		e.call(user, http.MethodGet, href, nil, http.StatusOK, &v)
		if v.Phase == phase {
			return v
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("build %s is %s, not %s", href, v.Phase, phase)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// logLines reads a log (with a query such as "?tail=2") as lines.
func (e *env) logLines(user, href, query string) []string {
	e.t.Helper()
	code, raw := e.do(user, http.MethodGet, href+"logs/"+query, nil)
	if code != http.StatusOK {
		e.t.Fatalf("logs: %d %s", code, raw)
	}
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}

// bufioScanner reads lines of a log stream.
func bufioScanner(r io.Reader) *bufio.Scanner {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	return sc
}
