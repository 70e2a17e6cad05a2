package build

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// A work directory records its owner, the process running the build (its
// PID and start time, so that a reused PID is not taken for it). A worker
// that dies without stopping its builds (SIGKILL, OOM, power loss) leaves
// their directories behind, and may leave processes of a RUN step running
// (buildah itself dies with its parent; what it started under
// buildah-chroot-exec is reparented instead). CleanStale removes both.

// ownerFile is the name of the owner record in a work directory.
const ownerFile = "owner"

// staleGrace protects a work directory that has no owner record yet: a
// runner is creating it.
const staleGrace = time.Minute

// processIdentity is "PID STARTTIME" of process pid, "" if it is gone.
func processIdentity(pid int) string {
	start, err := processStart(pid)
	if err != nil {
		return ""
	}
	return strconv.Itoa(pid) + " " + start
}

// writeOwner records this process as the owner of w.
func (w workDir) writeOwner() error {
	id := processIdentity(os.Getpid())
	if id == "" {
		return errors.New("cannot read this process's start time")
	}
	return os.WriteFile(w.path(ownerFile), []byte(id+"\n"), 0o600)
}

// ownerAlive reports whether the process recorded as w's owner still runs.
// A directory without a record counts as owned while it is young.
func (w workDir) ownerAlive() bool {
	b, err := os.ReadFile(w.path(ownerFile))
	if err != nil {
		fi, serr := os.Stat(w.dir)
		return serr == nil && time.Since(fi.ModTime()) < staleGrace
	}
	rec := strings.TrimSpace(string(b))
	pidStr, _, _ := strings.Cut(rec, " ")
	pid, err := strconv.Atoi(pidStr)
	return err == nil && pid > 0 && processIdentity(pid) == rec
}

// CleanStale removes the work directories under root whose owner is gone,
// after killing the processes still running from them: those whose root
// directory (a RUN step's chroot) is in one, and buildah commands working
// in one. Directories of live builds, this process's or another worker's on
// the same data directory, are left alone. It returns how many it removed.
func CleanStale(root string, log *slog.Logger) (int, error) {
	entries, err := os.ReadDir(root)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("stale builds: %w", err)
	}
	if root, err = filepath.Abs(root); err != nil {
		return 0, err
	}
	if real, err := filepath.EvalSymlinks(root); err == nil {
		root = real
	}
	removed := 0
	var errs []error
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		w := workDir{dir: filepath.Join(root, e.Name())}
		if w.ownerAlive() {
			continue
		}
		killed := killUnder(w.dir)
		if err := removeAll(w.dir); err != nil {
			errs = append(errs, err)
			continue
		}
		removed++
		log.Warn("removed the work directory of a build whose worker died", "dir", w.dir, "processes_killed", killed)
	}
	return removed, errors.Join(errs...)
}
