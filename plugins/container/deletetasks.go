package container

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/core"
	"github.com/berth-dev/berth/tasks"
)

// Deletions that free storage: removing content from a container
// repository (recursively, see removal.go), retention, and deleting
// namespaces. They run as tasks; each makes at most one new repository
// version, and what leaves the last version leaves storage at the next
// orphan cleanup (the repositories pushes create keep one version, see
// WithPushRetention).

// Names of the container plugin's deletion tasks.
const (
	// TaskRemove removes content from a repository; args RemoveArgs.
	TaskRemove = "container.remove"
	// TaskRetention applies a retention policy; args RetentionArgs.
	TaskRetention = "container.retention"
	// TaskDeleteNamespace deletes a namespace (and with force, its
	// images); args DeleteNamespaceArgs.
	TaskDeleteNamespace = "container.delete_namespace"
)

// Selection names what to remove from a repository.
type Selection struct {
	// ContentIDs are container content units, removed recursively: a tag
	// alone, a manifest with its tags, an index with the manifests it
	// lists, and blobs nothing that stays references.
	ContentIDs []string `json:"content_ids,omitempty"`
	// All removes every container content unit.
	All bool `json:"all,omitempty"`
	// Digests are manifests (images, indexes) removed with all their tags.
	Digests []string `json:"digests,omitempty"`
	// ImageTags name manifests removed with all their tags.
	ImageTags []string `json:"image_tags,omitempty"`
	// Tags are tags removed alone: their manifests stay.
	Tags []string `json:"tags,omitempty"`
}

// removal turns a selection into the snapshot's terms; what the version
// does not hold is ignored.
func (s *snapshot) selection(sel Selection) *removal {
	r := newRemoval()
	if sel.All {
		for id := range s.tags {
			r.tags[id] = true
		}
		for id := range s.manifests {
			r.manifests[id] = true
		}
		for id := range s.blobs {
			r.blobs[id] = true
		}
		return r
	}
	for _, id := range sel.ContentIDs {
		switch {
		case s.tags[id] != nil:
			r.tags[id] = true
		case s.manifests[id] != nil:
			r.manifests[id] = true
		case s.blobs[id] != nil:
			r.blobs[id] = true
		}
	}
	for _, d := range sel.Digests {
		if id, ok := s.manifestByDigest[d]; ok {
			r.manifests[id] = true
		}
	}
	want := map[string]bool{}
	for _, t := range sel.ImageTags {
		want[t] = true
	}
	for _, t := range s.tags {
		if want[t.Name] {
			r.manifests[t.ManifestID] = true
		}
	}
	untag := map[string]bool{}
	for _, t := range sel.Tags {
		untag[t] = true
	}
	for id, t := range s.tags {
		if untag[t.Name] {
			r.tags[id] = true
		}
	}
	return r
}

// RemoveContent removes what sel names from the container repository
// repoID, recursively (see removal.go), in one new version made by who.
func (p *Plugin) RemoveContent(ctx context.Context, who Identity, repoID string, sel Selection) (*RemovalReport, error) {
	return p.removeFrom(ctx, who, repoID, false, func(s *snapshot) *removal { return s.selection(sel) })
}

// ApplyRetention removes from the container repository repoID what the
// policy does not keep, in one new version made by who; a dry run only
// reports it. A nil policy is the repository's stored one.
func (p *Plugin) ApplyRetention(ctx context.Context, who Identity, repoID string, policy *RetentionPolicy, dryRun bool) (*RemovalReport, error) {
	if policy == nil {
		row, found, err := retentionOf(ctx, p.store, repoID)
		if err != nil {
			return nil, err
		}
		if !found {
			return nil, core.Conflict("repository %s has no retention policy", repoID)
		}
		rp := row.policy()
		policy = &rp
	}
	if err := policy.Validate(); err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	return p.removeFrom(ctx, who, repoID, dryRun, func(s *snapshot) *removal { return s.retention(*policy, now) })
}

// containerRepository finds a container repository.
func (p *Plugin) containerRepository(ctx context.Context, s *core.Store, id string) (*core.Repository, error) {
	repo, err := s.Repository(ctx, id)
	if err != nil {
		return nil, err
	}
	if repo.Type != TypeRepository {
		return nil, core.NotFound("container repository", id)
	}
	return repo, nil
}

// removeFrom plans a removal on the latest version of repoID and, unless
// dryRun, makes the version without it.
func (p *Plugin) removeFrom(ctx context.Context, who Identity, repoID string, dryRun bool, build func(*snapshot) *removal) (*RemovalReport, error) {
	repo, err := p.containerRepository(ctx, p.store, repoID)
	if err != nil {
		return nil, err
	}
	if dryRun {
		snap, err := loadSnapshot(ctx, p.store, repo.ID, repo.LatestVersion)
		if err != nil {
			return nil, err
		}
		rep := snap.report(snap.plan(build(snap)))
		rep.Repository, rep.repoID, rep.DryRun, rep.Version = repo.Name, repo.ID, true, repo.LatestVersion
		return rep, nil
	}
	var rep *RemovalReport
	err = p.retry(ctx, "remove content", func() error {
		return p.store.Tx(ctx, func(tx *core.Store) error {
			v, created, err := tx.NewVersion(ctx, repo.ID, who.name(), func(b *core.VersionBuilder) error {
				snap, err := loadSnapshot(ctx, tx, repo.ID, b.Base())
				if err != nil {
					return err
				}
				pl := snap.plan(build(snap))
				rep = snap.report(pl)
				return b.Remove(ctx, pl.ids()...)
			})
			if err != nil {
				return err
			}
			rep.Repository, rep.repoID, rep.Version, rep.Created = repo.Name, repo.ID, v.Number, created
			return nil
		})
	})
	p.invalidateRepository(ctx, repo.ID)
	if err != nil {
		return nil, err
	}
	p.log.Info("content removed", "repository", repo.Name, "version", rep.Version, "tags", len(rep.Tags),
		"manifests", len(rep.Manifests), "blobs", len(rep.Blobs), "bytes", rep.Bytes, "user", who.name())
	return rep, nil
}

// invalidateRepository forgets what the names serving a repository serve.
func (p *Plugin) invalidateRepository(ctx context.Context, repoID string) {
	var names []string
	if err := p.store.DB(ctx).Raw(`SELECT base_path FROM distributions WHERE repository_id = ?`, repoID).Scan(&names).Error; err != nil {
		p.caches.invalidateServed()
		return
	}
	for _, n := range names {
		p.caches.invalidate(n)
	}
}

// NamespaceDeletion says what deleting a namespace removed.
type NamespaceDeletion struct {
	Namespace string   `json:"namespace"`
	Images    []string `json:"images"`
}

// DeleteNamespace deletes the namespace nsID. A namespace holding images
// is refused (core.ErrConflict) unless force is set: then its images go
// first, each repository with its distribution and the remote only it
// uses, all in one transaction. Permissions are the caller's business.
func (p *Plugin) DeleteNamespace(ctx context.Context, who Identity, nsID string, force bool) (*NamespaceDeletion, error) {
	out := &NamespaceDeletion{Images: []string{}}
	err := p.retry(ctx, "delete namespace", func() error {
		return p.store.Tx(ctx, func(tx *core.Store) error {
			out.Images = out.Images[:0]
			ns, found, err := lockNamespace(ctx, tx, nsID)
			if err != nil {
				return err
			}
			if !found {
				return core.NotFound("namespace", nsID)
			}
			out.Namespace = ns.Name
			imgs, err := namespaceImages(ctx, tx, ns.ID)
			if err != nil {
				return err
			}
			if len(imgs) > 0 && !force {
				return namespaceInUse(ns.Name, imgs)
			}
			for _, img := range imgs {
				if img.RepositoryID != nil {
					err = tx.DeleteRepositoryWith(ctx, *img.RepositoryID, p)
					if errors.Is(err, core.ErrNotFound) {
						err = nil
					}
				} else {
					err = tx.DeleteDistribution(ctx, img.DistributionID)
				}
				if err != nil && !errors.Is(err, core.ErrNotFound) {
					return fmt.Errorf("delete image %q: %w", img.BasePath, err)
				}
				out.Images = append(out.Images, img.BasePath)
			}
			return deleteNamespaceRow(ctx, tx, ns.ID)
		})
	})
	if err != nil {
		return nil, err
	}
	for _, n := range out.Images {
		p.caches.invalidate(n)
	}
	p.caches.invalidateNamespace(out.Namespace)
	p.log.Info("namespace deleted", "namespace", out.Namespace, "images", out.Images, "user", who.name())
	if p.onNSGone != nil {
		if err := p.onNSGone(ctx, out.Namespace); err != nil {
			// The namespace is gone; its role bindings are not. Say so loudly:
			// a namespace made again under this name would inherit them.
			p.log.Error("namespace deleted but its role bindings were not removed", "namespace", out.Namespace, "err", err)
		}
	}
	return out, nil
}

// namespaceInUse is the refusal to delete a namespace that holds images.
func namespaceInUse(name string, imgs []namespaceImage) error {
	names := make([]string, 0, 3)
	for i, img := range imgs {
		if i == 3 {
			break
		}
		names = append(names, img.BasePath)
	}
	more := ""
	if len(imgs) > len(names) {
		more = fmt.Sprintf(" and %d more", len(imgs)-len(names))
	}
	return core.Conflict("namespace %q still holds %d image(s) (%v%s); delete them first, or delete the namespace with force=true (only its owner may) to delete them with it",
		name, len(imgs), names, more)
}

// RemoveArgs are the arguments of TaskRemove.
type RemoveArgs struct {
	RepositoryID string    `json:"repository_id"`
	Selection    Selection `json:"selection"`
	User         string    `json:"user,omitempty"`
}

// RetentionArgs are the arguments of TaskRetention. A nil Policy is the
// repository's stored one.
type RetentionArgs struct {
	RepositoryID string           `json:"repository_id"`
	Policy       *RetentionPolicy `json:"policy,omitempty"`
	DryRun       bool             `json:"dry_run"`
	User         string           `json:"user,omitempty"`
}

// DeleteNamespaceArgs are the arguments of TaskDeleteNamespace.
type DeleteNamespaceArgs struct {
	NamespaceID string `json:"namespace_id"`
	Force       bool   `json:"force"`
	User        string `json:"user,omitempty"`
}

// NamespaceResource is the task-system resource of a container namespace.
func NamespaceResource(id string) string { return "container.namespace:" + id }

// MaintenanceTasks returns the handlers of the deletion tasks, for the
// task registry of every process that runs or dispatches them.
func (p *Plugin) MaintenanceTasks() tasks.HandlerProvider { return maintenanceTasks{p} }

type maintenanceTasks struct{ p *Plugin }

// TaskHandlers maps the deletion tasks to their handlers.
func (m maintenanceTasks) TaskHandlers() map[string]tasks.Handler {
	return map[string]tasks.Handler{
		TaskRemove:          m.remove,
		TaskRetention:       m.retention,
		TaskDeleteNamespace: m.deleteNamespace,
	}
}

func (m maintenanceTasks) remove(ctx context.Context, t *tasks.Task, r *tasks.Reporter) (any, error) {
	var a RemoveArgs
	if err := t.DecodeArgs(&a); err != nil {
		return nil, err
	}
	pr := r.Progress("container.remove", "Removing content").SetTotal(1)
	rep, err := m.p.RemoveContent(ctx, Identity{Username: a.User}, a.RepositoryID, a.Selection)
	if err != nil {
		pr.Fail()
		return nil, err
	}
	pr.Increment(1).Done()
	m.created(r, rep)
	return rep, nil
}

func (m maintenanceTasks) retention(ctx context.Context, t *tasks.Task, r *tasks.Reporter) (any, error) {
	var a RetentionArgs
	if err := t.DecodeArgs(&a); err != nil {
		return nil, err
	}
	msg := "Applying the retention policy"
	if a.DryRun {
		msg = "Checking the retention policy (dry run)"
	}
	pr := r.Progress("container.retention", msg).SetTotal(1)
	rep, err := m.p.ApplyRetention(ctx, Identity{Username: a.User}, a.RepositoryID, a.Policy, a.DryRun)
	if errors.Is(err, core.ErrNotFound) && a.Policy == nil {
		// A scheduled run for a repository deleted meanwhile.
		pr.Skip()
		return nil, nil
	}
	if err != nil {
		pr.Fail()
		return nil, err
	}
	pr.Increment(1).Done()
	if !a.DryRun {
		m.created(r, rep)
	}
	return rep, nil
}

func (m maintenanceTasks) deleteNamespace(ctx context.Context, t *tasks.Task, r *tasks.Reporter) (any, error) {
	var a DeleteNamespaceArgs
	if err := t.DecodeArgs(&a); err != nil {
		return nil, err
	}
	pr := r.Progress("container.delete_namespace", "Deleting the namespace").SetTotal(1)
	out, err := m.p.DeleteNamespace(ctx, Identity{Username: a.User}, a.NamespaceID, a.Force)
	if err != nil {
		pr.Fail()
		return nil, err
	}
	pr.Increment(1).Done()
	return out, nil
}

// created records the version a removal made.
func (m maintenanceTasks) created(r *tasks.Reporter, rep *RemovalReport) {
	if rep != nil && rep.Created {
		r.Created(api.VersionHref(TypeRepository, rep.repoID, rep.Version))
	}
}

// RetentionDue dispatches a retention run for every repository with a
// stored policy; the periodic retention job calls it.
func (p *Plugin) RetentionDue(ctx context.Context, d Dispatcher) (int, error) {
	ids, err := retentionRepositories(ctx, p.store)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, id := range ids {
		_, err := d.Dispatch(ctx, tasks.Spec{
			Name:      TaskRetention,
			Args:      RetentionArgs{RepositoryID: id, User: "retention"},
			Exclusive: []string{api.RepositoryResource(id)},
		})
		if err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// Dispatcher creates tasks (api.TaskService and *tasks.Dispatcher are).
type Dispatcher interface {
	Dispatch(ctx context.Context, s tasks.Spec) (*tasks.Task, error)
}

// namespaceResources are the resources a namespace deletion holds: the
// namespace and every repository it holds now.
func namespaceResources(ctx context.Context, s *core.Store, nsID string) ([]string, error) {
	imgs, err := namespaceImages(ctx, s, nsID)
	if err != nil {
		return nil, err
	}
	out := []string{NamespaceResource(nsID)}
	for _, img := range imgs {
		if img.RepositoryID != nil {
			out = append(out, api.RepositoryResource(*img.RepositoryID))
		}
	}
	return slices.Compact(slices.Sorted(slices.Values(out))), nil
}
