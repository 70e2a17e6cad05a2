package tasks

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"

	"gorm.io/gorm"

	"github.com/berth-dev/berth/core"
)

// Spec describes a task to dispatch.
type Spec struct {
	// Name selects the handler ("container.sync").
	Name string
	// Args are stored as JSON and given to the handler (Task.DecodeArgs).
	Args any
	// Exclusive resources are held by this task alone; Shared ones may be
	// held by other shared holders at the same time. A resource named in both
	// is exclusive. Resources are free-form strings, by convention hrefs or
	// "<kind>:<id>".
	Exclusive []string
	Shared    []string
	// Queue selects the workers; empty means DefaultQueue.
	Queue string
	// ParentID names the task that dispatched this one, if any.
	ParentID string
	// Idempotent declares the handler safe to run again from the start: if
	// its worker is lost, the task goes back to waiting instead of failing.
	Idempotent bool
}

// Dispatcher creates tasks and wakes workers for those that are ready.
type Dispatcher struct {
	db    *gorm.DB
	queue Enqueuer
	names Names
	log   *slog.Logger
}

// NewDispatcher returns a dispatcher writing to g and waking workers
// through q. It uses the options WithNames and WithLogger.
func NewDispatcher(g *gorm.DB, q Enqueuer, opts ...Option) (*Dispatcher, error) {
	if g == nil || q == nil {
		return nil, fmt.Errorf("new dispatcher: database and queue are required")
	}
	c, err := newConfig(opts)
	if err != nil {
		return nil, fmt.Errorf("new dispatcher: %w", err)
	}
	return &Dispatcher{db: g, queue: q, names: c.names, log: c.log}, nil
}

// Dispatch creates a waiting task from s and, unless an earlier unfinished
// task holds a conflicting resource, wakes a worker for it. A blocked task
// is woken when its blocker ends. Invalid specs fail with a
// *core.ValidationError (core.ErrInvalid).
//
// The task exists once Dispatch returns it, even if the wake-up could not be
// sent (that is logged): the sweeper re-sends wake-ups for ready tasks.
func (d *Dispatcher) Dispatch(ctx context.Context, s Spec) (*Task, error) {
	t, err := d.newTask(s)
	if err != nil {
		return nil, err
	}
	err = d.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := lockResources(ctx, tx, t.Resources()); err != nil {
			return err
		}
		if t.ParentID != nil {
			var n int64
			if err := tx.Model(&Task{}).Where("id = ?", *t.ParentID).Count(&n).Error; err != nil {
				return fmt.Errorf("check parent task: %w", core.Translate(err))
			}
			if n == 0 {
				return core.Invalid("parent_id", "task %q does not exist", *t.ParentID)
			}
		}
		return insertTask(ctx, tx, t)
	})
	if err != nil {
		return nil, fmt.Errorf("dispatch %s: %w", s.Name, err)
	}
	// Checked after commit: a blocker ending meanwhile either is seen ended
	// here or sees this task and wakes it.
	blocked, err := isBlocked(ctx, d.db, t.ID)
	if err != nil {
		d.log.WarnContext(ctx, "task dispatched; lock check failed, the sweeper will wake it", "task", t.ID, "name", t.Name, "err", err)
		return t, nil
	}
	if blocked {
		d.log.DebugContext(ctx, "task dispatched, blocked", "task", t.ID, "name", t.Name)
		return t, nil
	}
	if err := d.queue.Enqueue(ctx, t.Queue, t.ID); err != nil {
		d.log.WarnContext(ctx, "task dispatched; wake-up failed, the sweeper will send it", "task", t.ID, "name", t.Name, "err", err)
	}
	return t, nil
}

// newTask validates s and builds the row to insert.
func (d *Dispatcher) newTask(s Spec) (*Task, error) {
	v := &core.ValidationError{}
	switch {
	case s.Name == "":
		v.Add("name", "required")
	case !namePattern.MatchString(s.Name):
		v.Add("name", "%q is not a task name", s.Name)
	case d.names != nil && !d.names.Has(s.Name):
		v.Add("name", "no handler is registered for task %q", s.Name)
	}
	queue := s.Queue
	if queue == "" {
		queue = DefaultQueue
	}
	if !ValidQueueName(queue) {
		v.Add("queue", "%q is not a queue name", queue)
	}
	exclusive := cleanResources(v, "exclusive_resources", s.Exclusive)
	shared := cleanResources(v, "shared_resources", s.Shared)
	shared = slices.DeleteFunc(shared, func(r string) bool { return slices.Contains(exclusive, r) })
	var args JSON
	if s.Args != nil {
		b, err := json.Marshal(s.Args)
		if err != nil {
			v.Add("args", "not representable as JSON: %v", err)
		}
		args = b
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	at := now()
	t := &Task{
		ID:                 core.NewID(),
		Name:               s.Name,
		State:              Waiting,
		Queue:              queue,
		Args:               args,
		ExclusiveResources: exclusive,
		SharedResources:    shared,
		Idempotent:         s.Idempotent,
		ProgressReports:    ProgressReports{},
		CreatedResources:   Strings{},
		CreatedAt:          at,
		UpdatedAt:          at,
	}
	if s.ParentID != "" {
		p := s.ParentID
		t.ParentID = &p
	}
	return t, nil
}

// cleanResources checks resource names and returns them sorted, without
// duplicates.
func cleanResources(v *core.ValidationError, field string, in []string) Strings {
	out := make(Strings, 0, len(in))
	for _, r := range in {
		if r == "" || len(r) > 1024 {
			v.Add(field, "resource names must have 1 to 1024 characters")
			continue
		}
		out = append(out, r)
	}
	slices.Sort(out)
	return slices.Compact(out)
}
