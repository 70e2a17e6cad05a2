package upstream

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// maxBufferedBody bounds the successful GET bodies that the retry layer
// reads whole before handing the response on, so that a connection dropped
// mid-body is retried like one dropped before the answer. Larger bodies, and
// blobs (marked with streamBody), are streamed; blob reads resume by
// themselves.
const maxBufferedBody = 16 << 20

// retryTransport retries GET and HEAD requests that failed for a reason a
// later attempt may cure: 408, 429 and 5xx answers, dropped or reset
// connections, timeouts. It waits with exponential backoff and jitter, or as
// long as Retry-After says (capped, and never past the context's deadline),
// and makes a 429's or 503's Retry-After a pause for the whole host. Each
// attempt is a fresh clone of the request and goes through the rate limiter
// below. Other methods are sent once: their bodies are not replayed.
type retryTransport struct {
	inner         http.RoundTripper
	lim           *hostLimiter
	log           *slog.Logger
	maxAttempts   int
	backoffBase   time.Duration
	backoffMax    time.Duration
	maxRetryAfter time.Duration
	scrub         func(string) string // removes secrets from logged errors
}

// retryStatus are the answers worth another attempt.
var retryStatus = map[int]bool{
	http.StatusRequestTimeout:      true,
	http.StatusTooManyRequests:     true,
	http.StatusInternalServerError: true,
	http.StatusBadGateway:          true,
	http.StatusServiceUnavailable:  true,
	http.StatusGatewayTimeout:      true,
}

func (t *retryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if !replayable(req) {
		return t.inner.RoundTrip(req)
	}
	ctx := req.Context()
	for attempt := 1; ; attempt++ {
		resp, err := t.inner.RoundTrip(req.Clone(ctx))
		if err == nil && req.Method == http.MethodGet && resp.StatusCode/100 == 2 && !isStreamed(ctx) {
			if err = bufferBody(resp); err != nil {
				resp = nil
			}
		}
		wait, retry := t.decide(ctx, resp, err, attempt)
		if !retry {
			return resp, err
		}
		if dl, ok := ctx.Deadline(); ok && time.Now().Add(wait).After(dl) {
			// The next attempt could not happen in time: give the caller
			// this answer now rather than the deadline's error later.
			return resp, err
		}
		var reason slog.Attr
		if err != nil {
			reason = slog.String("err", t.scrub(err.Error()))
		} else {
			reason = slog.Int("status", resp.StatusCode)
			discard(resp)
		}
		t.log.DebugContext(ctx, "retrying registry request", "method", req.Method, "url", redactURL(req.URL),
			"attempt", attempt, reason, "wait", wait)
		if err := sleep(ctx, wait); err != nil {
			return nil, err
		}
	}
}

// decide says whether an attempt's outcome is retried, and after how long.
// A 429's or 503's Retry-After pauses the whole host (for all goroutines
// and clients sharing its limiter) even when this request gives up.
func (t *retryTransport) decide(ctx context.Context, resp *http.Response, err error, attempt int) (time.Duration, bool) {
	var ra time.Duration
	if resp != nil && retryStatus[resp.StatusCode] {
		if d, ok := retryAfter(resp.Header.Get("Retry-After"), time.Now()); ok && d > 0 {
			if d > t.maxRetryAfter {
				t.log.WarnContext(ctx, "registry asked for a long pause; waiting less", "host", t.lim.host,
					"retry_after", d, "waiting", t.maxRetryAfter)
				d = t.maxRetryAfter
			}
			if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
				t.lim.pause(time.Now().Add(d))
			}
			ra = d
		}
	}
	switch {
	case attempt >= t.maxAttempts || ctx.Err() != nil:
		return 0, false
	case err != nil:
		return t.backoff(attempt), retryableError(err)
	case !retryStatus[resp.StatusCode]:
		return 0, false
	case ra > 0:
		return ra, true
	default:
		return t.backoff(attempt), true
	}
}

func (t *retryTransport) backoff(attempt int) time.Duration {
	return backoff(t.backoffBase, t.backoffMax, attempt)
}

// backoff is the jittered wait after the attempt-th failure: base·2^(n-1),
// capped at ceiling, then a random duration between half of that and all
// of it.
func backoff(base, ceiling time.Duration, attempt int) time.Duration {
	d := base
	for i := 1; i < attempt && d < ceiling; i++ {
		d *= 2
	}
	d = min(d, ceiling)
	return d/2 + rand.N(d/2+1)
}

// replayable: only GET and HEAD without a body are sent again.
func replayable(req *http.Request) bool {
	return (req.Method == http.MethodGet || req.Method == http.MethodHead) &&
		(req.Body == nil || req.Body == http.NoBody)
}

// retryAfter parses a Retry-After value: delay seconds or an HTTP date.
func retryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs < 0 {
			return 0, false
		}
		return time.Duration(min(secs, int64(24*time.Hour/time.Second))) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}

// retryableError reports whether a request that failed with err (no
// response) may succeed when sent again: a connection reset or dropped, a
// truncated body, a timeout after connecting. Failures to connect at all
// (refused, unreachable, unresolvable), TLS and proxy failures and refused
// redirects are final: retrying them only delays the answer.
func retryableError(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var (
		dns         *net.DNSError
		op          *net.OpError
		unknownCA   x509.UnknownAuthorityError
		wrongHost   x509.HostnameError
		invalidCert x509.CertificateInvalidError
		notTLS      tls.RecordHeaderError
		redirect    *redirectError
		proxy       *proxyStatusError
	)
	switch {
	case errors.As(err, &redirect), errors.As(err, &proxy),
		errors.As(err, &unknownCA), errors.As(err, &wrongHost),
		errors.As(err, &invalidCert), errors.As(err, &notTLS):
		return false
	case errors.As(err, &dns):
		return dns.IsTemporary || dns.IsTimeout
	case errors.As(err, &op) && (op.Op == "dial" || op.Op == "proxyconnect" || op.Op == "remote error"):
		return false
	}
	return errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, net.ErrClosed) ||
		isTimeout(err)
}

// bufferBody reads a small body whole, so that a failure to read it becomes
// the attempt's error. Bodies longer than maxBufferedBody are handed on
// partly read.
func bufferBody(resp *http.Response) error {
	if resp.ContentLength > maxBufferedBody {
		return nil
	}
	buf, err := io.ReadAll(io.LimitReader(resp.Body, maxBufferedBody+1))
	if err != nil {
		resp.Body.Close()
		return err
	}
	if len(buf) > maxBufferedBody {
		resp.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(buf), resp.Body), resp.Body}
		return nil
	}
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(buf))
	return nil
}

// discard drains a little of a response's body, so that its connection
// may be reused, and closes it.
func discard(resp *http.Response) {
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
}

// streamKey marks a context whose GET bodies the retry layer must not
// buffer.
type streamKey struct{}

func streamBody(ctx context.Context) context.Context {
	return context.WithValue(ctx, streamKey{}, true)
}

func isStreamed(ctx context.Context) bool { return ctx.Value(streamKey{}) != nil }
