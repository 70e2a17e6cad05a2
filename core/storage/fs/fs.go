// Package fs is the filesystem storage driver: blobs are files under a root
// directory, written through temporary files and renamed into place only
// once their digest is verified.
//
// Layout under the root:
//
//	blobs/<algorithm>/<first two hex digits>/<hex>   blob content, mode 0644
//	uploads/<id>/data                                upload session content
//	uploads/<id>/startedat                           session start, RFC 3339
//	uploads/<id>/hashstate                           saved running sha256 (optional)
//	tmp/                                             Put in progress
//
// Everything lives on one filesystem so that renames are atomic. Directories
// the driver creates are mode 0755 and files 0644 whatever the umask: blobs
// are content-addressed and not secret by themselves, so access is controlled
// by the permissions of the root, which New leaves alone if it exists.
package fs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/core/storage"
)

const (
	dirMode  os.FileMode = 0o755
	fileMode os.FileMode = 0o644

	// copyBufferSize bounds the memory one copy (a Put, a ReadFrom or a
	// re-hash) holds, whatever the blob size.
	copyBufferSize = 64 << 10
)

// algorithms are the digest algorithms the driver stores, each in its own
// directory under blobs/.
var algorithms = []digest.Algorithm{digest.SHA256, digest.SHA512}

// Driver is a storage.Driver keeping blobs and upload sessions in a local
// directory. It is safe for concurrent use; several processes may share a
// root as long as they do not write the same upload session at once.
type Driver struct {
	root    string
	blobs   string
	uploads string
	tmp     string
}

var _ storage.Driver = (*Driver)(nil)

// New returns a driver storing under root, creating root and the fixed
// directories of the layout if they are missing.
func New(root string) (*Driver, error) {
	if root == "" {
		return nil, errors.New("fs: empty root directory")
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("fs: root %q: %w", root, err)
	}
	d := &Driver{
		root:    abs,
		blobs:   filepath.Join(abs, "blobs"),
		uploads: filepath.Join(abs, "uploads"),
		tmp:     filepath.Join(abs, "tmp"),
	}
	if err := os.MkdirAll(abs, dirMode); err != nil {
		return nil, fmt.Errorf("fs: create root: %w", err)
	}
	dirs := []string{d.blobs, d.uploads, d.tmp}
	for _, a := range algorithms {
		dirs = append(dirs, filepath.Join(d.blobs, a.String()))
	}
	for _, dir := range dirs {
		if err := os.MkdirAll(dir, dirMode); err != nil {
			return nil, fmt.Errorf("fs: create %s: %w", dir, err)
		}
		if err := os.Chmod(dir, dirMode); err != nil {
			return nil, fmt.Errorf("fs: %w", err)
		}
	}
	return d, nil
}

// Root returns the absolute root directory of the driver.
func (d *Driver) Root() string { return d.root }

// blobPath returns where the blob dg lives. dg must have been validated.
func (d *Driver) blobPath(dg digest.Digest) string {
	hex := dg.Encoded()
	return filepath.Join(d.blobs, dg.Algorithm().String(), hex[:2], hex)
}

// uploadDir returns the directory of upload session id, or an error matching
// storage.ErrUploadNotFound if id is not a safe path element.
func (d *Driver) uploadDir(id string) (string, error) {
	if !storage.ValidUploadID(id) {
		return "", fmt.Errorf("fs: upload id %q: %w", id, storage.ErrUploadNotFound)
	}
	return filepath.Join(d.uploads, id), nil
}

// mkdir creates dir (whose parent must exist) with dirMode if it is missing,
// making the new entry durable in the parent.
func mkdir(dir string) error {
	err := os.Mkdir(dir, dirMode)
	if errors.Is(err, os.ErrExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := os.Chmod(dir, dirMode); err != nil {
		return err
	}
	return syncDir(filepath.Dir(dir))
}

// syncDir flushes a directory, making renames and new entries in it durable.
func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// ctxReader fails reads once its context is done, so that a copy from a
// reader that keeps producing data stops when the caller gives up.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (r ctxReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}
