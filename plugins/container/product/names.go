package product

import (
	"net/url"
	"strings"

	"github.com/labstack/echo/v4"
)

// Roots of the routes whose {name} (or {ref}) parameter is an image name,
// slashes included.
const (
	eeRoot       = "/api/v1/execution-environments/"
	imagesRoot   = "/api/v1/registry/images/"
	contentMark  = "/_content/"
	registryRoot = "/api/v1/registry/"
	catalogRoot  = "/api/v1/catalog/"
)

// rewriteNames is pre-routing middleware for the routes under eeRoot and
// imagesRoot: it turns the image name in the path, which may hold slashes,
// into one escaped segment ("team/ee" → "team%2Fee"), so that echo's
// {name} parameter takes it whole, and adds a missing trailing slash (on
// the registry and catalog routes too). An
// execution environment's name ends where "/_content/" starts (no name
// component may start with "_"), or at the end of the path; an image
// reference of the registry API is the rest of the path.
func rewriteNames(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		u := c.Request().URL
		switch {
		case strings.HasPrefix(u.Path, eeRoot) && len(u.Path) > len(eeRoot):
			rest := u.Path[len(eeRoot):]
			name, tail := strings.TrimSuffix(rest, "/"), "/"
			if i := strings.Index(rest, contentMark); i >= 0 {
				name, tail = rest[:i], rest[i:]
				if !strings.HasSuffix(tail, "/") {
					tail += "/"
				}
			}
			setPath(u, eeRoot, name, tail)
		case strings.HasPrefix(u.Path, imagesRoot) && len(u.Path) > len(imagesRoot):
			setPath(u, imagesRoot, strings.TrimSuffix(u.Path[len(imagesRoot):], "/"), "/")
		case !strings.HasSuffix(u.Path, "/") && (under(u.Path, registryRoot) || under(u.Path, catalogRoot) || u.Path+"/" == eeRoot):
			u.Path += "/"
			if u.RawPath != "" {
				u.RawPath += "/"
			}
		}
		return next(c)
	}
}

// under reports whether p is root (with or without its slash) or below it.
func under(p, root string) bool { return p+"/" == root || strings.HasPrefix(p, root) }

func setPath(u *url.URL, root, name, tail string) {
	u.Path = root + name + tail
	u.RawPath = root + url.PathEscape(name) + (&url.URL{Path: tail}).EscapedPath()
}

// nameParam reads a path parameter that rewriteNames escaped.
func nameParam(c echo.Context, p string) string {
	v := c.Param(p)
	if u, err := url.PathUnescape(v); err == nil {
		return u
	}
	return v
}

// eeHref is the API address of an execution environment.
func eeHref(name string) string { return eeRoot + name + "/" }

// eeContentHref is the address of a part of an execution environment.
func eeContentHref(name string, parts ...string) string {
	h := eeRoot + name + contentMark
	for _, p := range parts {
		h += url.PathEscape(p) + "/"
	}
	return h
}
