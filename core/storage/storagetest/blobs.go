package storagetest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/core/storage"
)

func testPutStatOpen(t *testing.T, d storage.Driver) {
	cases := []struct {
		name      string
		data      []byte
		knownSize bool
	}{
		{"empty", []byte{}, true},
		{"one byte", []byte{0}, true},
		{"text", []byte("hello, berth\n"), true},
		{"text unknown size", []byte("size not announced"), false},
		{"100KiB", blob(t, 1, 100*kib), true},
		{"100KiB unknown size", blob(t, 2, 100*kib), false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dg := digest.SHA256.FromBytes(tc.data)
			size := int64(len(tc.data))
			if !tc.knownSize {
				size = -1
			}
			inf, err := d.Put(t.Context(), dg, size, bytes.NewReader(tc.data))
			noErr(t, "Put", err)
			checkInfo(t, "Put", inf, dg, int64(len(tc.data)))

			inf, err = d.Stat(t.Context(), dg)
			noErr(t, "Stat", err)
			checkInfo(t, "Stat", inf, dg, int64(len(tc.data)))

			rc, inf, err := d.Open(t.Context(), dg)
			noErr(t, "Open", err)
			defer rc.Close()
			checkInfo(t, "Open", inf, dg, int64(len(tc.data)))
			got, err := io.ReadAll(rc)
			noErr(t, "read", err)
			if !bytes.Equal(got, tc.data) {
				t.Fatalf("content = %q, want %q", trim(got), trim(tc.data))
			}
		})
	}
}

func testPutLargeStreamed(t *testing.T, d storage.Driver) {
	for _, size := range []int64{largeSize, -1} {
		seed := uint64(10 - size) // a different blob for each case
		dg := streamDigest(t, digest.SHA256, seed, largeSize)
		inf, err := d.Put(t.Context(), dg, size, stream(seed, largeSize))
		noErr(t, "Put", err)
		checkInfo(t, "Put", inf, dg, largeSize)
		checkContent(t, d, dg, stream(seed, largeSize), largeSize)
	}
}

func testSHA512(t *testing.T, d storage.Driver) {
	data := blob(t, 3, 3*kib)
	d512 := digest.SHA512.FromBytes(data)
	d256 := digest.SHA256.FromBytes(data)
	put(t, d, d512, data)
	inf, err := d.Stat(t.Context(), d512)
	noErr(t, "Stat", err)
	checkInfo(t, "Stat", inf, d512, int64(len(data)))
	checkContent(t, d, d512, bytes.NewReader(data), int64(len(data)))
	notStored(t, d, d256)

	// The same content under both algorithms is two independent blobs.
	put(t, d, d256, data)
	noErr(t, "Delete sha256", d.Delete(t.Context(), d256))
	checkContent(t, d, d512, bytes.NewReader(data), int64(len(data)))

	// A large sha512 blob of unknown size.
	dl := streamDigest(t, digest.SHA512, 4, 5*mib)
	_, err = d.Put(t.Context(), dl, -1, stream(4, 5*mib))
	noErr(t, "Put large sha512", err)
	checkContent(t, d, dl, stream(4, 5*mib), 5*mib)
}

func testDigestMismatch(t *testing.T, d storage.Driver) {
	data := []byte("the content the client sent")
	other := []byte("the content the client claimed")
	cases := []struct {
		name string
		dg   digest.Digest
		size int64
	}{
		{"sha256", digest.SHA256.FromBytes(other), int64(len(data))},
		{"sha256 unknown size", digest.SHA256.FromBytes(other), -1},
		{"sha512", digest.SHA512.FromBytes(other), int64(len(data))},
		{"empty digest for content", digest.SHA256.FromBytes(nil), -1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := d.Put(t.Context(), tc.dg, tc.size, bytes.NewReader(data))
			wantErr(t, "Put", err, storage.ErrDigestMismatch)
			notStored(t, d, tc.dg)
		})
	}
	// A large body: the mismatch is only known at the end.
	dg := streamDigest(t, digest.SHA256, 5, largeSize)
	_, err := d.Put(t.Context(), dg, largeSize, stream(6, largeSize))
	wantErr(t, "Put large", err, storage.ErrDigestMismatch)
	notStored(t, d, dg)
	wantBlobs(t, d, nil)
}

func testSizeMismatch(t *testing.T, d storage.Driver) {
	data := blob(t, 7, 10*kib)
	dg := digest.SHA256.FromBytes(data)
	n := int64(len(data))
	for _, size := range []int64{0, 1, n - 1, n + 1, 2 * n} {
		_, err := d.Put(t.Context(), dg, size, bytes.NewReader(data))
		wantErr(t, "Put with announced size "+itoa(size), err, storage.ErrSizeMismatch)
		notStored(t, d, dg)
	}
	// A body longer than announced is detected without reading it all: the
	// reader fails loudly if the driver keeps going far past the size.
	tooLong := &failingReader{r: stream(8, 4*mib), err: errors.New("driver read far past the announced size")}
	_, err := d.Put(t.Context(), dg, n, tooLong)
	wantErr(t, "Put of an overlong body", err, storage.ErrSizeMismatch)
	notStored(t, d, dg)
	wantBlobs(t, d, nil)
}

// invalidDigests are digests every driver must refuse.
var invalidDigests = []digest.Digest{
	"",
	"sha256",
	"sha256:",
	":" + digest.Digest(strings.Repeat("a", 64)),
	"sha256:xyz",
	"sha256:" + digest.Digest(strings.Repeat("a", 63)),
	"sha256:" + digest.Digest(strings.Repeat("a", 65)),
	"sha256:" + digest.Digest(strings.Repeat("A", 64)),
	"sha256:../../../../../../etc/passwd",
	"sha256:" + digest.Digest(strings.Repeat("a", 62)) + "/a",
	"sha256/" + digest.Digest(strings.Repeat("a", 64)),
	"sha512:" + digest.Digest(strings.Repeat("a", 64)),
	"md5:d41d8cd98f00b204e9800998ecf8427e",
	"sha384:" + digest.Digest(strings.Repeat("a", 96)),
	"blake3:" + digest.Digest(strings.Repeat("a", 64)),
}

func testInvalidDigest(t *testing.T, d storage.Driver) {
	ctx := t.Context()
	for _, dg := range invalidDigests {
		t.Run(string(dg), func(t *testing.T) {
			_, err := d.Stat(ctx, dg)
			wantErr(t, "Stat", err, storage.ErrInvalidDigest)
			rc, _, err := d.Open(ctx, dg)
			if rc != nil {
				rc.Close()
			}
			wantErr(t, "Open", err, storage.ErrInvalidDigest)
			_, err = d.Put(ctx, dg, 3, strings.NewReader("abc"))
			wantErr(t, "Put", err, storage.ErrInvalidDigest)
			wantErr(t, "Delete", d.Delete(ctx, dg), storage.ErrInvalidDigest)

			up, err := d.NewUpload(ctx, newID(t))
			noErr(t, "NewUpload", err)
			defer up.Cancel(ctx)
			_, err = up.Write([]byte("abc"))
			noErr(t, "Write", err)
			_, err = up.Commit(ctx, dg)
			wantErr(t, "Commit", err, storage.ErrInvalidDigest)
			if up.Size() != 3 {
				t.Errorf("Size after refused Commit = %d, want 3", up.Size())
			}
		})
	}
	wantBlobs(t, d, nil)
}

func testOpenSeek(t *testing.T, d storage.Driver) {
	data := blob(t, 9, 64*kib+17)
	dg := digest.SHA256.FromBytes(data)
	put(t, d, dg, data)
	rc, _, err := d.Open(t.Context(), dg)
	noErr(t, "Open", err)
	defer rc.Close()

	n := int64(len(data))
	steps := []struct {
		offset int64
		whence int
		pos    int64 // expected position after Seek
		read   int   // bytes to read there (-1: to the end)
	}{
		{1000, io.SeekStart, 1000, 100},
		{10, io.SeekCurrent, 1110, 5},
		{-16, io.SeekEnd, n - 16, -1},
		{40000, io.SeekStart, 40000, 20000},
		{0, io.SeekStart, 0, -1},
		{0, io.SeekEnd, n, -1},
	}
	for _, s := range steps {
		pos, err := rc.Seek(s.offset, s.whence)
		noErr(t, "Seek", err)
		if pos != s.pos {
			t.Fatalf("Seek(%d, %d) = %d, want %d", s.offset, s.whence, pos, s.pos)
		}
		var got []byte
		if s.read < 0 {
			got, err = io.ReadAll(rc)
		} else {
			got = make([]byte, s.read)
			_, err = io.ReadFull(rc, got)
		}
		noErr(t, "read after Seek", err)
		want := data[pos:]
		if s.read >= 0 {
			want = want[:s.read]
		}
		if i := firstDiff(got, want); len(got) != len(want) || i >= 0 {
			t.Fatalf("after Seek to %d: read %d bytes (first difference at %d), want %d bytes", pos, len(got), i, len(want))
		}
	}
}

func testDelete(t *testing.T, d storage.Driver) {
	ctx := t.Context()
	a, b := []byte("blob a"), []byte("blob b")
	da, db := digest.SHA256.FromBytes(a), digest.SHA512.FromBytes(b)
	put(t, d, da, a)
	put(t, d, db, b)

	noErr(t, "Delete", d.Delete(ctx, da))
	notStored(t, d, da)
	wantBlobs(t, d, map[digest.Digest]int64{db: int64(len(b))})
	wantErr(t, "second Delete", d.Delete(ctx, da), storage.ErrNotFound)
	wantErr(t, "Delete of a blob never stored", d.Delete(ctx, digest.SHA256.FromString("never stored")), storage.ErrNotFound)

	noErr(t, "Delete sha512", d.Delete(ctx, db))
	notStored(t, d, db)

	// A deleted blob can be stored again.
	put(t, d, da, a)
	checkContent(t, d, da, bytes.NewReader(a), int64(len(a)))
}

func testIdempotentPut(t *testing.T, d storage.Driver) {
	data := blob(t, 11, 50*kib)
	dg := digest.SHA256.FromBytes(data)
	n := int64(len(data))
	put(t, d, dg, data)
	put(t, d, dg, data)
	_, err := d.Put(t.Context(), dg, -1, bytes.NewReader(data))
	noErr(t, "third Put, unknown size", err)
	wantBlobs(t, d, map[digest.Digest]int64{dg: n})

	// Wrong content or size for an existing blob is still refused, and the
	// stored blob is untouched.
	_, err = d.Put(t.Context(), dg, n, bytes.NewReader(blob(t, 12, n)))
	wantErr(t, "Put of other content under an existing digest", err, storage.ErrDigestMismatch)
	_, err = d.Put(t.Context(), dg, n+1, bytes.NewReader(data))
	wantErr(t, "Put of an existing blob with a wrong size", err, storage.ErrSizeMismatch)
	checkContent(t, d, dg, bytes.NewReader(data), n)
	wantBlobs(t, d, map[digest.Digest]int64{dg: n})
}

func testConcurrentPut(t *testing.T, d storage.Driver) {
	const writers = 8
	const size = 2 * mib
	dg := streamDigest(t, digest.SHA256, 13, size)
	start := make(chan struct{})
	errs := make([]error, writers)
	infos := make([]storage.Info, writers)
	var wg sync.WaitGroup
	for i := range writers {
		wg.Go(func() {
			<-start
			infos[i], errs[i] = d.Put(t.Context(), dg, size, stream(13, size))
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		noErr(t, "concurrent Put "+itoa(int64(i)), err)
		checkInfo(t, "concurrent Put", infos[i], dg, size)
	}
	checkContent(t, d, dg, stream(13, size), size)
	wantBlobs(t, d, map[digest.Digest]int64{dg: size})
}

func testWalk(t *testing.T, d storage.Driver) {
	ctx := t.Context()
	calls := 0
	noErr(t, "Walk of an empty driver", d.Walk(ctx, func(storage.Info) error { calls++; return nil }))
	if calls != 0 {
		t.Fatalf("Walk of an empty driver called fn %d times", calls)
	}

	want := map[digest.Digest]int64{}
	for i := range uint64(6) {
		alg := digest.SHA256
		if i%3 == 2 {
			alg = digest.SHA512
		}
		data := blob(t, 100+i, int64(i*1000))
		dg := alg.FromBytes(data)
		put(t, d, dg, data)
		want[dg] = int64(len(data))
	}
	wantBlobs(t, d, want)

	// Walk reports full Info.
	noErr(t, "Walk", d.Walk(ctx, func(inf storage.Info) error {
		checkInfo(t, "Walk", inf, inf.Digest, want[inf.Digest])
		return nil
	}))

	// An error from fn stops the walk and is returned.
	stop := errors.New("stop")
	calls = 0
	err := d.Walk(ctx, func(storage.Info) error { calls++; return stop })
	wantErr(t, "Walk with failing fn", err, stop)
	if calls != 1 {
		t.Fatalf("Walk called a failing fn %d times, want 1", calls)
	}

	// Deleting blobs is allowed from fn.
	var first digest.Digest
	for dg := range want {
		first = dg
		break
	}
	noErr(t, "Delete", d.Delete(ctx, first))
	delete(want, first)
	wantBlobs(t, d, want)
	noErr(t, "Walk deleting", d.Walk(ctx, func(inf storage.Info) error { return d.Delete(ctx, inf.Digest) }))
	wantBlobs(t, d, nil)
}

func testPutContextCanceled(t *testing.T, d storage.Driver) {
	dg := streamDigest(t, digest.SHA256, 14, largeSize)

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	// The reader would go on forever; the driver must notice the cancellation.
	r := &cancelingReader{r: stream(14, math.MaxInt64), after: 1 * mib, cancel: cancel}
	_, err := d.Put(ctx, dg, largeSize, r)
	wantErr(t, "Put canceled in flight", err, context.Canceled)
	// Some read-ahead is fine (a driver may fill a buffer or an upload part
	// first), but not consuming the whole body.
	if r.read > largeSize*3/4 {
		t.Errorf("Put read %d bytes, want it to stop soon after the cancellation at 1 MiB", r.read)
	}
	notStored(t, d, dg)

	_, err = d.Put(ctx, dg, largeSize, stream(14, largeSize))
	wantErr(t, "Put with a canceled context", err, context.Canceled)
	notStored(t, d, dg)
	wantBlobs(t, d, nil)
}

func testPutReaderError(t *testing.T, d storage.Driver) {
	boom := errors.New("connection reset")
	for _, size := range []int64{mib, -1} {
		dg := streamDigest(t, digest.SHA256, 15, mib)
		_, err := d.Put(t.Context(), dg, size, &failingReader{r: stream(15, mib/2), err: boom})
		wantErr(t, "Put from a failing reader", err, boom)
		notStored(t, d, dg)
	}
	wantBlobs(t, d, nil)
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// trim shortens b for error messages.
func trim(b []byte) []byte {
	if len(b) > 64 {
		return b[:64]
	}
	return b
}
