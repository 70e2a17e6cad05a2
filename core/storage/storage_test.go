package storage_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/core/storage"
)

func TestValidateDigest(t *testing.T) {
	hex64, hex128 := strings.Repeat("0a", 32), strings.Repeat("0a", 64)
	tests := []struct {
		d    digest.Digest
		want error
	}{
		{digest.Digest("sha256:" + hex64), nil},
		{digest.Digest("sha512:" + hex128), nil},
		{digest.SHA256.FromString("x"), nil},
		{"", storage.ErrInvalidDigest},
		{"sha256:xyz", storage.ErrInvalidDigest},
		{digest.Digest("sha256:" + strings.ToUpper(hex64)), storage.ErrInvalidDigest},
		{digest.Digest("sha512:" + hex64), storage.ErrInvalidDigest},
		{digest.Digest("sha384:" + strings.Repeat("0a", 48)), storage.ErrInvalidDigest},
		{"md5:d41d8cd98f00b204e9800998ecf8427e", storage.ErrInvalidDigest},
		{"sha256:../../etc/passwd", storage.ErrInvalidDigest},
	}
	for _, tc := range tests {
		if err := storage.ValidateDigest(tc.d); !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
			t.Errorf("ValidateDigest(%q) = %v, want %v", tc.d, err, tc.want)
		}
	}
}

func TestValidUploadID(t *testing.T) {
	tests := []struct {
		id   string
		want bool
	}{
		{"3f2b9a4e-1c7d-4e2a-9b1f-6d8c0e5a7b21", true},
		{"a", true},
		{"A1-b_2.c", true},
		{strings.Repeat("z", storage.MaxUploadIDLength), true},
		{strings.Repeat("z", storage.MaxUploadIDLength+1), false},
		{"", false},
		{".", false},
		{"..", false},
		{"../x", false},
		{"a/b", false},
		{`a\b`, false},
		{"-a", false},
		{"a b", false},
		{"a\x00", false},
		{"é", false},
	}
	for _, tc := range tests {
		if got := storage.ValidUploadID(tc.id); got != tc.want {
			t.Errorf("ValidUploadID(%q) = %v, want %v", tc.id, got, tc.want)
		}
	}
}
