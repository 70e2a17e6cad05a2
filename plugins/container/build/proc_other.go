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

func processStart(pid int) (string, error) { return "", errNotLinux }

func killUnder(dir string) int { return 0 }
