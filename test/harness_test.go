// Package test holds Berth's end-to-end tests: real berth processes driven
// by real clients (skopeo, podman, crane, the OCI conformance suite) and by
// plain HTTP. The binary comes from BERTH_BINARY (make test sets it) or is
// built once by TestMain.
package test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/berth-dev/berth/core/db"
	"github.com/berth-dev/berth/internal/testdb"
)

var berthBinary string

func TestMain(m *testing.M) {
	berthBinary = os.Getenv("BERTH_BINARY")
	var tmp string
	if berthBinary == "" {
		var err error
		tmp, err = os.MkdirTemp("", "berth-e2e-bin")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		berthBinary = filepath.Join(tmp, "berth")
		cmd := exec.Command("go", "build", "-o", berthBinary, "../cmd/berth")
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "build berth:", err)
			os.Exit(1)
		}
	}
	code := m.Run()
	if tmp != "" {
		os.RemoveAll(tmp)
	}
	os.Exit(code)
}

// requireTool finds a client program, skipping the test locally (failing in
// CI) when it is not installed.
func requireTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		testdb.Unavailable(t, name, err)
	}
	return p
}

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// logBuffer collects a process's output for failure reports.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// Proc is a running berth process.
type Proc struct {
	Name string
	cmd  *exec.Cmd
	logs *logBuffer
	done chan struct{}
}

// Logs returns what the process printed so far.
func (p *Proc) Logs() string { return p.logs.String() }

// Kill sends SIGKILL (a crash, nothing cleaned up) and waits for the exit.
func (p *Proc) Kill(t testing.TB) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// Stop asks the process to shut down (SIGTERM) and waits up to 20 s.
func (p *Proc) Stop(t testing.TB) {
	t.Helper()
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		t.Errorf("%s did not stop within 20s after SIGTERM", p.Name)
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.done
	}
}

// Env is the configuration shared by a serve process and its workers.
type Env struct {
	DataDir     string
	DatabaseURL string
	RedisURL    string
	Extra       []string
}

// NewEnv makes a fresh configuration: its own data dir and, for dialect
// postgres, its own database; redis adds a private Redis database/prefix.
func NewEnv(t testing.TB, dialect db.Dialect, withRedis bool) *Env {
	t.Helper()
	e := &Env{DataDir: t.TempDir()}
	if dialect == db.Postgres {
		e.DatabaseURL = testdb.URL(t, dialect)
	}
	if withRedis {
		e.RedisURL = redisURL(t)
	}
	return e
}

func (e *Env) environ(extra ...string) []string {
	env := []string{}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "BERTH_") {
			env = append(env, kv)
		}
	}
	env = append(env,
		"BERTH_DATA_DIR="+e.DataDir,
		"BERTH_DATABASE_URL="+e.DatabaseURL,
		"BERTH_REDIS_URL="+e.RedisURL,
		"BERTH_SECRET_KEY=e2e-secret-key-0123456789abcdef",
		"BERTH_ADMIN_PASSWORD=admin-e2e-password",
		"BERTH_LOG_LEVEL=debug",
	)
	env = append(env, e.Extra...)
	return append(env, extra...)
}

func (e *Env) start(t testing.TB, name string, args []string, extra ...string) *Proc {
	t.Helper()
	cmd := exec.Command(berthBinary, args...)
	cmd.Env = e.environ(extra...)
	logs := &logBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	p := &Proc{Name: name, cmd: cmd, logs: logs, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.Stop(t)
		if t.Failed() {
			t.Logf("---- %s output ----\n%s", name, tail(p.Logs(), 200))
		}
	})
	return p
}

func tail(s string, lines int) string {
	parts := strings.Split(s, "\n")
	if len(parts) > lines {
		parts = parts[len(parts)-lines:]
	}
	return strings.Join(parts, "\n")
}

// Server is a running berth serve.
type Server struct {
	*Proc
	Addr string // host:port
	URL  string // http://host:port
}

// Serve starts berth serve and waits until /readyz answers 200.
func (e *Env) Serve(t testing.TB, extra ...string) *Server {
	t.Helper()
	addr := freeAddr(t)
	p := e.start(t, "serve", []string{"serve"}, append([]string{"BERTH_LISTEN=" + addr}, extra...)...)
	s := &Server{Proc: p, Addr: addr, URL: "http://" + addr}
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(s.URL + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return s
			}
		}
		select {
		case <-p.done:
			t.Fatalf("berth serve exited during start:\n%s", tail(p.Logs(), 100))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("berth serve not ready after 60s:\n%s", tail(p.Logs(), 100))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Worker starts a berth worker process.
func (e *Env) Worker(t testing.TB, name string, extra ...string) *Proc {
	t.Helper()
	return e.start(t, name, []string{"worker"}, append([]string{"BERTH_WORKER_NAME=" + name}, extra...)...)
}

// Client is a plain HTTP client for the REST API, with admin credentials.
type Client struct {
	t    testing.TB
	Base string
	User string
	Pass string
}

// API returns a client of the server's REST API logged in as the first admin.
func (s *Server) API(t testing.TB) *Client {
	return &Client{t: t, Base: s.URL, User: "admin", Pass: "admin-e2e-password"}
}

// Do sends a request with an optional JSON body and decodes a JSON answer
// into out (when non-nil). It returns the status and raw body.
func (c *Client) Do(method, path string, body any, out any) (int, []byte) {
	c.t.Helper()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			c.t.Fatal(err)
		}
		r = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, c.Base+path, r)
	if err != nil {
		c.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.User != "" {
		req.SetBasicAuth(c.User, c.Pass)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatal(err)
	}
	if out != nil && len(raw) > 0 && resp.StatusCode < 300 {
		if err := json.Unmarshal(raw, out); err != nil {
			c.t.Fatalf("%s %s: decode %s: %v", method, path, raw, err)
		}
	}
	return resp.StatusCode, raw
}

// run executes a client program, failing the test with its output on error.
func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := runErr(name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

// runErr executes a client program and returns its combined output.
func runErr(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func redisURL(t testing.TB) string {
	_, u := testdb.Redis(t)
	return u
}
