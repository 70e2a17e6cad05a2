// Package storagetest is the conformance suite every storage.Driver must
// pass. A driver's test is one call:
//
//	func TestDriver(t *testing.T) {
//		storagetest.Run(t, func(t *testing.T) storage.Driver {
//			d, err := fs.New(t.TempDir())
//			if err != nil {
//				t.Fatal(err)
//			}
//			return d
//		})
//	}
package storagetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/core/storage"
)

// Run runs every conformance test as a subtest of t. newDriver is called once
// per subtest and must return an empty driver that no other subtest uses;
// it should register its own cleanup with t.
func Run(t *testing.T, newDriver func(t *testing.T) storage.Driver) {
	tests := []struct {
		name string
		run  func(t *testing.T, d storage.Driver)
	}{
		// Blobs.
		{"PutStatOpen", testPutStatOpen},
		{"PutLargeStreamed", testPutLargeStreamed},
		{"SHA512", testSHA512},
		{"DigestMismatch", testDigestMismatch},
		{"SizeMismatch", testSizeMismatch},
		{"InvalidDigest", testInvalidDigest},
		{"OpenSeek", testOpenSeek},
		{"Delete", testDelete},
		{"IdempotentPut", testIdempotentPut},
		{"ConcurrentPut", testConcurrentPut},
		{"Walk", testWalk},
		{"PutContextCanceled", testPutContextCanceled},
		{"PutReaderError", testPutReaderError},
		// Upload sessions.
		{"UploadChunks", testUploadChunks},
		{"UploadResume", testUploadResume},
		{"UploadLargeResumed", testUploadLargeResumed},
		{"UploadEmpty", testUploadEmpty},
		{"UploadCommitMismatch", testUploadCommitMismatch},
		{"UploadCommitCanceled", testUploadCommitCanceled},
		{"UploadCommitExisting", testUploadCommitExisting},
		{"UploadCancel", testUploadCancel},
		{"UploadExists", testUploadExists},
		{"ResumeMissingUpload", testResumeMissingUpload},
		{"ListUploads", testListUploads},
		{"DeleteUpload", testDeleteUpload},
		{"UploadIDs", testUploadIDs},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := newDriver(t)
			if d == nil {
				t.Fatal("newDriver returned nil")
			}
			tc.run(t, d)
		})
	}
}

// Sizes used by the tests.
const (
	kib = 1 << 10
	mib = 1 << 20

	// largeSize is big enough that a driver holding blobs in memory, or
	// mishandling buffer boundaries, shows it.
	largeSize = 20 * mib
)

// stream returns n deterministic pseudo-random bytes derived from seed,
// generated on the fly.
func stream(seed uint64, n int64) io.Reader {
	var s [32]byte
	binary.LittleEndian.PutUint64(s[:], seed)
	return io.LimitReader(mrand.NewChaCha8(s), n)
}

// blob returns n bytes of stream(seed, n) in memory; for small blobs only.
func blob(t *testing.T, seed uint64, n int64) []byte {
	t.Helper()
	b, err := io.ReadAll(stream(seed, n))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// streamDigest returns the digest of stream(seed, n) with algorithm alg.
func streamDigest(t *testing.T, alg digest.Algorithm, seed uint64, n int64) digest.Digest {
	t.Helper()
	d, err := alg.FromReader(stream(seed, n))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// newID returns a random upload id in UUID form.
func newID(t *testing.T) string {
	t.Helper()
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// wantErr fails unless err matches target.
func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: got error %v, want %v", what, err, target)
	}
}

// noErr fails if err is not nil.
func noErr(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// put stores b and checks the Info returned.
func put(t *testing.T, d storage.Driver, dg digest.Digest, b []byte) storage.Info {
	t.Helper()
	inf, err := d.Put(t.Context(), dg, int64(len(b)), bytes.NewReader(b))
	noErr(t, "Put", err)
	checkInfo(t, "Put", inf, dg, int64(len(b)))
	return inf
}

// checkInfo checks digest and size of inf and that its ModTime is plausible.
func checkInfo(t *testing.T, what string, inf storage.Info, dg digest.Digest, size int64) {
	t.Helper()
	if inf.Digest != dg {
		t.Errorf("%s: Info.Digest = %s, want %s", what, inf.Digest, dg)
	}
	if inf.Size != size {
		t.Errorf("%s: Info.Size = %d, want %d", what, inf.Size, size)
	}
	// Generous bounds: storage clocks may be coarse or slightly skewed, but a
	// zero or garbage time is a bug.
	if now := time.Now(); inf.ModTime.Before(now.Add(-time.Hour)) || inf.ModTime.After(now.Add(time.Minute)) {
		t.Errorf("%s: Info.ModTime = %v, want about %v", what, inf.ModTime, now)
	}
}

// checkContent opens dg and checks that it holds exactly the bytes of want.
func checkContent(t *testing.T, d storage.Driver, dg digest.Digest, want io.Reader, size int64) {
	t.Helper()
	rc, inf, err := d.Open(t.Context(), dg)
	noErr(t, "Open", err)
	defer rc.Close()
	checkInfo(t, "Open", inf, dg, size)
	sameContent(t, rc, want)
}

// sameContent compares two streams chunk by chunk, without holding either
// in memory, and reports the first difference.
func sameContent(t *testing.T, got, want io.Reader) {
	t.Helper()
	bg, bw := make([]byte, 64*kib), make([]byte, 64*kib)
	var off int64
	for {
		nw, errw := io.ReadFull(want, bw)
		ng, errg := io.ReadFull(got, bg[:nw])
		if errg != nil && errg != io.EOF && errg != io.ErrUnexpectedEOF {
			t.Fatalf("reading content at offset %d: %v", off, errg)
		}
		if ng < nw {
			t.Fatalf("content ends at offset %d, want %d more bytes", off+int64(ng), nw-ng)
		}
		if i := firstDiff(bg[:ng], bw[:nw]); i >= 0 {
			t.Fatalf("content differs at offset %d: got %#x, want %#x", off+int64(i), bg[i], bw[i])
		}
		off += int64(nw)
		if errw == io.EOF || errw == io.ErrUnexpectedEOF {
			break
		}
		if errw != nil {
			t.Fatal(errw)
		}
	}
	if n, _ := io.Copy(io.Discard, got); n > 0 {
		t.Fatalf("content has %d extra bytes after offset %d", n, off)
	}
}

func firstDiff(a, b []byte) int {
	for i := range a {
		if a[i] != b[i] {
			return i
		}
	}
	return -1
}

// notStored checks that dg is absent from Stat, Open and Walk.
func notStored(t *testing.T, d storage.Driver, dg digest.Digest) {
	t.Helper()
	_, err := d.Stat(t.Context(), dg)
	wantErr(t, "Stat of "+string(dg), err, storage.ErrNotFound)
	rc, _, err := d.Open(t.Context(), dg)
	if rc != nil {
		rc.Close()
	}
	wantErr(t, "Open of "+string(dg), err, storage.ErrNotFound)
	for got := range walk(t, d) {
		if got == dg {
			t.Fatalf("Walk lists %s, which should not be stored", dg)
		}
	}
}

// walk returns the digests and sizes Walk reports, failing on duplicates.
func walk(t *testing.T, d storage.Driver) map[digest.Digest]int64 {
	t.Helper()
	got := map[digest.Digest]int64{}
	err := d.Walk(t.Context(), func(inf storage.Info) error {
		if _, dup := got[inf.Digest]; dup {
			return fmt.Errorf("Walk reports %s twice", inf.Digest)
		}
		got[inf.Digest] = inf.Size
		return nil
	})
	noErr(t, "Walk", err)
	return got
}

// wantBlobs checks that Walk reports exactly the blobs of want.
func wantBlobs(t *testing.T, d storage.Driver, want map[digest.Digest]int64) {
	t.Helper()
	got := walk(t, d)
	for dg, size := range want {
		gs, ok := got[dg]
		switch {
		case !ok:
			t.Errorf("Walk misses %s", dg)
		case gs != size:
			t.Errorf("Walk reports %s with size %d, want %d", dg, gs, size)
		}
	}
	for dg := range got {
		if _, ok := want[dg]; !ok {
			t.Errorf("Walk reports unexpected blob %s", dg)
		}
	}
}

// uploads returns the sessions ListUploads reports.
func uploads(t *testing.T, d storage.Driver) map[string]uploadEntry {
	t.Helper()
	got := map[string]uploadEntry{}
	err := d.ListUploads(t.Context(), func(id string, started time.Time, size int64) error {
		if _, dup := got[id]; dup {
			return fmt.Errorf("ListUploads reports %s twice", id)
		}
		got[id] = uploadEntry{started, size}
		return nil
	})
	noErr(t, "ListUploads", err)
	return got
}

type uploadEntry struct {
	started time.Time
	size    int64
}

// failingReader returns its bytes, then err.
type failingReader struct {
	r   io.Reader
	err error
}

func (f *failingReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err == io.EOF {
		return n, f.err
	}
	return n, err
}

// cancelingReader produces data endlessly and cancels its context once after
// after bytes, as a client that goes away in the middle of a push.
type cancelingReader struct {
	r      io.Reader
	read   int64
	after  int64
	cancel context.CancelFunc
}

func (c *cancelingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.read += int64(n)
	if c.read >= c.after {
		c.cancel()
	}
	return n, err
}
