package build

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/berth-dev/berth/core"
)

// Sentinel errors of the package. A failed [Runner.Run] returns a
// *BuildError that wraps one of the build errors; test with errors.Is.
var (
	// ErrBaseNotFound: the base image (a FROM reference) does not exist. It
	// matches core.ErrNotFound too.
	ErrBaseNotFound = fmt.Errorf("base image %w", core.ErrNotFound)
	// ErrUnauthorized: a registry refused the credentials (or asked for some).
	// It matches core.ErrUnauthorized too.
	ErrUnauthorized = fmt.Errorf("registry: %w", core.ErrUnauthorized)
	// ErrStepFailed: a Containerfile instruction (usually a RUN) failed.
	ErrStepFailed = errors.New("build step failed")
	// ErrPushFailed: the image was built but could not be pushed.
	ErrPushFailed = errors.New("push failed")
	// ErrBuildFailed: buildah failed for another reason (bad Containerfile,
	// network, storage, …); the reason is buildah's own error line.
	ErrBuildFailed = errors.New("build failed")
	// ErrBuildah: buildah could not be started at all (not installed, …).
	ErrBuildah = errors.New("cannot run buildah")
	// ErrSerializeCredentials: Credentials refuse to be marshaled to JSON.
	ErrSerializeCredentials = errors.New("build: credentials are not serializable")
)

// Phase is the part of a build that failed.
type Phase string

// The phases of a build.
const (
	PhasePrepare Phase = "prepare" // work directory, context, auth files
	PhasePull    Phase = "pull"    // pulling a base image
	PhaseBuild   Phase = "build"   // running the Containerfile
	PhasePush    Phase = "push"    // pushing to a destination
)

// BuildError says what part of a build failed, and why, in one line meant for
// users (for example "step 3/5 (RUN [\"pip\", …]) exited with status 2").
// Err is the sentinel (ErrStepFailed, …) or the underlying error.
type BuildError struct {
	Phase Phase
	// Ref is the base image (PhasePull) or destination (PhasePush) concerned.
	Ref string
	// Step, Steps and Instruction locate a failed step ("STEP 3/5: RUN …").
	Step, Steps int
	Instruction string
	// ExitCode is the failed step's exit status, or buildah's, or -1.
	ExitCode int
	// Reason is buildah's own error line, when there is one.
	Reason string
	Err    error
}

func (e *BuildError) Error() string {
	var b strings.Builder
	switch {
	case errors.Is(e.Err, context.Canceled) || errors.Is(e.Err, context.DeadlineExceeded):
		fmt.Fprintf(&b, "build stopped during %s: %v", e.Phase, e.Err)
		return b.String()
	case e.Phase == PhaseBuild && e.Step > 0 && errors.Is(e.Err, ErrStepFailed):
		fmt.Fprintf(&b, "step %d/%d (%s) exited with status %d", e.Step, e.Steps, e.Instruction, e.ExitCode)
		return b.String()
	case e.Phase == PhasePull && errors.Is(e.Err, ErrBaseNotFound):
		fmt.Fprintf(&b, "base image %s: not found", e.Ref)
	case e.Phase == PhasePull && errors.Is(e.Err, ErrUnauthorized):
		fmt.Fprintf(&b, "base image %s: access denied (check the pull credentials)", e.Ref)
	case e.Phase == PhasePull:
		fmt.Fprintf(&b, "base image %s: cannot pull", e.Ref)
	case e.Phase == PhasePush && errors.Is(e.Err, ErrUnauthorized):
		fmt.Fprintf(&b, "push to %s: access denied", e.Ref)
	case e.Phase == PhasePush:
		fmt.Fprintf(&b, "push to %s failed", e.Ref)
	default:
		fmt.Fprintf(&b, "%s: %v", e.Phase, e.Err)
	}
	if e.Reason != "" {
		b.WriteString(": ")
		b.WriteString(e.Reason)
	}
	return b.String()
}

// Unwrap returns the sentinel or underlying error.
func (e *BuildError) Unwrap() error { return e.Err }
