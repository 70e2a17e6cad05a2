package tasks_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/berth-dev/berth/core"
	"github.com/berth-dev/berth/internal/testdb"
	"github.com/berth-dev/berth/tasks"
)

// quiet is how long a test watches for something that must not happen.
const quiet = 150 * time.Millisecond

// recorder is a handler that records the order tasks ran in and checks
// that no two tasks holding a resource exclusively overlap.
// Args: {"key": "...", "resource": "..."}.
type recorder struct {
	mu     sync.Mutex
	active map[string]int
	max    map[string]int
	order  []string
	runs   map[string]int
}

type recordArgs struct {
	Key      string `json:"key"`
	Resource string `json:"resource"`
}

func newRecorder() *recorder {
	return &recorder{active: map[string]int{}, max: map[string]int{}, runs: map[string]int{}}
}

func (r *recorder) handler(ctx context.Context, t *tasks.Task, _ *tasks.Reporter) (any, error) {
	var a recordArgs
	if err := t.DecodeArgs(&a); err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.active[a.Resource]++
	r.max[a.Resource] = max(r.max[a.Resource], r.active[a.Resource])
	r.order = append(r.order, a.Key)
	r.runs[a.Key]++
	r.mu.Unlock()
	select {
	case <-time.After(5 * time.Millisecond):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	r.mu.Lock()
	r.active[a.Resource]--
	r.mu.Unlock()
	return nil, nil
}

func (r *recorder) snapshot() (order []string, maxActive map[string]int, runs map[string]int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := map[string]int{}
	for k, v := range r.max {
		m[k] = v
	}
	n := map[string]int{}
	for k, v := range r.runs {
		n[k] = v
	}
	return slices.Clone(r.order), m, n
}

func TestDispatchValidation(t *testing.T) {
	t.Parallel()
	testdb.Each(t, sets, func(t *testing.T, g *gorm.DB) {
		ctx := context.Background()
		reg := registry(t, map[string]tasks.Handler{"test.ok": func(context.Context, *tasks.Task, *tasks.Reporter) (any, error) { return nil, nil }})
		d := newDispatcher(t, g, blackHole{}, tasks.WithNames(reg))
		parent := dispatch(t, d, tasks.Spec{Name: "test.ok"})

		for _, c := range []struct {
			name  string
			spec  tasks.Spec
			field string // "" means valid
		}{
			{"valid", tasks.Spec{Name: "test.ok", Args: map[string]int{"n": 1}, Exclusive: []string{"b", "a", "a"}, Shared: []string{"a", "c"}, ParentID: parent.ID, Queue: "builds"}, ""},
			{"no name", tasks.Spec{}, "name"},
			{"malformed name", tasks.Spec{Name: "Not A Name"}, "name"},
			{"unregistered name", tasks.Spec{Name: "test.unknown"}, "name"},
			{"bad queue", tasks.Spec{Name: "test.ok", Queue: "No Queue"}, "queue"},
			{"empty resource", tasks.Spec{Name: "test.ok", Shared: []string{""}}, "shared_resources"},
			{"missing parent", tasks.Spec{Name: "test.ok", ParentID: "00000000-0000-0000-0000-000000000000"}, "parent_id"},
			{"args not JSON", tasks.Spec{Name: "test.ok", Args: make(chan int)}, "args"},
		} {
			t.Run(c.name, func(t *testing.T) {
				task, err := d.Dispatch(ctx, c.spec)
				if c.field != "" {
					var v *core.ValidationError
					if !errors.As(err, &v) || !errors.Is(err, core.ErrInvalid) || len(v.Fields[c.field]) == 0 {
						t.Fatalf("Dispatch = %v, want a validation error on %s", err, c.field)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				got := get(t, g, task.ID)
				if got.State != tasks.Waiting || got.Queue != "builds" || *got.ParentID != parent.ID || got.Seq <= parent.Seq {
					t.Errorf("task = %+v", got)
				}
				if !slices.Equal(got.ExclusiveResources, []string{"a", "b"}) || !slices.Equal(got.SharedResources, []string{"c"}) {
					t.Errorf("resources = %v / %v, want [a b] / [c] (exclusive wins, sorted, deduplicated)", got.ExclusiveResources, got.SharedResources)
				}
				var args map[string]int
				if err := got.DecodeArgs(&args); err != nil || args["n"] != 1 {
					t.Errorf("args = %s (%v)", got.Args, err)
				}
				if !got.CreatedAt.Equal(task.CreatedAt) || got.CreatedAt.Location() != time.UTC {
					t.Errorf("created_at = %v, dispatch said %v", got.CreatedAt, task.CreatedAt)
				}
			})
		}
	})
}

func TestExclusiveTasksRunOneAtATimeInDispatchOrder(t *testing.T) {
	t.Parallel()
	testdb.Each(t, sets, func(t *testing.T, g *gorm.DB) {
		rec := newRecorder()
		reg := registry(t, map[string]tasks.Handler{"test.record": rec.handler})
		q := tasks.NewMemoryQueue()
		d := newDispatcher(t, g, q)
		var ids []string
		for _, k := range keys("x", 6) {
			ids = append(ids, dispatch(t, d, tasks.Spec{Name: "test.record", Args: recordArgs{Key: k, Resource: "repo:a"}, Exclusive: []string{"repo:a"}}).ID)
		}
		startWorker(t, g, q, reg, fast(tasks.WithQueue("default", 4))...)
		startWorker(t, g, q, reg, fast(tasks.WithQueue("default", 4))...)
		for _, id := range ids {
			waitState(t, g, id, tasks.Completed)
		}
		order, maxActive, _ := rec.snapshot()
		if !slices.Equal(order, keys("x", 6)) {
			t.Errorf("ran in order %v, want dispatch order", order)
		}
		if maxActive["repo:a"] != 1 {
			t.Errorf("%d tasks held repo:a at once, want 1", maxActive["repo:a"])
		}
	})
}

func TestConcurrentDispatchKeepsOrderAndExclusion(t *testing.T) {
	t.Parallel()
	testdb.Each(t, sets, func(t *testing.T, g *gorm.DB) {
		rec := newRecorder()
		reg := registry(t, map[string]tasks.Handler{"test.record": rec.handler})
		q := tasks.NewMemoryQueue()
		d := newDispatcher(t, g, q)
		startWorker(t, g, q, reg, fast(tasks.WithQueue("default", 4))...)
		startWorker(t, g, q, reg, fast(tasks.WithQueue("default", 4))...)

		var (
			mu      sync.Mutex
			all     []*tasks.Task
			wg      sync.WaitGroup
			errOnce sync.Once
			dErr    error
		)
		for i := range 6 {
			wg.Go(func() {
				for j := range 4 {
					res := fmt.Sprintf("r%d", j%2)
					task, err := d.Dispatch(context.Background(), tasks.Spec{Name: "test.record",
						Args: recordArgs{Key: fmt.Sprintf("%d-%d", i, j), Resource: res}, Exclusive: []string{res}})
					if err != nil {
						errOnce.Do(func() { dErr = err })
						return
					}
					mu.Lock()
					all = append(all, task)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if dErr != nil {
			t.Fatal(dErr)
		}
		for _, task := range all {
			waitState(t, g, task.ID, tasks.Completed)
		}
		order, maxActive, runs := rec.snapshot()
		for _, r := range []string{"r0", "r1"} {
			if maxActive[r] != 1 {
				t.Errorf("%d tasks held %s at once, want 1", maxActive[r], r)
			}
		}
		// Per resource, tasks ran in sequence (dispatch) order.
		seqOf := map[string]int64{}
		resOf := map[string]string{}
		for _, task := range all {
			var a recordArgs
			_ = task.DecodeArgs(&a)
			seqOf[a.Key], resOf[a.Key] = task.Seq, a.Resource
		}
		last := map[string]int64{}
		for _, k := range order {
			if seqOf[k] < last[resOf[k]] {
				t.Errorf("task %s (seq %d) ran after seq %d on %s", k, seqOf[k], last[resOf[k]], resOf[k])
			}
			last[resOf[k]] = seqOf[k]
		}
		for k, n := range runs {
			if n != 1 {
				t.Errorf("task %s ran %d times", k, n)
			}
		}
	})
}

// TestResourceConflicts dispatches tasks and checks that they start in
// waves: each wave's tasks run together, and the next wave starts only when
// the previous one is released.
func TestResourceConflicts(t *testing.T) {
	t.Parallel()
	type task struct {
		key               string
		exclusive, shared []string
	}
	x := func(key string, res ...string) task { return task{key: key, exclusive: res} }
	s := func(key string, res ...string) task { return task{key: key, shared: res} }
	cases := []struct {
		name  string
		tasks []task
		waves [][]string
	}{
		{"shared tasks run concurrently", []task{s("s1", "r"), s("s2", "r"), s("s3", "r")}, [][]string{{"s1", "s2", "s3"}}},
		{"exclusive waits for earlier shared", []task{s("s1", "r"), s("s2", "r"), x("x", "r")}, [][]string{{"s1", "s2"}, {"x"}}},
		{"shared wait for earlier exclusive", []task{x("x", "r"), s("s1", "r"), s("s2", "r")}, [][]string{{"x"}, {"s1", "s2"}}},
		{"later shared does not overtake a waiting exclusive", []task{s("s1", "r"), x("x", "r"), s("s2", "r")}, [][]string{{"s1"}, {"x"}, {"s2"}}},
		{"exclusive chain", []task{x("x1", "r"), x("x2", "r"), x("x3", "r")}, [][]string{{"x1"}, {"x2"}, {"x3"}}},
		{"disjoint resources run concurrently", []task{x("a", "r1"), x("b", "r2")}, [][]string{{"a", "b"}}},
		{"task on two resources waits for both", []task{x("a", "r1"), x("b", "r2"), x("c", "r1", "r2")}, [][]string{{"a", "b"}, {"c"}}},
		{"shared on one, exclusive on another", []task{s("a", "r1"), {key: "b", exclusive: []string{"r2"}, shared: []string{"r1"}}, s("c", "r1")}, [][]string{{"a", "b", "c"}}},
		{"no resources never wait", []task{x("a", "r"), {key: "free"}}, [][]string{{"a", "free"}}},
	}
	testdb.Each(t, sets, func(t *testing.T, g *gorm.DB) {
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				gs := newGates()
				reg := registry(t, map[string]tasks.Handler{"test.gate": gs.handler})
				q := tasks.NewMemoryQueue()
				d := newDispatcher(t, g, q)
				startWorker(t, g, q, reg, fast(tasks.WithQueue("default", 8))...)
				ids := map[string]string{}
				for _, tk := range c.tasks {
					// Resources are made unique per case: the database is shared.
					res := func(in []string) []string {
						out := make([]string, len(in))
						for i, r := range in {
							out[i] = c.name + "/" + r
						}
						return out
					}
					ids[tk.key] = dispatch(t, d, gate(c.name+"/"+tk.key, res(tk.exclusive), res(tk.shared))).ID
				}
				for i, wave := range c.waves {
					for _, k := range wave {
						gs.waitStarted(t, c.name+"/"+k)
					}
					time.Sleep(quiet)
					for _, later := range c.waves[i+1:] {
						for _, k := range later {
							if gs.isStarted(c.name + "/" + k) {
								t.Fatalf("%s started before wave %v was released", k, wave)
							}
							if st := get(t, g, ids[k]).State; st != tasks.Waiting {
								t.Fatalf("%s is %s while blocked, want waiting", k, st)
							}
						}
					}
					for _, k := range wave {
						gs.release(c.name + "/" + k)
					}
				}
				for k, id := range ids {
					if got := waitState(t, g, id, tasks.Completed); string(got.Result) != `"opened"` {
						t.Errorf("%s result = %s", k, got.Result)
					}
				}
			})
		}
	})
}

func TestBlockedTaskStartsWhenBlockerFails(t *testing.T) {
	t.Parallel()
	testdb.Each(t, sets, func(t *testing.T, g *gorm.DB) {
		gs := newGates()
		failNow := make(chan struct{})
		reg := registry(t, map[string]tasks.Handler{
			"test.gate": gs.handler,
			"test.fail": func(context.Context, *tasks.Task, *tasks.Reporter) (any, error) {
				<-failNow
				return nil, errors.New("blocker failed")
			},
		})
		q := tasks.NewMemoryQueue()
		d := newDispatcher(t, g, q)
		startWorker(t, g, q, reg, fast(tasks.WithQueue("default", 4))...)
		blocker := dispatch(t, d, tasks.Spec{Name: "test.fail", Exclusive: []string{"r"}})
		next := dispatch(t, d, gate("next", nil, []string{"r"}))
		waitState(t, g, blocker.ID, tasks.Running)
		time.Sleep(quiet)
		if st := get(t, g, next.ID).State; st != tasks.Waiting {
			t.Fatalf("next is %s while its blocker runs", st)
		}
		close(failNow)
		if got := waitState(t, g, blocker.ID, tasks.Failed); got.Error == nil || got.Error.Description != "blocker failed" {
			t.Errorf("blocker error = %+v", got.Error)
		}
		gs.waitStarted(t, "next")
		gs.release("next")
		waitState(t, g, next.ID, tasks.Completed)
	})
}

func TestCancelWaitingTask(t *testing.T) {
	t.Parallel()
	testdb.Each(t, sets, func(t *testing.T, g *gorm.DB) {
		ctx := context.Background()
		gs := newGates()
		reg := registry(t, map[string]tasks.Handler{"test.gate": gs.handler})
		q := tasks.NewMemoryQueue()
		d := newDispatcher(t, g, q)
		startWorker(t, g, q, reg, fast(tasks.WithQueue("default", 4))...)
		first := dispatch(t, d, gate("first", []string{"r"}, nil))
		second := dispatch(t, d, gate("second", []string{"r"}, nil))
		third := dispatch(t, d, gate("third", nil, []string{"r"}))
		gs.waitStarted(t, "first")

		got, err := tasks.Cancel(ctx, g, q, second.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.State != tasks.Canceled || got.FinishedAt == nil || got.StartedAt != nil {
			t.Errorf("canceled waiting task = %+v", got)
		}
		gs.release("first")
		gs.waitStarted(t, "third")
		gs.release("third")
		waitState(t, g, third.ID, tasks.Completed)
		if gs.runCount("second") != 0 {
			t.Error("canceled waiting task ran")
		}

		// Canceling a waiting task unblocks its successors at once.
		fourth := dispatch(t, d, gate("fourth", []string{"r2"}, nil))
		gs.waitStarted(t, "fourth")
		fifth := dispatch(t, d, gate("fifth", []string{"r2"}, nil))
		sixth := dispatch(t, d, gate("sixth", nil, []string{"r2"}))
		if _, err := tasks.Cancel(ctx, g, q, fifth.ID); err != nil {
			t.Fatal(err)
		}
		gs.release("fourth")
		gs.waitStarted(t, "sixth")
		gs.release("sixth")
		waitState(t, g, sixth.ID, tasks.Completed)
		waitState(t, g, fourth.ID, tasks.Completed)

		for _, c := range []struct {
			id   string
			want error
		}{
			{first.ID, core.ErrConflict},  // completed
			{second.ID, core.ErrConflict}, // canceled
			{"no-such-task", core.ErrNotFound},
		} {
			if _, err := tasks.Cancel(ctx, g, q, c.id); !errors.Is(err, c.want) {
				t.Errorf("Cancel(%s) = %v, want %v", c.id, err, c.want)
			}
		}
	})
}

func TestCancelRunningTask(t *testing.T) {
	t.Parallel()
	eachQueue(t, func(t *testing.T, g *gorm.DB, q tasks.Queue) {
		ctx := context.Background()
		gs := newGates()
		reg := registry(t, map[string]tasks.Handler{"test.gate": gs.handler})
		d := newDispatcher(t, g, q)
		startWorker(t, g, q, reg, fast(tasks.WithQueue("default", 2))...)
		running := dispatch(t, d, gate("running", []string{"r"}, nil))
		next := dispatch(t, d, gate("next", []string{"r"}, nil))
		gs.waitStarted(t, "running")

		got, err := tasks.Cancel(ctx, g, q, running.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.State != tasks.Canceling {
			t.Errorf("Cancel returned state %s, want canceling", got.State)
		}
		ended := waitState(t, g, running.ID, tasks.Canceled)
		if ended.Error != nil || ended.FinishedAt == nil {
			t.Errorf("canceled task = %+v", ended)
		}
		if c := gs.cause("running"); !errors.Is(c, tasks.ErrCanceled) {
			t.Errorf("handler's context cause = %v, want ErrCanceled", c)
		}
		gs.waitStarted(t, "next")
		gs.release("next")
		waitState(t, g, next.ID, tasks.Completed)
		time.Sleep(3 * quiet) // a retry by the queue would show now
		if n := gs.runCount("running"); n != 1 {
			t.Errorf("canceled task ran %d times, want 1", n)
		}
		if _, err := tasks.Cancel(ctx, g, q, running.ID); !errors.Is(err, core.ErrConflict) {
			t.Errorf("Cancel of a canceled task = %v, want ErrConflict", err)
		}

		// A handler that ignores its context keeps the task canceling (and
		// Cancel answers it as is) until it returns; work it completed is
		// recorded as completed.
		stubborn := dispatch(t, d, tasks.Spec{Name: "test.gate", Args: gateArgs{Key: "stubborn", IgnoreCancel: true}})
		gs.waitStarted(t, "stubborn")
		if _, err := tasks.Cancel(ctx, g, q, stubborn.ID); err != nil {
			t.Fatal(err)
		}
		time.Sleep(quiet)
		if again, err := tasks.Cancel(ctx, g, q, stubborn.ID); err != nil || again.State != tasks.Canceling {
			t.Errorf("Cancel of a canceling task = %v, %v; want it as is", again, err)
		}
		gs.release("stubborn")
		waitState(t, g, stubborn.ID, tasks.Completed)
	})
}

func TestSweeperWakesTaskWhoseWakeUpWasLost(t *testing.T) {
	t.Parallel()
	testdb.Each(t, sets, func(t *testing.T, g *gorm.DB) {
		gs := newGates()
		reg := registry(t, map[string]tasks.Handler{"test.gate": gs.handler})
		q := tasks.NewMemoryQueue()
		startWorker(t, g, q, reg, fast(tasks.WithSweepInterval(50*time.Millisecond))...)
		lost := dispatch(t, newDispatcher(t, g, blackHole{}), gate("lost", nil, nil))
		gs.waitStarted(t, "lost")
		gs.release("lost")
		waitState(t, g, lost.ID, tasks.Completed)
	})
}

func TestTwoWorkersOverRedisNeverRunATaskTwice(t *testing.T) {
	t.Parallel()
	testdb.Each(t, sets, func(t *testing.T, g *gorm.DB) {
		rec := newRecorder()
		reg := registry(t, map[string]tasks.Handler{"test.record": rec.handler})
		q := redisQueue(t)
		d := newDispatcher(t, g, q)
		startWorker(t, g, q, reg, fast(tasks.WithQueue("default", 4))...)
		startWorker(t, g, q, reg, fast(tasks.WithQueue("default", 4))...)
		var all []*tasks.Task
		for i := range 40 {
			spec := tasks.Spec{Name: "test.record", Args: recordArgs{Key: fmt.Sprint(i)}}
			if i%2 == 0 { // half of them contend for a few resources
				res := fmt.Sprintf("r%d", i%3)
				spec.Exclusive = []string{res}
				spec.Args = recordArgs{Key: fmt.Sprint(i), Resource: res}
			}
			all = append(all, dispatch(t, d, spec))
		}
		// Duplicate wake-ups are harmless.
		for range 2 {
			for _, task := range all {
				if err := q.Enqueue(context.Background(), task.Queue, task.ID); err != nil {
					t.Fatal(err)
				}
			}
		}
		for _, task := range all {
			waitState(t, g, task.ID, tasks.Completed)
		}
		time.Sleep(3 * quiet)
		_, maxActive, runs := rec.snapshot()
		for i := range 40 {
			if n := runs[fmt.Sprint(i)]; n != 1 {
				t.Errorf("task %d ran %d times, want 1", i, n)
			}
		}
		for _, r := range []string{"r0", "r1", "r2"} {
			if maxActive[r] != 1 {
				t.Errorf("%d tasks held %s at once", maxActive[r], r)
			}
		}
		for _, task := range all {
			if got := get(t, g, task.ID); got.Attempts != 1 {
				t.Errorf("task %s claimed %d times", task.ID, got.Attempts)
			}
		}
	})
}
