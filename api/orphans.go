package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/berth-dev/berth/core"
	"github.com/berth-dev/berth/tasks"
)

// Orphan cleanup and the storage summary:
//
//	POST /pulp/api/v3/orphans/cleanup/   {"orphan_protection_time": minutes} → 202 {"task": href}
//	GET  /pulp/api/v3/storage/           what blob storage holds and what is unreferenced

// TaskOrphanCleanup removes orphan content, artifacts and files; args
// OrphanCleanupArgs; holds OrphansResource exclusively.
const TaskOrphanCleanup = "core.orphan_cleanup"

// OrphansResource is the task-system resource every orphan cleanup holds
// exclusively, so that cleanups run one at a time.
const OrphansResource = "orphans"

// OrphanCleanupArgs are the arguments of TaskOrphanCleanup.
type OrphanCleanupArgs struct {
	// ProtectionMinutes keeps orphans younger than this; nil means the
	// worker's configured default.
	ProtectionMinutes *int64 `json:"orphan_protection_time"`
}

// orphanCleanupRequest is the body of POST orphans/cleanup/.
type orphanCleanupRequest struct {
	ProtectionMinutes *int64 `json:"orphan_protection_time" doc:"Minutes an orphan must have been unused before it is removed (0 removes every orphan at once); null or absent uses the server's default (BERTH_ORPHAN_PROTECTION_TIME)."`
}

// OrphanTasks is the tasks.HandlerProvider of orphan cleanup.
type OrphanTasks struct {
	Cleaner *core.OrphanCleaner
	// DefaultProtection applies when a cleanup gives no protection time.
	DefaultProtection time.Duration
	// Log receives the handler's log lines (default slog.Default()).
	Log *slog.Logger
}

// TaskHandlers maps TaskOrphanCleanup to its handler.
func (o OrphanTasks) TaskHandlers() map[string]tasks.Handler {
	return map[string]tasks.Handler{TaskOrphanCleanup: o.cleanup}
}

// cleanupStages are the progress lines of a cleanup, in order.
var cleanupStages = []struct{ stage, code, message string }{
	{"content", "clean-up.content", "Clean up orphan content"},
	{"artifacts", "clean-up.artifacts", "Clean up orphan artifacts"},
	{"files", "clean-up.files", "Remove files from blob storage"},
}

func (o OrphanTasks) cleanup(ctx context.Context, t *tasks.Task, r *tasks.Reporter) (any, error) {
	if o.Cleaner == nil {
		return nil, errors.New("orphan cleanup: no cleaner configured")
	}
	var a OrphanCleanupArgs
	if err := t.DecodeArgs(&a); err != nil {
		return nil, err
	}
	protection := o.DefaultProtection
	if a.ProtectionMinutes != nil {
		protection = time.Duration(*a.ProtectionMinutes) * time.Minute
	}
	lines := map[string]*tasks.Progress{}
	for _, s := range cleanupStages {
		lines[s.stage] = r.Progress(s.code, s.message)
	}
	current := ""
	rep, err := o.Cleaner.Cleanup(ctx, core.CleanupOptions{
		Protection: protection,
		Progress: func(stage string, done, total int64) {
			p := lines[stage]
			if p == nil {
				return
			}
			if stage != current {
				if prev := lines[current]; prev != nil {
					prev.Done()
				}
				current = stage
			}
			if total >= 0 {
				p.SetTotal(total)
			}
			p.SetDone(done)
		},
	})
	if err != nil {
		if p := lines[current]; p != nil {
			p.Fail()
		}
		return rep, fmt.Errorf("orphan cleanup: %w", err)
	}
	for _, s := range cleanupStages {
		lines[s.stage].Done()
	}
	return rep, nil
}

// orphanRoutes adds the orphan cleanup and storage summary routes.
func (s *Server) orphanRoutes(r *Router) {
	r.Add(Operation{
		Method: http.MethodPost, Path: Prefix + "orphans/cleanup/", ID: "orphans_cleanup_cleanup", Tags: []string{"Orphans"},
		Summary: "Clean up orphans",
		Description: "Dispatches a core.orphan_cleanup task: content in no repository version (and not needed by a plugin, such as the blobs of a push in progress), " +
			"artifacts no content references and their files, older than orphan_protection_time, are removed from the database and from blob storage; " +
			"then files no artifact points at. The task's result counts what went and the bytes reclaimed.",
		Request: orphanCleanupRequest{}, Response: TaskAccepted{}, Status: http.StatusAccepted,
	}, func(c echo.Context) error {
		var body orphanCleanupRequest
		if _, err := Bind(c, &body); err != nil {
			return err
		}
		if body.ProtectionMinutes != nil && *body.ProtectionMinutes < 0 {
			return core.Invalid("orphan_protection_time", "Ensure this value is greater than or equal to 0.")
		}
		if body.ProtectionMinutes != nil && *body.ProtectionMinutes > 100*365*24*60 {
			return core.Invalid("orphan_protection_time", "Ensure this value is at most a century of minutes.")
		}
		t, err := s.dispatch(c.Request().Context(), OrphanCleanupSpec(body.ProtectionMinutes))
		if err != nil {
			return err
		}
		return Accepted(c, t)
	})
	r.Add(Operation{
		Method: http.MethodGet, Path: Prefix + "storage/", ID: "storage_read", Tags: []string{"Orphans"},
		Summary:  "What blob storage holds, and what no repository version references",
		Response: core.StorageSummary{},
	}, func(c echo.Context) error {
		sum, err := s.store.Summary(c.Request().Context())
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, sum)
	})
}

// OrphanCleanupSpec is the task spec of an orphan cleanup; nil protection
// is the worker's default.
func OrphanCleanupSpec(protectionMinutes *int64) tasks.Spec {
	return tasks.Spec{
		Name:      TaskOrphanCleanup,
		Args:      OrphanCleanupArgs{ProtectionMinutes: protectionMinutes},
		Exclusive: []string{OrphansResource},
	}
}
