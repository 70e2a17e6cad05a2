package container

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/labstack/echo/v4"
	"github.com/opencontainers/go-digest"
)

// Descriptor describes a manifest in the referrers API's index.
type Descriptor struct {
	MediaType    string            `json:"mediaType"`
	Digest       string            `json:"digest"`
	Size         int64             `json:"size"`
	ArtifactType string            `json:"artifactType,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
}

// referrersIndex is the referrers API's answer, an OCI image index.
type referrersIndex struct {
	SchemaVersion int          `json:"schemaVersion"`
	MediaType     string       `json:"mediaType"`
	Manifests     []Descriptor `json:"manifests"`
}

// getReferrers serves GET /v2/<name>/referrers/<digest>[?artifactType=]:
// an index of the manifests whose subject is digest (empty when there are
// none, also for an unknown repository).
func (p *Plugin) getReferrers(c echo.Context, r route) error {
	d, err := ParseDigest(r.arg)
	if err != nil {
		return err
	}
	if _, err := p.authorize(c, r.name, ActionPull); err != nil {
		return err
	}
	at := c.QueryParam("artifactType")
	list, err := p.Referrers(c.Request().Context(), r.name, d, at)
	if err != nil {
		return err
	}
	if at != "" {
		c.Response().Header().Set(headerFilters, "artifactType")
	}
	body, err := json.Marshal(referrersIndex{SchemaVersion: 2, MediaType: MediaTypeOCIIndex, Manifests: list})
	if err != nil {
		return err
	}
	return c.Blob(http.StatusOK, MediaTypeOCIIndex, body)
}

// Referrers lists the manifests of the image name whose subject is d,
// only those of artifactType when it is not empty.
func (p *Plugin) Referrers(ctx context.Context, name string, d digest.Digest, artifactType string) ([]Descriptor, error) {
	out := []Descriptor{}
	s, found, err := p.resolve(ctx, name)
	if err != nil || !found {
		return out, err
	}
	rows, err := referrers(ctx, p.store, s.RepoID, s.Version, d, artifactType)
	if err != nil {
		return nil, err
	}
	for _, r := range rows {
		ref := Descriptor{MediaType: r.MediaType, Digest: r.Digest, Size: r.Size, ArtifactType: r.ArtifactType}
		ref.Annotations = annotationsOf(r.Annotations, r.Data)
		out = append(out, ref)
	}
	return out, nil
}

// annotationsOf decodes a manifest's annotations from their stored copy, or
// from the manifest's bytes when they were too large to copy.
func annotationsOf(stored string, data []byte) map[string]string {
	if stored != "" {
		m := decodeMap(stored)
		if len(m) == 0 {
			return nil
		}
		return m
	}
	var doc struct {
		Annotations map[string]string `json:"annotations"`
	}
	_ = json.Unmarshal(data, &doc)
	return doc.Annotations
}
