//go:build linux

package build

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// groupAttr starts a process as the leader of a new process group, so that
// the whole tree it starts can be signaled at once, and has the kernel kill
// it should the worker die without stopping it (SIGKILL, OOM): a build
// outliving its worker would go on pushing for a task already failed as
// "worker lost". (The signal follows the OS thread that started the
// process; Go ends threads only for goroutines that exit locked to one,
// which the worker's do not.)
func groupAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// signalGroup sends sig to the process group led by pid. A group that is
// gone already is not an error.
func signalGroup(pid int, sig syscall.Signal) error {
	if err := syscall.Kill(-pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return err
	}
	return nil
}

// waitExited blocks until the process pid has exited, without reaping it:
// while the leader is a zombie its process group ID cannot be reused, so
// signaling the group afterwards cannot hit an unrelated process.
func waitExited(pid int) error {
	for {
		var info unix.Siginfo
		err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

// unmountUnder detaches every mount point at or under dir, deepest first, and
// fails if one remains: removing a directory tree with a mount inside it
// would delete what is mounted there. Builds with chroot isolation mount in
// a private mount namespace, so normally there is nothing to do.
func unmountUnder(dir string) error {
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		dir = real
	} else if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	points, err := mountsUnder(dir)
	if err != nil || len(points) == 0 {
		return err
	}
	for _, p := range points {
		_ = unix.Unmount(p, unix.MNT_DETACH)
	}
	if points, err = mountsUnder(dir); err != nil {
		return err
	}
	if len(points) > 0 {
		return fmt.Errorf("not removing %s: mount points remain under it: %s", dir, strings.Join(points, ", "))
	}
	return nil
}

// mountsUnder lists the mount points at or under dir, deepest first.
func mountsUnder(dir string) ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("listing mounts: %w", err)
	}
	defer f.Close()
	var points []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		p := unescapeMountPath(fields[4])
		if p == dir || strings.HasPrefix(p, dir+"/") {
			points = append(points, p)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("listing mounts: %w", err)
	}
	slices.SortFunc(points, func(a, b string) int { return len(b) - len(a) })
	return points, nil
}

// unescapeMountPath decodes the octal escapes (\040 for a space, …) of
// /proc/self/mountinfo.
func unescapeMountPath(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// processStart is process pid's start time in clock ticks since boot
// (field 22 of /proc/PID/stat), which tells a process from a later one
// with the same PID.
func processStart(pid int) (string, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return "", err
	}
	// The command name (field 2) is in parentheses and may hold spaces.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return "", fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	fields := strings.Fields(string(b[i+1:]))
	if len(fields) < 20 {
		return "", fmt.Errorf("/proc/%d/stat: %d fields", pid, len(fields)+2)
	}
	return fields[19], nil
}

// buildahOf reports whether the process at /proc/PID base is a buildah
// command working in dir.
func buildahOf(base, dir string) bool {
	cmdline, err := os.ReadFile(base + "/cmdline")
	if err != nil {
		return false
	}
	args := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
	return strings.HasPrefix(filepath.Base(args[0]), "buildah") && slices.ContainsFunc(args[1:], func(a string) bool {
		return a == dir || strings.HasPrefix(a, dir+"/")
	})
}

// killUnder SIGKILLs every other process whose root directory is dir or
// under it (a RUN step), or that is a buildah command working in dir, until
// none is left (at most a few rounds: a dying process may have started
// another). It returns how many it killed.
func killUnder(dir string) int {
	self := os.Getpid()
	killed := 0
	for round := 0; round < 5; round++ {
		found := 0
		procs, _ := os.ReadDir("/proc")
		for _, p := range procs {
			pid, err := strconv.Atoi(p.Name())
			if err != nil || pid == self {
				continue
			}
			base := "/proc/" + p.Name()
			root, _ := os.Readlink(base + "/root")
			root = strings.TrimSuffix(root, " (deleted)")
			if root != dir && !strings.HasPrefix(root, dir+"/") && !buildahOf(base, dir) {
				continue
			}
			if syscall.Kill(pid, syscall.SIGKILL) == nil {
				found++
			}
		}
		if found == 0 {
			break
		}
		killed += found
		time.Sleep(100 * time.Millisecond)
	}
	return killed
}
