package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/api/apitest"
	"github.com/berth-dev/berth/core"
	"github.com/berth-dev/berth/core/db"
	"github.com/berth-dev/berth/internal/testdb"
	"github.com/berth-dev/berth/migrations"
)

// routesPlugin is a plugin that brings REST routes.
type routesPlugin struct{ testPlugin }

func (routesPlugin) Name() string { return "routes" }
func (routesPlugin) Types() core.Types {
	return core.Types{Repositories: []string{"routes.thing"}}
}

type pingResponse struct {
	Pong string `json:"pong"`
}

func (routesPlugin) APIRoutes(r *api.Router) {
	r.Add(api.Operation{Method: http.MethodGet, Path: "/api/v1/ping/", Summary: "Ping", Response: pingResponse{}},
		func(c echo.Context) error { return c.JSON(http.StatusOK, pingResponse{Pong: "guarded"}) })
	r.Public().Add(api.Operation{Method: http.MethodGet, Path: "/api/v1/public-ping/", Summary: "Public ping", Response: pingResponse{}},
		func(c echo.Context) error { return c.JSON(http.StatusOK, pingResponse{Pong: "public"}) })
	r.Add(api.Operation{Method: http.MethodPost, Path: api.Prefix + "repositories/routes/thing/:id/sync/", Summary: "Sync",
		Request: struct {
			Remote string `json:"remote" api:"required"`
		}{}, Response: api.TaskAccepted{}, Status: http.StatusAccepted},
		func(c echo.Context) error { return c.NoContent(http.StatusAccepted) })
}

// auth is a stand-in authentication middleware.
func auth(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if c.Request().Header.Get("Authorization") != "Bearer ok" {
			return echo.NewHTTPError(http.StatusUnauthorized)
		}
		return next(c)
	}
}

func openapiEnv(t *testing.T) *apitest.Env {
	g := testdb.Open(t, db.SQLite, migrations.Core)
	return apitest.New(t, g, apitest.Options{
		Plugins:    []core.Plugin{testPlugin{}, otherPlugin{}, routesPlugin{}},
		Middleware: []echo.MiddlewareFunc{auth},
	})
}

func TestOpenAPICompleteness(t *testing.T) {
	env := openapiEnv(t)
	if missing := api.Undocumented(env.Echo, env.Server.Doc()); len(missing) > 0 {
		t.Errorf("routes missing from the OpenAPI document:\n%s", strings.Join(missing, "\n"))
	}
	var spec struct {
		OpenAPI string                               `json:"openapi"`
		Paths   map[string]map[string]map[string]any `json:"paths"`
		Comps   struct {
			Schemas map[string]struct {
				Properties map[string]map[string]any `json:"properties"`
				Required   []string                  `json:"required"`
			} `json:"schemas"`
		} `json:"components"`
	}
	env.Call(http.MethodGet, api.DocPath, nil, http.StatusOK, &spec)
	if spec.OpenAPI != "3.0.3" {
		t.Errorf("openapi %q", spec.OpenAPI)
	}
	// Every route of the document is in the served spec, and every
	// documented operation is a real route.
	registered := map[string]bool{}
	for _, r := range env.Echo.Routes() {
		registered[r.Method+" "+r.Path] = true
	}
	for _, op := range env.Server.Doc().Operations() {
		if !registered[op.Method+" "+op.Path] {
			t.Errorf("documented but not routed: %s %s", op.Method, op.Path)
		}
		item, ok := spec.Paths[api.OpenAPIPath(op.Path)]
		if !ok || item[strings.ToLower(op.Method)] == nil {
			t.Errorf("%s %s missing from the served document", op.Method, op.Path)
		}
	}
	for _, p := range []string{
		api.Prefix + "tasks/{id}/", api.Prefix + "repositories/test/test/{id}/versions/{number}/",
		api.Prefix + "remotes/test/test/", api.Prefix + "distributions/test/test/{id}/", "/api/v1/ping/",
		api.Prefix + "repositories/routes/thing/{id}/sync/", "/healthz", "/readyz", api.Prefix + "status/", api.DocPath,
	} {
		if spec.Paths[p] == nil {
			t.Errorf("path %s missing", p)
		}
	}
	list := spec.Paths[api.Prefix+"repositories/test/test/"]["get"]
	raw, _ := json.Marshal(list)
	for _, want := range []string{`"name":"name__icontains"`, `"name":"ordering"`, `"name":"limit"`, `"$ref":"#/components/schemas/PaginatedRepositoryResponse"`} {
		if !strings.Contains(string(raw), want) {
			t.Errorf("list operation lacks %s: %s", want, raw)
		}
	}
	schemas := spec.Comps.Schemas
	if p := schemas["RemoteRequest"].Properties["password"]; p["writeOnly"] != true {
		t.Errorf("password is not write-only: %v", p)
	}
	if !slices.Equal(schemas["RemoteRequest"].Required, []string{"name", "url"}) {
		t.Errorf("remote request required %v", schemas["RemoteRequest"].Required)
	}
	if _, ok := schemas["RemoteResponse"].Properties["password"]; ok {
		t.Errorf("the remote response documents the password")
	}
	for _, name := range []string{"RepositoryResponse", "RepositoryVersionResponse", "TaskResponse", "WorkerResponse", "StatusResponse", "DistributionResponse", "TaskAccepted", "ValidationError", "Error"} {
		if _, ok := schemas[name]; !ok {
			t.Errorf("schema %s missing", name)
		}
	}
	if _, ok := schemas["TaskResponse"].Properties["pulp_href"]; !ok {
		t.Errorf("TaskResponse has no pulp_href: %+v", schemas["TaskResponse"])
	}
}

func TestUndocumentedRoutesAreFound(t *testing.T) {
	env := openapiEnv(t)
	env.Echo.GET("/api/v1/sneaky/", func(c echo.Context) error { return nil })
	env.Echo.GET("/v2/", func(c echo.Context) error { return nil }) // not an API route
	if got := api.Undocumented(env.Echo, env.Server.Doc()); !slices.Equal(got, []string{"GET /api/v1/sneaky/"}) {
		t.Errorf("Undocumented = %v", got)
	}
}

func TestDocRejectsDuplicates(t *testing.T) {
	d := api.NewDoc("t", "1")
	op := api.Operation{Method: http.MethodGet, Path: "/api/v1/x/"}
	if err := d.Add(op); err != nil {
		t.Fatal(err)
	}
	if err := d.Add(op); err == nil {
		t.Error("a duplicate operation was accepted")
	}
	if err := d.Add(api.Operation{Method: http.MethodPost, Path: "/api/v1/y/", ID: "get_api_v1_x"}); err == nil {
		t.Error("a duplicate operation ID was accepted")
	}
}

func TestMiddlewareAndPluginRoutes(t *testing.T) {
	env := openapiEnv(t)
	for _, p := range []string{"/healthz", "/readyz", api.Prefix + "status/", api.DocPath, "/api/v1/public-ping/"} {
		env.Call(http.MethodGet, p, nil, http.StatusOK, nil)
	}
	for _, p := range []string{api.Prefix + "tasks/", reposPath, "/api/v1/ping/"} {
		wantDetail(t, env.Do(http.MethodGet, p, nil), http.StatusUnauthorized, "credentials")
	}
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, env.URL+"/api/v1/ping/", nil)
	req.Header.Set("Authorization", "Bearer ok")
	resp, err := env.HTTP.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("authenticated plugin route: %d", resp.StatusCode)
	}
}

func TestNewRequiresDeps(t *testing.T) {
	if _, err := api.New(api.Deps{}); err == nil || !strings.Contains(err.Error(), "Store, Registry, Tasks") {
		t.Errorf("New(empty) = %v", err)
	}
}
