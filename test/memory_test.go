package test

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/core/db"
)

// registryToken fetches a registry bearer token for a scope as the admin.
func registryToken(t testing.TB, s *Server, scope string) string {
	t.Helper()
	u := s.URL + "/token?service=" + url.QueryEscape(s.Addr) + "&scope=" + url.QueryEscape(scope)
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	req.SetBasicAuth("admin", "admin-e2e-password")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Token string `json:"token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != 200 || body.Token == "" {
		t.Fatalf("token for %s: status %d, err %v", scope, resp.StatusCode, err)
	}
	return body.Token
}

// repeatReader yields size bytes by repeating one random block.
type repeatReader struct {
	block []byte
	left  int64
	off   int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	if r.left == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.block[r.off:])
	if int64(n) > r.left {
		n = int(r.left)
	}
	r.off = (r.off + n) % len(r.block)
	r.left -= int64(n)
	return n, nil
}

// peakRSS reads a process's peak resident set size (VmHWM) in bytes.
func peakRSS(t testing.TB, pid int) int64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb * 1024
		}
	}
	t.Fatal("no VmHWM in /proc status")
	return 0
}

// TestBigBlobMemory pushes and pulls a 1 GiB layer (BERTH_TEST_BIG_BLOB_MB
// to change the size) through a real berth serve and checks that the server
// streams it: its peak RSS stays under 100 MiB and the pulled bytes hash to
// the pushed digest.
func TestBigBlobMemory(t *testing.T) {
	sizeMB := int64(1024)
	if v := os.Getenv("BERTH_TEST_BIG_BLOB_MB"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			t.Fatalf("BERTH_TEST_BIG_BLOB_MB=%q", v)
		}
		sizeMB = n
	}
	size := sizeMB << 20
	env := NewEnv(t, db.SQLite, false)
	srv := env.Serve(t, "BERTH_ACCESS_LOG=false", "BERTH_LOG_LEVEL=warn")
	token := registryToken(t, srv, "repository:mem/big:pull,push")
	do := func(method, u string, body io.Reader, length int64, hdr map[string]string) *http.Response {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		t.Cleanup(cancel)
		req, err := http.NewRequestWithContext(ctx, method, u, body)
		if err != nil {
			t.Fatal(err)
		}
		req.ContentLength = length
		req.Header.Set("Authorization", "Bearer "+token)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, u, err)
		}
		return resp
	}
	block := make([]byte, 1<<20)
	if _, err := rand.Read(block); err != nil {
		t.Fatal(err)
	}
	resp := do(http.MethodPost, srv.URL+"/v2/mem/big/blobs/uploads/", nil, 0, nil)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("start upload: %d", resp.StatusCode)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	loc = (&url.URL{Scheme: "http", Host: srv.Addr}).ResolveReference(loc)
	h := sha256.New()
	// A streamed PATCH: no Content-Length, no Content-Range.
	resp = do(http.MethodPatch, loc.String(), io.TeeReader(&repeatReader{block: block, left: size}, h), -1, map[string]string{"Content-Type": "application/octet-stream"})
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("streamed PATCH: %d", resp.StatusCode)
	}
	dgst := fmt.Sprintf("sha256:%x", h.Sum(nil))
	loc2, _ := url.Parse(resp.Header.Get("Location"))
	put := (&url.URL{Scheme: "http", Host: srv.Addr}).ResolveReference(loc2)
	q := put.Query()
	q.Set("digest", dgst)
	put.RawQuery = q.Encode()
	resp = do(http.MethodPut, put.String(), nil, 0, nil)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("finish upload: %d", resp.StatusCode)
	}
	resp = do(http.MethodGet, srv.URL+"/v2/mem/big/blobs/"+dgst, nil, 0, nil)
	h.Reset()
	n, err := io.Copy(h, resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("pull: status %d, %v", resp.StatusCode, err)
	}
	if got := fmt.Sprintf("sha256:%x", h.Sum(nil)); got != dgst || n != size {
		t.Fatalf("pulled %d bytes hashing to %s, want %d bytes %s", n, got, size, dgst)
	}
	rss := peakRSS(t, srv.cmd.Process.Pid)
	t.Logf("pushed and pulled %d MiB; berth serve peak RSS %.1f MiB", sizeMB, float64(rss)/(1<<20))
	if rss > 100<<20 {
		t.Fatalf("berth serve peak RSS %.1f MiB, want under 100 MiB for a %d MiB layer", float64(rss)/(1<<20), sizeMB)
	}
}
