package storagetest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/core/storage"
)

// newUpload starts a session with a random id.
func newUpload(t *testing.T, d storage.Driver) storage.Upload {
	t.Helper()
	return newUploadID(t, d, newID(t))
}

// newUploadID starts session id and checks its initial state.
func newUploadID(t *testing.T, d storage.Driver, id string) storage.Upload {
	t.Helper()
	up, err := d.NewUpload(t.Context(), id)
	noErr(t, "NewUpload "+id, err)
	t.Cleanup(func() { up.Close() })
	if up.ID() != id {
		t.Fatalf("ID() = %q, want %q", up.ID(), id)
	}
	if up.Size() != 0 {
		t.Fatalf("Size() of a new upload = %d, want 0", up.Size())
	}
	return up
}

// resume reopens session id and checks its size.
func resume(t *testing.T, d storage.Driver, id string, size int64) storage.Upload {
	t.Helper()
	up, err := d.ResumeUpload(t.Context(), id)
	noErr(t, "ResumeUpload", err)
	t.Cleanup(func() { up.Close() })
	if up.ID() != id {
		t.Fatalf("ID() after resume = %q, want %q", up.ID(), id)
	}
	if up.Size() != size {
		t.Fatalf("Size() after resume = %d, want %d", up.Size(), size)
	}
	return up
}

// write appends b with Write and checks the new size.
func write(t *testing.T, up storage.Upload, b []byte) {
	t.Helper()
	before := up.Size()
	n, err := up.Write(b)
	noErr(t, "Write", err)
	if n != len(b) {
		t.Fatalf("Write wrote %d bytes, want %d", n, len(b))
	}
	if up.Size() != before+int64(len(b)) {
		t.Fatalf("Size() after Write = %d, want %d", up.Size(), before+int64(len(b)))
	}
}

// readFrom appends r, which holds n bytes, with ReadFrom and checks the new size.
func readFrom(t *testing.T, up storage.Upload, r io.Reader, n int64) {
	t.Helper()
	before := up.Size()
	got, err := up.ReadFrom(r)
	noErr(t, "ReadFrom", err)
	if got != n {
		t.Fatalf("ReadFrom appended %d bytes, want %d", got, n)
	}
	if up.Size() != before+n {
		t.Fatalf("Size() after ReadFrom = %d, want %d", up.Size(), before+n)
	}
}

// commit commits up as dg and checks the session is gone.
func commit(t *testing.T, d storage.Driver, up storage.Upload, dg digest.Digest, size int64) {
	t.Helper()
	inf, err := up.Commit(t.Context(), dg)
	noErr(t, "Commit", err)
	checkInfo(t, "Commit", inf, dg, size)
	inf, err = d.Stat(t.Context(), dg)
	noErr(t, "Stat after Commit", err)
	checkInfo(t, "Stat after Commit", inf, dg, size)
	noUpload(t, d, up.ID())
	if _, err := up.Write([]byte("x")); err == nil {
		t.Error("Write after Commit succeeded")
	}
	noErr(t, "Close after Commit", up.Close())
}

// noUpload checks that session id does not exist.
func noUpload(t *testing.T, d storage.Driver, id string) {
	t.Helper()
	up, err := d.ResumeUpload(t.Context(), id)
	if up != nil {
		up.Close()
	}
	wantErr(t, "ResumeUpload of "+id, err, storage.ErrUploadNotFound)
	if _, ok := uploads(t, d)[id]; ok {
		t.Fatalf("ListUploads reports %s, which should not exist", id)
	}
}

func testUploadChunks(t *testing.T, d storage.Driver) {
	for _, alg := range []digest.Algorithm{digest.SHA256, digest.SHA512} {
		t.Run(alg.String(), func(t *testing.T) {
			up := newUpload(t, d)
			var all bytes.Buffer
			a, b, c := blob(t, 20, 1000), blob(t, 21, 300*kib+1), blob(t, 22, 7)
			write(t, up, a)
			readFrom(t, up, bytes.NewReader(b), int64(len(b)))
			write(t, up, nil)
			write(t, up, c)
			// ReadFrom from a reader without WriterTo.
			readFrom(t, up, io.LimitReader(stream(23, 200*kib), 200*kib), 200*kib)
			all.Write(a)
			all.Write(b)
			all.Write(c)
			all.Write(blob(t, 23, 200*kib))

			dg := alg.FromBytes(all.Bytes())
			commit(t, d, up, dg, int64(all.Len()))
			checkContent(t, d, dg, bytes.NewReader(all.Bytes()), int64(all.Len()))
		})
	}
}

func testUploadResume(t *testing.T, d storage.Driver) {
	for _, alg := range []digest.Algorithm{digest.SHA256, digest.SHA512} {
		t.Run(alg.String(), func(t *testing.T) {
			a, b, c := blob(t, 30, 10*kib), blob(t, 31, 5), blob(t, 32, 70*kib)
			up := newUpload(t, d)
			id := up.ID()
			write(t, up, a)
			noErr(t, "Close", up.Close())
			noErr(t, "second Close", up.Close())
			if _, err := up.Write(b); err == nil {
				t.Fatal("Write after Close succeeded")
			}

			up = resume(t, d, id, int64(len(a)))
			write(t, up, b)
			noErr(t, "Close", up.Close())

			up = resume(t, d, id, int64(len(a)+len(b)))
			readFrom(t, up, bytes.NewReader(c), int64(len(c)))
			all := bytes.Join([][]byte{a, b, c}, nil)
			dg := alg.FromBytes(all)
			commit(t, d, up, dg, int64(len(all)))
			checkContent(t, d, dg, bytes.NewReader(all), int64(len(all)))
		})
	}
}

func testUploadLargeResumed(t *testing.T, d storage.Driver) {
	// A large upload streamed in chunks, each through a fresh handle, as the
	// chunked PATCH requests of a push do.
	const chunk = 5 * mib
	const chunks = largeSize / chunk
	src := stream(40, largeSize)
	up := newUpload(t, d)
	id := up.ID()
	for i := range int64(chunks) {
		if i > 0 {
			up = resume(t, d, id, i*chunk)
		}
		readFrom(t, up, io.LimitReader(src, chunk), chunk)
		noErr(t, "Close", up.Close())
	}
	up = resume(t, d, id, largeSize)
	dg := streamDigest(t, digest.SHA256, 40, largeSize)
	commit(t, d, up, dg, largeSize)
	checkContent(t, d, dg, stream(40, largeSize), largeSize)
}

func testUploadEmpty(t *testing.T, d storage.Driver) {
	up := newUpload(t, d)
	dg := digest.SHA256.FromBytes(nil)
	commit(t, d, up, dg, 0)
	checkContent(t, d, dg, bytes.NewReader(nil), 0)
}

func testUploadCommitMismatch(t *testing.T, d storage.Driver) {
	data := blob(t, 50, 40*kib)
	right := digest.SHA256.FromBytes(data)
	wrong := []digest.Digest{
		digest.SHA256.FromBytes(data[1:]),
		digest.SHA512.FromBytes(data[1:]),
		digest.SHA256.FromBytes(append(data, 0)),
	}
	up := newUpload(t, d)
	id := up.ID()
	write(t, up, data)
	for _, dg := range wrong {
		_, err := up.Commit(t.Context(), dg)
		wantErr(t, "Commit with a wrong digest", err, storage.ErrDigestMismatch)
		notStored(t, d, dg)
		if up.Size() != int64(len(data)) {
			t.Fatalf("Size() after failed Commit = %d, want %d", up.Size(), len(data))
		}
	}
	notStored(t, d, right)
	if got := uploads(t, d)[id].size; got != int64(len(data)) {
		t.Fatalf("ListUploads size after failed Commit = %d, want %d", got, len(data))
	}

	// The session survives, through this handle and a resumed one.
	noErr(t, "Close", up.Close())
	up = resume(t, d, id, int64(len(data)))
	_, err := up.Commit(t.Context(), wrong[0])
	wantErr(t, "Commit with a wrong digest after resume", err, storage.ErrDigestMismatch)
	commit(t, d, up, right, int64(len(data)))
	checkContent(t, d, right, bytes.NewReader(data), int64(len(data)))
	wantBlobs(t, d, map[digest.Digest]int64{right: int64(len(data))})
}

func testUploadCommitCanceled(t *testing.T, d storage.Driver) {
	data := blob(t, 51, 3*mib)
	dg := digest.SHA512.FromBytes(data) // forces a read back of the data
	up := newUpload(t, d)
	write(t, up, data)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := up.Commit(ctx, dg)
	wantErr(t, "Commit with a canceled context", err, context.Canceled)
	notStored(t, d, dg)
	noErr(t, "Close", up.Close())
	up = resume(t, d, up.ID(), int64(len(data)))
	commit(t, d, up, dg, int64(len(data)))
}

func testUploadCommitExisting(t *testing.T, d storage.Driver) {
	data := blob(t, 52, 20*kib)
	dg := digest.SHA256.FromBytes(data)
	put(t, d, dg, data)
	up := newUpload(t, d)
	write(t, up, data)
	commit(t, d, up, dg, int64(len(data)))
	checkContent(t, d, dg, bytes.NewReader(data), int64(len(data)))
	wantBlobs(t, d, map[digest.Digest]int64{dg: int64(len(data))})
	if n := len(uploads(t, d)); n != 0 {
		t.Fatalf("ListUploads reports %d sessions after Commit, want 0", n)
	}
}

func testUploadCancel(t *testing.T, d storage.Driver) {
	data := blob(t, 53, 10*kib)
	up := newUpload(t, d)
	write(t, up, data)
	noErr(t, "Cancel", up.Cancel(t.Context()))
	noUpload(t, d, up.ID())
	noErr(t, "Close after Cancel", up.Close())
	if _, err := up.Write(data); err == nil {
		t.Error("Write after Cancel succeeded")
	}
	notStored(t, d, digest.SHA256.FromBytes(data))

	// Cancel of a resumed session.
	up = newUpload(t, d)
	write(t, up, data)
	noErr(t, "Close", up.Close())
	up = resume(t, d, up.ID(), int64(len(data)))
	noErr(t, "Cancel", up.Cancel(t.Context()))
	noUpload(t, d, up.ID())
	wantBlobs(t, d, nil)
}

func testUploadExists(t *testing.T, d storage.Driver) {
	up := newUpload(t, d)
	write(t, up, []byte("first"))
	again, err := d.NewUpload(t.Context(), up.ID())
	if again != nil {
		again.Close()
	}
	wantErr(t, "NewUpload with an id in use", err, storage.ErrUploadExists)
	write(t, up, []byte(" second"))
	commit(t, d, up, digest.SHA256.FromString("first second"), 12)
}

func testResumeMissingUpload(t *testing.T, d storage.Driver) {
	noUpload(t, d, newID(t))
}

func testListUploads(t *testing.T, d storage.Driver) {
	if n := len(uploads(t, d)); n != 0 {
		t.Fatalf("ListUploads of an empty driver reports %d sessions", n)
	}
	before := time.Now()
	sizes := []int64{0, 10, 3000}
	want := map[string]int64{}
	for i, size := range sizes {
		up := newUpload(t, d)
		write(t, up, blob(t, 60+uint64(i), size))
		noErr(t, "Close", up.Close())
		want[up.ID()] = size
	}
	after := time.Now()

	check := func() {
		t.Helper()
		got := uploads(t, d)
		if len(got) != len(want) {
			t.Fatalf("ListUploads reports %d sessions, want %d", len(got), len(want))
		}
		for id, size := range want {
			e, ok := got[id]
			if !ok {
				t.Fatalf("ListUploads misses %s", id)
			}
			if e.size != size {
				t.Errorf("ListUploads: %s has size %d, want %d", id, e.size, size)
			}
			// A second of slack for storage with coarse timestamps.
			if e.started.Before(before.Add(-time.Second)) || e.started.After(after.Add(time.Second)) {
				t.Errorf("ListUploads: %s started %v, want between %v and %v", id, e.started, before, after)
			}
		}
	}
	check()

	// Appending changes the size, not the start time.
	var grown string
	for id := range want {
		grown = id
		break
	}
	up := resume(t, d, grown, want[grown])
	write(t, up, []byte("more"))
	noErr(t, "Close", up.Close())
	want[grown] += 4
	check()

	noErr(t, "DeleteUpload", d.DeleteUpload(t.Context(), grown))
	delete(want, grown)
	check()

	stop := errors.New("stop")
	calls := 0
	err := d.ListUploads(t.Context(), func(string, time.Time, int64) error { calls++; return stop })
	wantErr(t, "ListUploads with failing fn", err, stop)
	if calls != 1 {
		t.Fatalf("ListUploads called a failing fn %d times, want 1", calls)
	}
}

func testDeleteUpload(t *testing.T, d storage.Driver) {
	ctx := t.Context()
	up := newUpload(t, d)
	id := up.ID()
	write(t, up, []byte("abandoned"))
	noErr(t, "Close", up.Close())

	noErr(t, "DeleteUpload", d.DeleteUpload(ctx, id))
	noUpload(t, d, id)
	noErr(t, "second DeleteUpload", d.DeleteUpload(ctx, id))
	noErr(t, "DeleteUpload of an unknown session", d.DeleteUpload(ctx, newID(t)))
	wantBlobs(t, d, nil)

	// The id can be used again.
	up = newUploadID(t, d, id)
	write(t, up, []byte("x"))
	commit(t, d, up, digest.SHA256.FromString("x"), 1)
}

// invalidUploadIDs are ids every driver must refuse: none can be a safe path
// element or key segment.
var invalidUploadIDs = []string{
	"",
	".",
	"..",
	"../x",
	"../../../../tmp/x",
	"x/../../y",
	"a/b",
	"/abs",
	`a\b`,
	`..\x`,
	"x\x00y",
	".hidden",
	"-flag",
	"with space",
	"new\nline",
	"é",
	strings.Repeat("a", storage.MaxUploadIDLength+1),
}

func testUploadIDs(t *testing.T, d storage.Driver) {
	ctx := t.Context()
	for _, id := range invalidUploadIDs {
		t.Run(strings.ToValidUTF8(id, "?"), func(t *testing.T) {
			if storage.ValidUploadID(id) {
				t.Fatalf("storage.ValidUploadID(%q) = true", id)
			}
			up, err := d.NewUpload(ctx, id)
			if up != nil {
				up.Cancel(ctx)
			}
			wantErr(t, "NewUpload", err, storage.ErrUploadNotFound)
			up, err = d.ResumeUpload(ctx, id)
			if up != nil {
				up.Close()
			}
			wantErr(t, "ResumeUpload", err, storage.ErrUploadNotFound)
			wantErr(t, "DeleteUpload", d.DeleteUpload(ctx, id), storage.ErrUploadNotFound)
		})
	}
	if n := len(uploads(t, d)); n != 0 {
		t.Fatalf("ListUploads reports %d sessions after invalid ids, want 0", n)
	}

	valid := []string{newID(t), "abc", "A1-b_2.c", strings.Repeat("z", storage.MaxUploadIDLength)}
	for _, id := range valid {
		if !storage.ValidUploadID(id) {
			t.Fatalf("storage.ValidUploadID(%q) = false", id)
		}
		up := newUploadID(t, d, id)
		write(t, up, []byte(id))
		noErr(t, "Close", up.Close())
		resume(t, d, id, int64(len(id)))
	}
	if n := len(uploads(t, d)); n != len(valid) {
		t.Fatalf("ListUploads reports %d sessions, want %d", n, len(valid))
	}
}
