package container_test

import (
	"crypto/sha256"
	"io"
	"net/http"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/core/db"
	"github.com/berth-dev/berth/internal/testdb"
)

// patternReader yields size bytes of a fixed pattern without holding them.
type patternReader struct {
	block []byte
	left  int64
	off   int
}

// patternBlock is the block every patternReader repeats.
var patternBlock = randomBytes(1 << 20)

func newPattern(size int64) *patternReader { return &patternReader{block: patternBlock, left: size} }

func (p *patternReader) Read(b []byte) (int, error) {
	if p.left == 0 {
		return 0, io.EOF
	}
	n := copy(b, p.block[p.off:])
	if int64(n) > p.left {
		n = int(p.left)
	}
	p.off = (p.off + n) % len(p.block)
	p.left -= int64(n)
	return n, nil
}

// TestStreamingMemory uploads and downloads a 128 MiB blob and checks that
// the heap does not grow with it: bodies stream between client and storage.
func TestStreamingMemory(t *testing.T) {
	const size = 128 << 20
	e := newEnv(t, testdb.Open(t, db.SQLite, sets...), t.TempDir())
	h := sha256.New()
	if _, err := io.Copy(h, newPattern(size)); err != nil {
		t.Fatal(err)
	}
	d := digest.NewDigest(digest.SHA256, h)

	var peak atomic.Uint64
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			if m.HeapAlloc > peak.Load() {
				peak.Store(m.HeapAlloc)
			}
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()

	// A streamed PATCH without Content-Length, then the download.
	loc := startSession(t, e, "stream/big")
	req, _ := http.NewRequest(http.MethodPatch, e.srv.URL+loc, io.NopCloser(newPattern(size)))
	res, err := http.DefaultClient.Do(req)
	if err != nil || res.StatusCode != http.StatusAccepted {
		t.Fatalf("stream: %v %v", res, err)
	}
	res.Body.Close()
	expect(t, "finish", e.do(http.MethodPut, withDigest(res.Header.Get("Location"), d), nil), 201, "")
	res, err = http.Get(e.srv.URL + "/v2/stream/big/blobs/" + d.String())
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("get: %v %v", res, err)
	}
	got := sha256.New()
	n, err := io.Copy(got, res.Body)
	res.Body.Close()
	if err != nil || n != size || digest.NewDigest(digest.SHA256, got) != d {
		t.Fatalf("download: %d bytes, %v", n, err)
	}
	close(stop)
	<-done
	grew := int64(peak.Load()) - int64(base)
	t.Logf("heap grew by at most %d KiB", grew>>10)
	if grew > 48<<20 {
		t.Fatalf("heap grew by %d MiB while moving a %d MiB blob", grew>>20, size>>20)
	}
}
