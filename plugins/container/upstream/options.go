package upstream

import (
	"errors"
	"log/slog"
	"time"
)

// Option configures a Client beyond its Config.
type Option func(*options) error

type options struct {
	limiters      *Limiters
	burst         int
	logger        *slog.Logger
	userAgent     string
	maxAttempts   int
	backoffBase   time.Duration
	backoffMax    time.Duration
	maxRetryAfter time.Duration
	pageSize      int
}

func defaultOptions() options {
	return options{
		burst:         1,
		logger:        slog.Default(),
		userAgent:     "berth",
		maxAttempts:   5,
		backoffBase:   250 * time.Millisecond,
		backoffMax:    10 * time.Second,
		maxRetryAfter: 60 * time.Second,
		pageSize:      1000,
	}
}

// WithLimiters shares rate limiters between clients: clients of one
// registry given the same *Limiters share one token bucket (and Retry-After
// pauses), so several remotes of one registry synced concurrently in a
// worker keep that registry's limit together. Without it, a Client has its
// own bucket.
func WithLimiters(l *Limiters) Option {
	return func(o *options) error {
		if l == nil {
			return errors.New("upstream: WithLimiters(nil)")
		}
		o.limiters = l
		return nil
	}
}

// WithBurst sets the token bucket's burst, the requests that may go out at
// once after a quiet spell (default 1: requests are evenly spaced).
func WithBurst(n int) Option {
	return func(o *options) error {
		if n < 1 {
			return errors.New("upstream: burst must be at least 1")
		}
		o.burst = n
		return nil
	}
}

// WithLogger sets the logger for retries and pauses (default
// slog.Default()). Nothing secret is logged.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error {
		if l == nil {
			return errors.New("upstream: WithLogger(nil)")
		}
		o.logger = l
		return nil
	}
}

// WithUserAgent sets the User-Agent header (default "berth"), e.g.
// "berth/1.4.0".
func WithUserAgent(ua string) Option {
	return func(o *options) error {
		if ua == "" {
			return errors.New("upstream: empty user agent")
		}
		o.userAgent = ua
		return nil
	}
}

// WithMaxAttempts bounds the attempts of one request, the first included
// (default 5; 1 turns retries off). A blob read resumes at most n-1 times.
func WithMaxAttempts(n int) Option {
	return func(o *options) error {
		if n < 1 {
			return errors.New("upstream: max attempts must be at least 1")
		}
		o.maxAttempts = n
		return nil
	}
}

// WithBackoff sets the exponential backoff between attempts: base after the
// first failure, doubling up to max, each wait jittered to between half and
// all of it (defaults 250ms and 10s). A Retry-After answer overrides it.
func WithBackoff(base, max time.Duration) Option {
	return func(o *options) error {
		if base <= 0 || max < base {
			return errors.New("upstream: backoff needs 0 < base <= max")
		}
		o.backoffBase, o.backoffMax = base, max
		return nil
	}
}

// WithMaxRetryAfter caps how long a Retry-After answer makes us wait
// (default 60s). Waits never go past the context's deadline.
func WithMaxRetryAfter(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return errors.New("upstream: max Retry-After must be positive")
		}
		o.maxRetryAfter = d
		return nil
	}
}

// WithPageSize sets the n asked for per page of tags (default 1000; 0 asks
// for none and takes the registry's default).
func WithPageSize(n int) Option {
	return func(o *options) error {
		if n < 0 {
			return errors.New("upstream: negative page size")
		}
		o.pageSize = n
		return nil
	}
}
