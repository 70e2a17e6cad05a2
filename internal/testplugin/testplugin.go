// Package testplugin holds task handlers and a dispatch route that exist
// only for Berth's end-to-end tests of the task system. `berth serve` and
// `berth worker` register them when started with --test-plugin
// (BERTH_TEST_PLUGIN=true); a normal installation never has them.
package testplugin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/tasks"
)

// SleepName is a task that works in steps, reporting progress, and may fail.
const SleepName = "test.sleep"

// SleepArgs configures test.sleep.
type SleepArgs struct {
	Steps  int    `json:"steps"`   // number of steps
	StepMS int    `json:"step_ms"` // duration of one step
	Fail   bool   `json:"fail"`    // fail after the last step
	Mark   string `json:"mark"`    // a file path: start and end times are appended to it
}

// Register adds the test handlers to reg.
func Register(reg *tasks.Registry) error {
	return reg.Register(SleepName, sleep)
}

func sleep(ctx context.Context, t *tasks.Task, r *tasks.Reporter) (any, error) {
	var a SleepArgs
	if err := t.DecodeArgs(&a); err != nil {
		return nil, err
	}
	if a.Steps <= 0 || a.StepMS < 0 {
		return nil, errors.New("steps must be positive")
	}
	mark(a.Mark, "start", t.ID)
	p := r.Progress("test.steps", "Sleeping").SetTotal(int64(a.Steps))
	for i := 0; i < a.Steps; i++ {
		select {
		case <-ctx.Done():
			mark(a.Mark, "canceled", t.ID)
			return nil, ctx.Err()
		case <-time.After(time.Duration(a.StepMS) * time.Millisecond):
		}
		p.Increment(1)
	}
	p.Done()
	mark(a.Mark, "end", t.ID)
	if a.Fail {
		return nil, fmt.Errorf("asked to fail after %d steps", a.Steps)
	}
	return map[string]int{"steps": a.Steps}, nil
}

// mark appends "<event> <task> <unix nanos>" to path, so tests can check
// which tasks overlapped in time across worker processes.
func mark(path, event, id string) {
	if path == "" {
		return
	}
	_ = os.MkdirAll(filepath.Dir(path), 0o755)
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return
	}
	defer f.Close()
	fmt.Fprintf(f, "%s %s %d\n", event, id, time.Now().UnixNano())
}

// DispatchRequest is the body of POST /pulp/api/v3/test/dispatch/.
type DispatchRequest struct {
	Name       string    `json:"name"`
	Args       SleepArgs `json:"args"`
	Exclusive  []string  `json:"exclusive_resources"`
	Shared     []string  `json:"shared_resources"`
	Idempotent bool      `json:"idempotent"`
}

// Routes is the test dispatch route as an api.Routes set.
type Routes struct {
	Dispatcher *tasks.Dispatcher
}

// APIRoutes adds POST /pulp/api/v3/test/dispatch/.
func (r Routes) APIRoutes(rt *api.Router) {
	rt.Add(api.Operation{
		Method: http.MethodPost, Path: api.Prefix + "test/dispatch/", Summary: "Dispatch a test task (test builds only)",
		Tags: []string{"Test"}, Request: DispatchRequest{}, Response: api.TaskAccepted{}, Status: http.StatusAccepted,
	}, func(c echo.Context) error {
		var req DispatchRequest
		if _, err := api.Bind(c, &req); err != nil {
			return err
		}
		if req.Name == "" {
			req.Name = SleepName
		}
		t, err := r.Dispatcher.Dispatch(c.Request().Context(), tasks.Spec{
			Name: req.Name, Args: req.Args, Exclusive: req.Exclusive, Shared: req.Shared, Idempotent: req.Idempotent,
		})
		if err != nil {
			return err
		}
		return api.Accepted(c, t)
	})
}
