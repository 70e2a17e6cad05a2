package upstream

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/opencontainers/go-digest"
)

// layerOf returns an image's first layer: digest and bytes.
func layerOf(t *testing.T, img v1.Image) (digest.Digest, []byte) {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	d, _ := layers[0].Digest()
	rc, err := layers[0].Compressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return digest.Digest(d.String()), b
}

// fetch reads a blob through VerifyingReader.
func fetch(c *Client, repo string, d digest.Digest) ([]byte, int64, error) {
	rc, size, err := c.Blob(context.Background(), repo, d)
	if err != nil {
		return nil, 0, err
	}
	defer rc.Close()
	v, err := VerifyingReader(rc, d, size)
	if err != nil {
		return nil, 0, err
	}
	b, err := io.ReadAll(v)
	return b, size, err
}

func TestBlob(t *testing.T) {
	reg := newRegistry()
	img := pushImage(t, reg, "app", "1.0")
	d, want := layerOf(t, img)
	c := newTestClient(t, Config{URL: serve(t, reg, false).URL})
	got, size, err := fetch(c, "app", d)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) || size != int64(len(want)) {
		t.Errorf("got %d bytes, size %d, want %d", len(got), size, len(want))
	}
	_, _, err = fetch(c, "app", digest.FromString("nothing"))
	if !errors.Is(err, ErrNotFound) {
		t.Errorf("missing blob: %v", err)
	}
}

func TestBlobTampered(t *testing.T) {
	reg := newRegistry()
	img := pushImage(t, reg, "app", "1.0")
	d, _ := layerOf(t, img)
	srv := serve(t, chain(reg, rewrite(pathHas(http.MethodGet, "/blobs/"), flip)), false)
	c := newTestClient(t, Config{URL: srv.URL})
	_, _, err := fetch(c, "app", d)
	if !errors.Is(err, ErrDigestMismatch) || !strings.Contains(err.Error(), "not "+string(d)) {
		t.Fatalf("err = %v", err)
	}
}

func TestVerifyingReader(t *testing.T) {
	data := []byte("hello, registry")
	d := digest.FromBytes(data)
	for _, tc := range []struct {
		name string
		body []byte
		d    digest.Digest
		size int64
		want string // "" = ok
	}{
		{"ok", data, d, int64(len(data)), ""},
		{"ok, size unknown", data, d, -1, ""},
		{"sha512", data, digest.SHA512.FromBytes(data), -1, ""},
		{"changed", []byte("hello, REGISTRY"), d, int64(len(data)), "content hashes to"},
		{"short", data[:5], d, int64(len(data)), "has 5 bytes"},
		{"long", append(bytes.Clone(data), '!'), d, int64(len(data)), "longer than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := VerifyingReader(io.NopCloser(bytes.NewReader(tc.body)), tc.d, tc.size)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(v)
			if tc.want == "" {
				if err != nil || !bytes.Equal(got, data) {
					t.Fatalf("%q %v", got, err)
				}
				return
			}
			if !errors.Is(err, ErrDigestMismatch) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			if tc.size >= 0 && int64(len(got)) > tc.size {
				t.Errorf("delivered %d bytes of a %d-byte blob", len(got), tc.size)
			}
		})
	}
	if _, err := VerifyingReader(io.NopCloser(nil), "sha256:nope", 0); !errors.Is(err, ErrInvalidName) {
		t.Errorf("bad digest: %v", err)
	}
}

func TestBlobResumes(t *testing.T) {
	reg := newRegistry()
	img := pushImage(t, reg, "app", "1.0")
	d, want := layerOf(t, img)
	for _, tc := range []struct {
		name        string
		ignoreRange bool // the server answers 200 with the whole blob
		refuseRange bool // the server answers 416
	}{{"with Range", false, false}, {"server ignores Range", true, false}, {"server refuses Range", false, true}} {
		t.Run(tc.name, func(t *testing.T) {
			var log requestLog
			f := &faults{match: pathHas(http.MethodGet, "/blobs/"), plan: []fault{dropBody, dropBody}}
			noRange := func(next http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if tc.ignoreRange {
						r.Header.Del("Range")
					}
					if tc.refuseRange && r.Header.Get("Range") != "" {
						ociError(w, http.StatusRequestedRangeNotSatisfiable, "BLOB_UNKNOWN", "no ranges here")
						return
					}
					next.ServeHTTP(w, r)
				})
			}
			c := newTestClient(t, Config{URL: serve(t, chain(reg, log.middleware, f.middleware, noRange), false).URL})
			got, _, err := fetch(c, "app", d)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("got %d bytes, want %d", len(got), len(want))
			}
			// Refused ranges: the second GET's 416 (cut short by the
			// second fault) sends the third without a Range.
			if f.count() != 3 {
				t.Errorf("%d blob GETs, want 3", f.count())
			}
			var ranges []string
			for _, r := range log.all() {
				if strings.Contains(r.Path, "/blobs/") {
					ranges = append(ranges, r.Header.Get("Range"))
				}
			}
			if want := fmt.Sprintf("bytes=%d-%d", len(want)/2, len(want)-1); ranges[0] != "" || ranges[1] != want {
				t.Errorf("ranges %q, want [\"\" %q …]", ranges, want)
			}
		})
	}
}

func TestBlobResumeGivesUp(t *testing.T) {
	reg := newRegistry()
	img := pushImage(t, reg, "app", "1.0")
	d, _ := layerOf(t, img)
	f := &faults{match: pathHas(http.MethodGet, "/blobs/"), plan: []fault{dropBody, dropBody, dropBody, dropBody}}
	c := newTestClient(t, Config{URL: serve(t, chain(reg, f.middleware), false).URL}, WithMaxAttempts(3))
	_, _, err := fetch(c, "app", d)
	if !errors.Is(err, ErrUnavailable) || !errors.Is(err, io.ErrUnexpectedEOF) || !IsTemporary(err) {
		t.Fatalf("err = %v", err)
	}
	if f.count() != 3 {
		t.Errorf("%d GETs, want 3", f.count())
	}
}

func TestBlobRedirect(t *testing.T) {
	reg := newRegistry()
	img := pushImage(t, reg, "app", "1.0")
	d, want := layerOf(t, img)
	var stLog requestLog
	st := serve(t, stLog.middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(len(want)))
		w.Write(want)
	})), false)
	for _, host := range []string{"127.0.0.1", "localhost"} {
		t.Run(host, func(t *testing.T) {
			stURL, _ := url.Parse(st.URL)
			loc := fmt.Sprintf("http://%s:%s/bucket/blob?X-Amz-Signature=sig", host, stURL.Port())
			redirect := func(next http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/") {
						http.Redirect(w, r, loc, http.StatusTemporaryRedirect)
						return
					}
					next.ServeHTTP(w, r)
				})
			}
			srv := serve(t, chain(reg, basicAuth("user", "pass"), redirect), false)
			c := newTestClient(t, Config{URL: srv.URL, Username: "user", Password: "pass"})
			got, size, err := fetch(c, "app", d)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) || size != int64(len(want)) {
				t.Fatalf("got %d bytes (size %d)", len(got), size)
			}
			reqs := stLog.all()
			last := reqs[len(reqs)-1]
			if a := last.Header.Get("Authorization"); a != "" {
				t.Errorf("storage on %s got Authorization %q", host, a)
			}
			if last.Header.Get("User-Agent") != "berth" {
				t.Errorf("storage got User-Agent %q", last.Header.Get("User-Agent"))
			}
		})
	}
}

// TestGoRedirectKeepsAuthorizationOnSameHostName checks the net/http
// behaviour checkRedirect makes up for: Authorization is dropped on a
// redirect to another host name, but kept for the same name on another
// port.
func TestGoRedirectKeepsAuthorizationOnSameHostName(t *testing.T) {
	var got []string
	st := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.Header.Get("Authorization"))
	}), false)
	stURL, _ := url.Parse(st.URL)
	for _, host := range []string{"localhost", "127.0.0.1"} {
		src := serve(t, http.RedirectHandler("http://"+host+":"+stURL.Port()+"/x", http.StatusFound), false)
		req, _ := http.NewRequest(http.MethodGet, src.URL, nil) // 127.0.0.1
		req.Header.Set("Authorization", "Basic c2VjcmV0")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	if len(got) != 2 || got[0] != "" || got[1] == "" {
		t.Errorf("Authorization seen by the target: %q; net/http changed, revisit checkRedirect's comment", got)
	}
}

func TestRedirectRefused(t *testing.T) {
	reg := newRegistry()
	img := pushImage(t, reg, "app", "1.0")
	d, _ := layerOf(t, img)
	plainSt := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}), false)
	for _, tc := range []struct {
		name, loc string
		tlsOn     bool
		want      string
	}{
		{"file scheme", "file:///etc/passwd", false, `scheme "file"`},
		{"ftp scheme", "ftp://127.0.0.1/blob", false, `scheme "ftp"`},
		{"https to http", plainSt.URL + "/blob", true, "https to plain http"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			redirect := func(next http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if strings.Contains(r.URL.Path, "/blobs/") {
						w.Header().Set("Location", tc.loc)
						w.WriteHeader(http.StatusFound)
						return
					}
					next.ServeHTTP(w, r)
				})
			}
			srv := serve(t, chain(reg, redirect), tc.tlsOn)
			cfg := Config{URL: srv.URL}
			if tc.tlsOn {
				cfg.CACert = certPEM(srv.Certificate())
			}
			c := newTestClient(t, cfg)
			_, _, err := c.Blob(context.Background(), "app", d)
			if !errors.Is(err, ErrRedirect) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want ErrRedirect saying %q", err, tc.want)
			}
		})
	}
}

func TestCheckRedirect(t *testing.T) {
	for _, tc := range []struct {
		registry, from, to string
		refused            bool
		keepsAuth          bool
	}{
		{"https://registry.example.com", "https://registry.example.com/v2/x/blobs/d", "https://s3.example.com/b?sig=1", false, false},
		{"https://registry.example.com", "https://registry.example.com/v2/x/blobs/d", "https://registry.example.com/other", false, true},
		{"https://registry.example.com", "https://registry.example.com/v2/x/blobs/d", "https://registry.example.com:8443/other", false, false},
		{"https://registry.example.com", "https://registry.example.com/v2/x/blobs/d", "https://169.254.169.254/latest/meta-data", true, false},
		{"https://registry.example.com", "https://registry.example.com/v2/x/blobs/d", "https://10.0.0.8/b", true, false},
		{"https://registry.example.com", "https://registry.example.com/v2/x/blobs/d", "https://localhost/b", true, false},
		{"https://registry.example.com", "https://registry.example.com/v2/x/blobs/d", "https://[::1]/b", true, false},
		{"https://registry.example.com", "https://registry.example.com/v2/x/blobs/d", "http://s3.example.com/b", true, false},
		{"https://10.0.0.5", "https://10.0.0.5/v2/x/blobs/d", "https://10.0.0.6:9000/b", false, false},
		{"http://127.0.0.1:5000", "http://127.0.0.1:5000/v2/x/blobs/d", "http://127.0.0.1:9000/b", false, false},
	} {
		c, err := New(Config{URL: tc.registry}, WithLogger(discardLogger()))
		if err != nil {
			t.Fatal(err)
		}
		from, _ := http.NewRequest(http.MethodGet, tc.from, nil)
		to, _ := http.NewRequest(http.MethodGet, tc.to, nil)
		to.Header.Set("Authorization", "Bearer t")
		err = c.checkRedirect(to, []*http.Request{from})
		if refused := err != nil; refused != tc.refused {
			t.Errorf("%s → %s: err = %v, want refused %v", tc.from, tc.to, err, tc.refused)
		}
		if !tc.refused && (to.Header.Get("Authorization") != "") != tc.keepsAuth {
			t.Errorf("%s → %s: Authorization kept = %v", tc.from, tc.to, !tc.keepsAuth)
		}
	}
}

func TestBlobConcurrencySlots(t *testing.T) {
	reg := newRegistry()
	img := pushImage(t, reg, "app", "1.0")
	d, _ := layerOf(t, img)
	c := newTestClient(t, Config{URL: serve(t, reg, false).URL, DownloadConcurrency: 1})
	if c.Concurrency() != 1 {
		t.Fatalf("Concurrency() = %d", c.Concurrency())
	}
	first, _, err := c.Blob(context.Background(), "app", d)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, _, err := c.Blob(ctx, "app", d); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("second open while the first is open: %v", err)
	}
	first.Close()
	second, _, err := c.Blob(context.Background(), "app", d)
	if err != nil {
		t.Fatal(err)
	}
	second.Close()
	if _, err := first.Read(make([]byte, 1)); err == nil {
		t.Error("read after Close succeeded")
	}
}
