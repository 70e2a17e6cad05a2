package app

import (
	"path/filepath"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/plugins/container/build"
	"github.com/berth-dev/berth/plugins/container/builds"
)

// registerBuilds registers the image build task (container.build), which
// serve needs to dispatch it and workers to run it. Builds push to Berth's
// own registry at the configured build registry, reached over plain HTTP
// when it is the listen address or loopback.
func (a *App) registerBuilds() error {
	registry, insecure := a.Config.BuildPushRegistry()
	hosts := append([]string(nil), a.Config.BuildInsecureRegistries...)
	if insecure {
		hosts = append(hosts, registry)
	}
	runner, err := build.NewRunner(build.WithInsecureRegistries(hosts...), build.WithLogger(a.Log))
	if err != nil {
		return err
	}
	workDir := filepath.Join(a.Config.DataDir, "builds")
	// Builds of a worker that died on this data directory left their work
	// directories, and perhaps RUN steps still running.
	if _, err := build.CleanStale(workDir, a.Log); err != nil {
		a.Log.Error("cannot clean up after builds whose worker died", "err", err)
	}
	h, err := builds.NewHandler(builds.HandlerConfig{
		Store: a.Store, Runner: runner, Users: a.Auth, Registry: registry,
		WorkDir: workDir, Log: a.Log,
	})
	if err != nil {
		return err
	}
	return a.Tasks.RegisterProvider(h)
}

// buildRoutes are the /api/v1/builds/ routes, dispatching through ts.
func (a *App) buildRoutes(ts api.TaskService) (api.Routes, error) {
	registry, _ := a.Config.BuildPushRegistry()
	svc, err := builds.NewService(builds.ServiceConfig{
		Store: a.Store, Images: a.Container, Authorizer: a.Auth.Authorizer(), Tasks: ts,
		Registry: registry, PublicURL: a.Config.PublicURL, Log: a.Log,
	})
	if err != nil {
		return nil, err
	}
	return builds.Routes{Service: svc}, nil
}
