package auth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/argon2"
)

// argonParams are argon2id's cost parameters. They are written into every
// hash (PHC string format), so changing the defaults never breaks existing
// hashes.
type argonParams struct {
	memory  uint32 // KiB
	time    uint32
	threads uint8
	saltLen uint32
	keyLen  uint32
}

// defaultArgonParams are one of OWASP's equally strong argon2id settings
// (7 MiB, 5 passes, 1 lane; the cheat sheet lists it beside 19 MiB with 2
// passes, which costs the same CPU). A server checks passwords on every
// container client's token request that misses the credential cache, so the
// setting that needs the least memory per check is the one chosen: with
// hasher.sem a burst of logins holds at most a few of them at once.
var defaultArgonParams = argonParams{memory: 7 * 1024, time: 5, threads: 1, saltLen: 16, keyLen: 32}

// Password length bounds. The upper bound keeps hashing cost predictable.
const (
	MinPasswordLength = 8
	MaxPasswordLength = 1024
)

var errBadHash = errors.New("malformed password hash")

func encodeArgon(p argonParams, salt, key []byte) string {
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.memory, p.time, p.threads, b64.EncodeToString(salt), b64.EncodeToString(key))
}

func decodeArgon(encoded string) (p argonParams, salt, key []byte, err error) {
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" {
		return p, nil, nil, errBadHash
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return p, nil, nil, errBadHash
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.memory, &p.time, &p.threads); err != nil {
		return p, nil, nil, errBadHash
	}
	b64 := base64.RawStdEncoding
	if salt, err = b64.DecodeString(parts[4]); err != nil {
		return p, nil, nil, errBadHash
	}
	if key, err = b64.DecodeString(parts[5]); err != nil || len(key) == 0 {
		return p, nil, nil, errBadHash
	}
	if p.memory == 0 || p.time == 0 || p.threads == 0 || p.memory > 1<<21 || p.time > 64 {
		return p, nil, nil, errBadHash
	}
	p.saltLen, p.keyLen = uint32(len(salt)), uint32(len(key))
	return p, salt, key, nil
}

// hasher computes and checks argon2id hashes, at most a few at once.
type hasher struct {
	params argonParams
	sem    chan struct{}
}

func newHasher(p argonParams) *hasher {
	return &hasher{params: p, sem: make(chan struct{}, max(2, runtime.GOMAXPROCS(0)))}
}

func (h *hasher) acquire(ctx context.Context) error {
	select {
	case h.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (h *hasher) release() { <-h.sem }

// hash returns the PHC-encoded argon2id hash of password with a fresh salt.
func (h *hasher) hash(ctx context.Context, password string) (string, error) {
	salt := make([]byte, h.params.saltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	if err := h.acquire(ctx); err != nil {
		return "", err
	}
	defer h.release()
	key := argon2.IDKey([]byte(password), salt, h.params.time, h.params.memory, h.params.threads, h.params.keyLen)
	return encodeArgon(h.params, salt, key), nil
}

// verify reports whether password matches encoded, in constant time. An
// empty or malformed encoded hash (an unknown user, a user without a
// password) never matches, but costs the same as a real check with the
// current parameters, so that a failed login does not tell whether the
// account exists.
func (h *hasher) verify(ctx context.Context, encoded, password string) (bool, error) {
	real := true
	p, salt, key, err := decodeArgon(encoded)
	if err != nil {
		real = false
		p = h.params
		salt, key = make([]byte, p.saltLen), make([]byte, p.keyLen)
		if _, err := rand.Read(salt); err != nil {
			return false, err
		}
	}
	if err := h.acquire(ctx); err != nil {
		return false, err
	}
	defer h.release()
	got := argon2.IDKey([]byte(password), salt, p.time, p.memory, p.threads, p.keyLen)
	match := subtle.ConstantTimeCompare(got, key) == 1
	return match && real, nil
}

// validatePassword checks a new password's length.
func validatePassword(pw string) error {
	if len(pw) < MinPasswordLength {
		return fmt.Errorf("must be at least %d characters", MinPasswordLength)
	}
	if len(pw) > MaxPasswordLength {
		return fmt.Errorf("must be at most %d bytes", MaxPasswordLength)
	}
	return nil
}

// randomPassword returns a password of 24 characters from a 56-character
// alphabet without look-alikes (about 139 bits), drawn without modulo bias.
func randomPassword() (string, error) {
	const alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnpqrstuvwxyz23456789"
	const limit = 256 - 256%len(alphabet)
	out := make([]byte, 0, 24)
	buf := make([]byte, 32)
	for len(out) < cap(out) {
		if _, err := rand.Read(buf); err != nil {
			return "", err
		}
		for _, b := range buf {
			if int(b) < limit && len(out) < cap(out) {
				out = append(out, alphabet[int(b)%len(alphabet)])
			}
		}
	}
	return string(out), nil
}

// credCache remembers recently verified (username, password) pairs as an
// HMAC under a per-process random key, together with the stored hash they
// matched. An entry only counts while the user's stored hash is unchanged,
// so a new password invalidates it at once.
type credCache struct {
	ttl time.Duration
	now func() time.Time
	key []byte

	mu      sync.Mutex
	entries map[[32]byte]credEntry
}

type credEntry struct {
	hash  string
	until time.Time
}

const credCacheMax = 10000

func newCredCache(ttl time.Duration, now func() time.Time) *credCache {
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	return &credCache{ttl: ttl, now: now, key: key, entries: map[[32]byte]credEntry{}}
}

func (c *credCache) id(username, password string) [32]byte {
	m := hmac.New(sha256.New, c.key)
	m.Write([]byte(strings.ToLower(username)))
	m.Write([]byte{0})
	m.Write([]byte(password))
	var out [32]byte
	copy(out[:], m.Sum(nil))
	return out
}

// hit reports whether (username, password) was verified against storedHash
// within the TTL.
func (c *credCache) hit(username, password, storedHash string) bool {
	if c.ttl == 0 || storedHash == "" {
		return false
	}
	id := c.id(username, password)
	c.mu.Lock()
	e, ok := c.entries[id]
	c.mu.Unlock()
	return ok && c.now().Before(e.until) && subtle.ConstantTimeCompare([]byte(e.hash), []byte(storedHash)) == 1
}

func (c *credCache) remember(username, password, storedHash string) {
	if c.ttl == 0 {
		return
	}
	id := c.id(username, password)
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= credCacheMax {
		for k, e := range c.entries {
			if !now.Before(e.until) {
				delete(c.entries, k)
			}
		}
		if len(c.entries) >= credCacheMax {
			clear(c.entries)
		}
	}
	c.entries[id] = credEntry{hash: storedHash, until: now.Add(c.ttl)}
}
