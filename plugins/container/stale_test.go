package container_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"gorm.io/gorm"

	"github.com/berth-dev/berth/plugins/container"

	"github.com/berth-dev/berth/internal/testdb"
)

// TestReplicaBehindRetention: two processes on one database (like serve and
// a worker, or two replicas), pushed repositories keeping one version. When
// B makes a new version, retention deletes the one A has cached; A must
// still find every tag and blob the repository has — no false 404 while its
// cache catches up.
func TestReplicaBehindRetention(t *testing.T) {
	testdb.Each(t, sets, func(t *testing.T, g *gorm.DB) {
		dir := t.TempDir()
		a := newEnv(t, g, dir, container.WithPushRetention(1), container.WithLatestTTL(time.Minute))
		b := newEnv(t, g, dir, container.WithPushRetention(1), container.WithLatestTTL(time.Minute))
		img := newImage(1, "amd64")
		a.mustPushImage("team/app", "v1", img)
		// A caches what team/app serves (and that v1 is in it).
		expect(t, "GET v1 through A", a.do(http.MethodGet, "/v2/team/app/manifests/v1", nil, "Accept", img.mt), http.StatusOK, "")
		// B pushes another tag: a new version, and the one A cached is gone.
		b.mustPushImage("team/app", "v2", newImage(2, "amd64"))
		expect(t, "GET v1 through A after B's push", a.do(http.MethodGet, "/v2/team/app/manifests/v1", nil, "Accept", img.mt), http.StatusOK, "")
		expect(t, "GET v2 through A after B's push", a.do(http.MethodGet, "/v2/team/app/manifests/v2", nil, "Accept", img.mt), http.StatusOK, "")
		for _, l := range img.layers {
			expect(t, "HEAD layer through A", a.do(http.MethodHead, "/v2/team/app/blobs/"+digest.FromBytes(l).String(), nil), http.StatusOK, "")
		}
		expect(t, "GET a tag that does not exist", a.do(http.MethodGet, "/v2/team/app/manifests/nope", nil), http.StatusNotFound, "MANIFEST_UNKNOWN")
	})
}
