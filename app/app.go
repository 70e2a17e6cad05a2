// Package app assembles a Berth process from its parts: configuration,
// database, blob storage, the core store, authentication, plugins and the
// task system. `berth serve` and `berth worker` are thin over it. The
// lifecycle is explicit: Open → Serve or Work → Close.
package app

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/labstack/echo/v4"
	"gorm.io/gorm"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/auth"
	"github.com/berth-dev/berth/core"
	"github.com/berth-dev/berth/core/db"
	"github.com/berth-dev/berth/core/secret"
	"github.com/berth-dev/berth/core/storage"
	"github.com/berth-dev/berth/core/storage/fs"
	"github.com/berth-dev/berth/internal/config"
	"github.com/berth-dev/berth/internal/testplugin"
	"github.com/berth-dev/berth/migrations"
	"github.com/berth-dev/berth/plugins/container"
	"github.com/berth-dev/berth/plugins/container/product"
	"github.com/berth-dev/berth/tasks"
)

// App is one Berth process's shared parts.
type App struct {
	Config    *config.Config
	Log       *slog.Logger
	DB        *gorm.DB
	Store     *core.Store
	Blobs     storage.Driver
	Auth      *auth.Service
	Plugins   *core.Registry
	Container *container.Plugin
	Tasks     *tasks.Registry
	Version   string
}

// MigrationSets lists the schema of the core and of every plugin, in order.
func MigrationSets() []db.MigrationSet {
	return []db.MigrationSet{migrations.Core, container.Migrations(), product.Migrations()}
}

// NewLogger builds the process logger from the configuration.
func NewLogger(cfg *config.Config) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}

// Open connects to the database (migrating it when migrate is true), opens
// blob storage and builds the services both serve and worker need.
func Open(ctx context.Context, cfg *config.Config, log *slog.Logger, version string, migrate bool) (*App, error) {
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	key := cfg.SecretKey
	if key == "" {
		k, err := secret.LoadOrCreateKey(cfg.DataDir)
		if err != nil {
			return nil, fmt.Errorf("secret key: %w", err)
		}
		key = k
	}
	box, err := secret.New(key)
	if err != nil {
		return nil, fmt.Errorf("secret key: %w", err)
	}
	g, err := db.Open(ctx, cfg.DatabaseURL, cfg.DataDir)
	if err != nil {
		return nil, err
	}
	a := &App{Config: cfg, Log: log, DB: g, Version: version}
	ok := false
	defer func() {
		if !ok {
			_ = db.Close(g)
		}
	}()
	if migrate {
		if err := db.Migrate(ctx, g, MigrationSets()...); err != nil {
			return nil, err
		}
	} else if err := checkSchema(ctx, g); err != nil {
		return nil, err
	}
	blobs, err := fs.New(cfg.StorageDir())
	if err != nil {
		return nil, fmt.Errorf("blob storage: %w", err)
	}
	a.Blobs = blobs
	a.Store = core.NewStore(g, box)
	// The auth service asks the container plugin about namespaces, and the
	// plugin asks the auth service about requests: each holds the other
	// through a closure over the variable assigned below.
	var plugin *container.Plugin
	a.Auth, err = auth.New(g,
		auth.WithSecretKey(key),
		auth.WithPublicURL(cfg.PublicURL),
		auth.WithLogger(log),
		auth.WithNamespaces(auth.NamespaceResolverFunc(func(ctx context.Context, repository string) (auth.Namespace, error) {
			st, err := plugin.ResolveNamespace(ctx, repository)
			return auth.Namespace{Name: st.Name, Private: st.Private, Missing: !st.Exists}, err
		})),
	)
	if err != nil {
		return nil, err
	}
	plugin, err = container.New(a.Store, blobs,
		container.WithLogger(log),
		container.WithUploadExpiry(cfg.UploadExpiry),
		container.WithPushRetention(cfg.PushRetainVersions),
		container.WithAuthorizer(registryAuthorizer{a.Auth}),
		container.WithNamespaceDeletedHook(a.Auth.ForgetNamespace),
		container.WithNamespaceHook(func(ctx context.Context, namespace string, creator container.Identity) error {
			if creator.UserID == "" {
				return nil
			}
			return a.Auth.GrantCreator(ctx, namespace, creator.UserID)
		}),
	)
	if err != nil {
		return nil, err
	}
	a.Container = plugin
	a.Plugins = core.NewRegistry()
	if err := a.Plugins.Register(a.Container); err != nil {
		return nil, err
	}
	a.Tasks = tasks.NewRegistry()
	if err := a.Tasks.RegisterProvider(api.CoreTasks{Store: a.Store, Plugins: a.Plugins, Log: log}); err != nil {
		return nil, err
	}
	if err := a.registerBuilds(); err != nil {
		return nil, err
	}
	if err := a.registerSync(); err != nil {
		return nil, err
	}
	if err := a.registerProduct(); err != nil {
		return nil, err
	}
	if err := a.registerMaintenance(); err != nil {
		return nil, err
	}
	if cfg.TestPlugin {
		if err := testplugin.Register(a.Tasks); err != nil {
			return nil, err
		}
	}
	ok = true
	return a, nil
}

// checkSchema refuses to run a worker on a database that serve has not
// migrated to this binary's schema yet.
func checkSchema(ctx context.Context, g *gorm.DB) error {
	st, err := db.Status(ctx, g, MigrationSets()...)
	if err != nil {
		return err
	}
	for _, s := range st {
		if s.Current < s.Latest {
			return fmt.Errorf("database schema %s is at version %d, this berth needs %d: run 'berth migrate up' or start 'berth serve' first", s.Name, s.Current, s.Latest)
		}
	}
	return nil
}

// Close releases the database.
func (a *App) Close() error {
	return db.Close(a.DB)
}

// taskOptions are the worker settings shared by embedded and separate workers.
func (a *App) taskOptions() []tasks.Option {
	opts := []tasks.Option{
		tasks.WithLogger(a.Log),
		tasks.WithHeartbeat(a.Config.Heartbeat),
		tasks.WithLostAfter(a.Config.WorkerTimeout),
		tasks.WithQueue(tasks.DefaultQueue, max(1, a.Config.Workers)),
	}
	if a.Config.BuildWorkers > 0 {
		opts = append(opts, tasks.WithQueue("builds", a.Config.BuildWorkers))
	}
	return opts
}

// registryAuthorizer checks /v2/ requests with the auth service: Docker
// token-spec bearer tokens, Basic credentials or anonymous, against the
// caller's roles on the image's namespace. It answers the plugin's REST
// questions (container.Permissions) from the same Authorizer.
type registryAuthorizer struct{ svc *auth.Service }

var _ container.Permissions = registryAuthorizer{}

func (r registryAuthorizer) Authorize(c echo.Context, need container.Access) (container.Identity, error) {
	req := auth.RegistryRequest{UploadOwner: need.UploadOwner}
	switch {
	case len(need.Actions) == 0:
	case len(need.Actions) == 1 && need.Actions[0] == container.ActionCatalog:
		req.Scope = auth.CatalogScope()
	default:
		acts := make([]auth.Action, len(need.Actions))
		for i, a := range need.Actions {
			acts[i] = auth.Action(a)
		}
		req.Scope = auth.RepositoryScope(need.Repository, acts...)
	}
	p, err := r.svc.AuthorizeRegistry(c, req)
	if err != nil {
		return container.Identity{}, err
	}
	return container.Identity{UserID: p.UserID, Username: p.Username}, nil
}

// Caller is the principal the REST API's authentication put in ctx.
func (r registryAuthorizer) Caller(ctx context.Context) container.Identity {
	p := auth.PrincipalFrom(ctx)
	return container.Identity{UserID: p.UserID, Username: p.Username}
}

// Can asks the Authorizer, which decides on the user's current roles.
func (r registryAuthorizer) Can(ctx context.Context, who container.Identity, act container.Action, ns container.NamespaceStatus) (bool, error) {
	target := auth.Namespace{Name: ns.Name, Private: ns.Private, Missing: ns.Name != "" && !ns.Exists}
	return r.svc.Authorizer().Can(ctx, principalOf(who), auth.Action(act), target)
}

// Readable: whoever holds a role on a namespace may pull its private images.
func (r registryAuthorizer) Readable(ctx context.Context, who container.Identity) ([]string, bool, error) {
	return r.svc.Authorizer().Namespaces(ctx, principalOf(who), auth.ActionPull)
}

// principalOf is the principal of an identity: the Authorizer decides by
// user ID alone.
func principalOf(who container.Identity) *auth.Principal {
	if who.UserID == "" {
		return auth.Anonymous()
	}
	return &auth.Principal{UserID: who.UserID, Username: who.Username}
}
