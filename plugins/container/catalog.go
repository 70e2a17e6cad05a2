package container

import (
	"context"
	"net/http"

	"github.com/labstack/echo/v4"
)

// getCatalog serves GET /v2/_catalog[?n=&last=]: the image names, lexically
// sorted and paginated with a Link header.
func (p *Plugin) getCatalog(c echo.Context, _ route) error {
	n, last, err := pageParams(c)
	if err != nil {
		return err
	}
	if _, err := p.authorize(c, "", ActionCatalog); err != nil {
		return err
	}
	page := pageSize(n)
	names, more, err := p.Catalog(c.Request().Context(), last, page)
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
