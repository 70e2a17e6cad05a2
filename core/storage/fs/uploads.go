package fs

import (
	"context"
	"crypto/sha256"
	"encoding"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/core/storage"
)

// Files of an upload session directory.
const (
	dataFile      = "data"
	startedFile   = "startedat"
	hashStateFile = "hashstate"
)

// NewUpload creates the session directory uploads/<id> with an empty data
// file and the start time.
func (d *Driver) NewUpload(ctx context.Context, id string) (storage.Upload, error) {
	dir, err := d.uploadDir(id)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := os.Mkdir(dir, dirMode); err != nil {
		if errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("fs: new upload %s: %w", id, storage.ErrUploadExists)
		}
		return nil, fmt.Errorf("fs: new upload %s: %w", id, err)
	}
	u, err := d.createUpload(id, dir)
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("fs: new upload %s: %w", id, err)
	}
	return u, nil
}

func (d *Driver) createUpload(id, dir string) (*upload, error) {
	if err := os.Chmod(dir, dirMode); err != nil {
		return nil, err
	}
	started := time.Now().UTC().Format(time.RFC3339Nano)
	if err := writeFile(filepath.Join(dir, startedFile), []byte(started)); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(dir, dataFile), os.O_WRONLY|os.O_CREATE|os.O_EXCL|os.O_APPEND, fileMode)
	if err != nil {
		return nil, err
	}
	err = f.Chmod(fileMode)
	if err == nil {
		err = syncDir(dir)
	}
	if err == nil {
		err = syncDir(d.uploads)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return &upload{d: d, id: id, dir: dir, f: f, wb: newWriteback(f, 0), h: sha256.New()}, nil
}

// ResumeUpload reopens session id for appending. Its size is the length of
// the data file. The running sha256 saved by the last Close is restored when
// it is consistent with the data, so that Commit need not read it all back.
func (d *Driver) ResumeUpload(ctx context.Context, id string) (storage.Upload, error) {
	dir, err := d.uploadDir(id)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(dir, dataFile), os.O_WRONLY|os.O_APPEND, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("fs: resume upload %s: %w", id, storage.ErrUploadNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("fs: resume upload %s: %w", id, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("fs: resume upload %s: %w", id, err)
	}
	u := &upload{d: d, id: id, dir: dir, f: f, wb: newWriteback(f, fi.Size()), size: fi.Size()}
	u.h, u.hashed = loadHashState(dir, u.size)
	return u, nil
}

// ListUploads calls fn for every session directory. A session whose start
// time cannot be read (interrupted while being created) reports the
// directory's modification time instead, so that it still expires.
func (d *Driver) ListUploads(ctx context.Context, fn func(id string, started time.Time, size int64) error) error {
	entries, err := os.ReadDir(d.uploads)
	if err != nil {
		return fmt.Errorf("fs: list uploads: %w", err)
	}
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return err
		}
		id := e.Name()
		if !e.IsDir() || !storage.ValidUploadID(id) {
			continue
		}
		dir := filepath.Join(d.uploads, id)
		started, err := readStarted(dir)
		if err != nil {
			fi, err := e.Info()
			if errors.Is(err, os.ErrNotExist) {
				continue // deleted meanwhile
			}
			if err != nil {
				return fmt.Errorf("fs: list uploads: %w", err)
			}
			started = fi.ModTime()
		}
		var size int64
		fi, err := os.Stat(filepath.Join(dir, dataFile))
		switch {
		case err == nil:
			size = fi.Size()
		case errors.Is(err, os.ErrNotExist):
		default:
			return fmt.Errorf("fs: list uploads: %w", err)
		}
		if err := fn(id, started, size); err != nil {
			return err
		}
	}
	return nil
}

// DeleteUpload removes the directory of session id, if there is one.
func (d *Driver) DeleteUpload(ctx context.Context, id string) error {
	dir, err := d.uploadDir(id)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("fs: delete upload %s: %w", id, err)
	}
	return nil
}

// upload is an open handle on a session directory.
type upload struct {
	d    *Driver
	id   string
	dir  string
	f    *os.File // the data file, opened for appending; nil once closed
	wb   *writeback
	size int64
	// h is the running sha256 of the first hashed bytes of the data, or nil
	// when unknown. Commit of a sha256 digest hashes only the rest.
	h      hash.Hash
	hashed int64
}

var _ storage.Upload = (*upload)(nil)

func (u *upload) ID() string  { return u.id }
func (u *upload) Size() int64 { return u.size }

// Write appends p to the data file, updating the running hash.
func (u *upload) Write(p []byte) (int, error) {
	if u.f == nil {
		return 0, u.closedError()
	}
	n, err := u.f.Write(p)
	u.wb.wrote(n)
	if u.h != nil && u.hashed == u.size {
		u.h.Write(p[:n])
		u.hashed += int64(n)
	}
	u.size += int64(n)
	if err != nil {
		return n, fmt.Errorf("fs: upload %s: %w", u.id, err)
	}
	return n, nil
}

// writerOnly hides the ReaderFrom of an upload from io.Copy, which would
// otherwise call it again.
type writerOnly struct{ io.Writer }

// ReadFrom appends r through a bounded buffer.
func (u *upload) ReadFrom(r io.Reader) (int64, error) {
	if u.f == nil {
		return 0, u.closedError()
	}
	return io.CopyBuffer(writerOnly{u}, r, make([]byte, copyBufferSize))
}

// Commit verifies the data against dg and installs it as a blob.
func (u *upload) Commit(ctx context.Context, dg digest.Digest) (storage.Info, error) {
	if err := storage.ValidateDigest(dg); err != nil {
		return storage.Info{}, err
	}
	if u.f == nil {
		return storage.Info{}, u.closedError()
	}
	if err := ctx.Err(); err != nil {
		return storage.Info{}, err
	}
	fail := func(err error) (storage.Info, error) {
		return storage.Info{}, fmt.Errorf("fs: commit upload %s as %s: %w", u.id, dg, err)
	}
	fi, err := u.f.Stat()
	if err != nil {
		return fail(err)
	}
	if fi.Size() != u.size {
		// Someone else appended to the session: the running hash does not
		// describe the data any more, so verify what is really there.
		u.size, u.h, u.hashed = fi.Size(), nil, 0
	}
	if err := u.f.Sync(); err != nil {
		return fail(err)
	}
	got, err := u.digest(ctx, dg.Algorithm())
	if err != nil {
		return fail(err)
	}
	if got != dg {
		return fail(fmt.Errorf("%w: content hashes to %s", storage.ErrDigestMismatch, got))
	}
	err = u.f.Close()
	u.f = nil
	if err != nil {
		return fail(err)
	}
	data := filepath.Join(u.dir, dataFile)
	inf, err := u.d.install(dg, data)
	if errors.Is(err, os.ErrNotExist) {
		// The session was deleted (expired) while we verified it.
		return fail(fmt.Errorf("%w: %w", storage.ErrUploadNotFound, err))
	}
	if err != nil {
		return fail(err)
	}
	// The blob is stored: that is the outcome the caller needs. A session
	// directory that cannot be removed now holds no data and is expired later
	// through ListUploads and DeleteUpload.
	_ = os.RemoveAll(u.dir)
	return inf, nil
}

// digest returns the digest of the data with algorithm alg. For sha256 it
// continues the running hash, reading back only what it does not cover;
// otherwise it reads all the data back.
func (u *upload) digest(ctx context.Context, alg digest.Algorithm) (digest.Digest, error) {
	if alg == digest.SHA256 && u.h != nil {
		if err := u.hashData(ctx, u.h, u.hashed); err != nil {
			return "", err
		}
		u.hashed = u.size
		return digest.NewDigest(alg, u.h), nil
	}
	h := alg.Hash()
	if err := u.hashData(ctx, h, 0); err != nil {
		return "", err
	}
	if alg == digest.SHA256 {
		u.h, u.hashed = h, u.size
	}
	return digest.NewDigest(alg, h), nil
}

// hashData writes the data from offset from up to the session size into h.
func (u *upload) hashData(ctx context.Context, h hash.Hash, from int64) error {
	if from == u.size {
		return nil
	}
	f, err := os.Open(filepath.Join(u.dir, dataFile))
	if err != nil {
		return err
	}
	defer f.Close()
	want := u.size - from
	src := ctxReader{ctx: ctx, r: io.NewSectionReader(f, from, want)}
	n, err := io.CopyBuffer(h, src, make([]byte, copyBufferSize))
	if err != nil {
		return err
	}
	if n != want {
		return fmt.Errorf("data is %d bytes shorter than written: %w", want-n, io.ErrUnexpectedEOF)
	}
	return nil
}

// Cancel closes the handle and removes the session.
func (u *upload) Cancel(ctx context.Context) error {
	if u.f != nil {
		u.f.Close()
		u.f = nil
	}
	if err := os.RemoveAll(u.dir); err != nil {
		return fmt.Errorf("fs: cancel upload %s: %w", u.id, err)
	}
	return nil
}

// Close flushes the data to disk, saves the running hash next to it and
// releases the file.
func (u *upload) Close() error {
	if u.f == nil {
		return nil
	}
	f := u.f
	u.f = nil
	err := f.Sync()
	if err == nil {
		// Only after the data is durable, so that a saved state never covers
		// bytes a crash could lose.
		u.saveHashState()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("fs: close upload %s: %w", u.id, err)
	}
	return nil
}

func (u *upload) closedError() error {
	return fmt.Errorf("fs: upload %s: %w", u.id, os.ErrClosed)
}

// saveHashState writes the running hash and the number of bytes it covers to
// the hashstate file, replacing it atomically. It is an optimisation only: if
// it fails, the previous state (covering fewer bytes) or none remains, and
// Commit reads back what the state does not cover.
func (u *upload) saveHashState() {
	if u.h == nil {
		return
	}
	m, ok := u.h.(encoding.BinaryMarshaler)
	if !ok {
		return
	}
	state, err := m.MarshalBinary()
	if err != nil {
		return
	}
	buf := binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(state)), uint64(u.hashed))
	buf = append(buf, state...)
	path := filepath.Join(u.dir, hashStateFile)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, buf, fileMode); err != nil {
		os.Remove(tmp)
		return
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
	}
}

// loadHashState restores the running sha256 saved in dir. It returns nil if
// there is none, it cannot be decoded, or it covers more than the size bytes
// of data on disk (data lost in a crash).
func loadHashState(dir string, size int64) (hash.Hash, int64) {
	buf, err := os.ReadFile(filepath.Join(dir, hashStateFile))
	if err != nil || len(buf) < 8 {
		return nil, 0
	}
	hashed := int64(binary.BigEndian.Uint64(buf))
	if hashed < 0 || hashed > size {
		return nil, 0
	}
	h := sha256.New()
	if err := h.(encoding.BinaryUnmarshaler).UnmarshalBinary(buf[8:]); err != nil {
		return nil, 0
	}
	return h, hashed
}

// readStarted reads the start time of the session in dir.
func readStarted(dir string) (time.Time, error) {
	b, err := os.ReadFile(filepath.Join(dir, startedFile))
	if err != nil {
		return time.Time{}, err
	}
	return time.Parse(time.RFC3339Nano, strings.TrimSpace(string(b)))
}

// writeFile creates path with data and flushes it to disk.
func writeFile(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, fileMode)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(fileMode)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
