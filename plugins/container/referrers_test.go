package container_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
)

// TestReferrers pushes artifacts with a subject and lists them, whole and
// filtered by artifact type.
func TestReferrers(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		subject := newImage(1, "amd64")
		e.mustPushImage("ref/app", "v1", subject)
		empty := []byte("{}")
		e.pushBlob("ref/app", empty)
		emptyDesc := map[string]any{"mediaType": "application/vnd.oci.empty.v1+json", "digest": digest.FromBytes(empty), "size": 2}
		sbom := image{mt: mtOCIManifest}
		sbom.manifest, _ = json.Marshal(map[string]any{
			"schemaVersion": 2, "mediaType": mtOCIManifest, "artifactType": "application/vnd.example.sbom",
			"config": emptyDesc, "layers": []any{emptyDesc}, "subject": subject.descriptor(),
			"annotations": map[string]string{"org.example": "sbom"},
		})
		sbom.digest = digest.FromBytes(sbom.manifest)
		sig := newImage(1, "amd64", func(m map[string]any) { m["subject"] = subject.descriptor() })
		// Annotations too large to be copied beside the manifest are read from it.
		large := strings.Repeat("x", 70<<10)
		bigAnn := newImage(1, "amd64", func(m map[string]any) {
			m["subject"] = subject.descriptor()
			m["annotations"] = map[string]string{"big": large}
		})
		expect(t, "push big", e.pushImage("ref/app", bigAnn.digest.String(), bigAnn), 201, "")

		r := e.do(http.MethodPut, "/v2/ref/app/manifests/"+sbom.digest.String(), sbom.manifest, "Content-Type", mtOCIManifest)
		expect(t, "push sbom", r, 201, "")
		if r.header.Get("OCI-Subject") != subject.digest.String() {
			t.Fatalf("OCI-Subject = %q", r.header.Get("OCI-Subject"))
		}
		expect(t, "push sig", e.pushImage("ref/app", sig.digest.String(), sig), 201, "")
		// A subject that does not exist is fine.
		orphan := newImage(1, "amd64", func(m map[string]any) {
			m["subject"] = map[string]any{"mediaType": mtOCIManifest, "digest": digest.FromString("missing"), "size": 123}
		})
		expect(t, "push orphan", e.pushImage("ref/app", "orphan", orphan), 201, "")

		list := func(path string) (index refIndex, res resp) {
			res = e.do(http.MethodGet, path, nil)
			expect(t, "referrers", res, 200, "")
			if res.header.Get("Content-Type") != mtOCIIndex {
				t.Fatalf("content type %q", res.header.Get("Content-Type"))
			}
			if err := json.Unmarshal(res.body, &index); err != nil || index.SchemaVersion != 2 || index.MediaType != mtOCIIndex || index.Manifests == nil {
				t.Fatalf("referrers body %s: %v", res.body, err)
			}
			return index, res
		}
		all, _ := list("/v2/ref/app/referrers/" + subject.digest.String())
		if len(all.Manifests) != 3 {
			t.Fatalf("referrers: %d", len(all.Manifests))
		}
		for _, m := range all.Manifests {
			switch m.Digest {
			case sbom.digest:
				if m.ArtifactType != "application/vnd.example.sbom" || m.Annotations["org.example"] != "sbom" || m.Size != len(sbom.manifest) || m.MediaType != mtOCIManifest {
					t.Fatalf("sbom descriptor %+v", m)
				}
			case bigAnn.digest:
				if m.Annotations["big"] != large {
					t.Fatalf("large annotations lost: %d bytes", len(m.Annotations["big"]))
				}
			case sig.digest:
				if m.ArtifactType != mtOCIConfig {
					t.Fatalf("image without artifactType should show its config type: %+v", m)
				}
			default:
				t.Fatalf("unexpected referrer %+v", m)
			}
		}
		filtered, res := list("/v2/ref/app/referrers/" + subject.digest.String() + "?artifactType=application/vnd.example.sbom")
		if res.header.Get("OCI-Filters-Applied") != "artifactType" || len(filtered.Manifests) != 1 || filtered.Manifests[0].Digest != sbom.digest {
			t.Fatalf("filtered: %+v %v", filtered.Manifests, res.header)
		}
		none, _ := list("/v2/ref/app/referrers/" + digest.FromString("nothing").String())
		unknownRepo, _ := list("/v2/ref/none/referrers/" + subject.digest.String())
		if len(none.Manifests) != 0 || len(unknownRepo.Manifests) != 0 {
			t.Fatal("expected empty referrers")
		}
		expect(t, "invalid digest", e.do(http.MethodGet, "/v2/ref/app/referrers/sha256:nope", nil), 400, "DIGEST_INVALID")

		// Deleting a referrer takes it out of the list.
		expect(t, "delete", e.do(http.MethodDelete, "/v2/ref/app/manifests/"+sig.digest.String(), nil), 202, "")
		after, _ := list("/v2/ref/app/referrers/" + subject.digest.String())
		if len(after.Manifests) != 2 || !slices.ContainsFunc(after.Manifests, func(m refDesc) bool { return m.Digest == sbom.digest }) {
			t.Fatalf("after delete: %+v", after.Manifests)
		}
	})
}

type refIndex struct {
	SchemaVersion int       `json:"schemaVersion"`
	MediaType     string    `json:"mediaType"`
	Manifests     []refDesc `json:"manifests"`
}

type refDesc struct {
	MediaType    string            `json:"mediaType"`
	Digest       digest.Digest     `json:"digest"`
	Size         int               `json:"size"`
	ArtifactType string            `json:"artifactType"`
	Annotations  map[string]string `json:"annotations"`
}
