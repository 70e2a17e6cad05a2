package upstream

import (
	"context"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/core/storage"
)

// Blob opens a blob for streaming and returns its size (-1 when the
// registry does not say). The body is not verified: wrap it in
// VerifyingReader, or hash it while storing. Registries often redirect blob
// GETs to storage elsewhere; the redirect is followed without the
// registry's Authorization (see checkRedirect).
//
// Reads go on under ctx and through the Client's rate limit and retries:
// when the connection drops mid-body, the read resumes where it stopped
// (Range: bytes=N-, or from the start skipping N bytes when the server
// ignores ranges), up to the Client's max attempts.
//
// At most Concurrency blobs are open at once per Client: Blob waits for a
// slot (or ctx), and Close frees it. Always Close the body.
func (c *Client) Blob(ctx context.Context, repo string, dgst digest.Digest) (io.ReadCloser, int64, error) {
	op := "get blob " + repo + "@" + string(dgst)
	r, err := c.repository(repo)
	if err != nil {
		return nil, 0, &Error{Op: op, Kind: ErrInvalidName, Message: err.Error()}
	}
	if err := storage.ValidateDigest(dgst); err != nil {
		return nil, 0, &Error{Op: op, Kind: ErrInvalidName,
			Message: fmt.Sprintf("invalid digest %q: want sha256:<64 hex> or sha512:<128 hex>", oneLine(string(dgst), 300))}
	}
	select {
	case c.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, 0, c.fail(op, fmt.Errorf("waiting for a download slot: %w", ctx.Err()))
	}
	release := sync.OnceFunc(func() { <-c.slots })
	rt, err := c.transport(ctx, r)
	if err != nil {
		release()
		return nil, 0, c.fail(op, err)
	}
	b := &blobReader{
		c:       c,
		ctx:     streamBody(ctx),
		hc:      c.httpClient(rt),
		url:     c.url("/v2/" + r.RepositoryStr() + "/blobs/" + string(dgst)),
		op:      op,
		size:    -1,
		release: release,
	}
	if err := b.open(true); err != nil {
		release()
		return nil, 0, err
	}
	return b, b.size, nil
}

// blobReader streams a blob, reopening it where it broke off.
type blobReader struct {
	c       *Client
	ctx     context.Context
	hc      *http.Client
	url, op string
	release func()

	req     *http.Request
	body    io.ReadCloser
	size    int64 // -1: unknown
	off     int64 // bytes delivered
	resumes int
	err     error // sticky
}

// open (re)issues the GET from b.off: with a Range (closed when the size
// is known, since some servers only understand that form) if useRange, else
// for the whole blob, skipping what was read.
func (b *blobReader) open(useRange bool) error {
	req, err := http.NewRequestWithContext(b.ctx, http.MethodGet, b.url, nil)
	if err != nil {
		return b.c.fail(b.op, err)
	}
	switch {
	case b.off == 0 || !useRange:
	case b.size > 0:
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", b.off, b.size-1))
	default:
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", b.off))
	}
	resp, err := b.hc.Do(req)
	if err != nil {
		return b.c.fail(b.op, err)
	}
	bad := func(format string, args ...any) error {
		resp.Body.Close()
		return &Error{Op: b.op, Method: req.Method, URL: redactURL(resp.Request.URL), StatusCode: resp.StatusCode,
			Kind: ErrProtocol, Message: fmt.Sprintf(format, args...)}
	}
	switch {
	case resp.StatusCode == http.StatusOK && b.off == 0:
		b.size = resp.ContentLength
	case resp.StatusCode == http.StatusOK:
		// The server ignored the range: skip what we have.
		if b.size >= 0 && resp.ContentLength >= 0 && resp.ContentLength != b.size {
			return bad("the blob's size changed from %d to %d bytes between attempts", b.size, resp.ContentLength)
		}
		if _, err := io.CopyN(io.Discard, resp.Body, b.off); err != nil {
			resp.Body.Close()
			return b.c.fail(b.op, bodyError(req, err))
		}
	case resp.StatusCode == http.StatusRequestedRangeNotSatisfiable && req.Header.Get("Range") != "":
		discard(resp)
		return b.open(false)
	case resp.StatusCode == http.StatusPartialContent && b.off > 0:
		start, total, ok := parseContentRange(resp.Header.Get("Content-Range"))
		if !ok || start != b.off || (b.size >= 0 && total >= 0 && total != b.size) {
			return bad("unexpected Content-Range %q resuming at byte %d", resp.Header.Get("Content-Range"), b.off)
		}
	default:
		e := b.c.statusError(b.op, resp)
		resp.Body.Close()
		return e
	}
	b.req, b.body = req, resp.Body
	return nil
}

// Read implements io.Reader.
func (b *blobReader) Read(p []byte) (int, error) {
	for {
		if b.err != nil {
			return 0, b.err
		}
		n, err := b.body.Read(p)
		b.off += int64(n)
		if err == io.EOF && b.size >= 0 && b.off < b.size {
			err = io.ErrUnexpectedEOF
		}
		if err == nil || err == io.EOF {
			return n, err
		}
		if b.ctx.Err() != nil || b.resumes+1 >= b.c.opts.maxAttempts || !retryableError(err) {
			b.err = b.c.fail(b.op, bodyError(b.req, err))
			return n, b.err
		}
		// Resume now: after this error, the body would only say EOF.
		b.body.Close()
		b.resumes++
		wait := backoff(b.c.opts.backoffBase, b.c.opts.backoffMax, b.resumes)
		b.c.log.DebugContext(b.ctx, "resuming blob download", "url", redactURL(b.req.URL), "offset", b.off,
			"attempt", b.resumes+1, "err", b.c.scrub(err.Error()), "wait", wait)
		if serr := sleep(b.ctx, wait); serr != nil {
			b.err = b.c.fail(b.op, serr)
			return n, b.err
		}
		if oerr := b.open(true); oerr != nil {
			b.err = oerr
			return n, b.err
		}
		if n > 0 {
			return n, nil
		}
	}
}

// Close implements io.Closer and frees the download slot.
func (b *blobReader) Close() error {
	if b.err == nil {
		b.err = errors.New("upstream: read of a closed blob")
	}
	b.release()
	return b.body.Close()
}

// parseContentRange parses "bytes START-END/TOTAL" (TOTAL may be "*": -1).
func parseContentRange(v string) (start, total int64, ok bool) {
	rest, found := strings.CutPrefix(strings.TrimSpace(v), "bytes ")
	if !found {
		return 0, 0, false
	}
	rng, tot, found := strings.Cut(rest, "/")
	if !found {
		return 0, 0, false
	}
	s, _, found := strings.Cut(rng, "-")
	if !found {
		return 0, 0, false
	}
	start, err := strconv.ParseInt(s, 10, 64)
	if err != nil || start < 0 {
		return 0, 0, false
	}
	if tot == "*" {
		return start, -1, true
	}
	total, err = strconv.ParseInt(tot, 10, 64)
	if err != nil {
		return 0, 0, false
	}
	return start, total, true
}

// VerifyingReader passes rc's bytes through and checks them against d and,
// if size >= 0, size: at EOF (or as soon as there are too many bytes) a
// mismatch is an error matching ErrDigestMismatch instead of io.EOF. Close
// closes rc. d must be a sha256 or sha512 digest.
func VerifyingReader(rc io.ReadCloser, d digest.Digest, size int64) (io.ReadCloser, error) {
	if err := storage.ValidateDigest(d); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidName, err)
	}
	return &verifier{rc: rc, want: d, h: d.Algorithm().Hash(), size: size}, nil
}

type verifier struct {
	rc   io.ReadCloser
	want digest.Digest
	h    hash.Hash
	size int64
	n    int64
	err  error
}

func (v *verifier) Read(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	n, err := v.rc.Read(p)
	if v.size >= 0 && v.n+int64(n) > v.size {
		n = int(v.size - v.n) // do not deliver the excess
		v.err = fmt.Errorf("%w: %s is longer than the expected %d bytes", ErrDigestMismatch, v.want, v.size)
		err = v.err
	}
	v.h.Write(p[:n])
	v.n += int64(n)
	if err == io.EOF {
		switch got := digest.NewDigest(v.want.Algorithm(), v.h); {
		case v.size >= 0 && v.n != v.size:
			v.err = fmt.Errorf("%w: %s has %d bytes, not the expected %d", ErrDigestMismatch, v.want, v.n, v.size)
			err = v.err
		case got != v.want:
			v.err = fmt.Errorf("%w: content hashes to %s, not %s", ErrDigestMismatch, got, v.want)
			err = v.err
		}
	}
	return n, err
}

func (v *verifier) Close() error { return v.rc.Close() }
