package container_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/plugins/container"
)

// TestManifests pushes OCI and Docker images and indexes by tag and digest
// and pulls them back exactly, with content negotiation.
func TestManifests(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		oci := newImage(2, "amd64")
		arm := newImage(1, "arm64")
		dock := newImage(1, "amd64", docker)

		t.Run("push by tag", func(t *testing.T) {
			e.t = t
			r := e.pushImage("lib/app", "v1", oci)
			expect(t, "push", r, http.StatusCreated, "")
			if r.header.Get("Docker-Content-Digest") != oci.digest.String() ||
				r.header.Get("Location") != "/v2/lib/app/manifests/"+oci.digest.String() {
				t.Fatalf("push headers: %v", r.header)
			}
		})
		t.Run("pull by tag and digest", func(t *testing.T) {
			e.t = t
			for _, ref := range []string{"v1", oci.digest.String()} {
				g := e.do(http.MethodGet, "/v2/lib/app/manifests/"+ref, nil, "Accept", mtOCIManifest+", "+mtOCIIndex)
				expect(t, "get "+ref, g, http.StatusOK, "")
				if !bytes.Equal(g.body, oci.manifest) || g.header.Get("Content-Type") != mtOCIManifest ||
					g.header.Get("Docker-Content-Digest") != oci.digest.String() || g.header.Get("Content-Length") != strconv.Itoa(len(oci.manifest)) {
					t.Fatalf("get %s: %s headers %v", ref, g, g.header)
				}
				h := e.do(http.MethodHead, "/v2/lib/app/manifests/"+ref, nil)
				expect(t, "head "+ref, h, http.StatusOK, "")
				if len(h.body) != 0 || h.header.Get("Content-Length") != strconv.Itoa(len(oci.manifest)) || h.header.Get("Docker-Content-Digest") != oci.digest.String() {
					t.Fatalf("head %s: headers %v", ref, h.header)
				}
			}
			// The layers went into the version with the manifest.
			for _, l := range oci.layers {
				expect(t, "layer", e.do(http.MethodHead, "/v2/lib/app/blobs/"+digest.FromBytes(l).String(), nil), 200, "")
			}
		})
		t.Run("accept negotiation", func(t *testing.T) {
			e.t = t
			cases := []struct {
				accept string
				status int
				code   string
			}{
				{"", 200, ""},
				{"*/*", 200, ""},
				{"application/json", 200, ""},
				{mtOCIIndex, 200, ""}, // same format: served as stored
				{mtDockerV2 + ", " + mtDockerList, 404, "MANIFEST_UNKNOWN"},
				{mtDockerV2 + ";q=0.9, " + mtOCIManifest, 200, ""},
			}
			for _, c := range cases {
				var hdr []string
				if c.accept != "" {
					hdr = []string{"Accept", c.accept}
				}
				expect(t, "accept "+c.accept, e.do(http.MethodGet, "/v2/lib/app/manifests/v1", nil, hdr...), c.status, c.code)
			}
		})
		t.Run("docker schema 2", func(t *testing.T) {
			e.t = t
			expect(t, "push", e.pushImage("lib/dock", "latest", dock), 201, "")
			g := e.do(http.MethodGet, "/v2/lib/dock/manifests/latest", nil, "Accept", mtDockerV2)
			expect(t, "get", g, 200, "")
			if g.header.Get("Content-Type") != mtDockerV2 || !bytes.Equal(g.body, dock.manifest) {
				t.Fatalf("docker manifest: %v", g.header)
			}
			expect(t, "oci only client", e.do(http.MethodGet, "/v2/lib/dock/manifests/latest", nil, "Accept", mtOCIManifest), 404, "MANIFEST_UNKNOWN")
		})
		t.Run("index by digest, children first", func(t *testing.T) {
			e.t = t
			expect(t, "child", e.pushImage("lib/app", arm.digest.String(), arm), 201, "")
			idx := newIndex(mtOCIIndex, oci, arm)
			r := e.do(http.MethodPut, "/v2/lib/app/manifests/"+idx.digest.String(), idx.manifest, "Content-Type", mtOCIIndex)
			expect(t, "index", r, 201, "")
			g := e.do(http.MethodGet, "/v2/lib/app/manifests/"+idx.digest.String(), nil)
			if !bytes.Equal(g.body, idx.manifest) || g.header.Get("Content-Type") != mtOCIIndex {
				t.Fatalf("index: %s", g)
			}
			// A push by digest adds no tag.
			if tags := e.tags("lib/app"); strings.Join(tags, ",") != "v1" {
				t.Fatalf("tags = %v", tags)
			}
		})
		t.Run("docker manifest list", func(t *testing.T) {
			e.t = t
			list := newIndex(mtDockerList, dock)
			expect(t, "list", e.do(http.MethodPut, "/v2/lib/dock/manifests/multi", list.manifest, "Content-Type", mtDockerList), 201, "")
			g := e.do(http.MethodGet, "/v2/lib/dock/manifests/multi", nil, "Accept", mtDockerList+","+mtDockerV2)
			if g.status != 200 || g.header.Get("Content-Type") != mtDockerList {
				t.Fatalf("list: %s %v", g, g.header)
			}
		})
		t.Run("sha512 manifest", func(t *testing.T) {
			e.t = t
			img := newImage(1, "amd64")
			d := digest.SHA512.FromBytes(img.manifest)
			r := e.pushImage("lib/app", d.String(), img)
			expect(t, "push", r, 201, "")
			if r.header.Get("Docker-Content-Digest") != d.String() {
				t.Fatalf("digest header %q", r.header.Get("Docker-Content-Digest"))
			}
			expect(t, "get", e.do(http.MethodGet, "/v2/lib/app/manifests/"+d.String(), nil), 200, "")
		})
		t.Run("tag parameters", func(t *testing.T) {
			e.t = t
			img := newImage(1, "amd64")
			e.pushBlob("lib/app", img.config)
			e.pushBlob("lib/app", img.layers[0])
			r := e.do(http.MethodPut, "/v2/lib/app/manifests/"+img.digest.String()+"?tag=p1&tag=p2", img.manifest, "Content-Type", mtOCIManifest)
			expect(t, "push", r, 201, "")
			if got := r.header.Values("OCI-Tag"); strings.Join(got, ",") != "p1,p2" {
				t.Fatalf("OCI-Tag = %v", got)
			}
			for _, tag := range []string{"p1", "p2"} {
				g := e.do(http.MethodGet, "/v2/lib/app/manifests/"+tag, nil)
				if g.status != 200 || g.header.Get("Docker-Content-Digest") != img.digest.String() {
					t.Fatalf("tag %s: %s", tag, g)
				}
			}
		})
		t.Run("moving a tag", func(t *testing.T) {
			e.t = t
			img := newImage(1, "amd64")
			e.mustPushImage("lib/app", "v1", img)
			g := e.do(http.MethodGet, "/v2/lib/app/manifests/v1", nil)
			if g.header.Get("Docker-Content-Digest") != img.digest.String() {
				t.Fatalf("tag not moved: %v", g.header)
			}
			// The old manifest stays by digest.
			expect(t, "old by digest", e.do(http.MethodGet, "/v2/lib/app/manifests/"+oci.digest.String(), nil), 200, "")
			// Pushing the same again makes no new version.
			info, _, err := e.plugin.ListImages(ctx, coreQuery("name", "lib/app"))
			if err != nil || len(info) != 1 {
				t.Fatalf("images: %v %v", info, err)
			}
			before := info[0].LatestVersion
			e.mustPushImage("lib/app", "v1", img)
			info, _, _ = e.plugin.ListImages(ctx, coreQuery("name", "lib/app"))
			if info[0].LatestVersion != before {
				t.Fatalf("an unchanged push made version %d (was %d)", info[0].LatestVersion, before)
			}
		})
		t.Run("unknown manifests and repositories", func(t *testing.T) {
			e.t = t
			expect(t, "unknown tag", e.do(http.MethodGet, "/v2/lib/app/manifests/nope", nil), 404, "MANIFEST_UNKNOWN")
			expect(t, "unknown digest", e.do(http.MethodGet, "/v2/lib/app/manifests/"+digest.FromString("x").String(), nil), 404, "MANIFEST_UNKNOWN")
			expect(t, "unknown repo", e.do(http.MethodGet, "/v2/lib/none/manifests/v1", nil), 404, "NAME_UNKNOWN")
			expect(t, "bad digest", e.do(http.MethodGet, "/v2/lib/app/manifests/sha256:baddigeststring", nil), 400, "DIGEST_INVALID")
			// Another repository does not see this one's manifests.
			e.mustPushImage("lib/other", "v1", newImage(1, "amd64"))
			expect(t, "other repo", e.do(http.MethodGet, "/v2/lib/other/manifests/"+oci.digest.String(), nil), 404, "MANIFEST_UNKNOWN")
		})
	})
}

// TestManifestErrors pushes bad manifests: each gets the spec's code and
// nothing is stored (the repository is not even created).
func TestManifestErrors(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		img := newImage(1, "amd64")
		missing := newImage(1, "amd64")
		big := newImage(1, "amd64", func(m map[string]any) {
			m["annotations"] = map[string]string{"big": strings.Repeat("a", container.MaxManifestSize)}
		})
		schema1, _ := json.Marshal(map[string]any{"schemaVersion": 1, "name": "x", "tag": "y", "fsLayers": []any{}})
		cases := []struct {
			name   string
			path   string
			body   []byte
			ct     string
			status int
			code   string
		}{
			{"malformed JSON", "v1", []byte(`{"schemaVersion": 2, "config": `), mtOCIManifest, 400, "MANIFEST_INVALID"},
			{"not an object", "v1", []byte(`[1,2]`), mtOCIManifest, 400, "MANIFEST_INVALID"},
			{"no config", "v1", []byte(`{"schemaVersion":2,"mediaType":"` + mtOCIManifest + `","layers":[]}`), mtOCIManifest, 400, "MANIFEST_INVALID"},
			{"bad layer digest", "v1", []byte(`{"schemaVersion":2,"mediaType":"` + mtOCIManifest + `","config":{"mediaType":"x","digest":"sha256:00","size":1},"layers":[]}`), mtOCIManifest, 400, "MANIFEST_INVALID"},
			{"schema 1", "v1", schema1, "application/vnd.docker.distribution.manifest.v1+prettyjws", 400, "MANIFEST_INVALID"},
			{"unknown media type", "v1", img.manifest, "application/vnd.example+json", 201, ""},
			{"content type disagrees", "v1", img.manifest, mtDockerV2, 400, "MANIFEST_INVALID"},
			{"unknown blobs", "v1", missing.manifest, mtOCIManifest, 400, "MANIFEST_BLOB_UNKNOWN"},
			{"unknown child", "v1", newIndex(mtOCIIndex, missing).manifest, mtOCIIndex, 400, "MANIFEST_BLOB_UNKNOWN"},
			{"digest mismatch", digest.FromString("other").String(), img.manifest, mtOCIManifest, 400, "DIGEST_INVALID"},
			{"invalid digest", "sha256:baddigeststring", img.manifest, mtOCIManifest, 400, "DIGEST_INVALID"},
			{"tag too long", strings.Repeat("t", 129), img.manifest, mtOCIManifest, 400, "TAG_INVALID"},
			{"tag starting with a dot", ".hidden", img.manifest, mtOCIManifest, 400, "TAG_INVALID"},
			{"oversized", "v1", big.manifest, mtOCIManifest, 413, "MANIFEST_INVALID_SIZE"},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				e.t = t
				name := "err/" + strings.ReplaceAll(strings.ToLower(c.name), " ", "-")
				e.pushBlob(name, img.config)
				e.pushBlob(name, img.layers[0])
				r := e.do(http.MethodPut, "/v2/"+name+"/manifests/"+c.path, c.body, "Content-Type", c.ct)
				expect(t, c.name, r, c.status, c.code)
				if c.status >= 400 {
					expect(t, "nothing stored", e.do(http.MethodGet, "/v2/"+name+"/tags/list", nil), 404, "NAME_UNKNOWN")
				}
			})
		}
		t.Run("invalid names", func(t *testing.T) {
			e.t = t
			for _, n := range []string{"../x", "Upper/case", "a//b", "-a", "a-", "a/", strings.Repeat("a", 256), "a..b", "a___b"} {
				r := e.do(http.MethodPut, "/v2/"+n+"/manifests/v1", img.manifest, "Content-Type", mtOCIManifest)
				if r.status == 404 && r.code() == "not_found" {
					continue // not even a /v2/ resource path
				}
				expect(t, "name "+n, r, 400, "NAME_INVALID")
			}
			expect(t, "name ../x get", e.do(http.MethodGet, "/v2/../x/manifests/v1", nil), 400, "NAME_INVALID")
		})
	})
}
