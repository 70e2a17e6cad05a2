package product

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/core"
	"github.com/berth-dev/berth/plugins/container"
	"github.com/berth-dev/berth/tasks"
)

// Names of the package's task handlers. Each holds the image's repository
// exclusively, so changes of one image run one at a time, and makes at most
// one new repository version (or none, when it fails: nothing half-done
// stays).
const (
	// TaskTag points a tag at a manifest (adding or moving it).
	TaskTag = "container.ee.tag"
	// TaskUntag removes a tag (its manifest stays).
	TaskUntag = "container.ee.untag"
	// TaskRemoveImage removes an image by digest with every tag of it.
	TaskRemoveImage = "container.ee.remove_image"
	// TaskDeleteImageRef removes "name:tag": the tag, and its image when no
	// other tag names it (the registry API's delete).
	TaskDeleteImageRef = "container.ee.delete_image_ref"
	// TaskDeleteEE deletes an execution environment: distribution,
	// repository and remote.
	TaskDeleteEE = "container.ee.delete"
)

// TaskArgs are the arguments of the package's tasks.
type TaskArgs struct {
	Name     string `json:"name"`
	Tag      string `json:"tag,omitempty"`
	Digest   string `json:"digest,omitempty"`
	UserID   string `json:"user_id,omitempty"`
	Username string `json:"username,omitempty"`
}

func (a TaskArgs) who() container.Identity {
	return container.Identity{UserID: a.UserID, Username: a.Username}
}

// TaskResult is what the tasks return.
type TaskResult struct {
	Version   int      `json:"version,omitempty"`
	Manifests []string `json:"manifests,omitempty"`
	Tags      []string `json:"tags,omitempty"`
}

// Tasks is the package's tasks.HandlerProvider; every process that runs
// workers or dispatches registers it.
type Tasks struct {
	Store     *core.Store
	Container *container.Plugin
	Log       *slog.Logger
}

// TaskHandlers maps the task names to their handlers.
func (t Tasks) TaskHandlers() map[string]tasks.Handler {
	return map[string]tasks.Handler{
		TaskTag:            t.tag,
		TaskUntag:          t.untag,
		TaskRemoveImage:    t.removeImage,
		TaskDeleteImageRef: t.deleteImageRef,
		TaskDeleteEE:       t.deleteEE,
	}
}

func decode(t *tasks.Task) (TaskArgs, error) {
	var a TaskArgs
	if err := t.DecodeArgs(&a); err != nil {
		return a, err
	}
	if a.Name == "" {
		return a, fmt.Errorf("task %s: no image name in its arguments", t.Name)
	}
	return a, nil
}

// versionHref records the repository version a task made.
func (t Tasks) created(ctx context.Context, r *tasks.Reporter, name string) {
	ee, err := t.Container.GetExecutionEnvironment(ctx, name)
	if err != nil || ee.RepositoryID == "" {
		return
	}
	r.Created(api.VersionHref(container.TypeRepository, ee.RepositoryID, ee.LatestVersion))
}

func (t Tasks) tag(ctx context.Context, task *tasks.Task, r *tasks.Reporter) (any, error) {
	a, err := decode(task)
	if err != nil {
		return nil, err
	}
	p := r.Progress("ee.tag", fmt.Sprintf("Tagging %s@%s as %s", a.Name, a.Digest, a.Tag))
	if err := t.Container.TagManifest(ctx, a.who(), a.Name, a.Tag, digest.Digest(a.Digest)); err != nil {
		p.Fail()
		return nil, err
	}
	p.Done()
	t.created(ctx, r, a.Name)
	return TaskResult{Tags: []string{a.Tag}, Manifests: []string{a.Digest}}, nil
}

func (t Tasks) untag(ctx context.Context, task *tasks.Task, r *tasks.Reporter) (any, error) {
	a, err := decode(task)
	if err != nil {
		return nil, err
	}
	p := r.Progress("ee.untag", fmt.Sprintf("Removing tag %s of %s", a.Tag, a.Name))
	if err := t.Container.DeleteTag(ctx, a.who(), a.Name, a.Tag); err != nil {
		p.Fail()
		return nil, err
	}
	p.Done()
	t.created(ctx, r, a.Name)
	return TaskResult{Tags: []string{a.Tag}}, nil
}

func (t Tasks) removeImage(ctx context.Context, task *tasks.Task, r *tasks.Reporter) (any, error) {
	a, err := decode(task)
	if err != nil {
		return nil, err
	}
	return t.remove(ctx, r, a)
}

func (t Tasks) remove(ctx context.Context, r *tasks.Reporter, a TaskArgs) (any, error) {
	p := r.Progress("ee.remove_image", fmt.Sprintf("Removing image %s@%s", a.Name, a.Digest))
	res, err := t.Container.RemoveManifest(ctx, a.who(), a.Name, digest.Digest(a.Digest))
	if err != nil {
		p.Fail()
		return nil, err
	}
	p.Done()
	t.created(ctx, r, a.Name)
	return TaskResult{Version: res.Version, Manifests: res.Manifests, Tags: res.Tags}, nil
}

// deleteImageRef removes a tag, and the image it names when that was its
// last tag: afterwards name:tag is gone from /v2/.
func (t Tasks) deleteImageRef(ctx context.Context, task *tasks.Task, r *tasks.Reporter) (any, error) {
	a, err := decode(task)
	if err != nil {
		return nil, err
	}
	if a.Tag == "" {
		return t.remove(ctx, r, a)
	}
	m, err := t.Container.GetManifest(ctx, a.Name, a.Tag)
	if err != nil {
		return nil, err
	}
	if len(m.Tags) <= 1 {
		a.Digest = m.Digest
		return t.remove(ctx, r, a)
	}
	return t.untag(ctx, task, r)
}

func (t Tasks) deleteEE(ctx context.Context, task *tasks.Task, r *tasks.Reporter) (any, error) {
	a, err := decode(task)
	if err != nil {
		return nil, err
	}
	p := r.Progress("ee.delete", "Deleting execution environment "+a.Name)
	err = t.Container.DeleteExecutionEnvironment(ctx, a.who(), a.Name)
	if errors.Is(err, container.ErrNameUnknown) {
		// Already gone: the client wanted it gone.
		err = nil
	}
	if err != nil {
		p.Fail()
		return nil, err
	}
	p.Done()
	return nil, nil
}

// dispatch creates one of the package's tasks on an image, holding its
// repository (and, for deletes of the whole image, its distribution and
// remote) exclusively.
func (s *Service) dispatch(ctx context.Context, name string, ee *container.ExecutionEnvironment, a TaskArgs) (*tasks.Task, error) {
	p := principal(ctx)
	a.UserID, a.Username = p.UserID, p.Username
	spec := tasks.Spec{Name: name, Args: a, Exclusive: []string{api.DistributionResource(ee.DistributionID)}}
	if ee.RepositoryID != "" {
		spec.Exclusive = append(spec.Exclusive, api.RepositoryResource(ee.RepositoryID))
	}
	if name == TaskDeleteEE && ee.RemoteID != "" {
		spec.Exclusive = append(spec.Exclusive, api.RemoteResource(ee.RemoteID))
	}
	t, err := s.tasks.Dispatch(ctx, spec)
	if errors.Is(err, core.ErrInvalid) {
		// The spec is the server's own: refusing it is the server's fault.
		return nil, fmt.Errorf("dispatch %s: the task system refused the server's spec (are the product tasks registered?): %v", name, err)
	}
	return t, err
}
