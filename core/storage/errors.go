package storage

import "errors"

// Sentinel errors returned by every Driver, wrapped with details; test them
// with errors.Is.
var (
	// ErrNotFound: no blob is stored under the digest.
	ErrNotFound = errors.New("storage: blob not found")
	// ErrUploadNotFound: no upload session has this id, or the id is not a
	// valid session id (see ValidUploadID).
	ErrUploadNotFound = errors.New("storage: upload not found")
	// ErrUploadExists: NewUpload was given the id of an existing session.
	ErrUploadExists = errors.New("storage: upload already exists")
	// ErrDigestMismatch: the content does not hash to the digest it was
	// given under.
	ErrDigestMismatch = errors.New("storage: digest mismatch")
	// ErrInvalidDigest: the digest is malformed or uses an algorithm other
	// than sha256 and sha512.
	ErrInvalidDigest = errors.New("storage: invalid or unsupported digest")
	// ErrSizeMismatch: the content is not as long as announced.
	ErrSizeMismatch = errors.New("storage: size mismatch")
)
