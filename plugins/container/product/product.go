// Package product is Berth's product REST API under /api/v1/: the views of
// the systems Berth serves that have no Pulp equivalent.
//
//	execution-environments/   Galaxy NG's execution environments: an image
//	                          name (namespace + repository + distribution,
//	                          and a remote when mirrored) with its readme,
//	                          images, layers, tags, activity, pull strings and
//	                          "Use in Controller" links; tag changes and
//	                          deletions run as tasks
//	registry/                 Rescale's registry access for scripts: the host,
//	                          login tokens, repositories, "repo:tag" images
//	                          with a PENDING/READY/FAILED status, deletes
//	catalog/                  PrimeHub's image catalog: display names, types,
//	                          URLs, pull secrets and group visibility
//
// Image names hold slashes. In URLs they are written as they are and
// "_content" ends them (Galaxy's rule: no name component starts with "_"):
// /api/v1/execution-environments/team/ee/_content/images/. Pre-routing
// (names.go) turns such a name into one escaped path segment, so each route
// is declared, and documented, once with a {name} parameter.
//
// The shape of the package:
//
//	product.go      the Service and what it is built from
//	names.go        the name-with-slashes routing
//	ee*.go          execution environments (views, routes, tasks)
//	registry*.go    the registry API
//	catalog*.go     the image catalog
//	store.go        every SQL statement of the package
//
// Handlers are thin: parse, authorize, call the container plugin's services
// or the store, and return a value or an error for the central handler.
package product

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/auth"
	"github.com/berth-dev/berth/core"
	"github.com/berth-dev/berth/core/db"
	"github.com/berth-dev/berth/plugins/container"
)

//go:embed migrations/postgres/*.sql migrations/sqlite/*.sql
var migrationFiles embed.FS

// Migrations is the schema of the package's own tables (readmes, the
// image catalog), applied after the core's and the container plugin's.
func Migrations() db.MigrationSet {
	sub, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	return db.MigrationSet{Name: "product", FS: sub}
}

// BuildInfo is what the registry and the catalog show of an image build.
type BuildInfo struct {
	// ID and Href name the build in the builds API.
	ID   string `json:"id"`
	Href string `json:"href"`
	// Status is PENDING (waiting or building), READY (pushed) or FAILED
	// (failed or canceled).
	Status string `json:"status" enum:"PENDING,READY,FAILED"`
	// Image is the "name:tag" the build pushes to.
	Image string `json:"image"`
	// Task is the href of the task running the build, if any.
	Task string `json:"task" doc:"Href of the build's task; empty when none."`
}

// Build statuses.
const (
	StatusPending = "PENDING"
	StatusReady   = "READY"
	StatusFailed  = "FAILED"
)

// Builds tells the registry API and the catalog about image builds. The
// builds service implements it; without one, images are READY or unknown
// and catalog entries cannot be linked to builds.
type Builds interface {
	// Build returns a build by ID or href; an unknown one is core.ErrNotFound.
	Build(ctx context.Context, ref string) (*BuildInfo, error)
	// LatestBuild returns the newest build that pushes to name:tag, or
	// found=false.
	LatestBuild(ctx context.Context, name, tag string) (b *BuildInfo, found bool, err error)
}

// SyncInfo is the last sync of a mirrored execution environment.
type SyncInfo struct {
	// State is the sync task's state (waiting, running, completed, failed,
	// canceled).
	State      string     `json:"state"`
	Task       string     `json:"task" doc:"Href of the sync task."`
	StartedAt  *time.Time `json:"started_at"`
	FinishedAt *time.Time `json:"finished_at"`
	Error      string     `json:"error" doc:"Why it failed; empty otherwise."`
}

// Syncs tells the execution-environment views about mirrored images. The
// sync service implements it; without one, remote images show a null
// last_sync.
type Syncs interface {
	// LastSync returns the newest sync of the repository, or nil.
	LastSync(ctx context.Context, repositoryID string) (*SyncInfo, error)
	// UpstreamName is the name the remote's image has upstream, or "".
	UpstreamName(ctx context.Context, remoteID string) (string, error)
}

// Deps are what the Service is built from. Store, Container, Auth and
// Tasks are required.
type Deps struct {
	Store     *core.Store
	Container *container.Plugin
	Auth      *auth.Service
	// Tasks dispatches the package's tasks (see TaskHandlers).
	Tasks api.TaskService
	// PublicURL is BERTH_PUBLIC_URL; its host:port starts pull strings.
	PublicURL string
	// Controllers are the Ansible controller URLs "Use in Controller" links
	// point into (BERTH_CONTROLLER_URLS).
	Controllers []string
	// Builds and Syncs are optional (see their docs).
	Builds Builds
	Syncs  Syncs
	Log    *slog.Logger
}

// Service is the product API: an api.Routes set.
type Service struct {
	store       *core.Store
	plugin      *container.Plugin
	auth        *auth.Service
	tasks       api.TaskService
	publicURL   string
	host        string
	controllers []string
	builds      Builds
	syncs       Syncs
	log         *slog.Logger
}

var _ api.Routes = (*Service)(nil)

// New checks d and returns the service.
func New(d Deps) (*Service, error) {
	var missing []string
	for name, ok := range map[string]bool{"Store": d.Store != nil, "Container": d.Container != nil, "Auth": d.Auth != nil, "Tasks": d.Tasks != nil} {
		if !ok {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("product: missing dependencies: %s", strings.Join(missing, ", "))
	}
	u, err := url.Parse(d.PublicURL)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("product: public URL %q: want http(s)://host[:port]", d.PublicURL)
	}
	for _, c := range d.Controllers {
		if cu, err := url.Parse(c); err != nil || cu.Host == "" || (cu.Scheme != "http" && cu.Scheme != "https") {
			return nil, fmt.Errorf("product: controller URL %q: want http(s)://host[/path]", c)
		}
	}
	if d.Log == nil {
		d.Log = slog.Default()
	}
	return &Service{
		store: d.Store, plugin: d.Container, auth: d.Auth, tasks: d.Tasks,
		publicURL: strings.TrimRight(d.PublicURL, "/"), host: u.Host,
		controllers: d.Controllers, builds: d.Builds, syncs: d.Syncs, log: d.Log,
	}, nil
}

// APIRoutes adds the routes of the execution environments, the registry
// API and the catalog, each documented in the OpenAPI document.
func (s *Service) APIRoutes(r *api.Router) {
	r.Echo().Pre(rewriteNames)
	s.eeRoutes(r)
	s.registryRoutes(r)
	s.catalogRoutes(r)
}

// principal is the caller.
func principal(ctx context.Context) *auth.Principal { return auth.PrincipalFrom(ctx) }

// identity is who the container plugin records for the caller.
func identity(p *auth.Principal) container.Identity {
	return container.Identity{UserID: p.UserID, Username: p.Username}
}

// namespaceOf is what the authorizer needs to know about an image name.
func (s *Service) namespaceOf(ctx context.Context, name string) (auth.Namespace, error) {
	st, err := s.plugin.ResolveNamespace(ctx, name)
	if err != nil {
		return auth.Namespace{}, err
	}
	return auth.Namespace{Name: st.Name, Private: st.Private, Missing: !st.Exists}, nil
}

// require checks that the caller may do act on the image name. A caller
// who may not even pull a private image is told it does not exist.
func (s *Service) require(ctx context.Context, act auth.Action, name string) error {
	ns, err := s.namespaceOf(ctx, name)
	if err != nil {
		return err
	}
	p := principal(ctx)
	if act != auth.ActionPull && !ns.Missing {
		if ok, err := s.auth.Authorizer().Can(ctx, p, auth.ActionPull, ns); err != nil {
			return err
		} else if !ok {
			return s.hidden(p, name)
		}
	}
	err = s.auth.Authorizer().Require(ctx, p, act, ns)
	if act == auth.ActionPull && errors.Is(err, core.ErrForbidden) {
		return s.hidden(p, name)
	}
	return err
}

// hidden is the answer to a caller who may not see an image: 401 to
// anonymous callers (they may log in), "not found" to others.
func (s *Service) hidden(p *auth.Principal, name string) error {
	if p.IsAnonymous() {
		return fmt.Errorf("authentication required to see %q: %w", name, core.ErrUnauthorized)
	}
	return core.NotFound("execution environment", name)
}

// visible is what the caller may see of private images.
func (s *Service) visible(ctx context.Context) (container.Visible, error) {
	names, all, err := s.auth.Authorizer().Namespaces(ctx, principal(ctx), auth.ActionPull)
	if err != nil {
		return container.Visible{}, err
	}
	return container.Visible{All: all, Namespaces: names}, nil
}

// isAdmin reports whether the caller administers the registry: a superuser
// or a registry_admin (who may create namespaces).
func (s *Service) isAdmin(ctx context.Context) (bool, error) {
	p := principal(ctx)
	if p.IsAnonymous() {
		return false, nil
	}
	return s.auth.Authorizer().Can(ctx, p, auth.ActionCreateNamespace, auth.Namespace{})
}

// requireAdmin answers 401/403 unless the caller administers the registry.
func (s *Service) requireAdmin(ctx context.Context) error {
	p := principal(ctx)
	if p.IsAnonymous() {
		return fmt.Errorf("log in as an administrator: %w", core.ErrUnauthorized)
	}
	ok, err := s.isAdmin(ctx)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("only superusers and registry administrators may change the image catalog: %w", core.ErrForbidden)
	}
	return nil
}

// requireUser answers 401 to anonymous callers.
func requireUser(ctx context.Context) (*auth.Principal, error) {
	p := principal(ctx)
	if p.IsAnonymous() {
		return nil, fmt.Errorf("log in first: %w", core.ErrUnauthorized)
	}
	return p, nil
}

// pullName is "host/name", the start of every pull string.
func (s *Service) pullName(name string) string { return s.host + "/" + name }

// apiTime is how the API shows times.
func apiTime(t time.Time) time.Time { return api.APITime(t) }

func apiTimePtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := api.APITime(*t)
	return &u
}
