package tasks_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/berth-dev/berth/core"
	"github.com/berth-dev/berth/internal/testdb"
	"github.com/berth-dev/berth/tasks"
)

func TestProgressVisibleWhileRunning(t *testing.T) {
	t.Parallel()
	testdb.Each(t, sets, func(t *testing.T, g *gorm.DB) {
		halfway := make(chan struct{})
		reg := registry(t, map[string]tasks.Handler{
			"test.progress": func(ctx context.Context, _ *tasks.Task, r *tasks.Reporter) (any, error) {
				p := r.Progress("test.downloading", "Downloading layers").SetTotal(10)
				for range 5 {
					p.Increment(1)
				}
				r.Created("/pulp/api/v3/repositories/container/x/versions/1/")
				r.Progress("test.skipped", "Nothing to prune").Skip()
				left := r.Progress("test.left", "Left running")
				_ = left
				select {
				case <-halfway:
				case <-ctx.Done():
					return nil, ctx.Err()
				}
				p.Increment(5).SetSuffix("layers")
				p.Done()
				return map[string]any{"layers": 10}, nil
			},
		})
		q := tasks.NewMemoryQueue()
		d := newDispatcher(t, g, q)
		startWorker(t, g, q, reg, fast()...)
		task := dispatch(t, d, tasks.Spec{Name: "test.progress"})
		waitFor(t, "progress in the row", func() bool {
			got := get(t, g, task.ID)
			return got.State == tasks.Running && len(got.ProgressReports) == 3 && got.ProgressReports[0].Done == 5
		})
		mid := get(t, g, task.ID)
		p := mid.ProgressReports[0]
		if p.Code != "test.downloading" || p.Message != "Downloading layers" || p.State != tasks.ProgressRunning || p.Total == nil || *p.Total != 10 {
			t.Errorf("progress while running = %+v", p)
		}
		if !slices.Equal(mid.CreatedResources, []string{"/pulp/api/v3/repositories/container/x/versions/1/"}) {
			t.Errorf("created resources while running = %v", mid.CreatedResources)
		}
		close(halfway)
		end := waitState(t, g, task.ID, tasks.Completed)
		want := []struct {
			code, state string
			done        int64
		}{
			{"test.downloading", tasks.ProgressCompleted, 10},
			{"test.skipped", tasks.ProgressSkipped, 0},
			{"test.left", tasks.ProgressCompleted, 0}, // left running: ends with the task
		}
		for i, w := range want {
			r := end.ProgressReports[i]
			if r.Code != w.code || r.State != w.state || r.Done != w.done {
				t.Errorf("report %d = %+v, want %+v", i, r, w)
			}
		}
		if end.ProgressReports[0].Suffix != "layers" {
			t.Errorf("suffix = %q", end.ProgressReports[0].Suffix)
		}
		var result map[string]int
		if err := json.Unmarshal(end.Result, &result); err != nil || result["layers"] != 10 {
			t.Errorf("result = %s (%v)", end.Result, err)
		}
		if end.StartedAt == nil || end.FinishedAt == nil || end.FinishedAt.Before(*end.StartedAt) || end.Worker == "" {
			t.Errorf("times/worker = %v %v %q", end.StartedAt, end.FinishedAt, end.Worker)
		}
		// The API shape.
		b, err := json.Marshal(end)
		if err != nil {
			t.Fatal(err)
		}
		for _, field := range []string{`"state":"completed"`, `"progress_reports":[`, `"created_resources":["/pulp`, `"error":null`, `"result":{`} {
			if !strings.Contains(string(b), field) {
				t.Errorf("JSON %s lacks %s", b, field)
			}
		}
	})
}

func TestHandlerFailures(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name      string
		handler   tasks.Handler
		want      string
		traceback bool
	}{
		{"error", func(context.Context, *tasks.Task, *tasks.Reporter) (any, error) {
			return nil, errors.New("upstream said 503")
		}, "upstream said 503", false},
		{"panic", func(context.Context, *tasks.Task, *tasks.Reporter) (any, error) {
			panic("kaboom")
		}, "panic: kaboom", true},
		{"nil map panic", func(context.Context, *tasks.Task, *tasks.Reporter) (any, error) {
			var m map[string]int
			m["x"] = 1
			return nil, nil
		}, "panic: assignment to entry in nil map", true},
		{"result not JSON", func(context.Context, *tasks.Task, *tasks.Reporter) (any, error) {
			return make(chan int), nil
		}, "encode result", false},
	}
	testdb.Each(t, sets, func(t *testing.T, g *gorm.DB) {
		hs := map[string]tasks.Handler{"test.ok": func(_ context.Context, _ *tasks.Task, r *tasks.Reporter) (any, error) {
			r.Progress("test.step", "Step").Done()
			return nil, nil
		}}
		for i, c := range cases {
			hs["test.bad"+string(rune('a'+i))] = c.handler
		}
		reg := registry(t, hs)
		q := tasks.NewMemoryQueue()
		d := newDispatcher(t, g, q)
		startWorker(t, g, q, reg, fast()...)
		for i, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				bad := dispatch(t, d, tasks.Spec{Name: "test.bad" + string(rune('a'+i)), Exclusive: []string{"r"}})
				after := dispatch(t, d, tasks.Spec{Name: "test.ok", Exclusive: []string{"r"}})
				got := waitState(t, g, bad.ID, tasks.Failed)
				if got.Error == nil || !strings.Contains(got.Error.Description, c.want) {
					t.Errorf("error = %+v, want %q", got.Error, c.want)
				}
				if c.traceback != (got.Error != nil && strings.Contains(got.Error.Traceback, "lifecycle_test.go")) {
					t.Errorf("traceback = %q", got.Error.Traceback)
				}
				// The worker survived and the next task on the resource ran.
				waitState(t, g, after.ID, tasks.Completed)
			})
		}
	})
}

func TestLostWorker(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name        string
		idempotent  bool
		cancel      bool
		maxAttempts int
		want        tasks.State
		wantError   string
	}{
		{name: "running task fails", want: tasks.Failed, wantError: "worker lost: %s stopped heartbeating"},
		{name: "idempotent task runs again", idempotent: true, maxAttempts: 3, want: tasks.Completed},
		{name: "idempotent task out of attempts fails", idempotent: true, maxAttempts: 1, want: tasks.Failed,
			wantError: "worker lost: %s stopped heartbeating (gave up after 1 attempts)"},
		{name: "canceling task is canceled", cancel: true, want: tasks.Canceled},
	}
	testdb.Each(t, sets, func(t *testing.T, g *gorm.DB) {
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				ctx := context.Background()
				gs := newGates()
				reg := registry(t, map[string]tasks.Handler{"test.gate": gs.handler})
				q := tasks.NewMemoryQueue()
				d := newDispatcher(t, g, q)
				// The ghost claims the task, then stops heartbeating (its
				// heartbeat interval is an hour); it still polls its tasks.
				ghost, _ := startWorker(t, g, q, reg, fast(tasks.WithName(testdb.Name("ghost")),
					tasks.WithHeartbeat(time.Hour), tasks.WithLostAfter(2*time.Hour))...)
				key := testdb.Name("lost")
				task := dispatch(t, d, tasks.Spec{Name: "test.gate", Args: gateArgs{Key: key, IgnoreCancel: c.cancel},
					Exclusive: []string{key}, Idempotent: c.idempotent})
				gs.waitStarted(t, key)
				if c.cancel {
					// Its handler ignores the cancel, so the ghost never ends it.
					t.Cleanup(func() { gs.release(key) })
					if _, err := tasks.Cancel(ctx, g, q, task.ID); err != nil {
						t.Fatal(err)
					}
				}
				next := dispatch(t, d, tasks.Spec{Name: "test.gate", Args: gateArgs{Key: key + "-next"}, Exclusive: []string{key}})

				sw, err := tasks.NewSweeper(g, q, tasks.WithLostAfter(200*time.Millisecond), tasks.WithMaxAttempts(max(c.maxAttempts, 1)), tasks.WithLogger(testLogger))
				if err != nil {
					t.Fatal(err)
				}
				// A healthy worker, to run what the sweeper sends back.
				startWorker(t, g, q, reg, fast()...)
				var res tasks.SweepResult
				waitFor(t, "the sweeper to find the ghost", func() bool {
					res, err = sw.Sweep(ctx)
					if err != nil {
						t.Fatal(err)
					}
					return slices.Contains(res.LostWorkers, ghost.Name())
				})
				if c.idempotent && c.want == tasks.Completed {
					if res.Requeued != 1 {
						t.Errorf("sweep = %+v, want 1 requeued", res)
					}
					waitFor(t, "second run", func() bool { return gs.runCount(key) == 2 })
					gs.release(key)
				}
				got := waitState(t, g, task.ID, c.want)
				if c.wantError != "" {
					want := strings.ReplaceAll(c.wantError, "%s", ghost.Name())
					if got.Error == nil || got.Error.Description != want {
						t.Errorf("error = %+v, want %q", got.Error, want)
					}
				}
				if c.idempotent && c.want == tasks.Completed && got.Attempts != 2 {
					t.Errorf("attempts = %d, want 2", got.Attempts)
				}
				// The next task on the resource runs.
				gs.waitStarted(t, key+"-next")
				gs.release(key + "-next")
				waitState(t, g, next.ID, tasks.Completed)
				wi, err := tasks.GetWorker(ctx, g, ghost.Name())
				if err != nil || wi.Online || wi.StoppedAt == nil {
					t.Errorf("ghost's row = %+v, %v; want offline", wi, err)
				}
			})
		}
	})
}

func TestShutdown(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name       string
		idempotent bool
		finish     bool // the handler finishes within the grace period
		stuck      bool // the handler ignores its context
		want       tasks.State
		wantError  string
	}{
		{name: "task finishing within the grace period completes", finish: true, want: tasks.Completed},
		{name: "task cut off fails", want: tasks.Failed, wantError: "shut down while the task was running: context canceled"},
		{name: "idempotent task cut off goes back to waiting", idempotent: true, want: tasks.Waiting},
		{name: "handler ignoring the cancel is given up", stuck: true, want: tasks.Failed, wantError: "shut down while its handler did not stop"},
	}
	testdb.Each(t, sets, func(t *testing.T, g *gorm.DB) {
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				gs := newGates()
				reg := registry(t, map[string]tasks.Handler{"test.gate": gs.handler})
				q := tasks.NewMemoryQueue()
				d := newDispatcher(t, g, q)
				w, stop := startWorker(t, g, q, reg, fast(tasks.WithShutdownGrace(200*time.Millisecond))...)
				key := testdb.Name("shutdown")
				task := dispatch(t, d, tasks.Spec{Name: "test.gate", Args: gateArgs{Key: key, IgnoreCancel: c.stuck}, Idempotent: c.idempotent})
				gs.waitStarted(t, key)
				if c.finish {
					time.AfterFunc(50*time.Millisecond, func() { gs.release(key) })
				}
				if err := stop(); err != nil {
					t.Fatal(err)
				}
				if c.stuck {
					gs.release(key) // lets the abandoned handler's goroutine end
				}
				got := get(t, g, task.ID)
				if got.State != c.want {
					t.Fatalf("state after shutdown = %s (error %+v), want %s", got.State, got.Error, c.want)
				}
				if c.wantError != "" && (got.Error == nil || !strings.Contains(got.Error.Description, c.wantError)) {
					t.Errorf("error = %+v, want %q", got.Error, c.wantError)
				}
				if c.want == tasks.Failed && !c.stuck && !errors.Is(gs.cause(key), tasks.ErrShutdown) {
					t.Errorf("handler's context cause = %v, want ErrShutdown", gs.cause(key))
				}
				wi, err := tasks.GetWorker(context.Background(), g, w.Name())
				if err != nil || wi.Online {
					t.Errorf("stopped worker's row = %+v, %v", wi, err)
				}
				if c.want == tasks.Waiting {
					// The next worker picks it up.
					startWorker(t, g, q, reg, fast()...)
					waitFor(t, "second run", func() bool { return gs.runCount(key) == 2 })
					gs.release(key)
					if got := waitState(t, g, task.ID, tasks.Completed); got.Attempts != 2 {
						t.Errorf("attempts = %d, want 2", got.Attempts)
					}
				}
			})
		}
	})
}

func TestWorkerNameInUse(t *testing.T) {
	t.Parallel()
	testdb.Each(t, sets, func(t *testing.T, g *gorm.DB) {
		reg := registry(t, nil)
		q := tasks.NewMemoryQueue()
		name := testdb.Name("worker")
		startWorker(t, g, q, reg, fast(tasks.WithName(name))...)
		// The first worker must have registered before its twin tries: under
		// load its goroutine may start late, and then the twin would win.
		deadline := time.Now().Add(waitTimeout)
		for {
			if w, err := tasks.GetWorker(context.Background(), g, name); err == nil && w.Online {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("worker %s did not register within %v", name, waitTimeout)
			}
			time.Sleep(20 * time.Millisecond)
		}
		twin, err := tasks.NewWorker(g, q, reg, fast(tasks.WithName(name))...)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		if err := twin.Run(ctx); !errors.Is(err, core.ErrConflict) {
			t.Errorf("second worker named %s: Run = %v, want ErrConflict", name, err)
		}
	})
}

func TestWorkerDeclaredLostRegistersAgain(t *testing.T) {
	t.Parallel()
	testdb.Each(t, sets, func(t *testing.T, g *gorm.DB) {
		ctx := context.Background()
		gs := newGates()
		reg := registry(t, map[string]tasks.Handler{"test.gate": gs.handler})
		q := tasks.NewMemoryQueue()
		d := newDispatcher(t, g, q)
		w, _ := startWorker(t, g, q, reg, fast()...)
		first := dispatch(t, d, gate("first", nil, nil))
		gs.waitStarted(t, "first")
		// As if the worker had stalled: the sweeper takes its task away.
		if err := g.Exec(`UPDATE workers SET last_heartbeat = ? WHERE name = ?`, time.Now().UTC().Add(-time.Hour), w.Name()).Error; err != nil {
			t.Fatal(err)
		}
		sw, err := tasks.NewSweeper(g, q, tasks.WithLostAfter(time.Minute), tasks.WithLogger(testLogger))
		if err != nil {
			t.Fatal(err)
		}
		if res, err := sw.Sweep(ctx); err != nil || res.Failed != 1 {
			t.Fatalf("Sweep = %+v, %v", res, err)
		}
		waitFor(t, "the handler to be cancelled", func() bool { return errors.Is(gs.cause("first"), tasks.ErrTaskLost) })
		waitFor(t, "the worker to come back online", func() bool {
			wi, err := tasks.GetWorker(ctx, g, w.Name())
			return err == nil && wi.Online
		})
		if got := get(t, g, first.ID); got.State != tasks.Failed {
			t.Errorf("lost task = %s", got.State)
		}
		second := dispatch(t, d, gate("second", nil, nil))
		gs.waitStarted(t, "second")
		gs.release("second")
		waitState(t, g, second.ID, tasks.Completed)
	})
}

func TestQueues(t *testing.T) {
	t.Parallel()
	testdb.Each(t, sets, func(t *testing.T, g *gorm.DB) {
		gs := newGates()
		reg := registry(t, map[string]tasks.Handler{"test.gate": gs.handler})
		q := tasks.NewMemoryQueue()
		d := newDispatcher(t, g, q)
		startWorker(t, g, q, reg, fast(tasks.WithQueue("default", 1))...)
		build := dispatch(t, d, tasks.Spec{Name: "test.gate", Args: gateArgs{Key: "build"}, Queue: "builds"})
		def := dispatch(t, d, gate("default", nil, nil))
		gs.waitStarted(t, "default")
		gs.release("default")
		waitState(t, g, def.ID, tasks.Completed)
		time.Sleep(quiet)
		if got := get(t, g, build.ID); got.State != tasks.Waiting {
			t.Fatalf("builds task ran on a worker without the builds queue: %s", got.State)
		}
		startWorker(t, g, q, reg, fast(tasks.WithQueue("builds", 1))...)
		gs.waitStarted(t, "build")
		gs.release("build")
		waitState(t, g, build.ID, tasks.Completed)
	})
}

func TestList(t *testing.T) {
	t.Parallel()
	testdb.Each(t, sets, func(t *testing.T, g *gorm.DB) {
		ctx := context.Background()
		d := newDispatcher(t, g, blackHole{})
		sync1 := dispatch(t, d, tasks.Spec{Name: "container.sync", Exclusive: []string{"repo:a"}})
		time.Sleep(2 * time.Millisecond)
		sync2 := dispatch(t, d, tasks.Spec{Name: "container.sync", Shared: []string{"repo:b"}})
		time.Sleep(2 * time.Millisecond)
		build := dispatch(t, d, tasks.Spec{Name: "container.build", Shared: []string{"repo:a"}, ParentID: sync1.ID})
		if _, err := tasks.Cancel(ctx, g, nil, sync2.ID); err != nil {
			t.Fatal(err)
		}
		ids := func(ts []tasks.Task) []string {
			out := make([]string, len(ts))
			for i, t := range ts {
				out[i] = t.ID
			}
			return out
		}
		for _, c := range []struct {
			name  string
			f     tasks.Filter
			want  []string
			total int64
		}{
			{"all, newest first", tasks.Filter{}, []string{build.ID, sync2.ID, sync1.ID}, 3},
			{"oldest first", tasks.Filter{Ordering: "created"}, []string{sync1.ID, sync2.ID, build.ID}, 3},
			{"by name", tasks.Filter{Name: "container.sync", Ordering: "created"}, []string{sync1.ID, sync2.ID}, 2},
			{"name contains", tasks.Filter{NameContains: "build"}, []string{build.ID}, 1},
			{"name contains is case-sensitive", tasks.Filter{NameContains: "BUILD"}, []string{}, 0},
			{"by state", tasks.Filter{States: []tasks.State{tasks.Canceled}}, []string{sync2.ID}, 1},
			{"by states", tasks.Filter{States: []tasks.State{tasks.Waiting, tasks.Canceled}, Ordering: "created"}, []string{sync1.ID, sync2.ID, build.ID}, 3},
			{"by resource", tasks.Filter{Resource: "repo:a", Ordering: "created"}, []string{sync1.ID, build.ID}, 2},
			{"by finished resource", tasks.Filter{Resource: "repo:b"}, []string{sync2.ID}, 1},
			{"by parent", tasks.Filter{ParentID: sync1.ID}, []string{build.ID}, 1},
			{"created after", tasks.Filter{CreatedAfter: sync1.CreatedAt, Ordering: "created"}, []string{sync2.ID, build.ID}, 2},
			{"created before", tasks.Filter{CreatedBefore: sync2.CreatedAt}, []string{sync1.ID}, 1},
			{"page", tasks.Filter{Ordering: "created", Limit: 1, Offset: 1}, []string{sync2.ID}, 3},
			{"past the end", tasks.Filter{Offset: 5}, []string{}, 3},
			{"by worker", tasks.Filter{Worker: "nobody"}, []string{}, 0},
		} {
			t.Run(c.name, func(t *testing.T) {
				got, total, err := tasks.List(ctx, g, c.f)
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(ids(got), c.want) || total != c.total {
					t.Errorf("List = %v (total %d), want %v (total %d)", ids(got), total, c.want, c.total)
				}
			})
		}
		for _, f := range []tasks.Filter{{Ordering: "pulp_created; DROP TABLE tasks"}, {States: []tasks.State{"lost"}}, {Limit: -1}, {Limit: tasks.MaxLimit + 1}, {Offset: -1}} {
			if _, _, err := tasks.List(ctx, g, f); !errors.Is(err, core.ErrInvalid) {
				t.Errorf("List(%+v) = %v, want ErrInvalid", f, err)
			}
		}
		if _, err := tasks.Get(ctx, g, "missing"); !errors.Is(err, core.ErrNotFound) {
			t.Errorf("Get(missing) = %v, want ErrNotFound", err)
		}
	})
}

func TestListWorkers(t *testing.T) {
	t.Parallel()
	testdb.Each(t, sets, func(t *testing.T, g *gorm.DB) {
		ctx := context.Background()
		reg := registry(t, nil)
		q := tasks.NewMemoryQueue()
		a, stopA := startWorker(t, g, q, reg, fast(tasks.WithQueue("default", 2), tasks.WithQueue("builds", 1))...)
		b, _ := startWorker(t, g, q, reg, fast()...)
		if err := stopA(); err != nil {
			t.Fatal(err)
		}
		all, err := tasks.ListWorkers(ctx, g, tasks.WorkerFilter{})
		if err != nil {
			t.Fatal(err)
		}
		if len(all) != 2 || all[0].Name != b.Name() || !all[0].Online || all[1].Name != a.Name() || all[1].Online {
			t.Fatalf("workers = %+v, want %s online then %s offline", all, b.Name(), a.Name())
		}
		if q := all[1].Queues; q["default"] != 2 || q["builds"] != 1 {
			t.Errorf("queues = %v", q)
		}
		online := true
		if got, err := tasks.ListWorkers(ctx, g, tasks.WorkerFilter{Online: &online}); err != nil || len(got) != 1 || got[0].Name != b.Name() {
			t.Errorf("online workers = %+v, %v", got, err)
		}
		if _, err := tasks.GetWorker(ctx, g, "nobody"); !errors.Is(err, core.ErrNotFound) {
			t.Errorf("GetWorker(nobody) = %v", err)
		}
	})
}

func TestEmbedded(t *testing.T) {
	t.Parallel()
	testdb.Each(t, sets, func(t *testing.T, g *gorm.DB) {
		ctx := context.Background()
		rec := newRecorder()
		reg := registry(t, map[string]tasks.Handler{"test.record": rec.handler})
		e, err := tasks.NewEmbedded(g, reg, 2, fast(tasks.WithQueue("default", 2), tasks.WithName("serve"))...)
		if err != nil {
			t.Fatal(err)
		}
		runCtx, stop := context.WithCancel(ctx)
		var wg sync.WaitGroup
		var runErr error
		wg.Go(func() { runErr = e.Run(runCtx) })
		defer func() {
			stop()
			wg.Wait()
		}()
		var all []*tasks.Task
		for i := range 8 {
			task, err := e.Dispatcher().Dispatch(ctx, tasks.Spec{Name: "test.record", Args: recordArgs{Key: string(rune('a' + i)), Resource: "r"}, Exclusive: []string{"r"}})
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, task)
		}
		if _, err := e.Dispatcher().Dispatch(ctx, tasks.Spec{Name: "test.unknown"}); !errors.Is(err, core.ErrInvalid) {
			t.Errorf("dispatch of an unregistered task = %v, want ErrInvalid", err)
		}
		for _, task := range all {
			waitState(t, g, task.ID, tasks.Completed)
		}
		order, maxActive, _ := rec.snapshot()
		if maxActive["r"] != 1 || !slices.Equal(order, []string{"a", "b", "c", "d", "e", "f", "g", "h"}) {
			t.Errorf("order %v, max %d", order, maxActive["r"])
		}
		workers := map[string]bool{}
		for _, task := range all {
			workers[get(t, g, task.ID).Worker] = true
		}
		stop()
		wg.Wait()
		if runErr != nil {
			t.Fatal(runErr)
		}
		ws, err := tasks.ListWorkers(ctx, g, tasks.WorkerFilter{})
		if err != nil {
			t.Fatal(err)
		}
		if len(ws) != 2 || ws[0].Online || ws[1].Online || !strings.HasPrefix(ws[0].Name, "serve-") {
			t.Errorf("embedded workers after stop = %+v", ws)
		}
		for w := range workers {
			if !strings.HasPrefix(w, "serve-") {
				t.Errorf("task ran on %q", w)
			}
		}
	})
}
