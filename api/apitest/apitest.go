// Package apitest runs Berth's REST API over httptest on a real database,
// with embedded task workers, for the tests of package api and of the
// plugins:
//
//	apitest.Each(t, apitest.Options{Plugins: []core.Plugin{myPlugin{}}}, func(t *testing.T, env *apitest.Env) {
//		var repo api.RepositoryResponse
//		env.Call(http.MethodPost, api.TypedListHref(api.Repositories, "my.type"), map[string]any{"name": "r"}, http.StatusCreated, &repo)
//	})
//
// Each runs the test once per database (SQLite and PostgreSQL, see
// internal/testdb). Tasks dispatched by the API stay waiting until the test
// calls StartWorkers, so a test can look at a waiting task first.
package apitest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"gorm.io/gorm"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/core"
	"github.com/berth-dev/berth/core/db"
	"github.com/berth-dev/berth/core/secret"
	"github.com/berth-dev/berth/internal/testdb"
	"github.com/berth-dev/berth/migrations"
	"github.com/berth-dev/berth/tasks"
)

// SecretKey is the key the environment seals credentials with.
const SecretKey = "apitest-secret-key-0123456789abcdef"

// WaitTimeout bounds every wait of the helpers.
const WaitTimeout = 20 * time.Second

// Options configure an Env.
type Options struct {
	// Plugins are registered in the core registry (their API routes too,
	// when they implement api.Routes).
	Plugins []core.Plugin
	// TaskHandlers are registered beside the core's.
	TaskHandlers map[string]tasks.Handler
	// Migrations are applied after the core's (plugins' own tables).
	Migrations []db.MigrationSet
	// Routes are extra route sets (api.Deps.Routes).
	Routes []api.Routes
	// Checks replace the default probes (database ping only).
	Checks api.Checks
	// Middleware guards the non-public routes (api.Deps.Middleware).
	Middleware []echo.MiddlewareFunc
	// WriteGuard guards the core's writes (api.Deps.WriteGuard).
	WriteGuard echo.MiddlewareFunc
	// Version is the version the server reports (default "test").
	Version string
}

// Env is a running API over one test database.
type Env struct {
	T            testing.TB
	DB           *gorm.DB
	Store        *core.Store
	Registry     *core.Registry
	TaskRegistry *tasks.Registry
	Tasks        *tasks.Embedded
	Server       *api.Server
	Echo         *echo.Echo
	HTTP         *httptest.Server
	// URL is the server's base URL (no trailing slash).
	URL string

	once sync.Once
}

// Logger is where the environment's logs go: nowhere, unless
// BERTH_TEST_LOG=1 sends them to standard error.
func Logger() *slog.Logger {
	if os.Getenv("BERTH_TEST_LOG") == "1" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// Each runs fn as a subtest per database dialect, each with an Env of its
// own.
func Each(t *testing.T, opts Options, fn func(t *testing.T, env *Env)) {
	t.Helper()
	sets := append([]db.MigrationSet{migrations.Core}, opts.Migrations...)
	testdb.Each(t, sets, func(t *testing.T, g *gorm.DB) {
		fn(t, New(t, g, opts))
	})
}

// New starts the API over g, which must be migrated.
func New(t testing.TB, g *gorm.DB, opts Options) *Env {
	t.Helper()
	log := Logger()
	box, err := secret.New(SecretKey)
	if err != nil {
		t.Fatal(err)
	}
	store := core.NewStore(g, box)
	reg := core.NewRegistry()
	for _, p := range opts.Plugins {
		if err := reg.Register(p); err != nil {
			t.Fatal(err)
		}
	}
	treg := tasks.NewRegistry()
	for name, h := range api.CoreTaskHandlers(store) {
		if err := treg.Register(name, h); err != nil {
			t.Fatal(err)
		}
	}
	for name, h := range opts.TaskHandlers {
		if err := treg.Register(name, h); err != nil {
			t.Fatal(err)
		}
	}
	emb, err := tasks.NewEmbedded(g, treg, 1,
		tasks.WithLogger(log),
		tasks.WithHeartbeat(100*time.Millisecond),
		tasks.WithPollInterval(20*time.Millisecond),
		tasks.WithProgressInterval(20*time.Millisecond),
		tasks.WithShutdownGrace(3*time.Second),
		tasks.WithLostAfter(5*time.Second),
		tasks.WithSweepInterval(0),
	)
	if err != nil {
		t.Fatal(err)
	}
	ts, err := api.NewTaskService(g, emb.Dispatcher(), emb.Queue())
	if err != nil {
		t.Fatal(err)
	}
	version := opts.Version
	if version == "" {
		version = "test"
	}
	srv, err := api.New(api.Deps{
		Store: store, Registry: reg, Tasks: ts, Version: version, Checks: opts.Checks,
		Log: log, Middleware: opts.Middleware, WriteGuard: opts.WriteGuard, Routes: opts.Routes,
	})
	if err != nil {
		t.Fatal(err)
	}
	e := api.NewEcho(log)
	if err := srv.Register(e); err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(e)
	t.Cleanup(hs.Close)
	return &Env{
		T: t, DB: g, Store: store, Registry: reg, TaskRegistry: treg, Tasks: emb,
		Server: srv, Echo: e, HTTP: hs, URL: hs.URL,
	}
}

// StartWorkers runs the embedded workers until the test ends; tasks
// dispatched before are picked up now. Calling it again does nothing.
func (e *Env) StartWorkers() {
	e.once.Do(func() {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- e.Tasks.Run(ctx) }()
		e.T.Cleanup(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					e.T.Errorf("embedded workers: %v", err)
				}
			case <-time.After(WaitTimeout):
				e.T.Errorf("embedded workers did not stop within %s", WaitTimeout)
			}
		})
	})
}

// Response is an answer of the server.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body into v.
func (r *Response) JSON(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("decode %s: %v", r.Body, err)
	}
}

// Map decodes the body as a JSON object.
func (r *Response) Map(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	r.JSON(t, &m)
	return m
}

// Do sends a request. body is sent as it is when it is a string or []byte,
// as JSON otherwise; nil sends no body. path is relative to the server.
func (e *Env) Do(method, path string, body any) *Response {
	e.T.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = bytes.NewReader([]byte(b))
	case []byte:
		rd = bytes.NewReader(b)
	default:
		raw, err := json.Marshal(body)
		if err != nil {
			e.T.Fatalf("encode body: %v", err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, e.URL+path, rd)
	if err != nil {
		e.T.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := e.HTTP.Client().Do(req)
	if err != nil {
		e.T.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		e.T.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return &Response{Status: resp.StatusCode, Header: resp.Header, Body: raw}
}

// Call sends a request, fails the test unless the answer has status want,
// and decodes the body into out (when not nil). It returns the raw body.
func (e *Env) Call(method, path string, body any, want int, out any) []byte {
	e.T.Helper()
	r := e.Do(method, path, body)
	if r.Status != want {
		e.T.Fatalf("%s %s: status %d, want %d; body %s", method, path, r.Status, want, r.Body)
	}
	if out != nil {
		r.JSON(e.T, out)
	}
	return r.Body
}

// WaitTask polls a task through the API until it is finished and returns
// it; it fails the test after WaitTimeout.
func (e *Env) WaitTask(href string) api.TaskResponse {
	e.T.Helper()
	deadline := time.Now().Add(WaitTimeout)
	for {
		var t api.TaskResponse
		e.Call(http.MethodGet, href, nil, http.StatusOK, &t)
		switch t.State {
		case "completed", "failed", "canceled":
			return t
		}
		if time.Now().After(deadline) {
			e.T.Fatalf("task %s (%s) still %s after %s", href, t.Name, t.State, WaitTimeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// RunTask starts the workers and waits for a task answered by a 202 body
// ({"task": href}); it fails the test unless the task completes.
func (e *Env) RunTask(accepted []byte) api.TaskResponse {
	e.T.Helper()
	var a api.TaskAccepted
	if err := json.Unmarshal(accepted, &a); err != nil || a.Task == "" {
		e.T.Fatalf("not a task answer: %s (%v)", accepted, err)
	}
	e.StartWorkers()
	t := e.WaitTask(a.Task)
	if t.State != "completed" {
		e.T.Fatalf("task %s (%s) ended %s: %+v", a.Task, t.Name, t.State, t.Error)
	}
	return t
}
