package container

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/core"
)

// Container content through the REST API, as Pulp lists it, so that the
// removal endpoints have hrefs to take:
//
//	/pulp/api/v3/content/container/blobs/       ?repository_version=<href>&digest=…
//	/pulp/api/v3/content/container/manifests/   ?repository_version=<href>&digest=…&media_type=…
//	/pulp/api/v3/content/container/tags/        ?repository_version=<href>&name=…
//
// and each unit at <list>/<id>/. Listing content in no particular
// repository version needs to see every namespace (superusers); with
// repository_version, the caller must be able to see the repository.

// contentKinds maps the href segment of each content type to the type.
var contentKinds = map[string]string{"blobs": TypeBlob, "manifests": TypeManifest, "tags": TypeTag}

// ContentHref is the href of container content: kind is blobs, manifests
// or tags.
func ContentHref(kind, id string) string { return api.Href("content", PluginName, kind, id) }

func contentListPath(kind string) string { return api.Href("content", PluginName, kind) }

// parseContentHref returns the content type and ID an href names.
func parseContentHref(href string) (typ, id string, ok bool) {
	ref, err := api.ParseHref(href)
	if err != nil || ref.Collection != "content" || ref.IsVersion() {
		return "", "", false
	}
	plugin, kind, _ := strings.Cut(ref.Type, ".")
	typ, ok = contentKinds[kind]
	if plugin != PluginName || !ok {
		return "", "", false
	}
	return typ, ref.ID, true
}

// BlobResponse is a container blob.
type BlobResponse struct {
	Href        string    `json:"pulp_href"`
	PulpCreated time.Time `json:"pulp_created"`
	Digest      string    `json:"digest"`
	Size        int64     `json:"size"`
}

// ManifestResponse is a container manifest.
type ManifestResponse struct {
	Href            string    `json:"pulp_href"`
	PulpCreated     time.Time `json:"pulp_created"`
	Digest          string    `json:"digest"`
	MediaType       string    `json:"media_type"`
	SchemaVersion   int       `json:"schema_version"`
	IsIndex         bool      `json:"is_index" doc:"An index (manifest list) of other manifests."`
	ArtifactType    string    `json:"artifact_type"`
	ConfigBlob      *string   `json:"config_blob" doc:"Href of the config blob (null for an index)."`
	Blobs           []string  `json:"blobs" doc:"Hrefs of the config and layer blobs known to the registry."`
	ListedManifests []string  `json:"listed_manifests" doc:"Hrefs of the manifests an index lists."`
	Subject         *string   `json:"subject" doc:"Digest of the manifest this one refers to, if any."`
}

// TagResponse is a container tag.
type TagResponse struct {
	Href           string    `json:"pulp_href"`
	PulpCreated    time.Time `json:"pulp_created"`
	Name           string    `json:"name"`
	TaggedManifest string    `json:"tagged_manifest" doc:"Href of the manifest the tag names."`
	Digest         string    `json:"digest" doc:"Digest of the manifest the tag names."`
}

// versionFilter is a resolved repository_version filter.
type versionFilter struct {
	repoID string
	number int
}

func (m maintenanceRoutes) contentSpec(extra map[string]api.Field) api.ListSpec {
	f := map[string]api.Field{
		"repository_version": {Kind: api.KindHref, Lookups: []string{api.Exact}, Doc: "Href of a repository version: only its content.",
			Resolve: func(ctx context.Context, href string) (any, error) {
				ref, err := api.ParseHref(href)
				if err != nil || ref.Collection != api.Repositories || ref.Type != TypeRepository || !ref.IsVersion() {
					return nil, core.Invalid("repository_version", "Invalid hyperlink - No URL match.")
				}
				if _, err := m.p.store.Version(ctx, ref.ID, ref.Version); err != nil {
					return nil, err
				}
				return versionFilter{repoID: ref.ID, number: ref.Version}, nil
			}},
		"pulp_created": {Kind: api.KindTime, Lookups: api.TimeLookups(), Order: true},
	}
	for k, v := range extra {
		f[k] = v
	}
	return api.ListSpec{Fields: f, Tiebreak: "pulp_id"}
}

func (m maintenanceRoutes) contentRoutes(r *api.Router) {
	tags := []string{"Content: container"}
	digest := api.Field{Kind: api.KindString, Lookups: []string{api.Exact, api.In}, Order: true}
	id := api.Field{Kind: api.KindString, Lookups: []string{api.In}, Order: true}
	specs := map[string]api.ListSpec{
		"blobs":     m.contentSpec(map[string]api.Field{"digest": digest, "pulp_id": id}),
		"manifests": m.contentSpec(map[string]api.Field{"digest": digest, "pulp_id": id, "media_type": {Kind: api.KindString, Lookups: []string{api.Exact, api.In}}}),
		"tags":      m.contentSpec(map[string]api.Field{"name": {Kind: api.KindString, Lookups: api.StringLookups(), Order: true}, "digest": digest, "pulp_id": id}),
	}
	responses := map[string]any{"blobs": BlobResponse{}, "manifests": ManifestResponse{}, "tags": TagResponse{}}
	pages := map[string]any{"blobs": api.Page[BlobResponse]{}, "manifests": api.Page[ManifestResponse]{}, "tags": api.Page[TagResponse]{}}
	for _, kind := range []string{"blobs", "manifests", "tags"} {
		spec := specs[kind]
		r.Add(api.Operation{
			Method: http.MethodGet, Path: contentListPath(kind), ID: "content_container_" + kind + "_list", Tags: tags,
			Summary: "List container " + kind, Params: spec.Params(), Response: pages[kind],
		}, m.listContent(kind, spec))
		r.Add(api.Operation{
			Method: http.MethodGet, Path: contentListPath(kind) + ":id/", ID: "content_container_" + kind + "_read", Tags: tags,
			Summary: "Inspect a container " + kind[:len(kind)-1], Response: responses[kind],
		}, m.readContent(kind))
	}
}

// contentQuery splits the repository_version filter off q and checks the
// caller may list what remains.
func (m maintenanceRoutes) contentQuery(ctx context.Context, q *core.ListQuery) (*versionFilter, error) {
	var vf *versionFilter
	kept := q.Filters[:0]
	for _, f := range q.Filters {
		if f.Field == "repository_version" {
			v := f.Value.(versionFilter)
			vf = &v
			continue
		}
		kept = append(kept, f)
	}
	q.Filters = kept
	who := m.p.permissions().Caller(ctx)
	if vf != nil {
		if _, _, err := m.p.readableRepository(ctx, who, vf.repoID); err != nil {
			return nil, core.Invalid("repository_version", "Invalid hyperlink - Object does not exist.")
		}
		return vf, nil
	}
	v, err := m.p.visibility(ctx, who)
	if err != nil {
		return nil, err
	}
	if !v.All {
		return nil, core.Invalid("repository_version", "%s", "Filter by a repository version you may see (listing all content needs access to every namespace).")
	}
	return nil, nil
}

func (m maintenanceRoutes) listContent(kind string, spec api.ListSpec) echo.HandlerFunc {
	return func(c echo.Context) error {
		ctx := c.Request().Context()
		q, err := api.ParseList(c, spec)
		if err != nil {
			return err
		}
		vf, err := m.contentQuery(ctx, &q)
		if err != nil {
			return err
		}
		page, total, err := listContentRows(ctx, m.p.store, kind, vf, q)
		if err != nil {
			return err
		}
		out, err := m.contentResponses(ctx, kind, page)
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, api.NewPage(c, q, total, out))
	}
}

func (m maintenanceRoutes) readContent(kind string) echo.HandlerFunc {
	return func(c echo.Context) error {
		ctx := c.Request().Context()
		id := c.Param("id")
		c2, err := m.p.store.ContentByID(ctx, id)
		if err != nil {
			return err
		}
		if c2.Type != contentKinds[kind] {
			return core.NotFound("content", id)
		}
		v, err := m.p.visibility(ctx, m.p.permissions().Caller(ctx))
		if err != nil {
			return err
		}
		if !v.All {
			ok, err := contentInVisibleRepository(ctx, m.p.store, id, v)
			if err != nil {
				return err
			}
			if !ok {
				return core.NotFound("content", id)
			}
		}
		page, _, err := listContentRows(ctx, m.p.store, kind, nil, core.ListQuery{Limit: 1,
			Filters: []core.Filter{{Field: "pulp_id", Op: "eq", Value: id}}})
		if err != nil {
			return err
		}
		out, err := m.contentResponses(ctx, kind, page)
		if err != nil {
			return err
		}
		if len(out) == 0 {
			return core.NotFound("content", id)
		}
		return c.JSON(http.StatusOK, out[0])
	}
}

// contentResponses renders a page of content rows.
func (m maintenanceRoutes) contentResponses(ctx context.Context, kind string, rows []contentRow) ([]any, error) {
	out := make([]any, 0, len(rows))
	switch kind {
	case "blobs":
		for _, r := range rows {
			out = append(out, BlobResponse{Href: ContentHref(kind, r.ID), PulpCreated: api.APITime(r.CreatedAt), Digest: r.Digest, Size: r.Size})
		}
	case "tags":
		for _, r := range rows {
			out = append(out, TagResponse{Href: ContentHref(kind, r.ID), PulpCreated: api.APITime(r.CreatedAt), Name: r.Name,
				TaggedManifest: ContentHref("manifests", r.ManifestID), Digest: r.Digest})
		}
	case "manifests":
		ids := make([]string, len(rows))
		for i, r := range rows {
			ids[i] = r.ID
		}
		refs, err := manifestRefHrefs(ctx, m.p.store, ids)
		if err != nil {
			return nil, err
		}
		for _, r := range rows {
			mr := ManifestResponse{Href: ContentHref(kind, r.ID), PulpCreated: api.APITime(r.CreatedAt), Digest: r.Digest,
				MediaType: r.MediaType, SchemaVersion: r.SchemaVersion, IsIndex: r.IsIndex, ArtifactType: r.ArtifactType,
				Subject: r.SubjectDigest, Blobs: []string{}, ListedManifests: []string{}}
			for _, ref := range refs[r.ID] {
				switch {
				case ref.Kind == "manifest":
					mr.ListedManifests = append(mr.ListedManifests, ContentHref("manifests", ref.ContentID))
				case ref.Kind == "config":
					h := ContentHref("blobs", ref.ContentID)
					mr.ConfigBlob = &h
					mr.Blobs = append(mr.Blobs, h)
				default:
					mr.Blobs = append(mr.Blobs, ContentHref("blobs", ref.ContentID))
				}
			}
			out = append(out, mr)
		}
	}
	return out, nil
}
