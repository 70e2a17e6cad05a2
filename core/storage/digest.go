package storage

import (
	_ "crypto/sha256" // registers SHA-256 for digest.SHA256.Hash
	_ "crypto/sha512" // registers SHA-512 for digest.SHA512.Hash
	"fmt"

	"github.com/opencontainers/go-digest"
)

// ValidateDigest returns nil if d is a well-formed sha256 or sha512 digest
// (lower-case hex of the right length), and otherwise an error matching
// ErrInvalidDigest. Drivers call it before using d in a path or key, so a
// valid digest is always safe there.
func ValidateDigest(d digest.Digest) error {
	if err := d.Validate(); err != nil {
		return fmt.Errorf("%w: %q: %w", ErrInvalidDigest, string(d), err)
	}
	switch d.Algorithm() {
	case digest.SHA256, digest.SHA512:
		return nil
	default:
		return fmt.Errorf("%w: %q: algorithm %s is not accepted", ErrInvalidDigest, string(d), d.Algorithm())
	}
}
