package container

import (
	"context"
	"net/http"

	"github.com/labstack/echo/v4"
)

// getCatalog serves GET /v2/_catalog[?n=&last=]: the image names the
// caller may pull, lexically sorted and paginated with a Link header.
func (p *Plugin) getCatalog(c echo.Context, _ route) error {
	n, last, err := pageParams(c)
	if err != nil {
		return err
	}
	who, err := p.authorize(c, "", ActionCatalog)
	if err != nil {
		return err
	}
	page := pageSize(n)
	names, more, err := p.visibleCatalog(c.Request().Context(), who, last, page)
	if err != nil {
		return err
	}
	if more {
		c.Response().Header().Set("Link", p.nextLink("/v2/_catalog", page, names[len(names)-1]))
	}
	return c.JSON(http.StatusOK, struct {
		Repositories []string `json:"repositories"`
	}{names})
}

// Catalog lists up to n image names after last, in byte order, and tells
// whether more follow.
func (p *Plugin) Catalog(ctx context.Context, last string, n int) (names []string, more bool, err error) {
	if n <= 0 {
		return []string{}, false, nil
	}
	names, err = catalogNames(ctx, p.store, last, n+1)
	if err != nil {
		return nil, false, err
	}
	if len(names) > n {
		return names[:n], true, nil
	}
	return names, false, nil
}

// visibleCatalog is Catalog for who: private images are left out unless who
// may pull them (Permissions.Readable).
func (p *Plugin) visibleCatalog(ctx context.Context, who Identity, last string, n int) (names []string, more bool, err error) {
	v, err := p.visibility(ctx, who)
	if err != nil {
		return nil, false, err
	}
	if v.All {
		return p.Catalog(ctx, last, n)
	}
	names = []string{}
	if n <= 0 {
		return names, false, nil
	}
	batch := max(n+1, 100)
	for {
		entries, err := catalogEntries(ctx, p.store, last, batch)
		if err != nil {
			return nil, false, err
		}
		for _, e := range entries {
			if e.Private && !sees(v, namespaceOf(e.BasePath)) {
				continue
			}
			if len(names) == n {
				return names, true, nil
			}
			names = append(names, e.BasePath)
		}
		if len(entries) < batch {
			return names, false, nil
		}
		last = entries[len(entries)-1].BasePath
	}
}
