package container

import (
	"context"
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
	return pendingBlob(ctx, p.store, name, d)
}
