package test

// The registry side of the benchmark: a plain net/http client of the
// distribution API (with the token dance when a registry asks for it), the
// reference registry's process, cheap distinct blobs, and /proc readers.

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

const (
	mediaOCIManifest = "application/vnd.oci.image.manifest.v1+json"
	mediaOCIConfig   = "application/vnd.oci.image.config.v1+json"
	mediaOCILayer    = "application/vnd.oci.image.layer.v1.tar+gzip"
	manifestAccept   = mediaOCIManifest + ", application/vnd.oci.image.index.v1+json, " +
		"application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json"
)

// benchServer is one registry process under test.
type benchServer struct {
	Label string // how the report names it
	URL   string // http://host:port
	PID   int    // the server process, for /proc
	// Exited says how the process ended, or "" while it runs.
	Exited func() string
}

// exitState describes a finished process once done is closed.
func exitState(cmd *exec.Cmd, done <-chan struct{}) func() string {
	return func() string {
		select {
		case <-done:
			return cmd.ProcessState.String()
		default:
			return ""
		}
	}
}

// ---- the reference registry ----

// startReference runs the reference registry (distribution) on a free
// loopback port with filesystem storage in a temporary directory, and waits
// until /v2/ answers. It is stopped when the test ends.
func startReference(t testing.TB, bin, label string) *benchServer {
	t.Helper()
	dir := t.TempDir()
	addr := freeAddr(t)
	secret := make([]byte, 16)
	_, _ = rand.Read(secret)
	// The configuration a default install ships (distribution's example
	// config: in-memory blob descriptor cache), minus authentication, with
	// deletes on and the access log off (Berth runs with its access log off).
	config := fmt.Sprintf(`version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
http:
  addr: %s
  secret: %s
`, filepath.Join(dir, "storage"), addr, hex.EncodeToString(secret))
	cfgPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfgPath, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", cfgPath)
	// distribution v3 always initialises OpenTelemetry tracing; without a
	// collector its default OTLP exporter would retry against localhost:4318.
	cmd.Env = append(os.Environ(),
		"OTEL_TRACES_EXPORTER=none", "OTEL_METRICS_EXPORTER=none", "OTEL_LOGS_EXPORTER=none")
	logs := &logBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("start reference registry: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Signal(syscall.SIGKILL)
			<-done
		}
		if t.Failed() {
			t.Logf("---- %s output ----\n%s", label, tail(logs.String(), 100))
		}
	})
	s := &benchServer{Label: label, URL: "http://" + addr, PID: cmd.Process.Pid, Exited: exitState(cmd, done)}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(s.URL + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s
			}
		}
		select {
		case <-done:
			t.Fatalf("reference registry exited during start:\n%s", tail(logs.String(), 50))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("reference registry not ready after 30s:\n%s", tail(logs.String(), 50))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ---- the client ----

// regClient speaks the distribution API to one registry. Authentication is
// discovered: a 401 carries a WWW-Authenticate challenge; for Bearer it gets
// a token per repository from the realm with Basic credentials and keeps it,
// for Basic it sends the credentials. A request answered 401 is retried once
// after a fresh token, so expiring tokens do not break a long run.
type regClient struct {
	base *url.URL
	hc   *http.Client
	user string
	pass string
	// buffers keep the client's reads large (256 KiB), so that its share of
	// the shared CPUs stays small.
	buffers sync.Pool

	mu     sync.Mutex
	scheme string            // "" (no auth seen), "basic" or "bearer"
	tokens map[string]string // repository ("" for /v2/) -> token
}

func newRegClient(t testing.TB, base, user, pass string) *regClient {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{
		Proxy:               nil,
		MaxIdleConns:        64,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		ReadBufferSize:      64 << 10,
		WriteBufferSize:     64 << 10,
	}
	t.Cleanup(tr.CloseIdleConnections)
	c := &regClient{base: u, hc: &http.Client{Transport: tr}, user: user, pass: pass, tokens: map[string]string{}}
	c.buffers.New = func() any { b := make([]byte, 256<<10); return &b }
	return c
}

// body makes a request body on demand (so a request can be sent again).
type body struct {
	open func() io.Reader
	size int64
	ct   string
}

func bytesBody(b []byte, ct string) *body {
	return &body{open: func() io.Reader { return bytes.NewReader(b) }, size: int64(len(b)), ct: ct}
}

// send performs one request for repository repo (its token scope) and
// returns the response, whose body the caller must close.
func (c *regClient) send(ctx context.Context, repo, method, target string, hdr http.Header, b *body) (*http.Response, error) {
	u, err := c.base.Parse(target)
	if err != nil {
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		req, err := http.NewRequestWithContext(ctx, method, u.String(), nil)
		if err != nil {
			return nil, err
		}
		for k, v := range hdr {
			req.Header[k] = v
		}
		if b != nil {
			req.ContentLength = b.size
			if b.ct != "" {
				req.Header.Set("Content-Type", b.ct)
			}
			if b.size == 0 {
				req.Body = http.NoBody
			} else {
				req.Body = io.NopCloser(b.open())
				req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(b.open()), nil }
			}
		}
		if a := c.authorization(repo); a != "" {
			req.Header.Set("Authorization", a)
		}
		resp, err := c.hc.Do(req)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode != http.StatusUnauthorized || attempt > 0 {
			return resp, nil
		}
		challenge := resp.Header.Get("WWW-Authenticate")
		drain(resp)
		if err := c.authenticate(ctx, repo, challenge); err != nil {
			return nil, fmt.Errorf("%s %s: 401: %w", method, u.Path, err)
		}
	}
}

func (c *regClient) authorization(repo string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch c.scheme {
	case "basic":
		return "Basic " + basicCreds(c.user, c.pass)
	case "bearer":
		if tok := c.tokens[repo]; tok != "" {
			return "Bearer " + tok
		}
	}
	return ""
}

func basicCreds(user, pass string) string {
	req := &http.Request{Header: http.Header{}}
	req.SetBasicAuth(user, pass)
	return strings.TrimPrefix(req.Header.Get("Authorization"), "Basic ")
}

// authenticate answers a challenge: remembers Basic, or fetches a Bearer
// token for repo from the realm.
func (c *regClient) authenticate(ctx context.Context, repo, challenge string) error {
	scheme, params := parseChallenge(challenge)
	switch scheme {
	case "basic":
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.scheme == "basic" {
			return errors.New("basic credentials refused")
		}
		c.scheme = "basic"
		return nil
	case "bearer":
	default:
		return fmt.Errorf("unsupported challenge %q", challenge)
	}
	realm, err := c.base.Parse(params["realm"])
	if err != nil || params["realm"] == "" {
		return fmt.Errorf("bad realm in challenge %q", challenge)
	}
	q := realm.Query()
	if params["service"] != "" {
		q.Set("service", params["service"])
	}
	if repo != "" {
		q.Add("scope", "repository:"+repo+":pull,push")
	} else if params["scope"] != "" {
		q.Add("scope", params["scope"])
	}
	realm.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, realm.String(), nil)
	if err != nil {
		return err
	}
	req.SetBasicAuth(c.user, c.pass)
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("token: %w", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("token from %s: %d %s", realm.Redacted(), resp.StatusCode, snippet(raw))
	}
	var tok struct {
		Token       string `json:"token"`
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(raw, &tok); err != nil {
		return fmt.Errorf("token answer %s: %w", snippet(raw), err)
	}
	if tok.Token == "" {
		tok.Token = tok.AccessToken
	}
	if tok.Token == "" {
		return fmt.Errorf("token answer without a token: %s", snippet(raw))
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.scheme = "bearer"
	c.tokens[repo] = tok.Token
	return nil
}

// authMode says how the registry authenticated us so far.
func (c *regClient) authMode() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch c.scheme {
	case "bearer":
		return "bearer token"
	case "basic":
		return "basic"
	}
	return "none"
}

// parseChallenge parses `Scheme k="v",k2="v, with comma"` into the
// lower-cased scheme and its parameters.
func parseChallenge(h string) (string, map[string]string) {
	h = strings.TrimSpace(h)
	scheme, rest, _ := strings.Cut(h, " ")
	params := map[string]string{}
	for rest = strings.TrimSpace(rest); rest != ""; {
		key, after, ok := strings.Cut(rest, "=")
		if !ok {
			break
		}
		key = strings.ToLower(strings.TrimSpace(key))
		var val string
		if strings.HasPrefix(after, `"`) {
			after = after[1:]
			var sb strings.Builder
			i := 0
			for ; i < len(after) && after[i] != '"'; i++ {
				if after[i] == '\\' && i+1 < len(after) {
					i++
				}
				sb.WriteByte(after[i])
			}
			val = sb.String()
			if i < len(after) {
				i++
			}
			after = after[i:]
		} else {
			end := strings.IndexByte(after, ',')
			if end < 0 {
				end = len(after)
			}
			val, after = strings.TrimSpace(after[:end]), after[end:]
		}
		params[key] = val
		rest = strings.TrimLeft(after, ", ")
	}
	return strings.ToLower(scheme), params
}

func drain(resp *http.Response) {
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
}

func snippet(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

// expect returns an error unless resp has one of the statuses; on error the
// body is consumed and closed.
func expect(resp *http.Response, what string, codes ...int) error {
	for _, c := range codes {
		if resp.StatusCode == c {
			return nil
		}
	}
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	return fmt.Errorf("%s: status %d, want %v: %s", what, resp.StatusCode, codes, snippet(raw))
}

// ping checks that the registry serves the distribution API (authenticating
// if asked to).
func (c *regClient) ping(ctx context.Context) error {
	resp, err := c.send(ctx, "", http.MethodGet, "/v2/", nil, nil)
	if err != nil {
		return err
	}
	if resp.StatusCode == http.StatusNotFound {
		drain(resp)
		return errors.New("GET /v2/ answered 404: this server does not serve the registry API (/v2/) yet")
	}
	if err := expect(resp, "GET /v2/", http.StatusOK); err != nil {
		return err
	}
	drain(resp)
	return nil
}

// pushBlob uploads a blob monolithically: POST an upload, PUT the whole
// body with ?digest=.
func (c *regClient) pushBlob(ctx context.Context, repo, digest string, b *body) error {
	resp, err := c.send(ctx, repo, http.MethodPost, "/v2/"+repo+"/blobs/uploads/", nil, bytesBody(nil, ""))
	if err != nil {
		return err
	}
	if err := expect(resp, "POST upload", http.StatusAccepted); err != nil {
		return err
	}
	loc := resp.Header.Get("Location")
	drain(resp)
	if loc == "" {
		return errors.New("POST upload: no Location")
	}
	u, err := resp.Request.URL.Parse(loc)
	if err != nil {
		return fmt.Errorf("POST upload: Location %q: %w", loc, err)
	}
	q := u.Query()
	q.Set("digest", digest)
	u.RawQuery = q.Encode()
	resp, err = c.send(ctx, repo, http.MethodPut, u.String(), nil, b)
	if err != nil {
		return err
	}
	if err := expect(resp, "PUT upload", http.StatusCreated); err != nil {
		return err
	}
	drain(resp)
	return nil
}

// pullBlob GETs a blob, reading the body fully; verify also hashes it.
func (c *regClient) pullBlob(ctx context.Context, repo, digest string, size int64, verify bool) error {
	resp, err := c.send(ctx, repo, http.MethodGet, "/v2/"+repo+"/blobs/"+digest, nil, nil)
	if err != nil {
		return err
	}
	if err := expect(resp, "GET blob", http.StatusOK); err != nil {
		return err
	}
	defer resp.Body.Close()
	var w io.Writer = io.Discard
	h := sha256.New()
	if verify {
		w = h
	}
	buf := c.buffers.Get().(*[]byte)
	defer c.buffers.Put(buf)
	// struct{ io.Writer } hides io.Discard's ReadFrom, which reads 8 KiB at a time.
	n, err := io.CopyBuffer(struct{ io.Writer }{w}, resp.Body, *buf)
	if err != nil {
		return fmt.Errorf("GET blob %s: %w", digest, err)
	}
	if n != size {
		return fmt.Errorf("GET blob %s: %d bytes, want %d", digest, n, size)
	}
	if verify {
		if got := fmt.Sprintf("sha256:%x", h.Sum(nil)); got != digest {
			return fmt.Errorf("GET blob %s: content hashes to %s", digest, got)
		}
	}
	return nil
}

func (c *regClient) putManifest(ctx context.Context, repo, ref string, m *benchManifest) error {
	resp, err := c.send(ctx, repo, http.MethodPut, "/v2/"+repo+"/manifests/"+ref, nil, bytesBody(m.raw, m.mediaType))
	if err != nil {
		return err
	}
	if err := expect(resp, "PUT manifest "+ref, http.StatusCreated); err != nil {
		return err
	}
	drain(resp)
	return nil
}

// getManifest GETs a manifest by reference with the Accept header of
// container clients, reading it fully; verify checks its digest.
func (c *regClient) getManifest(ctx context.Context, repo, ref string, m *benchManifest, verify bool) error {
	hdr := http.Header{"Accept": {manifestAccept}}
	resp, err := c.send(ctx, repo, http.MethodGet, "/v2/"+repo+"/manifests/"+ref, hdr, nil)
	if err != nil {
		return err
	}
	if err := expect(resp, "GET manifest "+ref, http.StatusOK); err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if len(raw) != len(m.raw) {
		return fmt.Errorf("GET manifest %s: %d bytes, want %d", ref, len(raw), len(m.raw))
	}
	if verify {
		if got := sha256hex(raw); got != m.digest {
			return fmt.Errorf("GET manifest %s: digest %s, want %s", ref, got, m.digest)
		}
		if ct := resp.Header.Get("Content-Type"); ct != m.mediaType {
			return fmt.Errorf("GET manifest %s: Content-Type %q, want %q", ref, ct, m.mediaType)
		}
	}
	return nil
}

// listTags fetches a repository's whole tag list, following Link pages.
// It returns the number of pages and, when count is set, the tags.
func (c *regClient) listTags(ctx context.Context, repo string, count bool) (pages int, tags []string, err error) {
	next := "/v2/" + repo + "/tags/list"
	for next != "" {
		resp, err := c.send(ctx, repo, http.MethodGet, next, nil, nil)
		if err != nil {
			return pages, nil, err
		}
		if err := expect(resp, "GET tags/list", http.StatusOK); err != nil {
			return pages, nil, err
		}
		pages++
		if count {
			var page struct {
				Tags []string `json:"tags"`
			}
			err = json.NewDecoder(resp.Body).Decode(&page)
			tags = append(tags, page.Tags...)
		}
		_, cerr := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err = errors.Join(err, cerr); err != nil {
			return pages, nil, fmt.Errorf("GET tags/list: %w", err)
		}
		next = ""
		if l := nextLink(resp.Header.Values("Link")); l != "" {
			u, err := resp.Request.URL.Parse(l)
			if err != nil {
				return pages, nil, fmt.Errorf("tags/list Link %q: %w", l, err)
			}
			next = u.String()
		}
		if pages > 100000 {
			return pages, nil, errors.New("tags/list: more than 100000 pages")
		}
	}
	return pages, tags, nil
}

// nextLink finds the rel="next" target in Link headers.
func nextLink(values []string) string {
	for _, v := range values {
		for _, part := range strings.Split(v, ",") {
			part = strings.TrimSpace(part)
			if !strings.HasPrefix(part, "<") {
				continue
			}
			end := strings.Index(part, ">")
			if end < 0 {
				continue
			}
			if strings.Contains(strings.ReplaceAll(part[end:], " ", ""), `rel="next"`) ||
				strings.Contains(part[end:], "rel=next") {
				return part[1:end]
			}
		}
	}
	return ""
}

// ---- content ----

// benchManifest is an OCI image manifest with its config and layer blobs.
type benchManifest struct {
	raw       []byte
	digest    string
	mediaType string
	blobs     map[string][]byte // digest -> content (config and layer)
}

// newBenchManifest builds a tiny but valid image: one gzipped tar layer with
// one file, a config that names its diff_id, and the manifest.
func newBenchManifest(t testing.TB) *benchManifest {
	t.Helper()
	var tarBuf bytes.Buffer
	tw := tar.NewWriter(&tarBuf)
	content := []byte("berth benchmark\n")
	hdr := &tar.Header{Name: "bench.txt", Mode: 0o644, Size: int64(len(content)),
		ModTime: time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC), Typeflag: tar.TypeReg}
	if err := tw.WriteHeader(hdr); err != nil {
		t.Fatal(err)
	}
	_, _ = tw.Write(content)
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	var gzBuf bytes.Buffer
	gw := gzip.NewWriter(&gzBuf)
	_, _ = gw.Write(tarBuf.Bytes())
	if err := gw.Close(); err != nil {
		t.Fatal(err)
	}
	layer := gzBuf.Bytes()
	config, err := json.Marshal(map[string]any{
		"architecture": "amd64",
		"os":           "linux",
		"config":       map[string]any{"Cmd": []string{"/bin/true"}},
		"rootfs":       map[string]any{"type": "layers", "diff_ids": []string{sha256hex(tarBuf.Bytes())}},
	})
	if err != nil {
		t.Fatal(err)
	}
	type descriptor struct {
		MediaType string `json:"mediaType"`
		Digest    string `json:"digest"`
		Size      int    `json:"size"`
	}
	raw, err := json.Marshal(struct {
		SchemaVersion int          `json:"schemaVersion"`
		MediaType     string       `json:"mediaType"`
		Config        descriptor   `json:"config"`
		Layers        []descriptor `json:"layers"`
	}{
		SchemaVersion: 2,
		MediaType:     mediaOCIManifest,
		Config:        descriptor{mediaOCIConfig, sha256hex(config), len(config)},
		Layers:        []descriptor{{mediaOCILayer, sha256hex(layer), len(layer)}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return &benchManifest{
		raw:       raw,
		digest:    sha256hex(raw),
		mediaType: mediaOCIManifest,
		blobs:     map[string][]byte{sha256hex(config): config, sha256hex(layer): layer},
	}
}

// push uploads the manifest's blobs to repo and PUTs it under ref.
func (m *benchManifest) push(ctx context.Context, c *regClient, repo, ref string) error {
	for d, b := range m.blobs {
		if err := c.pushBlob(ctx, repo, d, bytesBody(b, "application/octet-stream")); err != nil {
			return err
		}
	}
	return c.putManifest(ctx, repo, ref, m)
}

// blobSource makes distinct random blobs of one size cheaply: all share one
// random body and differ only in their last 16 bytes (a run nonce and the
// blob's index), so a blob's digest costs hashing 16 bytes on top of a saved
// hash state, and its body is never copied.
type blobSource struct {
	size   int64
	common []byte // the first size-16 bytes
	state  []byte // sha256 state after common
	nonce  uint64
}

// benchBlob is one blob of a blobSource.
type benchBlob struct {
	src    *blobSource
	tail   [16]byte
	digest string
}

func newBlobSource(t testing.TB, size int64, seed, nonce uint64) *blobSource {
	t.Helper()
	common := make([]byte, size-16)
	rng := mrand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), 'b', 'e', 'r', 't', 'h'})
	_, _ = rng.Read(common)
	h := sha256.New()
	h.Write(common)
	state, err := h.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return &blobSource{size: size, common: common, state: state, nonce: nonce}
}

func (s *blobSource) blob(i uint64) benchBlob {
	b := benchBlob{src: s}
	binary.BigEndian.PutUint64(b.tail[:8], s.nonce)
	binary.BigEndian.PutUint64(b.tail[8:], i)
	h := sha256.New()
	if err := h.(encoding.BinaryUnmarshaler).UnmarshalBinary(s.state); err != nil {
		panic(err) // a state we just marshalled
	}
	h.Write(b.tail[:])
	b.digest = fmt.Sprintf("sha256:%x", h.Sum(nil))
	return b
}

func (b benchBlob) body() *body {
	return &body{
		open: func() io.Reader {
			return io.MultiReader(bytes.NewReader(b.src.common), bytes.NewReader(b.tail[:]))
		},
		size: b.src.size,
		ct:   "application/octet-stream",
	}
}

// ---- /proc ----

// procCPU returns the user+system CPU time a process has used.
func procCPU(pid int) (time.Duration, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(raw)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: %q", pid, s)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %q", pid, s)
	}
	// Fields 14 and 15 of stat (utime, stime) in clock ticks; USER_HZ is
	// 100 on every Linux we run on.
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return time.Duration(ut+st) * 10 * time.Millisecond, nil
}

// procStatusKB reads a "kB" field (VmHWM, VmRSS) of /proc/<pid>/status.
func procStatusKB(pid int, field string) (int64, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			return strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
		}
	}
	return 0, fmt.Errorf("/proc/%d/status has no %s", pid, field)
}

// TestBenchClientAuth checks the benchmark client's authentication against a
// fake registry: a Bearer challenge with a quoted, comma-holding scope, a
// token per repository from the realm with Basic credentials, reuse of the
// token, and a fresh token when one is refused (expired) mid-run.
func TestBenchClientAuth(t *testing.T) {
	var tokenGets, expired atomic.Int32
	mux := http.NewServeMux()
	var srvURL string
	challenge := func(w http.ResponseWriter, scope string) {
		h := fmt.Sprintf(`Bearer realm="%s/token",service="fake \"svc\""`, srvURL)
		if scope != "" {
			h += fmt.Sprintf(`,scope="%s"`, scope)
		}
		w.Header().Set("WWW-Authenticate", h)
		w.WriteHeader(http.StatusUnauthorized)
	}
	mux.HandleFunc("/token", func(w http.ResponseWriter, r *http.Request) {
		user, pass, ok := r.BasicAuth()
		if !ok || user != "admin" || pass != "pw" || r.URL.Query().Get("service") != `fake "svc"` {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		n := tokenGets.Add(1)
		_ = json.NewEncoder(w).Encode(map[string]string{"access_token": fmt.Sprintf("%d|%s", n, r.URL.Query().Get("scope"))})
	})
	mux.HandleFunc("/v2/", func(w http.ResponseWriter, r *http.Request) {
		tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if r.URL.Path == "/v2/" {
			if tok == "" {
				challenge(w, "")
			}
			return
		}
		_, scope, _ := strings.Cut(tok, "|")
		if scope != "repository:bench/x:pull,push" {
			challenge(w, "repository:bench/x:pull,push")
			return
		}
		// The first token given out for the repository "expires" after one use.
		if strings.HasPrefix(tok, "2|") && expired.Add(1) > 1 {
			challenge(w, "repository:bench/x:pull,push")
			return
		}
		w.Header().Set("Link", `</v2/bench/x/tags/list?last=a&n=1>; rel="next"`)
		if r.URL.Query().Get("last") != "" {
			w.Header().Del("Link")
		}
		_, _ = w.Write([]byte(`{"name":"bench/x","tags":["a"]}`))
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	srvURL = srv.URL

	c := newRegClient(t, srv.URL, "admin", "pw")
	ctx := context.Background()
	if err := c.ping(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		pages, tags, err := c.listTags(ctx, "bench/x", true)
		if err != nil {
			t.Fatalf("list %d: %v", i, err)
		}
		if pages != 2 || len(tags) != 2 {
			t.Fatalf("list %d: %d pages, tags %v; want 2 pages of one tag", i, pages, tags)
		}
	}
	// Tokens: one for /v2/, one for bench/x, one after it expired.
	if n := tokenGets.Load(); n != 3 {
		t.Errorf("%d token requests, want 3", n)
	}
	if got := c.authMode(); !strings.Contains(got, "bearer") {
		t.Errorf("auth mode %q", got)
	}
}

func TestParseChallenge(t *testing.T) {
	scheme, p := parseChallenge(`Bearer realm="http://h:1/token",service="h:1",scope="repository:a/b:pull,push repository:c:pull",error="insufficient_scope"`)
	want := map[string]string{"realm": "http://h:1/token", "service": "h:1",
		"scope": "repository:a/b:pull,push repository:c:pull", "error": "insufficient_scope"}
	if scheme != "bearer" || fmt.Sprint(p) != fmt.Sprint(want) {
		t.Errorf("got %q %v, want bearer %v", scheme, p, want)
	}
	if scheme, p := parseChallenge(`Basic realm=berth`); scheme != "basic" || p["realm"] != "berth" {
		t.Errorf("got %q %v", scheme, p)
	}
	if got := nextLink([]string{`</v2/a/tags/list?n=2&last=b>; rel="next"`}); got != "/v2/a/tags/list?n=2&last=b" {
		t.Errorf("nextLink: %q", got)
	}
}
