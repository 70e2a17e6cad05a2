package tasks_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/berth-dev/berth/core/db"
	"github.com/berth-dev/berth/internal/testdb"
	"github.com/berth-dev/berth/migrations"
	"github.com/berth-dev/berth/tasks"
	"github.com/berth-dev/berth/tasks/asynqq"
	"github.com/berth-dev/berth/tasks/internal/leakcheck"
	"github.com/berth-dev/berth/tasks/internal/redistest"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

var sets = []db.MigrationSet{migrations.Core}

// waitTimeout bounds every wait of these tests.
const waitTimeout = 15 * time.Second

// testLogger shows warnings and errors only.
var testLogger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

// fast are worker settings that keep the tests quick.
func fast(extra ...tasks.Option) []tasks.Option {
	return append([]tasks.Option{
		tasks.WithHeartbeat(100 * time.Millisecond),
		tasks.WithPollInterval(20 * time.Millisecond),
		tasks.WithProgressInterval(20 * time.Millisecond),
		tasks.WithShutdownGrace(3 * time.Second),
		tasks.WithLostAfter(5 * time.Second),
		tasks.WithSweepInterval(0),
		tasks.WithLogger(testLogger),
	}, extra...)
}

// startWorker runs a worker until the test ends (or stop is called) and
// checks that it stopped cleanly.
func startWorker(t *testing.T, g *gorm.DB, q tasks.Queue, reg *tasks.Registry, opts ...tasks.Option) (w *tasks.Worker, stop func() error) {
	t.Helper()
	w, err := tasks.NewWorker(g, q, reg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	var (
		once sync.Once
		res  error
	)
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case res = <-done:
			case <-time.After(waitTimeout):
				res = errors.New("worker did not stop")
				buf := make([]byte, 1<<20)
				t.Errorf("%v; goroutines:\n%s", res, buf[:runtime.Stack(buf, true)])
			}
		})
		return res
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("worker %s: %v", w.Name(), err)
		}
	})
	waitFor(t, "worker online", func() bool {
		wi, err := tasks.GetWorker(context.Background(), g, w.Name())
		return err == nil && wi.Online
	})
	return w, stop
}

func newDispatcher(t *testing.T, g *gorm.DB, q tasks.Enqueuer, opts ...tasks.Option) *tasks.Dispatcher {
	t.Helper()
	d, err := tasks.NewDispatcher(g, q, append([]tasks.Option{tasks.WithLogger(testLogger)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func dispatch(t *testing.T, d *tasks.Dispatcher, s tasks.Spec) *tasks.Task {
	t.Helper()
	task, err := d.Dispatch(context.Background(), s)
	if err != nil {
		t.Fatalf("Dispatch(%+v): %v", s, err)
	}
	return task
}

func get(t *testing.T, g *gorm.DB, id string) *tasks.Task {
	t.Helper()
	task, err := tasks.Get(context.Background(), g, id)
	if err != nil {
		t.Fatal(err)
	}
	return task
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitState waits until the task is in state and returns it.
func waitState(t *testing.T, g *gorm.DB, id string, state tasks.State) *tasks.Task {
	t.Helper()
	var last *tasks.Task
	deadline := time.Now().Add(waitTimeout)
	for {
		task, err := tasks.Get(context.Background(), g, id)
		if err != nil {
			t.Fatal(err)
		}
		if task.State == state {
			return task
		}
		if task.State.Finished() {
			t.Fatalf("task %s (%s) ended %s (error %+v), want %s", id, task.Name, task.State, task.Error, state)
		}
		last = task
		if time.Now().After(deadline) {
			t.Fatalf("task %s (%s) still %s, want %s", id, last.Name, last.State, state)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// gates is a handler whose tasks block until the test opens their gate.
// Args: {"key": "..."}.
type gates struct {
	mu      sync.Mutex
	started map[string]chan struct{}
	open    map[string]chan struct{}
	causes  map[string]error
	runs    map[string]int
	order   []string
}

func newGates() *gates {
	return &gates{started: map[string]chan struct{}{}, open: map[string]chan struct{}{}, causes: map[string]error{}, runs: map[string]int{}}
}

func (g *gates) chans(key string) (started, open chan struct{}) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, ok := g.started[key]; !ok {
		g.started[key] = make(chan struct{})
		g.open[key] = make(chan struct{})
	}
	return g.started[key], g.open[key]
}

type gateArgs struct {
	Key string `json:"key"`
	// IgnoreCancel makes the handler wait for its gate even when cancelled.
	IgnoreCancel bool `json:"ignore_cancel"`
}

func (g *gates) handler(ctx context.Context, task *tasks.Task, _ *tasks.Reporter) (any, error) {
	var a gateArgs
	if err := task.DecodeArgs(&a); err != nil {
		return nil, err
	}
	started, open := g.chans(a.Key)
	g.mu.Lock()
	g.runs[a.Key]++
	first := g.runs[a.Key] == 1
	g.order = append(g.order, a.Key)
	g.mu.Unlock()
	if first {
		close(started)
	}
	if a.IgnoreCancel {
		<-open
		return "opened", nil
	}
	select {
	case <-open:
		return "opened", nil
	case <-ctx.Done():
		g.mu.Lock()
		g.causes[a.Key] = context.Cause(ctx)
		g.mu.Unlock()
		return nil, ctx.Err()
	}
}

// waitStarted waits until the gate's task started.
func (g *gates) waitStarted(t *testing.T, key string) {
	t.Helper()
	started, _ := g.chans(key)
	select {
	case <-started:
	case <-time.After(waitTimeout):
		t.Fatalf("task %s did not start", key)
	}
}

func (g *gates) isStarted(key string) bool {
	started, _ := g.chans(key)
	select {
	case <-started:
		return true
	default:
		return false
	}
}

func (g *gates) release(key string) {
	_, open := g.chans(key)
	close(open)
}

func (g *gates) cause(key string) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.causes[key]
}

func (g *gates) runCount(key string) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.runs[key]
}

func gate(key string, exclusive, shared []string) tasks.Spec {
	return tasks.Spec{Name: "test.gate", Args: gateArgs{Key: key}, Exclusive: exclusive, Shared: shared}
}

// registry returns a registry with the given handlers.
func registry(t *testing.T, hs map[string]tasks.Handler) *tasks.Registry {
	t.Helper()
	reg := tasks.NewRegistry()
	for n, h := range hs {
		if err := reg.Register(n, h); err != nil {
			t.Fatal(err)
		}
	}
	return reg
}

// redisQueue returns an asynq queue in a Redis key space of t's own.
func redisQueue(t *testing.T) *asynqq.Queue {
	t.Helper()
	rc := redistest.Client(t)
	q, err := asynqq.New(rc,
		asynqq.WithPrefix(redistest.AsynqPrefix(t, rc)),
		asynqq.WithPollInterval(20*time.Millisecond),
		asynqq.WithShutdownTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return q
}

// queueKinds are the queues the worker tests run over where it matters.
var queueKinds = []struct {
	name string
	new  func(t *testing.T) tasks.Queue
}{
	{"memory", func(*testing.T) tasks.Queue { return tasks.NewMemoryQueue() }},
	{"redis", func(t *testing.T) tasks.Queue { return redisQueue(t) }},
}

// eachQueue runs fn per database dialect and queue kind, each with a
// database of its own.
func eachQueue(t *testing.T, fn func(t *testing.T, g *gorm.DB, q tasks.Queue)) {
	for _, d := range testdb.Dialects {
		for _, k := range queueKinds {
			t.Run(string(d)+"/"+k.name, func(t *testing.T) { fn(t, testdb.Open(t, d, sets...), k.new(t)) })
		}
	}
}

// blackHole is an Enqueuer that loses every wake-up.
type blackHole struct{}

func (blackHole) Enqueue(context.Context, string, string) error { return nil }

func keys(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%d", prefix, i)
	}
	return out
}
