package tasks

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"gorm.io/gorm"

	"github.com/berth-dev/berth/core"
	"github.com/berth-dev/berth/core/db"
)

// sweepLockNamespace keys the PostgreSQL advisory lock that lets one sweep
// run at a time (apart from the resource locks' namespace).
const sweepLockNamespace = lockNamespace + 1

// Sweeper repairs what crashes leave behind, so no task stays stuck:
//
//   - workers whose heartbeat is older than the lost-after timeout are marked
//     offline, and their running tasks fail with "worker lost: <name>
//     stopped heartbeating" — or, for idempotent tasks with attempts left,
//     go back to waiting; their canceling tasks become canceled;
//   - every ready waiting task is woken again, in case its wake-up was lost
//     (duplicates are harmless: claiming is a compare-and-set);
//   - rows of workers offline for longer than the forget-after time are
//     deleted.
//
// Every worker sweeps periodically, and so may `berth serve`; on PostgreSQL
// an advisory lock lets one sweep run at a time, on SQLite the write
// transaction serializes them, and every step is idempotent anyway.
type Sweeper struct {
	db    *gorm.DB
	queue Enqueuer
	cfg   *config
	log   *slog.Logger
}

// SweepResult tells what one sweep did.
type SweepResult struct {
	// Skipped: another sweep was running (PostgreSQL only).
	Skipped bool
	// LostWorkers were marked offline by this sweep.
	LostWorkers []string
	// Tasks of lost workers: failed, back to waiting, canceled.
	Failed, Requeued, Canceled int
	// Woken counts the wake-ups sent for ready waiting tasks.
	Woken int
	// Forgotten counts the deleted rows of long-offline workers.
	Forgotten int64
}

// NewSweeper returns a sweeper for the tasks of g, waking workers through
// q. It uses the options WithLostAfter, WithSweepInterval (for Run),
// WithForgetAfter, WithMaxAttempts and WithLogger.
func NewSweeper(g *gorm.DB, q Enqueuer, opts ...Option) (*Sweeper, error) {
	if g == nil || q == nil {
		return nil, fmt.Errorf("new sweeper: database and queue are required")
	}
	c, err := newConfig(opts)
	if err != nil {
		return nil, fmt.Errorf("new sweeper: %w", err)
	}
	if c.sweepEvery == 0 {
		c.sweepEvery = DefaultSweepInterval
	}
	return &Sweeper{db: g, queue: q, cfg: c, log: c.log}, nil
}

// Run sweeps at once and then every sweep interval (with some jitter, so
// the workers' sweeps spread out) until ctx is done.
func (s *Sweeper) Run(ctx context.Context) error {
	s.loop(ctx)
	return nil
}

func (s *Sweeper) loop(ctx context.Context) {
	for {
		if _, err := s.Sweep(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("sweep failed", "err", err)
		}
		d := s.cfg.sweepEvery/2 + rand.N(s.cfg.sweepEvery)
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// Sweep runs one sweep.
func (s *Sweeper) Sweep(ctx context.Context) (SweepResult, error) {
	var res SweepResult
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if db.DialectOf(tx) == db.Postgres {
			var ok bool
			if err := tx.Raw(`SELECT pg_try_advisory_xact_lock(?, 0)`, sweepLockNamespace).Scan(&ok).Error; err != nil {
				return fmt.Errorf("take sweep lock: %w", core.Translate(err))
			}
			if !ok {
				res.Skipped = true
				return nil
			}
		}
		at := now()
		cutoff := at.Add(-s.cfg.lostAfter)
		if err := tx.Raw(`SELECT name FROM workers WHERE online AND last_heartbeat < ? ORDER BY name`, cutoff).
			Scan(&res.LostWorkers).Error; err != nil {
			return fmt.Errorf("list stale workers: %w", core.Translate(err))
		}
		if len(res.LostWorkers) > 0 {
			err := tx.Exec(`UPDATE workers SET online = FALSE, stopped_at = ? WHERE name IN ? AND online AND last_heartbeat < ?`,
				at, res.LostWorkers, cutoff).Error
			if err != nil {
				return fmt.Errorf("mark workers offline: %w", core.Translate(err))
			}
		}
		// Tasks of every worker that is not online: those just marked, and
		// any left behind by a worker whose row went away.
		a, err := abandon(ctx, tx, nil, "stopped heartbeating", s.cfg.maxAttempts)
		if err != nil {
			return err
		}
		res.Failed, res.Requeued, res.Canceled = a.Failed, a.Requeued, a.Canceled
		forget := tx.Exec(`DELETE FROM workers WHERE NOT online AND last_heartbeat < ?`, at.Add(-s.cfg.forgetAfter))
		if forget.Error != nil {
			return fmt.Errorf("forget old workers: %w", core.Translate(forget.Error))
		}
		res.Forgotten = forget.RowsAffected
		return nil
	})
	if err != nil {
		return res, fmt.Errorf("sweep: %w", err)
	}
	if res.Skipped {
		return res, nil
	}
	if len(res.LostWorkers) > 0 || res.Failed+res.Requeued+res.Canceled > 0 {
		s.log.Warn("sweep: lost workers", "workers", res.LostWorkers,
			"failed", res.Failed, "requeued", res.Requeued, "canceled", res.Canceled)
	}
	ready, err := readyOn(ctx, s.db, nil, 1000)
	if err != nil {
		return res, fmt.Errorf("sweep: %w", err)
	}
	res.Woken = len(ready)
	if err := enqueueAll(ctx, s.queue, ready); err != nil {
		return res, fmt.Errorf("sweep: wake ready tasks: %w", err)
	}
	return res, nil
}
