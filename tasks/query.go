package tasks

import (
	"context"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/berth-dev/berth/core"
	"github.com/berth-dev/berth/core/db"
)

// Filter selects tasks for List. Zero fields do not filter.
type Filter struct {
	States       []State
	Name         string
	NameContains string // case-sensitive substring of the name
	// Resource selects the tasks that reserve it, exclusive or shared.
	Resource      string
	Worker        string
	ParentID      string
	CreatedAfter  time.Time // strictly after
	CreatedBefore time.Time // strictly before
	// Limit defaults to DefaultLimit and is at most MaxLimit.
	Limit  int
	Offset int
	// Ordering is one of Orderings (default "-created").
	Ordering string
}

// Paging bounds of List.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
)

// Orderings maps the accepted Filter.Ordering values to SQL; "-" means
// descending. Ties are broken by dispatch order.
var Orderings = map[string]string{
	"created":   "created_at ASC, seq ASC",
	"-created":  "created_at DESC, seq DESC",
	"started":   "started_at ASC, seq ASC",
	"-started":  "started_at DESC, seq DESC",
	"finished":  "finished_at ASC, seq ASC",
	"-finished": "finished_at DESC, seq DESC",
	"name":      "name ASC, seq ASC",
	"-name":     "name DESC, seq DESC",
	"state":     "state ASC, seq ASC",
	"-state":    "state DESC, seq DESC",
}

// List returns a page of the tasks that f selects and how many it selects
// in all. An invalid filter is a *core.ValidationError.
func List(ctx context.Context, g *gorm.DB, f Filter) ([]Task, int64, error) {
	v := &core.ValidationError{}
	order := "created_at DESC, seq DESC"
	if f.Ordering != "" {
		o, ok := Orderings[f.Ordering]
		if !ok {
			v.Add("ordering", "unknown ordering %q", f.Ordering)
		}
		order = o
	}
	for _, s := range f.States {
		if !s.Valid() {
			v.Add("state", "unknown state %q", s)
		}
	}
	limit := f.Limit
	switch {
	case limit == 0:
		limit = DefaultLimit
	case limit < 0 || limit > MaxLimit:
		v.Add("limit", "must be between 1 and %d", MaxLimit)
	}
	if f.Offset < 0 {
		v.Add("offset", "must not be negative")
	}
	if err := v.Err(); err != nil {
		return nil, 0, err
	}

	q := g.WithContext(ctx).Model(&Task{})
	if len(f.States) > 0 {
		q = q.Where("state IN ?", f.States)
	}
	if f.Name != "" {
		q = q.Where("name = ?", f.Name)
	}
	if f.NameContains != "" {
		if db.DialectOf(g) == db.Postgres {
			q = q.Where("strpos(name, ?) > 0", f.NameContains)
		} else {
			q = q.Where("instr(name, ?) > 0", f.NameContains)
		}
	}
	if f.Resource != "" {
		q = q.Where("id IN (SELECT task_id FROM task_resources WHERE resource = ?)", f.Resource)
	}
	if f.Worker != "" {
		q = q.Where("worker = ?", f.Worker)
	}
	if f.ParentID != "" {
		q = q.Where("parent_id = ?", f.ParentID)
	}
	if !f.CreatedAfter.IsZero() {
		q = q.Where("created_at > ?", f.CreatedAfter.UTC())
	}
	if !f.CreatedBefore.IsZero() {
		q = q.Where("created_at < ?", f.CreatedBefore.UTC())
	}
	var total int64
	if err := q.Count(&total).Error; err != nil {
		return nil, 0, fmt.Errorf("count tasks: %w", core.Translate(err))
	}
	out := []Task{}
	if total > int64(f.Offset) {
		if err := q.Order(order).Limit(limit).Offset(f.Offset).Find(&out).Error; err != nil {
			return nil, 0, fmt.Errorf("list tasks: %w", core.Translate(err))
		}
	}
	return out, total, nil
}

// Get returns one task; a missing one is core.ErrNotFound.
func Get(ctx context.Context, g *gorm.DB, id string) (*Task, error) {
	var t Task
	err := g.WithContext(ctx).Take(&t, "id = ?", id).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, core.NotFound("task", id)
	}
	if err != nil {
		return nil, fmt.Errorf("get task %s: %w", id, core.Translate(err))
	}
	return &t, nil
}

// WorkerFilter selects workers for ListWorkers.
type WorkerFilter struct {
	Online *bool  // nil: both
	Name   string // exact
}

// ListWorkers returns the known workers, online ones first, by name.
func ListWorkers(ctx context.Context, g *gorm.DB, f WorkerFilter) ([]WorkerInfo, error) {
	q := g.WithContext(ctx).Model(&WorkerInfo{})
	if f.Online != nil {
		q = q.Where("online = ?", *f.Online)
	}
	if f.Name != "" {
		q = q.Where("name = ?", f.Name)
	}
	out := []WorkerInfo{}
	if err := q.Order("online DESC, name ASC").Find(&out).Error; err != nil {
		return nil, fmt.Errorf("list workers: %w", core.Translate(err))
	}
	return out, nil
}

// GetWorker returns one worker's row; a missing one is core.ErrNotFound.
func GetWorker(ctx context.Context, g *gorm.DB, name string) (*WorkerInfo, error) {
	var w WorkerInfo
	err := g.WithContext(ctx).Take(&w, "name = ?", name).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, core.NotFound("worker", name)
	}
	if err != nil {
		return nil, fmt.Errorf("get worker %s: %w", name, core.Translate(err))
	}
	return &w, nil
}
