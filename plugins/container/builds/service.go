package builds

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/auth"
	"github.com/berth-dev/berth/core"
	"github.com/berth-dev/berth/plugins/container"
	"github.com/berth-dev/berth/plugins/container/build"
	"github.com/berth-dev/berth/tasks"
)

// TaskName is the task that runs a build.
const TaskName = "container.build"

// Queue is the task queue of builds: a long build never holds up the
// default queue's syncs, and each worker runs BERTH_BUILD_WORKERS of them.
const Queue = "builds"

// DefaultMaxContextSize bounds an uploaded build context archive (it is
// kept in the database until the build has run).
const DefaultMaxContextSize = 32 << 20

// Images is what builds need of the container registry plugin
// (*container.Plugin).
type Images interface {
	// ResolveNamespace tells the namespace of an image name.
	ResolveNamespace(ctx context.Context, repository string) (container.NamespaceStatus, error)
	// ListTags answers a core.ErrNotFound error for a name Berth does not serve.
	ListTags(ctx context.Context, name string, o container.ListOptions) ([]container.TagInfo, int64, error)
	// GetManifest describes the manifest a tag names.
	GetManifest(ctx context.Context, name, ref string) (*container.ManifestInfo, error)
}

// Authorizer decides who may do what on a namespace (*auth.Authorizer).
type Authorizer interface {
	Can(ctx context.Context, p *auth.Principal, act auth.Action, ns auth.Namespace) (bool, error)
	Require(ctx context.Context, p *auth.Principal, act auth.Action, ns auth.Namespace) error
}

// Tasks dispatches and cancels tasks (api.TaskService).
type Tasks interface {
	Dispatch(ctx context.Context, s tasks.Spec) (*tasks.Task, error)
	Cancel(ctx context.Context, id string) (*tasks.Task, error)
}

// ServiceConfig is what a Service is made of. Store, Images, Authorizer,
// Tasks and Registry are required.
type ServiceConfig struct {
	Store      *core.Store
	Images     Images
	Authorizer Authorizer
	Tasks      Tasks
	// Registry is Berth's registry as builds reach it (host:port).
	Registry string
	// PublicURL is Berth's external URL: its host makes the pull strings of
	// built images, and base references on it are Berth's own.
	PublicURL string
	// Queue is the task queue of builds (default Queue).
	Queue string
	// MaxContextSize bounds uploaded build contexts (default
	// DefaultMaxContextSize).
	MaxContextSize int64
	Log            *slog.Logger
}

// Service is the API's side of builds. It is safe for concurrent use.
type Service struct {
	store      *core.Store
	images     Images
	authz      Authorizer
	tasks      Tasks
	registry   string
	publicHost string
	queue      string
	maxContext int64
	log        *slog.Logger
}

// NewService returns a Service.
func NewService(c ServiceConfig) (*Service, error) {
	if c.Store == nil || c.Images == nil || c.Authorizer == nil || c.Tasks == nil || c.Registry == "" {
		return nil, errors.New("builds: the service needs a store, the images, an authorizer, tasks and a registry")
	}
	s := &Service{store: c.Store, images: c.Images, authz: c.Authorizer, tasks: c.Tasks, registry: c.Registry,
		publicHost: c.Registry, queue: c.Queue, maxContext: c.MaxContextSize, log: c.Log}
	if c.PublicURL != "" {
		u, err := url.Parse(c.PublicURL)
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("builds: public URL %q: want http(s)://host[:port]", c.PublicURL)
		}
		s.publicHost = u.Host
	}
	if s.queue == "" {
		s.queue = Queue
	}
	if s.maxContext <= 0 {
		s.maxContext = DefaultMaxContextSize
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	return s, nil
}

// MaxContextSize is the largest build context archive accepted.
func (s *Service) MaxContextSize() int64 { return s.maxContext }

// caller is the authenticated principal of ctx.
func caller(ctx context.Context) (*auth.Principal, error) {
	p := auth.PrincipalFrom(ctx)
	if p.IsAnonymous() {
		return nil, fmt.Errorf("builds: %w", core.ErrUnauthorized)
	}
	return p, nil
}

// namespace is what the authorizer must know about the namespace of an
// image name.
func (s *Service) namespace(ctx context.Context, repository string) (auth.Namespace, error) {
	st, err := s.images.ResolveNamespace(ctx, repository)
	if err != nil {
		return auth.Namespace{}, err
	}
	return auth.Namespace{Name: st.Name, Private: st.Private, Missing: !st.Exists}, nil
}

// require checks that the caller may do act on the namespace of repository.
func (s *Service) require(ctx context.Context, act auth.Action, repository string) error {
	p, err := caller(ctx)
	if err != nil {
		return err
	}
	ns, err := s.namespace(ctx, repository)
	if err != nil {
		return err
	}
	return s.authz.Require(ctx, p, act, ns)
}

// Get returns a build the caller may read (pull from its target).
func (s *Service) Get(ctx context.Context, id string) (*Build, error) {
	b, err := getBuild(ctx, s.store, id)
	if err != nil {
		return nil, err
	}
	if err := s.require(ctx, auth.ActionPull, b.Target); err != nil {
		if errors.Is(err, core.ErrForbidden) {
			return nil, core.NotFound("build", id) // do not tell that it exists
		}
		return nil, err
	}
	return b, nil
}

// List returns a page of the builds the caller may read: those of the
// targets whose namespace it may pull from, and its own.
func (s *Service) List(ctx context.Context, q core.ListQuery) ([]Build, int64, error) {
	p, err := caller(ctx)
	if err != nil {
		return nil, 0, err
	}
	targets, err := buildTargets(ctx, s.store)
	if err != nil {
		return nil, 0, err
	}
	v := visibility{All: true, UserID: p.UserID}
	for _, t := range targets {
		ns, err := s.namespace(ctx, t)
		if err != nil {
			return nil, 0, err
		}
		ok, err := s.authz.Can(ctx, p, auth.ActionPull, ns)
		if err != nil {
			return nil, 0, err
		}
		if ok {
			v.Targets = append(v.Targets, t)
		} else {
			v.All = false
		}
	}
	return listBuilds(ctx, s.store, q, v)
}

// Create validates a build request and starts the build: it needs the push
// permission on the target's namespace (and the pull permission on a base
// image in Berth). archive is the raw mode's build context, or nil.
func (s *Service) Create(ctx context.Context, req Request, archive []byte) (*Build, error) {
	return s.submit(ctx, draft{spec: req.spec(), archive: archive})
}

// Rebuild starts a new build from a previous one, with the fields the
// request gave changed; the new build links to the previous one. A raw
// build keeps the previous build context unless archive gives another.
func (s *Service) Rebuild(ctx context.Context, id string, req Request, given api.Fields, archive []byte) (*Build, error) {
	prev, err := s.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	old, err := prev.spec()
	if err != nil {
		return nil, err
	}
	d := draft{spec: req.merge(old, given), archive: archive, previous: prev.ID}
	// The previous pull secret stays, for the same registry only: it must
	// never be sent to another one.
	if !given.Has("base_credentials") && prev.BaseSecret != "" && d.spec.Base != "" &&
		registryOf(d.spec.Base) == registryOf(old.Base) && !d.spec.Raw() {
		d.sealed = prev.BaseSecret
	}
	if archive == nil && prev.HasContext && d.spec.Raw() {
		d.contextFrom = prev.ID
	}
	return s.submit(ctx, d)
}

// draft is a build about to be submitted.
type draft struct {
	spec        build.Spec
	sealed      string // credentials kept from the previous build
	archive     []byte
	contextFrom string
	previous    string
}

func (s *Service) submit(ctx context.Context, d draft) (*Build, error) {
	p, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	spec := d.spec
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	if err := s.checkContext(spec, d.archive); err != nil {
		return nil, err
	}
	if err := s.require(ctx, auth.ActionPush, spec.Target); err != nil {
		return nil, err
	}
	b := &Build{
		ID: core.NewID(), Target: spec.Target, Tag: spec.Tag, UniqueTag: spec.UniqueTag(), SpecDigest: spec.SpecDigest(),
		HasContext: d.archive != nil || d.contextFrom != "", CreatedBy: p.UserID, CreatedByName: p.Username,
		CreatedAt: now(), BaseSecret: d.sealed,
	}
	if d.previous != "" {
		b.PreviousID = &d.previous
	}
	if !spec.Raw() {
		if b.OwnBase, err = s.ownBase(ctx, spec.Base); err != nil {
			return nil, err
		}
		if b.OwnBase != "" {
			repo, _ := splitRef(b.OwnBase)
			if err := s.require(ctx, auth.ActionPull, repo); err != nil {
				return nil, fmt.Errorf("base image %s: %w", spec.Base, err)
			}
		}
	}
	if spec.BaseCredentials != nil {
		if b.BaseSecret, err = sealCredentials(s.store, spec.BaseCredentials); err != nil {
			return nil, err
		}
	}
	// A first look at the Containerfile, as if the base ran as root: the
	// build renders it again once it has read the base image's user.
	preview := spec
	if b.OwnBase != "" {
		preview.Base = s.registry + "/" + b.OwnBase
	}
	if b.Containerfile, err = preview.Render(""); err != nil {
		return nil, err
	}
	if b.Spec, err = storedSpec(spec); err != nil {
		return nil, err
	}
	if err := insertBuild(ctx, s.store, b, d.archive, d.contextFrom); err != nil {
		return nil, err
	}
	t, err := s.tasks.Dispatch(ctx, tasks.Spec{
		Name: TaskName, Args: taskArgs{BuildID: b.ID}, Queue: s.queue,
		// Builds of one tag run one after the other, in order.
		Exclusive: []string{"container.build:" + b.Target + ":" + b.Tag},
	})
	if err != nil {
		if derr := deleteBuild(context.WithoutCancel(ctx), s.store, b.ID); derr != nil {
			s.log.Warn("could not remove a build whose task was not dispatched", "build", b.ID, "err", derr)
		}
		if errors.Is(err, core.ErrInvalid) {
			// The spec is the server's own: a refusal is the server's fault.
			return nil, fmt.Errorf("dispatch %s: the task system refused it (is the build task registered?): %v", TaskName, err)
		}
		return nil, fmt.Errorf("dispatch %s: %w", TaskName, err)
	}
	if err := setBuildTask(ctx, s.store, b.ID, t.ID); err != nil {
		return nil, err
	}
	s.log.Info("build submitted", "build", b.ID, "target", b.Target, "tag", b.Tag, "task", t.ID, "user", p.Username)
	return getBuild(ctx, s.store, b.ID)
}

// checkContext checks an uploaded build context: only with a Containerfile,
// no larger than allowed, and a tar archive that build.ExtractContext takes
// (extracted to a temporary directory and removed).
func (s *Service) checkContext(spec build.Spec, archive []byte) error {
	if archive == nil {
		return nil
	}
	if !spec.Raw() {
		return core.Invalid("context", "a build context goes with a containerfile only")
	}
	if int64(len(archive)) > s.maxContext {
		return core.Invalid("context", "larger than %d bytes", s.maxContext)
	}
	dir, err := os.MkdirTemp("", "berth-build-context-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	return build.ExtractContext(bytes.NewReader(archive), dir, build.DefaultContextLimits)
}

// Cancel stops a build that is pending or running: its task is canceled,
// which stops buildah and removes the build's working storage. It needs the
// push permission on the target's namespace. A finished build is
// core.ErrConflict.
func (s *Service) Cancel(ctx context.Context, id string) (*Build, error) {
	b, err := s.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if err := s.require(ctx, auth.ActionPush, b.Target); err != nil {
		return nil, err
	}
	if b.Phase.Finished() || b.TaskID == nil {
		return nil, core.Conflict("build %s is %s and cannot be cancelled", id, b.Phase)
	}
	if _, err := s.tasks.Cancel(ctx, *b.TaskID); err != nil {
		return nil, err
	}
	s.log.Info("build cancel requested", "build", b.ID, "task", *b.TaskID)
	return getBuild(ctx, s.store, id)
}

// Image statuses, as Rescale's registry shows them.
const (
	StatusPending = "PENDING" // a build of the image is pending or running
	StatusReady   = "READY"   // the tag exists
	StatusFailed  = "FAILED"  // the last build of it failed (or was cancelled), and the tag does not exist
)

// ImageStatus is the status of an image name:tag.
type ImageStatus struct {
	Image  string `json:"image" doc:"The image, name:tag."`
	Status string `json:"status" enum:"PENDING,READY,FAILED" doc:"PENDING while a build of the image is pending or running; READY once the tag exists; FAILED when the last build of it failed and the tag does not exist."`
	// Digest is the manifest the tag names, when READY.
	Digest string `json:"digest,omitempty"`
	// Reason says why the last build failed, when it did.
	Reason string `json:"reason,omitempty"`
	// Build is the href of the newest build of the image, if any.
	Build *string `json:"build"`
	// Phase is that build's phase.
	Phase Phase `json:"build_phase,omitempty"`
}

// ImageStatus tells whether an image (name:tag, "latest" when the tag is
// left out; a host part naming Berth is allowed) is ready to use: PENDING
// while a build for it is pending or running, READY once the tag exists,
// FAILED with the reason after a failed build. An image that neither exists
// nor was built is core.ErrNotFound. It needs the pull permission on the
// image's namespace.
func (s *Service) ImageStatus(ctx context.Context, image string) (*ImageStatus, error) {
	repo, tag, err := s.parseImage(image)
	if err != nil {
		return nil, err
	}
	if err := s.require(ctx, auth.ActionPull, repo); err != nil {
		return nil, err
	}
	st := &ImageStatus{Image: repo + ":" + tag}
	b, found, err := latestBuildFor(ctx, s.store, repo, tag)
	if err != nil {
		return nil, err
	}
	if found {
		h := Href(b.ID)
		st.Build, st.Phase = &h, b.Phase
		if !b.Phase.Finished() {
			st.Status = StatusPending
			return st, nil
		}
	}
	m, err := s.images.GetManifest(ctx, repo, tag)
	switch {
	case err == nil:
		st.Status, st.Digest = StatusReady, m.Digest
		if found && b.Phase != PhaseSucceeded {
			st.Reason = b.Error
		}
		return st, nil
	case !errors.Is(err, core.ErrNotFound):
		return nil, err
	case found && b.Phase != PhaseSucceeded:
		st.Status, st.Reason = StatusFailed, b.Error
		return st, nil
	}
	return nil, core.NotFound("image", st.Image)
}

// parseImage splits "name:tag" (a Berth host in front allowed) into its
// name and tag.
func (s *Service) parseImage(image string) (repo, tag string, err error) {
	if image == "" {
		return "", "", core.Invalid("image", "required: name:tag")
	}
	repo, rest := splitRef(image)
	if host, path, ok := strings.Cut(repo, "/"); ok && (host == s.registry || host == s.publicHost) {
		repo = path
	}
	if strings.Contains(rest, "@") {
		return "", "", core.Invalid("image", "give a tag, not a digest")
	}
	tag = strings.TrimPrefix(rest, ":")
	if tag == "" {
		tag = DefaultTag
	}
	if err := container.ValidateTag(tag); err != nil {
		return "", "", core.Invalid("image", "invalid tag %q", tag)
	}
	if err := container.ValidateName(repo); err != nil {
		return "", "", core.Invalid("image", "invalid image name %q", repo)
	}
	return repo, tag, nil
}

// PullRef is the pull string of a built image: the public host, the
// target and the tag.
func (s *Service) PullRef(target, tag string) string { return s.publicHost + "/" + target + ":" + tag }

// ResolvedBase is the base image a build pulls, as users would pull it.
func (s *Service) ResolvedBase(b *Build, spec build.Spec) string {
	switch {
	case spec.Raw():
		return ""
	case b.OwnBase != "":
		return s.publicHost + "/" + b.OwnBase
	}
	return fullRef(spec.Base)
}

// taskArgs are the arguments of the build task.
type taskArgs struct {
	BuildID string `json:"build_id"`
}
