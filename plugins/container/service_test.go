package container_test

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/opencontainers/go-digest"
	"gorm.io/gorm"

	"github.com/berth-dev/berth/core"
	"github.com/berth-dev/berth/plugins/container"
)

var admin = container.Identity{UserID: "id-admin", Username: "admin"}

// TestService drives the service API the REST layer uses.
func TestService(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		amd := newImage(2, "amd64")
		arm := newImage(1, "arm64")
		e.mustPushImage("svc/app", "amd", amd)
		e.mustPushImage("svc/app", "arm", arm)
		idx := newIndex(mtOCIIndex, amd, arm)
		expect(t, "index", e.do(http.MethodPut, "/v2/svc/app/manifests/latest", idx.manifest, "Content-Type", mtOCIIndex), 201, "")

		tags, total, err := e.plugin.ListTags(ctx, "svc/app", container.ListOptions{Limit: 2})
		if err != nil || total != 3 || len(tags) != 2 || tags[0].Name != "amd" || tags[0].Digest != amd.digest.String() || tags[1].Name != "arm" {
			t.Fatalf("tags: %+v %d %v", tags, total, err)
		}
		ms, total, err := e.plugin.ListManifests(ctx, "svc/app", container.ListOptions{})
		if err != nil || total != 3 || len(ms) != 3 {
			t.Fatalf("manifests: %d %v", total, err)
		}
		for _, m := range ms {
			if len(m.Tags) != 1 {
				t.Fatalf("manifest %s tags %v", m.Digest, m.Tags)
			}
		}
		m, err := e.plugin.GetManifest(ctx, "svc/app", "arm")
		if err != nil {
			t.Fatal(err)
		}
		if m.Digest != arm.digest.String() || m.OS != "linux" || m.Architecture != "arm64" || m.Labels["org.example.arch"] != "arm64" ||
			m.IsIndex || len(m.References) != 2 || m.References[0].Kind != "config" || m.References[1].Kind != "layer" || !slices.Equal(m.Tags, []string{"arm"}) {
			t.Fatalf("manifest info %+v", m)
		}
		mi, err := e.plugin.GetManifest(ctx, "svc/app", idx.digest.String())
		if err != nil || !mi.IsIndex || len(mi.References) != 2 || mi.References[1].Digest != arm.digest.String() || mi.References[1].OS != "linux" {
			t.Fatalf("index info %+v %v", mi, err)
		}
		b, mt, err := e.plugin.ManifestBytes(ctx, "svc/app", "latest")
		if err != nil || mt != mtOCIIndex || !bytes.Equal(b, idx.manifest) {
			t.Fatalf("manifest bytes: %s %v", mt, err)
		}
		f, info, err := e.plugin.OpenBlob(ctx, "svc/app", digest.FromBytes(arm.layers[0]))
		if err != nil || info.Size != int64(len(arm.layers[0])) {
			t.Fatalf("open blob: %v", err)
		}
		got, _ := io.ReadAll(f)
		f.Close()
		if !bytes.Equal(got, arm.layers[0]) {
			t.Fatal("blob content")
		}

		// Tagging through the service moves the tag in a new version.
		if err := e.plugin.TagManifest(ctx, admin, "svc/app", "amd", arm.digest); err != nil {
			t.Fatal(err)
		}
		if g := e.do(http.MethodGet, "/v2/svc/app/manifests/amd", nil); g.header.Get("Docker-Content-Digest") != arm.digest.String() {
			t.Fatalf("tag not moved: %s", g)
		}
		if err := e.plugin.TagManifest(ctx, admin, "svc/app", "x", digest.FromString("none")); !errors.Is(err, container.ErrManifestUnknown) || !errors.Is(err, core.ErrNotFound) {
			t.Fatalf("tag unknown manifest: %v", err)
		}
		if err := e.plugin.DeleteTag(ctx, admin, "svc/app", "amd"); err != nil {
			t.Fatal(err)
		}
		if err := e.plugin.DeleteManifest(ctx, admin, "svc/app", amd.digest); err != nil {
			t.Fatal(err)
		}
		if _, _, err := e.plugin.ListTags(ctx, "svc/none", container.ListOptions{}); !errors.Is(err, container.ErrNameUnknown) {
			t.Fatalf("unknown image: %v", err)
		}
		if _, err := e.plugin.PutManifest(ctx, admin, "Bad", mtOCIManifest, amd.manifest, "", nil); !errors.Is(err, container.ErrNameInvalid) || !errors.Is(err, core.ErrInvalid) {
			t.Fatalf("invalid name: %v", err)
		}

		// An image made without a push is empty but known.
		repo, err := e.plugin.CreateImage(ctx, admin, "made/empty")
		if err != nil || repo.Name != "made/empty" {
			t.Fatalf("create image: %+v %v", repo, err)
		}
		if again, err := e.plugin.CreateImage(ctx, admin, "made/empty"); err != nil || again.ID != repo.ID {
			t.Fatalf("create image again: %+v %v", again, err)
		}
		if tags := e.tags("made/empty"); len(tags) != 0 {
			t.Fatalf("empty image tags %v", tags)
		}
		if _, err := e.plugin.CreateImage(ctx, admin, "made"); !errors.Is(err, container.ErrDenied) || !errors.Is(err, core.ErrForbidden) {
			t.Fatalf("overlapping image: %v", err)
		}
	})
}

// TestWarmReads: once warm, pulling manifests and blobs costs no database
// query, and a push is visible at once all the same.
func TestWarmReads(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		img := newImage(2, "amd64")
		e.mustPushImage("warm/app", "v1", img)
		var queries atomic.Int64
		count := func(*gorm.DB) { queries.Add(1) }
		for _, cb := range []interface {
			Register(string, func(*gorm.DB)) error
		}{
			e.g.Callback().Query().After("gorm:query"), e.g.Callback().Row().After("gorm:row"),
			e.g.Callback().Raw().After("gorm:raw"),
		} {
			if err := cb.Register("test:count", count); err != nil {
				t.Fatal(err)
			}
		}
		pull := func() {
			for _, ref := range []string{"v1", img.digest.String()} {
				expect(t, "head", e.do(http.MethodHead, "/v2/warm/app/manifests/"+ref, nil), 200, "")
				expect(t, "get", e.do(http.MethodGet, "/v2/warm/app/manifests/"+ref, nil), 200, "")
			}
			for _, l := range img.layers {
				expect(t, "blob", e.do(http.MethodGet, "/v2/warm/app/blobs/"+digest.FromBytes(l).String(), nil), 200, "")
			}
		}
		pull()
		if queries.Load() == 0 {
			t.Fatal("the query counter counts nothing")
		}
		queries.Store(0)
		for range 5 {
			pull()
		}
		if n := queries.Load(); n != 0 {
			t.Fatalf("warm pulls ran %d queries", n)
		}
		// A new push is seen at once (the cache of what v1 names is dropped).
		next := newImage(1, "amd64")
		e.mustPushImage("warm/app", "v1", next)
		if g := e.do(http.MethodGet, "/v2/warm/app/manifests/v1", nil); g.header.Get("Docker-Content-Digest") != next.digest.String() {
			t.Fatalf("stale tag after push: %s", g)
		}
	})
}
