package container

import (
	"context"
	"errors"
	"strconv"

	"github.com/opencontainers/go-digest"
)

// The read side: which version an image name serves, and what is in it.
// Warm, these cost no database round trip (see cache.go).

// resolve finds what name serves. found is false when no container
// distribution has that base path or it serves nothing yet.
func (p *Plugin) resolve(ctx context.Context, name string) (served, bool, error) {
	if e, ok := p.caches.served.get(name); ok {
		return e.s, e.found, nil
	}
	gen := p.caches.gen.Load()
	s, found, err := servedByName(ctx, p.store, name)
	if err != nil {
		return served{}, false, err
	}
	p.caches.served.putIf(name, servedEntry{s: s, found: found}, 0, func() bool { return p.caches.gen.Load() == gen })
	return s, found, nil
}

// refresh reads what name serves from the database, bypassing the cache,
// and caches the answer. changed tells whether it differs from s: the cached
// version was stale. A version made by another process (a worker's sync,
// another replica's push) may also have deleted the cached one through
// retention, and then lookups in it miss content the repository still has.
func (p *Plugin) refresh(ctx context.Context, name string, s served) (fresh served, found, changed bool, err error) {
	p.caches.invalidate(name)
	fresh, found, err = p.resolve(ctx, name)
	if err != nil {
		return served{}, false, false, err
	}
	return fresh, found, !found || fresh != s, nil
}

// lookupManifest finds the manifest a tag or digest names in the version
// name serves. A miss is checked once against the database's current
// answer, so a cache that is a moment behind another process never turns
// into a false MANIFEST_UNKNOWN; hits, the hot path, cost no query.
func (p *Plugin) lookupManifest(ctx context.Context, name string, ref reference) (served, manifestRef, error) {
	s, found, err := p.resolve(ctx, name)
	if err != nil {
		return served{}, manifestRef{}, err
	}
	if !found {
		return served{}, manifestRef{}, errorf(ErrNameUnknown, "repository %q is not known", name)
	}
	m, err := p.findManifest(ctx, s, ref)
	if !errors.Is(err, ErrManifestUnknown) {
		return s, m, err
	}
	fresh, found, changed, rerr := p.refresh(ctx, name, s)
	switch {
	case rerr != nil:
		return served{}, manifestRef{}, rerr
	case !found:
		return served{}, manifestRef{}, errorf(ErrNameUnknown, "repository %q is not known", name)
	case !changed:
		return s, m, err
	}
	m, err = p.findManifest(ctx, fresh, ref)
	return fresh, m, err
}

// NamespaceStatus is what access control needs to know about the namespace
// of an image name.
type NamespaceStatus struct {
	// Name is the namespace the image name belongs to.
	Name string
	// Exists is false when a push of the name would create the namespace.
	Exists bool
	// Private: the image's distribution is private, so pulls need a role.
	Private bool
}

// ResolveNamespace tells the namespace of an image name, whether it exists
// and whether the image is private. The auth service asks it on every /v2/
// request; warm, it costs no query (answers are cached briefly, and this
// process's own changes invalidate them).
func (p *Plugin) ResolveNamespace(ctx context.Context, repository string) (NamespaceStatus, error) {
	st := NamespaceStatus{Name: namespaceOf(repository)}
	exists, ok := p.caches.spaces.get(st.Name)
	if !ok {
		gen := p.caches.gen.Load()
		_, found, err := namespaceByName(ctx, p.store, st.Name, false)
		if err != nil {
			return st, err
		}
		exists = found
		p.caches.spaces.putIf(st.Name, exists, 0, func() bool { return p.caches.gen.Load() == gen })
	}
	st.Exists = exists
	s, found, err := p.resolve(ctx, repository)
	if err != nil {
		return st, err
	}
	st.Private = found && s.Private
	return st, nil
}

func versionKey(s served, ref string) string {
	return s.RepoID + "|" + strconv.Itoa(s.Version) + "|" + ref
}

// findManifest finds the manifest a tag or digest names in the served version.
func (p *Plugin) findManifest(ctx context.Context, s served, ref reference) (manifestRef, error) {
	key := versionKey(s, ref.String())
	m, ok := p.caches.manifests.get(key)
	if !ok {
		var data []byte
		var err error
		m, data, err = manifestInVersion(ctx, p.store, s.RepoID, s.Version, ref)
		if err != nil {
			return manifestRef{}, err
		}
		p.caches.manifests.put(key, m, 0)
		if m.found {
			p.caches.data.put(m.Digest.String(), manifestData{MediaType: m.MediaType, Data: data}, int64(len(data)))
		}
	}
	if !m.found {
		return manifestRef{}, errorf(ErrManifestUnknown, "manifest %s is not in the repository", ref)
	}
	return m, nil
}

// manifestContent returns the exact bytes of a manifest.
func (p *Plugin) manifestContent(ctx context.Context, d digest.Digest) (manifestData, error) {
	if md, ok := p.caches.data.get(d.String()); ok {
		return md, nil
	}
	md, found, err := manifestBytes(ctx, p.store, d)
	if err != nil {
		return manifestData{}, err
	}
	if !found {
		return manifestData{}, errorf(ErrManifestUnknown, "manifest %s is not in the registry", d)
	}
	p.caches.data.put(d.String(), md, int64(len(md.Data)))
	return md, nil
}

// blobVisible reports whether blob d is readable through name: content of
// the version name serves, or uploaded to / mounted into name and not yet
// taken into a version by a manifest push.
func (p *Plugin) blobVisible(ctx context.Context, name string, d digest.Digest) (bool, error) {
	s, found, err := p.resolve(ctx, name)
	if err != nil {
		return false, err
	}
	if found {
		key := versionKey(s, d.String())
		in, ok := p.caches.blobs.get(key)
		if !ok {
			in, err = blobInVersion(ctx, p.store, s.RepoID, s.Version, d)
			if err != nil {
				return false, err
			}
			p.caches.blobs.put(key, in, 0)
		}
		if in {
			return true, nil
		}
	}
	pending, err := pendingBlob(ctx, p.store, name, d)
	if err != nil || pending {
		return pending, err
	}
	// Not visible: check once that the cache was not behind another process.
	fresh, found, changed, err := p.refresh(ctx, name, s)
	if err != nil || !found || !changed {
		return false, err
	}
	return blobInVersion(ctx, p.store, fresh.RepoID, fresh.Version, d)
}
