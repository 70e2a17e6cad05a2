package upstream

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptrace"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// Limiters holds one rate limiter per registry host, to be shared by the
// clients of a worker (WithLimiters). It is safe for concurrent use; the
// zero value is not: use NewLimiters.
//
// When clients of one registry are configured with different rates, the
// strictest one holds for all clients that have a rate (the registry cannot
// tell them apart); clients without a rate are not slowed by the bucket but
// do honour the registry's Retry-After pauses, which hold for every client
// of the host.
type Limiters struct {
	mu    sync.Mutex
	hosts map[string]*hostLimiter
}

// NewLimiters returns an empty set of limiters.
func NewLimiters() *Limiters { return &Limiters{hosts: map[string]*hostLimiter{}} }

// get returns host's limiter, tightened to r requests/second (r > 0) with
// the given burst.
func (l *Limiters) get(host string, r float64, burst int) *hostLimiter {
	l.mu.Lock()
	defer l.mu.Unlock()
	h := l.hosts[host]
	if h == nil {
		h = &hostLimiter{host: host}
		l.hosts[host] = h
	}
	if r > 0 {
		h.tighten(rate.Limit(r), burst)
	}
	return h
}

// hostLimiter is one registry's token bucket and its Retry-After pause.
type hostLimiter struct {
	host string

	mu     sync.Mutex
	bucket *rate.Limiter // nil until a client with a rate comes
	until  time.Time     // no requests before this (Retry-After)
}

func (h *hostLimiter) tighten(r rate.Limit, burst int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.bucket == nil {
		h.bucket = rate.NewLimiter(r, burst)
		return
	}
	if r < h.bucket.Limit() {
		h.bucket.SetLimit(r)
	}
	if burst < h.bucket.Burst() {
		h.bucket.SetBurst(burst)
	}
}

// pause holds every request to the host until t.
func (h *hostLimiter) pause(t time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if t.After(h.until) {
		h.until = t
	}
}

// wait blocks until a request may go: after any pause and, if limited,
// once the bucket has a token. It returns at once when ctx ends, or when
// its deadline comes before the request could go.
//
// The token is taken at the moment the request goes, never reserved ahead
// (rate.Limiter.Wait reserves a slot, then sleeps): a goroutine that wakes
// late from a reservation (GC, a busy scheduler) would go out right before
// the next one's slot, and the registry would see two requests closer than
// the limit allows. Taking tokens when leaving keeps the bucket's bound on
// the actual sending times; waiters that lose the race sleep again.
func (h *hostLimiter) wait(ctx context.Context, limited bool) error {
	for {
		h.mu.Lock()
		until, bucket := h.until, h.bucket
		h.mu.Unlock()
		now := time.Now()
		var d time.Duration
		switch {
		case now.Before(until):
			d = until.Sub(now)
		case !limited || bucket == nil:
			return nil
		case bucket.AllowN(now, 1):
			return nil
		default:
			missing := 1 - bucket.TokensAt(now)
			d = max(time.Duration(missing/float64(bucket.Limit())*float64(time.Second)), time.Millisecond)
		}
		if dl, ok := ctx.Deadline(); ok && now.Add(d).After(dl) {
			if now.Before(until) {
				return fmt.Errorf("%w: registry asked for a pause until %s: %w", ErrRateLimited, until.Format(time.RFC3339), context.DeadlineExceeded)
			}
			return fmt.Errorf("waiting for the rate limit (%g requests/s): %w", float64(bucket.Limit()), context.DeadlineExceeded)
		}
		if err := sleep(ctx, d); err != nil {
			return err
		}
	}
}

// limitTransport makes every request wait for its host limiter. net/http
// itself sends a GET or HEAD again, transparently, when a reused
// keep-alive connection turns out to be dead (and HTTP/2 on a refused
// stream); those sends wait for the limiter too, from the GotConn hook that
// precedes each of them.
type limitTransport struct {
	inner   http.RoundTripper
	lim     *hostLimiter
	limited bool
}

func (t *limitTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	if err := t.lim.wait(ctx, t.limited); err != nil {
		if req.Body != nil {
			req.Body.Close() // RoundTrip must close the body, even on errors
		}
		return nil, err
	}
	var sends atomic.Int32
	trace := &httptrace.ClientTrace{GotConn: func(httptrace.GotConnInfo) {
		if sends.Add(1) > 1 {
			// A transparent re-send. Should ctx end meanwhile, net/http
			// abandons the request.
			_ = t.lim.wait(ctx, t.limited)
		}
	}}
	return t.inner.RoundTrip(req.WithContext(httptrace.WithClientTrace(ctx, trace)))
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
