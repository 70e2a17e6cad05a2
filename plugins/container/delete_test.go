package container_test

import (
	"net/http"
	"slices"
	"testing"

	"github.com/opencontainers/go-digest"
)

// TestDeletes removes tags, manifests and blobs; each delete is a new
// repository version and is visible at once.
func TestDeletes(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		img := newImage(2, "amd64")
		e.mustPushImage("del/app", "v1", img)
		expect(t, "tag v2", e.do(http.MethodPut, "/v2/del/app/manifests/v2", img.manifest, "Content-Type", mtOCIManifest), 201, "")
		keep := newImage(1, "amd64")
		e.mustPushImage("del/app", "keep", keep)

		t.Run("tag", func(t *testing.T) {
			e.t = t
			expect(t, "delete tag", e.do(http.MethodDelete, "/v2/del/app/manifests/v2", nil), 202, "")
			expect(t, "deleted tag", e.do(http.MethodHead, "/v2/del/app/manifests/v2", nil), 404, "")
			expect(t, "deleted tag get", e.do(http.MethodGet, "/v2/del/app/manifests/v2", nil), 404, "MANIFEST_UNKNOWN")
			expect(t, "other tag", e.do(http.MethodGet, "/v2/del/app/manifests/v1", nil), 200, "")
			expect(t, "by digest", e.do(http.MethodGet, "/v2/del/app/manifests/"+img.digest.String(), nil), 200, "")
			expect(t, "again", e.do(http.MethodDelete, "/v2/del/app/manifests/v2", nil), 404, "MANIFEST_UNKNOWN")
		})
		t.Run("manifest", func(t *testing.T) {
			e.t = t
			expect(t, "tag v3", e.do(http.MethodPut, "/v2/del/app/manifests/v3", img.manifest, "Content-Type", mtOCIManifest), 201, "")
			expect(t, "delete manifest", e.do(http.MethodDelete, "/v2/del/app/manifests/"+img.digest.String(), nil), 202, "")
			expect(t, "by digest", e.do(http.MethodHead, "/v2/del/app/manifests/"+img.digest.String(), nil), 404, "")
			for _, tag := range []string{"v1", "v3"} {
				expect(t, "tag "+tag, e.do(http.MethodGet, "/v2/del/app/manifests/"+tag, nil), 404, "MANIFEST_UNKNOWN")
			}
			if tags := e.tags("del/app"); !slices.Equal(tags, []string{"keep"}) {
				t.Fatalf("tags = %v", tags)
			}
			expect(t, "again", e.do(http.MethodDelete, "/v2/del/app/manifests/"+img.digest.String(), nil), 404, "MANIFEST_UNKNOWN")
		})
		t.Run("blob", func(t *testing.T) {
			e.t = t
			d := digest.FromBytes(img.layers[0])
			expect(t, "delete blob", e.do(http.MethodDelete, "/v2/del/app/blobs/"+d.String(), nil), 202, "")
			expect(t, "deleted blob", e.do(http.MethodHead, "/v2/del/app/blobs/"+d.String(), nil), 404, "")
			expect(t, "again", e.do(http.MethodDelete, "/v2/del/app/blobs/"+d.String(), nil), 404, "BLOB_UNKNOWN")
			// A blob only uploaded (pending) can be deleted too.
			p := e.pushBlob("del/app", []byte("pending only"))
			expect(t, "delete pending", e.do(http.MethodDelete, "/v2/del/app/blobs/"+p.String(), nil), 202, "")
			expect(t, "deleted pending", e.do(http.MethodGet, "/v2/del/app/blobs/"+p.String(), nil), 404, "BLOB_UNKNOWN")
			// The other image is untouched.
			expect(t, "keep", e.do(http.MethodGet, "/v2/del/app/manifests/keep", nil), 200, "")
		})
		t.Run("unknown repository", func(t *testing.T) {
			e.t = t
			expect(t, "manifest", e.do(http.MethodDelete, "/v2/del/none/manifests/"+img.digest.String(), nil), 404, "NAME_UNKNOWN")
			expect(t, "tag", e.do(http.MethodDelete, "/v2/del/none/manifests/v1", nil), 404, "NAME_UNKNOWN")
			expect(t, "blob", e.do(http.MethodDelete, "/v2/del/none/blobs/"+img.digest.String(), nil), 404, "BLOB_UNKNOWN")
			expect(t, "invalid digest", e.do(http.MethodDelete, "/v2/del/app/blobs/sha256:zz", nil), 400, "DIGEST_INVALID")
		})
	})
}
