package build

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/berth-dev/berth/core"
)

// Job is one build for [Runner.Run]: a Containerfile, its context, and the
// references to push the image to. [Spec.Job] makes one from a spec.
type Job struct {
	// Containerfile is the text to build.
	Containerfile string
	// Context is the build context as a tar archive (gzip-compressed or
	// not), checked and extracted with [ExtractContext]; nil means an empty
	// context (all a generated Containerfile needs).
	Context io.Reader
	// Destinations are the tagged references the image is pushed to, in
	// order ("registry.example.com/team/app:v1").
	Destinations []string
	// PullAuth holds credentials for the registries of FROM images.
	PullAuth Auth
	// PushAuth holds credentials for the registries of Destinations.
	PushAuth Auth
}

// validate checks what the runner relies on.
func (j *Job) validate() error {
	v := &core.ValidationError{}
	if strings.TrimSpace(j.Containerfile) == "" {
		v.Add("containerfile", "required")
	}
	if len(j.Destinations) == 0 {
		v.Add("destinations", "name at least one")
	}
	for _, d := range j.Destinations {
		if _, err := name.NewTag(d, name.StrictValidation); err != nil {
			v.Add("destinations", "%q: want registry/repository:tag: %v", d, err)
		}
	}
	for field, auth := range map[string]Auth{"pull_auth": j.PullAuth, "push_auth": j.PushAuth} {
		for host, c := range auth {
			if !hostRE.MatchString(host) {
				v.Add(field, "invalid registry host %q", host)
			}
			c.check(v, field)
		}
	}
	return v.Err()
}

// Result is what a successful build produced.
type Result struct {
	// ImageID is the image's ID in the build's (now removed) storage: the
	// digest of its config.
	ImageID string
	// Digest is the manifest digest pushed to the first destination.
	Digest string
	// Pushed lists every destination with the manifest digest it received.
	Pushed []Pushed
}

// Pushed is one destination of a build.
type Pushed struct {
	Reference string
	Digest    string
}

// Run builds job with buildah and pushes the image to its destinations.
//
// dir is the build's work directory: it must not exist or be empty, the
// runner owns it while the build runs (buildah's storage, its temporary
// files and the auth files all go there) and removes it when Run returns,
// whatever happened. Give each build its own.
//
// The commands run (with the auth files named, never their contents) and
// buildah's combined output go to out line by line: each Write is exactly
// one line ending in "\n" (see [LineFunc] and [HeadTail]). out may be nil.
//
// The build is:
//
//	buildah --root DIR/storage --runroot DIR/run --storage-driver vfs \
//	  build --isolation chroot --layers=false --format oci \
//	  --authfile DIR/auth/pull.json --iidfile DIR/image-id --file DIR/Containerfile \
//	  [--retry N --retry-delay D] DIR/context
//	buildah … push --authfile DIR/auth/push.json --digestfile DIR/digest-N [--retry …] IMAGE-ID docker://DESTINATION
//
// When ctx is canceled, the runner sends SIGTERM to buildah's whole process
// group (RUN steps included), SIGKILL after the grace period
// ([WithKillGrace]), waits for buildah, removes dir and returns an error
// matching ctx.Err(). A failure returns a *BuildError saying what failed
// (errors.Is: ErrBaseNotFound, ErrUnauthorized, ErrStepFailed,
// ErrPushFailed, ErrBuildFailed, ErrBuildah); an invalid job or build context
// a *core.ValidationError.
func (r *Runner) Run(ctx context.Context, dir string, job Job, out io.Writer) (*Result, error) {
	if err := job.validate(); err != nil {
		return nil, err
	}
	if runtime.GOOS != "linux" {
		return nil, &BuildError{Phase: PhasePrepare, Err: ErrBuildah, Reason: "builds need Linux"}
	}
	buildah, err := exec.LookPath(r.buildah)
	if err != nil {
		return nil, &BuildError{Phase: PhasePrepare, Err: ErrBuildah, Reason: err.Error()}
	}
	if dir, err = filepath.Abs(dir); err != nil {
		return nil, &BuildError{Phase: PhasePrepare, Err: err}
	}
	w := workDir{dir: dir}
	if err := w.create(); err != nil {
		if !errors.Is(err, errWorkDirInUse) {
			_ = removeAll(dir)
		}
		return nil, &BuildError{Phase: PhasePrepare, Err: fmt.Errorf("work directory: %w", err)}
	}
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		w = workDir{dir: real} // remove what the link points to, not the link
	}
	if err := w.writeOwner(); err != nil {
		_ = removeAll(w.dir)
		return nil, &BuildError{Phase: PhasePrepare, Err: fmt.Errorf("work directory: %w", err)}
	}
	start := time.Now()
	log := r.log.With("dir", w.dir)
	log.Info("build started", "destinations", job.Destinations)
	defer func() {
		if err := removeAll(w.dir); err != nil {
			log.Error("cannot remove the build's work directory", "err", err)
		}
	}()

	b := &build{r: r, buildah: buildah, w: w, sink: &lineSink{w: out}}
	res, err := b.run(ctx, &job)
	if err != nil {
		log.Info("build failed", "err", err, "duration", time.Since(start).Round(time.Millisecond))
		return nil, err
	}
	log.Info("build done", "digest", res.Digest, "duration", time.Since(start).Round(time.Millisecond))
	return res, nil
}

// build is one run of a job.
type build struct {
	r       *Runner
	buildah string
	w       workDir
	sink    *lineSink
}

func (b *build) run(ctx context.Context, job *Job) (*Result, error) {
	if err := b.prepare(job); err != nil {
		return nil, err
	}
	global := []string{"--root", b.w.storage(), "--runroot", b.w.runroot(), "--storage-driver", "vfs"}
	args := slices.Concat(global, []string{"build",
		"--isolation", "chroot", "--layers=false", "--format", "oci",
		"--authfile", b.w.pullAuth(), "--iidfile", b.w.imageIDFile(), "--file", b.w.containerfile()},
		b.r.retryFlags(), []string{b.w.contextDir()})
	o, err := b.exec(ctx, args)
	if err != nil {
		return nil, err
	}
	if o.canceled {
		return nil, &BuildError{Phase: PhaseBuild, Err: ctx.Err()}
	}
	if o.exitCode != 0 {
		return nil, o.buildFailure()
	}
	imageID, err := readSmallFile(b.w.imageIDFile())
	if err != nil || imageID == "" {
		return nil, &BuildError{Phase: PhaseBuild, Err: ErrBuildFailed, Reason: fmt.Sprintf("buildah wrote no image ID: %v", err)}
	}
	res := &Result{ImageID: imageID}
	for i, dest := range job.Destinations {
		args := slices.Concat(global, []string{"push",
			"--authfile", b.w.pushAuth(), "--digestfile", b.w.digestFile(i)},
			b.r.retryFlags(), []string{imageID, "docker://" + dest})
		o, err := b.exec(ctx, args)
		if err != nil {
			return nil, err
		}
		if o.canceled {
			return nil, &BuildError{Phase: PhasePush, Ref: dest, Err: ctx.Err()}
		}
		if o.exitCode != 0 {
			return nil, o.pushFailure(dest)
		}
		digest, err := readSmallFile(b.w.digestFile(i))
		if err != nil || digest == "" {
			return nil, &BuildError{Phase: PhasePush, Ref: dest, Err: ErrPushFailed, Reason: fmt.Sprintf("buildah wrote no digest: %v", err)}
		}
		res.Pushed = append(res.Pushed, Pushed{Reference: dest, Digest: digest})
		b.sink.printf("pushed %s@%s", dest, digest)
	}
	res.Digest = res.Pushed[0].Digest
	return res, nil
}

// prepare writes the Containerfile, the context, the auth files and the
// registries drop-in.
func (b *build) prepare(job *Job) error {
	fail := func(what string, err error) error {
		var v *core.ValidationError
		if errors.As(err, &v) {
			return err
		}
		return &BuildError{Phase: PhasePrepare, Err: fmt.Errorf("%s: %w", what, err)}
	}
	if err := os.WriteFile(b.w.containerfile(), []byte(job.Containerfile), 0o600); err != nil {
		return fail("writing the Containerfile", err)
	}
	if job.Context != nil {
		if err := ExtractContext(job.Context, b.w.contextDir(), b.r.limits); err != nil {
			return fail("extracting the build context", err)
		}
	}
	if err := writeAuthFile(b.w.pullAuth(), job.PullAuth); err != nil {
		return fail("writing the pull auth file", err)
	}
	if err := writeAuthFile(b.w.pushAuth(), job.PushAuth); err != nil {
		return fail("writing the push auth file", err)
	}
	if err := writeRegistriesDropIn(b.w.registriesDropIn(), b.r.insecure); err != nil {
		return fail("writing the registries configuration", err)
	}
	return nil
}

// retryFlags are buildah's --retry flags, when the runner sets them.
func (r *Runner) retryFlags() []string {
	if r.retries < 0 {
		return nil
	}
	return []string{"--retry", strconv.Itoa(r.retries), "--retry-delay", r.retryDelay.String()}
}

// outcome is how one buildah command ended.
type outcome struct {
	exitCode int
	canceled bool
	watch    *watcher
}

// exec runs buildah with args in its own process group, streaming its output
// to the sink, and stops the whole group when ctx is canceled.
func (b *build) exec(ctx context.Context, args []string) (outcome, error) {
	if ctx.Err() != nil {
		return outcome{canceled: true}, nil
	}
	cmd := exec.Command(b.buildah, args...)
	cmd.Dir = b.w.dir
	cmd.Env = buildahEnv(os.Environ(), b.w)
	cmd.SysProcAttr = groupAttr()
	pr, pw, err := os.Pipe()
	if err != nil {
		return outcome{}, &BuildError{Phase: PhasePrepare, Err: err}
	}
	cmd.Stdout, cmd.Stderr = pw, pw // one pipe keeps stdout and stderr in order
	b.sink.printf("$ %s", ShellJoin(append([]string{"buildah"}, args...)))
	if err := cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		return outcome{}, &BuildError{Phase: PhasePrepare, Err: ErrBuildah, Reason: err.Error()}
	}
	pw.Close()

	watch := &watcher{}
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		readLines(pr, func(line []byte) {
			watch.see(line)
			b.sink.line(line)
		})
	}()

	pid := cmd.Process.Pid
	exited := make(chan struct{})
	reaped := false // set before exited is closed
	go func() {
		defer close(exited)
		if err := waitExited(pid); err != nil {
			// Without waitid, wait the usual way; the group ID is then no
			// longer safe to signal after the exit.
			b.r.log.Warn("waitid failed; waiting for buildah without it", "err", err)
			_ = cmd.Wait()
			reaped = true
		}
	}()
	canceled := false
	select {
	case <-exited:
	case <-ctx.Done():
		canceled = true
		b.r.log.Info("build canceled: stopping buildah", "dir", b.w.dir, "pid", pid)
		b.sink.printf("canceled: stopping buildah (SIGTERM to its process group)")
		_ = signalGroup(pid, syscall.SIGTERM)
		grace := time.NewTimer(b.r.grace)
		select {
		case <-exited:
			grace.Stop()
		case <-grace.C:
			b.sink.printf("buildah did not stop within %v: SIGKILL", b.r.grace)
			_ = signalGroup(pid, syscall.SIGKILL)
			<-exited
		}
	}
	if !reaped {
		// The leader has exited but is not reaped yet, so its group ID is
		// still ours: whatever it left running in the group goes now.
		_ = signalGroup(pid, syscall.SIGKILL)
		_ = cmd.Wait() // the exit status is in ProcessState
	}

	select {
	case <-readDone:
	case <-time.After(2 * time.Second):
		// A process that left the group (setsid) still holds the pipe.
		b.r.log.Warn("build output still open after buildah exited; closing it", "dir", b.w.dir)
	}
	pr.Close()
	<-readDone
	return outcome{exitCode: cmd.ProcessState.ExitCode(), canceled: canceled, watch: watch}, nil
}

// maxLine bounds one line of buildah's output; longer lines are split.
const maxLine = 64 << 10

// readLines calls fn for each line read from r, without its line end.
func readLines(r io.Reader, fn func([]byte)) {
	br := bufio.NewReaderSize(r, maxLine)
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			fn(bytesTrimEOL(line))
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return
		}
	}
}

func bytesTrimEOL(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}

// watcher remembers what the error messages need from buildah's output: the
// step being run and buildah's final error line. It is written by the reader
// goroutine only and read after that goroutine ends.
type watcher struct {
	step, steps int
	instruction string
	errLine     string
	last        string
}

var (
	// stepRE matches buildah's step lines ("STEP 3/5: RUN …", in multi-stage
	// builds "[1/2] STEP 3/5: …").
	stepRE = regexp.MustCompile(`^(?:\[\d+/\d+\] )?STEP (\d+)/(\d+): (.*)$`)
	// pullRE matches a failed pull: "… initializing source docker://REF: why".
	pullRE = regexp.MustCompile(`initializing source docker://(\S+?): (.*)$`)
	// stepFailRE matches a failed step: `building at STEP "RUN …": exit status 2`.
	stepFailRE = regexp.MustCompile(`building at STEP ".*": (?:.*: )?exit status (\d+)$`)
)

func (w *watcher) see(line []byte) {
	s := string(line)
	if strings.TrimSpace(s) != "" {
		w.last = s
	}
	if m := stepRE.FindStringSubmatch(s); m != nil {
		w.step, _ = strconv.Atoi(m[1])
		w.steps, _ = strconv.Atoi(m[2])
		w.instruction = m[3]
		return
	}
	if after, ok := strings.CutPrefix(s, "Error: "); ok {
		w.errLine = after
	}
}

// reason is buildah's error line, or its last line.
func (w *watcher) reason() string {
	if w.errLine != "" {
		return w.errLine
	}
	return w.last
}

// buildFailure describes a failed "buildah build".
func (o outcome) buildFailure() *BuildError {
	reason := o.watch.reason()
	if m := pullRE.FindStringSubmatch(reason); m != nil {
		err := ErrBuildFailed
		switch {
		case isUnauthorized(m[2]):
			err = ErrUnauthorized
		case isNotFound(m[2]):
			err = ErrBaseNotFound
		}
		return &BuildError{Phase: PhasePull, Ref: m[1], Reason: m[2], ExitCode: o.exitCode, Err: err}
	}
	if m := stepFailRE.FindStringSubmatch(reason); m != nil && o.watch.step > 0 {
		code, _ := strconv.Atoi(m[1])
		return &BuildError{Phase: PhaseBuild, Step: o.watch.step, Steps: o.watch.steps,
			Instruction: truncate(o.watch.instruction, 200), ExitCode: code, Reason: reason, Err: ErrStepFailed}
	}
	if reason == "" {
		reason = fmt.Sprintf("buildah exited with status %d", o.exitCode)
	}
	return &BuildError{Phase: PhaseBuild, Reason: reason, ExitCode: o.exitCode, Err: ErrBuildFailed}
}

// pushFailure describes a failed "buildah push".
func (o outcome) pushFailure(dest string) *BuildError {
	reason := o.watch.reason()
	err := ErrPushFailed
	if isUnauthorized(reason) {
		err = ErrUnauthorized
	}
	return &BuildError{Phase: PhasePush, Ref: dest, Reason: reason, ExitCode: o.exitCode, Err: err}
}

func isNotFound(s string) bool {
	s = strings.ToLower(s)
	return containsAny(s, "manifest unknown", "name unknown", "not found", "does not exist", "status 404")
}

func isUnauthorized(s string) bool {
	s = strings.ToLower(s)
	return containsAny(s, "unauthorized", "authentication required", "access to the resource is denied",
		"invalid username/password", "denied:", "status 401", "status 403")
}

func containsAny(s string, subs ...string) bool {
	return slices.ContainsFunc(subs, func(sub string) bool { return strings.Contains(s, sub) })
}
