package container

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/core"
	"github.com/berth-dev/berth/plugins/container/upstream"
)

// Pull-through of blobs that an on_demand sync recorded without their
// file. The first GET of such a blob fetches it from the remote and streams
// it to the client while storing it (verified: the last byte is held back
// until the digest checks out, so a client never receives a complete wrong
// blob); the blob is then recorded as downloaded and served from storage
// like any other. The fetch runs on when the client goes away, so that the
// work is not lost. Concurrent first pulls of one blob share one fetch: the
// others wait for it and read from storage.

// onDemandTimeout bounds one pull-through fetch.
const onDemandTimeout = time.Hour

// remoteClients builds and keeps the upstream clients of remotes, all
// sharing one set of rate limiters (so every sync and pull-through of this
// process keeps a registry's limit together), and coalesces concurrent
// fetches of a blob.
type remoteClients struct {
	limiters *upstream.Limiters

	mu      sync.Mutex
	clients map[string]cachedClient // remote ID → its client
	flights map[string]*flight      // digest → fetch in progress
}

type cachedClient struct {
	updated time.Time // the remote's pulp_last_updated when built
	client  *upstream.Client
}

// flight is one fetch of a blob; done closes when it ends, err says how.
type flight struct {
	done chan struct{}
	err  error
}

func newRemoteClients() *remoteClients {
	return &remoteClients{limiters: upstream.NewLimiters(), clients: map[string]cachedClient{}, flights: map[string]*flight{}}
}

// client returns the upstream client of a remote, built anew when the
// remote changed since.
func (rc *remoteClients) client(ctx context.Context, s *core.Store, remoteID string, log *slog.Logger) (*upstream.Client, error) {
	r, err := s.Remote(ctx, remoteID)
	if err != nil {
		return nil, err
	}
	rc.mu.Lock()
	c, ok := rc.clients[remoteID]
	rc.mu.Unlock()
	if ok && c.updated.Equal(r.UpdatedAt) {
		return c.client, nil
	}
	cred, err := s.OpenCredentials(r)
	if err != nil {
		return nil, fmt.Errorf("open the credentials of remote %q: %w", r.Name, err)
	}
	client, err := upstream.New(upstream.ConfigFromRemote(r, cred),
		upstream.WithLimiters(rc.limiters), upstream.WithLogger(log.With("remote", r.Name)), upstream.WithUserAgent("berth"))
	if err != nil {
		return nil, fmt.Errorf("remote %q: %w", r.Name, err)
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if old, ok := rc.clients[remoteID]; ok && !old.updated.Before(r.UpdatedAt) {
		// Another goroutine was quicker with a client as new as ours.
		client.Close()
		return old.client, nil
	} else if ok {
		old.client.Close()
	}
	rc.clients[remoteID] = cachedClient{updated: r.UpdatedAt, client: client}
	return client, nil
}

// join returns the fetch of blob d in progress, or starts one: leader
// tells whether the caller must do it (and then call land).
func (rc *remoteClients) join(d string) (f *flight, leader bool) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if f := rc.flights[d]; f != nil {
		return f, false
	}
	f = &flight{done: make(chan struct{})}
	rc.flights[d] = f
	return f, true
}

// land ends a fetch.
func (rc *remoteClients) land(d string, f *flight, err error) {
	rc.mu.Lock()
	delete(rc.flights, d)
	rc.mu.Unlock()
	f.err = err
	close(f.done)
}

// onDemandSource finds where to fetch blob d, readable through the image
// name but not stored: found is false when no remote knows it.
func (p *Plugin) onDemandSource(ctx context.Context, name string, d digest.Digest) (blobSource, bool, error) {
	remoteID := ""
	if s, found, err := p.resolve(ctx, name); err != nil {
		return blobSource{}, false, err
	} else if found {
		if remoteID, err = repositoryRemote(ctx, p.store, s.RepoID); err != nil {
			return blobSource{}, false, err
		}
	}
	srcs, err := blobSources(ctx, p.store, d.String(), remoteID)
	if err != nil || len(srcs) == 0 {
		return blobSource{}, false, err
	}
	return srcs[0], true, nil
}

// headOnDemand answers a HEAD of a blob that is not stored but can be
// fetched; served is false when it cannot.
func (p *Plugin) headOnDemand(c echo.Context, name string, d digest.Digest) (served bool, err error) {
	src, ok, err := p.onDemandSource(c.Request().Context(), name, d)
	if err != nil || !ok {
		return false, err
	}
	blobHeaders(c, d)
	c.Response().Header().Set(echo.HeaderContentLength, strconv.FormatInt(src.Size, 10))
	return true, c.NoContent(http.StatusOK)
}

// pullThrough answers a GET of a blob that is not stored but can be
// fetched. served is false when the caller is to serve it from storage
// (another request fetched it meanwhile) or it cannot be fetched (no
// remote knows it).
func (p *Plugin) pullThrough(c echo.Context, name string, d digest.Digest) (served bool, err error) {
	ctx := c.Request().Context()
	src, ok, err := p.onDemandSource(ctx, name, d)
	if err != nil || !ok {
		return false, err
	}
	f, leader := p.remotes.join(d.String())
	if leader && p.stored(ctx, d) {
		// A fetch that ended between our storage miss and join stored it.
		p.remotes.land(d.String(), f, nil)
		return false, nil
	}
	if !leader || c.Request().Header.Get("Range") != "" {
		// Wait for the fetch (ours, for a Range request), then read storage.
		if leader {
			p.remotes.land(d.String(), f, p.fetchBlob(ctx, src, d, nil))
		}
		select {
		case <-f.done:
		case <-ctx.Done():
			return true, ctx.Err()
		}
		return false, f.err
	}
	err = p.fetchBlob(ctx, src, d, c)
	p.remotes.land(d.String(), f, err)
	return true, err
}

// ensureStored fetches blob d, readable through name, into storage if an
// on_demand sync recorded it without its file (for readers other than the
// content app). It returns nil when there is nothing to fetch.
func (p *Plugin) ensureStored(ctx context.Context, name string, d digest.Digest) error {
	src, ok, err := p.onDemandSource(ctx, name, d)
	if err != nil || !ok {
		return err
	}
	f, leader := p.remotes.join(d.String())
	switch {
	case leader && p.stored(ctx, d):
		p.remotes.land(d.String(), f, nil)
	case leader:
		p.remotes.land(d.String(), f, p.fetchBlob(ctx, src, d, nil))
	}
	select {
	case <-f.done:
		return f.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// stored reports whether storage has blob d.
func (p *Plugin) stored(ctx context.Context, d digest.Digest) bool {
	_, err := p.blobs.Stat(ctx, d)
	return err == nil
}

// fetchBlob fetches blob d from its source into storage, verified, and
// records it as downloaded. With c, it streams the blob to c's client at
// the same time. It goes on when the request's context ends.
func (p *Plugin) fetchBlob(reqCtx context.Context, src blobSource, d digest.Digest, c echo.Context) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(reqCtx), onDemandTimeout)
	defer cancel()
	client, err := p.remotes.client(ctx, p.store, src.RemoteID, p.log)
	if err != nil {
		return fetchError(d, err)
	}
	rc, _, err := client.Blob(ctx, src.UpstreamName, d)
	if err != nil {
		return fetchError(d, err)
	}
	vr, err := upstream.VerifyingReader(rc, d, src.Size)
	if err != nil {
		rc.Close()
		return err
	}
	defer vr.Close()

	// The file is written and its artifact recorded under a lease, so an
	// orphan cleanup running meanwhile cannot remove the file in between.
	var client2 *holdBack
	err = p.WithBlobLease(ctx, d, func() error {
		pr, pw := io.Pipe()
		stored := make(chan error, 1)
		go func() {
			_, err := p.blobs.Put(ctx, d, src.Size, pr)
			pr.CloseWithError(err) // unblocks the copy if Put gave up
			stored <- err
		}()
		var dst io.Writer = pw
		if c != nil {
			blobHeaders(c, d)
			c.Response().Header().Set(echo.HeaderContentLength, strconv.FormatInt(src.Size, 10))
			c.Response().WriteHeader(http.StatusOK)
			client2 = &holdBack{w: c.Response()}
			dst = &teeWriter{store: pw, client: client2}
		}
		_, copyErr := io.Copy(dst, vr)
		pw.CloseWithError(copyErr) // nil: Put sees the end of the blob
		putErr := <-stored
		if err := errors.Join(copyErr, putErr); err != nil {
			p.log.Warn("pull-through of a blob failed", "digest", d, "remote", src.RemoteID, "err", err)
			return fetchError(d, err)
		}
		if err := p.retry(ctx, "record fetched blob", func() error {
			return attachDownloaded(ctx, p.store, src.ContentID, d.String(), src.Size)
		}); err != nil {
			return err
		}
		return nil
	})
	if err != nil {
		return err
	}
	p.log.Info("blob fetched from its remote", "digest", d, "size", src.Size, "remote", src.RemoteID, "upstream", src.UpstreamName)
	if client2 != nil {
		client2.flush()
	}
	return nil
}

// fetchError reports a failed pull-through: the registry cannot serve the
// blob now (503).
func fetchError(d digest.Digest, err error) error {
	return fmt.Errorf("blob %s is not downloaded yet and fetching it from its remote failed: %v: %w", d, err, core.ErrUnavailable)
}

// teeWriter writes to store and, while it accepts bytes, to client: a
// client that goes away does not stop the store.
type teeWriter struct {
	store     io.Writer
	client    io.Writer
	clientErr error
}

func (t *teeWriter) Write(b []byte) (int, error) {
	n, err := t.store.Write(b)
	if err != nil {
		return n, err
	}
	if t.clientErr == nil {
		_, t.clientErr = t.client.Write(b)
	}
	return n, nil
}

// holdBack passes bytes on to w but the last one, which flush writes once
// the blob is verified: a blob that fails verification reaches the client
// short of its Content-Length, and the client sees an error.
type holdBack struct {
	w    io.Writer
	last []byte
	err  error
}

func (h *holdBack) Write(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	if h.err == nil && len(h.last) > 0 {
		_, h.err = h.w.Write(h.last)
	}
	if h.err == nil && len(b) > 1 {
		_, h.err = h.w.Write(b[:len(b)-1])
	}
	h.last = append(h.last[:0], b[len(b)-1])
	return len(b), h.err
}

func (h *holdBack) flush() {
	if h.err == nil && len(h.last) > 0 {
		_, h.err = h.w.Write(h.last)
		h.last = nil
	}
	if f, ok := h.w.(http.Flusher); ok {
		f.Flush()
	}
}
