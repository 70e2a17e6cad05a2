package container_test

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

// upload runs one way of pushing a blob and returns the final response.
type upload func(e *env, name string, content []byte, d digest.Digest) resp

// startSession opens an upload session and returns its Location.
func startSession(t *testing.T, e *env, name string) string {
	t.Helper()
	r := e.do(http.MethodPost, "/v2/"+name+"/blobs/uploads/", nil)
	expect(t, "start upload", r, http.StatusAccepted, "")
	loc := r.header.Get("Location")
	if !strings.HasPrefix(loc, "/v2/"+name+"/blobs/uploads/") || r.header.Get("Docker-Upload-UUID") == "" || r.header.Get("Range") != "0-0" {
		t.Fatalf("start upload headers: %v", r.header)
	}
	return loc
}

func withDigest(loc string, d digest.Digest) string {
	sep := "?"
	if strings.Contains(loc, "?") {
		sep = "&"
	}
	return loc + sep + "digest=" + d.String()
}

var uploads = map[string]upload{
	"monolithic POST": func(e *env, name string, content []byte, d digest.Digest) resp {
		return e.do(http.MethodPost, "/v2/"+name+"/blobs/uploads/?digest="+d.String(), content, "Content-Type", "application/octet-stream")
	},
	"POST then PUT": func(e *env, name string, content []byte, d digest.Digest) resp {
		loc := startSession(e.t, e, name)
		return e.do(http.MethodPut, withDigest(loc, d), content)
	},
	"chunked PATCH": func(e *env, name string, content []byte, d digest.Digest) resp {
		loc := startSession(e.t, e, name)
		for off := 0; off < len(content); off += 1000 {
			end := min(off+1000, len(content))
			r := e.do(http.MethodPatch, loc, content[off:end], "Content-Range", fmt.Sprintf("%d-%d", off, end-1),
				"Content-Type", "application/octet-stream")
			expect(e.t, "chunk", r, http.StatusAccepted, "")
			if got, want := r.header.Get("Range"), fmt.Sprintf("0-%d", end-1); got != want {
				e.t.Fatalf("chunk Range = %q, want %q", got, want)
			}
			loc = r.header.Get("Location")
		}
		st := e.do(http.MethodGet, loc, nil)
		expect(e.t, "upload status", st, http.StatusNoContent, "")
		if got, want := st.header.Get("Range"), fmt.Sprintf("0-%d", len(content)-1); got != want {
			e.t.Fatalf("status Range = %q, want %q", got, want)
		}
		return e.do(http.MethodPut, withDigest(loc, d), nil)
	},
	"chunked with last chunk in PUT": func(e *env, name string, content []byte, d digest.Digest) resp {
		loc := startSession(e.t, e, name)
		half := len(content) / 2
		r := e.do(http.MethodPatch, loc, content[:half], "Content-Range", fmt.Sprintf("0-%d", half-1))
		expect(e.t, "chunk", r, http.StatusAccepted, "")
		return e.do(http.MethodPut, withDigest(r.header.Get("Location"), d), content[half:],
			"Content-Range", fmt.Sprintf("%d-%d", half, len(content)-1))
	},
	"streamed PATCH": func(e *env, name string, content []byte, d digest.Digest) resp {
		loc := startSession(e.t, e, name)
		r := e.do(http.MethodPatch, loc, content)
		expect(e.t, "stream", r, http.StatusAccepted, "")
		return e.do(http.MethodPut, withDigest(r.header.Get("Location"), d), nil)
	},
}

// TestBlobUploads pushes blobs every way the spec allows, with sha256 and
// sha512 digests, then reads them back whole, by range and by HEAD.
func TestBlobUploads(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		for how, up := range uploads {
			for _, alg := range []digest.Algorithm{digest.SHA256, digest.SHA512} {
				t.Run(how+" "+alg.String(), func(t *testing.T) {
					e.t = t
					content := randomBytes(2500)
					d := alg.FromBytes(content)
					r := up(e, "up/blobs", content, d)
					expect(t, "finish", r, http.StatusCreated, "")
					if r.header.Get("Location") != "/v2/up/blobs/blobs/"+d.String() || r.header.Get("Docker-Content-Digest") != d.String() {
						t.Fatalf("created headers: %v", r.header)
					}
					// Readable at once, before any manifest references it.
					h := e.do(http.MethodHead, "/v2/up/blobs/blobs/"+d.String(), nil)
					expect(t, "head", h, http.StatusOK, "")
					if h.header.Get("Content-Length") != strconv.Itoa(len(content)) || h.header.Get("Docker-Content-Digest") != d.String() || len(h.body) != 0 {
						t.Fatalf("head headers %v body %d", h.header, len(h.body))
					}
					g := e.do(http.MethodGet, "/v2/up/blobs/blobs/"+d.String(), nil)
					expect(t, "get", g, http.StatusOK, "")
					if !bytes.Equal(g.body, content) || g.header.Get("Accept-Ranges") != "bytes" {
						t.Fatalf("get: %d bytes, headers %v", len(g.body), g.header)
					}
					rg := e.do(http.MethodGet, "/v2/up/blobs/blobs/"+d.String(), nil, "Range", "bytes=100-199")
					expect(t, "range", rg, http.StatusPartialContent, "")
					if !bytes.Equal(rg.body, content[100:200]) || rg.header.Get("Content-Range") != fmt.Sprintf("bytes 100-199/%d", len(content)) {
						t.Fatalf("range: %d bytes, headers %v", len(rg.body), rg.header)
					}
					bad := e.do(http.MethodGet, "/v2/up/blobs/blobs/"+d.String(), nil, "Range", "bytes=5000-6000")
					if bad.status != http.StatusRequestedRangeNotSatisfiable {
						t.Fatalf("unsatisfiable range: %s", bad)
					}
					// Not readable through another repository.
					expect(t, "other repo", e.do(http.MethodHead, "/v2/up/other/blobs/"+d.String(), nil), http.StatusNotFound, "")
					expect(t, "other repo get", e.do(http.MethodGet, "/v2/up/other/blobs/"+d.String(), nil), http.StatusNotFound, "BLOB_UNKNOWN")
				})
			}
		}
		t.Run("empty blob", func(t *testing.T) {
			e.t = t
			d := digest.FromBytes(nil)
			expect(t, "push", e.do(http.MethodPost, "/v2/up/blobs/blobs/uploads/?digest="+d.String(), nil), http.StatusCreated, "")
			h := e.do(http.MethodHead, "/v2/up/blobs/blobs/"+d.String(), nil)
			expect(t, "head", h, http.StatusOK, "")
			if h.header.Get("Content-Length") != "0" {
				t.Fatalf("head: %v", h.header)
			}
		})
	})
}

// TestUploadErrors checks that bad uploads answer the spec's code and store
// nothing.
func TestUploadErrors(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		content := randomBytes(3000)
		d := digest.FromBytes(content)
		other := digest.FromBytes([]byte("something else"))
		cases := []struct {
			name   string
			run    func() resp
			status int
			code   string
			check  func(r resp)
		}{
			{name: "monolithic wrong digest", run: func() resp {
				return e.do(http.MethodPost, "/v2/bad/blobs/uploads/?digest="+other.String(), content)
			}, status: 400, code: "DIGEST_INVALID"},
			{name: "PUT wrong digest", run: func() resp {
				return e.do(http.MethodPut, withDigest(startSession(t, e, "bad"), other), content)
			}, status: 400, code: "DIGEST_INVALID"},
			{name: "truncated upload", run: func() resp {
				loc := startSession(t, e, "bad")
				r := e.do(http.MethodPatch, loc, content[:1000], "Content-Range", "0-999")
				expect(t, "chunk", r, 202, "")
				return e.do(http.MethodPut, withDigest(r.header.Get("Location"), d), nil)
			}, status: 400, code: "DIGEST_INVALID"},
			{name: "malformed digest", run: func() resp {
				return e.do(http.MethodPost, "/v2/bad/blobs/uploads/?digest=sha256:nothex", content)
			}, status: 400, code: "DIGEST_INVALID"},
			{name: "unsupported algorithm", run: func() resp {
				return e.do(http.MethodPost, "/v2/bad/blobs/uploads/?digest=md5:d41d8cd98f00b204e9800998ecf8427e", content)
			}, status: 400, code: "DIGEST_INVALID"},
			{name: "PUT without digest", run: func() resp {
				return e.do(http.MethodPut, startSession(t, e, "bad"), content)
			}, status: 400, code: "DIGEST_INVALID"},
			{name: "out-of-order chunk", run: func() resp {
				loc := startSession(t, e, "bad")
				r := e.do(http.MethodPatch, loc, content[:1000], "Content-Range", "0-999")
				expect(t, "chunk", r, 202, "")
				return e.do(http.MethodPatch, loc, content[2000:], "Content-Range", "2000-2999")
			}, status: 416, code: "RANGE_INVALID", check: func(r resp) {
				if r.header.Get("Range") != "0-999" || r.header.Get("Location") == "" {
					t.Fatalf("416 headers: %v", r.header)
				}
			}},
			{name: "chunk going back", run: func() resp {
				loc := startSession(t, e, "bad")
				r := e.do(http.MethodPatch, loc, content[:1000], "Content-Range", "0-999")
				expect(t, "chunk", r, 202, "")
				return e.do(http.MethodPut, withDigest(loc, d), content, "Content-Range", "0-2999")
			}, status: 416, code: "RANGE_INVALID"},
			{name: "range and length disagree", run: func() resp {
				return e.do(http.MethodPatch, startSession(t, e, "bad"), content[:100], "Content-Range", "0-199")
			}, status: 400, code: "SIZE_INVALID"},
			{name: "malformed range", run: func() resp {
				return e.do(http.MethodPatch, startSession(t, e, "bad"), content[:100], "Content-Range", "a-b")
			}, status: 416, code: "RANGE_INVALID"},
			{name: "unknown session", run: func() resp {
				return e.do(http.MethodPatch, "/v2/bad/blobs/uploads/0d9d5e58-0000-4000-8000-000000000000", content)
			}, status: 404, code: "BLOB_UPLOAD_UNKNOWN"},
			{name: "session of another repository", run: func() resp {
				loc := startSession(t, e, "bad")
				return e.do(http.MethodGet, strings.Replace(loc, "/v2/bad/", "/v2/bad2/", 1), nil)
			}, status: 404, code: "BLOB_UPLOAD_UNKNOWN"},
			{name: "invalid session id", run: func() resp {
				return e.do(http.MethodGet, "/v2/bad/blobs/uploads/..", nil)
			}, status: 404, code: "BLOB_UPLOAD_UNKNOWN"},
			{name: "cancelled session", run: func() resp {
				loc := startSession(t, e, "bad")
				expect(t, "cancel", e.do(http.MethodDelete, loc, nil), 204, "")
				return e.do(http.MethodPut, withDigest(loc, d), content)
			}, status: 404, code: "BLOB_UPLOAD_UNKNOWN"},
			{name: "invalid name", run: func() resp {
				return e.do(http.MethodPost, "/v2/Bad/blobs/uploads/", nil)
			}, status: 400, code: "NAME_INVALID"},
			{name: "method not allowed", run: func() resp {
				return e.do(http.MethodPatch, "/v2/bad/blobs/uploads/", nil)
			}, status: 405, code: "UNSUPPORTED"},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				e.t = t
				r := c.run()
				expect(t, c.name, r, c.status, c.code)
				if c.check != nil {
					c.check(r)
				}
				for _, dg := range []digest.Digest{d, other} {
					expect(t, "nothing stored", e.do(http.MethodGet, "/v2/bad/blobs/"+dg.String(), nil), 404, "BLOB_UNKNOWN")
				}
			})
		}

		t.Run("truncated body", func(t *testing.T) {
			e.t = t
			// The client announces more than it sends and hangs up.
			conn, err := net.Dial("tcp", strings.TrimPrefix(e.srv.URL, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			fmt.Fprintf(conn, "POST /v2/bad/blobs/uploads/?digest=%s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", d, len(content))
			conn.Write(content[:1000])
			conn.(*net.TCPConn).CloseWrite()
			res, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err == nil {
				res.Body.Close()
				t.Logf("truncated body answered %d", res.StatusCode)
				if res.StatusCode < 400 || res.StatusCode >= 500 {
					t.Fatalf("truncated body answered %d", res.StatusCode)
				}
			}
			expect(t, "nothing stored", e.do(http.MethodGet, "/v2/bad/blobs/"+d.String(), nil), 404, "BLOB_UNKNOWN")
		})

		t.Run("recover after a refused chunk", func(t *testing.T) {
			e.t = t
			loc := startSession(t, e, "bad")
			r := e.do(http.MethodPatch, loc, content[:1000], "Content-Range", "0-999")
			expect(t, "chunk", r, 202, "")
			expect(t, "bad chunk", e.do(http.MethodPatch, loc, content[1500:], "Content-Range", "1500-2999"), 416, "RANGE_INVALID")
			st := e.do(http.MethodGet, loc, nil)
			expect(t, "status", st, 204, "")
			if st.header.Get("Range") != "0-999" {
				t.Fatalf("status range %q", st.header.Get("Range"))
			}
			expect(t, "next chunk", e.do(http.MethodPatch, loc, content[1000:], "Content-Range", "1000-2999"), 202, "")
			expect(t, "finish", e.do(http.MethodPut, withDigest(loc, d), nil), 201, "")
			g := e.do(http.MethodGet, "/v2/bad/blobs/"+d.String(), nil)
			if !bytes.Equal(g.body, content) {
				t.Fatal("blob content differs")
			}
		})
	})
}

// TestUploadSurvivesRestart starts an upload, restarts the registry (a new
// plugin on the same database and storage) and finishes it.
func TestUploadSurvivesRestart(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		content := randomBytes(4000)
		d := digest.SHA512.FromBytes(content)
		loc := startSession(t, e, "restart/me")
		expect(t, "chunk", e.do(http.MethodPatch, loc, content[:1500], "Content-Range", "0-1499"), 202, "")

		e.start()

		st := e.do(http.MethodGet, loc, nil)
		expect(t, "status after restart", st, 204, "")
		if st.header.Get("Range") != "0-1499" {
			t.Fatalf("Range after restart = %q", st.header.Get("Range"))
		}
		expect(t, "chunk after restart", e.do(http.MethodPatch, loc, content[1500:], "Content-Range", "1500-3999"), 202, "")
		expect(t, "finish", e.do(http.MethodPut, withDigest(loc, d), nil), 201, "")
		if g := e.do(http.MethodGet, "/v2/restart/me/blobs/"+d.String(), nil); !bytes.Equal(g.body, content) {
			t.Fatalf("blob after restart: %s", g)
		}
	})
}

// TestUploadExpiry: sessions past their lifetime are refused and removed
// by CleanupUploads, with their data.
func TestUploadExpiry(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		old := startSession(t, e, "exp/img")
		expect(t, "chunk", e.do(http.MethodPatch, old, []byte("abc")), 202, "")
		fresh := startSession(t, e, "exp/img")
		id := old[strings.LastIndex(old, "/")+1:]
		if err := e.g.Exec("UPDATE container_uploads SET started_at = ? WHERE id = ?", timeAgo(48), id).Error; err != nil {
			t.Fatal(err)
		}
		expect(t, "expired session", e.do(http.MethodGet, old, nil), 404, "BLOB_UPLOAD_UNKNOWN")

		// An old session nobody touched is removed by the cleaner; a fresh one stays.
		stale := startSession(t, e, "exp/img")
		sid := stale[strings.LastIndex(stale, "/")+1:]
		if err := e.g.Exec("UPDATE container_uploads SET started_at = ? WHERE id = ?", timeAgo(30), sid).Error; err != nil {
			t.Fatal(err)
		}
		n, err := e.plugin.CleanupUploads(ctx, e.plugin.UploadExpiry())
		if err != nil || n != 1 {
			t.Fatalf("cleanup removed %d (%v), want 1", n, err)
		}
		var rows int64
		e.g.Raw("SELECT COUNT(*) FROM container_uploads WHERE id = ?", sid).Scan(&rows)
		if rows != 0 {
			t.Fatal("stale session row left")
		}
		expect(t, "fresh session", e.do(http.MethodGet, fresh, nil), 204, "")
		// Cleaning everything removes the rest too.
		if n, err := e.plugin.CleanupUploads(ctx, 0); err != nil || n != 1 {
			t.Fatalf("cleanup all removed %d (%v), want 1", n, err)
		}
		expect(t, "cleaned session", e.do(http.MethodGet, fresh, nil), 404, "BLOB_UPLOAD_UNKNOWN")
	})
}

func timeAgo(hours int) time.Time { return time.Now().Add(-time.Duration(hours) * time.Hour).UTC() }
