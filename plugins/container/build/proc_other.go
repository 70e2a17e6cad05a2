//go:build !linux

package build

import (
	"errors"
	"syscall"
)

// errNotLinux: buildah builds (and process groups, waitid) need Linux.
var errNotLinux = errors.New("builds need Linux")

func groupAttr() *syscall.SysProcAttr { return nil }

func signalGroup(pid int, sig syscall.Signal) error { return errNotLinux }

func waitExited(pid int) error { return errNotLinux }

func unmountUnder(dir string) error { return nil }
