package container

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/core"
	"github.com/berth-dev/berth/tasks"
)

// The REST API of deletions and storage, in Pulp's shapes where Pulp has
// them:
//
//	repositories/container/container/{id}/remove/            POST {"content_units": [hrefs]} → 202 task
//	repositories/container/container/{id}/untag/             POST {"tag"} → 202 task
//	repositories/container/container/{id}/remove_image/      POST {"digest"} or {"tag"} → 202 task
//	repositories/container/container/{id}/retention/         POST a policy, dry_run → 202 task
//	repositories/container/container/{id}/retention_policy/  GET, PUT, DELETE the stored policy
//	repositories/container/container/{id}/storage/           GET bytes of the repository
//	pulp_container/namespaces/{id}/                          DELETE (?force=true) → 202 task
//	pulp_container/namespaces/{id}/storage/                  GET bytes of the namespace
//	pulp_container/storage/                                  GET bytes per namespace and in all
//
// Requests are checked before a task is dispatched: a request refused
// changes nothing.

// repositoriesPath is the collection of container repositories.
var repositoriesPath = api.TypedListHref(api.Repositories, TypeRepository)

// StoragePath is the storage summary of the container plugin.
const StoragePath = api.Prefix + "pulp_container/storage/"

// MaintenanceRoutes returns the REST routes of deletions, retention,
// content lists and storage accounting; d dispatches their tasks.
func (p *Plugin) MaintenanceRoutes(d Dispatcher) api.Routes { return maintenanceRoutes{p: p, d: d} }

type maintenanceRoutes struct {
	p *Plugin
	d Dispatcher
}

// removeRequest is the body of remove/.
type removeRequest struct {
	ContentUnits []string `json:"content_units" api:"required" doc:"Hrefs of container content (blobs, manifests, tags) to remove recursively, or [\"*\"] for all."`
}

// untagRequest is the body of untag/.
type untagRequest struct {
	Tag string `json:"tag" api:"required" doc:"The tag to remove; its manifest stays."`
}

// removeImageRequest is the body of remove_image/.
type removeImageRequest struct {
	Digest string `json:"digest" doc:"Digest of the manifest (image or index) to remove with all its tags."`
	Tag    string `json:"tag" doc:"A tag naming the manifest to remove with all its tags (instead of digest)."`
}

// retentionRequest is the body of retention/.
type retentionRequest struct {
	RetentionPolicy
	DryRun bool `json:"dry_run" doc:"Only report what would be removed."`
}

// StorageResponse is the storage a set of content takes.
type StorageResponse struct {
	Blobs int64 `json:"blobs" doc:"Distinct blob files."`
	Bytes int64 `json:"bytes" doc:"Their size."`
}

func storageOf(u core.Usage) StorageResponse {
	return StorageResponse{Blobs: u.Artifacts, Bytes: u.Bytes}
}

// RepositoryStorageResponse is the storage of a container repository.
type RepositoryStorageResponse struct {
	Repository string          `json:"repository" doc:"Href of the repository."`
	Name       string          `json:"name"`
	Total      StorageResponse `json:"total" doc:"Blobs of every version of the repository."`
	Latest     StorageResponse `json:"latest_version" doc:"Blobs of its latest version."`
	Exclusive  StorageResponse `json:"exclusive" doc:"Blobs no other repository holds: what deleting the repository and cleaning up orphans reclaims."`
}

// NamespaceStorageResponse is the storage of a namespace.
type NamespaceStorageResponse struct {
	Namespace    string                      `json:"namespace" doc:"Href of the namespace."`
	Name         string                      `json:"name"`
	Total        StorageResponse             `json:"total" doc:"Distinct blobs of all its repositories."`
	Repositories []RepositoryStorageResponse `json:"repositories"`
}

// StorageSummaryResponse is the storage per namespace and in all.
type StorageSummaryResponse struct {
	Total      StorageResponse          `json:"total" doc:"Every blob file stored."`
	Namespaces []NamespaceStorageBrief  `json:"namespaces"`
	Orphans    OrphanStorageDescription `json:"unreferenced" doc:"Blob files no repository version holds (orphan cleanup reclaims them, but those of pushes in progress)."`
}

// NamespaceStorageBrief is one namespace of the storage summary.
type NamespaceStorageBrief struct {
	Namespace string          `json:"namespace"`
	Name      string          `json:"name"`
	Total     StorageResponse `json:"total"`
}

// OrphanStorageDescription is what orphan cleanup could reclaim.
type OrphanStorageDescription struct {
	StorageResponse
	Content int64 `json:"content" doc:"Content units no repository version holds."`
}

// RetentionPolicyResponse is a stored retention policy.
type RetentionPolicyResponse struct {
	Repository string `json:"repository" api:"readonly"`
	RetentionPolicy
	UpdatedAt time.Time `json:"pulp_last_updated" api:"readonly"`
}

// APIRoutes adds the routes.
func (m maintenanceRoutes) APIRoutes(r *api.Router) {
	item := repositoriesPath + ":id/"
	repoTags := []string{"Repositories: " + TypeRepository}
	r.Add(api.Operation{
		Method: http.MethodPost, Path: item + "remove/", ID: "repositories_container_container_remove", Tags: repoTags,
		Summary:     "Remove content from a container repository",
		Description: "Removes the content recursively in a new version: a tag alone; a manifest with its tags and the manifests whose subject it is; an index with the manifests it lists that nothing else names; and the blobs no remaining manifest references. A manifest an index that stays lists is kept. The result lists what went.",
		Request:     removeRequest{}, Response: api.TaskAccepted{}, Status: http.StatusAccepted,
	}, m.remove)
	r.Add(api.Operation{
		Method: http.MethodPost, Path: item + "untag/", ID: "repositories_container_container_untag", Tags: repoTags,
		Summary: "Remove a tag from a container repository (its manifest stays)",
		Request: untagRequest{}, Response: api.TaskAccepted{}, Status: http.StatusAccepted,
	}, m.untag)
	r.Add(api.Operation{
		Method: http.MethodPost, Path: item + "remove_image/", ID: "repositories_container_container_remove_image", Tags: repoTags,
		Summary:     "Remove an image (a manifest by digest or by one of its tags) with all its tags",
		Description: "As remove/ with the manifest's href: its tags, referrers, unneeded index children and blobs go too.",
		Request:     removeImageRequest{}, Response: api.TaskAccepted{}, Status: http.StatusAccepted,
	}, m.removeImage)
	r.Add(api.Operation{
		Method: http.MethodPost, Path: item + "retention/", ID: "repositories_container_container_retention", Tags: repoTags,
		Summary:     "Apply a retention policy (or the stored one) now",
		Description: "Keeps the newest keep_tags tags matching tag_pattern and removes the others (the tags); then removes manifests nothing names any more, pushed at least untagged_older_than_days days ago, with their blobs. A manifest a tag or an index that stays references is never removed. With dry_run the task's result lists what would go and nothing changes. An empty policy applies the stored one.",
		Request:     retentionRequest{}, Response: api.TaskAccepted{}, Status: http.StatusAccepted,
	}, m.retention)
	r.Add(api.Operation{
		Method: http.MethodGet, Path: item + "retention_policy/", ID: "repositories_container_container_retention_policy_read", Tags: repoTags,
		Summary: "The stored retention policy, applied by the periodic retention job", Response: RetentionPolicyResponse{},
	}, m.getPolicy)
	r.Add(api.Operation{
		Method: http.MethodPut, Path: item + "retention_policy/", ID: "repositories_container_container_retention_policy_update", Tags: repoTags,
		Summary: "Store the retention policy the periodic retention job applies", Request: RetentionPolicy{}, Response: RetentionPolicyResponse{},
	}, m.putPolicy)
	r.Add(api.Operation{
		Method: http.MethodDelete, Path: item + "retention_policy/", ID: "repositories_container_container_retention_policy_delete", Tags: repoTags,
		Summary: "Forget the stored retention policy", Status: http.StatusNoContent,
	}, m.deletePolicy)
	r.Add(api.Operation{
		Method: http.MethodGet, Path: item + "storage/", ID: "repositories_container_container_storage", Tags: repoTags,
		Summary: "The blob storage a container repository takes", Response: RepositoryStorageResponse{},
	}, m.repositoryStorage)

	nsTags := []string{"Container: Namespaces"}
	r.Add(api.Operation{
		Method: http.MethodDelete, Path: NamespacesPath + ":id/", ID: "pulp_container_namespaces_delete", Tags: nsTags,
		Summary:     "Delete a container namespace",
		Description: "Refused (409) while the namespace holds images, unless force=true, which only its owners may give: then its images (repositories, distributions and the remotes only they use) are deleted with it. Their content stays until orphan cleanup.",
		Params:      []api.Param{{Name: "force", Type: "boolean", Doc: "Delete the namespace's images too."}},
		Response:    api.TaskAccepted{}, Status: http.StatusAccepted,
	}, m.deleteNamespace)
	r.Add(api.Operation{
		Method: http.MethodGet, Path: NamespacesPath + ":id/storage/", ID: "pulp_container_namespaces_storage", Tags: nsTags,
		Summary: "The blob storage a container namespace takes, in all and per repository", Response: NamespaceStorageResponse{},
	}, m.namespaceStorage)
	r.Add(api.Operation{
		Method: http.MethodGet, Path: StoragePath, ID: "pulp_container_storage", Tags: []string{"Container: Storage"},
		Summary: "Blob storage per namespace and in all", Response: StorageSummaryResponse{},
	}, m.summary)
	m.contentRoutes(r)
}

// writableRepository loads the container repository of the path and checks
// that the caller may delete in it.
func (m maintenanceRoutes) writableRepository(c echo.Context, what string) (*core.Repository, Identity, error) {
	ctx := c.Request().Context()
	who := m.p.permissions().Caller(ctx)
	repo, ns, err := m.p.readableRepository(ctx, who, c.Param("id"))
	if err != nil {
		return nil, who, err
	}
	if err := m.p.require(ctx, who, ActionDelete, ns, what); err != nil {
		return nil, who, err
	}
	return repo, who, nil
}

// readableRepository loads a container repository the caller may see: one
// whose image is private is seen only by those who may pull it.
func (p *Plugin) readableRepository(ctx context.Context, who Identity, id string) (*core.Repository, NamespaceStatus, error) {
	repo, err := p.containerRepository(ctx, p.store, id)
	if err != nil {
		return nil, NamespaceStatus{}, err
	}
	name, err := namespaceOfRepository(ctx, p.store, repo.ID)
	if err != nil {
		return nil, NamespaceStatus{}, err
	}
	private, err := repositoryPrivate(ctx, p.store, repo.ID)
	if err != nil {
		return nil, NamespaceStatus{}, err
	}
	ns := NamespaceStatus{Name: name, Exists: name != "", Private: private}
	if private {
		v, err := p.visibility(ctx, who)
		if err != nil {
			return nil, ns, err
		}
		if !showsPrivate(v, name) {
			return nil, ns, core.NotFound("repository", id)
		}
	}
	return repo, ns, nil
}

// showsPrivate reports whether v sees the private images of namespace ns.
func showsPrivate(v Visible, ns string) bool {
	return v.All || slices.Contains(v.Namespaces, ns)
}

// dispatchRemove dispatches a removal and answers 202.
func (m maintenanceRoutes) dispatchRemove(c echo.Context, repo *core.Repository, who Identity, sel Selection) error {
	t, err := m.d.Dispatch(c.Request().Context(), tasks.Spec{
		Name:      TaskRemove,
		Args:      RemoveArgs{RepositoryID: repo.ID, Selection: sel, User: who.name()},
		Exclusive: []string{api.RepositoryResource(repo.ID)},
	})
	if err != nil {
		return err
	}
	return api.Accepted(c, t)
}

func (m maintenanceRoutes) remove(c echo.Context) error {
	var body removeRequest
	if _, err := api.Bind(c, &body); err != nil {
		return err
	}
	repo, who, err := m.writableRepository(c, "removing content")
	if err != nil {
		return err
	}
	sel, err := m.p.contentSelection(c.Request().Context(), body.ContentUnits)
	if err != nil {
		return err
	}
	return m.dispatchRemove(c, repo, who, sel)
}

// contentSelection checks the hrefs of content_units: each must name
// existing container content; ["*"] is everything.
func (p *Plugin) contentSelection(ctx context.Context, hrefs []string) (Selection, error) {
	if len(hrefs) == 1 && hrefs[0] == "*" {
		return Selection{All: true}, nil
	}
	if len(hrefs) == 0 {
		return Selection{}, core.Invalid("content_units", "give at least one content href, or [\"*\"] for all")
	}
	v := &core.ValidationError{}
	var sel Selection
	for _, h := range hrefs {
		typ, id, ok := parseContentHref(h)
		if !ok {
			v.Add("content_units", "%s: %s", truncate(h, 300), "Invalid hyperlink - No URL match.")
			continue
		}
		c, err := p.store.ContentByID(ctx, id)
		switch {
		case errors.Is(err, core.ErrNotFound) || (err == nil && c.Type != typ):
			v.Add("content_units", "%s: %s", truncate(h, 300), "Invalid hyperlink - Object does not exist.")
		case err != nil:
			return sel, err
		default:
			sel.ContentIDs = append(sel.ContentIDs, id)
		}
	}
	return sel, v.Err()
}

func (m maintenanceRoutes) untag(c echo.Context) error {
	var body untagRequest
	if _, err := api.Bind(c, &body); err != nil {
		return err
	}
	repo, who, err := m.writableRepository(c, "removing tags")
	if err != nil {
		return err
	}
	if err := ValidateTag(body.Tag); err != nil {
		return core.Invalid("tag", "%s", err.Error())
	}
	ids, err := tagContentIDs(c.Request().Context(), m.p.store, repo.ID, repo.LatestVersion, body.Tag)
	if err != nil {
		return err
	}
	if len(ids) == 0 {
		return core.Invalid("tag", "tag %q is not in the latest version of repository %q", body.Tag, repo.Name)
	}
	return m.dispatchRemove(c, repo, who, Selection{Tags: []string{body.Tag}})
}

func (m maintenanceRoutes) removeImage(c echo.Context) error {
	var body removeImageRequest
	if _, err := api.Bind(c, &body); err != nil {
		return err
	}
	repo, who, err := m.writableRepository(c, "removing images")
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	switch {
	case body.Digest == "" && body.Tag == "":
		return core.Invalid("non_field_errors", "give digest or tag")
	case body.Digest != "" && body.Tag != "":
		return core.Invalid("non_field_errors", "give digest or tag, not both")
	case body.Digest != "":
		d, err := ParseDigest(body.Digest)
		if err != nil {
			return core.Invalid("digest", "%s", err.Error())
		}
		have, err := manifestsInVersion(ctx, m.p.store, repo.ID, repo.LatestVersion, []string{d.String()})
		if err != nil {
			return err
		}
		if len(have) == 0 {
			return core.Invalid("digest", "manifest %s is not in the latest version of repository %q", d, repo.Name)
		}
		return m.dispatchRemove(c, repo, who, Selection{Digests: []string{d.String()}})
	default:
		if err := ValidateTag(body.Tag); err != nil {
			return core.Invalid("tag", "%s", err.Error())
		}
		ids, err := tagContentIDs(ctx, m.p.store, repo.ID, repo.LatestVersion, body.Tag)
		if err != nil {
			return err
		}
		if len(ids) == 0 {
			return core.Invalid("tag", "tag %q is not in the latest version of repository %q", body.Tag, repo.Name)
		}
		return m.dispatchRemove(c, repo, who, Selection{ImageTags: []string{body.Tag}})
	}
}

func (m maintenanceRoutes) retention(c echo.Context) error {
	var body retentionRequest
	given, err := api.Bind(c, &body)
	if err != nil {
		return err
	}
	repo, who, err := m.writableRepository(c, "applying a retention policy")
	if err != nil {
		return err
	}
	var policy *RetentionPolicy
	if given.Has("keep_tags") || given.Has("untagged_older_than_days") || given.Has("tag_pattern") {
		policy = &body.RetentionPolicy
		if err := policy.Validate(); err != nil {
			return err
		}
	} else if _, found, err := retentionOf(c.Request().Context(), m.p.store, repo.ID); err != nil {
		return err
	} else if !found {
		return core.Invalid("non_field_errors", "repository %q has no stored retention policy: give keep_tags and/or untagged_older_than_days", repo.Name)
	}
	spec := tasks.Spec{
		Name: TaskRetention,
		Args: RetentionArgs{RepositoryID: repo.ID, Policy: policy, DryRun: body.DryRun, User: who.name()},
	}
	if body.DryRun {
		spec.Shared = []string{api.RepositoryResource(repo.ID)}
	} else {
		spec.Exclusive = []string{api.RepositoryResource(repo.ID)}
	}
	t, err := m.d.Dispatch(c.Request().Context(), spec)
	if err != nil {
		return err
	}
	return api.Accepted(c, t)
}

func policyResponse(repo *core.Repository, row *retentionRow) RetentionPolicyResponse {
	return RetentionPolicyResponse{Repository: api.RepositoryHref(repo.Type, repo.ID), RetentionPolicy: row.policy(), UpdatedAt: api.APITime(row.UpdatedAt)}
}

func (m maintenanceRoutes) getPolicy(c echo.Context) error {
	ctx := c.Request().Context()
	repo, _, err := m.p.readableRepository(ctx, m.p.permissions().Caller(ctx), c.Param("id"))
	if err != nil {
		return err
	}
	row, found, err := retentionOf(ctx, m.p.store, repo.ID)
	if err != nil {
		return err
	}
	if !found {
		return core.NotFound("retention policy of repository", repo.Name)
	}
	return c.JSON(http.StatusOK, policyResponse(repo, row))
}

func (m maintenanceRoutes) putPolicy(c echo.Context) error {
	var body RetentionPolicy
	if _, err := api.Bind(c, &body); err != nil {
		return err
	}
	repo, _, err := m.writableRepository(c, "setting a retention policy")
	if err != nil {
		return err
	}
	if err := body.Validate(); err != nil {
		return err
	}
	ctx := c.Request().Context()
	if err := saveRetention(ctx, m.p.store, repo.ID, body); err != nil {
		return err
	}
	row, _, err := retentionOf(ctx, m.p.store, repo.ID)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, policyResponse(repo, row))
}

func (m maintenanceRoutes) deletePolicy(c echo.Context) error {
	repo, _, err := m.writableRepository(c, "removing a retention policy")
	if err != nil {
		return err
	}
	found, err := deleteRetention(c.Request().Context(), m.p.store, repo.ID)
	if err != nil {
		return err
	}
	if !found {
		return core.NotFound("retention policy of repository", repo.Name)
	}
	return c.NoContent(http.StatusNoContent)
}

func (m maintenanceRoutes) deleteNamespace(c echo.Context) error {
	ctx := c.Request().Context()
	force := false
	if s := c.QueryParam("force"); s != "" {
		b, err := strconv.ParseBool(s)
		if err != nil {
			return core.Invalid("force", "Must be a valid boolean.")
		}
		force = b
	}
	for k := range c.QueryParams() {
		if k != "force" {
			return core.Invalid(k, "Unexpected query parameter.")
		}
	}
	row, err := m.p.visibleNamespace(ctx, c.Param("id"))
	if err != nil {
		return err
	}
	who := m.p.permissions().Caller(ctx)
	ns := NamespaceStatus{Name: row.Name, Exists: true, Private: !row.Public}
	if err := m.p.require(ctx, who, ActionDelete, ns, "deleting a namespace"); err != nil {
		return err
	}
	imgs, err := namespaceImages(ctx, m.p.store, row.ID)
	if err != nil {
		return err
	}
	if len(imgs) > 0 {
		if !force {
			return namespaceInUse(row.Name, imgs)
		}
		if err := m.p.require(ctx, who, ActionManageRoles, ns, "deleting a namespace with its images (force)"); err != nil {
			return err
		}
	}
	res, err := namespaceResources(ctx, m.p.store, row.ID)
	if err != nil {
		return err
	}
	t, err := m.d.Dispatch(ctx, tasks.Spec{
		Name:      TaskDeleteNamespace,
		Args:      DeleteNamespaceArgs{NamespaceID: row.ID, Force: force, User: who.name()},
		Exclusive: res,
	})
	if err != nil {
		return err
	}
	return api.Accepted(c, t)
}

func (m maintenanceRoutes) repositoryStorage(c echo.Context) error {
	ctx := c.Request().Context()
	repo, _, err := m.p.readableRepository(ctx, m.p.permissions().Caller(ctx), c.Param("id"))
	if err != nil {
		return err
	}
	out, err := m.p.repositoryStorage(ctx, repo.ID, repo.Name, repo.LatestVersion)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, out)
}

// repositoryStorage measures one repository.
func (p *Plugin) repositoryStorage(ctx context.Context, repoID, name string, latest int) (RepositoryStorageResponse, error) {
	out := RepositoryStorageResponse{Repository: api.RepositoryHref(TypeRepository, repoID), Name: name}
	ids := []string{repoID}
	total, err := p.store.RepositoriesUsage(ctx, ids)
	if err != nil {
		return out, err
	}
	excl, err := p.store.ExclusiveUsage(ctx, ids)
	if err != nil {
		return out, err
	}
	last, err := p.store.VersionUsage(ctx, repoID, latest)
	if err != nil {
		return out, err
	}
	out.Total, out.Exclusive, out.Latest = storageOf(total), storageOf(excl), storageOf(last)
	return out, nil
}

func (m maintenanceRoutes) namespaceStorage(c echo.Context) error {
	ctx := c.Request().Context()
	row, err := m.p.visibleNamespace(ctx, c.Param("id"))
	if err != nil {
		return err
	}
	repos, err := namespaceRepositories(ctx, m.p.store, row.ID)
	if err != nil {
		return err
	}
	out := NamespaceStorageResponse{Namespace: NamespaceHref(row.ID), Name: row.Name, Repositories: []RepositoryStorageResponse{}}
	ids := make([]string, 0, len(repos))
	for _, ir := range repos {
		ids = append(ids, ir.RepositoryID)
		repo, err := m.p.store.Repository(ctx, ir.RepositoryID)
		if err != nil {
			return err
		}
		rs, err := m.p.repositoryStorage(ctx, repo.ID, ir.Name, repo.LatestVersion)
		if err != nil {
			return err
		}
		out.Repositories = append(out.Repositories, rs)
	}
	total, err := m.p.store.RepositoriesUsage(ctx, ids)
	if err != nil {
		return err
	}
	out.Total = storageOf(total)
	return c.JSON(http.StatusOK, out)
}

func (m maintenanceRoutes) summary(c echo.Context) error {
	ctx := c.Request().Context()
	who := m.p.permissions().Caller(ctx)
	v, err := m.p.visibility(ctx, who)
	if err != nil {
		return err
	}
	sum, err := m.p.store.Summary(ctx)
	if err != nil {
		return err
	}
	usage, err := namespacesUsage(ctx, m.p.store)
	if err != nil {
		return err
	}
	rows, _, err := listVisibleNamespaces(ctx, m.p.store, core.ListQuery{Limit: core.MaxLimit}, v)
	if err != nil {
		return err
	}
	out := StorageSummaryResponse{Namespaces: []NamespaceStorageBrief{}}
	if v.All {
		out.Total = storageOf(sum.Total)
		out.Orphans = OrphanStorageDescription{StorageResponse: storageOf(sum.Unreferenced), Content: sum.OrphanContent}
	}
	for _, r := range rows {
		out.Namespaces = append(out.Namespaces, NamespaceStorageBrief{Namespace: NamespaceHref(r.ID), Name: r.Name, Total: storageOf(usage[r.ID])})
	}
	return c.JSON(http.StatusOK, out)
}
