package upstream

import (
	"context"
	"net/http"
	"net/http/httptrace"
	"slices"
	"sync"
	"testing"
	"time"
)

// checkRate asserts that the request arrival times never exceed a token
// bucket of the given rate and burst: in every window [t_i, t_j] at most
// burst + rate·(t_j − t_i + jitter) requests arrive, jitter being the
// scheduling delay allowed between a request leaving the limiter and the
// server's handler starting (40ms: less than half a request at 10/s).
func checkRate(t *testing.T, times []time.Time, rate float64, burst int) {
	t.Helper()
	slices.SortFunc(times, func(a, b time.Time) int { return a.Compare(b) })
	const jitter = 40 * time.Millisecond
	for i := range times {
		for j := i + 1; j < len(times); j++ {
			n := float64(j - i + 1)
			if allowed := float64(burst) + rate*(times[j].Sub(times[i])+jitter).Seconds(); n > allowed {
				t.Fatalf("%v requests arrived within %v (requests %d..%d): more than %.2f at %g/s, burst %d",
					n, times[j].Sub(times[i]), i, j, allowed, rate, burst)
			}
		}
	}
	span := times[len(times)-1].Sub(times[0])
	t.Logf("%d requests in %v: %.2f requests/s observed (limit %g/s)", len(times), span,
		float64(len(times)-1)/span.Seconds(), rate)
}

func arrivals(l *requestLog) []time.Time {
	var ts []time.Time
	for _, r := range l.all() {
		ts = append(ts, r.At)
	}
	return ts
}

// TestRateLimitHolds measures the requests arriving at the registry while
// 4 goroutines share a client limited to 10 requests/s: token requests to
// the realm, the /v2/ probe, HEADs, retries after 503s and re-sends after
// dropped connections all count.
func TestRateLimitHolds(t *testing.T) {
	const rate = 10
	reg := newRegistry()
	pushImage(t, reg, "team/a", "1.0")
	pushImage(t, reg, "team/b", "1.0")
	ts := newTokenServer("bob", "pw")
	var log requestLog
	f := &faults{match: pathHas(http.MethodHead, "/manifests/"),
		plan: []fault{pass, unavailable, pass, pass, dropHead, pass, unavailable, pass, tooManyNoWait}}
	srv := serve(t, chain(reg, log.middleware, f.middleware, ts.middleware), false)
	c := newTestClient(t, Config{URL: srv.URL, Username: "bob", Password: "pw", RateLimit: rate})

	var wg sync.WaitGroup
	errs := make(chan error, 24)
	for g := range 4 {
		wg.Go(func() {
			for i := range 6 {
				repo := []string{"team/a", "team/b"}[(g+i)%2]
				if _, _, _, err := c.HeadManifest(context.Background(), repo, "1.0"); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	times := arrivals(&log)
	if len(times) < 30 {
		t.Fatalf("only %d requests: %+v", len(times), log.all())
	}
	if ts.issued() != 2 {
		t.Errorf("%d token requests", ts.issued())
	}
	checkRate(t, times, rate, 1)
}

// TestRateLimitShared: two clients of one registry given the same Limiters
// keep its limit together.
func TestRateLimitShared(t *testing.T) {
	const rate = 20
	reg := newRegistry()
	pushImage(t, reg, "app", "1.0")
	var log requestLog
	srv := serve(t, chain(reg, log.middleware), false)
	shared := NewLimiters()
	var wg sync.WaitGroup
	for range 2 {
		c := newTestClient(t, Config{URL: srv.URL, RateLimit: rate}, WithLimiters(shared))
		for range 2 {
			wg.Go(func() {
				for range 5 {
					if _, _, _, err := c.HeadManifest(context.Background(), "app", "1.0"); err != nil {
						t.Error(err)
					}
				}
			})
		}
	}
	wg.Wait()
	times := arrivals(&log)
	if len(times) != 22 { // 2 probes, 20 HEADs
		t.Fatalf("%d requests", len(times))
	}
	checkRate(t, times, rate, 1)
}

func TestLimitersStrictestWins(t *testing.T) {
	l := NewLimiters()
	a := l.get("r.example.com", 10, 3)
	b := l.get("r.example.com", 2, 1)
	l.get("r.example.com", 50, 5)
	l.get("r.example.com", 0, 1)
	if a != b || a.bucket.Limit() != 2 || a.bucket.Burst() != 1 {
		t.Errorf("limit %v burst %d", a.bucket.Limit(), a.bucket.Burst())
	}
	if other := l.get("other.example.com", 0, 1); other == a || other.bucket != nil {
		t.Error("hosts share a limiter")
	}
}

func TestLimiterWaitHonoursContext(t *testing.T) {
	h := NewLimiters().get("r", 0.5, 1) // one request per 2s
	if err := h.wait(context.Background(), true); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := h.wait(ctx, true)
	if err == nil || time.Since(start) > 50*time.Millisecond {
		t.Errorf("err = %v after %v: want an immediate deadline error", err, time.Since(start))
	}
	if err := h.wait(ctx, false); err != nil {
		t.Errorf("an unlimited client waited: %v", err)
	}
	h.pause(time.Now().Add(time.Hour))
	if err := h.wait(ctx, false); err == nil {
		t.Error("a pause past the deadline did not fail")
	}
}

// resender stands for net/http re-sending a request on a new connection
// after a dead keep-alive one: it reports GotConn twice.
type resender struct{}

func (resender) RoundTrip(req *http.Request) (*http.Response, error) {
	if trace := httptrace.ContextClientTrace(req.Context()); trace != nil && trace.GotConn != nil {
		trace.GotConn(httptrace.GotConnInfo{Reused: true})
		trace.GotConn(httptrace.GotConnInfo{})
	}
	return &http.Response{StatusCode: http.StatusOK, Body: http.NoBody, Request: req}, nil
}

func TestLimitTransportMetersResends(t *testing.T) {
	for _, limited := range []bool{true, false} {
		lt := &limitTransport{inner: resender{}, lim: NewLimiters().get("r", 10, 1), limited: limited}
		req, _ := http.NewRequest(http.MethodGet, "http://r/v2/", nil)
		start := time.Now()
		if _, err := lt.RoundTrip(req); err != nil {
			t.Fatal(err)
		}
		// The first send takes the bucket's only token, the re-send waits
		// 100ms for the next.
		if took := time.Since(start); limited != (took >= 80*time.Millisecond) {
			t.Errorf("limited=%v: RoundTrip took %v", limited, took)
		}
	}
}
