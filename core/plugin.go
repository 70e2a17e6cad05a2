package core

import (
	"fmt"
	"io/fs"
	"sort"
	"sync"
)

// Plugin is what a content plugin (such as the container plugin) tells the
// core about itself. Routes and task handlers are registered through the
// optional interfaces of the api and tasks packages (api.Routes,
// tasks.HandlerProvider), so that the core needs neither HTTP nor queues.
type Plugin interface {
	// Name is short and unique ("container"); it prefixes the plugin's types.
	Name() string
	// Migrations holds "postgres/" and "sqlite/" directories of goose SQL
	// files for the plugin's own tables; nil when it has none.
	Migrations() fs.FS
	// Types lists the content, repository, remote and distribution types the
	// plugin adds, each named "<plugin>.<kind>".
	Types() Types
}

// Types are the typed objects a plugin brings.
type Types struct {
	Content       []string
	Repositories  []string
	Remotes       []string
	Distributions []string
}

// Registry knows the plugins of one process and the types they brought.
// It is filled at start and read-only afterwards.
type Registry struct {
	mu      sync.RWMutex
	plugins []Plugin
	// owner maps kind → type → plugin name. Types are unique per kind: a
	// repository type and a distribution type may share a name (Pulp's
	// "container.container" is both).
	owner map[string]map[string]string
}

// NewRegistry makes an empty registry.
func NewRegistry() *Registry {
	return &Registry{owner: map[string]map[string]string{}}
}

// Register adds a plugin; a duplicate name or type is an error.
func (r *Registry) Register(p Plugin) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, q := range r.plugins {
		if q.Name() == p.Name() {
			return fmt.Errorf("plugin %q registered twice", p.Name())
		}
	}
	t := p.Types()
	for kind, names := range map[string][]string{"content": t.Content, "repository": t.Repositories, "remote": t.Remotes, "distribution": t.Distributions} {
		for _, n := range names {
			if o, ok := r.owner[kind][n]; ok {
				return fmt.Errorf("%s type %q of plugin %q is already registered by %q", kind, n, p.Name(), o)
			}
		}
	}
	for kind, names := range map[string][]string{"content": t.Content, "repository": t.Repositories, "remote": t.Remotes, "distribution": t.Distributions} {
		for _, n := range names {
			if r.owner[kind] == nil {
				r.owner[kind] = map[string]string{}
			}
			r.owner[kind][n] = p.Name()
		}
	}
	r.plugins = append(r.plugins, p)
	return nil
}

// Plugins returns the registered plugins in registration order.
func (r *Registry) Plugins() []Plugin {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return append([]Plugin(nil), r.plugins...)
}

// Known reports whether typ is a registered type of the given kind.
func (r *Registry) Known(kind, typ string) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	_, ok := r.owner[kind][typ]
	return ok
}

// TypesOf lists the registered types of a kind, sorted.
func (r *Registry) TypesOf(kind string) []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var out []string
	for t := range r.owner[kind] {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}
