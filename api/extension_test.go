package api_test

import (
	"context"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/api/apitest"
	"github.com/berth-dev/berth/core"
	"github.com/berth-dev/berth/core/db"
	"github.com/berth-dev/berth/internal/testdb"
	"github.com/berth-dev/berth/migrations"
)

// extPlugin's distributions (type ext.box) carry a label of the plugin's,
// kept in a table of its own.
type extPlugin struct{ conflicting bool }

const extTable = `-- +goose Up
CREATE TABLE ext_labels (object_id TEXT PRIMARY KEY, label TEXT NOT NULL);
-- +goose Down
DROP TABLE ext_labels;
`

func (extPlugin) Name() string { return "ext" }
func (extPlugin) Migrations() fs.FS {
	return fstest.MapFS{
		"postgres/00001_ext.sql": {Data: []byte(extTable)},
		"sqlite/00001_ext.sql":   {Data: []byte(extTable)},
	}
}
func (extPlugin) Types() core.Types { return core.Types{Distributions: []string{"ext.box"}} }

func (p extPlugin) APIExtension(kind, typ string) api.Extension {
	if kind == "distribution" && typ == "ext.box" {
		if p.conflicting {
			return conflictingExt{}
		}
		return boxExt{}
	}
	return nil
}

type boxFields struct {
	Label string `json:"label" api:"required" doc:"The box's label."`
	Seen  string `json:"seen" api:"readonly"`
}

type boxExt struct{}

func (boxExt) NewFields() any { return &boxFields{} }

func (boxExt) Save(ctx context.Context, tx *core.Store, op api.SaveOp, obj any, fields any, given api.Fields) error {
	d := obj.(*core.Distribution)
	f := fields.(*boxFields)
	if op == api.Update && !given.Has("label") {
		return nil
	}
	if f.Label == "bad" {
		return core.Invalid("label", "must not be bad")
	}
	if op == api.Create {
		return core.Translate(tx.DB(ctx).Exec("INSERT INTO ext_labels (object_id, label) VALUES (?, ?)", d.ID, f.Label).Error)
	}
	return core.Translate(tx.DB(ctx).Exec("UPDATE ext_labels SET label = ? WHERE object_id = ?", f.Label, d.ID).Error)
}

func (boxExt) Show(ctx context.Context, s *core.Store, ids []string) (map[string]any, error) {
	var rows []struct{ ObjectID, Label string }
	if err := s.DB(ctx).Raw("SELECT object_id, label FROM ext_labels WHERE object_id IN ?", ids).Scan(&rows).Error; err != nil {
		return nil, err
	}
	out := map[string]any{}
	for _, r := range rows {
		out[r.ObjectID] = &boxFields{Label: r.Label, Seen: "yes"}
	}
	return out, nil
}

type conflictingExt struct{ boxExt }

func (conflictingExt) NewFields() any {
	return &struct {
		BasePath string `json:"base_path"`
	}{}
}

func TestExtension(t *testing.T) {
	p := extPlugin{}
	apitest.Each(t, apitest.Options{Plugins: []core.Plugin{p}, Migrations: []db.MigrationSet{{Name: "ext", FS: p.Migrations()}}}, func(t *testing.T, env *apitest.Env) {
		list := api.TypedListHref(api.Distributions, "ext.box")
		wantFields(t, env.Do(http.MethodPost, list, map[string]any{"name": "b", "base_path": "b"}), map[string]string{"label": api.MsgRequired})
		wantFields(t, env.Do(http.MethodPost, list, map[string]any{"name": "b", "base_path": "b", "label": "l", "seen": "x"}), map[string]string{"seen": api.MsgUnexpected})
		wantFields(t, env.Do(http.MethodPost, list, map[string]any{"name": "b", "base_path": "b", "label": 3, "bogus": 1}), map[string]string{"label": "string", "bogus": api.MsgUnexpected})
		// The plugin refusing undoes the core's insert.
		wantFields(t, env.Do(http.MethodPost, list, map[string]any{"name": "b", "base_path": "b", "label": "bad"}), map[string]string{"label": "bad"})
		var page struct {
			Count   int              `json:"count"`
			Results []map[string]any `json:"results"`
		}
		env.Call(http.MethodGet, list, nil, http.StatusOK, &page)
		if page.Count != 0 {
			t.Fatalf("a refused create left %d distributions", page.Count)
		}

		var d map[string]any
		env.Call(http.MethodPost, list, map[string]any{"name": "b", "base_path": "b", "label": "first"}, http.StatusCreated, &d)
		if d["label"] != "first" || d["seen"] != "yes" || d["name"] != "b" || !strings.HasPrefix(d["pulp_href"].(string), list) {
			t.Errorf("created %v", d)
		}
		href := d["pulp_href"].(string)
		env.Call(http.MethodPatch, href, map[string]any{"private": true}, http.StatusOK, &d)
		if d["label"] != "first" || d["private"] != true {
			t.Errorf("after PATCH without label: %v", d)
		}
		env.Call(http.MethodPatch, href, map[string]any{"label": "second"}, http.StatusOK, &d)
		if d["label"] != "second" {
			t.Errorf("after PATCH: %v", d)
		}
		wantFields(t, env.Do(http.MethodPatch, href, map[string]any{"label": "bad", "base_path": "moved"}), map[string]string{"label": "bad"})
		wantFields(t, env.Do(http.MethodPut, href, map[string]any{"name": "b", "base_path": "b"}), map[string]string{"label": api.MsgRequired})
		env.Call(http.MethodGet, href, nil, http.StatusOK, &d)
		if d["label"] != "second" || d["base_path"] != "b" {
			t.Errorf("refused updates changed %v", d)
		}
		env.Call(http.MethodGet, api.Prefix+"distributions/", nil, http.StatusOK, &page)
		if page.Count != 1 || page.Results[0]["label"] != "second" {
			t.Errorf("generic list %+v", page)
		}

		// The document shows the plugin's fields with the core's.
		var spec struct {
			Components struct {
				Schemas map[string]struct {
					Properties map[string]map[string]any `json:"properties"`
					Required   []string                  `json:"required"`
				} `json:"schemas"`
			} `json:"components"`
			Paths map[string]map[string]any `json:"paths"`
		}
		env.Call(http.MethodGet, api.DocPath, nil, http.StatusOK, &spec)
		req := spec.Components.Schemas["ExtBoxDistributionRequest"]
		if req.Properties["label"] == nil || req.Properties["base_path"] == nil || strings.Join(req.Required, ",") != "base_path,label,name" {
			t.Errorf("request schema %+v", req)
		}
		resp := spec.Components.Schemas["ExtBoxDistributionResponse"]
		if resp.Properties["seen"]["readOnly"] != true || resp.Properties["pulp_href"] == nil {
			t.Errorf("response schema %+v", resp)
		}
		if _, ok := spec.Components.Schemas["PaginatedExtBoxDistributionResponse"]; !ok {
			t.Error("no paginated schema")
		}
	})
}

func TestExtensionConflict(t *testing.T) {
	g := testdb.Open(t, db.SQLite, migrations.Core)
	reg := core.NewRegistry()
	if err := reg.Register(extPlugin{conflicting: true}); err != nil {
		t.Fatal(err)
	}
	env := apitest.New(t, g, apitest.Options{})
	srv, err := api.New(api.Deps{Store: env.Store, Registry: reg, Tasks: fakeTasks{}, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Register(api.NewEcho(slog.New(slog.DiscardHandler))); err == nil || !strings.Contains(err.Error(), "base_path") {
		t.Errorf("Register = %v, want a conflict on base_path", err)
	}
}
