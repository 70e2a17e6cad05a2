package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/opencontainers/go-digest"
	"gorm.io/gorm"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/api/apitest"
	"github.com/berth-dev/berth/core"
	"github.com/berth-dev/berth/core/db"
	"github.com/berth-dev/berth/core/storage/fs"
	"github.com/berth-dev/berth/internal/testdb"
	"github.com/berth-dev/berth/migrations"
)

// TestOrphanCleanupAPI: POST orphans/cleanup/ validates its body before it
// dispatches anything, and the task removes orphans and reports what it
// reclaimed.
func TestOrphanCleanupAPI(t *testing.T) {
	testdb.Each(t, []db.MigrationSet{migrations.Core}, func(t *testing.T, g *gorm.DB) {
		ctx := context.Background()
		store := core.NewStore(g, nil)
		blobs, err := fs.New(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		cleaner, err := core.NewOrphanCleaner(store, blobs, nil, core.WithCleanerLogger(apitest.Logger()))
		if err != nil {
			t.Fatal(err)
		}
		env := apitest.New(t, g, apitest.Options{TaskHandlers: api.OrphanTasks{Cleaner: cleaner}.TaskHandlers()})
		path := api.Prefix + "orphans/cleanup/"

		for _, c := range []struct {
			body  any
			field string
		}{
			{map[string]any{"orphan_protection_time": -1}, "orphan_protection_time"},
			{map[string]any{"orphan_protection_time": "soon"}, "orphan_protection_time"},
			{map[string]any{"content_hrefs": []string{}}, "content_hrefs"},
		} {
			r := env.Do(http.MethodPost, path, c.body)
			var fields map[string][]string
			if r.Status != http.StatusBadRequest || json.Unmarshal(r.Body, &fields) != nil || len(fields[c.field]) == 0 {
				t.Errorf("%v: %d %s, want 400 naming %s", c.body, r.Status, r.Body, c.field)
			}
		}
		var page api.Page[api.TaskResponse]
		env.Call(http.MethodGet, api.Prefix+"tasks/", nil, http.StatusOK, &page)
		if page.Count != 0 {
			t.Fatalf("rejected requests dispatched %d tasks", page.Count)
		}

		// An orphan blob: a file, its artifact and content in no version.
		data := []byte("an orphan")
		d := digest.FromBytes(data)
		if _, err := blobs.Put(ctx, d, int64(len(data)), bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
		err = store.Tx(ctx, func(tx *core.Store) error {
			a, _, err := tx.GetOrCreateArtifact(ctx, d.String(), int64(len(data)))
			if err != nil {
				return err
			}
			c, _, err := tx.GetOrCreateContent(ctx, "test.blob", d.String())
			if err != nil {
				return err
			}
			return tx.AttachArtifact(ctx, c.ID, d.String(), &a.ID)
		})
		if err != nil {
			t.Fatal(err)
		}
		var sum core.StorageSummary
		env.Call(http.MethodGet, api.Prefix+"storage/", nil, http.StatusOK, &sum)
		if sum.Total.Bytes != int64(len(data)) || sum.Unreferenced.Bytes != int64(len(data)) || sum.OrphanContent != 1 {
			t.Fatalf("storage summary %+v", sum)
		}

		// The default protection (here 0, the OrphanTasks default) applies
		// without a body; a day's protection keeps it.
		tr := env.RunTask(env.Call(http.MethodPost, path, map[string]any{"orphan_protection_time": 1440}, http.StatusAccepted, nil))
		var rep core.CleanupReport
		if err := json.Unmarshal(tr.Result, &rep); err != nil || rep.ContentRemoved != 0 || rep.ProtectionSeconds != 86400 {
			t.Fatalf("protected cleanup: %s %v", tr.Result, err)
		}
		tr = env.RunTask(env.Call(http.MethodPost, path, map[string]any{"orphan_protection_time": 0}, http.StatusAccepted, nil))
		if err := json.Unmarshal(tr.Result, &rep); err != nil || rep.ContentRemoved != 1 || rep.FilesRemoved != 1 || rep.BytesReclaimed != int64(len(data)) {
			t.Fatalf("cleanup: %s %v", tr.Result, err)
		}
		codes := map[string]string{}
		for _, p := range tr.ProgressReports {
			codes[p.Code] = p.State
		}
		for _, c := range []string{"clean-up.content", "clean-up.artifacts", "clean-up.files"} {
			if codes[c] != "completed" {
				t.Errorf("progress %s: %q in %+v", c, codes[c], tr.ProgressReports)
			}
		}
		if _, err := blobs.Stat(ctx, d); err == nil {
			t.Fatal("the orphan's file is still stored")
		}
		if tr.ReservedResourcesRecord[0] != api.OrphansResource {
			t.Fatalf("resources %v", tr.ReservedResourcesRecord)
		}
	})
}
