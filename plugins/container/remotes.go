package container

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/berth-dev/berth/core"
	"github.com/berth-dev/berth/plugins/container/upstream"
)

// Remote registries and remote images, Galaxy NG's "Remote Registries" and
// remote execution environments.
//
// A remote registry is a core remote of type container.registry: where
// (URL, TLS, proxy) and how (credentials, rate limit, download concurrency,
// policy) to reach a registry. A remote image mirrors one repository of a
// registry into an image of Berth: it is a core remote of type
// container.container of its own, whose connection settings are copies of
// its registry's (kept in step whenever the registry changes), plus a
// container_remotes row naming the upstream repository, the tag filters,
// the registry and the repository it syncs into. The image itself
// (namespace, repository, distribution) is made with the remote image, in
// the same transaction, and stays empty until the first sync.

// Registry is a remote registry.
type Registry struct {
	Remote core.Remote
	// LastSyncTask is the ID of the last registry-wide sync task, "" if none.
	LastSyncTask string
	// Images counts the remote images using the registry.
	Images int
}

// RemoteImage is a remote image (a remote execution environment).
type RemoteImage struct {
	// LocalName is the image's name in Berth (its repository's and
	// distribution's), which may differ from UpstreamName.
	LocalName string
	// Remote is the image's own remote (named like the image when made).
	Remote core.Remote
	// UpstreamName is the repository's name on the registry as given;
	// EffectiveUpstreamName applies Docker Hub's library/ rule.
	UpstreamName string
	IncludeTags  []string
	ExcludeTags  []string
	// RegistryID is the registry's remote ID ("" once the registry is gone:
	// the image keeps syncing with the copied settings).
	RegistryID   string
	RepositoryID string
	Description  string
	// LatestVersion is the number of the repository's latest version (0:
	// never synced).
	LatestVersion int
	// LastSyncTask is the ID of the image's last sync task, "" if none.
	LastSyncTask string
}

// Name is the image's local name.
func (r *RemoteImage) Name() string { return r.LocalName }

// EffectiveUpstreamName is the name the sync asks the registry for.
func (r *RemoteImage) EffectiveUpstreamName() string {
	return upstream.UpstreamName(r.Remote.URL, r.UpstreamName)
}

// RemoteImageSpec is what a remote image is created from, or changed by
// (nil fields are left as they are).
type RemoteImageSpec struct {
	Name         *string
	UpstreamName *string
	RegistryID   *string
	IncludeTags  *[]string
	ExcludeTags  *[]string
	Description  *string
}

// checkConfig validates a remote's settings the way the upstream client
// will use them (PEM certificates, key pairs, proxy, URL path), with its
// secrets as they will be: sec's where given, else the stored ones.
func checkConfig(s *core.Store, r *core.Remote, sec core.RemoteSecrets) error {
	cred, err := s.OpenCredentials(r)
	if err != nil {
		return fmt.Errorf("open the remote's stored credentials: %w", err)
	}
	for _, f := range []struct {
		in  *string
		out *string
	}{{sec.Password, &cred.Password}, {sec.ClientKey, &cred.ClientKey}, {sec.ProxyPassword, &cred.ProxyPassword}} {
		if f.in != nil {
			*f.out = *f.in
		}
	}
	return configError(upstream.ConfigFromRemote(r, cred).Validate())
}

// configError turns upstream.Config.Validate's errors ("invalid remote
// configuration: ca_cert: no PEM certificate found") into a validation
// error naming the fields.
func configError(err error) error {
	if err == nil {
		return nil
	}
	v := &core.ValidationError{}
	var errs []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	} else {
		errs = []error{err}
	}
	prefix := upstream.ErrInvalidConfig.Error() + ": "
	for _, e := range errs {
		field, msg, ok := strings.Cut(strings.TrimPrefix(e.Error(), prefix), ": ")
		if !ok {
			field, msg = "non_field_errors", e.Error()
		}
		v.Add(field, "%s", msg)
	}
	return v
}

// validateFilter checks tag patterns; problems name include_tags or exclude_tags.
func validateFilter(include, exclude []string) error {
	v := &core.ValidationError{}
	for _, l := range []struct {
		field    string
		patterns []string
	}{{"include_tags", include}, {"exclude_tags", exclude}} {
		for _, pat := range l.patterns {
			if err := (upstream.Filter{Include: []string{pat}}).Validate(); err != nil {
				v.Add(l.field, "%q is not a valid tag pattern: use * for any characters, ? for one, [a-z] for a class and \\ to escape", pat)
			}
		}
	}
	return v.Err()
}

// validateUpstreamName checks a repository name on a remote registry.
func validateUpstreamName(name string) error {
	if name == "" || len(name) > MaxNameLength || !nameRE.MatchString(name) {
		return core.Invalid("upstream_name", "must be a repository name: lowercase path components of letters and digits separated by '.', '_', '__' or '-', joined by '/'")
	}
	return nil
}

// CreateRegistry validates and stores a remote registry (r.Type is set).
func (p *Plugin) CreateRegistry(ctx context.Context, r *core.Remote, sec core.RemoteSecrets) error {
	r.Type = TypeRegistry
	return p.store.Tx(ctx, func(tx *core.Store) error {
		if err := tx.CreateRemote(ctx, r, sec); err != nil {
			return err
		}
		return p.saveRegistry(ctx, tx, r, true)
	})
}

// UpdateRegistry saves a changed registry and gives its remote images the
// new settings, in one transaction.
func (p *Plugin) UpdateRegistry(ctx context.Context, r *core.Remote, sec core.RemoteSecrets) error {
	if r.Type != TypeRegistry {
		return core.NotFound("registry", r.ID)
	}
	return p.store.Tx(ctx, func(tx *core.Store) error {
		if err := tx.UpdateRemote(ctx, r, sec); err != nil {
			return err
		}
		return p.saveRegistry(ctx, tx, r, false)
	})
}

// saveRegistry is what a registry's create or update adds to the core's
// write, in its transaction tx (the REST API's extension calls it too).
func (p *Plugin) saveRegistry(ctx context.Context, tx *core.Store, r *core.Remote, created bool) error {
	if err := checkConfig(tx, r, core.RemoteSecrets{}); err != nil {
		return err
	}
	if created {
		return insertRegistryRow(ctx, tx, r.ID)
	}
	if err := insertRegistryRow(ctx, tx, r.ID); err != nil {
		return err
	}
	return copyRegistrySettings(ctx, tx, r)
}

// DeleteRegistry removes a registry no remote image uses.
func (p *Plugin) DeleteRegistry(ctx context.Context, id string) error {
	return p.store.Tx(ctx, func(tx *core.Store) error {
		reg, err := p.getRegistry(ctx, tx, id)
		if err != nil {
			return err
		}
		if reg.Images > 0 {
			return core.Conflict("registry %q is used by %d remote image(s); delete them or move them to another registry first", reg.Remote.Name, reg.Images)
		}
		return tx.DeleteRemote(ctx, id)
	})
}

// GetRegistry finds a registry.
func (p *Plugin) GetRegistry(ctx context.Context, id string) (*Registry, error) {
	return p.getRegistry(ctx, p.store, id)
}

func (p *Plugin) getRegistry(ctx context.Context, s *core.Store, id string) (*Registry, error) {
	r, err := s.Remote(ctx, id)
	if err != nil || r.Type != TypeRegistry {
		return nil, core.NotFound("registry", id)
	}
	out, err := decorateRegistries(ctx, s, []core.Remote{*r})
	if err != nil {
		return nil, err
	}
	return &out[0], nil
}

// ListRegistries lists registries (filters and orderings of core remotes).
func (p *Plugin) ListRegistries(ctx context.Context, q core.ListQuery) ([]Registry, int64, error) {
	q.Filters = append(slices.Clone(q.Filters), core.Filter{Field: "pulp_type", Op: "eq", Value: TypeRegistry})
	list, total, err := p.store.ListRemotes(ctx, q)
	if err != nil {
		return nil, 0, err
	}
	out, err := decorateRegistries(ctx, p.store, list)
	return out, total, err
}

func decorateRegistries(ctx context.Context, s *core.Store, list []core.Remote) ([]Registry, error) {
	ids := make([]string, len(list))
	for i, r := range list {
		ids[i] = r.ID
	}
	rows, err := registryRows(ctx, s, ids)
	if err != nil {
		return nil, err
	}
	out := make([]Registry, len(list))
	for i, r := range list {
		out[i] = Registry{Remote: r}
		if row, ok := rows[r.ID]; ok {
			out[i].Images = row.Images
			if row.LastSyncTask != nil {
				out[i].LastSyncTask = *row.LastSyncTask
			}
		}
	}
	return out, nil
}

// CreateRemoteImage makes a remote image: its remote (with its registry's
// settings), the image (namespace, repository, distribution; empty until
// the first sync), all in one transaction. The name must be new.
func (p *Plugin) CreateRemoteImage(ctx context.Context, who Identity, spec RemoteImageSpec) (*RemoteImage, error) {
	v := &core.ValidationError{}
	name, upName, regID := deref(spec.Name), deref(spec.UpstreamName), deref(spec.RegistryID)
	include, exclude := derefList(spec.IncludeTags), derefList(spec.ExcludeTags)
	if err := ValidateName(name); err != nil {
		v.Add("name", "%v", err)
	}
	if err := validateUpstreamName(upName); err != nil {
		v.Add("upstream_name", "%s", err.(*core.ValidationError).Fields["upstream_name"][0])
	}
	if regID == "" {
		v.Add("registry", "required")
	}
	mergeValidation(v, validateFilter(include, exclude))
	if err := v.Err(); err != nil {
		return nil, err
	}
	var out *RemoteImage
	var newNS string
	err := p.store.Tx(ctx, func(tx *core.Store) error {
		reg, err := tx.Remote(ctx, regID)
		if err != nil || reg.Type != TypeRegistry {
			return core.Invalid("registry", "no such registry")
		}
		if _, found, err := distributionByBasePath(ctx, tx, name); err != nil {
			return err
		} else if found {
			return core.Conflict("an image named %q exists already", name)
		}
		rem := *reg
		rem.ID, rem.Type, rem.Name = "", TypeRemote, name
		if err := tx.CreateRemote(ctx, &rem, core.RemoteSecrets{}); err != nil {
			return err
		}
		repo, ns, err := p.ensureImage(ctx, tx, name, who)
		if err != nil {
			return imageNameError(err)
		}
		newNS = ns
		desc := deref(spec.Description)
		remoteID := &rem.ID
		if _, err := tx.UpdateRepository(ctx, repo.ID, core.RepositoryUpdate{Description: &desc, RemoteID: &remoteID}); err != nil {
			return err
		}
		row := remoteRow{RemoteID: rem.ID, UpstreamName: upName, IncludeTags: encodeList(include), ExcludeTags: encodeList(exclude),
			RegistryID: &reg.ID, RepositoryID: &repo.ID}
		if err := insertRemoteRow(ctx, tx, row); err != nil {
			return err
		}
		out, err = p.getRemoteImage(ctx, tx, rem.ID)
		return err
	})
	p.caches.invalidate(name)
	if err != nil {
		return nil, err
	}
	p.namespaceCreated(ctx, newNS, who)
	p.log.Info("remote image created", "name", name, "upstream_name", upName, "registry", regID, "user", who.name())
	return out, nil
}

// imageNameError says why a name cannot be a new image, as a validation
// error of the field name (the registry's errors answer 403 or OCI codes).
func imageNameError(err error) error {
	var re *regError
	if errors.As(err, &re) && (errors.Is(err, ErrDenied) || errors.Is(err, ErrNameInvalid)) {
		return core.Invalid("name", "%s", re.msg)
	}
	return err
}

// UpdateRemoteImage changes a remote image's upstream name, tag filters,
// description or registry (taking the new registry's settings). The local
// name cannot change.
func (p *Plugin) UpdateRemoteImage(ctx context.Context, id string, spec RemoteImageSpec) (*RemoteImage, error) {
	var out *RemoteImage
	err := p.store.Tx(ctx, func(tx *core.Store) error {
		img, err := p.getRemoteImage(ctx, tx, id)
		if err != nil {
			return err
		}
		v := &core.ValidationError{}
		if spec.Name != nil && *spec.Name != img.Name() {
			v.Add("name", "cannot be changed; create a new remote image instead")
		}
		row := remoteRow{RemoteID: id, UpstreamName: img.UpstreamName, IncludeTags: encodeList(img.IncludeTags),
			ExcludeTags: encodeList(img.ExcludeTags), RepositoryID: &img.RepositoryID}
		if img.RegistryID != "" {
			row.RegistryID = &img.RegistryID
		}
		if spec.UpstreamName != nil {
			if err := validateUpstreamName(*spec.UpstreamName); err != nil {
				mergeValidation(v, err)
			}
			row.UpstreamName = *spec.UpstreamName
		}
		include, exclude := img.IncludeTags, img.ExcludeTags
		if spec.IncludeTags != nil {
			include = derefList(spec.IncludeTags)
		}
		if spec.ExcludeTags != nil {
			exclude = derefList(spec.ExcludeTags)
		}
		mergeValidation(v, validateFilter(include, exclude))
		row.IncludeTags, row.ExcludeTags = encodeList(include), encodeList(exclude)
		var reg *core.Remote
		if spec.RegistryID != nil {
			r, err := tx.Remote(ctx, *spec.RegistryID)
			if err != nil || r.Type != TypeRegistry {
				v.Add("registry", "no such registry")
			} else {
				reg, row.RegistryID = r, &r.ID
			}
		}
		if err := v.Err(); err != nil {
			return err
		}
		if err := updateRemoteRow(ctx, tx, row); err != nil {
			return err
		}
		if reg != nil {
			if err := copyRegistrySettings(ctx, tx, reg); err != nil {
				return err
			}
		}
		if spec.Description != nil {
			if _, err := tx.UpdateRepository(ctx, img.RepositoryID, core.RepositoryUpdate{Description: spec.Description}); err != nil {
				return err
			}
		}
		out, err = p.getRemoteImage(ctx, tx, id)
		return err
	})
	return out, err
}

// DeleteRemoteImage removes a remote image with its image: distribution,
// repository (its versions) and remote, in one transaction. The namespace
// stays; content stays until orphan cleanup.
func (p *Plugin) DeleteRemoteImage(ctx context.Context, who Identity, id string) error {
	var name string
	err := p.store.Tx(ctx, func(tx *core.Store) error {
		img, err := p.getRemoteImage(ctx, tx, id)
		if err != nil {
			return err
		}
		name = img.Name()
		return deleteImageObjects(ctx, tx, id, img.RepositoryID)
	})
	if name != "" {
		p.caches.invalidate(name)
	}
	if err == nil {
		p.log.Info("remote image deleted", "name", name, "user", who.name())
	}
	return err
}

// GetRemoteImage finds a remote image by its remote's ID.
func (p *Plugin) GetRemoteImage(ctx context.Context, id string) (*RemoteImage, error) {
	return p.getRemoteImage(ctx, p.store, id)
}

func (p *Plugin) getRemoteImage(ctx context.Context, s *core.Store, id string) (*RemoteImage, error) {
	out, err := loadRemoteImages(ctx, s, []string{id})
	if err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, core.NotFound("remote image", id)
	}
	return &out[0], nil
}

// ListRemoteImages lists remote images (filters: name, upstream_name,
// registry (ID); orderings: name, upstream_name, pulp_created,
// pulp_last_updated).
func (p *Plugin) ListRemoteImages(ctx context.Context, q core.ListQuery) ([]RemoteImage, int64, error) {
	ids, total, err := listRemoteImageIDs(ctx, p.store, q)
	if err != nil {
		return nil, 0, err
	}
	out, err := loadRemoteImages(ctx, p.store, ids)
	return out, total, err
}

// RemoteImagesOfRegistry lists the remote images that use a registry.
func (p *Plugin) RemoteImagesOfRegistry(ctx context.Context, registryID string) ([]RemoteImage, error) {
	ids, err := registryImages(ctx, p.store, registryID)
	if err != nil {
		return nil, err
	}
	return loadRemoteImages(ctx, p.store, ids)
}

// loadRemoteImages loads the remote images with the given IDs, in that
// order, skipping IDs that are not remote images.
func loadRemoteImages(ctx context.Context, s *core.Store, ids []string) ([]RemoteImage, error) {
	rows, err := remoteRows(ctx, s, ids)
	if err != nil {
		return nil, err
	}
	remotes, err := remotesByID(ctx, s, ids)
	if err != nil {
		return nil, err
	}
	var repoIDs []string
	for _, r := range rows {
		if r.RepositoryID != nil {
			repoIDs = append(repoIDs, *r.RepositoryID)
		}
	}
	repos, err := repositoriesByID(ctx, s, repoIDs)
	if err != nil {
		return nil, err
	}
	out := make([]RemoteImage, 0, len(ids))
	for _, id := range ids {
		row, ok := rows[id]
		rem, ok2 := remotes[id]
		if !ok || !ok2 || row.RepositoryID == nil || rem.Type != TypeRemote {
			continue
		}
		img := RemoteImage{LocalName: rem.Name, Remote: rem, UpstreamName: row.UpstreamName, IncludeTags: row.include(), ExcludeTags: row.exclude(),
			RepositoryID: *row.RepositoryID}
		if row.RegistryID != nil {
			img.RegistryID = *row.RegistryID
		}
		if row.LastSyncTask != nil {
			img.LastSyncTask = *row.LastSyncTask
		}
		if repo, ok := repos[*row.RepositoryID]; ok {
			img.LocalName, img.Description, img.LatestVersion = repo.Name, repo.Description, repo.LatestVersion
		}
		out = append(out, img)
	}
	return out, nil
}

// RecordSync notes the task syncing a remote image (or, with registry true,
// syncing every image of a registry) as its last sync.
func (p *Plugin) RecordSync(ctx context.Context, remoteID, taskID string, registry bool) error {
	if registry {
		return setRegistryLastSync(ctx, p.store, remoteID, taskID)
	}
	return setRemoteLastSync(ctx, p.store, remoteID, taskID)
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func derefList(l *[]string) []string {
	if l == nil || *l == nil {
		return []string{}
	}
	return *l
}

// mergeValidation adds err's fields to v (other errors under non_field_errors).
func mergeValidation(v *core.ValidationError, err error) {
	if err == nil {
		return
	}
	var ve *core.ValidationError
	if !errors.As(err, &ve) {
		v.Add("non_field_errors", "%v", err)
		return
	}
	for f, msgs := range ve.Fields {
		for _, m := range msgs {
			v.Add(f, "%s", m)
		}
	}
}

// testTimeout bounds a connection test.
const testTimeout = 30 * time.Second

// TestRemote checks that a remote's settings reach its registry and that
// the registry accepts its credentials (upstream.Client.Ping), with a new
// client. The error says what failed and matches upstream's sentinels.
func (p *Plugin) TestRemote(ctx context.Context, r *core.Remote) error {
	cred, err := p.store.OpenCredentials(r)
	if err != nil {
		return fmt.Errorf("open the stored credentials: %w", err)
	}
	c, err := upstream.New(upstream.ConfigFromRemote(r, cred),
		upstream.WithLimiters(p.remotes.limiters), upstream.WithLogger(p.log.With("remote", r.Name)), upstream.WithMaxAttempts(2))
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, testTimeout)
	defer cancel()
	return c.Ping(ctx)
}

// LastSyncOf describes the last sync of the remote image syncing into
// repository repoID: nil when it was never synced, or the repository is not
// a remote image's. The product API's execution environments show it.
func (p *Plugin) LastSyncOf(ctx context.Context, repoID string) (*SyncStatus, error) {
	row, found, err := remoteOfRepository(ctx, p.store, repoID)
	if err != nil || !found || row.LastSyncTask == nil {
		return nil, err
	}
	ts, err := tasksByID(ctx, p.store, []string{*row.LastSyncTask})
	if err != nil {
		return nil, err
	}
	t, ok := ts[*row.LastSyncTask]
	if !ok {
		return nil, nil
	}
	return newSyncStatus(&t), nil
}

// UpstreamNameOf is the name a container remote's image has on its
// registry (as a sync asks for it), "" for other remotes.
func (p *Plugin) UpstreamNameOf(ctx context.Context, remoteID string) (string, error) {
	row, found, err := remoteRowOf(ctx, p.store, remoteID)
	if err != nil || !found {
		return "", err
	}
	r, err := p.store.Remote(ctx, remoteID)
	if err != nil {
		return "", err
	}
	return upstream.UpstreamName(r.URL, row.UpstreamName), nil
}
