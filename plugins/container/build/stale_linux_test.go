package build

import (
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/testimage"
)

// TestCleanStale: the work directories of dead owners go, with the
// processes still running from them (a buildah command, a RUN step chrooted
// into the directory); those of a live owner, and a young one without an
// owner record yet, stay with their processes.
func TestCleanStale(t *testing.T) {
	root := t.TempDir()
	mk := func(name, owner string) workDir {
		t.Helper()
		w := workDir{dir: filepath.Join(root, name)}
		if err := w.create(); err != nil {
			t.Fatal(err)
		}
		if owner != "" {
			if err := os.WriteFile(w.path(ownerFile), []byte(owner+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		return w
	}
	// start runs a process that looks like buildah working in w; a
	// chroot directory makes it a RUN step instead.
	start := func(w workDir, chroot string) *exec.Cmd {
		t.Helper()
		cmd := &exec.Cmd{Path: "/bin/sh", Args: []string{"buildah", "-c", "while :; do sleep 1; done", "--root", w.storage()}}
		if chroot != "" {
			cmd = &exec.Cmd{Path: "/bin/busybox", Args: []string{"busybox", "sh", "-c", "while :; do sleep 1; done"},
				SysProcAttr: &syscall.SysProcAttr{Chroot: chroot}}
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		return cmd
	}
	exited := func(cmd *exec.Cmd) bool {
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			var ee *exec.ExitError
			return errors.As(err, &ee) && ee.Sys().(syscall.WaitStatus).Signal() == syscall.SIGKILL
		case <-time.After(5 * time.Second):
			return false
		}
	}

	dead := mk("dead", "999999999 1")                      // no such PID
	reused := mk("reused", strconv.Itoa(os.Getpid())+" 1") // this PID, another start time
	live := mk("live", processIdentity(os.Getpid()))
	young := mk("young", "")
	old := mk("old", "")
	past := time.Now().Add(-2 * staleGrace)
	if err := os.Chtimes(old.dir, past, past); err != nil {
		t.Fatal(err)
	}
	deadBuildah, liveBuildah := start(dead, ""), start(live, "")
	var runStep *exec.Cmd
	if os.Geteuid() == 0 {
		if _, err := os.Stat(testimage.BusyboxPath); err == nil {
			rootfs := dead.path("storage", "rootfs")
			os.MkdirAll(filepath.Join(rootfs, "bin"), 0o755)
			bb, _ := os.ReadFile(testimage.BusyboxPath)
			if err := os.WriteFile(filepath.Join(rootfs, "bin", "busybox"), bb, 0o755); err != nil {
				t.Fatal(err)
			}
			os.Symlink("busybox", filepath.Join(rootfs, "bin", "sleep"))
			runStep = start(workDir{}, rootfs)
		}
	}
	if runStep == nil {
		t.Log("not root or no static busybox: the chrooted RUN step is not tried")
	}

	n, err := CleanStale(root, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil || n != 3 {
		t.Fatalf("CleanStale removed %d (%v), want 3 (dead, reused, old)", n, err)
	}
	for _, w := range []workDir{dead, reused, old} {
		if _, err := os.Stat(w.dir); !os.IsNotExist(err) {
			t.Errorf("%s is still there (%v)", w.dir, err)
		}
	}
	for _, w := range []workDir{live, young} {
		if _, err := os.Stat(w.storage()); err != nil {
			t.Errorf("%s of a live build: %v", w.dir, err)
		}
	}
	if !exited(deadBuildah) {
		t.Error("the dead owner's buildah was not killed")
	}
	if runStep != nil && !exited(runStep) {
		t.Error("the dead owner's RUN step was not killed")
	}
	if liveBuildah.ProcessState != nil || liveBuildah.Process.Signal(syscall.Signal(0)) != nil {
		t.Error("the live owner's buildah was killed")
	}
}
