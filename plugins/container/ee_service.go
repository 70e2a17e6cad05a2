package container

import (
	"context"
	"time"

	"github.com/berth-dev/berth/core"
)

// The execution-environment service API (Galaxy NG's views of an image:
// an image name is a namespace + repository + distribution, and, when
// mirrored, a remote). The product REST layer (package product) calls it;
// authorization is the caller's business, as for service.go.

// Visible says which private images a caller may see: all of them, or
// those of the namespaces named. Public images are seen by everyone.
type Visible struct {
	All        bool
	Namespaces []string
}

// ExecutionEnvironment is an image name with what serves it.
type ExecutionEnvironment struct {
	Name           string
	Namespace      string
	Description    string
	Private        bool
	DistributionID string
	// RepositoryID is "" when the distribution serves no repository.
	RepositoryID string
	// RemoteID is the remote the repository mirrors, "" for a local image.
	RemoteID      string
	LatestVersion int
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

func (r eeRow) environment() ExecutionEnvironment {
	ee := ExecutionEnvironment{Name: r.Name, Namespace: r.Namespace, Private: r.Private, DistributionID: r.DistributionID,
		CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.DistUpdated.UTC()}
	if r.RepositoryID != nil {
		ee.RepositoryID = *r.RepositoryID
	}
	if r.Description != nil {
		ee.Description = *r.Description
	}
	if r.RemoteID != nil {
		ee.RemoteID = *r.RemoteID
	}
	if r.LatestVersion != nil {
		ee.LatestVersion = *r.LatestVersion
	}
	if r.RepoUpdated != nil && r.RepoUpdated.After(ee.UpdatedAt) {
		ee.UpdatedAt = r.RepoUpdated.UTC()
	}
	return ee
}

// ListExecutionEnvironments lists the images v may see (filters: name,
// namespace, remote (bool), private (bool); orderings: name, namespace,
// pulp_created, pulp_last_updated).
func (p *Plugin) ListExecutionEnvironments(ctx context.Context, q core.ListQuery, v Visible) ([]ExecutionEnvironment, int64, error) {
	rows, total, err := listEERows(ctx, p.store, q, v)
	if err != nil {
		return nil, 0, err
	}
	out := make([]ExecutionEnvironment, len(rows))
	for i, r := range rows {
		out[i] = r.environment()
	}
	return out, total, nil
}

// GetExecutionEnvironment finds an image by name; an unknown name is
// ErrNameUnknown.
func (p *Plugin) GetExecutionEnvironment(ctx context.Context, name string) (*ExecutionEnvironment, error) {
	r, found, err := eeRowByName(ctx, p.store, name)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, errorf(ErrNameUnknown, "execution environment %q does not exist", name)
	}
	ee := r.environment()
	return &ee, nil
}

// LatestTag is the tag to show in a pull string of name: "latest" if
// there is one, else the tag of the newest manifest. found is false when
// the image has no tag.
func (p *Plugin) LatestTag(ctx context.Context, name string) (TagInfo, bool, error) {
	s, found, err := p.resolve(ctx, name)
	if err != nil || !found {
		return TagInfo{}, false, err
	}
	return latestTagOf(ctx, p.store, s.RepoID, s.Version)
}

// ImageFilter selects images of ListImageManifests by digest or tag.
type ImageFilter struct {
	Digest string
	Tag    string
}

// ListImageManifests lists the images of name newest first: its manifests
// that are tagged or that no index lists, with their tags. The References
// of an index are its platform manifests.
func (p *Plugin) ListImageManifests(ctx context.Context, name string, f ImageFilter, o ListOptions) ([]ManifestInfo, int64, error) {
	if f.Digest != "" {
		if _, err := ParseDigest(f.Digest); err != nil {
			return nil, 0, err
		}
	}
	if f.Tag != "" {
		if err := ValidateTag(f.Tag); err != nil {
			return nil, 0, err
		}
	}
	s, err := p.servedOrUnknown(ctx, name)
	if err != nil {
		return nil, 0, err
	}
	rows, total, err := topManifestRows(ctx, p.store, s.RepoID, s.Version, o.limit(), max(o.Offset, 0), f.Digest, f.Tag)
	if err != nil {
		return nil, 0, err
	}
	out, err := p.manifestInfos(ctx, s, rows)
	if err != nil {
		return nil, 0, err
	}
	var indexes []string
	for _, r := range rows {
		if r.IsIndex {
			indexes = append(indexes, r.ContentID)
		}
	}
	refs, err := refsOf(ctx, p.store, indexes)
	if err != nil {
		return nil, 0, err
	}
	for i, r := range rows {
		for _, ref := range refs[r.ContentID] {
			out[i].References = append(out[i].References, Reference{Kind: ref.Kind, Digest: ref.Digest, MediaType: ref.MediaType,
				Size: ref.Size, OS: ref.OS, Architecture: ref.Architecture, Variant: ref.Variant})
		}
	}
	return out, total, nil
}

// Change is one tag or manifest a repository version added or removed.
type Change struct {
	// Kind is "tag" or "manifest".
	Kind string
	// Tag is the tag's name (tags only).
	Tag string
	// Digest is the manifest's digest (for a tag: the manifest it names).
	Digest string
}

// VersionActivity is what one repository version changed in an image's
// tags and manifests, when and by whom.
type VersionActivity struct {
	Number    int
	CreatedAt time.Time
	CreatedBy string
	Added     []Change
	Removed   []Change
}

// Activity lists the repository versions of name that changed its tags or
// manifests, newest first, with what each added and removed. The history
// is recorded as versions are made (activity.go), so it reaches back to the
// repository's first version whatever retain_repo_versions prunes.
func (p *Plugin) Activity(ctx context.Context, name string, o ListOptions) ([]VersionActivity, int64, error) {
	ee, err := p.GetExecutionEnvironment(ctx, name)
	if err != nil {
		return nil, 0, err
	}
	if ee.RepositoryID == "" {
		return []VersionActivity{}, 0, nil
	}
	rows, total, err := activityPage(ctx, p.store, ee.RepositoryID, o.limit(), max(o.Offset, 0))
	if err != nil {
		return nil, 0, err
	}
	out := []VersionActivity{}
	for _, r := range rows {
		if len(out) == 0 || out[len(out)-1].Number != r.Version {
			out = append(out, VersionActivity{Number: r.Version, CreatedAt: r.CreatedAt.UTC(), CreatedBy: r.CreatedBy, Added: []Change{}, Removed: []Change{}})
		}
		a := &out[len(out)-1]
		c := Change{Kind: "manifest", Digest: r.Digest}
		if r.Action == actionTagAdded || r.Action == actionTagRemoved {
			c.Kind, c.Tag = "tag", r.Tag
		}
		if r.Action == actionTagAdded || r.Action == actionImageAdded {
			a.Added = append(a.Added, c)
		} else {
			a.Removed = append(a.Removed, c)
		}
	}
	return out, total, nil
}

// ImageRefs lists "name:tag" for every tag of the images v may see (of one
// image when name is not empty), sorted.
func (p *Plugin) ImageRefs(ctx context.Context, v Visible, name string) ([]string, error) {
	rows, err := visibleImageRefs(ctx, p.store, v, name)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = r.Name + ":" + r.Tag
	}
	return out, nil
}

// DeleteExecutionEnvironment deletes the image name altogether: its
// repository with every version, with what belongs to it alone (its
// distribution, and the remote no other repository uses: see
// RepositoryDeleting), in one transaction. Its namespace stays.
func (p *Plugin) DeleteExecutionEnvironment(ctx context.Context, who Identity, name string) error {
	err := p.retry(ctx, "delete image", func() error {
		return p.store.Tx(ctx, func(tx *core.Store) error {
			r, found, err := eeRowByName(ctx, tx, name)
			if err != nil {
				return err
			}
			if !found {
				return errorf(ErrNameUnknown, "execution environment %q does not exist", name)
			}
			if r.RepositoryID == nil {
				return tx.DeleteDistribution(ctx, r.DistributionID)
			}
			return tx.DeleteRepositoryWith(ctx, *r.RepositoryID, p)
		})
	})
	p.caches.invalidate(name)
	if err == nil {
		p.log.Info("execution environment deleted", "name", name, "user", who.name())
	}
	return err
}
