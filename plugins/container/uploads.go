package container

import (
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"
	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/api/errcode"
)

// postUpload serves POST /v2/<name>/blobs/uploads/: a cross-repository
// mount (?mount=&from=), a monolithic upload (?digest= with the body), or
// the start of an upload session.
func (p *Plugin) postUpload(c echo.Context, r route) error {
	who, err := p.authorize(c, r.name, ActionPush)
	if err != nil {
		return err
	}
	ctx, req := c.Request().Context(), c.Request()
	if m := c.QueryParam("mount"); m != "" {
		d, err := ParseDigest(m)
		if err != nil {
			return err
		}
		canPull := func(src string) bool {
			_, err := p.authorize(c, src, ActionPull)
			return err == nil
		}
		mounted, err := p.mountBlob(ctx, r.name, c.QueryParam("from"), d, canPull)
		if err != nil {
			return err
		}
		if mounted {
			return p.blobCreated(c, r.name, d)
		}
		// Not mountable: fall back to an upload session, as the spec says.
	} else if s := c.QueryParam("digest"); s != "" {
		d, err := ParseDigest(s)
		if err != nil {
			return err
		}
		if _, err := p.putBlob(ctx, r.name, d, req.ContentLength, req.Body); err != nil {
			return err
		}
		return p.blobCreated(c, r.name, d)
	}
	id, err := p.startUpload(ctx, who, r.name)
	if err != nil {
		return err
	}
	p.uploadHeaders(c, r.name, id, 0)
	return c.NoContent(http.StatusAccepted)
}

// getUpload serves GET /v2/<name>/blobs/uploads/<id>: the session's progress.
func (p *Plugin) getUpload(c echo.Context, r route) error {
	if err := p.authorizeSession(c, r); err != nil {
		return err
	}
	size, err := p.uploadStatus(c.Request().Context(), r.name, r.arg)
	if err != nil {
		return err
	}
	p.uploadHeaders(c, r.name, r.arg, size)
	return c.NoContent(http.StatusNoContent)
}

// patchUpload serves PATCH /v2/<name>/blobs/uploads/<id>: a chunk (with
// Content-Range) or a stream (without).
func (p *Plugin) patchUpload(c echo.Context, r route) error {
	if err := p.authorizeSession(c, r); err != nil {
		return err
	}
	rng, err := parseContentRange(c.Request().Header.Get("Content-Range"))
	if err != nil {
		return err
	}
	req := c.Request()
	size, err := p.appendUpload(req.Context(), r.name, r.arg, rng, req.ContentLength, req.Body)
	if err != nil {
		return p.uploadError(r, err)
	}
	p.uploadHeaders(c, r.name, r.arg, size)
	return c.NoContent(http.StatusAccepted)
}

// putUpload serves PUT /v2/<name>/blobs/uploads/<id>?digest=: completes the
// upload, optionally with a last chunk.
func (p *Plugin) putUpload(c echo.Context, r route) error {
	if err := p.authorizeSession(c, r); err != nil {
		return err
	}
	s := c.QueryParam("digest")
	if s == "" {
		return errorf(ErrDigestInvalid, "the digest query parameter is required to complete an upload")
	}
	d, err := ParseDigest(s)
	if err != nil {
		return err
	}
	rng, err := parseContentRange(c.Request().Header.Get("Content-Range"))
	if err != nil {
		return err
	}
	req := c.Request()
	if _, err := p.finishUpload(req.Context(), r.name, r.arg, d, rng, req.ContentLength, req.Body); err != nil {
		return p.uploadError(r, err)
	}
	return p.blobCreated(c, r.name, d)
}

// deleteUpload serves DELETE /v2/<name>/blobs/uploads/<id>: cancels it.
func (p *Plugin) deleteUpload(c echo.Context, r route) error {
	if err := p.authorizeSession(c, r); err != nil {
		return err
	}
	if err := p.cancelUpload(c.Request().Context(), r.name, r.arg); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// authorizeSession checks a request that continues upload session r.arg,
// telling the Authorizer who started it.
func (p *Plugin) authorizeSession(c echo.Context, r route) error {
	owner, err := p.sessionOwner(c.Request().Context(), r.name, r.arg)
	if err != nil {
		return err
	}
	_, err = p.auth.Authorize(c, Access{Repository: r.name, Actions: []Action{ActionPush}, UploadOwner: owner})
	return err
}

// blobCreated answers 201 for a blob now readable through name.
func (p *Plugin) blobCreated(c echo.Context, name string, d digest.Digest) error {
	h := c.Response().Header()
	h.Set(echo.HeaderLocation, p.location("/v2/"+name+"/blobs/"+d.String(), nil))
	h.Set(headerContentDigest, d.String())
	h.Set(echo.HeaderContentLength, "0")
	return c.NoContent(http.StatusCreated)
}

// uploadHeaders sets the headers describing an upload session holding size bytes.
func (p *Plugin) uploadHeaders(c echo.Context, name, id string, size int64) {
	h := c.Response().Header()
	h.Set(echo.HeaderLocation, p.location("/v2/"+name+"/blobs/uploads/"+id, nil))
	h.Set("Range", rangeHeader(size))
	h.Set(headerUploadUUID, id)
	h.Set(echo.HeaderContentLength, "0")
}

// uploadError adds to a refused chunk what the client needs to resume: the
// session's current range and location.
func (p *Plugin) uploadError(r route, err error) error {
	var re *rangeError
	if !errors.As(err, &re) {
		return err
	}
	return errcode.RangeInvalid.Errorf("%s", re.Error()).
		WithHeader("Range", rangeHeader(re.size)).
		WithHeader(echo.HeaderLocation, p.location("/v2/"+r.name+"/blobs/uploads/"+r.arg, nil)).
		WithHeader(headerUploadUUID, r.arg)
}

// rangeHeader is the Range header of a session holding size bytes:
// "0-<last byte>", and "0-0" while it is empty, as registries answer.
func rangeHeader(size int64) string {
	if size <= 0 {
		return "0-0"
	}
	return "0-" + strconv.FormatInt(size-1, 10)
}

// parseContentRange reads a chunk's Content-Range: "<start>-<end>" as the
// distribution spec writes it, also with an HTTP-style "bytes " or "bytes="
// prefix and a "/<total>" suffix. An empty header means no range.
func parseContentRange(s string) (*byteRange, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	v := strings.TrimPrefix(strings.TrimPrefix(s, "bytes"), "=")
	v = strings.TrimSpace(v)
	v, _, _ = strings.Cut(v, "/")
	a, b, ok := strings.Cut(v, "-")
	start, err1 := strconv.ParseInt(a, 10, 64)
	end, err2 := strconv.ParseInt(b, 10, 64)
	if !ok || err1 != nil || err2 != nil || start < 0 || end < start {
		return nil, errorf(ErrRangeInvalid, "malformed Content-Range %q: want <start>-<end>", truncate(s, 100))
	}
	return &byteRange{start: start, end: end}, nil
}
