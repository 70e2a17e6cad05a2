package api

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/berth-dev/berth/core"
	"github.com/berth-dev/berth/tasks"
)

// WorkerResponse is a task worker as the REST API shows it.
type WorkerResponse struct {
	Href          string         `json:"pulp_href" api:"readonly"`
	PulpCreated   time.Time      `json:"pulp_created" doc:"When the worker started."`
	Name          string         `json:"name"`
	LastHeartbeat time.Time      `json:"last_heartbeat"`
	Online        bool           `json:"online"`
	Queues        map[string]int `json:"queues" doc:"The queues the worker consumes, with their concurrency."`
	StoppedAt     *time.Time     `json:"stopped_at"`
	CurrentTask   *string        `json:"current_task" doc:"Href of a task the worker is running, if any."`
}

// NewWorkerResponse renders a worker; current is the href of a task it
// runs, or "".
func NewWorkerResponse(w *tasks.WorkerInfo, current string) WorkerResponse {
	r := WorkerResponse{
		Href:          WorkerHref(w.Name),
		PulpCreated:   APITime(w.StartedAt),
		Name:          w.Name,
		LastHeartbeat: APITime(w.LastHeartbeat),
		Online:        w.Online,
		Queues:        map[string]int(w.Queues),
		StoppedAt:     utc(w.StoppedAt),
	}
	if r.Queues == nil {
		r.Queues = map[string]int{}
	}
	if current != "" {
		r.CurrentTask = &current
	}
	return r
}

func workerListSpec() ListSpec {
	return ListSpec{Fields: map[string]Field{
		"name":           {Kind: KindString, Lookups: []string{Exact, Contains, In}, Order: true},
		"online":         {Kind: KindBool, Lookups: BoolLookups()},
		"last_heartbeat": {Kind: KindTime, Lookups: []string{Gt, Gte, Lt, Lte}, Order: true},
		"pulp_created":   {Kind: KindTime, Lookups: []string{Gt, Gte, Lt, Lte}, Order: true},
	}}
}

// workerResponses renders workers with the task each is running.
func (s *Server) workerResponses(ctx context.Context, ws []tasks.WorkerInfo) ([]WorkerResponse, error) {
	running, _, err := s.tasks.Tasks(ctx, tasks.Filter{States: []tasks.State{tasks.Running, tasks.Canceling}, Limit: tasks.MaxLimit, Ordering: "started"})
	if err != nil {
		return nil, err
	}
	current := map[string]string{}
	for _, t := range running {
		if _, ok := current[t.Worker]; !ok && t.Worker != "" {
			current[t.Worker] = TaskHref(t.ID)
		}
	}
	out := make([]WorkerResponse, len(ws))
	for i := range ws {
		out[i] = NewWorkerResponse(&ws[i], current[ws[i].Name])
	}
	return out, nil
}

// matchWorker applies the list's filters. Workers are few (offline ones
// are forgotten after a day), so the list is filtered here, not in SQL.
func matchWorker(w WorkerResponse, filters []core.Filter) bool {
	for _, f := range filters {
		var t time.Time
		switch f.Field {
		case "name":
			switch f.Op {
			case "eq":
				if w.Name != f.Value.(string) {
					return false
				}
			case Contains:
				if !strings.Contains(w.Name, f.Value.(string)) {
					return false
				}
			case In:
				if !slices.Contains(f.Value.([]any), any(w.Name)) {
					return false
				}
			}
			continue
		case "online":
			if w.Online != f.Value.(bool) {
				return false
			}
			continue
		case "last_heartbeat":
			t = w.LastHeartbeat
		case "pulp_created":
			t = w.PulpCreated
		}
		if !compareTime(t, f.Op, f.Value.(time.Time)) {
			return false
		}
	}
	return true
}

// compareTime applies a time lookup (gt, gte, lt, lte).
func compareTime(t time.Time, op string, v time.Time) bool {
	switch op {
	case Gt:
		return t.After(v)
	case Gte:
		return !t.Before(v)
	case Lt:
		return t.Before(v)
	case Lte:
		return !t.After(v)
	}
	return t.Equal(v)
}

// sortWorkers orders by the client's ordering (default: online first, then
// by name, as tasks.ListWorkers returns them).
func sortWorkers(ws []WorkerResponse, ordering []string) {
	if len(ordering) == 0 {
		return
	}
	slices.SortStableFunc(ws, func(a, b WorkerResponse) int {
		for _, o := range ordering {
			desc := strings.HasPrefix(o, "-")
			var c int
			switch strings.TrimPrefix(o, "-") {
			case "name":
				c = strings.Compare(a.Name, b.Name)
			case "last_heartbeat":
				c = a.LastHeartbeat.Compare(b.LastHeartbeat)
			case "pulp_created":
				c = a.PulpCreated.Compare(b.PulpCreated)
			}
			if desc {
				c = -c
			}
			if c != 0 {
				return c
			}
		}
		return 0
	})
}

func (s *Server) workerRoutes(r *Router) {
	tags := []string{"Workers"}
	spec := workerListSpec()
	r.Add(Operation{
		Method: http.MethodGet, Path: Prefix + "workers/", ID: "workers_list", Tags: tags,
		Summary: "List task workers", Params: spec.Params(), Response: Page[WorkerResponse]{},
	}, func(c echo.Context) error {
		q, err := ParseList(c, spec)
		if err != nil {
			return err
		}
		ctx := c.Request().Context()
		ws, err := s.tasks.Workers(ctx, tasks.WorkerFilter{})
		if err != nil {
			return err
		}
		all, err := s.workerResponses(ctx, ws)
		if err != nil {
			return err
		}
		all = slices.DeleteFunc(all, func(w WorkerResponse) bool { return !matchWorker(w, q.Filters) })
		sortWorkers(all, q.Ordering)
		count := int64(len(all))
		page := all[min(q.Offset, len(all)):min(q.Offset+q.Limit, len(all))]
		return c.JSON(http.StatusOK, NewPage(c, q, count, page))
	})
	r.Add(Operation{
		Method: http.MethodGet, Path: Prefix + "workers/:name/", ID: "workers_read", Tags: tags,
		Summary: "Inspect a task worker", Response: WorkerResponse{},
	}, func(c echo.Context) error {
		ctx := c.Request().Context()
		w, err := s.tasks.Worker(ctx, param(c, "name"))
		if err != nil {
			return err
		}
		out, err := s.workerResponses(ctx, []tasks.WorkerInfo{*w})
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, out[0])
	})
}
