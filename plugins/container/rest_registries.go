package container

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/core"
	"github.com/berth-dev/berth/plugins/container/upstream"
	"github.com/berth-dev/berth/tasks"
)

// The REST API of remote registries and remote images (Galaxy NG's
// "Remote Registries" and remote execution environments), and the
// Pulp-shaped repository sync:
//
//	/api/v1/registries/                   GET list, POST create                    (create_remote)
//	/api/v1/registries/{id}/              GET, PUT, PATCH, DELETE                  (create_remote)
//	/api/v1/registries/{id}/sync/         POST: sync every remote image using it   (create_remote)
//	/api/v1/registries/{id}/test/         POST: try the connection and credentials (create_remote)
//	/api/v1/remote-images/                GET list, POST create                    (create_remote)
//	/api/v1/remote-images/{id}/           GET, PUT, PATCH, DELETE                  (create_remote)
//	/api/v1/remote-images/{id}/sync/      POST: sync it                            (sync on its namespace)
//	/api/v1/remote-images/{id}/syncs/     GET: its sync history (tasks)
//	/pulp/api/v3/repositories/container/container/{id}/sync/
//	                                      POST {"remote", "mirror"}                (sync on its namespace)
//
// Reads need a logged-in user. A sync answers 202 {"task": href}; the
// tasks of a remote image's syncs are also listed by
// /pulp/api/v3/tasks/?reserved_resources=/api/v1/remote-images/{id}/ (and
// those of a registry's images with the registry's href).

// Paths of the product API's remote registry resources.
const (
	RegistriesPath   = "/api/v1/registries/"
	RemoteImagesPath = "/api/v1/remote-images/"
)

// RegistryHref is the href of a remote registry.
func RegistryHref(id string) string { return RegistriesPath + id + "/" }

// RemoteImageHref is the href of a remote image.
func RemoteImageHref(id string) string { return RemoteImagesPath + id + "/" }

// Actions the registry routes ask Permissions about.
const (
	// ActionCreateRemote: create, change, delete, test and sync remote
	// registries and remote images (global; registry admins have it).
	ActionCreateRemote Action = "create_remote"
	// ActionSync: sync the images of a namespace.
	ActionSync Action = "sync"
)

// RegistryRoutes is the api.Routes set of remote registries, remote images
// and syncs. Permissions come from the plugin's Authorizer (see
// Permissions).
type RegistryRoutes struct {
	Plugin *Plugin
	// Tasks dispatches and lists the sync tasks.
	Tasks api.TaskService
}

var _ api.Routes = RegistryRoutes{}

// caller is who the request is for; reads need a logged-in user (unless
// the plugin lets everybody do everything, as tests do).
func (rr RegistryRoutes) caller(c echo.Context, read bool) (Identity, error) {
	pm := rr.Plugin.permissions()
	who := pm.Caller(c.Request().Context())
	if _, open := pm.(AllowAll); read && !open && who.UserID == "" {
		return who, fmt.Errorf("remote registries: log in first: %w", core.ErrUnauthorized)
	}
	return who, nil
}

// requireGlobal checks a global action and returns the caller.
func (rr RegistryRoutes) requireGlobal(c echo.Context, act Action, what string) (Identity, error) {
	ctx := c.Request().Context()
	who, _ := rr.caller(c, false)
	return who, rr.Plugin.require(ctx, who, act, NamespaceStatus{}, what)
}

// requireSync checks that the caller may sync the image name.
func (rr RegistryRoutes) requireSync(c echo.Context, name string) error {
	ctx := c.Request().Context()
	who, _ := rr.caller(c, false)
	ns, err := rr.Plugin.ResolveNamespace(ctx, name)
	if err != nil {
		return err
	}
	return rr.Plugin.require(ctx, who, ActionSync, ns, "syncing "+name)
}

// SyncStatus is the state of a sync task, as remote registries and images
// show their last sync.
type SyncStatus struct {
	Task       string     `json:"task" doc:"Href of the sync task."`
	State      string     `json:"state" enum:"waiting,running,completed,failed,canceling,canceled"`
	Created    time.Time  `json:"pulp_created"`
	StartedAt  *time.Time `json:"started_at"`
	FinishedAt *time.Time `json:"finished_at"`
	Error      *string    `json:"error" doc:"Why it failed; null otherwise."`
	// ChildTasks counts a registry sync's image syncs by state.
	ChildTasks map[string]int `json:"child_tasks,omitempty" doc:"A registry sync's image syncs, counted by state."`
}

// newSyncStatus describes a task.
func newSyncStatus(t *tasks.Task) *SyncStatus {
	st := &SyncStatus{Task: api.TaskHref(t.ID), State: string(t.State), Created: api.APITime(t.CreatedAt), StartedAt: t.StartedAt, FinishedAt: t.FinishedAt}
	if t.Error != nil {
		e := t.Error.Description
		st.Error = &e
	}
	return st
}

// RegistryView is a remote registry as the REST API shows it: the fields
// of its remote (secrets write-only, as in Pulp) and its use.
type RegistryView struct {
	Href string `json:"pulp_href" api:"readonly"`
	ID   string `json:"id" api:"readonly"`
	api.RemoteResponse
	Remote   string      `json:"remote" api:"readonly" doc:"Href of the registry's remote in the Pulp API."`
	Images   int         `json:"images" api:"readonly" doc:"How many remote images use the registry."`
	LastSync *SyncStatus `json:"last_sync_task" api:"readonly" doc:"The last registry-wide sync, or null."`
}

// registryRequest is the body of a registry create or update. Secrets are
// accepted in plain text, stored sealed and never shown; null or "" clears
// one.
type registryRequest struct {
	Name                string   `json:"name" api:"required"`
	URL                 string   `json:"url" api:"required" doc:"http:// or https:// URL of the registry, e.g. https://registry-1.docker.io."`
	Username            *string  `json:"username"`
	Password            *string  `json:"password" api:"writeonly"`
	TLSValidation       *bool    `json:"tls_validation" doc:"Verify the registry's TLS certificate (default true)."`
	CACert              *string  `json:"ca_cert" doc:"PEM certificates of CAs to trust besides the system's."`
	ClientCert          *string  `json:"client_cert" doc:"PEM client certificate for TLS client authentication."`
	ClientKey           *string  `json:"client_key" api:"writeonly" doc:"PEM key of client_cert."`
	ProxyURL            *string  `json:"proxy_url" doc:"http:// or https:// proxy."`
	ProxyUsername       *string  `json:"proxy_username"`
	ProxyPassword       *string  `json:"proxy_password" api:"writeonly"`
	RateLimit           *float64 `json:"rate_limit" doc:"Most requests per second sent to the registry; 0 (default): no limit."`
	DownloadConcurrency *int     `json:"download_concurrency" doc:"Blobs downloaded at once, 1-64 (default 4)."`
	Policy              *string  `json:"policy" enum:"immediate,on_demand" doc:"immediate (default): syncs download blobs; on_demand: the first pull does."`
}

// RemoteImageView is a remote image as the REST API shows it.
type RemoteImageView struct {
	Href            string      `json:"pulp_href" api:"readonly"`
	ID              string      `json:"id" api:"readonly"`
	PulpCreated     time.Time   `json:"pulp_created" api:"readonly"`
	PulpLastUpdated time.Time   `json:"pulp_last_updated" api:"readonly"`
	Name            string      `json:"name" doc:"The image's name in Berth (namespace/name, or a name alone in its namespace)."`
	Namespace       string      `json:"namespace" api:"readonly"`
	UpstreamName    string      `json:"upstream_name" doc:"The image's name on the registry."`
	UpstreamPath    string      `json:"upstream_repository" api:"readonly" doc:"What a sync asks the registry for: upstream_name, with Docker Hub's library/ prefix where it applies."`
	Registry        *string     `json:"registry" doc:"Href of the remote registry."`
	IncludeTags     []string    `json:"include_tags" doc:"Glob patterns of the tags to sync (* ? [a-z]); empty: all."`
	ExcludeTags     []string    `json:"exclude_tags" doc:"Glob patterns of tags not to sync."`
	Description     string      `json:"description"`
	Policy          string      `json:"policy" api:"readonly" enum:"immediate,on_demand" doc:"The registry's download policy."`
	Remote          string      `json:"remote" api:"readonly" doc:"Href of the image's container remote in the Pulp API."`
	Repository      string      `json:"repository" api:"readonly" doc:"Href of the image's repository."`
	LatestVersion   int         `json:"latest_version" api:"readonly" doc:"0 until the first sync that found content."`
	LastSync        *SyncStatus `json:"last_sync_task" api:"readonly" doc:"The image's last sync, or null: the image is empty until its first sync."`
}

// remoteImageRequest is the body of a remote image create or update.
type remoteImageRequest struct {
	Name         string    `json:"name" api:"required" doc:"The image's name in Berth; cannot change later."`
	UpstreamName string    `json:"upstream_name" api:"required"`
	Registry     string    `json:"registry" api:"required" doc:"Href (or ID) of the remote registry."`
	IncludeTags  *[]string `json:"include_tags"`
	ExcludeTags  *[]string `json:"exclude_tags"`
	Description  *string   `json:"description"`
}

// TestResult is the answer of a registry's connection test.
type TestResult struct {
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty" doc:"What failed, in words."`
	Kind  string `json:"kind,omitempty" enum:"unauthorized,forbidden,tls,unreachable,proxy,not_registry,rate_limited,unavailable,protocol,redirect,invalid_config,error" doc:"What kind of failure it was."`
}

// repositorySyncRequest is the body of the Pulp-shaped repository sync.
type repositorySyncRequest struct {
	Remote *string `json:"remote" doc:"Href of a container remote; default: the repository's remote."`
	Mirror *bool   `json:"mirror" doc:"Make the new version hold exactly the upstream's tags (default false: only add and move tags)."`
}

var registryListSpec = api.ListSpec{Fields: map[string]api.Field{
	"name":              {Kind: api.KindString, Lookups: api.StringLookups(), Order: true},
	"url":               {Kind: api.KindString, Lookups: []string{api.Exact, api.Contains}, Order: true},
	"pulp_created":      {Kind: api.KindTime, Lookups: api.TimeLookups(), Order: true},
	"pulp_last_updated": {Kind: api.KindTime, Lookups: api.TimeLookups(), Order: true},
	"pulp_id":           {Kind: api.KindString, Lookups: []string{api.In}, Order: true},
}, Tiebreak: "pulp_id"}

func remoteImageListSpec() api.ListSpec {
	return api.ListSpec{Fields: map[string]api.Field{
		"name":              {Kind: api.KindString, Lookups: api.StringLookups(), Order: true},
		"upstream_name":     {Kind: api.KindString, Lookups: api.StringLookups(), Order: true},
		"registry":          {Kind: api.KindHref, Lookups: api.HrefLookups(), Resolve: resolveRegistryRef, Doc: "Href (or ID) of a remote registry."},
		"pulp_created":      {Kind: api.KindTime, Lookups: api.TimeLookups(), Order: true},
		"pulp_last_updated": {Kind: api.KindTime, Lookups: api.TimeLookups(), Order: true},
		"pulp_id":           {Kind: api.KindString, Lookups: []string{api.In}, Order: true},
	}, Tiebreak: "pulp_id"}
}

// registryID takes an href of a registry, or its ID.
func registryID(ref string) string {
	if id, ok := strings.CutPrefix(ref, RegistriesPath); ok {
		return strings.TrimSuffix(id, "/")
	}
	if i := strings.Index(ref, RegistriesPath); i > 0 && strings.Contains(ref[:i], "://") {
		return strings.TrimSuffix(ref[i+len(RegistriesPath):], "/")
	}
	return ref
}

func resolveRegistryRef(_ context.Context, href string) (any, error) {
	id := registryID(href)
	if id == "" || strings.Contains(id, "/") {
		return nil, core.ErrInvalid
	}
	return id, nil
}

// APIRoutes adds the routes, each documented in the OpenAPI document.
func (rr RegistryRoutes) APIRoutes(r *api.Router) {
	rr.registryRoutes(r)
	rr.remoteImageRoutes(r)
	r.Add(api.Operation{
		Method: http.MethodPost, Path: api.TypedListHref(api.Repositories, TypeRepository) + ":id/sync/",
		ID: "repositories_container_container_sync", Tags: []string{"Repositories: Container"},
		Summary:     "Sync a container repository from a container remote",
		Description: "Dispatches a container.sync task; answers 202 with the task.",
		Request:     repositorySyncRequest{}, Response: api.TaskAccepted{}, Status: http.StatusAccepted,
	}, rr.syncRepository)
}

func (rr RegistryRoutes) registryRoutes(r *api.Router) {
	tags := []string{"Remote registries"}
	item := RegistriesPath + ":id/"
	r.Add(api.Operation{Method: http.MethodGet, Path: RegistriesPath, ID: "registries_list", Tags: tags,
		Summary: "List remote registries", Params: registryListSpec.Params(), Response: api.Page[RegistryView]{},
	}, rr.listRegistries)
	r.Add(api.Operation{Method: http.MethodPost, Path: RegistriesPath, ID: "registries_create", Tags: tags,
		Summary: "Create a remote registry", Request: registryRequest{}, Response: RegistryView{}, Status: http.StatusCreated,
	}, rr.createRegistry)
	r.Add(api.Operation{Method: http.MethodGet, Path: item, ID: "registries_read", Tags: tags,
		Summary: "Inspect a remote registry", Response: RegistryView{},
	}, rr.getRegistry)
	r.Add(api.Operation{Method: http.MethodPut, Path: item, ID: "registries_update", Tags: tags,
		Summary: "Replace a remote registry", Description: "Fields left out, secrets included, are reset to their defaults. Its remote images take the new settings.",
		Request: registryRequest{}, Response: RegistryView{},
	}, rr.updateRegistry(false))
	r.Add(api.Operation{Method: http.MethodPatch, Path: item, ID: "registries_partial_update", Tags: tags,
		Summary: "Change some fields of a remote registry", Description: "Its remote images take the new settings.",
		Request: registryRequest{}, Response: RegistryView{},
	}, rr.updateRegistry(true))
	r.Add(api.Operation{Method: http.MethodDelete, Path: item, ID: "registries_delete", Tags: tags,
		Summary: "Delete a remote registry", Description: "A registry that remote images use cannot be deleted (409).", Status: http.StatusNoContent,
	}, rr.deleteRegistry)
	r.Add(api.Operation{Method: http.MethodPost, Path: item + "sync/", ID: "registries_sync", Tags: tags,
		Summary:     "Sync every remote image of the registry",
		Description: "Dispatches a container.sync_registry task whose children are one container.sync task per remote image (/pulp/api/v3/tasks/?parent_task=<task>); answers 202 with the parent.",
		Response:    api.TaskAccepted{}, Status: http.StatusAccepted,
	}, rr.syncRegistry)
	r.Add(api.Operation{Method: http.MethodPost, Path: item + "test/", ID: "registries_test", Tags: tags,
		Summary:     "Test the connection to the registry",
		Description: `Reaches the registry's /v2/ as configured (proxy, TLS) and authenticates. Answers 200 {"ok": true} or {"ok": false, "error": "...", "kind": "unauthorized|tls|unreachable|not_registry|..."}.`,
		Response:    TestResult{},
	}, rr.testRegistry)
}

func (rr RegistryRoutes) remoteImageRoutes(r *api.Router) {
	tags := []string{"Remote images"}
	item := RemoteImagesPath + ":id/"
	spec := remoteImageListSpec()
	r.Add(api.Operation{Method: http.MethodGet, Path: RemoteImagesPath, ID: "remote_images_list", Tags: tags,
		Summary: "List remote images (remote execution environments)", Params: spec.Params(), Response: api.Page[RemoteImageView]{},
	}, rr.listRemoteImages(spec))
	r.Add(api.Operation{Method: http.MethodPost, Path: RemoteImagesPath, ID: "remote_images_create", Tags: tags,
		Summary:     "Create a remote image",
		Description: "Creates the image's namespace (if new), repository and distribution with it, in one transaction. The image is empty until its first sync.",
		Request:     remoteImageRequest{}, Response: RemoteImageView{}, Status: http.StatusCreated,
	}, rr.createRemoteImage)
	r.Add(api.Operation{Method: http.MethodGet, Path: item, ID: "remote_images_read", Tags: tags,
		Summary: "Inspect a remote image", Response: RemoteImageView{},
	}, rr.getRemoteImage)
	r.Add(api.Operation{Method: http.MethodPut, Path: item, ID: "remote_images_update", Tags: tags,
		Summary: "Replace a remote image's settings", Description: "The name cannot change. Fields left out are reset.",
		Request: remoteImageRequest{}, Response: RemoteImageView{},
	}, rr.updateRemoteImage(false))
	r.Add(api.Operation{Method: http.MethodPatch, Path: item, ID: "remote_images_partial_update", Tags: tags,
		Summary: "Change some settings of a remote image", Request: remoteImageRequest{}, Response: RemoteImageView{},
	}, rr.updateRemoteImage(true))
	r.Add(api.Operation{Method: http.MethodDelete, Path: item, ID: "remote_images_delete", Tags: tags,
		Summary: "Delete a remote image with its image", Description: "Removes its distribution, repository (every version) and remote; the namespace stays.",
		Status: http.StatusNoContent,
	}, rr.deleteRemoteImage)
	r.Add(api.Operation{Method: http.MethodPost, Path: item + "sync/", ID: "remote_images_sync", Tags: tags,
		Summary:     "Sync a remote image",
		Description: "Dispatches a container.sync task mirroring the selected upstream tags into a new version (none when nothing changed); answers 202 with the task.",
		Response:    api.TaskAccepted{}, Status: http.StatusAccepted,
	}, rr.syncRemoteImage)
	r.Add(api.Operation{Method: http.MethodGet, Path: item + "syncs/", ID: "remote_images_syncs_list", Tags: tags,
		Summary: "The sync history of a remote image (its sync tasks, newest first)", Params: api.ListSpec{}.Params(),
		Response: api.Page[api.TaskResponse]{},
	}, rr.listSyncs)
}

// ---- registries ----

func (rr RegistryRoutes) registryViews(ctx context.Context, list []Registry) ([]RegistryView, error) {
	var taskIDs []string
	for _, r := range list {
		if r.LastSyncTask != "" {
			taskIDs = append(taskIDs, r.LastSyncTask)
		}
	}
	statuses, err := rr.syncStatuses(ctx, taskIDs, true)
	if err != nil {
		return nil, err
	}
	out := make([]RegistryView, len(list))
	for i := range list {
		reg := &list[i]
		rv := api.NewRemoteResponse(&reg.Remote)
		out[i] = RegistryView{Href: RegistryHref(reg.Remote.ID), ID: reg.Remote.ID, RemoteResponse: rv, Remote: rv.Href, Images: reg.Images}
		if st, ok := statuses[reg.LastSyncTask]; ok {
			out[i].LastSync = st
		}
	}
	return out, nil
}

// syncStatuses describes sync tasks by ID; withChildren counts the states
// of their children and gives a parent whose children run their state.
func (rr RegistryRoutes) syncStatuses(ctx context.Context, ids []string, withChildren bool) (map[string]*SyncStatus, error) {
	s := rr.Plugin.store
	ts, err := tasksByID(ctx, s, ids)
	if err != nil {
		return nil, err
	}
	var counts map[string]map[tasks.State]int
	var last map[string]time.Time
	if withChildren {
		if counts, last, err = childTaskStates(ctx, s, ids); err != nil {
			return nil, err
		}
	}
	out := map[string]*SyncStatus{}
	for id, t := range ts {
		st := newSyncStatus(&t)
		if c := counts[id]; withChildren && t.State == tasks.Completed && c != nil {
			st.ChildTasks = map[string]int{}
			for state, n := range c {
				st.ChildTasks[string(state)] = n
			}
			st.State = aggregateState(c)
			if tasks.State(st.State).Finished() {
				f := last[id]
				st.FinishedAt = &f
			} else {
				st.FinishedAt = nil
			}
		}
		out[id] = st
	}
	return out, nil
}

// aggregateState is the state of a group of tasks: running while any is
// unfinished, then failed if any failed, canceled if any was, completed.
func aggregateState(c map[tasks.State]int) string {
	switch {
	case c[tasks.Waiting]+c[tasks.Running]+c[tasks.Canceling] > 0:
		return string(tasks.Running)
	case c[tasks.Failed] > 0:
		return string(tasks.Failed)
	case c[tasks.Canceled] > 0:
		return string(tasks.Canceled)
	}
	return string(tasks.Completed)
}

func (rr RegistryRoutes) listRegistries(c echo.Context) error {
	if _, err := rr.caller(c, true); err != nil {
		return err
	}
	return api.RenderList(c, registryListSpec, nil, rr.Plugin.ListRegistries, rr.registryViews)
}

func (rr RegistryRoutes) getRegistry(c echo.Context) error {
	if _, err := rr.caller(c, true); err != nil {
		return err
	}
	ctx := c.Request().Context()
	reg, err := rr.Plugin.GetRegistry(ctx, c.Param("id"))
	if err != nil {
		return err
	}
	return api.RenderOne(c, http.StatusOK, *reg, rr.registryViews)
}

func (rr RegistryRoutes) createRegistry(c echo.Context) error {
	if _, err := rr.requireGlobal(c, ActionCreateRemote, "managing remote registries"); err != nil {
		return err
	}
	var body registryRequest
	given, err := api.Bind(c, &body)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	r := &core.Remote{}
	sec, err := applyRegistry(r, body, given, true)
	if err != nil {
		return err
	}
	if err := rr.Plugin.CreateRegistry(ctx, r, sec); err != nil {
		return err
	}
	reg, err := rr.Plugin.GetRegistry(ctx, r.ID)
	if err != nil {
		return err
	}
	return api.RenderOne(c, http.StatusCreated, *reg, rr.registryViews)
}

func (rr RegistryRoutes) updateRegistry(partial bool) echo.HandlerFunc {
	return func(c echo.Context) error {
		if _, err := rr.requireGlobal(c, ActionCreateRemote, "managing remote registries"); err != nil {
			return err
		}
		ctx := c.Request().Context()
		reg, err := rr.Plugin.GetRegistry(ctx, c.Param("id"))
		if err != nil {
			return err
		}
		var body registryRequest
		bind := api.Bind
		if partial {
			bind = api.BindPatch
		}
		given, err := bind(c, &body)
		if err != nil {
			return err
		}
		r := reg.Remote
		sec, err := applyRegistry(&r, body, given, !partial)
		if err != nil {
			return err
		}
		if err := rr.Plugin.UpdateRegistry(ctx, &r, sec); err != nil {
			return err
		}
		if reg, err = rr.Plugin.GetRegistry(ctx, r.ID); err != nil {
			return err
		}
		return api.RenderOne(c, http.StatusOK, *reg, rr.registryViews)
	}
}

// applyRegistry copies a body onto r. A PUT (reset) first resets every
// field to its default, secrets included; a PATCH changes only what it
// gives.
func applyRegistry(r *core.Remote, body registryRequest, given api.Fields, reset bool) (core.RemoteSecrets, error) {
	if reset {
		*r = core.Remote{ID: r.ID, Type: TypeRegistry, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt,
			TLSValidation: true, Policy: core.PolicyImmediate, DownloadConcurrency: upstream.DefaultDownloadConcurrency}
	}
	str := func(name string, dst *string, v *string) {
		if given.Has(name) {
			*dst = deref(v)
		}
	}
	if given.Has("name") {
		r.Name = body.Name
	}
	if given.Has("url") {
		r.URL = body.URL
	}
	str("username", &r.Username, body.Username)
	str("ca_cert", &r.CACert, body.CACert)
	str("client_cert", &r.ClientCert, body.ClientCert)
	str("proxy_url", &r.ProxyURL, body.ProxyURL)
	str("proxy_username", &r.ProxyUsername, body.ProxyUsername)
	if given.Has("policy") {
		r.Policy = core.PolicyImmediate
		if body.Policy != nil {
			r.Policy = *body.Policy
		}
	}
	if given.Has("tls_validation") {
		r.TLSValidation = body.TLSValidation == nil || *body.TLSValidation
	}
	if given.Has("rate_limit") {
		r.RateLimit = 0
		if body.RateLimit != nil {
			r.RateLimit = *body.RateLimit
		}
	}
	if given.Has("download_concurrency") {
		r.DownloadConcurrency = upstream.DefaultDownloadConcurrency
		if body.DownloadConcurrency != nil {
			if *body.DownloadConcurrency < 1 {
				return core.RemoteSecrets{}, core.Invalid("download_concurrency", "must be between 1 and 64")
			}
			r.DownloadConcurrency = *body.DownloadConcurrency
		}
	}
	secret := func(name string, v *string) *string {
		switch {
		case given.Has(name):
			s := deref(v)
			return &s
		case reset:
			s := ""
			return &s
		}
		return nil
	}
	return core.RemoteSecrets{
		Password:      secret("password", body.Password),
		ClientKey:     secret("client_key", body.ClientKey),
		ProxyPassword: secret("proxy_password", body.ProxyPassword),
	}, nil
}

func (rr RegistryRoutes) deleteRegistry(c echo.Context) error {
	if _, err := rr.requireGlobal(c, ActionCreateRemote, "managing remote registries"); err != nil {
		return err
	}
	if err := rr.Plugin.DeleteRegistry(c.Request().Context(), c.Param("id")); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

func (rr RegistryRoutes) syncRegistry(c echo.Context) error {
	if _, err := rr.requireGlobal(c, ActionCreateRemote, "managing remote registries"); err != nil {
		return err
	}
	ctx := c.Request().Context()
	reg, err := rr.Plugin.GetRegistry(ctx, c.Param("id"))
	if err != nil {
		return err
	}
	images, err := rr.Plugin.RemoteImagesOfRegistry(ctx, reg.Remote.ID)
	if err != nil {
		return err
	}
	href := RegistryHref(reg.Remote.ID)
	parent, err := rr.dispatch(ctx, tasks.Spec{
		Name: TaskSyncRegistry, Args: SyncRegistryArgs{RegistryID: reg.Remote.ID, Images: len(images)},
		Shared: []string{href, api.RemoteResource(reg.Remote.ID)},
	})
	if err != nil {
		return err
	}
	if err := rr.Plugin.RecordSync(ctx, reg.Remote.ID, parent.ID, true); err != nil {
		return err
	}
	for _, img := range images {
		if _, err := rr.dispatchSync(ctx, &img, parent.ID); err != nil {
			return err
		}
	}
	return api.Accepted(c, parent)
}

// dispatchSync dispatches the sync of a remote image and records it as its
// last sync.
func (rr RegistryRoutes) dispatchSync(ctx context.Context, img *RemoteImage, parentID string) (*tasks.Task, error) {
	shared := []string{RemoteImageHref(img.Remote.ID)}
	if img.RegistryID != "" {
		shared = append(shared, RegistryHref(img.RegistryID))
	}
	t, err := rr.dispatch(ctx, SyncSpec(SyncArgs{RemoteID: img.Remote.ID, RepositoryID: img.RepositoryID, Mirror: true}, parentID, shared...))
	if err != nil {
		return nil, err
	}
	return t, rr.Plugin.RecordSync(ctx, img.Remote.ID, t.ID, false)
}

// dispatch creates a task. The specs are the server's own, so a refusal
// (an unregistered handler) is the server's fault: not a client error.
func (rr RegistryRoutes) dispatch(ctx context.Context, spec tasks.Spec) (*tasks.Task, error) {
	if rr.Tasks == nil {
		return nil, errors.New("no task system to dispatch syncs to")
	}
	t, err := rr.Tasks.Dispatch(ctx, spec)
	if errors.Is(err, core.ErrInvalid) {
		return nil, errors.New("dispatch " + spec.Name + ": the task system refused the server's own spec (is the sync handler registered?): " + err.Error())
	}
	return t, err
}

func (rr RegistryRoutes) testRegistry(c echo.Context) error {
	if _, err := rr.requireGlobal(c, ActionCreateRemote, "managing remote registries"); err != nil {
		return err
	}
	ctx := c.Request().Context()
	reg, err := rr.Plugin.GetRegistry(ctx, c.Param("id"))
	if err != nil {
		return err
	}
	err = rr.Plugin.TestRemote(ctx, &reg.Remote)
	if err == nil {
		return c.JSON(http.StatusOK, TestResult{OK: true})
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return c.JSON(http.StatusOK, TestResult{Error: err.Error(), Kind: failureKind(err)})
}

// failureKind names the kind of an upstream failure.
func failureKind(err error) string {
	for _, k := range []struct {
		err  error
		name string
	}{
		{upstream.ErrUnauthorized, "unauthorized"}, {upstream.ErrForbidden, "forbidden"}, {upstream.ErrTLS, "tls"},
		{upstream.ErrUnreachable, "unreachable"}, {upstream.ErrProxy, "proxy"}, {upstream.ErrNotRegistry, "not_registry"},
		{upstream.ErrRateLimited, "rate_limited"}, {upstream.ErrUnavailable, "unavailable"}, {upstream.ErrProtocol, "protocol"},
		{upstream.ErrRedirect, "redirect"}, {upstream.ErrInvalidConfig, "invalid_config"},
	} {
		if errors.Is(err, k.err) {
			return k.name
		}
	}
	return "error"
}

// ---- remote images ----

func (rr RegistryRoutes) remoteImageViews(ctx context.Context, list []RemoteImage) ([]RemoteImageView, error) {
	var taskIDs []string
	for _, img := range list {
		if img.LastSyncTask != "" {
			taskIDs = append(taskIDs, img.LastSyncTask)
		}
	}
	statuses, err := rr.syncStatuses(ctx, taskIDs, false)
	if err != nil {
		return nil, err
	}
	out := make([]RemoteImageView, len(list))
	for i := range list {
		img := &list[i]
		v := RemoteImageView{
			Href: RemoteImageHref(img.Remote.ID), ID: img.Remote.ID,
			PulpCreated: api.APITime(img.Remote.CreatedAt), PulpLastUpdated: api.APITime(img.Remote.UpdatedAt),
			Name: img.Name(), Namespace: namespaceOf(img.Name()),
			UpstreamName: img.UpstreamName, UpstreamPath: img.EffectiveUpstreamName(),
			IncludeTags: img.IncludeTags, ExcludeTags: img.ExcludeTags, Description: img.Description,
			Policy: img.Remote.Policy, Remote: api.RemoteHref(TypeRemote, img.Remote.ID),
			Repository: api.RepositoryHref(TypeRepository, img.RepositoryID), LatestVersion: img.LatestVersion,
		}
		if img.RegistryID != "" {
			h := RegistryHref(img.RegistryID)
			v.Registry = &h
		}
		if st, ok := statuses[img.LastSyncTask]; ok {
			v.LastSync = st
		}
		out[i] = v
	}
	return out, nil
}

func (rr RegistryRoutes) listRemoteImages(spec api.ListSpec) echo.HandlerFunc {
	return func(c echo.Context) error {
		if _, err := rr.caller(c, true); err != nil {
			return err
		}
		return api.RenderList(c, spec, nil, rr.Plugin.ListRemoteImages, rr.remoteImageViews)
	}
}

func (rr RegistryRoutes) getRemoteImage(c echo.Context) error {
	if _, err := rr.caller(c, true); err != nil {
		return err
	}
	ctx := c.Request().Context()
	img, err := rr.Plugin.GetRemoteImage(ctx, c.Param("id"))
	if err != nil {
		return err
	}
	return api.RenderOne(c, http.StatusOK, *img, rr.remoteImageViews)
}

func (rr RegistryRoutes) createRemoteImage(c echo.Context) error {
	who, err := rr.requireGlobal(c, ActionCreateRemote, "managing remote images")
	if err != nil {
		return err
	}
	var body remoteImageRequest
	if _, err := api.Bind(c, &body); err != nil {
		return err
	}
	reg := registryID(body.Registry)
	spec := RemoteImageSpec{Name: &body.Name, UpstreamName: &body.UpstreamName, RegistryID: &reg,
		IncludeTags: body.IncludeTags, ExcludeTags: body.ExcludeTags, Description: body.Description}
	ctx := c.Request().Context()
	img, err := rr.Plugin.CreateRemoteImage(ctx, who, spec)
	if err != nil {
		return err
	}
	return api.RenderOne(c, http.StatusCreated, *img, rr.remoteImageViews)
}

func (rr RegistryRoutes) updateRemoteImage(partial bool) echo.HandlerFunc {
	return func(c echo.Context) error {
		if _, err := rr.requireGlobal(c, ActionCreateRemote, "managing remote registries"); err != nil {
			return err
		}
		var body remoteImageRequest
		bind := api.Bind
		if partial {
			bind = api.BindPatch
		}
		given, err := bind(c, &body)
		if err != nil {
			return err
		}
		var spec RemoteImageSpec
		if given.Has("name") {
			spec.Name = &body.Name
		}
		if given.Has("upstream_name") {
			spec.UpstreamName = &body.UpstreamName
		}
		if given.Has("registry") {
			reg := registryID(body.Registry)
			spec.RegistryID = &reg
		}
		empty := []string{}
		for _, f := range []struct {
			name string
			in   *[]string
			out  **[]string
		}{{"include_tags", body.IncludeTags, &spec.IncludeTags}, {"exclude_tags", body.ExcludeTags, &spec.ExcludeTags}} {
			switch {
			case f.in != nil:
				*f.out = f.in
			case given.Has(f.name) || !partial:
				*f.out = &empty
			}
		}
		switch {
		case body.Description != nil:
			spec.Description = body.Description
		case given.Has("description") || !partial:
			none := ""
			spec.Description = &none
		}
		ctx := c.Request().Context()
		img, err := rr.Plugin.UpdateRemoteImage(ctx, c.Param("id"), spec)
		if err != nil {
			return err
		}
		return api.RenderOne(c, http.StatusOK, *img, rr.remoteImageViews)
	}
}

func (rr RegistryRoutes) deleteRemoteImage(c echo.Context) error {
	who, err := rr.requireGlobal(c, ActionCreateRemote, "managing remote images")
	if err != nil {
		return err
	}
	if err := rr.Plugin.DeleteRemoteImage(c.Request().Context(), who, c.Param("id")); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

func (rr RegistryRoutes) syncRemoteImage(c echo.Context) error {
	ctx := c.Request().Context()
	img, err := rr.Plugin.GetRemoteImage(ctx, c.Param("id"))
	if err != nil {
		return err
	}
	if err := rr.requireSync(c, img.Name()); err != nil {
		return err
	}
	t, err := rr.dispatchSync(ctx, img, "")
	if err != nil {
		return err
	}
	return api.Accepted(c, t)
}

func (rr RegistryRoutes) listSyncs(c echo.Context) error {
	if _, err := rr.caller(c, true); err != nil {
		return err
	}
	q, err := api.ParseList(c, api.ListSpec{})
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	img, err := rr.Plugin.GetRemoteImage(ctx, c.Param("id"))
	if err != nil {
		return err
	}
	if rr.Tasks == nil {
		return errors.New("no task system")
	}
	list, total, err := rr.Tasks.Tasks(ctx, tasks.Filter{Resource: RemoteImageHref(img.Remote.ID), Limit: q.Limit, Offset: q.Offset})
	if err != nil {
		return err
	}
	out := make([]api.TaskResponse, len(list))
	for i := range list {
		out[i] = api.NewTaskResponse(&list[i])
	}
	return c.JSON(http.StatusOK, api.NewPage(c, q, total, out))
}

// ---- the Pulp-shaped repository sync ----

func (rr RegistryRoutes) syncRepository(c echo.Context) error {
	ctx := c.Request().Context()
	repo, err := rr.Plugin.store.Repository(ctx, c.Param("id"))
	if err != nil || repo.Type != TypeRepository {
		return core.NotFound("repository", c.Param("id"))
	}
	if err := rr.requireSync(c, repo.Name); err != nil {
		return err
	}
	var body repositorySyncRequest
	if _, err := api.Bind(c, &body); err != nil {
		return err
	}
	remoteID := ""
	if repo.RemoteID != nil {
		remoteID = *repo.RemoteID
	}
	if body.Remote != nil {
		ref, err := api.ParseHref(*body.Remote)
		if err != nil || ref.Collection != api.Remotes || ref.Type != TypeRemote || ref.IsVersion() {
			return core.Invalid("remote", "must be the href of a container remote")
		}
		remoteID = ref.ID
	}
	if remoteID == "" {
		return core.Invalid("remote", "the repository has no remote: give one")
	}
	if rem, err := rr.Plugin.store.Remote(ctx, remoteID); err != nil || rem.Type != TypeRemote {
		return core.Invalid("remote", "no such container remote")
	}
	if _, found, err := remoteRowOf(ctx, rr.Plugin.store, remoteID); err != nil {
		return err
	} else if !found {
		return core.Invalid("remote", "the remote has no upstream_name")
	}
	mirror := body.Mirror != nil && *body.Mirror
	var shared []string
	if img, err := rr.Plugin.GetRemoteImage(ctx, remoteID); err == nil && img.RepositoryID == repo.ID {
		shared = append(shared, RemoteImageHref(remoteID))
		if img.RegistryID != "" {
			shared = append(shared, RegistryHref(img.RegistryID))
		}
	}
	t, err := rr.dispatch(ctx, SyncSpec(SyncArgs{RemoteID: remoteID, RepositoryID: repo.ID, Mirror: mirror}, "", shared...))
	if err != nil {
		return err
	}
	if len(shared) > 0 {
		if err := rr.Plugin.RecordSync(ctx, remoteID, t.ID, false); err != nil {
			return err
		}
	}
	return api.Accepted(c, t)
}
