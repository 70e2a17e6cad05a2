package fs_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	iofs "io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/core/storage"
	"github.com/berth-dev/berth/core/storage/fs"
	"github.com/berth-dev/berth/core/storage/storagetest"
)

func TestDriver(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Driver {
		return newDriver(t, t.TempDir())
	})
}

func newDriver(t *testing.T, root string) *fs.Driver {
	t.Helper()
	d, err := fs.New(root)
	if err != nil {
		t.Fatalf("New(%q): %v", root, err)
	}
	return d
}

func blobPath(root string, dg digest.Digest) string {
	return filepath.Join(root, "blobs", dg.Algorithm().String(), dg.Encoded()[:2], dg.Encoded())
}

// files returns the regular files under dir, relative to it.
func files(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(path string, e iofs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !e.IsDir() {
			rel, _ := filepath.Rel(dir, path)
			out = append(out, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestNew(t *testing.T) {
	root := filepath.Join(t.TempDir(), "a", "b")
	newDriver(t, root)
	for _, dir := range []string{"blobs/sha256", "blobs/sha512", "uploads", "tmp"} {
		if fi, err := os.Stat(filepath.Join(root, dir)); err != nil || !fi.IsDir() {
			t.Errorf("New did not create %s: %v", dir, err)
		}
	}
	// A second driver on the same root is fine.
	newDriver(t, root)

	if _, err := fs.New(""); err == nil {
		t.Error(`New("") succeeded`)
	}
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := fs.New(file); err == nil {
		t.Error("New on a regular file succeeded")
	}
}

func TestOpenReturnsFile(t *testing.T) {
	d := newDriver(t, t.TempDir())
	data := []byte("served with sendfile")
	dg := digest.SHA256.FromBytes(data)
	if _, err := d.Put(t.Context(), dg, int64(len(data)), bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	rc, _, err := d.Open(t.Context(), dg)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if _, ok := rc.(*os.File); !ok {
		t.Fatalf("Open returned %T, want *os.File", rc)
	}
}

func TestLayout(t *testing.T) {
	root := t.TempDir()
	d := newDriver(t, root)
	data := []byte("layout")
	for _, dg := range []digest.Digest{digest.SHA256.FromBytes(data), digest.SHA512.FromBytes(data)} {
		if _, err := d.Put(t.Context(), dg, -1, bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(blobPath(root, dg))
		if err != nil {
			t.Fatalf("blob %s not at its path: %v", dg, err)
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("blob file holds %q, want %q", got, data)
		}
	}

	up, err := d.NewUpload(t.Context(), "session-1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := up.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := up.Close(); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(root, "uploads", "session-1", "data"))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("upload data file holds %q (%v), want %q", got, err, data)
	}
	if _, err := os.Stat(filepath.Join(root, "uploads", "session-1", "startedat")); err != nil {
		t.Fatalf("no startedat file: %v", err)
	}
}

// TestRenamedAtomically checks that a blob appears only once complete, by a
// rename of the very file that was written, for Put and for Commit.
func TestRenamedAtomically(t *testing.T) {
	root := t.TempDir()
	d := newDriver(t, root)
	data := bytes.Repeat([]byte("0123456789abcdef"), 64<<10) // 1 MiB
	dg := digest.SHA256.FromBytes(data)

	pr, pw := io.Pipe()
	type result struct {
		inf storage.Info
		err error
	}
	done := make(chan result, 1)
	go func() {
		inf, err := d.Put(context.Background(), dg, int64(len(data)), pr)
		pr.CloseWithError(err)
		done <- result{inf, err}
	}()
	// A pipe write returns once the reader took the bytes: Put is now in the
	// middle of its copy.
	if _, err := pw.Write(data[:len(data)/2]); err != nil {
		t.Fatal(err)
	}
	tmps := files(t, filepath.Join(root, "tmp"))
	if len(tmps) != 1 {
		t.Fatalf("files in tmp during Put: %v, want one", tmps)
	}
	during, err := os.Stat(filepath.Join(root, "tmp", tmps[0]))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(blobPath(root, dg)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("blob visible before its content is complete (stat: %v)", err)
	}
	if _, err := pw.Write(data[len(data)/2:]); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	if r := <-done; r.err != nil {
		t.Fatalf("Put: %v", r.err)
	}
	after, err := os.Stat(blobPath(root, dg))
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(during, after) {
		t.Error("the blob is not the temporary file renamed")
	}
	if left := files(t, filepath.Join(root, "tmp")); len(left) != 0 {
		t.Errorf("files left in tmp: %v", left)
	}

	// Commit renames the session's data file.
	other := append([]byte("upload "), data...)
	odg := digest.SHA256.FromBytes(other)
	up, err := d.NewUpload(t.Context(), "atomic")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := up.Write(other); err != nil {
		t.Fatal(err)
	}
	before, err := os.Stat(filepath.Join(root, "uploads", "atomic", "data"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := up.Commit(t.Context(), odg); err != nil {
		t.Fatal(err)
	}
	after, err = os.Stat(blobPath(root, odg))
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(before, after) {
		t.Error("the committed blob is not the session's data file renamed")
	}
	if _, err := os.Stat(filepath.Join(root, "uploads", "atomic")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("session directory left after Commit (stat: %v)", err)
	}
}

// TestNoTempFilesLeft checks that failed writes leave no file behind.
func TestNoTempFilesLeft(t *testing.T) {
	root := t.TempDir()
	d := newDriver(t, root)
	data := bytes.Repeat([]byte{7}, 300<<10)
	dg := digest.SHA256.FromBytes(data)
	n := int64(len(data))
	canceled, cancel := context.WithCancel(t.Context())
	cancel()
	boom := errors.New("boom")

	cases := []struct {
		name string
		ctx  context.Context
		dg   digest.Digest
		size int64
		r    io.Reader
		want error
	}{
		{"digest mismatch", t.Context(), digest.SHA256.FromString("other"), n, bytes.NewReader(data), storage.ErrDigestMismatch},
		{"size too small", t.Context(), dg, n - 1, bytes.NewReader(data), storage.ErrSizeMismatch},
		{"size too large", t.Context(), dg, n + 1, bytes.NewReader(data), storage.ErrSizeMismatch},
		{"reader error", t.Context(), dg, -1, io.MultiReader(bytes.NewReader(data[:1000]), iotest.ErrReader(boom)), boom},
		{"canceled", canceled, dg, n, bytes.NewReader(data), context.Canceled},
		{"invalid digest", t.Context(), "sha256:../../x", n, bytes.NewReader(data), storage.ErrInvalidDigest},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := d.Put(tc.ctx, tc.dg, tc.size, tc.r)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Put: got %v, want %v", err, tc.want)
			}
			for _, dir := range []string{"tmp", "blobs"} {
				if left := files(t, filepath.Join(root, dir)); len(left) != 0 {
					t.Fatalf("files left in %s: %v", dir, left)
				}
			}
		})
	}

	// A failed Commit leaves only the session's own files.
	up, err := d.NewUpload(t.Context(), "failing")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := up.Write(data); err != nil {
		t.Fatal(err)
	}
	if _, err := up.Commit(t.Context(), digest.SHA512.FromString("other")); !errors.Is(err, storage.ErrDigestMismatch) {
		t.Fatalf("Commit: got %v, want ErrDigestMismatch", err)
	}
	if err := up.Close(); err != nil {
		t.Fatal(err)
	}
	got := strings.Join(files(t, root), " ")
	want := strings.Join([]string{
		filepath.Join("uploads", "failing", "data"),
		filepath.Join("uploads", "failing", "hashstate"),
		filepath.Join("uploads", "failing", "startedat"),
	}, " ")
	if got != want {
		t.Fatalf("files under root after failed Commit: %s, want %s", got, want)
	}
	if err := d.DeleteUpload(t.Context(), "failing"); err != nil {
		t.Fatal(err)
	}
	if left := files(t, root); len(left) != 0 {
		t.Fatalf("files left after DeleteUpload: %v", left)
	}
}

// TestRestart checks that an upload survives a restart (a new driver on the
// same root), whatever state the crash left its files in.
func TestRestart(t *testing.T) {
	first, second := bytes.Repeat([]byte("a"), 100<<10), bytes.Repeat([]byte("b"), 50<<10)
	cases := []struct {
		name string
		// damage changes the session directory after the first part was
		// written and closed; it returns the data now on disk.
		damage func(t *testing.T, dir string) []byte
	}{
		{"clean", func(t *testing.T, dir string) []byte { return first }},
		{"hash state missing", func(t *testing.T, dir string) []byte {
			remove(t, filepath.Join(dir, "hashstate"))
			return first
		}},
		{"hash state corrupt", func(t *testing.T, dir string) []byte {
			writeFile(t, filepath.Join(dir, "hashstate"), []byte("garbage that is not a hash state"))
			return first
		}},
		{"data written after the last Close", func(t *testing.T, dir string) []byte {
			appendFile(t, filepath.Join(dir, "data"), []byte("tail"))
			return append(bytes.Clone(first), "tail"...)
		}},
		{"data lost after the last Close", func(t *testing.T, dir string) []byte {
			if err := os.Truncate(filepath.Join(dir, "data"), 1000); err != nil {
				t.Fatal(err)
			}
			return first[:1000]
		}},
		{"start time missing", func(t *testing.T, dir string) []byte {
			remove(t, filepath.Join(dir, "startedat"))
			return first
		}},
	}
	for _, tc := range cases {
		for _, alg := range []digest.Algorithm{digest.SHA256, digest.SHA512} {
			t.Run(tc.name+"/"+alg.String(), func(t *testing.T) {
				root := t.TempDir()
				const id = "0b6e1f7c-59a2-4b1c-9d43-2f6f0f6c1a11"
				up, err := newDriver(t, root).NewUpload(t.Context(), id)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := up.Write(first); err != nil {
					t.Fatal(err)
				}
				if err := up.Close(); err != nil {
					t.Fatal(err)
				}
				onDisk := tc.damage(t, filepath.Join(root, "uploads", id))

				d := newDriver(t, root) // the restart
				listed := false
				err = d.ListUploads(t.Context(), func(got string, started time.Time, size int64) error {
					listed = got == id && size == int64(len(onDisk)) && !started.IsZero()
					return nil
				})
				if err != nil || !listed {
					t.Fatalf("ListUploads after restart does not report the session with size %d (err %v)", len(onDisk), err)
				}
				up, err = d.ResumeUpload(t.Context(), id)
				if err != nil {
					t.Fatal(err)
				}
				defer up.Close()
				if up.Size() != int64(len(onDisk)) {
					t.Fatalf("Size after restart = %d, want %d", up.Size(), len(onDisk))
				}
				if _, err := up.ReadFrom(bytes.NewReader(second)); err != nil {
					t.Fatal(err)
				}
				want := append(bytes.Clone(onDisk), second...)
				if _, err := up.Commit(t.Context(), alg.FromBytes(append(bytes.Clone(want), 'x'))); !errors.Is(err, storage.ErrDigestMismatch) {
					t.Fatalf("Commit with a wrong digest: got %v, want ErrDigestMismatch", err)
				}
				dg := alg.FromBytes(want)
				if _, err := up.Commit(t.Context(), dg); err != nil {
					t.Fatalf("Commit: %v", err)
				}
				got, err := os.ReadFile(blobPath(root, dg))
				if err != nil || !bytes.Equal(got, want) {
					t.Fatalf("committed blob differs from the uploaded data (%v)", err)
				}
			})
		}
	}
}

// TestCommitUsesRunningHash checks that committing a sha256 digest does not
// read the data back, neither in the same process nor after a restart with
// a saved hash state. It changes the data behind the driver's back, which
// only a Commit that re-reads it would notice.
func TestCommitUsesRunningHash(t *testing.T) {
	data := bytes.Repeat([]byte("layer"), 10000)
	dg := digest.SHA256.FromBytes(data)
	for _, restart := range []bool{false, true} {
		root := t.TempDir()
		d := newDriver(t, root)
		up, err := d.NewUpload(t.Context(), "running")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := up.Write(data); err != nil {
			t.Fatal(err)
		}
		if restart {
			if err := up.Close(); err != nil {
				t.Fatal(err)
			}
			d = newDriver(t, root)
			if up, err = d.ResumeUpload(t.Context(), "running"); err != nil {
				t.Fatal(err)
			}
		}
		tamper(t, filepath.Join(root, "uploads", "running", "data"))
		if _, err := up.Commit(t.Context(), dg); err != nil {
			t.Fatalf("restart=%v: Commit read the data back instead of using the running hash: %v", restart, err)
		}
	}

	// A sha512 digest is verified against the data on disk.
	root := t.TempDir()
	d := newDriver(t, root)
	up, err := d.NewUpload(t.Context(), "sha512")
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	if _, err := up.Write(data); err != nil {
		t.Fatal(err)
	}
	tamper(t, filepath.Join(root, "uploads", "sha512", "data"))
	if _, err := up.Commit(t.Context(), digest.SHA512.FromBytes(data)); !errors.Is(err, storage.ErrDigestMismatch) {
		t.Fatalf("sha512 Commit of tampered data: got %v, want ErrDigestMismatch", err)
	}
}

// TestCommitChecksLength checks that a Commit never trusts its running hash
// when the data file grew behind its back (a misuse: two handles writing the
// same session), which would store content under the wrong digest.
func TestCommitChecksLength(t *testing.T) {
	root := t.TempDir()
	d := newDriver(t, root)
	a, err := d.NewUpload(t.Context(), "shared")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := d.ResumeUpload(t.Context(), "shared")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := a.Write([]byte("aaa")); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Write([]byte("bbb")); err != nil {
		t.Fatal(err)
	}
	short := digest.SHA256.FromString("aaa")
	if _, err := a.Commit(t.Context(), short); !errors.Is(err, storage.ErrDigestMismatch) {
		t.Fatalf("Commit of the first handle's bytes only: got %v, want ErrDigestMismatch", err)
	}
	if _, err := os.Stat(blobPath(root, short)); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("content stored under a digest it does not hash to")
	}
	if _, err := a.Commit(t.Context(), digest.SHA256.FromString("aaabbb")); err != nil {
		t.Fatalf("Commit of all the data: %v", err)
	}
}

// tamper overwrites the first byte of a file in place.
func tamper(t *testing.T, path string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt([]byte{0}, 0); err != nil {
		t.Fatal(err)
	}
}

// TestStrayFiles checks that Walk and ListUploads report only what belongs
// to the layout.
func TestStrayFiles(t *testing.T) {
	root := t.TempDir()
	d := newDriver(t, root)
	data := []byte("real blob")
	dg := digest.SHA256.FromBytes(data)
	if _, err := d.Put(t.Context(), dg, -1, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	up, err := d.NewUpload(t.Context(), "real")
	if err != nil {
		t.Fatal(err)
	}
	if err := up.Close(); err != nil {
		t.Fatal(err)
	}
	hex := strings.Repeat("ab", 32)
	for _, path := range []string{
		"blobs/sha256/" + hex[:2] + "/not-a-digest",
		"blobs/sha256/cd/" + hex, // wrong prefix directory
		"blobs/sha256/" + hex,    // not in a prefix directory
		"blobs/md5/" + hex[:2] + "/" + hex,
		"blobs/sha512/ab/" + hex, // too short for sha512
		"uploads/stray-file",
		"uploads/.hidden/data",
	} {
		p := filepath.Join(root, filepath.FromSlash(path))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, p, []byte("stray"))
	}

	var blobs []digest.Digest
	if err := d.Walk(t.Context(), func(inf storage.Info) error {
		blobs = append(blobs, inf.Digest)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(blobs) != 1 || blobs[0] != dg {
		t.Errorf("Walk reports %v, want only %s", blobs, dg)
	}
	var ids []string
	if err := d.ListUploads(t.Context(), func(id string, _ time.Time, _ int64) error {
		ids = append(ids, id)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(ids) != 1 || ids[0] != "real" {
		t.Errorf("ListUploads reports %v, want only real", ids)
	}
}

// TestUploadIDsStayInside checks that traversal ids touch nothing outside
// the uploads directory.
func TestUploadIDsStayInside(t *testing.T) {
	parent := t.TempDir()
	root := filepath.Join(parent, "root")
	d := newDriver(t, root)
	victim := filepath.Join(parent, "victim")
	writeFile(t, filepath.Join(victim, "data"), []byte("keep me"))
	for _, id := range []string{"../../victim", "../uploads", "..", "."} {
		if err := d.DeleteUpload(t.Context(), id); !errors.Is(err, storage.ErrUploadNotFound) {
			t.Errorf("DeleteUpload(%q): got %v, want ErrUploadNotFound", id, err)
		}
		if _, err := d.ResumeUpload(t.Context(), id); !errors.Is(err, storage.ErrUploadNotFound) {
			t.Errorf("ResumeUpload(%q): got %v, want ErrUploadNotFound", id, err)
		}
	}
	if _, err := d.NewUpload(t.Context(), "../escape"); !errors.Is(err, storage.ErrUploadNotFound) {
		t.Errorf("NewUpload(../escape): got %v, want ErrUploadNotFound", err)
	}
	if _, err := os.Stat(filepath.Join(root, "escape")); !errors.Is(err, os.ErrNotExist) {
		t.Error("NewUpload(../escape) created a directory")
	}
	if _, err := os.Stat(filepath.Join(victim, "data")); err != nil {
		t.Errorf("a traversal id removed a file outside the root: %v", err)
	}
	for _, dir := range []string{"uploads", "blobs"} {
		if _, err := os.Stat(filepath.Join(root, dir)); err != nil {
			t.Errorf("a traversal id removed %s: %v", dir, err)
		}
	}
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func appendFile(t *testing.T, path string, data []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
}

func remove(t *testing.T, path string) {
	t.Helper()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
}
