package builds

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	"github.com/berth-dev/berth/auth"
	"github.com/berth-dev/berth/core"
	"github.com/berth-dev/berth/plugins/container/build"
	"github.com/berth-dev/berth/tasks"
)

// DefaultTimeout bounds a build (pulling, building and pushing).
const DefaultTimeout = 2 * time.Hour

// Runner runs builds (*build.Runner).
type Runner interface {
	BaseUser(ctx context.Context, base string, creds *build.Credentials) (string, error)
	Run(ctx context.Context, dir string, job build.Job, out io.Writer) (*build.Result, error)
}

// Users finds build creators and gives them short-lived registry tokens
// (*auth.Service).
type Users interface {
	User(ctx context.Context, id string) (*auth.User, error)
	CreateToken(ctx context.Context, userID string, in auth.TokenInput) (*auth.NewToken, error)
	RevokeToken(ctx context.Context, id string) error
}

// HandlerConfig is what a Handler is made of. Store, Runner, Users,
// Registry and WorkDir are required.
type HandlerConfig struct {
	Store  *core.Store
	Runner Runner
	Users  Users
	// Registry is Berth's registry as builds reach it (host:port): images
	// are pushed there, and Berth's own base images pulled from there.
	Registry string
	// WorkDir holds the work directory of each running build
	// (WorkDir/<build id>), removed when the build ends.
	WorkDir string
	// Timeout bounds a build (default DefaultTimeout).
	Timeout time.Duration
	// LogHead and LogTail bound the stored log (default LogHead, LogTail).
	LogHead, LogTail int64
	Log              *slog.Logger
}

// Handler runs builds as the container.build task.
type Handler struct {
	store    *core.Store
	runner   Runner
	users    Users
	registry string
	workDir  string
	timeout  time.Duration
	head     int64
	tail     int64
	log      *slog.Logger
}

// NewHandler returns the build task's handler.
func NewHandler(c HandlerConfig) (*Handler, error) {
	if c.Store == nil || c.Runner == nil || c.Users == nil || c.Registry == "" || c.WorkDir == "" {
		return nil, errors.New("builds: the task handler needs a store, a runner, users, a registry and a work directory")
	}
	h := &Handler{store: c.Store, runner: c.Runner, users: c.Users, registry: c.Registry, workDir: c.WorkDir,
		timeout: c.Timeout, head: c.LogHead, tail: c.LogTail, log: c.Log}
	if h.timeout <= 0 {
		h.timeout = DefaultTimeout
	}
	if h.head <= 0 {
		h.head = LogHead
	}
	if h.tail <= 0 {
		h.tail = LogTail
	}
	if h.log == nil {
		h.log = slog.Default()
	}
	return h, nil
}

// TaskHandlers registers container.build.
func (h *Handler) TaskHandlers() map[string]tasks.Handler {
	return map[string]tasks.Handler{TaskName: h.run}
}

// Result is what a successful build task returns.
type Result struct {
	Build  string   `json:"build"`
	Digest string   `json:"digest"`
	Images []string `json:"images"`
}

func (h *Handler) run(ctx context.Context, t *tasks.Task, r *tasks.Reporter) (any, error) {
	var args taskArgs
	if err := t.DecodeArgs(&args); err != nil {
		return nil, err
	}
	b, err := getBuild(ctx, h.store, args.BuildID)
	if err != nil {
		return nil, err
	}
	out, err := newLogWriter(ctx, h.store, b.ID, h.log, h.head, h.tail)
	if err != nil {
		return nil, err
	}
	bctx, cancel := context.WithTimeout(ctx, h.timeout)
	res, err := h.build(bctx, b, out, r)
	cancel()

	// The outcome is recorded after the last log line, so that a log
	// follower that sees the build finished has every line.
	phase, digest, reason := PhaseSucceeded, "", ""
	switch {
	case err == nil:
		digest = res.Digest
		out.Printf("Build succeeded: %s", digest)
	case errors.Is(context.Cause(ctx), tasks.ErrCanceled):
		phase, reason = PhaseCancelled, "cancelled"
		out.Printf("Build cancelled.")
	default:
		phase, reason = PhaseFailed, err.Error()
		if ctx.Err() != nil {
			reason = fmt.Sprintf("interrupted: %v (%v)", context.Cause(ctx), err)
		}
		out.Printf("Build failed: %s", reason)
	}
	if cerr := out.Close(); cerr != nil {
		h.log.Warn("build log lines lost", "build", b.ID, "err", cerr)
	}
	rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), logDBTimeout)
	defer rcancel()
	if ferr := finishBuild(rctx, h.store, b.ID, phase, digest, reason); ferr != nil {
		h.log.Warn("could not record how a build ended; its task's state tells", "build", b.ID, "err", ferr)
	}
	if err != nil {
		return nil, err
	}
	r.Created(Href(b.ID))
	images := make([]string, len(res.Pushed))
	for i, p := range res.Pushed {
		images[i] = strings.TrimPrefix(p.Reference, h.registry+"/")
	}
	return Result{Build: Href(b.ID), Digest: digest, Images: images}, nil
}

// build pulls, builds and pushes one build, logging to out.
func (h *Handler) build(ctx context.Context, b *Build, out *logWriter, r *tasks.Reporter) (*build.Result, error) {
	spec, err := b.spec()
	if err != nil {
		return nil, err
	}
	out.Printf("Building %s:%s (and %s:%s) for %s", b.Target, b.Tag, b.Target, b.UniqueTag, b.CreatedByName)
	if spec.BaseCredentials, err = openCredentials(h.store, b.BaseSecret); err != nil {
		return nil, err
	}

	// Berth's own registry is reached with a registry token of the
	// creator's, valid while the build may run and revoked at its end.
	user, err := h.users.User(ctx, b.CreatedBy)
	if err != nil {
		return nil, fmt.Errorf("the build's creator: %w", err)
	}
	tok, err := h.users.CreateToken(ctx, b.CreatedBy, auth.TokenInput{
		Name: "build " + b.ID, Kind: auth.TokenRegistry, Lifetime: h.timeout + 10*time.Minute,
	})
	if err != nil {
		return nil, fmt.Errorf("a registry token for %s: %w", user.Username, err)
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), logDBTimeout)
		defer cancel()
		if err := h.users.RevokeToken(rctx, tok.ID); err != nil {
			h.log.Warn("could not revoke a build's registry token; it expires by itself", "build", b.ID, "token_id", tok.ID, "err", err)
		}
	}()
	berth := build.Credentials{Username: user.Username, Password: tok.Value}

	if b.OwnBase != "" {
		spec.Base = h.registry + "/" + b.OwnBase
		if spec.BaseCredentials == nil {
			spec.BaseCredentials = &berth
		}
	}
	baseUser := ""
	if !spec.Raw() {
		p := r.Progress("build.base", "Reading the base image")
		out.Printf("Reading base image %s", spec.Base)
		if baseUser, err = h.runner.BaseUser(ctx, spec.Base, spec.BaseCredentials); err != nil {
			p.Fail()
			return nil, err
		}
		p.Done()
		if baseUser != "" {
			out.Printf("The base image runs as user %q", baseUser)
		}
	}
	job, err := spec.Job(h.registry, baseUser)
	if err != nil {
		return nil, err
	}
	repo := h.registry + "/" + b.Target
	job.Destinations = []string{repo + ":" + b.Tag, repo + ":" + b.UniqueTag}
	job.PushAuth = build.Auth{h.registry: berth}
	if job.PullAuth == nil {
		job.PullAuth = build.Auth{}
	}
	if _, ok := job.PullAuth[h.registry]; !ok {
		job.PullAuth[h.registry] = berth // FROM images in Berth (raw mode)
	}
	if err := setContainerfile(ctx, h.store, b.ID, job.Containerfile); err != nil {
		return nil, err
	}
	out.Printf("Containerfile:")
	for _, line := range strings.Split(strings.TrimSuffix(job.Containerfile, "\n"), "\n") {
		out.Printf("  %s", line)
	}
	if b.HasContext {
		data, err := buildContext(ctx, h.store, b.ID)
		if err != nil {
			return nil, err
		}
		job.Context = bytes.NewReader(data)
	}
	p := r.Progress("build.run", "Building and pushing the image")
	res, err := h.runner.Run(ctx, filepath.Join(h.workDir, b.ID), job, out)
	if err != nil {
		p.Fail()
		return nil, err
	}
	p.Done()
	return res, nil
}
