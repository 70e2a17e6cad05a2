package upstream

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestRetryRidesOutFaults(t *testing.T) {
	reg := newRegistry()
	img := pushImage(t, reg, "app", "1.0")
	want, _ := img.RawManifest()
	f := &faults{match: pathHas(http.MethodGet, "/manifests/"),
		plan: []fault{tooMany, unavailable, dropHead, dropBody, tooMany}}
	c := newTestClient(t, Config{URL: serve(t, chain(reg, f.middleware), false).URL}, WithMaxAttempts(6))
	start := time.Now()
	raw, _, _, err := c.Manifest(context.Background(), "app", "1.0")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(raw, want) {
		t.Error("wrong manifest")
	}
	if f.count() != 6 {
		t.Errorf("%d attempts, want 6", f.count())
	}
	// Two Retry-After: 1 answers: two seconds at least.
	if d := time.Since(start); d < 2*time.Second {
		t.Errorf("took %v; Retry-After not honoured", d)
	}
}

func TestRetryGivesUp(t *testing.T) {
	reg := newRegistry()
	pushImage(t, reg, "app", "1.0")
	for _, tc := range []struct {
		name string
		flt  fault
		kind error
	}{
		{"503", unavailable, ErrUnavailable},
		{"dropped", dropHead, ErrUnavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &faults{match: pathHas(http.MethodGet, "/tags/list"), plan: []fault{tc.flt, tc.flt, tc.flt, tc.flt}}
			c := newTestClient(t, Config{URL: serve(t, chain(reg, f.middleware), false).URL}, WithMaxAttempts(3))
			_, err := c.Tags(context.Background(), "app")
			if !errors.Is(err, tc.kind) || !IsTemporary(err) {
				t.Fatalf("err = %v, want temporary %v", err, tc.kind)
			}
			// net/http sends a GET once more by itself when a reused
			// connection dies before answering; the limiter counts those
			// sends too (see limitTransport).
			if n := f.count(); n < 3 || n > 6 {
				t.Errorf("%d attempts, want 3 (up to 6 with net/http's own re-sends)", n)
			}
		})
	}
}

// always answers 429 with the given Retry-After.
func always429(retryAfter string, hits *int) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		*hits++
		w.Header().Set("Retry-After", retryAfter)
		ociError(w, http.StatusTooManyRequests, "TOOMANYREQUESTS", "slow down")
	})
}

func TestRetryAfterCancel(t *testing.T) {
	var hits int
	c := newTestClient(t, Config{URL: serve(t, always429("30", &hits), false).URL})
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel)
	start := time.Now()
	err := c.Ping(ctx)
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("returned after %v", d)
	}
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	if hits != 1 {
		t.Errorf("%d requests", hits)
	}
}

func TestRetryAfterPastDeadline(t *testing.T) {
	var hits int
	c := newTestClient(t, Config{URL: serve(t, always429("30", &hits), false).URL})
	start := time.Now()
	err := c.Ping(ctxTimeout(t, 3*time.Second))
	if d := time.Since(start); d > time.Second {
		t.Errorf("waited %v for a Retry-After past the deadline", d)
	}
	if !errors.Is(err, ErrRateLimited) || !IsTemporary(err) || !strings.Contains(err.Error(), "429") {
		t.Fatalf("err = %v", err)
	}
	// The pause holds for the registry: the next request does not go out
	// but says why at once.
	err = c.Ping(ctxTimeout(t, 3*time.Second))
	if !errors.Is(err, ErrRateLimited) || hits != 1 {
		t.Fatalf("second ping: %v after %d requests", err, hits)
	}
}

func TestRetryAfterCapped(t *testing.T) {
	var hits int
	c := newTestClient(t, Config{URL: serve(t, always429("3600", &hits), false).URL},
		WithMaxRetryAfter(100*time.Millisecond), WithMaxAttempts(3))
	start := time.Now()
	err := c.Ping(context.Background())
	if d := time.Since(start); d < 200*time.Millisecond || d > 2*time.Second {
		t.Errorf("took %v, want about 2×100ms", d)
	}
	if !errors.Is(err, ErrRateLimited) || hits != 3 {
		t.Fatalf("err = %v after %d requests", err, hits)
	}
}

func TestRetryAfterParse(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"1", time.Second, true},
		{" 120 ", 2 * time.Minute, true},
		{"0", 0, true},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second, true},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0, true},
		{"", 0, false},
		{"-5", 0, false},
		{"soon", 0, false},
		{"99999999999999", 24 * time.Hour, true},
	} {
		got, ok := retryAfter(tc.in, now)
		if got != tc.want || ok != tc.ok {
			t.Errorf("retryAfter(%q) = %v %v, want %v %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestBackoff(t *testing.T) {
	for attempt := 1; attempt <= 8; attempt++ {
		full := min(100*time.Millisecond<<(attempt-1), time.Second)
		for range 50 {
			if d := backoff(100*time.Millisecond, time.Second, attempt); d < full/2 || d > full {
				t.Fatalf("attempt %d: %v not in [%v, %v]", attempt, d, full/2, full)
			}
		}
	}
}

func TestOnlyGetAndHeadAreRetried(t *testing.T) {
	for _, tc := range []struct {
		method string
		body   bool
		want   bool
	}{
		{http.MethodGet, false, true},
		{http.MethodHead, false, true},
		{http.MethodPost, true, false},
		{http.MethodPost, false, false},
		{http.MethodPut, true, false},
		{http.MethodGet, true, false},
	} {
		req, _ := http.NewRequest(tc.method, "http://x/", nil)
		if tc.body {
			req, _ = http.NewRequest(tc.method, "http://x/", strings.NewReader("x"))
		}
		if got := replayable(req); got != tc.want {
			t.Errorf("%s body=%v: %v", tc.method, tc.body, got)
		}
	}
}
