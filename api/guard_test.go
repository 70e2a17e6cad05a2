package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"net/http"
	"slices"
	"sync"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/api/apitest"
	"github.com/berth-dev/berth/core"
)

// guardedPlugin has distributions of type guard.box whose extension
// refuses the name "bad" and records the saves that committed, and a
// route of its own.
type guardedPlugin struct{ ext *recordingExt }

func (guardedPlugin) Name() string      { return "guard" }
func (guardedPlugin) Migrations() fs.FS { return nil }
func (guardedPlugin) Types() core.Types {
	return core.Types{Repositories: []string{"guard.box"}, Distributions: []string{"guard.box"}}
}

func (p guardedPlugin) APIExtension(kind, typ string) api.Extension {
	if kind == "distribution" && typ == "guard.box" {
		return p.ext
	}
	return nil
}

func (guardedPlugin) APIRoutes(r *api.Router) {
	r.Add(api.Operation{Method: http.MethodPost, Path: api.Prefix + "guard/poke/", Summary: "Poke", Status: http.StatusNoContent},
		func(c echo.Context) error { return c.NoContent(http.StatusNoContent) })
}

type recordingExt struct {
	mu        sync.Mutex
	committed []string
}

func (*recordingExt) NewFields() any { return &struct{}{} }

func (*recordingExt) Save(_ context.Context, _ *core.Store, _ api.SaveOp, obj any, _ any, _ api.Fields) error {
	if obj.(*core.Distribution).Name == "bad" {
		return core.Invalid("name", "must not be bad")
	}
	return nil
}

func (*recordingExt) Show(context.Context, *core.Store, []string) (map[string]any, error) {
	return nil, nil
}

func (x *recordingExt) Committed(_ context.Context, op api.SaveOp, obj any) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.committed = append(x.committed, obj.(*core.Distribution).Name)
}

// TestWriteGuardAndCommitted: Deps.WriteGuard stands before the core's
// writes only (not its reads, nor plugin routes); an extension's Committed
// runs after the saves that committed, and only those.
func TestWriteGuardAndCommitted(t *testing.T) {
	ext := &recordingExt{}
	guard := func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if c.Request().Header.Get("X-Allowed") == "" {
				return errors.Join(errors.New("guarded"), core.ErrForbidden)
			}
			return next(c)
		}
	}
	apitest.Each(t, apitest.Options{Plugins: []core.Plugin{guardedPlugin{ext}}, WriteGuard: guard}, func(t *testing.T, env *apitest.Env) {
		repos, dists := api.TypedListHref(api.Repositories, "guard.box"), api.TypedListHref(api.Distributions, "guard.box")
		env.Call(http.MethodPost, repos, map[string]any{"name": "r"}, http.StatusForbidden, nil)
		env.Call(http.MethodPost, dists, map[string]any{"name": "d", "base_path": "d"}, http.StatusForbidden, nil)
		env.Call(http.MethodPatch, api.Prefix+"tasks/00000000-0000-0000-0000-000000000000/", map[string]any{"state": "canceled"}, http.StatusForbidden, nil)
		env.Call(http.MethodGet, repos, nil, http.StatusOK, nil)
		env.Call(http.MethodGet, api.Prefix+"status/", nil, http.StatusOK, nil)
		env.Call(http.MethodPost, api.Prefix+"guard/poke/", nil, http.StatusNoContent, nil)

		do := func(body map[string]any, want int) {
			t.Helper()
			raw, _ := json.Marshal(body)
			req, _ := http.NewRequest(http.MethodPost, env.URL+dists, bytes.NewReader(raw))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("X-Allowed", "yes")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != want {
				t.Fatalf("create %v: %d, want %d", body, resp.StatusCode, want)
			}
		}
		do(map[string]any{"name": "good", "base_path": "good"}, http.StatusCreated)
		do(map[string]any{"name": "bad", "base_path": "bad"}, http.StatusBadRequest)
		do(map[string]any{"name": "good", "base_path": "good"}, http.StatusConflict) // the core refuses: nothing committed
		ext.mu.Lock()
		defer ext.mu.Unlock()
		if !slices.Equal(ext.committed, []string{"good"}) {
			t.Fatalf("Committed saw %v", ext.committed)
		}
		ext.committed = nil
	})
}
