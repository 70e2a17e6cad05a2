package app

import (
	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/plugins/container"
)

// registerSync registers the sync tasks (container.sync and
// container.sync_registry), which serve needs to dispatch them and workers
// to run them.
func (a *App) registerSync() error {
	return a.Tasks.RegisterProvider(a.Container.SyncTasks())
}

// syncRoutes are the routes of remote registries, remote images and syncs
// (/api/v1/registries/, /api/v1/remote-images/), dispatching through ts.
func (a *App) syncRoutes(ts api.TaskService) api.Routes {
	return container.RegistryRoutes{Plugin: a.Container, Tasks: ts}
}
