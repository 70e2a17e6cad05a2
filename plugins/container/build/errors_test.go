package build

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/berth-dev/berth/core"
)

// watched feeds buildah output lines to a watcher.
func watched(exitCode int, lines ...string) outcome {
	w := &watcher{}
	for _, l := range lines {
		w.see([]byte(l))
	}
	return outcome{exitCode: exitCode, watch: w}
}

// TestBuildFailures classifies output captured from buildah 1.28.
func TestBuildFailures(t *testing.T) {
	tests := []struct {
		name   string
		o      outcome
		is     []error
		phase  Phase
		want   string
		exit   int
		reason string
	}{
		{
			name: "failed RUN",
			o: watched(3, "STEP 1/3: FROM 127.0.0.1:5555/test/base:1", "STEP 2/3: USER root",
				`STEP 3/3: RUN ["sh","-c","echo hi; exit 3"]`, "hi", "subprocess exited with status 3",
				`Error: building at STEP "RUN sh -c echo hi; exit 3": exit status 3`),
			is:    []error{ErrStepFailed},
			phase: PhaseBuild, exit: 3,
			want: `step 3/3 (RUN ["sh","-c","echo hi; exit 3"]) exited with status 3`,
		},
		{
			name: "failed RUN in a multi-stage build",
			o: watched(1, "[1/2] STEP 1/2: FROM x AS b", "[1/2] STEP 2/2: RUN false",
				`Error: building at STEP "RUN false": while running runtime: exit status 1`),
			is:    []error{ErrStepFailed},
			phase: PhaseBuild, exit: 1,
			want: "step 2/2 (RUN false) exited with status 1",
		},
		{
			name: "missing base",
			o: watched(125, "STEP 1/1: FROM 127.0.0.1:5555/test/nope:1", "Trying to pull 127.0.0.1:5555/test/nope:1...",
				"Error: creating build container: initializing source docker://127.0.0.1:5555/test/nope:1: reading manifest 1 in 127.0.0.1:5555/test/nope: name unknown: Unknown name"),
			is:    []error{ErrBaseNotFound, core.ErrNotFound},
			phase: PhasePull, exit: 125,
			want: "base image 127.0.0.1:5555/test/nope:1: not found: reading manifest 1 in 127.0.0.1:5555/test/nope: name unknown: Unknown name",
		},
		{
			name: "base needs credentials",
			o: watched(125, "STEP 1/1: FROM r.example.com/p/i:1",
				"Error: creating build container: initializing source docker://r.example.com/p/i:1: reading manifest 1 in r.example.com/p/i: unauthorized: authentication required"),
			is:    []error{ErrUnauthorized, core.ErrUnauthorized},
			phase: PhasePull,
			want:  "base image r.example.com/p/i:1: access denied (check the pull credentials): reading manifest 1 in r.example.com/p/i: unauthorized: authentication required",
		},
		{
			name:  "registry down",
			o:     watched(125, "Error: creating build container: initializing source docker://127.0.0.1:1/x:1: pinging container registry 127.0.0.1:1: Get \"https://127.0.0.1:1/v2/\": dial tcp 127.0.0.1:1: connect: connection refused"),
			is:    []error{ErrBuildFailed},
			phase: PhasePull,
			want:  "base image 127.0.0.1:1/x:1: cannot pull: pinging container registry",
		},
		{
			name:  "bad Containerfile",
			o:     watched(125, `Error: no FROM statement found`),
			is:    []error{ErrBuildFailed},
			phase: PhaseBuild,
			want:  "build: build failed: no FROM statement found",
		},
		{
			name:  "no output",
			o:     watched(2),
			is:    []error{ErrBuildFailed},
			phase: PhaseBuild,
			want:  "buildah exited with status 2",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := error(tt.o.buildFailure())
			for _, target := range tt.is {
				if !errors.Is(err, target) {
					t.Errorf("errors.Is(%v, %v) = false", err, target)
				}
			}
			var be *BuildError
			if !errors.As(err, &be) || be.Phase != tt.phase {
				t.Fatalf("error %#v, want phase %s", err, tt.phase)
			}
			if tt.exit != 0 && be.ExitCode != tt.exit {
				t.Errorf("ExitCode = %d, want %d", be.ExitCode, tt.exit)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Error() = %q, want it to contain %q", err.Error(), tt.want)
			}
		})
	}
}

func TestPushFailures(t *testing.T) {
	o := watched(125, `Error: pushing image "sha256:4d70" to "docker://h/x/y:1": writing blob: initiating layer upload to /v2/x/y/blobs/uploads/ in h: unauthorized: authentication required`)
	err := o.pushFailure("h/x/y:1")
	if !errors.Is(err, ErrUnauthorized) || !strings.HasPrefix(err.Error(), "push to h/x/y:1: access denied: ") {
		t.Errorf("pushFailure() = %v", err)
	}
	o = watched(125, `Error: pushing image "sha256:4d70" to "docker://h/x/y:1": connection refused`)
	if err := o.pushFailure("h/x/y:1"); !errors.Is(err, ErrPushFailed) || !strings.HasPrefix(err.Error(), "push to h/x/y:1 failed: ") {
		t.Errorf("pushFailure() = %v", err)
	}
}

func TestCanceledBuildError(t *testing.T) {
	err := fmt.Errorf("task: %w", &BuildError{Phase: PhaseBuild, Err: context.Canceled})
	if !errors.Is(err, context.Canceled) || err.Error() != "task: build stopped during build: context canceled" {
		t.Errorf("err = %v", err)
	}
}
