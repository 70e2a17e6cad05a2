package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/auth"
	"github.com/berth-dev/berth/internal/testplugin"
	"github.com/berth-dev/berth/plugins/container"
	"github.com/berth-dev/berth/tasks"
	"github.com/berth-dev/berth/tasks/asynqq"
)

// taskBackend is how this process dispatches tasks, and what runs in the
// background for them (embedded workers, or a sweeper in Redis mode).
type taskBackend struct {
	dispatcher *tasks.Dispatcher
	enqueuer   tasks.Enqueuer
	run        []func(context.Context) error
	close      func() error
	redisPing  func(context.Context) error
}

func (a *App) openTasks(ctx context.Context) (*taskBackend, error) {
	if a.Config.Embedded() {
		emb, err := tasks.NewEmbedded(a.DB, a.Tasks, 1, append(a.taskOptions(), tasks.WithName("embedded"))...)
		if err != nil {
			return nil, err
		}
		return &taskBackend{dispatcher: emb.Dispatcher(), enqueuer: emb.Queue(), run: []func(context.Context) error{emb.Run}, close: func() error { return nil }}, nil
	}
	q, err := asynqq.Open(ctx, a.Config.RedisURL, asynqq.WithLogger(a.Log))
	if err != nil {
		return nil, fmt.Errorf("redis: %w", err)
	}
	d, err := tasks.NewDispatcher(a.DB, q, tasks.WithNames(a.Tasks), tasks.WithLogger(a.Log))
	if err != nil {
		q.Close()
		return nil, err
	}
	// serve sweeps too, so that tasks of lost workers end even when every
	// worker is gone; the sweeper runs one at a time across processes.
	sw, err := tasks.NewSweeper(a.DB, q, a.taskOptions()...)
	if err != nil {
		q.Close()
		return nil, err
	}
	opt, err := redis.ParseURL(a.Config.RedisURL)
	if err != nil {
		q.Close()
		return nil, fmt.Errorf("redis URL: %w", err)
	}
	rc := redis.NewClient(opt)
	return &taskBackend{
		dispatcher: d, enqueuer: q, run: []func(context.Context) error{sw.Run},
		close:     func() error { rc.Close(); return q.Close() },
		redisPing: func(ctx context.Context) error { return rc.Ping(ctx).Err() },
	}, nil
}

// Serve runs the REST API and the content app until ctx ends, then shuts
// down gracefully.
func (a *App) Serve(ctx context.Context) error {
	first, err := a.Auth.EnsureFirstAdmin(ctx, a.Config.AdminPassword)
	if err != nil {
		return fmt.Errorf("first admin: %w", err)
	}
	if first.Created && first.Password != "" {
		// Printed once, to the terminal, never to the log.
		fmt.Fprintf(os.Stdout, "\n  Created the first admin user %q with password: %s\n  (shown once; set BERTH_ADMIN_PASSWORD to choose it)\n\n", first.Username, first.Password)
	}
	tb, err := a.openTasks(ctx)
	if err != nil {
		return err
	}
	defer tb.close()
	ts, err := api.NewTaskService(a.DB, tb.dispatcher, tb.enqueuer)
	if err != nil {
		return err
	}
	var routes []api.Routes
	if a.Config.TestPlugin {
		routes = append(routes, testplugin.Routes{Dispatcher: tb.dispatcher})
	}
	br, err := a.buildRoutes(ts)
	if err != nil {
		return err
	}
	routes = append(routes, br, a.syncRoutes(ts))
	pr, err := a.productRoutes(ts, br)
	if err != nil {
		return err
	}
	routes = append(routes, pr)
	routes = append(routes, a.maintenanceRoutes(ts))
	checks := api.Checks{Redis: tb.redisPing, Storage: api.StorageProbe(a.Config.StorageDir())}
	e, _, err := a.Handler(ts, checks, routes...)
	if err != nil {
		return err
	}

	ln, err := net.Listen("tcp", a.Config.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", a.Config.Listen, err)
	}
	hs := &http.Server{
		Handler:           e,
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          nil,
	}
	a.Log.Info("berth serving", append([]any{"addr", ln.Addr().String(), "version", a.Version}, a.Config.Sanitize()...)...)

	g, gctx := errgroup.WithContext(ctx)
	for _, run := range tb.run {
		g.Go(func() error { return run(gctx) })
	}
	g.Go(func() error { a.expireUploads(gctx); return nil })
	g.Go(func() error { a.runSchedules(gctx, tb.dispatcher); return nil })
	g.Go(func() error {
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		a.Log.Info("shutting down")
		return hs.Shutdown(sctx)
	})
	err = g.Wait()
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
}

// Handler builds the HTTP handler of berth serve: the REST API, every
// route of it documented in the OpenAPI document it serves (the core's,
// the plugins', auth's users, groups, tokens and namespace roles, and
// extra), the token endpoint and the /v2/ content app. It returns the API
// server too, whose Doc is that document.
func (a *App) Handler(ts api.TaskService, checks api.Checks, extra ...api.Routes) (*echo.Echo, *api.Server, error) {
	routes := append([]api.Routes{a.Auth, a.namespaceRoles()}, extra...)
	srv, err := api.New(api.Deps{
		Store: a.Store, Registry: a.Plugins, Tasks: ts, Version: a.Version, Log: a.Log,
		Checks:     checks,
		Middleware: []echo.MiddlewareFunc{a.Auth.Authenticate},
		WriteGuard: coreWriteGuard,
		Routes:     routes,
	})
	if err != nil {
		return nil, nil, err
	}
	e := api.NewEcho(a.Log)
	// The client address is the connection's: X-Forwarded-For is not trusted,
	// so failed-login limits cannot be dodged by a forged header.
	e.IPExtractor = echo.ExtractIPDirect()
	if err := srv.Register(e); err != nil {
		return nil, nil, err
	}
	e.GET("/token", a.Auth.TokenHandler)
	e.POST("/token", a.Auth.TokenHandler)
	a.Container.ContentRoutes(e)
	return e, srv, nil
}

// namespaceRoles are the role routes of container namespaces: Pulp's
// add_role/, remove_role/, list_roles/, my_permissions/ and Galaxy's
// owners/, on namespaces the caller may see.
func (a *App) namespaceRoles() api.Routes {
	return auth.RoleRoutes{
		Service: a.Auth, Base: container.NamespacesPath + ":id/",
		OperationPrefix: "pulp_container_namespaces", Tags: []string{"Container: Namespaces"},
		Namespace: func(c echo.Context) (auth.Namespace, error) {
			st, err := a.Container.VisibleNamespace(c.Request().Context(), c.Param("id"))
			return auth.Namespace{Name: st.Name, Private: st.Private}, err
		},
	}
}

// coreWriteGuard lets only superusers change the core's generic objects
// (repositories and their versions, remotes, distributions, tasks) through
// the REST API, until they have permissions of their own. Creating and
// changing container distributions is the exception: the container plugin
// lets the namespace's owners do it (to make an image private, say).
func coreWriteGuard(next echo.HandlerFunc) echo.HandlerFunc {
	superuser := auth.RequireSuperuser(next)
	containerDistributions := api.TypedListHref(api.Distributions, container.TypeDistribution)
	return func(c echo.Context) error {
		if c.Request().Method != http.MethodDelete && strings.HasPrefix(c.Path(), containerDistributions) {
			return next(c)
		}
		return superuser(c)
	}
}

// Work runs a task worker (Redis mode) until ctx ends.
func (a *App) Work(ctx context.Context) error {
	if a.Config.Embedded() {
		return errors.New("berth worker needs BERTH_REDIS_URL: without Redis, tasks run inside 'berth serve'")
	}
	q, err := asynqq.Open(ctx, a.Config.RedisURL, asynqq.WithLogger(a.Log))
	if err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	defer q.Close()
	opts := a.taskOptions()
	if a.Config.WorkerName != "" {
		opts = append(opts, tasks.WithName(a.Config.WorkerName))
	}
	w, err := tasks.NewWorker(a.DB, q, a.Tasks, opts...)
	if err != nil {
		return err
	}
	a.Log.Info("berth worker started", append([]any{"name", w.Name(), "version", a.Version}, a.Config.Sanitize()...)...)
	err = w.Run(ctx)
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
}

// expireUploads removes abandoned blob upload sessions (and their data)
// older than the upload expiry, periodically, until ctx ends. Every serve
// replica may run it: removing a session twice is harmless.
func (a *App) expireUploads(ctx context.Context) {
	every := min(max(a.Config.UploadExpiry/4, time.Minute), time.Hour)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n, err := a.Container.CleanupUploads(ctx, a.Config.UploadExpiry)
		switch {
		case err != nil && ctx.Err() == nil:
			a.Log.Warn("expiring abandoned uploads", "err", err)
		case n > 0:
			a.Log.Info("expired abandoned uploads", "removed", n)
		}
	}
}
