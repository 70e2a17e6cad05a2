// Package testimage makes the small container images the build tests use as
// their base, offline.
package testimage

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"runtime"
	"slices"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// BusyboxPath is where Debian's busybox-static puts the static busybox.
const BusyboxPath = "/bin/busybox"

// Busybox is a base image FROM scratch for this machine's architecture:
// the static busybox with a shell and common applets in /bin, the given
// executables (path → content, such as package manager stand-ins), and an
// /etc/passwd with root and app (1000). It runs as user 1000 with
// PATH=/usr/bin:/bin. Its layer is the same for the same executables.
func Busybox(t testing.TB, executables map[string]string) v1.Image {
	t.Helper()
	bb, err := os.ReadFile(BusyboxPath)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mod := time.Unix(1700000000, 0)
	add := func(hdr *tar.Header, body string) {
		hdr.Size, hdr.ModTime = int64(len(body)), mod
		if hdr.Typeflag == 0 {
			hdr.Typeflag = tar.TypeReg
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(tw, body); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"bin", "etc", "usr", "usr/bin", "root", "home", "home/app", "var", "var/lib"} {
		add(&tar.Header{Name: d + "/", Typeflag: tar.TypeDir, Mode: 0o755}, "")
	}
	add(&tar.Header{Name: "tmp/", Typeflag: tar.TypeDir, Mode: 0o1777}, "")
	add(&tar.Header{Name: "bin/busybox", Mode: 0o755}, string(bb))
	for _, applet := range []string{"sh", "rm", "sleep", "cat", "id", "echo", "ls", "touch"} {
		add(&tar.Header{Name: "bin/" + applet, Typeflag: tar.TypeSymlink, Linkname: "busybox", Mode: 0o777}, "")
	}
	paths := make([]string, 0, len(executables))
	for p := range executables {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	for _, p := range paths {
		add(&tar.Header{Name: p, Mode: 0o755}, executables[p])
	}
	add(&tar.Header{Name: "etc/passwd", Mode: 0o644}, "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n")
	add(&tar.Header{Name: "etc/group", Mode: 0o644}, "root:x:0:\napp:x:1000:\n")
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf.Bytes())), nil })
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture = "linux", runtime.GOARCH
	cfg.Config.User = "1000"
	cfg.Config.Env = []string{"PATH=/usr/bin:/bin"}
	if img, err = mutate.ConfigFile(img, cfg); err != nil {
		t.Fatal(err)
	}
	return img
}
