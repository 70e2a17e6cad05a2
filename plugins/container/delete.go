package container

import (
	"context"
	"maps"
	"slices"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/core"
)

// Deletes make a new version of the image's repository without the deleted
// content. Nothing leaves blob storage here: blobs and manifests are shared
// and stay in older versions; orphan cleanup removes what no version holds.

// existingTarget is the repository that deletes in name change.
func (p *Plugin) existingTarget(ctx context.Context, tx *core.Store, name string) (*core.Repository, error) {
	d, found, err := distributionByBasePath(ctx, tx, name)
	if err != nil {
		return nil, err
	}
	if !found || d.Type != TypeDistribution {
		return nil, errorf(ErrNameUnknown, "repository %q is not known", name)
	}
	return writableRepository(ctx, tx, d)
}

// DeleteManifest removes the manifest d and every tag pointing at it from
// the image name, in one new repository version.
func (p *Plugin) DeleteManifest(ctx context.Context, who Identity, name string, d digest.Digest) error {
	err := p.retry(ctx, "delete manifest", func() error {
		return p.store.Tx(ctx, func(tx *core.Store) error {
			repo, err := p.existingTarget(ctx, tx, name)
			if err != nil {
				return err
			}
			_, _, err = tx.NewVersion(ctx, repo.ID, who.name(), func(b *core.VersionBuilder) error {
				ids, err := manifestsInVersion(ctx, tx, repo.ID, b.Number(), []string{d.String()})
				if err != nil {
					return err
				}
				id, ok := ids[d.String()]
				if !ok {
					return errorf(ErrManifestUnknown, "manifest %s is not in repository %q", d, name)
				}
				tags, err := tagsOfManifest(ctx, tx, repo.ID, b.Number(), id)
				if err != nil {
					return err
				}
				return b.Remove(ctx, append(tags, id)...)
			})
			return err
		})
	})
	p.caches.invalidate(name)
	if err == nil {
		p.log.Info("manifest deleted", "name", name, "digest", d, "user", who.name())
	}
	return err
}

// DeleteTag removes a tag from the image name (its manifest stays), in one
// new repository version.
func (p *Plugin) DeleteTag(ctx context.Context, who Identity, name, tag string) error {
	if err := ValidateTag(tag); err != nil {
		return err
	}
	err := p.retry(ctx, "delete tag", func() error {
		return p.store.Tx(ctx, func(tx *core.Store) error {
			repo, err := p.existingTarget(ctx, tx, name)
			if err != nil {
				return err
			}
			_, _, err = tx.NewVersion(ctx, repo.ID, who.name(), func(b *core.VersionBuilder) error {
				ids, err := tagContentIDs(ctx, tx, repo.ID, b.Number(), tag)
				if err != nil {
					return err
				}
				if len(ids) == 0 {
					return errorf(ErrManifestUnknown, "tag %q is not in repository %q", tag, name)
				}
				return b.Remove(ctx, ids...)
			})
			return err
		})
	})
	p.caches.invalidate(name)
	if err == nil {
		p.log.Info("tag deleted", "name", name, "tag", tag, "user", who.name())
	}
	return err
}

// DeleteBlob makes blob d unreadable through the image name: it forgets a
// pending upload of it and removes it from the repository in a new version.
// Manifests that reference it are left alone, as the distribution spec
// allows; pulling them then fails on the blob.
func (p *Plugin) DeleteBlob(ctx context.Context, who Identity, name string, d digest.Digest) error {
	err := p.retry(ctx, "delete blob", func() error {
		return p.store.Tx(ctx, func(tx *core.Store) error {
			n, err := deletePending(ctx, tx, name, []string{d.String()})
			if err != nil {
				return err
			}
			removed := false
			dist, found, err := distributionByBasePath(ctx, tx, name)
			if err != nil {
				return err
			}
			if found && dist.Type == TypeDistribution && dist.RepositoryID != nil {
				repo, err := writableRepository(ctx, tx, dist)
				if err != nil {
					return err
				}
				_, _, err = tx.NewVersion(ctx, repo.ID, who.name(), func(b *core.VersionBuilder) error {
					have, err := visibleBlobs(ctx, tx, "", repo.ID, b.Number(), []string{d.String()})
					if err != nil {
						return err
					}
					ids := slices.Collect(maps.Values(have))
					removed = len(ids) > 0
					return b.Remove(ctx, ids...)
				})
				if err != nil {
					return err
				}
			}
			if n == 0 && !removed {
				return errorf(ErrBlobUnknown, "blob %s is not in repository %q", d, name)
			}
			return nil
		})
	})
	p.caches.invalidate(name)
	if err == nil {
		p.log.Info("blob deleted", "name", name, "digest", d, "user", who.name())
	}
	return err
}
