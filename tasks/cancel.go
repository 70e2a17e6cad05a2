package tasks

import (
	"context"
	"fmt"
	"log/slog"

	"gorm.io/gorm"

	"github.com/berth-dev/berth/core"
)

// Cancel asks for a task to stop and returns the task as Cancel left it:
//
//   - a waiting task is canceled at once, and the tasks it was blocking are
//     woken through q (q may be nil, or fail, which is logged: the sweeper
//     then wakes them);
//   - a running task goes to canceling; its worker notices within its poll
//     interval, cancels the handler's context (cause ErrCanceled) and ends
//     the task canceled;
//   - a canceling task is returned as is;
//   - a finished task cannot be canceled: core.ErrConflict.
//
// A missing task is core.ErrNotFound.
func Cancel(ctx context.Context, g *gorm.DB, q Enqueuer, id string) (*Task, error) {
	// Each step is a compare-and-set; losing a race (the task was claimed or
	// ended meanwhile) means reading it again.
	for range 10 {
		t, err := Get(ctx, g, id)
		if err != nil {
			return nil, err
		}
		switch t.State {
		case Canceling:
			return t, nil
		case Running:
			at := now()
			res := g.WithContext(ctx).Exec(`UPDATE tasks SET state = 'canceling', updated_at = ? WHERE id = ? AND state = 'running'`, at, id)
			if res.Error != nil {
				return nil, fmt.Errorf("cancel task %s: %w", id, core.Translate(res.Error))
			}
			if res.RowsAffected == 0 {
				continue
			}
			t.State, t.UpdatedAt = Canceling, at
			return t, nil
		case Waiting:
			var done bool
			at := now()
			err := g.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
				res := tx.Exec(`UPDATE tasks SET state = 'canceled', finished_at = ?, updated_at = ? WHERE id = ? AND state = 'waiting'`, at, at, id)
				if res.Error != nil {
					return fmt.Errorf("cancel task %s: %w", id, core.Translate(res.Error))
				}
				if done = res.RowsAffected == 1; done {
					return release(ctx, tx, id)
				}
				return nil
			})
			if err != nil {
				return nil, err
			}
			if !done {
				continue
			}
			t.State, t.UpdatedAt, t.FinishedAt = Canceled, at, &at
			if q != nil {
				if err := wakeReady(ctx, g, q, t.Resources()); err != nil {
					slog.WarnContext(ctx, "task canceled; waking the next tasks failed, the sweeper will", "task", id, "err", err)
				}
			}
			return t, nil
		default:
			return nil, core.Conflict("task %s is already %s and cannot be canceled", id, t.State)
		}
	}
	return nil, core.Conflict("task %s keeps changing state; try again", id)
}
