package builds

import (
	"context"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/berth-dev/berth/core"
	"github.com/berth-dev/berth/internal/testdb"
)

// TestPhase checks the phase a build shows for each state of its task and
// what the build recorded: a build is finished exactly when its task is.
func TestPhase(t *testing.T) {
	testdb.Each(t, sets, func(t *testing.T, g *gorm.DB) {
		ctx := context.Background()
		s := core.NewStore(g, nil)
		for i, tc := range []struct {
			task     string // "" for no task
			recorded Phase
			want     Phase
			err      string
		}{
			{task: "", recorded: PhasePending, want: PhasePending},
			{task: "waiting", recorded: PhasePending, want: PhasePending},
			{task: "running", recorded: PhasePending, want: PhaseRunning},
			{task: "canceling", recorded: PhasePending, want: PhaseRunning},
			{task: "running", recorded: PhaseSucceeded, want: PhaseRunning}, // recorded, the task not ended yet
			{task: "completed", recorded: PhaseSucceeded, want: PhaseSucceeded},
			{task: "completed", recorded: PhasePending, want: PhaseSucceeded},
			{task: "failed", recorded: PhasePending, want: PhaseFailed, err: "worker lost"}, // the worker died
			{task: "failed", recorded: PhaseFailed, want: PhaseFailed, err: "step failed"},
			{task: "canceled", recorded: PhasePending, want: PhaseCancelled, err: "task canceled"},
			{task: "canceled", recorded: PhaseCancelled, want: PhaseCancelled, err: "cancelled"},
		} {
			b := &Build{ID: core.NewID(), Target: "team/app", Tag: "v1", UniqueTag: "v1-00000000", Spec: "{}", CreatedAt: now()}
			if tc.task != "" {
				id := core.NewID()
				b.TaskID = &id
				at := now()
				if err := g.Exec(`INSERT INTO tasks (id, seq, name, state, queue, error, created_at, updated_at, finished_at)
					VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, id, i+1, TaskName, tc.task, Queue,
					`{"description":"task canceled"}`, at, at, at).Error; err != nil {
					t.Fatal(err)
				}
				if tc.task == "failed" && tc.recorded == PhasePending {
					g.Exec(`UPDATE tasks SET error = ? WHERE id = ?`, `{"description":"worker lost"}`, id)
				}
			}
			if err := insertBuild(ctx, s, b, nil, ""); err != nil {
				t.Fatal(err)
			}
			if tc.recorded != PhasePending {
				reason := map[Phase]string{PhaseFailed: "step failed", PhaseCancelled: "cancelled"}[tc.recorded]
				if err := finishBuild(ctx, s, b.ID, tc.recorded, "", reason); err != nil {
					t.Fatal(err)
				}
			}
			got, err := getBuild(ctx, s, b.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.Phase != tc.want || got.Error != tc.err {
				t.Errorf("task %q, recorded %q: phase %q (error %q), want %q (%q)", tc.task, tc.recorded, got.Phase, got.Error, tc.want, tc.err)
			}
			if p, err := buildPhase(ctx, s, b.ID); err != nil || p != tc.want {
				t.Errorf("buildPhase = %q, %v", p, err)
			}
			if tc.want.Finished() && got.FinishedAt == nil {
				t.Errorf("task %q: finished build without finished_at", tc.task)
			}
		}
		list, _, err := listBuilds(ctx, s, core.ListQuery{Filters: []core.Filter{{Field: "phase", Op: "eq", Value: "running"}}}, visibility{All: true})
		if err != nil || len(list) != 3 {
			t.Errorf("running builds: %d, %v", len(list), err)
		}
		if _, err := getBuild(ctx, s, "nope"); err == nil {
			t.Error("a missing build was found")
		}
	})
}

// TestLogWriter checks the stored log: batches, resumption after the last
// line, and the bounds (the head stays, the middle goes, the tail stays).
func TestLogWriter(t *testing.T) {
	testdb.Each(t, sets, func(t *testing.T, g *gorm.DB) {
		ctx := context.Background()
		s := core.NewStore(g, nil)
		b := &Build{ID: core.NewID(), Target: "team/app", Tag: "v1", UniqueTag: "v1-00000000", Spec: "{}", CreatedAt: now()}
		if err := insertBuild(ctx, s, b, nil, ""); err != nil {
			t.Fatal(err)
		}
		w, err := newLogWriter(ctx, s, b.ID, testLog(), 100, 100)
		if err != nil {
			t.Fatal(err)
		}
		w.Printf("one")
		w.Write([]byte("two\nthree\n"))
		w.Write([]byte("bad \xff utf8 \x00 nul\r\n"))
		deadline := time.Now().Add(5 * time.Second)
		for {
			lines, err := logAfter(ctx, s, b.ID, -1, 10)
			if err != nil {
				t.Fatal(err)
			}
			if len(lines) == 4 {
				if lines[3].Line != "bad \uFFFD utf8  nul" || lines[1].Pos != 4 {
					t.Errorf("lines %+v", lines)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("lines not flushed while the build runs: %+v", lines)
			}
			time.Sleep(20 * time.Millisecond)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte("late\n")); err == nil {
			t.Error("a closed log took a line")
		}

		// A second writer goes on after the last line; a long log keeps
		// its head and its tail.
		w, err = newLogWriter(ctx, s, b.ID, testLog(), 100, 100)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 100 {
			w.Printf("line %02d ......", i) // 15 bytes with the line end
			if i%10 == 0 {
				w.flush(false)
			}
		}
		w.Close()
		lines, err := logAfter(ctx, s, b.ID, -1, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if lines[4].Seq != 4 || lines[4].Line != "line 00 ......" {
			t.Errorf("the second writer did not go on after line 3: %+v", lines[4])
		}
		last := lines[len(lines)-1]
		if last.Line != "line 99 ......" || last.Seq != 103 {
			t.Errorf("last line %+v", last)
		}
		var tail int
		for _, l := range lines {
			if l.Pos >= 100 {
				tail++
				if end := last.Pos + 15; l.Pos < end-100 {
					t.Errorf("line %+v kept outside the tail window", l)
				}
			}
		}
		if tail == 0 || tail > 8 || len(lines) > 20 {
			t.Errorf("kept %d lines, %d of the tail", len(lines), tail)
		}
	})
}
