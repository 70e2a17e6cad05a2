package container

import (
	"context"
	"errors"
	"strings"

	"github.com/berth-dev/berth/core"
)

// Namespaces follow Galaxy NG's rules. An image name's namespace is its first
// path component: pushing "ns/img" creates namespace "ns"; pushing "my_ee"
// (no slash) creates namespace "my_ee", which then holds only that image.
// Underneath is Pulp's rule that base paths do not overlap: "a" and "a/b"
// cannot both be images, whichever came first. The first push of a name
// creates its namespace (recording the pusher as creator), a repository
// named after the image and a distribution whose base path is the name, all
// in the transaction that also adds the pushed manifest.

// checkPushable tells, without changing anything, whether name can take a
// push: it is an image with a repository to write to, or a new name the
// namespace rules allow. Upload requests call it so that a refused push
// fails at its first request rather than after the layers are sent.
func (p *Plugin) checkPushable(ctx context.Context, name string) error {
	d, found, err := distributionByBasePath(ctx, p.store, name)
	if err != nil {
		return err
	}
	if found {
		_, err := writableRepository(ctx, p.store, d)
		return err
	}
	return checkNewName(ctx, p.store, name)
}

// CreateImage makes name an image with no content yet, as a push would:
// its namespace (created by user when new), repository and distribution,
// under the namespace rules. For an existing image it returns its
// repository. The REST layer uses it for images filled otherwise (sync).
func (p *Plugin) CreateImage(ctx context.Context, who Identity, name string) (*core.Repository, error) {
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	var repo *core.Repository
	var newNS string
	err := p.retry(ctx, "create image", func() error {
		return p.store.Tx(ctx, func(tx *core.Store) error {
			var err error
			repo, newNS, err = p.ensureImage(ctx, tx, name, who)
			return err
		})
	})
	p.caches.invalidate(name)
	if err != nil {
		return nil, err
	}
	p.namespaceCreated(ctx, newNS, who)
	return repo, nil
}

// namespaceCreated tells the hook about a namespace made by a committed
// transaction ("" means none was made).
func (p *Plugin) namespaceCreated(ctx context.Context, ns string, who Identity) {
	if ns == "" {
		return
	}
	p.caches.invalidateNamespace(ns)
	if p.onNS == nil {
		return
	}
	if err := p.onNS(context.WithoutCancel(ctx), ns, who); err != nil {
		p.log.Error("namespace hook failed; the namespace exists without it", "namespace", ns, "user", who.name(), "err", err)
	}
}

// ensureImage returns the repository a push to name writes to, creating
// namespace, repository and distribution when name is new; newNS names the
// namespace it created, if any. It runs inside the push's transaction tx.
// Two first pushes of one name (or of two names of one namespace) serialize
// on the namespace row, and the second sees what the first made.
func (p *Plugin) ensureImage(ctx context.Context, tx *core.Store, name string, who Identity) (repo *core.Repository, newNS string, err error) {
	d, found, err := distributionByBasePath(ctx, tx, name)
	if err != nil {
		return nil, "", err
	}
	if found {
		repo, err := writableRepository(ctx, tx, d)
		return repo, "", err
	}
	ns, created, err := getOrCreateNamespace(ctx, tx, namespaceOf(name), who.name())
	if err != nil {
		return nil, "", err
	}
	if created {
		newNS = ns.Name
	}
	// Now holding the namespace's lock: look again.
	if d, found, err = distributionByBasePath(ctx, tx, name); err != nil {
		return nil, "", err
	} else if found {
		repo, err := writableRepository(ctx, tx, d)
		return repo, newNS, err
	}
	if err := checkNewName(ctx, tx, name); err != nil {
		return nil, "", err
	}
	repo, err = tx.RepositoryByName(ctx, name)
	switch {
	case errors.Is(err, core.ErrNotFound):
		repo = &core.Repository{Type: TypeRepository, Name: name}
		if p.retain > 0 {
			n := p.retain
			repo.RetainRepoVersions = &n
		}
		if err := tx.CreateRepository(ctx, repo); err != nil {
			return nil, "", err
		}
	case err != nil:
		return nil, "", err
	case repo.Type != TypeRepository:
		return nil, "", errorf(ErrDenied, "a repository named %q exists but is not a container repository (%s); it cannot take pushes", name, repo.Type)
	}
	dist := &core.Distribution{Type: TypeDistribution, Name: name, BasePath: name, RepositoryID: &repo.ID}
	if err := tx.CreateDistribution(ctx, dist); err != nil {
		var ve *core.ValidationError
		if errors.As(err, &ve) {
			return nil, "", errorf(ErrNameInvalid, "%q cannot be an image name: %v", name, ve)
		}
		return nil, "", err
	}
	if err := linkDistribution(ctx, tx, dist.ID, ns.ID); err != nil {
		return nil, "", err
	}
	p.log.Info("image created", "name", name, "namespace", ns.Name, "user", who.name())
	return repo, newNS, nil
}

// writableRepository is the repository a push to distribution d writes to.
func writableRepository(ctx context.Context, s *core.Store, d *core.Distribution) (*core.Repository, error) {
	if d.Type != TypeDistribution {
		return nil, errorf(ErrDenied, "the path %q is served by a %s distribution, not a container registry one; it cannot take pushes", d.BasePath, d.Type)
	}
	if d.RepositoryID == nil {
		return nil, errorf(ErrDenied, "the distribution %q serves a fixed repository version (or nothing); it cannot take pushes", d.BasePath)
	}
	repo, err := s.Repository(ctx, *d.RepositoryID)
	if err != nil {
		return nil, err
	}
	if repo.Type != TypeRepository {
		return nil, errorf(ErrDenied, "the distribution %q serves a %s repository; it cannot take container pushes", d.BasePath, repo.Type)
	}
	return repo, nil
}

// checkNewName applies the namespace rules to a name that is not an image yet.
func checkNewName(ctx context.Context, s *core.Store, name string) error {
	other, found, err := overlappingBasePath(ctx, s, name)
	if err != nil || !found {
		return err
	}
	ns := namespaceOf(name)
	switch {
	case strings.HasPrefix(name, other+"/") && other == ns:
		return errorf(ErrDenied, "cannot push %q: namespace %q holds only the image %q, which was pushed without a namespace; "+
			"an image named without a namespace is alone in the namespace of its name. Push it into another namespace instead, as %q",
			name, ns, other, "NAMESPACE/"+name[len(ns)+1:])
	case strings.HasPrefix(name, other+"/"):
		return errorf(ErrDenied, "cannot push %q: the image %q exists, and an image name cannot extend another image's name", name, other)
	case !strings.Contains(name, "/"):
		return errorf(ErrDenied, "cannot push %q: %q is a namespace holding images such as %q, so it cannot also be an image; "+
			"push it into a namespace instead, e.g. %q", name, name, other, name+"/"+name)
	default:
		return errorf(ErrDenied, "cannot push %q: the image %q exists under that name, and an image name cannot be a prefix of another's", name, other)
	}
}
