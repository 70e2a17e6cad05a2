//go:build unix

package fs_test

import (
	"bytes"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/opencontainers/go-digest"
)

// TestPermissions checks the modes of what the driver creates, under a
// restrictive umask that it must override. It changes the process umask, so
// it must not run in parallel with other tests.
func TestPermissions(t *testing.T) {
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)

	root := filepath.Join(t.TempDir(), "root")
	d := newDriver(t, root)
	data := []byte("modes")
	fromPut := digest.SHA256.FromBytes(data)
	if _, err := d.Put(t.Context(), fromPut, -1, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	up, err := d.NewUpload(t.Context(), "modes")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := up.Write([]byte("committed")); err != nil {
		t.Fatal(err)
	}
	if err := up.Close(); err != nil {
		t.Fatal(err)
	}
	check := func(path string, want os.FileMode) {
		t.Helper()
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s has mode %v, want %v", path, got, want)
		}
	}
	for _, dir := range []string{"blobs", "blobs/sha256", "blobs/sha512", "uploads", "tmp", "uploads/modes", filepath.Dir(blobPath(".", fromPut))} {
		check(filepath.Join(root, dir), 0o755)
	}
	check(blobPath(root, fromPut), 0o644)
	check(filepath.Join(root, "uploads", "modes", "data"), 0o644)
	check(filepath.Join(root, "uploads", "modes", "startedat"), 0o644)

	up, err = d.ResumeUpload(t.Context(), "modes")
	if err != nil {
		t.Fatal(err)
	}
	fromCommit := digest.SHA512.FromString("committed")
	if _, err := up.Commit(t.Context(), fromCommit); err != nil {
		t.Fatal(err)
	}
	check(filepath.Dir(blobPath(root, fromCommit)), 0o755)
	check(blobPath(root, fromCommit), 0o644)
}
