package container

import (
	"context"
	"encoding/json"
	"slices"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/core"
)

// The service API the REST layer uses (the content app's handlers use the
// same services). Reads go through what an image name serves; writes make
// repository versions, like pushes. Authorization is the caller's business.

// ListNamespaces lists the container namespaces (filters: name, created_by;
// ordering: name, created_by, pulp_created).
func (p *Plugin) ListNamespaces(ctx context.Context, q core.ListQuery) ([]Namespace, int64, error) {
	return listNamespaces(ctx, p.store, q)
}

// GetNamespace finds a namespace by name.
func (p *Plugin) GetNamespace(ctx context.Context, name string) (*Namespace, error) {
	ns, found, err := namespaceByName(ctx, p.store, name, false)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, core.NotFound("namespace", name)
	}
	one := []Namespace{*ns}
	if err := countImages(ctx, p.store, one); err != nil {
		return nil, err
	}
	return &one[0], nil
}

// ListImages lists the container images (filters: name, namespace;
// ordering: name, namespace, pulp_created, pulp_last_updated).
func (p *Plugin) ListImages(ctx context.Context, q core.ListQuery) ([]Image, int64, error) {
	return listImages(ctx, p.store, q)
}

// ListOptions pages a list: at most Limit items (core.DefaultLimit when 0)
// after skipping Offset.
type ListOptions struct {
	Limit  int
	Offset int
}

func (o ListOptions) limit() int {
	switch {
	case o.Limit <= 0:
		return core.DefaultLimit
	case o.Limit > core.MaxLimit:
		return core.MaxLimit
	}
	return o.Limit
}

// servedOrUnknown resolves name for the service API.
func (p *Plugin) servedOrUnknown(ctx context.Context, name string) (served, error) {
	s, found, err := p.resolve(ctx, name)
	if err != nil {
		return served{}, err
	}
	if !found {
		return served{}, errorf(ErrNameUnknown, "repository %q is not known", name)
	}
	return s, nil
}

// ListTags lists the tags of the image name by tag name, with their digests.
func (p *Plugin) ListTags(ctx context.Context, name string, o ListOptions) ([]TagInfo, int64, error) {
	s, err := p.servedOrUnknown(ctx, name)
	if err != nil {
		return nil, 0, err
	}
	return listTagInfos(ctx, p.store, s.RepoID, s.Version, o.limit(), max(o.Offset, 0))
}

// ManifestInfo describes a manifest of an image for the catalog.
type ManifestInfo struct {
	Digest       string            `json:"digest"`
	MediaType    string            `json:"media_type"`
	Size         int64             `json:"size"`
	IsIndex      bool              `json:"is_index"`
	ArtifactType string            `json:"artifact_type,omitempty"`
	ConfigDigest string            `json:"config_digest,omitempty"`
	OS           string            `json:"os,omitempty"`
	Architecture string            `json:"architecture,omitempty"`
	Variant      string            `json:"variant,omitempty"`
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	Tags         []string          `json:"tags"`
	// References are the config and layers of an image, or the manifests of
	// an index (with their platforms); filled by GetManifest.
	References []Reference `json:"references,omitempty"`
	CreatedAt  time.Time   `json:"pulp_created"`
}

// Reference is one thing a manifest references.
type Reference struct {
	Kind         string `json:"kind"` // config | layer | manifest
	Digest       string `json:"digest"`
	MediaType    string `json:"media_type"`
	Size         int64  `json:"size"`
	OS           string `json:"os,omitempty"`
	Architecture string `json:"architecture,omitempty"`
	Variant      string `json:"variant,omitempty"`
}

// ListManifests lists the manifests of the image name, newest first, with
// their tags.
func (p *Plugin) ListManifests(ctx context.Context, name string, o ListOptions) ([]ManifestInfo, int64, error) {
	s, err := p.servedOrUnknown(ctx, name)
	if err != nil {
		return nil, 0, err
	}
	rows, total, err := listManifestRows(ctx, p.store, s.RepoID, s.Version, o.limit(), max(o.Offset, 0), "")
	if err != nil {
		return nil, 0, err
	}
	out, err := p.manifestInfos(ctx, s, rows)
	return out, total, err
}

// GetManifest describes the manifest a tag or digest names in the image
// name, with what it references.
func (p *Plugin) GetManifest(ctx context.Context, name, ref string) (*ManifestInfo, error) {
	r, err := parseReference(ref)
	if err != nil {
		return nil, err
	}
	s, m, err := p.lookupManifest(ctx, name, r)
	if err != nil {
		return nil, err
	}
	rows, _, err := listManifestRows(ctx, p.store, s.RepoID, s.Version, 1, 0, m.Digest.String())
	if err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, errorf(ErrManifestUnknown, "manifest %s is not in repository %q", ref, name)
	}
	infos, err := p.manifestInfos(ctx, s, rows)
	if err != nil {
		return nil, err
	}
	refs, err := manifestRefs(ctx, p.store, rows[0].ContentID)
	if err != nil {
		return nil, err
	}
	for _, r := range refs {
		infos[0].References = append(infos[0].References, Reference{
			Kind: r.Kind, Digest: r.Digest, MediaType: r.MediaType, Size: r.Size,
			OS: r.OS, Architecture: r.Architecture, Variant: r.Variant,
		})
	}
	return &infos[0], nil
}

// ManifestBytes returns the exact bytes and media type of the manifest a
// tag or digest names in the image name.
func (p *Plugin) ManifestBytes(ctx context.Context, name, ref string) ([]byte, string, error) {
	r, err := parseReference(ref)
	if err != nil {
		return nil, "", err
	}
	_, m, err := p.lookupManifest(ctx, name, r)
	if err != nil {
		return nil, "", err
	}
	md, err := p.manifestContent(ctx, m.Digest)
	return md.Data, md.MediaType, err
}

func (p *Plugin) manifestInfos(ctx context.Context, s served, rows []manifestInfoRow) ([]ManifestInfo, error) {
	ids := make([]string, len(rows))
	for i, r := range rows {
		ids[i] = r.ContentID
	}
	tags, err := tagsByManifest(ctx, p.store, s.RepoID, s.Version, ids)
	if err != nil {
		return nil, err
	}
	out := make([]ManifestInfo, 0, len(rows))
	for _, r := range rows {
		mi := ManifestInfo{
			Digest: r.Digest, MediaType: r.MediaType, Size: r.Size, IsIndex: r.IsIndex, ArtifactType: r.ArtifactType,
			ConfigDigest: r.ConfigDigest, OS: r.OS, Architecture: r.Architecture, Variant: r.Variant,
			Labels: decodeMap(r.Labels), Annotations: annotationsOf(r.Annotations, r.Data), Tags: tags[r.ContentID], CreatedAt: r.CreatedAt,
		}
		if mi.Tags == nil {
			mi.Tags = []string{}
		}
		if mi.Annotations == nil {
			mi.Annotations = map[string]string{}
		}
		out = append(out, mi)
	}
	return out, nil
}

// TagManifest points tag at the manifest d of the image name (moving it if
// it pointed elsewhere), in one new repository version.
func (p *Plugin) TagManifest(ctx context.Context, who Identity, name, tag string, d digest.Digest) error {
	if err := ValidateTag(tag); err != nil {
		return err
	}
	err := p.retry(ctx, "tag manifest", func() error {
		return p.store.Tx(ctx, func(tx *core.Store) error {
			repo, err := p.existingTarget(ctx, tx, name)
			if err != nil {
				return err
			}
			_, _, err = tx.NewVersion(ctx, repo.ID, who.name(), func(b *core.VersionBuilder) error {
				have, err := manifestsInVersion(ctx, tx, repo.ID, b.Number(), []string{d.String()})
				if err != nil {
					return err
				}
				mid, ok := have[d.String()]
				if !ok {
					return errorf(ErrManifestUnknown, "manifest %s is not in repository %q", d, name)
				}
				tc, created, err := tx.GetOrCreateContent(ctx, TypeTag, tag+"@"+d.String())
				if err != nil {
					return err
				}
				if created {
					if err := insertTag(ctx, tx, tc.ID, tag, mid); err != nil {
						return err
					}
				}
				old, err := tagContentIDs(ctx, tx, repo.ID, b.Number(), tag)
				if err != nil {
					return err
				}
				if err := b.Remove(ctx, slices.DeleteFunc(old, func(id string) bool { return id == tc.ID })...); err != nil {
					return err
				}
				return b.Add(ctx, tc.ID)
			})
			return err
		})
	})
	p.caches.invalidate(name)
	return err
}

func decodeMap(s string) map[string]string {
	out := map[string]string{}
	if s != "" && s != "{}" {
		_ = json.Unmarshal([]byte(s), &out)
	}
	return out
}
