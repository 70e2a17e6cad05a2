package auth

import (
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// failureLimiter limits failed logins per (username, client address) with a
// token bucket: each failure takes a token; with none left, every attempt
// for that pair is refused until one has refilled. Another address, or
// another username, has its own bucket, so an attacker cannot lock a user
// out everywhere.
//
// The buckets live in this process's memory: with several serve replicas
// behind a load balancer, an attacker gets one burst per replica, and a
// restart forgets the buckets. That bounds guessing well enough given
// argon2id's cost; a shared limit would need Redis.
type failureLimiter struct {
	burst  int
	every  rate.Limit
	now    func() time.Time
	mu     sync.Mutex
	bucket map[string]*rate.Limiter
}

// failureLimiterMax bounds memory: when exceeded, full buckets (the same as
// none) are dropped.
const failureLimiterMax = 100000

func newFailureLimiter(burst int, refill time.Duration, now func() time.Time) *failureLimiter {
	return &failureLimiter{burst: burst, every: rate.Every(refill), now: now, bucket: map[string]*rate.Limiter{}}
}

func limiterKey(username, ip string) string { return strings.ToLower(username) + "\x00" + ip }

// check returns a *RateLimitError when the pair has no attempts left.
func (l *failureLimiter) check(username, ip string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.bucket[limiterKey(username, ip)]
	if !ok {
		return nil
	}
	now := l.now()
	if tokens := b.TokensAt(now); tokens < 1 {
		wait := time.Duration((1 - tokens) / float64(l.every) * float64(time.Second))
		return &RateLimitError{RetryAfter: max(wait, time.Second)}
	}
	return nil
}

// fail records a failed attempt.
func (l *failureLimiter) fail(username, ip string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	key := limiterKey(username, ip)
	b, ok := l.bucket[key]
	if !ok {
		if len(l.bucket) >= failureLimiterMax {
			l.sweep(now)
		}
		b = rate.NewLimiter(l.every, l.burst)
		l.bucket[key] = b
	}
	b.AllowN(now, 1)
}

// succeed forgets the pair's failures.
func (l *failureLimiter) succeed(username, ip string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.bucket, limiterKey(username, ip))
}

func (l *failureLimiter) sweep(now time.Time) {
	for k, b := range l.bucket {
		if b.TokensAt(now) >= float64(l.burst) {
			delete(l.bucket, k)
		}
	}
	if len(l.bucket) >= failureLimiterMax {
		clear(l.bucket)
	}
}
