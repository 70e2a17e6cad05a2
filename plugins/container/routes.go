package container

import (
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/berth-dev/berth/api/errcode"
)

// Headers of the distribution API.
const (
	headerAPIVersion    = "Docker-Distribution-API-Version"
	headerContentDigest = "Docker-Content-Digest"
	headerUploadUUID    = "Docker-Upload-UUID"
	headerSubject       = "OCI-Subject"
	headerTag           = "OCI-Tag"
	headerFilters       = "OCI-Filters-Applied"
)

// handler serves one resource of the content app. Handlers parse the
// request, call a service and answer; errors are returned (never written)
// and mapped to OCI codes by serveV2.
type handler func(c echo.Context, r route) error

// ContentRoutes mounts the content app (the OCI distribution API) at /v2/
// on e, whose error handler must be api.ErrorHandler (api.NewEcho).
func (p *Plugin) ContentRoutes(e *echo.Echo) {
	e.Any("/v2", p.serveV2)
	e.Any("/v2/*", p.serveV2)
}

// table maps a route kind and method to its handler. HEAD is served by the
// GET handler where the resource has one.
func (p *Plugin) table() map[string]map[string]handler {
	return map[string]map[string]handler{
		routeBase:      {http.MethodGet: p.getBase},
		routeCatalog:   {http.MethodGet: p.getCatalog},
		routeTags:      {http.MethodGet: p.getTags},
		routeManifest:  {http.MethodGet: p.getManifest, http.MethodPut: p.putManifest, http.MethodDelete: p.deleteManifest},
		routeBlob:      {http.MethodGet: p.getBlob, http.MethodDelete: p.deleteBlob},
		routeUploads:   {http.MethodPost: p.postUpload},
		routeUpload:    {http.MethodGet: p.getUpload, http.MethodPatch: p.patchUpload, http.MethodPut: p.putUpload, http.MethodDelete: p.deleteUpload},
		routeReferrers: {http.MethodGet: p.getReferrers},
	}
}

// serveV2 parses the path into an image name and a resource, validates the
// name and runs the resource's handler.
func (p *Plugin) serveV2(c echo.Context) error {
	c.Response().Header().Set(headerAPIVersion, "registry/2.0")
	path := strings.TrimPrefix(strings.TrimPrefix(c.Request().URL.Path, "/v2"), "/")
	r, ok := parsePath(path)
	if !ok {
		return echo.ErrNotFound
	}
	if r.kind != routeBase && r.kind != routeCatalog {
		if err := ValidateName(r.name); err != nil {
			return v2Error(err)
		}
	}
	method := c.Request().Method
	if method == http.MethodHead {
		method = http.MethodGet
	}
	h, ok := p.handlers[r.kind][method]
	if !ok {
		return errcode.Unsupported.Errorf("%s is not supported on this resource", c.Request().Method)
	}
	return v2Error(h(c, r))
}

// getBase answers the API version check: 200 {} for clients allowed in.
func (p *Plugin) getBase(c echo.Context, _ route) error {
	if _, err := p.auth.Authorize(c, Access{}); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, struct{}{})
}

// authorize asks the Authorizer whether the request may do actions on the
// image name, and who it is.
func (p *Plugin) authorize(c echo.Context, name string, actions ...Action) (Identity, error) {
	return p.auth.Authorize(c, Access{Repository: name, Actions: actions})
}

// location is the URL of path for Location headers: absolute under the
// public URL when one is configured, else the path itself.
func (p *Plugin) location(path string, q url.Values) string {
	u := p.publicURL + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	return u
}

// pageParams reads n and last of tags/list and _catalog. n < 0 means "not
// given".
func pageParams(c echo.Context) (n int, last string, err error) {
	last = c.QueryParam("last")
	s := c.QueryParam("n")
	if s == "" {
		return -1, last, nil
	}
	n, err = strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, "", errorf(ErrPaginationInvalid, "n must be a non-negative integer, not %q", truncate(s, 50))
	}
	return n, last, nil
}

// nextLink is the RFC 5988 Link header to the page after last.
func (p *Plugin) nextLink(path string, n int, last string) string {
	return "<" + p.location(path, url.Values{"n": {strconv.Itoa(n)}, "last": {last}}) + `>; rel="next"`
}

// sendfileWriter lets io.Copy reach the connection's ReadFrom (sendfile for
// an *os.File), which echo's Response does not expose, while echo still
// records the status and size it wrote.
type sendfileWriter struct{ *echo.Response }

func (w sendfileWriter) ReadFrom(r io.Reader) (int64, error) {
	if !w.Committed {
		w.WriteHeader(http.StatusOK)
	}
	rf, ok := w.Writer.(io.ReaderFrom)
	if !ok {
		return io.Copy(struct{ io.Writer }{w.Response}, r)
	}
	n, err := rf.ReadFrom(r)
	w.Size += n
	return n, err
}
