package product

import (
	"context"
	"errors"
	"fmt"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/core"
	"github.com/berth-dev/berth/plugins/container"
	"github.com/berth-dev/berth/tasks"
)

// Names of the package's task handlers. Each holds the image's repository
// exclusively, so changes of one image run one at a time, and makes at most
// one new repository version (or none, when it fails: nothing half-done
// stays). Untagging and removing images are the container plugin's
// container.remove task (container.TaskRemove), which this package
// dispatches too.
const (
	// TaskTag points a tag at a manifest (adding or moving it).
	TaskTag = "container.ee.tag"
	// TaskDeleteEE deletes an execution environment: distribution,
	// repository and the remote only it uses.
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

// TaskResult is what the tag task returns.
type TaskResult struct {
	Manifests []string `json:"manifests,omitempty"`
	Tags      []string `json:"tags,omitempty"`
}

// Tasks is the package's tasks.HandlerProvider; every process that runs
// workers or dispatches registers it.
type Tasks struct {
	Container *container.Plugin
}

// TaskHandlers maps the task names to their handlers.
func (t Tasks) TaskHandlers() map[string]tasks.Handler {
	return map[string]tasks.Handler{
		TaskTag:      t.tag,
		TaskDeleteEE: t.deleteEE,
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

// created records the repository version a task made.
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

// remove dispatches the container plugin's removal of what sel names from
// the image's repository.
func (s *Service) remove(ctx context.Context, ee *container.ExecutionEnvironment, sel container.Selection) (*tasks.Task, error) {
	if ee.RepositoryID == "" {
		return nil, core.NotFound("repository of execution environment", ee.Name)
	}
	t, err := s.tasks.Dispatch(ctx, tasks.Spec{
		Name: container.TaskRemove, Exclusive: []string{api.RepositoryResource(ee.RepositoryID)},
		Args: container.RemoveArgs{RepositoryID: ee.RepositoryID, Selection: sel, User: principal(ctx).Username},
	})
	if errors.Is(err, core.ErrInvalid) {
		return nil, fmt.Errorf("dispatch %s: the task system refused the server's spec (are the container maintenance tasks registered?): %v", container.TaskRemove, err)
	}
	return t, err
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
