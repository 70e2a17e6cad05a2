package secret

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSealOpen(t *testing.T) {
	b, err := New("0123456789abcdef0123")
	if err != nil {
		t.Fatal(err)
	}
	for _, pt := range []string{"hunter2", "ünïcode ✓", strings.Repeat("x", 5000)} {
		s, err := b.Seal(pt)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(s, pt) {
			t.Fatalf("sealed value contains the plaintext")
		}
		got, err := b.Open(s)
		if err != nil || got != pt {
			t.Fatalf("Open = %q, %v; want %q", got, err, pt)
		}
		s2, _ := b.Seal(pt)
		if s2 == s {
			t.Fatalf("two seals of the same value are equal: nonce reuse")
		}
	}
	if s, _ := b.Seal(""); s != "" {
		t.Fatalf("empty value sealed to %q", s)
	}
}

func TestOpenWrongKeyOrTampered(t *testing.T) {
	a, _ := New("0123456789abcdef0123")
	b, _ := New("another-key-entirely-000")
	s, _ := a.Seal("password")
	if _, err := b.Open(s); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("wrong key: err = %v", err)
	}
	tampered := s[:len(s)-2] + "AA"
	if _, err := a.Open(tampered); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("tampered: err = %v", err)
	}
	if _, err := a.Open("plain"); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("unsealed: err = %v", err)
	}
	if _, err := New("short"); err == nil {
		t.Fatal("short key accepted")
	}
}

func TestLoadOrCreateKey(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	k1, err := LoadOrCreateKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(dir, "secret.key"))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, want 0600", st.Mode().Perm())
	}
	k2, err := LoadOrCreateKey(dir)
	if err != nil || k2 != k1 {
		t.Fatalf("second load = %q, %v; want the same key", k2, err)
	}
}
