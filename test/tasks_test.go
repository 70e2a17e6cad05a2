package test

import (
	"bufio"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/core/db"
)

// taskView is what the tests read of a task.
type taskView struct {
	Href            string `json:"pulp_href"`
	State           string `json:"state"`
	Worker          *string
	Error           *struct{ Description string } `json:"error"`
	ProgressReports []struct {
		Done  int64  `json:"done"`
		Total *int64 `json:"total"`
	} `json:"progress_reports"`
}

type dispatchArgs struct {
	Steps  int    `json:"steps"`
	StepMS int    `json:"step_ms"`
	Mark   string `json:"mark,omitempty"`
}

// taskCluster is berth serve plus two berth worker processes on PostgreSQL
// and Redis, with the test-only task handlers.
type taskCluster struct {
	env     *Env
	srv     *Server
	api     *Client
	workers map[string]*Proc
	marks   string
}

func newTaskCluster(t *testing.T) *taskCluster {
	t.Helper()
	env := NewEnv(t, db.Postgres, true)
	env.Extra = []string{"BERTH_TEST_PLUGIN=true", "BERTH_HEARTBEAT_INTERVAL=1s", "BERTH_WORKER_TIMEOUT=6s", "BERTH_WORKERS=2", "BERTH_ACCESS_LOG=false"}
	c := &taskCluster{env: env, workers: map[string]*Proc{}, marks: filepath.Join(env.DataDir, "marks.log")}
	c.srv = env.Serve(t)
	c.api = c.srv.API(t)
	for _, name := range []string{"worker-a", "worker-b"} {
		c.workers[name] = env.Worker(t, name)
	}
	// Both workers are online before the tests dispatch anything.
	deadline := time.Now().Add(30 * time.Second)
	for {
		var page struct {
			Results []struct {
				Name   string `json:"name"`
				Online bool   `json:"online"`
			} `json:"results"`
		}
		c.api.Do(http.MethodGet, "/pulp/api/v3/workers/?limit=100", nil, &page)
		online := 0
		for _, w := range page.Results {
			if w.Online && c.workers[w.Name] != nil {
				online++
			}
		}
		if online == 2 {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("workers not online after 30s: %+v", page.Results)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (c *taskCluster) dispatch(t *testing.T, args dispatchArgs, exclusive, shared []string) string {
	t.Helper()
	var out struct {
		Task string `json:"task"`
	}
	status, body := c.api.Do(http.MethodPost, "/pulp/api/v3/test/dispatch/", map[string]any{
		"args": args, "exclusive_resources": exclusive, "shared_resources": shared,
	}, &out)
	if status != http.StatusAccepted || out.Task == "" {
		t.Fatalf("dispatch: %d %s", status, body)
	}
	return out.Task
}

func (c *taskCluster) task(t *testing.T, href string) taskView {
	t.Helper()
	var v taskView
	if status, body := c.api.Do(http.MethodGet, href, nil, &v); status != http.StatusOK {
		t.Fatalf("GET %s: %d %s", href, status, body)
	}
	return v
}

// wait polls a task until cond holds, failing after timeout.
func (c *taskCluster) wait(t *testing.T, href string, timeout time.Duration, what string, cond func(taskView) bool) taskView {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		v := c.task(t, href)
		if cond(v) {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("task %s: not %s after %v (state %s)", href, what, timeout, v.State)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func finished(v taskView) bool {
	return v.State == "completed" || v.State == "failed" || v.State == "canceled"
}

// interval is when one task ran, from the handler's own marks.
type interval struct {
	id         string
	start, end int64
}

func readMarks(t *testing.T, path string) map[string]*interval {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]*interval{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.Fields(sc.Text())
		if len(parts) != 3 {
			continue
		}
		ns, _ := strconv.ParseInt(parts[2], 10, 64)
		iv := out[parts[1]]
		if iv == nil {
			iv = &interval{id: parts[1]}
			out[parts[1]] = iv
		}
		switch parts[0] {
		case "start":
			iv.start = ns
		case "end", "canceled":
			iv.end = ns
		}
	}
	return out
}

func idOf(href string) string {
	parts := strings.Split(strings.TrimSuffix(href, "/"), "/")
	return parts[len(parts)-1]
}

func TestTasksAcrossWorkers(t *testing.T) {
	c := newTaskCluster(t)

	t.Run("exclusive tasks run one at a time in dispatch order", func(t *testing.T) {
		mark := filepath.Join(c.env.DataDir, "exclusive.log")
		var hrefs []string
		for i := 0; i < 4; i++ {
			hrefs = append(hrefs, c.dispatch(t, dispatchArgs{Steps: 3, StepMS: 100, Mark: mark}, []string{"repository:one"}, nil))
		}
		for _, h := range hrefs {
			if v := c.wait(t, h, 60*time.Second, "finished", finished); v.State != "completed" {
				t.Fatalf("task %s ended %s", h, v.State)
			}
		}
		marks := readMarks(t, mark)
		var prev *interval
		for i, h := range hrefs {
			iv := marks[idOf(h)]
			if iv == nil || iv.start == 0 || iv.end == 0 {
				t.Fatalf("task %d left no marks", i)
			}
			if prev != nil && iv.start < prev.end {
				t.Fatalf("task %d started before task %d ended: exclusive tasks overlapped or ran out of order", i, i-1)
			}
			prev = iv
		}
	})

	t.Run("shared tasks run together", func(t *testing.T) {
		mark := filepath.Join(c.env.DataDir, "shared.log")
		a := c.dispatch(t, dispatchArgs{Steps: 15, StepMS: 100, Mark: mark}, nil, []string{"repository:two"})
		b := c.dispatch(t, dispatchArgs{Steps: 15, StepMS: 100, Mark: mark}, nil, []string{"repository:two"})
		for _, h := range []string{a, b} {
			c.wait(t, h, 60*time.Second, "completed", func(v taskView) bool { return v.State == "completed" })
		}
		m := readMarks(t, mark)
		ia, ib := m[idOf(a)], m[idOf(b)]
		if !(ia.start < ib.end && ib.start < ia.end) {
			t.Fatalf("shared tasks did not overlap: %+v %+v", ia, ib)
		}
	})

	t.Run("progress is visible while a task runs", func(t *testing.T) {
		h := c.dispatch(t, dispatchArgs{Steps: 30, StepMS: 100}, []string{"repository:three"}, nil)
		v := c.wait(t, h, 30*time.Second, "reporting progress", func(v taskView) bool {
			return v.State == "running" && len(v.ProgressReports) > 0 && v.ProgressReports[0].Done > 0
		})
		if v.ProgressReports[0].Total == nil || *v.ProgressReports[0].Total != 30 {
			t.Fatalf("progress total = %v, want 30", v.ProgressReports[0].Total)
		}
		done := c.wait(t, h, 60*time.Second, "completed", finished)
		if done.State != "completed" || done.ProgressReports[0].Done != 30 {
			t.Fatalf("final state %s, done %d", done.State, done.ProgressReports[0].Done)
		}
	})

	t.Run("cancel waiting and running tasks", func(t *testing.T) {
		mark := filepath.Join(c.env.DataDir, "cancel.log")
		running := c.dispatch(t, dispatchArgs{Steps: 600, StepMS: 100, Mark: mark}, []string{"repository:four"}, nil)
		waiting := c.dispatch(t, dispatchArgs{Steps: 1, StepMS: 1, Mark: mark}, []string{"repository:four"}, nil)
		c.wait(t, running, 30*time.Second, "running", func(v taskView) bool { return v.State == "running" })
		if v := c.task(t, waiting); v.State != "waiting" {
			t.Fatalf("blocked task is %s, want waiting", v.State)
		}
		if status, body := c.api.Do(http.MethodPatch, waiting, map[string]string{"state": "canceled"}, nil); status != http.StatusOK {
			t.Fatalf("cancel waiting: %d %s", status, body)
		}
		if v := c.task(t, waiting); v.State != "canceled" {
			t.Fatalf("canceled waiting task is %s", v.State)
		}
		start := time.Now()
		if status, body := c.api.Do(http.MethodPatch, running, map[string]string{"state": "canceled"}, nil); status != http.StatusOK {
			t.Fatalf("cancel running: %d %s", status, body)
		}
		c.wait(t, running, 15*time.Second, "canceled", func(v taskView) bool { return v.State == "canceled" })
		t.Logf("running task canceled in %v", time.Since(start))
		m := readMarks(t, mark)
		if iv := m[idOf(waiting)]; iv != nil {
			t.Fatalf("the canceled waiting task ran")
		}
		// A finished task cannot be canceled.
		if status, _ := c.api.Do(http.MethodPatch, running, map[string]string{"state": "canceled"}, nil); status != http.StatusConflict {
			t.Fatalf("cancel of a finished task: %d, want 409", status)
		}
	})

	t.Run("kill -9 of a worker leaves no task stuck", func(t *testing.T) {
		victim := c.dispatch(t, dispatchArgs{Steps: 600, StepMS: 100}, []string{"repository:five"}, nil)
		next := c.dispatch(t, dispatchArgs{Steps: 2, StepMS: 50}, []string{"repository:five"}, nil)
		v := c.wait(t, victim, 30*time.Second, "running", func(v taskView) bool { return v.State == "running" && v.Worker != nil })
		name := idOf(*v.Worker)
		w := c.workers[name]
		if w == nil {
			t.Fatalf("task runs on unknown worker %q", name)
		}
		w.Kill(t)
		killed := time.Now()
		v = c.wait(t, victim, 60*time.Second, "failed", finished)
		if v.State != "failed" || v.Error == nil || !strings.Contains(v.Error.Description, "worker lost") {
			t.Fatalf("task of the killed worker ended %s with %+v, want failed with 'worker lost'", v.State, v.Error)
		}
		t.Logf("task of the killed worker failed %v after the kill", time.Since(killed).Round(time.Millisecond))
		n := c.wait(t, next, 60*time.Second, "completed", finished)
		if n.State != "completed" {
			t.Fatalf("task queued behind the lost one ended %s", n.State)
		}
		// Nothing is left waiting or running.
		var page struct {
			Count int `json:"count"`
		}
		c.api.Do(http.MethodGet, "/pulp/api/v3/tasks/?state__in=waiting,running,canceling", nil, &page)
		if page.Count != 0 {
			t.Fatalf("%d tasks still unfinished", page.Count)
		}
	})
}
