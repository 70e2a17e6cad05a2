package container_test

import (
	"fmt"
	iofs "io/fs"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/core"
	"github.com/berth-dev/berth/plugins/container"
)

// pushImageAs pushes img to name:ref as user (the manifest PUT makes the
// version).
func (e *env) pushImageAs(user, name, ref string, img image) {
	e.t.Helper()
	e.pushBlob(name, img.config)
	for _, l := range img.layers {
		e.pushBlob(name, l)
	}
	r := e.do(http.MethodPut, "/v2/"+name+"/manifests/"+ref, img.manifest, "Content-Type", img.mt, "X-Test-User", user)
	expect(e.t, "push "+name+":"+ref, r, http.StatusCreated, "")
}

// activityLine is one activity entry as "user: +[…] -[…]", with short
// digests named by short.
func activityLine(a container.VersionActivity, short map[string]string) string {
	conv := func(cs []container.Change) string {
		var out []string
		for _, c := range cs {
			if c.Kind == "tag" {
				out = append(out, "tag "+c.Tag+"→"+short[c.Digest])
			} else {
				out = append(out, "manifest "+short[c.Digest])
			}
		}
		return strings.Join(out, ",")
	}
	return fmt.Sprintf("%s: +[%s] -[%s]", a.CreatedBy, conv(a.Added), conv(a.Removed))
}

// With one version kept, the activity still shows every change: a push, a
// tag, a tag move, an untag and an image delete, newest first, each with
// its user and time; the history goes with the repository.
func TestActivitySurvivesVersionRetention(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		start := time.Now().UTC().Add(-time.Second)
		img1, img2 := newImage(1, "amd64"), newImage(1, "arm64")
		d1, d2 := img1.digest.String(), img2.digest.String()
		short := map[string]string{d1: "d1", d2: "d2"}

		e.pushImageAs("alice", "team/app", "1.0", img1)
		e.pushImageAs("alice", "team/app", "2.0", img2)
		if err := e.plugin.TagManifest(ctx, container.Identity{Username: "bob"}, "team/app", "stable", img1.digest); err != nil {
			t.Fatal(err)
		}
		if err := e.plugin.TagManifest(ctx, container.Identity{Username: "bob"}, "team/app", "stable", img2.digest); err != nil {
			t.Fatal(err)
		}
		ee, err := e.plugin.GetExecutionEnvironment(ctx, "team/app")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.plugin.RemoveContent(ctx, container.Identity{Username: "carol"}, ee.RepositoryID, container.Selection{Tags: []string{"2.0"}}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.plugin.RemoveContent(ctx, container.Identity{Username: "dave"}, ee.RepositoryID, container.Selection{Digests: []string{d1}}); err != nil {
			t.Fatal(err)
		}
		end := time.Now().UTC().Add(time.Second)

		// Retention kept the latest version alone.
		vs, kept, err := e.store.ListVersions(ctx, ee.RepositoryID, core.ListQuery{})
		if err != nil {
			t.Fatal(err)
		}
		if kept != 1 || vs[0].Number != 6 {
			t.Fatalf("versions kept = %d %+v, want version 6 alone", kept, vs)
		}

		acts, total, err := e.plugin.Activity(ctx, "team/app", container.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for i, a := range acts {
			got = append(got, activityLine(a, short))
			if a.Number != 6-i {
				t.Errorf("entry %d is version %d, want %d", i, a.Number, 6-i)
			}
			if a.CreatedAt.Before(start) || a.CreatedAt.After(end) || a.CreatedAt.Location() != time.UTC {
				t.Errorf("version %d made at %v, not between %v and %v (UTC)", a.Number, a.CreatedAt, start, end)
			}
			if i > 0 && a.CreatedAt.After(acts[i-1].CreatedAt) {
				t.Errorf("version %d (%v) is newer than version %d (%v)", a.Number, a.CreatedAt, acts[i-1].Number, acts[i-1].CreatedAt)
			}
		}
		want := []string{
			"dave: +[] -[manifest d1,tag 1.0→d1]",
			"carol: +[] -[tag 2.0→d2]",
			"bob: +[tag stable→d2] -[tag stable→d1]",
			"bob: +[tag stable→d1] -[]",
			"alice: +[manifest d2,tag 2.0→d2] -[]",
			"alice: +[manifest d1,tag 1.0→d1] -[]",
		}
		if total != 6 || strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Fatalf("activity (%d):\n%s\nwant:\n%s", total, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}

		// Paged by version.
		page, total, err := e.plugin.Activity(ctx, "team/app", container.ListOptions{Limit: 2, Offset: 2})
		if err != nil {
			t.Fatal(err)
		}
		if total != 6 || len(page) != 2 || page[0].Number != 4 || page[1].Number != 3 {
			t.Fatalf("page 2 of 2 = %d %+v", total, page)
		}

		// No version, no activity: tagging again as it is changes nothing.
		if err := e.plugin.TagManifest(ctx, container.Identity{Username: "erin"}, "team/app", "stable", img2.digest); err != nil {
			t.Fatal(err)
		}
		if _, total, _ := e.plugin.Activity(ctx, "team/app", container.ListOptions{}); total != 6 {
			t.Fatalf("an unchanged tag made activity: %d entries", total)
		}

		// The history goes with the repository.
		if err := e.plugin.DeleteExecutionEnvironment(ctx, container.Identity{}, "team/app"); err != nil {
			t.Fatal(err)
		}
		var left int64
		if err := e.g.Raw("SELECT COUNT(*) FROM container_activity WHERE repository_id = ?", ee.RepositoryID).Scan(&left).Error; err != nil {
			t.Fatal(err)
		}
		if left != 0 {
			t.Fatalf("%d activity rows outlived their repository", left)
		}
		// A new image of the same name starts a new history.
		e.pushImageAs("alice", "team/app", "1.0", img1)
		acts, total, err = e.plugin.Activity(ctx, "team/app", container.ListOptions{})
		if err != nil || total != 1 || activityLine(acts[0], short) != "alice: +[manifest d1,tag 1.0→d1] -[]" {
			t.Fatalf("activity of the new image = %d %+v %v", total, acts, err)
		}
	}, container.WithPushRetention(1))
}

// The migration that made container_activity backfills it from the
// versions a database has: the same rows the version hook writes.
func TestActivityMigrationBackfillMatchesTheHook(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		img1, img2 := newImage(1, "amd64"), newImage(1, "arm64")
		e.pushImageAs("alice", "team/app", "1.0", img1)
		e.pushImageAs("alice", "team/app", "2.0", img2)
		if err := e.plugin.TagManifest(ctx, container.Identity{Username: "bob"}, "team/app", "1.0", img2.digest); err != nil {
			t.Fatal(err)
		}
		idx := newIndex(mtOCIIndex, img1, img2)
		e.pushImageAs("carol", "team/app", "multi", idx)
		ee, err := e.plugin.GetExecutionEnvironment(ctx, "team/app")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.plugin.RemoveContent(ctx, container.Identity{Username: "dave"}, ee.RepositoryID, container.Selection{Tags: []string{"2.0"}}); err != nil {
			t.Fatal(err)
		}
		rows := func() string {
			var rs []struct {
				RepositoryID, CreatedBy, Action, Tag, Digest string
				Version                                      int
				CreatedAt                                    time.Time
			}
			if err := e.g.Raw(`SELECT repository_id, version, created_at, created_by, action, tag, digest FROM container_activity
				ORDER BY repository_id, version, action, tag, digest`).Scan(&rs).Error; err != nil {
				t.Fatal(err)
			}
			return fmt.Sprint(rs)
		}
		hooked := rows()
		b, err := iofs.ReadFile(container.Migrations().FS, string(e.store.Dialect())+"/00011_activity.sql")
		if err != nil {
			t.Fatal(err)
		}
		up := strings.Split(string(b), "-- +goose Down")[0]
		backfill := up[strings.Index(up, "INSERT INTO container_activity"):]
		if err := e.g.Exec("DELETE FROM container_activity").Error; err != nil {
			t.Fatal(err)
		}
		if err := e.g.Exec(backfill).Error; err != nil {
			t.Fatal(err)
		}
		if got := rows(); got != hooked || !strings.Contains(got, "tag_removed") {
			t.Fatalf("backfill:\n%s\nhook:\n%s", got, hooked)
		}
	})
}
