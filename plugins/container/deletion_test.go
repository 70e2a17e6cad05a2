package container_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/opencontainers/go-digest"
	"gorm.io/gorm"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/api/apitest"
	"github.com/berth-dev/berth/core"
	"github.com/berth-dev/berth/core/storage/fs"
	"github.com/berth-dev/berth/internal/testdb"
	"github.com/berth-dev/berth/plugins/container"
	"github.com/berth-dev/berth/tasks"
)

// delEnv is a registry (pushes keep one repository version, as the server
// configures them) with the REST routes and tasks of deletions and an
// orphan cleaner.
type delEnv struct {
	*restEnv
	cleaner *core.OrphanCleaner
}

// lazyDispatcher dispatches through the API env's task system, made after
// the routes that use it.
type lazyDispatcher struct{ env **apitest.Env }

func (l lazyDispatcher) Dispatch(ctx context.Context, s tasks.Spec) (*tasks.Task, error) {
	return (*l.env).Tasks.Dispatcher().Dispatch(ctx, s)
}

func eachDeletion(t *testing.T, fn func(t *testing.T, e *delEnv), opts ...container.Option) {
	testdb.Each(t, sets, func(t *testing.T, g *gorm.DB) {
		perms := fakePerms{roles: map[string]map[string]string{
			"ann": {"del": "owner", "ret": "owner", "gone": "owner"},
			"bob": {"del": "consumer", "gone": "consumer"},
		}}
		e := &delEnv{restEnv: &restEnv{}}
		e.env = newEnv(t, g, t.TempDir(), append([]container.Option{container.WithAuthorizer(perms), container.WithPushRetention(1)}, opts...)...)
		reg := core.NewRegistry()
		if err := reg.Register(e.plugin); err != nil {
			t.Fatal(err)
		}
		blobs, err := fs.New(filepath.Join(e.dir, "storage"))
		if err != nil {
			t.Fatal(err)
		}
		quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
		if e.cleaner, err = core.NewOrphanCleaner(e.store, blobs, reg, core.WithCleanerLogger(quiet)); err != nil {
			t.Fatal(err)
		}
		handlers := e.plugin.MaintenanceTasks().TaskHandlers()
		for n, h := range (api.OrphanTasks{Cleaner: e.cleaner, Log: quiet}).TaskHandlers() {
			handlers[n] = h
		}
		var apiEnv *apitest.Env
		apiEnv = apitest.New(t, g, apitest.Options{Plugins: []core.Plugin{e.plugin},
			Middleware:   []echo.MiddlewareFunc{callerFromHeader},
			TaskHandlers: handlers,
			Routes:       []api.Routes{e.plugin.MaintenanceRoutes(lazyDispatcher{&apiEnv})}})
		e.api = apiEnv
		fn(t, e)
	})
}

// layered makes an OCI image over the given layers (shared with other
// images when the same bytes are given).
func layered(layers ...[]byte) image {
	img := newImage(0, "amd64")
	var m map[string]any
	_ = json.Unmarshal(img.manifest, &m)
	var ls []map[string]any
	for _, l := range layers {
		ls = append(ls, map[string]any{"mediaType": mtOCILayer, "digest": digest.FromBytes(l), "size": len(l)})
	}
	m["layers"] = ls
	img.layers = layers
	img.manifest, _ = json.Marshal(m)
	img.digest = digest.FromBytes(img.manifest)
	return img
}

// task runs a REST request that answers 202 and returns the finished
// task (which must complete).
func (e *delEnv) task(method, path, user string, body any) api.TaskResponse {
	e.t.Helper()
	r := e.want(e.call(method, path, user, body), http.StatusAccepted)
	return e.api.RunTask(r.body)
}

// removal decodes a task's result.
func removal(t *testing.T, tr api.TaskResponse) container.RemovalReport {
	t.Helper()
	var rep container.RemovalReport
	if err := json.Unmarshal(tr.Result, &rep); err != nil {
		t.Fatalf("result %s: %v", tr.Result, err)
	}
	return rep
}

func (e *delEnv) repo(name string) *core.Repository {
	e.t.Helper()
	r, err := e.store.RepositoryByName(ctx, name)
	if err != nil {
		e.t.Fatalf("repository %s: %v", name, err)
	}
	return r
}

func repoPath(r *core.Repository, action string) string {
	return api.RepositoryHref(r.Type, r.ID) + action
}

// file reports whether blob storage holds the file of d.
func (e *delEnv) file(d digest.Digest) bool {
	_, err := os.Stat(filepath.Join(e.dir, "storage", "blobs", "sha256", d.Encoded()[:2], d.Encoded()))
	return err == nil
}

func (e *delEnv) cleanup() *core.CleanupReport {
	e.t.Helper()
	rep, err := e.cleaner.Cleanup(ctx, core.CleanupOptions{})
	if err != nil {
		e.t.Fatalf("orphan cleanup: %v", err)
	}
	return rep
}

// pulls fails unless the image pulls whole from name: manifest, config
// and layers, byte for byte.
func (e *delEnv) pulls(name, ref string, img image) {
	e.t.Helper()
	r := e.do(http.MethodGet, "/v2/"+name+"/manifests/"+ref, nil)
	if r.status != 200 || !bytes.Equal(r.body, img.manifest) {
		e.t.Fatalf("manifest %s:%s: %s", name, ref, r)
	}
	if img.config == nil {
		return // an index
	}
	for _, b := range append([][]byte{img.config}, img.layers...) {
		r := e.do(http.MethodGet, "/v2/"+name+"/blobs/"+digest.FromBytes(b).String(), nil)
		if r.status != 200 || !bytes.Equal(r.body, b) {
			e.t.Fatalf("blob %s of %s:%s: %s", digest.FromBytes(b), name, ref, r)
		}
	}
}

// TestRemoveImages removes images by digest and by tag through the REST
// API: their tags and unique blobs leave the repository, an orphan
// cleanup then removes the unique blobs' files, and shared ones stay.
func TestRemoveImages(t *testing.T) {
	eachDeletion(t, func(t *testing.T, e *delEnv) {
		shared := randomBytes(300)
		a := layered(shared, randomBytes(200))
		b := layered(shared, randomBytes(200))
		c := layered(randomBytes(100))
		e.pushAs("ann", "del/app", "a", a)
		e.pushAs("ann", "del/app", "b", b)
		e.pushAs("ann", "del/app", "c", c)
		expect(t, "tag a2", e.do(http.MethodPut, "/v2/del/app/manifests/a2", a.manifest, "Content-Type", a.mt), 201, "")
		repo := e.repo("del/app")

		// By digest: a goes with both its tags and its unique blobs.
		rep := removal(t, e.task(http.MethodPost, repoPath(repo, "remove_image/"), "ann", map[string]string{"digest": a.digest.String()}))
		wantBlobs := []string{digest.FromBytes(a.config).String(), digest.FromBytes(a.layers[1]).String()}
		slices.Sort(wantBlobs)
		if !slices.Equal(rep.Manifests, []string{a.digest.String()}) || !slices.Equal(rep.Blobs, wantBlobs) || len(rep.Tags) != 2 || !rep.Created {
			t.Fatalf("remove by digest: %+v; want manifest %s, blobs %v, tags a and a2", rep, a.digest, wantBlobs)
		}
		// By tag: c goes.
		rep = removal(t, e.task(http.MethodPost, repoPath(repo, "remove_image/"), "ann", map[string]string{"tag": "c"}))
		if !slices.Equal(rep.Manifests, []string{c.digest.String()}) || len(rep.Blobs) != 2 {
			t.Fatalf("remove by tag: %+v", rep)
		}
		if got := e.tags("del/app"); !slices.Equal(got, []string{"b"}) {
			t.Fatalf("tags %v, want [b]", got)
		}
		expect(t, "removed manifest", e.do(http.MethodGet, "/v2/del/app/manifests/"+a.digest.String(), nil), 404, "MANIFEST_UNKNOWN")

		before := e.cleanup()
		for _, bl := range [][]byte{a.config, a.layers[1], c.config, c.layers[0]} {
			if e.file(digest.FromBytes(bl)) {
				t.Errorf("the file of removed blob %s is still stored (cleanup %+v)", digest.FromBytes(bl), before)
			}
		}
		if !e.file(digest.FromBytes(shared)) {
			t.Fatal("the shared layer's file was removed")
		}
		if before.BytesReclaimed != int64(len(a.config)+len(a.layers[1])+len(c.config)+len(c.layers[0])) {
			t.Errorf("reclaimed %d bytes, want the 4 unique blobs'", before.BytesReclaimed)
		}
		e.pulls("del/app", "b", b)

		// A removed image pushed again pulls again.
		e.pushAs("ann", "del/app", "a", a)
		e.pulls("del/app", "a", a)
	})
}

// TestRemoveContentREST: remove/ with content hrefs from the content
// lists; untag/ removes only the tag; indexes take their children along
// unless something else names them, and a manifest an index that stays
// lists is kept.
func TestRemoveContentREST(t *testing.T) {
	eachDeletion(t, func(t *testing.T, e *delEnv) {
		x, y := layered(randomBytes(100)), layered(randomBytes(100))
		e.pushAs("ann", "del/multi", "x", x)
		e.pushAs("ann", "del/multi", y.digest.String(), y)
		idx := newIndex(mtOCIIndex, x, y)
		expect(t, "index", e.do(http.MethodPut, "/v2/del/multi/manifests/all", idx.manifest, "Content-Type", idx.mt), 201, "")
		repo := e.repo("del/multi")
		latest := api.VersionHref(repo.Type, repo.ID, e.repo("del/multi").LatestVersion)

		// The content lists give the hrefs.
		var page struct {
			Count   int                          `json:"count"`
			Results []container.ManifestResponse `json:"results"`
		}
		e.api.Call(http.MethodGet, "/pulp/api/v3/content/container/manifests/?repository_version="+latest, nil, 200, &page)
		if page.Count != 3 {
			t.Fatalf("%d manifests listed, want 3", page.Count)
		}
		href := map[string]string{}
		for _, m := range page.Results {
			href[m.Digest] = m.Href
			if m.Digest == idx.digest.String() && len(m.ListedManifests) != 2 {
				t.Fatalf("index lists %v", m.ListedManifests)
			}
			if m.Digest == x.digest.String() && (m.ConfigBlob == nil || len(m.Blobs) != 2) {
				t.Fatalf("image x: config %v, blobs %v", m.ConfigBlob, m.Blobs)
			}
		}

		// x is listed by the index, which stays: kept.
		rep := removal(t, e.task(http.MethodPost, repoPath(repo, "remove/"), "ann", map[string][]string{"content_units": {href[x.digest.String()]}}))
		if len(rep.Manifests) != 0 || len(rep.Kept) != 1 || rep.Kept[0].Digest != x.digest.String() || !strings.Contains(rep.Kept[0].Reason, "index") {
			t.Fatalf("removing an indexed manifest: %+v", rep)
		}
		// The index goes with y (untagged) but not x (tagged).
		rep = removal(t, e.task(http.MethodPost, repoPath(repo, "remove/"), "ann", map[string][]string{"content_units": {href[idx.digest.String()]}}))
		want := []string{idx.digest.String(), y.digest.String()}
		slices.Sort(want)
		if !slices.Equal(rep.Manifests, want) || len(rep.Tags) != 1 || rep.Tags[0].Name != "all" || len(rep.Blobs) != 2 {
			t.Fatalf("removing the index: %+v", rep)
		}
		e.pulls("del/multi", "x", x)

		// untag/ leaves the manifest.
		rep = removal(t, e.task(http.MethodPost, repoPath(repo, "untag/"), "ann", map[string]string{"tag": "x"}))
		if len(rep.Tags) != 1 || len(rep.Manifests) != 0 || len(rep.Blobs) != 0 {
			t.Fatalf("untag: %+v", rep)
		}
		expect(t, "untagged manifest by digest", e.do(http.MethodGet, "/v2/del/multi/manifests/"+x.digest.String(), nil), 200, "")

		// Bad input: 400 naming the field, nothing dispatched.
		n := taskCount(t, e)
		for _, c := range []struct {
			path  string
			body  any
			field string
		}{
			{"remove/", map[string]any{"content_units": []string{"/pulp/api/v3/content/container/blobs/00000000-0000-0000-0000-000000000000/"}}, "content_units"},
			{"remove/", map[string]any{"content_units": []string{"/pulp/api/v3/nothing/"}}, "content_units"},
			{"remove/", map[string]any{"content_units": []string{}}, "content_units"},
			{"remove/", map[string]any{}, "content_units"},
			{"untag/", map[string]any{"tag": "nope"}, "tag"},
			{"remove_image/", map[string]any{"digest": "sha256:nothex"}, "digest"},
			{"remove_image/", map[string]any{"digest": digest.FromString("absent").String()}, "digest"},
			{"remove_image/", map[string]any{}, "non_field_errors"},
			{"retention/", map[string]any{"keep_tags": -1}, "keep_tags"},
			{"retention/", map[string]any{"keep_tags": 1, "tag_pattern": "("}, "tag_pattern"},
			{"retention/", map[string]any{}, "non_field_errors"},
		} {
			r := e.want(e.call(http.MethodPost, repoPath(repo, c.path), "ann", c.body), http.StatusBadRequest)
			var fields map[string][]string
			if err := json.Unmarshal(r.body, &fields); err != nil || len(fields[c.field]) == 0 {
				t.Errorf("%s %v: %s, want a message for %s", c.path, c.body, r.body, c.field)
			}
		}
		// Not allowed: someone without a role on the namespace may not remove.
		e.want(e.call(http.MethodPost, repoPath(repo, "remove_image/"), "carl", map[string]string{"digest": x.digest.String()}), http.StatusForbidden)
		if got := taskCount(t, e); got != n {
			t.Fatalf("%d tasks after rejected requests, want %d", got, n)
		}
	})
}

func taskCount(t *testing.T, e *delEnv) int {
	t.Helper()
	var p struct {
		Count int `json:"count"`
	}
	e.api.Call(http.MethodGet, "/pulp/api/v3/tasks/", nil, 200, &p)
	return p.Count
}

// TestRetention: keep the newest tags matching a pattern, remove untagged
// manifests, never one a tag or an index still references nor the
// signature of a kept image; the dry run lists exactly what the real run
// removes.
func TestRetention(t *testing.T) {
	eachDeletion(t, func(t *testing.T, e *delEnv) {
		var imgs []image
		for i := range 4 {
			img := layered(randomBytes(100))
			imgs = append(imgs, img)
			e.pushAs("ann", "ret/app", fmt.Sprintf("v%d", i+1), img)
			time.Sleep(2 * time.Millisecond)
		}
		e.pushAs("ann", "ret/app", "latest", imgs[0])
		// An untagged child of a tagged index, an untagged loose image, and
		// a signature of v4.
		child := layered(randomBytes(100))
		e.pushAs("ann", "ret/app", child.digest.String(), child)
		idx := newIndex(mtOCIIndex, child)
		expect(t, "index", e.do(http.MethodPut, "/v2/ret/app/manifests/multi", idx.manifest, "Content-Type", idx.mt), 201, "")
		loose := layered(randomBytes(100))
		e.pushAs("ann", "ret/app", loose.digest.String(), loose)
		sig := layered(randomBytes(50))
		var sm map[string]any
		_ = json.Unmarshal(sig.manifest, &sm)
		sm["subject"] = imgs[3].descriptor()
		sig.manifest, _ = json.Marshal(sm)
		sig.digest = digest.FromBytes(sig.manifest)
		e.pushAs("ann", "ret/app", sig.digest.String(), sig)
		repo := e.repo("ret/app")

		policy := map[string]any{"keep_tags": 2, "tag_pattern": "v[0-9]+", "untagged_older_than_days": 0}
		dry := removal(t, e.task(http.MethodPost, repoPath(repo, "retention/"), "ann", withDryRun(policy, true)))
		if !dry.DryRun || dry.Created {
			t.Fatalf("dry run: %+v", dry)
		}
		// v1 (also "latest") and v2 lose their tag; v2's image is untagged
		// then, v1's is not; the loose image goes; child, index and
		// signature stay.
		tags := []string{}
		for _, tg := range dry.Tags {
			tags = append(tags, tg.Name)
		}
		want := []string{imgs[1].digest.String(), loose.digest.String()}
		slices.Sort(want)
		if !slices.Equal(tags, []string{"v1", "v2"}) || !slices.Equal(dry.Manifests, want) {
			t.Fatalf("dry run removes tags %v, manifests %v; want [v1 v2], %v", tags, dry.Manifests, want)
		}
		if got := e.tags("ret/app"); len(got) != 6 {
			t.Fatalf("the dry run changed the tags: %v", got)
		}
		real := removal(t, e.task(http.MethodPost, repoPath(repo, "retention/"), "ann", withDryRun(policy, false)))
		if !real.Created || !slices.Equal(real.Manifests, dry.Manifests) || !slices.Equal(real.Blobs, dry.Blobs) || fmt.Sprint(real.Tags) != fmt.Sprint(dry.Tags) {
			t.Fatalf("the real run removed %+v, the dry run said %+v", real, dry)
		}
		if got := e.tags("ret/app"); !slices.Equal(got, []string{"latest", "multi", "v3", "v4"}) {
			t.Fatalf("tags after retention: %v", got)
		}
		for _, kept := range []image{child, sig, imgs[0]} {
			expect(t, "kept "+kept.digest.String(), e.do(http.MethodGet, "/v2/ret/app/manifests/"+kept.digest.String(), nil), 200, "")
		}
		e.pulls("ret/app", "multi", idx)

		// A stored policy is applied by a run without a body, and shown.
		e.want(e.call(http.MethodPut, repoPath(repo, "retention_policy/"), "ann", map[string]any{"keep_tags": 1, "tag_pattern": "v.*"}), 200)
		var stored container.RetentionPolicyResponse
		if err := json.Unmarshal(e.want(e.call(http.MethodGet, repoPath(repo, "retention_policy/"), "ann", nil), 200).body, &stored); err != nil || stored.KeepTags == nil || *stored.KeepTags != 1 {
			t.Fatalf("stored policy %+v %v", stored, err)
		}
		rep := removal(t, e.task(http.MethodPost, repoPath(repo, "retention/"), "ann", map[string]any{}))
		if len(rep.Tags) != 1 || rep.Tags[0].Name != "v3" {
			t.Fatalf("stored policy removed %+v, want tag v3", rep.Tags)
		}
		e.want(e.call(http.MethodDelete, repoPath(repo, "retention_policy/"), "ann", nil), http.StatusNoContent)
		e.want(e.call(http.MethodGet, repoPath(repo, "retention_policy/"), "ann", nil), http.StatusNotFound)
	})
}

func withDryRun(p map[string]any, dry bool) map[string]any {
	out := map[string]any{"dry_run": dry}
	for k, v := range p {
		out[k] = v
	}
	return out
}

// TestOrphanProtection: a blob uploaded for a push whose manifest has not
// come yet is kept by orphan cleanup until its upload expires; a blob a
// manifest in a version references is kept even when removed from the
// repository by DELETE /v2/…/blobs/.
func TestOrphanProtection(t *testing.T) {
	eachDeletion(t, func(t *testing.T, e *delEnv) {
		pending := e.pushBlob("del/pending", randomBytes(64))
		img := layered(randomBytes(64))
		e.pushAs("ann", "del/kept", "1", img)
		layer := digest.FromBytes(img.layers[0])
		expect(t, "delete blob", e.do(http.MethodDelete, "/v2/del/kept/blobs/"+layer.String(), nil), 202, "")

		rep := e.cleanup()
		if !e.file(pending) || !e.file(layer) || rep.ContentProtected != 2 {
			t.Fatalf("pending file %v, referenced file %v; cleanup %+v", e.file(pending), e.file(layer), rep)
		}
		// Once the upload expired, the pending blob goes.
		if _, err := e.plugin.CleanupUploads(ctx, time.Minute); err != nil {
			t.Fatal(err)
		}
		if err := e.g.Exec("UPDATE container_pending_blobs SET created_at = ?", time.Now().Add(-time.Hour).UTC()).Error; err != nil {
			t.Fatal(err)
		}
		if _, err := e.plugin.CleanupUploads(ctx, time.Minute); err != nil {
			t.Fatal(err)
		}
		e.cleanup()
		if e.file(pending) || !e.file(layer) {
			t.Fatalf("after expiry: pending file %v (want false), referenced file %v (want true)", e.file(pending), e.file(layer))
		}
	})
}

// TestDeleteNamespace: a namespace holding images is refused without
// force (409, nothing changes) and force needs an owner; then the images go
// with their repositories and distributions, and the name can be pushed
// again.
func TestDeleteNamespace(t *testing.T) {
	eachDeletion(t, func(t *testing.T, e *delEnv) {
		e.pushAs("ann", "gone/one", "1", layered(randomBytes(10)))
		e.pushAs("ann", "gone/two", "1", layered(randomBytes(10)))
		var ns container.NamespaceResponse
		var page struct{ Results []container.NamespaceResponse }
		if err := json.Unmarshal(e.want(e.call(http.MethodGet, container.NamespacesPath+"?name=gone", "ann", nil), 200).body, &page); err != nil || len(page.Results) != 1 {
			t.Fatalf("namespace: %v %+v", err, page)
		}
		ns = page.Results[0]
		r := e.want(e.call(http.MethodDelete, ns.Href, "ann", nil), http.StatusConflict)
		if !strings.Contains(string(r.body), "still holds 2 image") || !strings.Contains(string(r.body), "force=true") {
			t.Fatalf("refusal does not explain: %s", r.body)
		}
		e.want(e.call(http.MethodDelete, ns.Href+"?force=true", "bob", nil), http.StatusForbidden)
		e.want(e.call(http.MethodDelete, ns.Href+"?force=maybe", "ann", nil), http.StatusBadRequest)
		expect(t, "still there", e.do(http.MethodGet, "/v2/gone/one/manifests/1", nil), 200, "")

		tr := e.task(http.MethodDelete, ns.Href+"?force=true", "ann", nil)
		var out container.NamespaceDeletion
		if err := json.Unmarshal(tr.Result, &out); err != nil || !slices.Equal(out.Images, []string{"gone/one", "gone/two"}) {
			t.Fatalf("deletion %s: %v", tr.Result, err)
		}
		expect(t, "deleted image", e.do(http.MethodGet, "/v2/gone/one/manifests/1", nil), 404, "NAME_UNKNOWN")
		if _, err := e.store.RepositoryByName(ctx, "gone/one"); !errors.Is(err, core.ErrNotFound) {
			t.Fatalf("repository left: %v", err)
		}
		e.want(e.call(http.MethodGet, ns.Href, "ann", nil), http.StatusNotFound)
		rep := e.cleanup()
		if rep.FilesRemoved != 4 {
			t.Fatalf("cleanup after the namespace went: %+v, want 4 files", rep)
		}
		e.pushAs("ann", "gone/one", "2", layered(randomBytes(10)))

		// An empty namespace goes without force.
		e.want(e.call(http.MethodPost, container.NamespacesPath, "root", map[string]string{"name": "empty"}), http.StatusCreated)
		if err := json.Unmarshal(e.want(e.call(http.MethodGet, container.NamespacesPath+"?name=empty", "root", nil), 200).body, &page); err != nil || len(page.Results) != 1 {
			t.Fatal(err)
		}
		e.task(http.MethodDelete, page.Results[0].Href, "root", nil)
	})
}

// TestDeleteRepositoryWithDistribution: deleting a container repository
// deletes the distribution at its image name, so the name can be pushed
// again.
func TestDeleteRepositoryWithDistribution(t *testing.T) {
	eachDeletion(t, func(t *testing.T, e *delEnv) {
		e.pushAs("ann", "del/repo", "1", layered(randomBytes(10)))
		repo := e.repo("del/repo")
		if err := e.store.DeleteRepositoryWith(ctx, repo.ID, e.plugin); err != nil {
			t.Fatal(err)
		}
		if _, err := e.store.DistributionByBasePath(ctx, "del/repo"); !errors.Is(err, core.ErrNotFound) {
			t.Fatalf("distribution left: %v", err)
		}
		expect(t, "deleted", e.do(http.MethodGet, "/v2/del/repo/tags/list", nil), 404, "NAME_UNKNOWN")
		e.pushAs("ann", "del/repo", "1", layered(randomBytes(10)))
	}, container.WithLatestTTL(0))
}

// TestStorageAccounting: a repository and a namespace show the bytes of
// their distinct blobs; what only one repository holds is its exclusive
// share.
func TestStorageAccounting(t *testing.T) {
	eachDeletion(t, func(t *testing.T, e *delEnv) {
		shared := randomBytes(1000)
		a, b := layered(shared, randomBytes(100)), layered(shared)
		e.pushAs("ann", "del/a", "1", a)
		e.pushAs("ann", "del/b", "1", b)
		size := func(bs ...[]byte) int64 {
			var n int64
			for _, x := range bs {
				n += int64(len(x))
			}
			return n
		}
		var rs container.RepositoryStorageResponse
		if err := json.Unmarshal(e.want(e.call(http.MethodGet, repoPath(e.repo("del/a"), "storage/"), "ann", nil), 200).body, &rs); err != nil {
			t.Fatal(err)
		}
		if rs.Total.Bytes != size(shared, a.layers[1], a.config) || rs.Exclusive.Bytes != size(a.layers[1], a.config) || rs.Total.Blobs != 3 {
			t.Fatalf("repository storage %+v", rs)
		}
		var page struct{ Results []container.NamespaceResponse }
		if err := json.Unmarshal(e.want(e.call(http.MethodGet, container.NamespacesPath+"?name=del", "ann", nil), 200).body, &page); err != nil || len(page.Results) != 1 {
			t.Fatal(err)
		}
		var ns container.NamespaceStorageResponse
		if err := json.Unmarshal(e.want(e.call(http.MethodGet, page.Results[0].Href+"storage/", "ann", nil), 200).body, &ns); err != nil {
			t.Fatal(err)
		}
		if ns.Total.Bytes != size(shared, a.layers[1], a.config, b.config) || len(ns.Repositories) != 2 {
			t.Fatalf("namespace storage %+v", ns)
		}
		var sum container.StorageSummaryResponse
		if err := json.Unmarshal(e.want(e.call(http.MethodGet, container.StoragePath, "root", nil), 200).body, &sum); err != nil {
			t.Fatal(err)
		}
		if sum.Total.Bytes != ns.Total.Bytes || len(sum.Namespaces) != 1 || sum.Namespaces[0].Total.Bytes != ns.Total.Bytes {
			t.Fatalf("summary %+v", sum)
		}
	})
}

// TestOrphanCleanupRacesPushes runs orphan cleanups with no protection in
// a loop while pushers push images sharing a base layer with images that
// a deleter keeps removing; then every image still in a repository pulls
// whole. A push may fail cleanly (MANIFEST_BLOB_UNKNOWN) when the deleter
// took a blob it relied on; it is retried, as clients do.
func TestOrphanCleanupRacesPushes(t *testing.T) {
	eachDeletion(t, func(t *testing.T, e *delEnv) {
		base := randomBytes(2000)
		ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		var mu sync.Mutex
		pushed := map[string]image{} // "name:tag" → image
		var pushes, retries, removals, cleanups atomic.Int64
		errs := make(chan error, 64)
		var wg sync.WaitGroup
		for w := range 4 {
			wg.Go(func() {
				for i := 0; ctx.Err() == nil; i++ {
					name := fmt.Sprintf("del/race%d", i%3)
					tag := fmt.Sprintf("w%d-%d", w, i)
					img := layered(base, randomBytes(64))
					err := pushRaw(ctx, e.srv.URL, name, tag, img)
					for attempt := 0; err != nil && errors.Is(err, errBlobUnknown) && attempt < 5; attempt++ {
						retries.Add(1)
						err = pushRaw(ctx, e.srv.URL, name, tag, img)
					}
					if err != nil {
						if ctx.Err() == nil {
							errs <- fmt.Errorf("push %s:%s: %w", name, tag, err)
						}
						return
					}
					pushes.Add(1)
					mu.Lock()
					pushed[name+":"+tag] = img
					mu.Unlock()
				}
			})
		}
		wg.Go(func() {
			// Removes images, often all of a repository's (so the base
			// layer becomes an orphan), and cleans up.
			for i := 0; ctx.Err() == nil; i++ {
				name := fmt.Sprintf("del/race%d", i%3)
				repo, err := e.store.RepositoryByName(ctx, name)
				if err != nil {
					time.Sleep(5 * time.Millisecond)
					continue
				}
				sel := container.Selection{All: i%4 == 0}
				mu.Lock()
				for key := range pushed {
					if n, tag, _ := strings.Cut(key, ":"); n == name && len(sel.ImageTags) < 2 {
						sel.ImageTags = append(sel.ImageTags, tag)
					}
				}
				mu.Unlock()
				if _, err := e.plugin.RemoveContent(ctx, container.Identity{Username: "deleter"}, repo.ID, sel); err != nil && ctx.Err() == nil {
					errs <- fmt.Errorf("remove: %w", err)
					return
				}
				removals.Add(1)
				time.Sleep(10 * time.Millisecond)
			}
		})
		wg.Go(func() {
			for ctx.Err() == nil {
				if _, err := e.cleaner.Cleanup(ctx, core.CleanupOptions{}); err != nil && ctx.Err() == nil {
					errs <- fmt.Errorf("cleanup: %w", err)
					return
				}
				cleanups.Add(1)
			}
		})
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		t.Logf("%d pushes (%d retried after MANIFEST_BLOB_UNKNOWN), %d removals, %d cleanups", pushes.Load(), retries.Load(), removals.Load(), cleanups.Load())
		if pushes.Load() == 0 || cleanups.Load() == 0 || removals.Load() == 0 {
			t.Fatal("the race did not run")
		}
		// Whatever a repository still tags pulls whole.
		checked := 0
		for key, img := range pushed {
			name, tag, _ := strings.Cut(key, ":")
			r := e.do(http.MethodGet, "/v2/"+name+"/manifests/"+tag, nil)
			if r.status == 404 {
				continue // removed by the deleter
			}
			e.pulls(name, tag, img)
			checked++
		}
		e.cleanup()
		for key, img := range pushed {
			name, tag, _ := strings.Cut(key, ":")
			if e.do(http.MethodGet, "/v2/"+name+"/manifests/"+tag, nil).status == 200 {
				e.pulls(name, tag, img)
			}
		}
		t.Logf("%d images still tagged pull whole", checked)
	})
}

var errBlobUnknown = errors.New("MANIFEST_BLOB_UNKNOWN")

// pushRaw pushes an image with plain HTTP, as a client would: it skips
// blobs a HEAD finds, uploads the others, then puts the manifest. Safe
// for concurrent use (no testing.T).
func pushRaw(ctx context.Context, base, name, tag string, img image) error {
	do := func(method, path string, body []byte, ct string) (*http.Response, []byte, error) {
		req, err := http.NewRequestWithContext(ctx, method, base+path, bytes.NewReader(body))
		if err != nil {
			return nil, nil, err
		}
		if ct != "" {
			req.Header.Set("Content-Type", ct)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, nil, err
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		return res, b, err
	}
	for _, b := range append([][]byte{img.config}, img.layers...) {
		d := digest.FromBytes(b)
		res, _, err := do(http.MethodHead, "/v2/"+name+"/blobs/"+d.String(), nil, "")
		if err != nil {
			return err
		}
		if res.StatusCode == 200 {
			continue
		}
		res, body, err := do(http.MethodPost, "/v2/"+name+"/blobs/uploads/?digest="+d.String(), b, "application/octet-stream")
		if err != nil {
			return err
		}
		if res.StatusCode != 201 {
			return fmt.Errorf("upload %s: %d %s", d, res.StatusCode, body)
		}
	}
	res, body, err := do(http.MethodPut, "/v2/"+name+"/manifests/"+tag, img.manifest, img.mt)
	if err != nil {
		return err
	}
	if res.StatusCode == 400 && strings.Contains(string(body), "MANIFEST_BLOB_UNKNOWN") {
		return fmt.Errorf("%w: %s", errBlobUnknown, body)
	}
	if res.StatusCode != 201 {
		return fmt.Errorf("manifest: %d %s", res.StatusCode, body)
	}
	return nil
}
