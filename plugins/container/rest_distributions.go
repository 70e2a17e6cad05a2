package container

import (
	"context"
	"fmt"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/core"
)

// Container distributions through the core's REST API
// (/pulp/api/v3/distributions/container/container/): the plugin shows each
// one's namespace, lets only the namespace's owners (manage_roles) create
// or change them — making an image private or public among others — within
// their namespace (a distribution serves a repository of its own
// namespace), and drops its caches once a change committed, so that /v2/ applies a new
// privacy at once in this process (other replicas follow within the
// latest-version TTL, see WithLatestTTL).

// distributionFields are the plugin's fields of a container distribution.
type distributionFields struct {
	Namespace string `json:"namespace" api:"readonly" doc:"Href of the container namespace the image belongs to."`
}

// distributionExtension is the plugin's part of container distributions
// (Plugin.APIExtension returns it).
type distributionExtension struct{ p *Plugin }

var _ api.Committer = distributionExtension{}

func (distributionExtension) NewFields() any { return &distributionFields{} }

// Save checks that the caller owns the namespace of the distribution's base
// path, which must exist, and links the distribution to it. A distribution
// cannot move to another namespace, nor serve a repository of another.
func (x distributionExtension) Save(ctx context.Context, tx *core.Store, _ api.SaveOp, obj any, _ any, _ api.Fields) error {
	d, ok := obj.(*core.Distribution)
	if !ok {
		return fmt.Errorf("container distribution extension: unexpected %T", obj)
	}
	p := x.p
	name := namespaceOf(d.BasePath)
	ns, found, err := namespaceByName(ctx, tx, name, true)
	if err != nil {
		return err
	}
	if !found {
		return core.Invalid("base_path", "namespace %q does not exist: create it first (POST %s) or push an image into it", name, NamespacesPath)
	}
	who := p.permissions().Caller(ctx)
	if err := p.require(ctx, who, ActionManageRoles, NamespaceStatus{Name: name, Exists: true}, "changing container distributions"); err != nil {
		return err
	}
	if err := sameNamespace(ctx, tx, d, name); err != nil {
		return err
	}
	linked, has, err := linkedNamespace(ctx, tx, d.ID)
	switch {
	case err != nil:
		return err
	case has && linked != ns.ID:
		return core.Invalid("base_path", "an image cannot move to another namespace (to %q)", name)
	case has:
		return nil
	}
	return linkDistribution(ctx, tx, d.ID, ns.ID)
}

// sameNamespace checks that d serves a repository of its own namespace (a
// repository is named after its image): an owner may not have an image of
// theirs serve another namespace's content.
func sameNamespace(ctx context.Context, tx *core.Store, d *core.Distribution, namespace string) error {
	field, repoID := "repository", ""
	switch {
	case d.RepositoryID != nil:
		repoID = *d.RepositoryID
	case d.RepositoryVersionID != nil:
		v, err := tx.VersionByID(ctx, *d.RepositoryVersionID)
		if err != nil {
			return err
		}
		field, repoID = "repository_version", v.RepositoryID
	default:
		return nil
	}
	repo, err := tx.Repository(ctx, repoID)
	if err != nil {
		return err
	}
	if namespaceOf(repo.Name) != namespace {
		return core.Invalid(field, "the repository %q is not in namespace %q: an image serves a repository of its own namespace", repo.Name, namespace)
	}
	return nil
}

// Committed drops what the caches say about served names.
func (x distributionExtension) Committed(context.Context, api.SaveOp, any) {
	x.p.caches.invalidateServed()
}

// Show gives each linked distribution its namespace's href.
func (distributionExtension) Show(ctx context.Context, s *core.Store, ids []string) (map[string]any, error) {
	links, err := distributionNamespaces(ctx, s, ids)
	if err != nil {
		return nil, err
	}
	out := make(map[string]any, len(links))
	for d, ns := range links {
		out[d] = &distributionFields{Namespace: NamespaceHref(ns)}
	}
	return out, nil
}
