package upstream

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// newRegistry is go-containerregistry's in-memory registry, quiet.
func newRegistry() http.Handler {
	return registry.New(registry.Logger(log.New(io.Discard, "", 0)))
}

// seedServer serves reg directly (no test middleware) while images are
// pushed to it; it returns the host to push to.
func seedServer(t *testing.T, reg http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(reg)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// pushImage pushes a random image to reg under repo with the given tags.
func pushImage(t *testing.T, reg http.Handler, repo string, tags ...string) v1.Image {
	t.Helper()
	host := seedServer(t, reg)
	img, err := random.Image(2048, 2)
	if err != nil {
		t.Fatal(err)
	}
	for _, tag := range tags {
		ref, err := name.NewTag(host+"/"+repo+":"+tag, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Write(ref, img); err != nil {
			t.Fatal(err)
		}
	}
	return img
}

// pushIndex pushes a random multi-arch index (3 images) under repo:tag.
func pushIndex(t *testing.T, reg http.Handler, repo, tag string) v1.ImageIndex {
	t.Helper()
	host := seedServer(t, reg)
	idx, err := random.Index(1024, 1, 3)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.NewTag(host+"/"+repo+":"+tag, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(ref, idx); err != nil {
		t.Fatal(err)
	}
	return idx
}

type middleware func(http.Handler) http.Handler

// chain wraps h in mws, the first outermost.
func chain(h http.Handler, mws ...middleware) http.Handler {
	for i := len(mws) - 1; i >= 0; i-- {
		h = mws[i](h)
	}
	return h
}

// serve starts an httptest server (TLS if tlsOn) for h.
func serve(t *testing.T, h http.Handler, tlsOn bool) *httptest.Server {
	t.Helper()
	var srv *httptest.Server
	if tlsOn {
		srv = httptest.NewTLSServer(h)
	} else {
		srv = httptest.NewServer(h)
	}
	t.Cleanup(srv.Close)
	return srv
}

// requestLog records every request that reaches the server.
type requestLog struct {
	mu   sync.Mutex
	reqs []loggedRequest
}

type loggedRequest struct {
	Method, Path, Query string
	Header              http.Header
	At                  time.Time
}

func (l *requestLog) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		l.mu.Lock()
		l.reqs = append(l.reqs, loggedRequest{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Clone(), time.Now()})
		l.mu.Unlock()
		next.ServeHTTP(w, r)
	})
}

func (l *requestLog) all() []loggedRequest {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]loggedRequest(nil), l.reqs...)
}

// count counts requests with method (any if "") whose path contains part.
func (l *requestLog) count(method, part string) int {
	n := 0
	for _, r := range l.all() {
		if (method == "" || r.Method == method) && strings.Contains(r.Path, part) {
			n++
		}
	}
	return n
}

// paginate makes the registry's tags/list answer at most size tags per page
// with a Link to the next one, as Docker Hub and distribution do (the
// in-memory registry honours n and last but sends no Link).
func paginate(size int) middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodGet || !strings.HasSuffix(r.URL.Path, "/tags/list") {
				next.ServeHTTP(w, r)
				return
			}
			repo := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/v2/"), "/tags/list")
			q := r.URL.Query()
			n := size
			if asked, err := strconv.Atoi(q.Get("n")); err == nil && asked > 0 && asked < n {
				n = asked
			}
			q.Set("n", strconv.Itoa(n))
			r2 := r.Clone(r.Context())
			r2.URL.RawQuery = q.Encode()
			rec := httptest.NewRecorder()
			next.ServeHTTP(rec, r2)
			var page struct {
				Tags []string `json:"tags"`
			}
			if rec.Code == http.StatusOK && json.Unmarshal(rec.Body.Bytes(), &page) == nil && len(page.Tags) == n {
				w.Header().Set("Link", fmt.Sprintf(`</v2/%s/tags/list?n=%d&last=%s>; rel="next"`, repo, n, url.QueryEscape(page.Tags[n-1])))
			}
			copyRecorded(w, rec)
		})
	}
}

func copyRecorded(w http.ResponseWriter, rec *httptest.ResponseRecorder) {
	for k, vs := range rec.Header() {
		w.Header()[k] = vs
	}
	w.WriteHeader(rec.Code)
	w.Write(rec.Body.Bytes())
}

// basicAuth requires Basic credentials on /v2/.
func basicAuth(user, pass string) middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if u, p, ok := r.BasicAuth(); strings.HasPrefix(r.URL.Path, "/v2/") && (!ok || u != user || p != pass) {
				w.Header().Set("WWW-Authenticate", `Basic realm="test registry"`)
				ociError(w, http.StatusUnauthorized, "UNAUTHORIZED", "authentication required")
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

func ociError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"errors":[{"code":%q,"message":%q}]}`, code, msg)
}

// tokenServer puts a Bearer token service in front of a registry, on the
// same host (/token), like distribution's token auth.
type tokenServer struct {
	user, pass string // "": anonymous tokens allowed

	mu     sync.Mutex
	tokens map[string]bool
	scopes []string // asked for, per token request
}

func newTokenServer(user, pass string) *tokenServer {
	return &tokenServer{user: user, pass: pass, tokens: map[string]bool{}}
}

func (ts *tokenServer) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/token" {
			ts.issue(w, r)
			return
		}
		if strings.HasPrefix(r.URL.Path, "/v2/") {
			tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			ts.mu.Lock()
			valid := ok && ts.tokens[tok]
			ts.mu.Unlock()
			if !valid {
				scheme := "http"
				if r.TLS != nil {
					scheme = "https"
				}
				ch := fmt.Sprintf(`Bearer realm="%s://%s/token",service="test-registry"`, scheme, r.Host)
				if parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/v2/"), "/"); len(parts) >= 3 {
					repo := strings.Join(parts[:len(parts)-2], "/") // …/manifests/REF, …/tags/list
					ch += fmt.Sprintf(`,scope="repository:%s:pull"`, repo)
				}
				w.Header().Set("WWW-Authenticate", ch)
				ociError(w, http.StatusUnauthorized, "UNAUTHORIZED", "authentication required")
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

func (ts *tokenServer) issue(w http.ResponseWriter, r *http.Request) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	ts.scopes = append(ts.scopes, strings.Join(r.URL.Query()["scope"], " "))
	if ts.user != "" {
		if u, p, ok := r.BasicAuth(); !ok || u != ts.user || p != ts.pass {
			ociError(w, http.StatusUnauthorized, "UNAUTHORIZED", "incorrect username or password")
			return
		}
	}
	tok := fmt.Sprintf("secret-token-%d", len(ts.tokens)+1)
	ts.tokens[tok] = true
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"token":%q,"expires_in":300}`, tok)
}

// issued is the number of token requests.
func (ts *tokenServer) issued() int {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return len(ts.scopes)
}

// revoke invalidates all tokens, as if they expired.
func (ts *tokenServer) revoke() {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	clear(ts.tokens)
}

// fault is a failure injected in place of an answer.
type fault int

const (
	pass          fault = iota
	tooMany             // 429 with Retry-After: 1
	unavailable         // 503
	dropHead            // connection closed before any answer
	dropBody            // headers and half the body, then the connection closed
	tooManyNoWait       // 429 without Retry-After
)

// faults answers the requests that match, in turn, with the faults of its
// plan; once the plan is used up it lets them through.
type faults struct {
	match func(*http.Request) bool

	mu   sync.Mutex
	plan []fault
	hits int // matching requests
}

func (f *faults) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !f.match(r) {
			next.ServeHTTP(w, r)
			return
		}
		f.mu.Lock()
		flt := pass
		if f.hits < len(f.plan) {
			flt = f.plan[f.hits]
		}
		f.hits++
		f.mu.Unlock()
		switch flt {
		case tooMany:
			w.Header().Set("Retry-After", "1")
			ociError(w, http.StatusTooManyRequests, "TOOMANYREQUESTS", "slow down")
		case tooManyNoWait:
			ociError(w, http.StatusTooManyRequests, "TOOMANYREQUESTS", "slow down")
		case unavailable:
			ociError(w, http.StatusServiceUnavailable, "UNAVAILABLE", "try later")
		case dropHead:
			conn, _, err := http.NewResponseController(w).Hijack()
			if err == nil {
				conn.Close()
			}
		case dropBody:
			rec := httptest.NewRecorder()
			next.ServeHTTP(rec, r)
			conn, buf, err := http.NewResponseController(w).Hijack()
			if err != nil {
				return
			}
			writeHalf(buf, rec)
			conn.Close()
		default:
			next.ServeHTTP(w, r)
		}
	})
}

func (f *faults) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.hits
}

// writeHalf writes rec's status and headers (with the full Content-Length)
// and half its body.
func writeHalf(buf *bufio.ReadWriter, rec *httptest.ResponseRecorder) {
	body := rec.Body.Bytes()
	fmt.Fprintf(buf, "HTTP/1.1 %d %s\r\n", rec.Code, http.StatusText(rec.Code))
	rec.Header().Set("Content-Length", strconv.Itoa(len(body)))
	rec.Header().Write(buf)
	buf.WriteString("\r\n")
	buf.Write(body[:len(body)/2])
	buf.Flush()
}

// pathHas matches requests of method whose path contains part.
func pathHas(method, part string) func(*http.Request) bool {
	return func(r *http.Request) bool { return r.Method == method && strings.Contains(r.URL.Path, part) }
}

// newTestClient builds a client with quick backoff and a quiet logger.
func newTestClient(t *testing.T, cfg Config, opts ...Option) *Client {
	t.Helper()
	opts = append([]Option{WithBackoff(5*time.Millisecond, 50*time.Millisecond), WithLogger(discardLogger())}, opts...)
	c, err := New(cfg, opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func certPEM(cert *x509.Certificate) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}))
}

// clientCert makes a self-signed client certificate and returns it and its
// key as PEM, and a pool that trusts it.
func clientCert(t *testing.T) (certPEMs, keyPEM string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "berth test client"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certPEM(cert), string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})), pool
}

// closedAddr is a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
