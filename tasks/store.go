package tasks

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"

	"gorm.io/gorm"

	"github.com/berth-dev/berth/core"
	"github.com/berth-dev/berth/core/db"
)

// This file holds the SQL of the task rows: every state transition is a
// compare-and-set on the state, so whoever loses a race changes nothing.

// lockNamespace is the first key of the two-key PostgreSQL advisory locks
// that serialize dispatch and claim per resource ("bert").
const lockNamespace = 0x62657274

// blockedBy is true when the task aliased t waits for an earlier unfinished
// task holding a conflicting resource: exclusive conflicts with anything,
// shared with exclusive. It reads only the active partial index.
const blockedBy = `EXISTS (
	SELECT 1 FROM task_resources mine
	JOIN task_resources other ON other.resource = mine.resource
	WHERE mine.task_id = t.id AND other.active AND other.seq < t.seq
	AND (mine.exclusive OR other.exclusive))`

// wake is a waiting task that may be ready.
type wake struct {
	ID    string
	Queue string
}

// resourceKeys returns the advisory lock keys of resources, deduplicated and
// sorted so that every transaction takes them in the same order (sorting
// the keys, not the names, stays deadlock-free when two names collide).
func resourceKeys(resources []string) []int32 {
	keys := make([]int32, 0, len(resources))
	for _, r := range resources {
		h := fnv.New32a()
		_, _ = h.Write([]byte(r))
		keys = append(keys, int32(h.Sum32()))
	}
	slices.Sort(keys)
	return slices.Compact(keys)
}

// lockResources takes the transaction-scoped advisory locks of resources on
// PostgreSQL. On SQLite the write transaction (BEGIN IMMEDIATE) already
// serializes writers, so it does nothing.
func lockResources(ctx context.Context, tx *gorm.DB, resources []string) error {
	if db.DialectOf(tx) != db.Postgres {
		return nil
	}
	for _, k := range resourceKeys(resources) {
		if err := tx.WithContext(ctx).Exec("SELECT pg_advisory_xact_lock(?, ?)", lockNamespace, k).Error; err != nil {
			return fmt.Errorf("lock resources: %w", core.Translate(err))
		}
	}
	return nil
}

// insertTask writes a new waiting task and its resource rows, assigning its
// sequence number. Call it inside a transaction that holds the resources'
// locks, so that sequence order is commit order for tasks sharing one.
func insertTask(ctx context.Context, tx *gorm.DB, t *Task) error {
	seqExpr := "DEFAULT"
	if db.DialectOf(tx) == db.SQLite {
		seqExpr = "(SELECT COALESCE(MAX(seq), 0) + 1 FROM tasks)"
	}
	row := tx.WithContext(ctx).Raw(`INSERT INTO tasks
		(id, seq, name, state, queue, args, exclusive_resources, shared_resources,
		 parent_id, idempotent, progress_reports, created_resources, created_at, updated_at)
		VALUES (?, `+seqExpr+`, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		RETURNING seq`,
		t.ID, t.Name, t.State, t.Queue, t.Args, t.ExclusiveResources, t.SharedResources,
		t.ParentID, t.Idempotent, t.ProgressReports, t.CreatedResources, t.CreatedAt, t.UpdatedAt).Row()
	if err := row.Scan(&t.Seq); err != nil {
		return fmt.Errorf("insert task: %w", core.Translate(err))
	}
	for _, set := range []struct {
		names     []string
		exclusive bool
	}{{t.ExclusiveResources, true}, {t.SharedResources, false}} {
		for _, r := range set.names {
			err := tx.WithContext(ctx).Exec(`INSERT INTO task_resources (task_id, resource, exclusive, seq, active)
				VALUES (?, ?, ?, ?, TRUE)`, t.ID, r, set.exclusive, t.Seq).Error
			if err != nil {
				return fmt.Errorf("insert task resource %q: %w", r, core.Translate(err))
			}
		}
	}
	return nil
}

// isBlocked reports whether the task waits for an earlier conflicting one.
func isBlocked(ctx context.Context, g *gorm.DB, id string) (bool, error) {
	var n int64
	err := g.WithContext(ctx).Raw(`SELECT COUNT(*) FROM tasks t WHERE t.id = ? AND `+blockedBy, id).Scan(&n).Error
	if err != nil {
		return false, fmt.Errorf("check task %s resources: %w", id, core.Translate(err))
	}
	return n > 0, nil
}

// readyOn lists the waiting, unblocked tasks holding any of resources, in
// dispatch order. With no resources it lists every ready waiting task.
func readyOn(ctx context.Context, g *gorm.DB, resources []string, limit int) ([]wake, error) {
	q := `SELECT t.id, t.queue FROM tasks t WHERE t.state = 'waiting'`
	var args []any
	if len(resources) > 0 {
		q += ` AND t.id IN (SELECT r.task_id FROM task_resources r WHERE r.active AND r.resource IN ?)`
		args = append(args, resources)
	}
	q += ` AND NOT ` + blockedBy + ` ORDER BY t.seq LIMIT ?`
	args = append(args, limit)
	var out []wake
	if err := g.WithContext(ctx).Raw(q, args...).Scan(&out).Error; err != nil {
		return nil, fmt.Errorf("list ready tasks: %w", core.Translate(err))
	}
	return out, nil
}

// enqueueAll sends a wake-up for each task, returning the errors joined.
func enqueueAll(ctx context.Context, q Enqueuer, ws []wake) error {
	var errs []error
	for _, w := range ws {
		if err := q.Enqueue(ctx, w.Queue, w.ID); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// wakeReady enqueues the tasks that became ready because a task holding
// resources ended. Call it after the ending transaction committed: a task
// dispatched concurrently either sees the ending or is seen here.
func wakeReady(ctx context.Context, g *gorm.DB, q Enqueuer, resources []string) error {
	if len(resources) == 0 {
		return nil
	}
	ws, err := readyOn(ctx, g, resources, 1000)
	if err != nil {
		return err
	}
	return enqueueAll(ctx, q, ws)
}

// errOffline: the claiming worker's row says it is offline (the sweeper
// declared it lost); it must not take tasks until it registers again.
var errOffline = errors.New("worker is marked offline")

// claim takes a delivered task for worker if it is still waiting, accept
// approves it, and no earlier unfinished task holds a conflicting resource.
// It returns nil, nil when the task is not to be run now (gone, taken,
// finished, not accepted or blocked).
func claim(ctx context.Context, g *gorm.DB, id, worker string, accept func(*Task) bool) (*Task, error) {
	var claimed *Task
	err := g.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var t Task
		err := tx.Take(&t, "id = ?", id).Error
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read task %s: %w", id, core.Translate(err))
		}
		if t.State != Waiting || !accept(&t) {
			return nil
		}
		var online []bool
		if err := tx.Raw(`SELECT online FROM workers WHERE name = ?`, worker).Scan(&online).Error; err != nil {
			return fmt.Errorf("read worker %s: %w", worker, core.Translate(err))
		}
		if len(online) == 0 || !online[0] {
			return errOffline
		}
		if err := lockResources(ctx, tx, t.Resources()); err != nil {
			return err
		}
		blocked, err := isBlocked(ctx, tx, id)
		if err != nil || blocked {
			return err
		}
		at := now()
		res := tx.Exec(`UPDATE tasks SET state = 'running', worker = ?, started_at = ?, updated_at = ?,
			finished_at = NULL, error = NULL, progress_reports = '[]', attempts = attempts + 1
			WHERE id = ? AND state = 'waiting'
			AND EXISTS (SELECT 1 FROM workers w WHERE w.name = ? AND w.online)`,
			worker, at, at, id, worker)
		if res.Error != nil {
			return fmt.Errorf("claim task %s: %w", id, core.Translate(res.Error))
		}
		if res.RowsAffected == 0 {
			return nil
		}
		t.State, t.Worker, t.StartedAt, t.UpdatedAt = Running, worker, &at, at
		t.FinishedAt, t.Error, t.ProgressReports = nil, nil, ProgressReports{}
		t.Attempts++
		claimed = &t
		return nil
	})
	return claimed, err
}

// outcome is how a run ended, as recorded on the row. Progress and Created
// are written only when Progress is not nil.
type outcome struct {
	State    State
	Error    *TaskError
	Result   JSON
	Progress ProgressReports
	Created  Strings
}

// finish records the end of a task run by worker and releases its
// resources. It reports false when the row was no longer this worker's
// running (or canceling) task, and then changes nothing.
func finish(ctx context.Context, g *gorm.DB, id, worker string, o outcome) (bool, error) {
	var done bool
	err := g.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		at := now()
		set := `state = ?, error = ?, result = ?, finished_at = ?, updated_at = ?`
		args := []any{o.State, o.Error, o.Result, at, at}
		if o.Progress != nil {
			set += `, progress_reports = ?, created_resources = ?`
			args = append(args, o.Progress, o.Created)
		}
		args = append(args, id, worker)
		res := tx.Exec(`UPDATE tasks SET `+set+` WHERE id = ? AND worker = ? AND state IN ('running', 'canceling')`, args...)
		if res.Error != nil {
			return fmt.Errorf("finish task %s: %w", id, core.Translate(res.Error))
		}
		if res.RowsAffected == 0 {
			return nil
		}
		done = true
		return release(ctx, tx, id)
	})
	return done, err
}

// release marks a task's resource rows inactive: it no longer blocks anyone.
func release(ctx context.Context, tx *gorm.DB, id string) error {
	if err := tx.WithContext(ctx).Exec(`UPDATE task_resources SET active = FALSE WHERE task_id = ?`, id).Error; err != nil {
		return fmt.Errorf("release resources of task %s: %w", id, core.Translate(err))
	}
	return nil
}

// requeue puts a running task of worker back to waiting, for an idempotent
// task whose run was interrupted. It keeps its sequence number, so it keeps
// its place before later tasks on its resources. It reports false when the
// row was no longer this worker's running task.
func requeue(ctx context.Context, g *gorm.DB, id, worker string) (bool, error) {
	res := g.WithContext(ctx).Exec(`UPDATE tasks SET state = 'waiting', worker = '', started_at = NULL, updated_at = ?
		WHERE id = ? AND worker = ? AND state = 'running'`, now(), id, worker)
	if res.Error != nil {
		return false, fmt.Errorf("requeue task %s: %w", id, core.Translate(res.Error))
	}
	return res.RowsAffected == 1, nil
}

// saveProgress writes the progress of a running task.
func saveProgress(ctx context.Context, g *gorm.DB, id, worker string, progress ProgressReports, created Strings) error {
	err := g.WithContext(ctx).Exec(`UPDATE tasks SET progress_reports = ?, created_resources = ?, updated_at = ?
		WHERE id = ? AND worker = ? AND state IN ('running', 'canceling')`,
		progress, created, now(), id, worker).Error
	if err != nil {
		return fmt.Errorf("save progress of task %s: %w", id, core.Translate(err))
	}
	return nil
}

// orphan is a running or canceling task whose worker is gone.
type orphan struct {
	ID         string
	Name       string
	State      State
	Worker     string
	Idempotent bool
	Attempts   int
}

// abandoned counts what became of orphaned tasks.
type abandoned struct {
	Failed, Requeued, Canceled int
}

// abandon ends the running and canceling tasks of workers that are gone
// (named in workers, or, with no names, of every worker not online): a
// canceling task becomes canceled; an idempotent one goes back to waiting
// while it has attempts left; any other fails with "worker lost: <name>
// <why>". Run it in a transaction; wake ready tasks after the commit.
func abandon(ctx context.Context, tx *gorm.DB, workers []string, why string, maxAttempts int) (abandoned, error) {
	var a abandoned
	q := `SELECT id, name, state, worker, idempotent, attempts FROM tasks t WHERE state IN ('running', 'canceling')`
	var args []any
	if len(workers) > 0 {
		q += ` AND worker IN ?`
		args = append(args, workers)
	} else {
		q += ` AND NOT EXISTS (SELECT 1 FROM workers w WHERE w.name = t.worker AND w.online)`
	}
	var orphans []orphan
	if err := tx.WithContext(ctx).Raw(q, args...).Scan(&orphans).Error; err != nil {
		return a, fmt.Errorf("list orphaned tasks: %w", core.Translate(err))
	}
	for _, o := range orphans {
		lost := fmt.Sprintf("worker lost: %s %s", o.Worker, why)
		switch {
		case o.State == Canceling:
			ok, err := finish(ctx, tx, o.ID, o.Worker, outcome{State: Canceled})
			if err != nil {
				return a, err
			}
			if ok {
				a.Canceled++
			}
		case o.Idempotent && o.Attempts < maxAttempts:
			ok, err := requeue(ctx, tx, o.ID, o.Worker)
			if err != nil {
				return a, err
			}
			if ok {
				a.Requeued++
			}
		default:
			if o.Idempotent {
				lost += fmt.Sprintf(" (gave up after %d attempts)", o.Attempts)
			}
			ok, err := finish(ctx, tx, o.ID, o.Worker, outcome{State: Failed, Error: &TaskError{Description: lost}})
			if err != nil {
				return a, err
			}
			if ok {
				a.Failed++
			}
		}
	}
	return a, nil
}
