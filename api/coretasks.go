package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/berth-dev/berth/core"
	"github.com/berth-dev/berth/tasks"
)

// Names of the core's task handlers.
const (
	// TaskDeleteRepository deletes a repository with its versions; args
	// DeleteRepositoryArgs; holds RepositoryResource exclusively.
	TaskDeleteRepository = "core.delete_repository"
	// TaskDeleteRepositoryVersion deletes one version; args
	// DeleteRepositoryVersionArgs; holds RepositoryResource exclusively.
	TaskDeleteRepositoryVersion = "core.delete_repository_version"
)

// DeleteRepositoryArgs are the arguments of TaskDeleteRepository.
type DeleteRepositoryArgs struct {
	RepositoryID string `json:"repository_id"`
}

// DeleteRepositoryVersionArgs are the arguments of
// TaskDeleteRepositoryVersion.
type DeleteRepositoryVersionArgs struct {
	RepositoryID string `json:"repository_id"`
	Number       int    `json:"number"`
}

// CoreTaskHandlers returns the handlers of the core's tasks, for the task
// registry of every process that runs workers (embedded or `berth worker`)
// and of every process that dispatches (the dispatcher refuses unknown
// names):
//
//	for name, h := range api.CoreTaskHandlers(store) {
//		if err := reg.Register(name, h); err != nil { … }
//	}
//
// or reg.RegisterProvider(api.CoreTasks{Store: store}).
func CoreTaskHandlers(s *core.Store) map[string]tasks.Handler {
	return CoreTasks{Store: s}.TaskHandlers()
}

// CoreTasks is the core's tasks.HandlerProvider.
type CoreTasks struct {
	Store *core.Store
	// Plugins, when set, lets the plugins that implement
	// core.RepositoryHook delete what belongs to a repository alone (its
	// distribution, its remote) with it.
	Plugins *core.Registry
	// Log receives the handlers' log lines (default slog.Default()).
	Log *slog.Logger
}

func (ct CoreTasks) log() *slog.Logger {
	if ct.Log != nil {
		return ct.Log
	}
	return slog.Default()
}

// TaskHandlers maps the core's task names to their handlers.
func (ct CoreTasks) TaskHandlers() map[string]tasks.Handler {
	return map[string]tasks.Handler{
		TaskDeleteRepository:        ct.deleteRepository,
		TaskDeleteRepositoryVersion: ct.deleteRepositoryVersion,
	}
}

// deleteRepository removes a repository. One already gone is not a
// failure: the client wanted it gone (a second delete dispatched before
// the first ran ends the same way).
func (ct CoreTasks) deleteRepository(ctx context.Context, t *tasks.Task, r *tasks.Reporter) (any, error) {
	var a DeleteRepositoryArgs
	if err := t.DecodeArgs(&a); err != nil {
		return nil, err
	}
	if a.RepositoryID == "" {
		return nil, fmt.Errorf("delete repository: no repository_id in the task's arguments")
	}
	p := r.Progress("delete.repository", "Deleting repository")
	p.SetTotal(1)
	var hooks []core.RepositoryHook
	if ct.Plugins != nil {
		hooks = core.Implementing[core.RepositoryHook](ct.Plugins)
	}
	err := ct.Store.DeleteRepositoryWith(ctx, a.RepositoryID, hooks...)
	if errors.Is(err, core.ErrNotFound) {
		ct.log().InfoContext(ctx, "repository already deleted", "task", t.ID, "repository", a.RepositoryID)
		err = nil
	}
	if err != nil {
		p.Fail()
		return nil, fmt.Errorf("delete repository %s: %w", a.RepositoryID, err)
	}
	p.Increment(1).Done()
	return nil, nil
}

// deleteRepositoryVersion removes one version of a repository; its changes
// fold into the next one. A version already gone is not a failure.
func (ct CoreTasks) deleteRepositoryVersion(ctx context.Context, t *tasks.Task, r *tasks.Reporter) (any, error) {
	var a DeleteRepositoryVersionArgs
	if err := t.DecodeArgs(&a); err != nil {
		return nil, err
	}
	if a.RepositoryID == "" {
		return nil, fmt.Errorf("delete repository version: no repository_id in the task's arguments")
	}
	p := r.Progress("delete.repository_version", fmt.Sprintf("Deleting repository version %d", a.Number))
	p.SetTotal(1)
	err := ct.Store.DeleteVersion(ctx, a.RepositoryID, a.Number)
	if errors.Is(err, core.ErrNotFound) {
		ct.log().InfoContext(ctx, "repository version already deleted", "task", t.ID, "repository", a.RepositoryID, "number", a.Number)
		err = nil
	}
	if err != nil {
		p.Fail()
		return nil, fmt.Errorf("delete version %d of repository %s: %w", a.Number, a.RepositoryID, err)
	}
	p.Increment(1).Done()
	return nil, nil
}
