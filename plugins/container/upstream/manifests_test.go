package upstream

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
)

func TestManifest(t *testing.T) {
	reg := newRegistry()
	img := pushImage(t, reg, "team/app", "1.0")
	idx := pushIndex(t, reg, "team/multi", "latest")
	var log requestLog
	c := newTestClient(t, Config{URL: serve(t, chain(reg, log.middleware), false).URL})
	ctx := context.Background()

	imgRaw, _ := img.RawManifest()
	imgDigest, _ := img.Digest()
	imgType, _ := img.MediaType()
	idxRaw, _ := idx.RawManifest()
	idxDigest, _ := idx.Digest()
	idxType, _ := idx.MediaType()

	for _, tc := range []struct {
		repo, ref string
		raw       []byte
		mt        string
		dgst      string
	}{
		{"team/app", "1.0", imgRaw, string(imgType), imgDigest.String()},
		{"team/app", imgDigest.String(), imgRaw, string(imgType), imgDigest.String()},
		{"team/multi", "latest", idxRaw, string(idxType), idxDigest.String()},
		{"team/multi", idxDigest.String(), idxRaw, string(idxType), idxDigest.String()},
	} {
		raw, mt, d, err := c.Manifest(ctx, tc.repo, tc.ref)
		if err != nil {
			t.Fatalf("%s %s: %v", tc.repo, tc.ref, err)
		}
		if !bytes.Equal(raw, tc.raw) || mt != tc.mt || string(d) != tc.dgst {
			t.Errorf("%s %s: got %s %s", tc.repo, tc.ref, mt, d)
		}

		hd, hmt, size, err := c.HeadManifest(ctx, tc.repo, tc.ref)
		if err != nil {
			t.Fatalf("HEAD %s %s: %v", tc.repo, tc.ref, err)
		}
		if string(hd) != tc.dgst || hmt != tc.mt || size != int64(len(tc.raw)) {
			t.Errorf("HEAD %s %s: got %s %s %d", tc.repo, tc.ref, hd, hmt, size)
		}
	}
	if n := log.count(http.MethodGet, "/manifests/"); n != 4 {
		t.Errorf("%d manifest GETs, want 4 (HEAD must not fall back)", n)
	}
	for _, r := range log.all() {
		if strings.Contains(r.Path, "/manifests/") && !strings.Contains(r.Header.Get("Accept"), "application/vnd.oci.image.index.v1+json") {
			t.Errorf("Accept %q", r.Header.Get("Accept"))
		}
	}
	// A manifest list is an index too: its children are there by digest.
	im, _ := idx.IndexManifest()
	for _, m := range im.Manifests {
		if _, _, d, err := c.Manifest(ctx, "team/multi", m.Digest.String()); err != nil || string(d) != m.Digest.String() {
			t.Errorf("child %s: %s %v", m.Digest, d, err)
		}
	}
}

// rewrite changes the bodies of matching answers (after the registry).
func rewrite(match func(*http.Request) bool, edit func(http.Header, []byte) []byte) middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !match(r) {
				next.ServeHTTP(w, r)
				return
			}
			rec := httptest.NewRecorder()
			next.ServeHTTP(rec, r)
			body := edit(rec.Header(), rec.Body.Bytes())
			rec.Body = bytes.NewBuffer(body)
			rec.Header().Del("Content-Length")
			copyRecorded(w, rec)
		})
	}
}

// flip changes one byte in the middle of a body.
func flip(_ http.Header, b []byte) []byte {
	b = bytes.Clone(b)
	b[len(b)/2] ^= 0x01
	return b
}

func TestManifestTampered(t *testing.T) {
	reg := newRegistry()
	img := pushImage(t, reg, "app", "1.0")
	dgst, _ := img.Digest()
	ctx := context.Background()

	t.Run("by digest", func(t *testing.T) {
		srv := serve(t, chain(reg, rewrite(pathHas(http.MethodGet, "/manifests/sha256:"), flip)), false)
		c := newTestClient(t, Config{URL: srv.URL})
		_, _, _, err := c.Manifest(ctx, "app", dgst.String())
		if !errors.Is(err, ErrDigestMismatch) || !strings.Contains(err.Error(), "not the requested "+dgst.String()) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("by tag against Docker-Content-Digest", func(t *testing.T) {
		srv := serve(t, chain(reg, rewrite(pathHas(http.MethodGet, "/manifests/1.0"), flip)), false)
		c := newTestClient(t, Config{URL: srv.URL})
		_, _, _, err := c.Manifest(ctx, "app", "1.0")
		if !errors.Is(err, ErrDigestMismatch) || !strings.Contains(err.Error(), "announced digest "+dgst.String()) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("by tag without Docker-Content-Digest", func(t *testing.T) {
		srv := serve(t, chain(reg, rewrite(pathHas(http.MethodGet, "/manifests/1.0"), func(h http.Header, b []byte) []byte {
			h.Del("Docker-Content-Digest")
			h.Set("Content-Type", "application/json") // media type from the body then
			return b
		})), false)
		c := newTestClient(t, Config{URL: srv.URL})
		raw, mt, d, err := c.Manifest(ctx, "app", "1.0")
		if err != nil || d != digest.FromBytes(raw) || d.String() != dgst.String() {
			t.Fatalf("%s %v", d, err)
		}
		if want, _ := img.MediaType(); mt != string(want) {
			t.Errorf("media type %q, want %q", mt, want)
		}
	})
}

func TestHeadManifestFallsBack(t *testing.T) {
	reg := newRegistry()
	img := pushImage(t, reg, "app", "1.0")
	var log requestLog
	strip := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodHead {
				rec := httptest.NewRecorder()
				next.ServeHTTP(rec, r)
				rec.Header().Del("Docker-Content-Digest")
				copyRecorded(w, rec)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
	c := newTestClient(t, Config{URL: serve(t, chain(reg, log.middleware, strip), false).URL})
	d, mt, size, err := c.HeadManifest(context.Background(), "app", "1.0")
	if err != nil {
		t.Fatal(err)
	}
	wantD, _ := img.Digest()
	wantMT, _ := img.MediaType()
	raw, _ := img.RawManifest()
	if d.String() != wantD.String() || mt != string(wantMT) || size != int64(len(raw)) {
		t.Errorf("got %s %s %d", d, mt, size)
	}
	if log.count(http.MethodHead, "/manifests/1.0") != 1 || log.count(http.MethodGet, "/manifests/1.0") != 1 {
		t.Errorf("requests %+v", log.all())
	}
}

func TestManifestNotFound(t *testing.T) {
	reg := newRegistry()
	pushImage(t, reg, "app", "1.0")
	var log requestLog
	srv := serve(t, chain(reg, log.middleware), false)
	c := newTestClient(t, Config{URL: srv.URL})
	_, _, _, err := c.Manifest(context.Background(), "app", "2.0")
	var e *Error
	if !errors.Is(err, ErrNotFound) || !errors.As(err, &e) || !slices.Contains(e.Codes, "MANIFEST_UNKNOWN") {
		t.Fatalf("err = %v", err)
	}
	want := "upstream: get manifest app:2.0: GET " + srv.URL + "/v2/app/manifests/2.0: 404 Not Found: MANIFEST_UNKNOWN"
	if !strings.HasPrefix(err.Error(), want) {
		t.Errorf("%q\nwant prefix %q", err, want)
	}
	_, _, _, err = c.HeadManifest(context.Background(), "app", "2.0")
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("HEAD: %v", err)
	}
	if n := log.count("", "/manifests/2.0"); n != 2 {
		t.Errorf("%d attempts; a 404 is not retried", n)
	}
}

func TestManifestMediaTypeSniffing(t *testing.T) {
	for _, tc := range []struct{ ct, body, want string }{
		{"application/vnd.oci.image.manifest.v1+json; charset=utf-8", `{}`, "application/vnd.oci.image.manifest.v1+json"},
		{"application/json", `{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json"}`, "application/vnd.docker.distribution.manifest.v2+json"},
		{"", `{"schemaVersion":2,"manifests":[]}`, "application/vnd.oci.image.index.v1+json"},
		{"text/plain", `{"schemaVersion":2,"config":{}}`, "application/vnd.oci.image.manifest.v1+json"},
		{"application/json", `{"schemaVersion":1,"signatures":[]}`, "application/vnd.docker.distribution.manifest.v1+prettyjws"},
		{"application/json", `not json`, "application/json"},
	} {
		if got := manifestMediaType(tc.ct, []byte(tc.body)); got != tc.want {
			t.Errorf("%q %s: %q, want %q", tc.ct, tc.body, got, tc.want)
		}
	}
}
