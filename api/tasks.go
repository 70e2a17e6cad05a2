package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/berth-dev/berth/core"
	"github.com/berth-dev/berth/tasks"
)

// TaskResponse is a task as the REST API shows it, in Pulp's shape. Its
// arguments are not shown: they may hold what only the server should see.
type TaskResponse struct {
	Href            string                 `json:"pulp_href" api:"readonly"`
	PulpCreated     time.Time              `json:"pulp_created" api:"readonly"`
	PulpLastUpdated time.Time              `json:"pulp_last_updated" api:"readonly"`
	Name            string                 `json:"name" doc:"The task's handler, such as core.delete_repository."`
	State           string                 `json:"state" enum:"waiting,running,completed,failed,canceling,canceled"`
	Queue           string                 `json:"queue" doc:"The queue whose workers run the task."`
	StartedAt       *time.Time             `json:"started_at"`
	FinishedAt      *time.Time             `json:"finished_at"`
	Error           *tasks.TaskError       `json:"error" doc:"Why the task failed; null otherwise."`
	Worker          *string                `json:"worker" doc:"Href of the worker that runs or ran the task."`
	ParentTask      *string                `json:"parent_task" doc:"Href of the task that dispatched this one."`
	ProgressReports []tasks.ProgressReport `json:"progress_reports"`
	// CreatedResources are hrefs of what the task made (a new repository
	// version, …).
	CreatedResources []string `json:"created_resources"`
	// ReservedResourcesRecord lists the resources the task holds or held:
	// exclusive ones as they are, shared ones prefixed with "shared:".
	ReservedResourcesRecord []string   `json:"reserved_resources_record"`
	Result                  tasks.JSON `json:"result" doc:"What the task returned, if anything."`
}

// NewTaskResponse renders a task.
func NewTaskResponse(t *tasks.Task) TaskResponse {
	r := TaskResponse{
		Href:             TaskHref(t.ID),
		PulpCreated:      APITime(t.CreatedAt),
		PulpLastUpdated:  APITime(t.UpdatedAt),
		Name:             t.Name,
		State:            string(t.State),
		Queue:            t.Queue,
		StartedAt:        utc(t.StartedAt),
		FinishedAt:       utc(t.FinishedAt),
		Error:            t.Error,
		ProgressReports:  append([]tasks.ProgressReport{}, t.ProgressReports...),
		CreatedResources: append([]string{}, t.CreatedResources...),
		Result:           t.Result,
	}
	if t.Worker != "" {
		h := WorkerHref(t.Worker)
		r.Worker = &h
	}
	if t.ParentID != nil {
		h := TaskHref(*t.ParentID)
		r.ParentTask = &h
	}
	r.ReservedResourcesRecord = append([]string{}, t.ExclusiveResources...)
	for _, s := range t.SharedResources {
		r.ReservedResourcesRecord = append(r.ReservedResourcesRecord, "shared:"+s)
	}
	return r
}

func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := APITime(*t)
	return &u
}

// TaskAccepted is the body of a 202 answer: the task to poll.
type TaskAccepted struct {
	Task string `json:"task" doc:"Href of the task doing the work; poll it until it is finished."`
}

// Accepted answers 202 {"task": "<href>"} for a dispatched task.
func Accepted(c echo.Context, t *tasks.Task) error {
	return c.JSON(http.StatusAccepted, TaskAccepted{Task: TaskHref(t.ID)})
}

// dispatch creates a task for the core's own work. The specs are built
// here, so the task system refusing one (an unregistered handler) is the
// server's fault, not the client's: the validation error is deliberately
// not wrapped, and the central handler answers 500 and logs it.
func (s *Server) dispatch(ctx context.Context, spec tasks.Spec) (*tasks.Task, error) {
	t, err := s.tasks.Dispatch(ctx, spec)
	if errors.Is(err, core.ErrInvalid) {
		return nil, fmt.Errorf("dispatch %s: the task system refused the server's own spec (are the core task handlers registered?): %v", spec.Name, err)
	}
	if err != nil {
		return nil, fmt.Errorf("dispatch %s: %w", spec.Name, err)
	}
	return t, nil
}

// taskOrderings maps the API's task orderings to tasks.Orderings.
var taskOrderings = map[string]string{
	"pulp_created": "created", "-pulp_created": "-created",
	"started_at": "started", "-started_at": "-started",
	"finished_at": "finished", "-finished_at": "-finished",
	"name": "name", "-name": "-name",
	"state": "state", "-state": "-state",
}

func (s *Server) taskListSpec() ListSpec {
	return ListSpec{Fields: map[string]Field{
		"state":              {Kind: KindString, Lookups: []string{Exact, In}, Order: true, Doc: "waiting, running, completed, failed, canceling or canceled."},
		"name":               {Kind: KindString, Lookups: []string{Exact, Contains}, Order: true},
		"worker":             {Kind: KindHref, Lookups: []string{Exact}, Resolve: resolveWorker, Doc: "Href (or name) of a worker."},
		"parent_task":        {Kind: KindHref, Lookups: []string{Exact}, Resolve: resolveTask, Doc: "Href of the parent task."},
		"reserved_resources": {Kind: KindString, Lookups: []string{Exact}, Doc: "A resource the task reserves: an object's href or a resource name such as repository:<id>."},
		"pulp_created":       {Kind: KindTime, Lookups: []string{Gt, Gte, Lt, Lte}, Order: true},
		"started_at":         {Kind: KindTime, Order: true},
		"finished_at":        {Kind: KindTime, Order: true},
	}}
}

func resolveWorker(_ context.Context, v string) (any, error) {
	ref, err := ParseHref(v)
	if err != nil {
		return v, nil // a bare worker name
	}
	if ref.Collection != Workers || ref.Type != "" {
		return nil, core.Invalid("worker", msgNoURLMatch)
	}
	return ref.ID, nil
}

func resolveTask(_ context.Context, v string) (any, error) {
	ref, err := ParseHref(v)
	if err != nil {
		return nil, err
	}
	if ref.Collection != Tasks || ref.Type != "" {
		return nil, core.Invalid("parent_task", msgNoURLMatch)
	}
	return ref.ID, nil
}

// taskFilter turns a parsed list query into the tasks package's filter.
// ParseList gives time filters as gte/lt bounds on whole microseconds;
// tasks.Filter's bounds are strict.
func taskFilter(q core.ListQuery) (tasks.Filter, error) {
	f := tasks.Filter{Limit: q.Limit, Offset: q.Offset}
	verr := &core.ValidationError{}
	switch len(q.Ordering) {
	case 0:
	case 1:
		f.Ordering = taskOrderings[q.Ordering[0]]
	default:
		verr.Add(paramOrdering, "Tasks are ordered by one field at a time.")
	}
	after := func(t time.Time) {
		if t.After(f.CreatedAfter) {
			f.CreatedAfter = t
		}
	}
	before := func(t time.Time) {
		if f.CreatedBefore.IsZero() || t.Before(f.CreatedBefore) {
			f.CreatedBefore = t
		}
	}
	for _, fl := range q.Filters {
		switch fl.Field + "/" + fl.Op {
		case "state/eq":
			f.States = append(f.States, tasks.State(fl.Value.(string)))
		case "state/in":
			for _, v := range fl.Value.([]any) {
				f.States = append(f.States, tasks.State(v.(string)))
			}
		case "name/eq":
			f.Name = fl.Value.(string)
		case "name/contains":
			f.NameContains = fl.Value.(string)
		case "worker/eq":
			f.Worker = fl.Value.(string)
		case "parent_task/eq":
			f.ParentID = fl.Value.(string)
		case "reserved_resources/eq":
			f.Resource = resourceOf(fl.Value.(string))
		case "pulp_created/gte":
			// Task times are whole microseconds: at or after t is after t-1µs.
			after(fl.Value.(time.Time).Add(-time.Microsecond))
		case "pulp_created/lt":
			before(fl.Value.(time.Time))
		}
	}
	for _, st := range f.States {
		if !st.Valid() {
			verr.Add("state", "%q is not a task state.", st)
		}
	}
	return f, verr.Err()
}

func (s *Server) taskRoutes(r *Router) {
	spec := s.taskListSpec()
	tags := []string{"Tasks"}
	r.Add(Operation{
		Method: http.MethodGet, Path: Prefix + "tasks/", ID: "tasks_list", Tags: tags,
		Summary: "List tasks", Params: spec.Params(), Response: Page[TaskResponse]{},
	}, func(c echo.Context) error {
		q, err := ParseList(c, spec)
		if err != nil {
			return err
		}
		f, err := taskFilter(q)
		if err != nil {
			return err
		}
		list, count, err := s.tasks.Tasks(c.Request().Context(), f)
		if err != nil {
			return err
		}
		out := make([]TaskResponse, len(list))
		for i := range list {
			out[i] = NewTaskResponse(&list[i])
		}
		return c.JSON(http.StatusOK, NewPage(c, q, count, out))
	})
	r.Add(Operation{
		Method: http.MethodGet, Path: Prefix + "tasks/:id/", ID: "tasks_read", Tags: tags,
		Summary: "Inspect a task", Response: TaskResponse{},
	}, func(c echo.Context) error {
		t, err := s.tasks.Task(c.Request().Context(), c.Param("id"))
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, NewTaskResponse(t))
	})
	r.Add(Operation{
		Method: http.MethodPatch, Path: Prefix + "tasks/:id/", ID: "tasks_cancel", Tags: tags,
		Summary:     "Cancel a task",
		Description: `Send {"state": "canceled"}. A waiting task is canceled at once, a running one goes to canceling until its worker stops it; a finished task answers 409.`,
		Request:     taskCancelRequest{}, Response: TaskResponse{},
	}, func(c echo.Context) error {
		var body taskCancelRequest
		if _, err := Bind(c, &body); err != nil {
			return err
		}
		if body.State != string(tasks.Canceled) {
			return core.Invalid("state", "Only %q may be set.", tasks.Canceled)
		}
		t, err := s.tasks.Cancel(c.Request().Context(), c.Param("id"))
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, NewTaskResponse(t))
	})
}

// taskCancelRequest is the body of a task cancel.
type taskCancelRequest struct {
	State string `json:"state" api:"required" enum:"canceled"`
}
