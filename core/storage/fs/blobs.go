package fs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/core/storage"
)

// Stat describes the blob dg.
func (d *Driver) Stat(ctx context.Context, dg digest.Digest) (storage.Info, error) {
	if err := storage.ValidateDigest(dg); err != nil {
		return storage.Info{}, err
	}
	if err := ctx.Err(); err != nil {
		return storage.Info{}, err
	}
	fi, err := os.Stat(d.blobPath(dg))
	if err != nil {
		return storage.Info{}, blobError("stat", dg, err)
	}
	if !fi.Mode().IsRegular() {
		return storage.Info{}, fmt.Errorf("fs: stat %s: not a regular file: %w", dg, storage.ErrNotFound)
	}
	return info(dg, fi), nil
}

// Open returns the blob dg as an *os.File, which the caller closes.
func (d *Driver) Open(ctx context.Context, dg digest.Digest) (io.ReadSeekCloser, storage.Info, error) {
	if err := storage.ValidateDigest(dg); err != nil {
		return nil, storage.Info{}, err
	}
	if err := ctx.Err(); err != nil {
		return nil, storage.Info{}, err
	}
	f, err := os.Open(d.blobPath(dg))
	if err != nil {
		return nil, storage.Info{}, blobError("open", dg, err)
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = fmt.Errorf("not a regular file: %w", storage.ErrNotFound)
	}
	if err != nil {
		f.Close()
		return nil, storage.Info{}, fmt.Errorf("fs: open %s: %w", dg, err)
	}
	return f, info(dg, fi), nil
}

// Put stores the content of r under dg once it is verified. The content is
// copied to a temporary file under the root while being hashed, flushed to
// disk, and renamed into place only if digest and size match; on any failure
// the temporary file is removed.
func (d *Driver) Put(ctx context.Context, dg digest.Digest, size int64, r io.Reader) (storage.Info, error) {
	if err := storage.ValidateDigest(dg); err != nil {
		return storage.Info{}, err
	}
	if err := ctx.Err(); err != nil {
		return storage.Info{}, fmt.Errorf("fs: put %s: %w", dg, err)
	}
	f, err := os.CreateTemp(d.tmp, "put-*")
	if err != nil {
		return storage.Info{}, fmt.Errorf("fs: put %s: %w", dg, err)
	}
	tmp := f.Name()
	installed := false
	defer func() {
		if !installed {
			f.Close()
			os.Remove(tmp)
		}
	}()

	if err := d.writeVerified(ctx, f, dg, size, r); err != nil {
		return storage.Info{}, fmt.Errorf("fs: put %s: %w", dg, err)
	}
	if err := f.Close(); err != nil {
		return storage.Info{}, fmt.Errorf("fs: put %s: %w", dg, err)
	}
	inf, err := d.install(dg, tmp)
	if err != nil {
		return storage.Info{}, fmt.Errorf("fs: put %s: %w", dg, err)
	}
	installed = true
	return inf, nil
}

// writeVerified copies r into f, checks size (if not negative) and digest,
// and flushes f to disk.
func (d *Driver) writeVerified(ctx context.Context, f *os.File, dg digest.Digest, size int64, r io.Reader) error {
	if err := f.Chmod(fileMode); err != nil {
		return err
	}
	src := io.Reader(ctxReader{ctx: ctx, r: r})
	if size >= 0 {
		// One byte more than announced is enough to detect a longer body
		// without reading all of it.
		src = io.LimitReader(src, size+1)
	}
	h := dg.Algorithm().Hash()
	// Neither side implements WriterTo or ReaderFrom, so the copy goes
	// through the bounded buffer and every read checks ctx.
	n, err := io.CopyBuffer(io.MultiWriter(newWriteback(f, 0), h), src, make([]byte, copyBufferSize))
	if err != nil {
		return err
	}
	if size >= 0 && n != size {
		if n > size {
			return fmt.Errorf("%w: announced %d bytes, got more", storage.ErrSizeMismatch, size)
		}
		return fmt.Errorf("%w: announced %d bytes, got %d", storage.ErrSizeMismatch, size, n)
	}
	if got := digest.NewDigest(dg.Algorithm(), h); got != dg {
		return fmt.Errorf("%w: content hashes to %s", storage.ErrDigestMismatch, got)
	}
	return f.Sync()
}

// install moves the verified, flushed file src to the location of blob dg
// and returns the blob's Info. If the blob already exists, src is removed
// instead and the existing blob's modification time refreshed, so that a
// blob just pushed again is not mistaken for an old orphan.
//
// Concurrent installs of the same digest are safe: each rename atomically
// replaces a complete file with identical content.
func (d *Driver) install(dg digest.Digest, src string) (storage.Info, error) {
	dst := d.blobPath(dg)
	now := time.Now()
	err := os.Chtimes(dst, now, now)
	switch {
	case err == nil:
		if err := os.Remove(src); err != nil {
			return storage.Info{}, err
		}
	case errors.Is(err, os.ErrNotExist):
		dir := filepath.Dir(dst)
		if err := mkdir(dir); err != nil {
			return storage.Info{}, err
		}
		if err := os.Rename(src, dst); err != nil {
			return storage.Info{}, err
		}
		if err := syncDir(dir); err != nil {
			return storage.Info{}, err
		}
	default:
		return storage.Info{}, err
	}
	fi, err := os.Stat(dst)
	if err != nil {
		return storage.Info{}, err
	}
	return info(dg, fi), nil
}

// Delete removes the blob dg. Its directory is kept: removing it could race
// with a concurrent Put of a blob with the same prefix.
func (d *Driver) Delete(ctx context.Context, dg digest.Digest) error {
	if err := storage.ValidateDigest(dg); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := os.Remove(d.blobPath(dg)); err != nil {
		return blobError("delete", dg, err)
	}
	return nil
}

// Walk calls fn for every blob in the layout. Files that do not belong to it
// (wrong directory, not a valid digest, not a regular file) are skipped, and
// so are blobs deleted while the walk runs.
func (d *Driver) Walk(ctx context.Context, fn func(storage.Info) error) error {
	for _, alg := range algorithms {
		algDir := filepath.Join(d.blobs, alg.String())
		prefixes, err := os.ReadDir(algDir)
		if err != nil {
			return fmt.Errorf("fs: walk: %w", err)
		}
		for _, prefix := range prefixes {
			if !prefix.IsDir() || len(prefix.Name()) != 2 {
				continue
			}
			entries, err := os.ReadDir(filepath.Join(algDir, prefix.Name()))
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			if err != nil {
				return fmt.Errorf("fs: walk: %w", err)
			}
			for _, e := range entries {
				if err := ctx.Err(); err != nil {
					return err
				}
				dg := digest.NewDigestFromEncoded(alg, e.Name())
				if storage.ValidateDigest(dg) != nil || e.Name()[:2] != prefix.Name() || !e.Type().IsRegular() {
					continue
				}
				fi, err := e.Info()
				if errors.Is(err, os.ErrNotExist) {
					continue
				}
				if err != nil {
					return fmt.Errorf("fs: walk: %w", err)
				}
				if err := fn(info(dg, fi)); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func info(dg digest.Digest, fi os.FileInfo) storage.Info {
	return storage.Info{Digest: dg, Size: fi.Size(), ModTime: fi.ModTime()}
}

// blobError wraps an error about blob dg, turning a missing file into
// storage.ErrNotFound.
func blobError(op string, dg digest.Digest, err error) error {
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("fs: %s %s: %w", op, dg, storage.ErrNotFound)
	}
	return fmt.Errorf("fs: %s %s: %w", op, dg, err)
}
