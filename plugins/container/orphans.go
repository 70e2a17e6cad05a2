package container

import (
	"context"
	"slices"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/core"
)

// The container plugin's part in orphan cleanup (see core/orphans.go for
// the whole argument): it protects the content the core cannot see is
// needed, keeps blob files leased while uploads store them, and lets the
// distribution and remote of a repository go with it.

var (
	_ core.ContentProtector = (*Plugin)(nil)
	_ core.RepositoryHook   = (*Plugin)(nil)
)

// Touch throttling: a blob is touched at most once per touchEvery per
// process, and the last touchedEntries digests are remembered.
const (
	touchEvery     = 10 * time.Minute
	touchedEntries = 50_000
)

// ProtectedContent returns, of the orphan candidates ids, the container
// content that is still needed though no repository version holds it:
//
//   - blobs pending for an image name: uploaded or mounted for a push
//     whose manifest has not come yet (until the upload expiry);
//   - blobs (config, layers) a manifest in some repository version
//     references, and manifests an index or a tag in some version names:
//     never remove what a manifest references, even when a client removed
//     the blob itself from the repository;
//   - the same one level down: blobs of the manifests such an index lists.
//
// It runs in the cleanup's transaction with the candidates locked (see
// core.ContentProtector). Pushes lock the blobs they reference first, so a
// record made by a push in flight is either seen here or made after the
// candidate is gone, and then the push fails cleanly instead.
func (p *Plugin) ProtectedContent(ctx context.Context, tx *core.Store, ids []string) ([]string, error) {
	return protectedContent(ctx, tx, ids)
}

// RepositoryDeleting deletes, with a container repository, the container
// distributions that serve it (its image name) and its remote when no other
// repository uses that remote.
func (p *Plugin) RepositoryDeleting(ctx context.Context, tx *core.Store, repo *core.Repository) error {
	if repo.Type != TypeRepository {
		return nil
	}
	names, err := deleteRepositoryDistributions(ctx, tx, repo.ID)
	if err != nil {
		return err
	}
	for _, n := range names {
		p.caches.invalidate(n)
	}
	remotes, err := repositoryRemotes(ctx, tx, repo.ID)
	if err != nil {
		return err
	}
	if repo.RemoteID != nil {
		remotes = append(remotes, *repo.RemoteID)
	}
	for _, id := range slices.Compact(slices.Sorted(slices.Values(remotes))) {
		users, err := tx.RepositoriesUsingRemote(ctx, id)
		if err != nil {
			return err
		}
		own := int64(0)
		if repo.RemoteID != nil && *repo.RemoteID == id {
			own = 1
		}
		if users > own {
			continue // another repository syncs from it too
		}
		if err := deleteContainerRemote(ctx, tx, id); err != nil {
			return err
		}
	}
	return nil
}

// touchBlob records that a client asked for blob d, which it may reference
// in a manifest soon, so that orphan cleanup keeps it for the protection
// time even if the repository holding it goes meanwhile. Best effort, at
// most once per touchEvery per process.
func (p *Plugin) touchBlob(ctx context.Context, d digest.Digest) {
	if _, ok := p.touched.get(d.String()); ok {
		return
	}
	p.touched.put(d.String(), true, 0)
	if _, err := p.store.TouchContent(ctx, TypeBlob, d.String()); err != nil {
		p.log.Debug("touching a blob failed", "digest", d, "err", err)
	}
}

// leaseBlob protects the file of d from orphan cleanup while it is stored
// and recorded; releaseLease ends that.
func (p *Plugin) leaseBlob(ctx context.Context, d digest.Digest) (*core.Lease, error) {
	return p.store.LeaseArtifact(ctx, d.String())
}

func (p *Plugin) releaseLease(ctx context.Context, d digest.Digest, l *core.Lease) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := l.Release(ctx); err != nil {
		p.log.Warn("releasing a blob lease failed; it expires by itself", "digest", d, "err", err)
	}
}

// WithBlobLease runs store, which writes the file of blob d to storage and
// records its artifact (committed) before it returns, under a lease that
// keeps orphan cleanup from removing the file in between. Every writer of
// blob files (uploads, syncs, pull-through) must store through it.
func (p *Plugin) WithBlobLease(ctx context.Context, d digest.Digest, store func() error) error {
	lease, err := p.leaseBlob(ctx, d)
	if err != nil {
		return err
	}
	defer p.releaseLease(ctx, d, lease)
	return store()
}
