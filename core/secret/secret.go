// Package secret encrypts credentials at rest (AES-256-GCM) with a key
// derived from the server's secret key, and loads or creates that key.
package secret

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// ErrDecrypt means a sealed value could not be opened: wrong key or tampered data.
var ErrDecrypt = errors.New("secret: cannot decrypt value (wrong BERTH_SECRET_KEY or corrupted data)")

const prefix = "v1:"

// Box seals and opens values with one key.
type Box struct {
	aead cipher.AEAD
	key  []byte
}

// New derives the encryption key from secretKey (any length ≥ 16 bytes).
func New(secretKey string) (*Box, error) {
	if len(secretKey) < 16 {
		return nil, fmt.Errorf("secret key must be at least 16 characters")
	}
	key := Derive(secretKey, "berth credential encryption")
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Box{aead: aead, key: []byte(secretKey)}, nil
}

// Derive returns a 32-byte key for one purpose, so that the same secret key
// never serves two purposes directly (encryption, token signing, …).
func Derive(secretKey, purpose string) []byte {
	m := hmac.New(sha256.New, []byte(secretKey))
	m.Write([]byte(purpose))
	return m.Sum(nil)
}

// Seal encrypts plaintext. The empty string stays empty (nothing stored).
func (b *Box) Seal(plaintext string) (string, error) {
	if plaintext == "" {
		return "", nil
	}
	nonce := make([]byte, b.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	out := b.aead.Seal(nonce, nonce, []byte(plaintext), nil)
	return prefix + base64.RawStdEncoding.EncodeToString(out), nil
}

// Open decrypts a value made by Seal.
func (b *Box) Open(sealed string) (string, error) {
	if sealed == "" {
		return "", nil
	}
	if !strings.HasPrefix(sealed, prefix) {
		return "", ErrDecrypt
	}
	raw, err := base64.RawStdEncoding.DecodeString(strings.TrimPrefix(sealed, prefix))
	if err != nil || len(raw) < b.aead.NonceSize() {
		return "", ErrDecrypt
	}
	n := b.aead.NonceSize()
	pt, err := b.aead.Open(nil, raw[:n], raw[n:], nil)
	if err != nil {
		return "", ErrDecrypt
	}
	return string(pt), nil
}

// LoadOrCreateKey returns the key in dataDir/secret.key, creating it (mode
// 0600, 32 random bytes in hex) when it does not exist yet.
func LoadOrCreateKey(dataDir string) (string, error) {
	path := filepath.Join(dataDir, "secret.key")
	if b, err := os.ReadFile(path); err == nil {
		k := strings.TrimSpace(string(b))
		if len(k) < 16 {
			return "", fmt.Errorf("%s: key too short", path)
		}
		return k, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return "", err
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", err
	}
	k := hex.EncodeToString(raw)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, os.ErrExist) { // another process won the race
			return LoadOrCreateKey(dataDir)
		}
		return "", err
	}
	defer f.Close()
	if _, err := f.WriteString(k + "\n"); err != nil {
		return "", err
	}
	return k, f.Sync()
}
