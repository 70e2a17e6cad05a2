package app

import (
	"context"
	"errors"
	"strings"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/core"
	"github.com/berth-dev/berth/plugins/container"
	"github.com/berth-dev/berth/plugins/container/builds"
	"github.com/berth-dev/berth/plugins/container/product"
)

// registerProduct registers the product API's tasks (tag changes and
// deletions of execution environments), which serve needs to dispatch
// them and workers to run them.
func (a *App) registerProduct() error {
	return a.Tasks.RegisterProvider(product.Tasks{Container: a.Container})
}

// productRoutes are the /api/v1/ execution-environment, registry and
// catalog routes, dispatching through ts. buildRoutes are the builds API's
// routes: the registry API and the catalog show the builds' progress.
func (a *App) productRoutes(ts api.TaskService, buildRoutes api.Routes) (api.Routes, error) {
	d := product.Deps{
		Store: a.Store, Container: a.Container, Auth: a.Auth, Tasks: ts,
		PublicURL: a.Config.PublicURL, Controllers: a.Config.ControllerURLs, Log: a.Log,
	}
	if br, ok := buildRoutes.(builds.Routes); ok && br.Service != nil {
		d.Builds = buildStatus{br.Service}
	}
	d.Syncs = syncStatus{a.Container}
	return product.New(d)
}

// syncStatus shows the syncs of mirrored images to the product API.
type syncStatus struct{ p *container.Plugin }

var _ product.Syncs = syncStatus{}

func (s syncStatus) LastSync(ctx context.Context, repositoryID string) (*product.SyncInfo, error) {
	st, err := s.p.LastSyncOf(ctx, repositoryID)
	if err != nil || st == nil {
		return nil, err
	}
	info := &product.SyncInfo{State: st.State, Task: st.Task, StartedAt: st.StartedAt, FinishedAt: st.FinishedAt}
	if st.Error != nil {
		info.Error = *st.Error
	}
	return info, nil
}

func (s syncStatus) UpstreamName(ctx context.Context, remoteID string) (string, error) {
	return s.p.UpstreamNameOf(ctx, remoteID)
}

// buildStatus shows the builds service's builds to the product API.
type buildStatus struct{ svc *builds.Service }

var _ product.Builds = buildStatus{}

// Build finds a build by ID or href, as the caller may see it.
func (b buildStatus) Build(ctx context.Context, ref string) (*product.BuildInfo, error) {
	id := strings.TrimSuffix(ref, "/")
	if i := strings.LastIndexByte(id, '/'); i >= 0 {
		id = id[i+1:]
	}
	if id == "" {
		return nil, core.NotFound("build", ref)
	}
	bd, err := b.svc.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	return buildInfo(bd), nil
}

// LatestBuild is the newest build pushing to name:tag.
func (b buildStatus) LatestBuild(ctx context.Context, name, tag string) (*product.BuildInfo, bool, error) {
	st, err := b.svc.ImageStatus(ctx, name+":"+tag)
	if errors.Is(err, core.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil || st.Build == nil {
		return nil, false, err
	}
	info, err := b.Build(ctx, *st.Build)
	if errors.Is(err, core.ErrNotFound) {
		return nil, false, nil
	}
	return info, err == nil, err
}

func buildInfo(bd *builds.Build) *product.BuildInfo {
	info := &product.BuildInfo{ID: bd.ID, Href: builds.Href(bd.ID), Image: bd.Target + ":" + bd.Tag}
	switch bd.Phase {
	case builds.PhaseSucceeded:
		info.Status = product.StatusReady
	case builds.PhaseFailed, builds.PhaseCancelled:
		info.Status = product.StatusFailed
	default:
		info.Status = product.StatusPending
	}
	if bd.TaskID != nil {
		info.Task = api.TaskHref(*bd.TaskID)
	}
	return info
}
