package container

import (
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"
)

// getManifest serves GET and HEAD /v2/<name>/manifests/<tag or digest>. The
// manifest is answered exactly as pushed, with its stored media type; a
// client whose Accept header rules that format out (an OCI manifest for a
// client taking only Docker types, or the reverse) gets 404 MANIFEST_UNKNOWN,
// as the registry never converts.
func (p *Plugin) getManifest(c echo.Context, r route) error {
	ref, err := parseReference(r.arg)
	if err != nil {
		return err
	}
	if _, err := p.authorize(c, r.name, ActionPull); err != nil {
		return err
	}
	ctx := c.Request().Context()
	_, m, err := p.lookupManifest(ctx, r.name, ref)
	if err != nil {
		return err
	}
	if !acceptable(c.Request().Header.Values(echo.HeaderAccept), m.MediaType) {
		return errorf(ErrManifestUnknown, "manifest %s is %s, which the request's Accept header excludes", ref, m.MediaType)
	}
	h := c.Response().Header()
	h.Set(echo.HeaderContentType, m.MediaType)
	h.Set(echo.HeaderContentLength, strconv.FormatInt(m.Size, 10))
	h.Set(headerContentDigest, m.Digest.String())
	h.Set("ETag", `"`+m.Digest.String()+`"`)
	if c.Request().Method == http.MethodHead {
		return c.NoContent(http.StatusOK)
	}
	md, err := p.manifestContent(ctx, m.Digest)
	if err != nil {
		return err
	}
	return c.Blob(http.StatusOK, m.MediaType, md.Data)
}

// putManifest serves PUT /v2/<name>/manifests/<tag or digest>[?tag=…]. The
// body is read up to MaxManifestSize and refused beyond.
func (p *Plugin) putManifest(c echo.Context, r route) error {
	ref, err := parseReference(r.arg)
	if err != nil {
		return err
	}
	who, err := p.authorize(c, r.name, ActionPush)
	if err != nil {
		return err
	}
	req := c.Request()
	if req.ContentLength > MaxManifestSize {
		return errorf(ErrManifestTooLarge, "manifest is %d bytes; the limit is %d", req.ContentLength, MaxManifestSize)
	}
	body, err := io.ReadAll(io.LimitReader(req.Body, MaxManifestSize+1))
	if err != nil {
		return errorf(ErrManifestInvalid, "reading the manifest failed: %v", err)
	}
	if len(body) > MaxManifestSize {
		return errorf(ErrManifestTooLarge, "manifest is larger than the limit of %d bytes", MaxManifestSize)
	}
	params := c.QueryParams()["tag"]
	tags := append([]string(nil), params...)
	if ref.tag != "" {
		tags = append(tags, ref.tag)
	}
	res, err := p.PutManifest(req.Context(), who, r.name, req.Header.Get(echo.HeaderContentType), body, ref.digest, tags)
	if err != nil {
		return err
	}
	h := c.Response().Header()
	h.Set(echo.HeaderLocation, p.location("/v2/"+r.name+"/manifests/"+res.Digest.String(), nil))
	h.Set(headerContentDigest, res.Digest.String())
	h.Set(echo.HeaderContentLength, "0")
	if res.Subject != "" {
		h.Set(headerSubject, res.Subject.String())
	}
	if len(params) > 0 {
		for _, t := range res.Tags {
			h.Add(headerTag, t)
		}
	}
	return c.NoContent(http.StatusCreated)
}

// deleteManifest serves DELETE /v2/<name>/manifests/<digest> (the manifest
// and its tags) and DELETE /v2/<name>/manifests/<tag> (just the tag).
func (p *Plugin) deleteManifest(c echo.Context, r route) error {
	ref, err := parseReference(r.arg)
	if err != nil {
		return err
	}
	who, err := p.authorize(c, r.name, ActionDelete)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	if ref.digest != "" {
		err = p.DeleteManifest(ctx, who, r.name, ref.digest)
	} else {
		err = p.DeleteTag(ctx, who, r.name, ref.tag)
	}
	if err != nil {
		return err
	}
	c.Response().Header().Set(echo.HeaderContentLength, "0")
	return c.NoContent(http.StatusAccepted)
}

// acceptable reports whether a manifest of media type mt may answer a
// request with these Accept header values. No Accept header, a wildcard,
// the type itself, or another manifest type of the same format (Docker or
// OCI) is enough; a list of manifest types of the other format only is not.
func acceptable(accept []string, mt string) bool {
	named := false
	for _, v := range accept {
		for _, part := range strings.Split(v, ",") {
			t, _, _ := strings.Cut(part, ";")
			t = strings.ToLower(strings.TrimSpace(t))
			switch {
			case t == "":
			case t == "*/*" || t == "application/*" || t == mt:
				return true
			case family(t) != "":
				if family(t) == family(mt) {
					return true
				}
				named = true
			}
		}
	}
	return !named
}
