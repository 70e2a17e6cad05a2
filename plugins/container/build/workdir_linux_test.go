package build

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestRemoveAllDetachesMounts: a bind mount left under a work directory is
// detached, not emptied.
func TestRemoveAllDetachesMounts(t *testing.T) {
	outside := t.TempDir()
	precious := filepath.Join(outside, "precious")
	os.WriteFile(precious, []byte("keep me"), 0o644)
	dir := filepath.Join(t.TempDir(), "w")
	mnt := filepath.Join(dir, "storage", "mnt point")
	os.MkdirAll(mnt, 0o755)
	if err := syscall.Mount(outside, mnt, "", syscall.MS_BIND, ""); err != nil {
		t.Skipf("cannot bind-mount here (%v)", err)
	}
	t.Cleanup(func() { syscall.Unmount(mnt, syscall.MNT_DETACH) })
	points, err := mountsUnder(dir)
	if err != nil || len(points) != 1 || points[0] != mnt {
		t.Fatalf("mountsUnder() = %q, %v; want [%s]", points, err, mnt)
	}
	if err := removeAll(dir); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(precious); err != nil || string(b) != "keep me" {
		t.Fatalf("the mounted directory was emptied: %q, %v", b, err)
	}
	if _, err := os.Lstat(dir); !os.IsNotExist(err) {
		t.Errorf("work dir still there: %v", err)
	}
}

func TestUnescapeMountPath(t *testing.T) {
	for in, want := range map[string]string{
		`/a\040b`: "/a b", `/tab\011x`: "/tab\tx", `/back\134slash`: `/back\slash`, `/plain`: "/plain", `/end\04`: `/end\04`,
	} {
		if got := unescapeMountPath(in); got != want {
			t.Errorf("unescapeMountPath(%q) = %q, want %q", in, got, want)
		}
	}
}
