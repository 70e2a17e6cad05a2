package test

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// busyboxLayer writes a layer tarball holding Debian's static busybox as
// /bin/busybox and /bin/sh, an /etc/passwd with root, and a marker file
// whose content makes each layer (and so each image) unique.
func busyboxLayer(t testing.TB, dir, marker string) string {
	t.Helper()
	bb, err := os.ReadFile(requireFile(t, "/bin/busybox", "busybox-static"))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	now := time.Unix(1700000000, 0)
	add := func(name string, mode int64, body []byte) {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: mode, Size: int64(len(body)), ModTime: now, Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(body); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"bin/", "etc/"} {
		if err := tw.WriteHeader(&tar.Header{Name: d, Mode: 0o755, ModTime: now, Typeflag: tar.TypeDir}); err != nil {
			t.Fatal(err)
		}
	}
	add("bin/busybox", 0o755, bb)
	if err := tw.WriteHeader(&tar.Header{Name: "bin/sh", Linkname: "/bin/busybox", ModTime: now, Typeflag: tar.TypeSymlink}); err != nil {
		t.Fatal(err)
	}
	add("etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/bin/sh\n"))
	add("etc/berth-marker", 0o644, []byte(marker+"\n"))
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, fmt.Sprintf("layer-%x.tar", sha256.Sum256([]byte(marker))))
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// smallLayer writes a tiny unique layer (no busybox), for tests that need many images.
func smallLayer(t testing.TB, dir, marker string) string {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	body := []byte(marker + "\n")
	if err := tw.WriteHeader(&tar.Header{Name: "marker", Mode: 0o644, Size: int64(len(body)), ModTime: time.Unix(1700000000, 0), Typeflag: tar.TypeReg}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write(body); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, fmt.Sprintf("small-%x.tar", sha256.Sum256([]byte(marker))))
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func requireFile(t testing.TB, path, pkg string) string {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		requireTool(t, "__missing__"+pkg) // reports in the same way as a missing tool
	}
	return path
}

// cranePush builds an image from a layer with crane append and pushes it.
func cranePush(t testing.TB, layer, ref string, extra ...string) string {
	t.Helper()
	crane := requireTool(t, "crane")
	args := append([]string{"append", "--insecure", "-f", layer, "-t", ref}, extra...)
	run(t, crane, args...)
	return strings.TrimSpace(run(t, crane, "digest", "--insecure", ref))
}

// pushManifestList pushes a Docker manifest list (what library/alpine on
// Docker Hub is) of the given per-architecture images to ref, with
// go-containerregistry, and returns its digest.
func pushManifestList(t testing.TB, r *registryEnv, ref string, arch map[string]string) string {
	t.Helper()
	opts := []remote.Option{remote.WithAuth(&authn.Basic{Username: "admin", Password: "admin-e2e-password"})}
	var adds []mutate.IndexAddendum
	for _, a := range []string{"amd64", "arm64"} {
		src, ok := arch[a]
		if !ok {
			continue
		}
		sref, err := name.ParseReference(src, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		img, err := remote.Image(sref, opts...)
		if err != nil {
			t.Fatalf("fetch %s: %v", src, err)
		}
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: a}}})
	}
	idx := mutate.IndexMediaType(mutate.AppendManifests(empty.Index, adds...), types.DockerManifestList)
	dref, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(dref, idx, opts...); err != nil {
		t.Fatalf("push manifest list %s: %v", ref, err)
	}
	d, err := idx.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}
