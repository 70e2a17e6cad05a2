package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/berth-dev/berth/core"
)

// Deps are what the REST API is built from. Store, Registry and Tasks are
// required.
type Deps struct {
	Store    *core.Store
	Registry *core.Registry
	// Tasks dispatches, lists and cancels tasks (NewTaskService adapts the
	// tasks package).
	Tasks TaskService
	// Version is Berth's version, shown by the status endpoint and the
	// OpenAPI document.
	Version string
	// Checks probe the backing services for status and /readyz.
	Checks Checks
	// Log receives the API's own log lines (default slog.Default()).
	Log *slog.Logger
	// Middleware guards every route but the public ones (/healthz,
	// /readyz, status and the OpenAPI document): authentication goes here.
	Middleware []echo.MiddlewareFunc
	// Routes are route sets that are not plugins (auth's users and tokens,
	// say). Plugins of Registry that implement Routes are added by
	// themselves.
	Routes []Routes
	// WriteGuard, when set, guards the core's own routes that change
	// objects (POST, PUT, PATCH and DELETE on repositories, versions,
	// remotes, distributions and tasks), after Middleware. The routes of
	// plugins and of Routes check their own permissions.
	WriteGuard echo.MiddlewareFunc
}

// Checks probe the backing services. Each returns nil when its service
// works; the server bounds each call with CheckTimeout.
type Checks struct {
	// Database pings the record database; nil pings the Store's.
	Database func(ctx context.Context) error
	// Redis pings Redis; nil means Redis is not used (embedded mode).
	Redis func(ctx context.Context) error
	// Storage checks the blob storage (StorageProbe writes a file in a
	// directory); nil means it is not checked.
	Storage func(ctx context.Context) error
}

// Routes is implemented by plugins, and other packages, that bring REST
// routes: Register calls APIRoutes once. Each route is added with
// Router.Add, which registers it on echo and documents it in the OpenAPI
// document at once, so that every route is described.
type Routes interface {
	APIRoutes(r *Router)
}

// Server is the core REST API. Make one with New and add its routes to an
// echo instance with Register.
type Server struct {
	store    *core.Store
	registry *core.Registry
	tasks    TaskService
	version  string
	checks   Checks
	log      *slog.Logger
	mw       []echo.MiddlewareFunc
	guard    echo.MiddlewareFunc
	extra    []Routes
	doc      *Doc
	exts     map[string]Extension // extensionKey → the plugin's extension

	once sync.Once
}

// New checks d and returns the API server.
func New(d Deps) (*Server, error) {
	var missing []string
	if d.Store == nil {
		missing = append(missing, "Store")
	}
	if d.Registry == nil {
		missing = append(missing, "Registry")
	}
	if d.Tasks == nil {
		missing = append(missing, "Tasks")
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("api: missing dependencies: %s", strings.Join(missing, ", "))
	}
	if d.Version == "" {
		d.Version = "dev"
	}
	if d.Log == nil {
		d.Log = slog.Default()
	}
	if d.Checks.Database == nil {
		d.Checks.Database = PingDatabase(d.Store)
	}
	return &Server{
		store:    d.Store,
		registry: d.Registry,
		tasks:    d.Tasks,
		version:  d.Version,
		checks:   d.Checks,
		log:      d.Log,
		mw:       d.Middleware,
		guard:    d.WriteGuard,
		extra:    d.Routes,
		doc:      NewDoc("Berth API", d.Version),
	}, nil
}

// Doc is the server's OpenAPI document.
func (s *Server) Doc() *Doc { return s.doc }

// Register adds every route of the API to e: the core's, then those of the
// plugins and of Deps.Routes. Call it once. It fails when two routes, or
// two operation IDs, are the same.
func (s *Server) Register(e *echo.Echo) error {
	first := false
	s.once.Do(func() { first = true })
	if !first {
		return errors.New("api: Register called twice")
	}
	if err := s.loadExtensions(); err != nil {
		return err
	}
	// Pulp's paths end with a slash; accept them without it too (but not
	// file names such as docs/api.json).
	e.Pre(middleware.AddTrailingSlashWithConfig(middleware.TrailingSlashConfig{
		Skipper: func(c echo.Context) bool {
			p := c.Request().URL.Path
			return !strings.HasPrefix(p, Prefix) || strings.Contains(p[strings.LastIndexByte(p, '/')+1:], ".")
		},
	}))
	r := NewRouter(e, s.doc, s.mw...)
	s.healthRoutes(r.Public())
	s.docRoutes(r.Public())
	own := r // the core's routes: their writes are guarded
	if s.guard != nil {
		own = r.guardWrites(s.guard)
	}
	s.taskRoutes(own)
	s.workerRoutes(own)
	s.repositoryRoutes(own)
	s.versionRoutes(own)
	s.remoteRoutes(own)
	s.distributionRoutes(own)
	s.orphanRoutes(own)
	for _, p := range s.registry.Plugins() {
		if rs, ok := p.(Routes); ok {
			rs.APIRoutes(r)
		}
	}
	for _, rs := range s.extra {
		rs.APIRoutes(r)
	}
	return r.Err()
}

// Router adds documented routes to echo, behind the server's middleware.
type Router struct {
	e      *echo.Echo
	doc    *Doc
	mw     []echo.MiddlewareFunc
	writes []echo.MiddlewareFunc // after mw, for methods that change things

	mu   *sync.Mutex
	errs *[]error
}

// NewRouter returns a router that registers routes on e, behind mw, and
// documents them in doc. Server.Register makes its own; route sets tested
// on their own use this one (and then Err and Undocumented).
func NewRouter(e *echo.Echo, doc *Doc, mw ...echo.MiddlewareFunc) *Router {
	return &Router{e: e, doc: doc, mw: mw, errs: &[]error{}, mu: &sync.Mutex{}}
}

// Err reports the operations the router refused (documented twice, or with
// a duplicate ID), joined; nil when there were none.
func (r *Router) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return errors.Join(*r.errs...)
}

// Add registers h for op.Method and op.Path (behind the router's
// middleware, then m) and documents op in the OpenAPI document.
func (r *Router) Add(op Operation, h echo.HandlerFunc, m ...echo.MiddlewareFunc) {
	if err := r.doc.Add(op); err != nil {
		r.mu.Lock()
		*r.errs = append(*r.errs, err)
		r.mu.Unlock()
		return
	}
	method := strings.ToUpper(op.Method)
	mw := append([]echo.MiddlewareFunc(nil), r.mw...)
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
	default:
		mw = append(mw, r.writes...)
	}
	r.e.Add(method, op.Path, h, append(mw, m...)...)
}

// guardWrites returns a router that puts g before the handlers of the
// routes that change things.
func (r *Router) guardWrites(g echo.MiddlewareFunc) *Router {
	w := *r
	w.writes = append(append([]echo.MiddlewareFunc(nil), r.writes...), g)
	return &w
}

// Public returns a router for routes anyone may call: without the
// server's middleware (authentication).
func (r *Router) Public() *Router {
	p := *r
	p.mw, p.writes = nil, nil
	return &p
}

// Echo is the echo instance, for routes that are not part of the API
// document (the /v2/ content app).
func (r *Router) Echo() *echo.Echo { return r.e }

// Doc is the OpenAPI document the router adds to.
func (r *Router) Doc() *Doc { return r.doc }

// docRoutes serves the OpenAPI document.
func (s *Server) docRoutes(r *Router) {
	r.Add(Operation{
		Method: http.MethodGet, Path: DocPath, ID: "docs_api_json",
		Summary: "The OpenAPI 3 document of this API.", Tags: []string{"Docs"},
		Response: map[string]any{},
	}, func(c echo.Context) error {
		return c.JSON(http.StatusOK, s.doc.Spec())
	})
}

// param reads a path parameter, unescaped.
func param(c echo.Context, name string) string {
	v := c.Param(name)
	if u, err := url.PathUnescape(v); err == nil {
		return u
	}
	return v
}
