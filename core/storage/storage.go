// Package storage defines Berth's content-addressed blob storage: the Driver
// interface every backend implements (the filesystem driver in package fs,
// later S3), the resumable Upload sessions used by chunked pushes, and the
// sentinel errors they return.
//
// Every driver must pass the shared conformance suite in package storagetest.
package storage

import (
	"context"
	"io"
	"time"

	"github.com/opencontainers/go-digest"
)

// Info describes a stored blob.
type Info struct {
	// Digest is the content address of the blob (sha256 or sha512).
	Digest digest.Digest
	// Size is the length of the blob in bytes.
	Size int64
	// ModTime is when the blob was last written. Drivers that can refresh it
	// cheaply do so when an existing blob is put or committed again (the
	// filesystem driver does), so that orphan cleanup can leave recently
	// pushed blobs alone.
	ModTime time.Time
}

// Driver stores immutable blobs by digest and holds resumable upload sessions.
//
// Only sha256 and sha512 digests are accepted; any other digest makes a method
// return an error matching ErrInvalidDigest. A Driver is safe for concurrent
// use by many goroutines, including concurrent writes of the same blob.
type Driver interface {
	// Stat describes the blob d, or returns ErrNotFound.
	Stat(ctx context.Context, d digest.Digest) (Info, error)
	// Open returns the content of blob d, or ErrNotFound. The caller closes it.
	// Drivers backed by files return the *os.File itself so that net/http can
	// serve it with sendfile.
	Open(ctx context.Context, d digest.Digest) (io.ReadSeekCloser, Info, error)
	// Put streams r into storage, hashing while it copies, and stores the
	// content under d only if it hashes to d (otherwise ErrDigestMismatch and
	// nothing is stored). A size below zero means the length is unknown;
	// otherwise a length that differs from size returns ErrSizeMismatch. Memory
	// use is bounded whatever the size. Putting a blob that already exists
	// succeeds (the content is still verified). If ctx ends while the content
	// is being copied, Put returns ctx's error and stores nothing.
	Put(ctx context.Context, d digest.Digest, size int64, r io.Reader) (Info, error)
	// Delete removes blob d, or returns ErrNotFound if it is absent.
	Delete(ctx context.Context, d digest.Digest) error
	// Walk calls fn for every stored blob, in no particular order; it is meant
	// for orphan cleanup and consistency checks. fn may delete the blob it is
	// given. Walk stops at the first error from fn and returns it unchanged.
	Walk(ctx context.Context, fn func(Info) error) error

	// NewUpload starts an upload session. The caller chooses id (a UUID);
	// it must pass ValidUploadID, else the error matches ErrUploadNotFound. An
	// id that is already in use returns ErrUploadExists.
	NewUpload(ctx context.Context, id string) (Upload, error)
	// ResumeUpload reopens an existing session, also after a process restart,
	// with Size set to the durable length of its data. It returns
	// ErrUploadNotFound if there is no such session.
	ResumeUpload(ctx context.Context, id string) (Upload, error)
	// ListUploads calls fn for every upload session with its start time and
	// current size, so that abandoned sessions can be expired. It stops at
	// the first error from fn and returns it unchanged.
	ListUploads(ctx context.Context, fn func(id string, started time.Time, size int64) error) error
	// DeleteUpload removes a session and its data. Removing a session that
	// does not exist is not an error; an invalid id matches ErrUploadNotFound.
	DeleteUpload(ctx context.Context, id string) error
}

// Upload is an open handle on a resumable upload session. Writes append to
// the session's data.
//
// A handle is not safe for concurrent use, and the caller must not have two
// handles on the same session writing at once (the HTTP layer serialises the
// chunks of one upload).
type Upload interface {
	// ID returns the session id.
	ID() string
	// Size returns the number of bytes written so far.
	Size() int64
	// Write appends p to the session.
	io.Writer
	// ReadFrom appends everything read from r until io.EOF, copying through a
	// bounded buffer, and returns the number of bytes appended.
	io.ReaderFrom
	// Commit verifies that the whole session hashes to d, makes the data
	// durable and moves it atomically to the content-addressed location of d,
	// then removes the session; the handle is closed afterwards. If the blob
	// already exists, the session's data is dropped instead. On
	// ErrDigestMismatch, ErrInvalidDigest or a done ctx nothing is removed and
	// this handle stays usable. After any other error the session may be
	// resumed with ResumeUpload unless it is gone (ErrUploadNotFound).
	Commit(ctx context.Context, d digest.Digest) (Info, error)
	// Cancel removes the session and its data and closes the handle.
	Cancel(ctx context.Context) error
	// Close makes the written data durable and releases the handle; the
	// session persists and can be resumed with ResumeUpload. Closing a handle
	// that is already closed, committed or cancelled returns nil, so a deferred
	// Close is always safe.
	Close() error
}

// MaxUploadIDLength is the longest upload session id ValidUploadID accepts.
const MaxUploadIDLength = 128

// ValidUploadID reports whether id is acceptable as an upload session id:
// 1 to MaxUploadIDLength ASCII letters, digits, '-', '_' or '.', starting with
// a letter or digit. Such an id is safe as a single path element or object
// key segment (no separators, no "." or "..").
func ValidUploadID(id string) bool {
	if id == "" || len(id) > MaxUploadIDLength {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case i > 0 && (c == '-' || c == '_' || c == '.'):
		default:
			return false
		}
	}
	return true
}
