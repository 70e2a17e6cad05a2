package app

import (
	"context"
	"time"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/core"
	"github.com/berth-dev/berth/plugins/container"
)

// Deletions that free storage: the orphan cleanup and container deletion
// tasks, their routes, and the periodic jobs that dispatch cleanups and
// retention runs.

// registerMaintenance adds the orphan cleanup and container deletion
// task handlers to the registry.
func (a *App) registerMaintenance() error {
	cleaner, err := core.NewOrphanCleaner(a.Store, a.Blobs, a.Plugins,
		core.WithCleanerLogger(a.Log), core.WithFilePause(a.Config.TestOrphanPause))
	if err != nil {
		return err
	}
	if err := a.Tasks.RegisterProvider(api.OrphanTasks{Cleaner: cleaner, DefaultProtection: a.Config.OrphanProtection, Log: a.Log}); err != nil {
		return err
	}
	return a.Tasks.RegisterProvider(a.Container.MaintenanceTasks())
}

// maintenanceRoutes are the REST routes of container deletions, content
// lists and storage accounting.
func (a *App) maintenanceRoutes(d container.Dispatcher) api.Routes {
	return a.Container.MaintenanceRoutes(d)
}

// schedulePoll is how often serve looks whether a periodic job is due.
const schedulePoll = time.Minute

// runSchedules dispatches the periodic orphan cleanup and retention runs
// until ctx ends. Every serve replica runs it; the database decides which
// one dispatches each run (core.Store.ClaimSchedule).
func (a *App) runSchedules(ctx context.Context, d container.Dispatcher) {
	if a.Config.OrphanCleanupInterval <= 0 && a.Config.RetentionInterval <= 0 {
		return
	}
	t := time.NewTicker(schedulePoll)
	defer t.Stop()
	for {
		a.dispatchDue(ctx, d)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// dispatchDue dispatches the periodic jobs that are due.
func (a *App) dispatchDue(ctx context.Context, d container.Dispatcher) {
	if every := a.Config.OrphanCleanupInterval; every > 0 {
		if due, err := a.Store.ClaimSchedule(ctx, api.TaskOrphanCleanup, every); err != nil {
			a.Log.Warn("periodic orphan cleanup: schedule", "err", err)
		} else if due {
			if t, err := d.Dispatch(ctx, api.OrphanCleanupSpec(nil)); err != nil {
				a.Log.Warn("periodic orphan cleanup: dispatch", "err", err)
			} else {
				a.Log.Info("periodic orphan cleanup dispatched", "task", t.ID)
			}
		}
	}
	if every := a.Config.RetentionInterval; every > 0 {
		if due, err := a.Store.ClaimSchedule(ctx, container.TaskRetention, every); err != nil {
			a.Log.Warn("periodic retention: schedule", "err", err)
		} else if due {
			n, err := a.Container.RetentionDue(ctx, d)
			if err != nil {
				a.Log.Warn("periodic retention: dispatch", "dispatched", n, "err", err)
			} else {
				a.Log.Info("periodic retention dispatched", "repositories", n)
			}
		}
	}
}
