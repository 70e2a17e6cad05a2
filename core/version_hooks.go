package core

import (
	"context"
	"slices"
	"sync"
)

// VersionHook runs inside the transaction of every NewVersion that made a
// version, once the version row exists and the repository's latest_version
// names it, and before retention prunes older versions. tx is that
// transaction; repo is the (locked) repository and v the new version. The
// membership rows of the change are those with version_added = v.Number or
// version_removed = v.Number. An error rolls the whole version back.
type VersionHook func(ctx context.Context, tx *Store, repo *Repository, v *RepositoryVersion) error

// versionHooks are the hooks of one store, in registration order.
type versionHooks struct {
	mu    sync.RWMutex
	names []string
	fns   []VersionHook
}

// OnNewVersion registers h under name, to run after every new version made
// through this store (or any transaction of it); registering a name again
// replaces its hook, so constructing a plugin twice on one store does not
// run its hook twice. Plugins register while they are constructed.
func (s *Store) OnNewVersion(name string, h VersionHook) {
	hs := s.hooks
	hs.mu.Lock()
	defer hs.mu.Unlock()
	if i := slices.Index(hs.names, name); i >= 0 {
		hs.fns[i] = h
		return
	}
	hs.names = append(hs.names, name)
	hs.fns = append(hs.fns, h)
}

// runVersionHooks runs the registered hooks for a new version, in order.
func (s *Store) runVersionHooks(ctx context.Context, repo *Repository, v *RepositoryVersion) error {
	if s.hooks == nil {
		return nil
	}
	s.hooks.mu.RLock()
	fns := slices.Clone(s.hooks.fns)
	s.hooks.mu.RUnlock()
	for _, h := range fns {
		if err := h(ctx, s, repo, v); err != nil {
			return err
		}
	}
	return nil
}
