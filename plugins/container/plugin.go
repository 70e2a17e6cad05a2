// Package container is Berth's container plugin: the content types of
// container images (blobs, manifests, tags), container namespaces, and the
// content app at /v2/ that implements the OCI Distribution Specification 1.1
// and the Docker Registry HTTP API V2 on top of the core's versioned
// repositories.
//
// The shape of the package:
//
//	routes.go       parses /v2/<name>/<resource>/<ref> and dispatches
//	blobs.go, uploads.go, manifests.go, tags.go, referrers.go, catalog.go
//	                thin handlers: parse, authorize, call a service, answer
//	push.go, delete.go, sessions.go, namespaces.go, service.go
//	                the services (the REST layer calls them too); every
//	                write is one transaction of the core, retried on conflict
//	store*.go       every SQL statement of the plugin
//	resolve.go, cache.go
//	                the reads, cached so that warm pulls cost no query
//	remotes.go, sync.go, ondemand.go, rest_registries.go, extensions.go
//	                remote registries and remote images, the container.sync
//	                task mirroring them (upstream/ is its network half), the
//	                pull-through of blobs synced on_demand, their REST API
//
// An image name maps to a distribution whose base path is the name; the
// distribution serves a container repository. Pushing a manifest creates the
// namespace, repository and distribution when the name is new (Galaxy NG's
// rules, see namespaces.go) and adds a repository version.
package container

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"strings"
	"time"

	"github.com/berth-dev/berth/core"
	"github.com/berth-dev/berth/core/db"
	"github.com/berth-dev/berth/core/storage"
)

// The plugin's name and the types it registers with the core.
const (
	PluginName = "container"

	// TypeBlob is a layer or config blob; natural key: its digest.
	TypeBlob = "container.blob"
	// TypeManifest is an image manifest or index; natural key: its digest.
	TypeManifest = "container.manifest"
	// TypeTag names a manifest; natural key: "<tag>@<manifest digest>".
	TypeTag = "container.tag"
	// TypeRepository is the repository type of container images.
	TypeRepository = "container.container"
	// TypeDistribution is the distribution type serving container images.
	TypeDistribution = "container.container"
	// TypeRemote is the remote type a container repository syncs from (one
	// per remote image; see remotes.go).
	TypeRemote = "container.container"
	// TypeRegistry is the remote type of remote registries, whose settings
	// their remote images' remotes copy.
	TypeRegistry = "container.registry"
)

// DefaultUploadExpiry is how long an upload session lives when no
// WithUploadExpiry option is given.
const DefaultUploadExpiry = 24 * time.Hour

//go:embed migrations/postgres/*.sql migrations/sqlite/*.sql
var migrationFiles embed.FS

// Migrations is the plugin's schema as a migration set for core/db.
func Migrations() db.MigrationSet {
	sub, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	return db.MigrationSet{Name: PluginName, FS: sub}
}

// Plugin is the container plugin. It is safe for concurrent use; its
// configuration is read-only once New returns.
type Plugin struct {
	store     *core.Store
	blobs     storage.Driver
	log       *slog.Logger
	auth      Authorizer
	onNS      NamespaceHook
	onNSGone  func(ctx context.Context, namespace string) error
	publicURL string
	expiry    time.Duration

	caches   *caches
	sessions *keyedLocks
	handlers map[string]map[string]handler
	remotes  *remoteClients     // upstream clients of syncs and on_demand pulls (ondemand.go)
	touched  *lru[string, bool] // blobs touched lately (orphans.go)
	retain   int                // retain_repo_versions of repositories pushes create; 0 keeps all
}

var _ core.Plugin = (*Plugin)(nil)

// New returns the container plugin working on store (migrated with
// migrations.Core and Migrations()) and blob storage blobs.
func New(store *core.Store, blobs storage.Driver, opts ...Option) (*Plugin, error) {
	if store == nil {
		return nil, errors.New("container: nil store")
	}
	if blobs == nil {
		return nil, errors.New("container: nil blob storage")
	}
	o := options{
		log:          slog.Default(),
		auth:         AllowAll{},
		uploadExpiry: DefaultUploadExpiry,
		cacheEntries: defaultCacheEntries,
		cacheBytes:   defaultCacheBytes,
		latestTTL:    defaultLatestTTL,
	}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, fmt.Errorf("container: %w", err)
		}
	}
	p := &Plugin{
		store:     store,
		blobs:     blobs,
		log:       o.log.With("plugin", PluginName),
		auth:      o.auth,
		onNS:      o.onNamespace,
		onNSGone:  o.onNSDeleted,
		publicURL: strings.TrimSuffix(o.publicURL, "/"),
		expiry:    o.uploadExpiry,
		caches:    newCaches(o.cacheEntries, o.cacheBytes, o.latestTTL),
		sessions:  newKeyedLocks(),
		remotes:   newRemoteClients(),
		touched:   newLRU[string, bool](touchedEntries, 0, touchEvery),
		retain:    o.pushRetention,
	}
	p.handlers = p.table()
	// Every new version of a container repository records its tag and
	// image changes (activity.go), whatever retention does to versions.
	store.OnNewVersion(activityHook, recordActivity)
	return p, nil
}

// Name is the plugin's name.
func (p *Plugin) Name() string { return PluginName }

// Migrations holds the plugin's goose migrations ("postgres/", "sqlite/").
func (p *Plugin) Migrations() fs.FS { return Migrations().FS }

// Types lists the content, repository and distribution types of the plugin.
func (p *Plugin) Types() core.Types {
	return core.Types{
		Content:       []string{TypeBlob, TypeManifest, TypeTag},
		Repositories:  []string{TypeRepository},
		Remotes:       []string{TypeRemote, TypeRegistry},
		Distributions: []string{TypeDistribution},
	}
}

// UploadExpiry is how long an upload session may stay open.
func (p *Plugin) UploadExpiry() time.Duration { return p.expiry }
