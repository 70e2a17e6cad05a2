package api

import (
	"context"
	"fmt"

	"gorm.io/gorm"

	"github.com/berth-dev/berth/tasks"
)

// TaskService is what the REST API needs of the task system. NewTaskService
// adapts the tasks package; tests may fake it.
type TaskService interface {
	// Dispatch creates a task (see tasks.Dispatcher.Dispatch).
	Dispatch(ctx context.Context, s tasks.Spec) (*tasks.Task, error)
	// Task returns one task; a missing one is core.ErrNotFound.
	Task(ctx context.Context, id string) (*tasks.Task, error)
	// Tasks returns a page of tasks and how many f selects in all.
	Tasks(ctx context.Context, f tasks.Filter) ([]tasks.Task, int64, error)
	// Cancel asks a task to stop (see tasks.Cancel); a finished task is
	// core.ErrConflict.
	Cancel(ctx context.Context, id string) (*tasks.Task, error)
	// Workers lists the known workers.
	Workers(ctx context.Context, f tasks.WorkerFilter) ([]tasks.WorkerInfo, error)
	// Worker returns one worker; a missing one is core.ErrNotFound.
	Worker(ctx context.Context, name string) (*tasks.WorkerInfo, error)
}

// NewTaskService adapts the tasks package: d dispatches, g holds the task
// rows, q wakes the tasks a cancel unblocks (the embedded mode's
// tasks.Embedded.Queue(), or the Redis queue). In the embedded mode pass
// e.Dispatcher() and e.Queue() of a tasks.Embedded.
func NewTaskService(g *gorm.DB, d *tasks.Dispatcher, q tasks.Enqueuer) (TaskService, error) {
	if g == nil || d == nil || q == nil {
		return nil, fmt.Errorf("api: task service needs a database, a dispatcher and a queue")
	}
	return &taskService{db: g, d: d, q: q}, nil
}

type taskService struct {
	db *gorm.DB
	d  *tasks.Dispatcher
	q  tasks.Enqueuer
}

func (t *taskService) Dispatch(ctx context.Context, s tasks.Spec) (*tasks.Task, error) {
	return t.d.Dispatch(ctx, s)
}

func (t *taskService) Task(ctx context.Context, id string) (*tasks.Task, error) {
	return tasks.Get(ctx, t.db, id)
}

func (t *taskService) Tasks(ctx context.Context, f tasks.Filter) ([]tasks.Task, int64, error) {
	return tasks.List(ctx, t.db, f)
}

func (t *taskService) Cancel(ctx context.Context, id string) (*tasks.Task, error) {
	return tasks.Cancel(ctx, t.db, t.q, id)
}

func (t *taskService) Workers(ctx context.Context, f tasks.WorkerFilter) ([]tasks.WorkerInfo, error) {
	return tasks.ListWorkers(ctx, t.db, f)
}

func (t *taskService) Worker(ctx context.Context, name string) (*tasks.WorkerInfo, error) {
	return tasks.GetWorker(ctx, t.db, name)
}
