package container

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"
	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/core/storage"
)

// getBlob serves GET and HEAD /v2/<name>/blobs/<digest>. GET streams the
// file from storage with http.ServeContent (Range requests, and sendfile
// when storage gives an *os.File); HEAD only stats it.
func (p *Plugin) getBlob(c echo.Context, r route) error {
	d, err := ParseDigest(r.arg)
	if err != nil {
		return err
	}
	if _, err := p.authorize(c, r.name, ActionPull); err != nil {
		return err
	}
	ctx := c.Request().Context()
	if err := p.checkBlobVisible(ctx, r.name, d); err != nil {
		return err
	}
	if c.Request().Method == http.MethodHead {
		p.touchBlob(ctx, d) // a pusher checking for the blob may reference it soon
		info, err := p.blobs.Stat(ctx, d)
		if errors.Is(err, storage.ErrNotFound) {
			// Synced on_demand: known, fetched on the first GET.
			if served, err := p.headOnDemand(c, r.name, d); served || err != nil {
				return err
			}
		}
		if err != nil {
			return p.storageError(d, err)
		}
		blobHeaders(c, d)
		c.Response().Header().Set(echo.HeaderContentLength, strconv.FormatInt(info.Size, 10))
		return c.NoContent(http.StatusOK)
	}
	f, info, err := p.blobs.Open(ctx, d)
	if errors.Is(err, storage.ErrNotFound) {
		// Synced on_demand: fetch it from its remote (ondemand.go).
		if served, err := p.pullThrough(c, r.name, d); served || err != nil {
			return err
		}
		f, info, err = p.blobs.Open(ctx, d)
	}
	if err != nil {
		return p.storageError(d, err)
	}
	defer f.Close()
	blobHeaders(c, d)
	http.ServeContent(sendfileWriter{c.Response()}, c.Request(), "", info.ModTime, f)
	return nil
}

// blobHeaders sets the headers of a blob response. Blobs are immutable, so
// clients and proxies may cache them for good.
func blobHeaders(c echo.Context, d digest.Digest) {
	h := c.Response().Header()
	h.Set(headerContentDigest, d.String())
	h.Set(echo.HeaderContentType, "application/octet-stream")
	h.Set("Accept-Ranges", "bytes")
	h.Set("ETag", `"`+d.String()+`"`)
	h.Set("Cache-Control", "max-age=31536000")
}

// deleteBlob serves DELETE /v2/<name>/blobs/<digest>.
func (p *Plugin) deleteBlob(c echo.Context, r route) error {
	d, err := ParseDigest(r.arg)
	if err != nil {
		return err
	}
	who, err := p.authorize(c, r.name, ActionDelete)
	if err != nil {
		return err
	}
	if err := p.DeleteBlob(c.Request().Context(), who, r.name, d); err != nil {
		return err
	}
	c.Response().Header().Set(echo.HeaderContentLength, "0")
	return c.NoContent(http.StatusAccepted)
}

// checkBlobVisible fails with ErrBlobUnknown unless d is readable through name.
func (p *Plugin) checkBlobVisible(ctx context.Context, name string, d digest.Digest) error {
	ok, err := p.blobVisible(ctx, name, d)
	if err != nil {
		return err
	}
	if !ok {
		return withDetail(ErrBlobUnknown, map[string]string{"digest": d.String()}, "blob %s is not in repository %q", d, name)
	}
	return nil
}

// storageError maps a storage failure of a blob the database knows.
func (p *Plugin) storageError(d digest.Digest, err error) error {
	if errors.Is(err, storage.ErrNotFound) {
		p.log.Warn("blob recorded but missing from storage", "digest", d)
		return withDetail(ErrBlobUnknown, map[string]string{"digest": d.String()}, "blob %s is missing from storage", d)
	}
	return err
}

// OpenBlob returns blob d, readable through the image name, for callers
// other than the content app (the REST API, builds). The caller closes it.
func (p *Plugin) OpenBlob(ctx context.Context, name string, d digest.Digest) (io.ReadSeekCloser, storage.Info, error) {
	if err := p.checkBlobVisible(ctx, name, d); err != nil {
		return nil, storage.Info{}, err
	}
	f, info, err := p.blobs.Open(ctx, d)
	if errors.Is(err, storage.ErrNotFound) {
		if err := p.ensureStored(ctx, name, d); err != nil {
			return nil, storage.Info{}, err
		}
		f, info, err = p.blobs.Open(ctx, d)
	}
	if err != nil {
		return nil, storage.Info{}, p.storageError(d, err)
	}
	return f, info, nil
}
