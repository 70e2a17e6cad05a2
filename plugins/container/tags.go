package container

import (
	"context"
	"net/http"

	"github.com/labstack/echo/v4"
)

// Page sizes of tags/list and _catalog: without n a page holds defaultPage
// names; a larger n than maxPage is cut to maxPage (the Link header then
// leads on, as the spec allows).
const (
	defaultPage = 1000
	maxPage     = 10000
)

// getTags serves GET /v2/<name>/tags/list[?n=&last=], lexically sorted and
// paginated with a Link header.
func (p *Plugin) getTags(c echo.Context, r route) error {
	n, last, err := pageParams(c)
	if err != nil {
		return err
	}
	if _, err := p.authorize(c, r.name, ActionPull); err != nil {
		return err
	}
	page := pageSize(n)
	tags, more, err := p.TagNames(c.Request().Context(), r.name, last, page)
	if err != nil {
		return err
	}
	if more {
		c.Response().Header().Set("Link", p.nextLink("/v2/"+r.name+"/tags/list", page, tags[len(tags)-1]))
	}
	return c.JSON(http.StatusOK, struct {
		Name string   `json:"name"`
		Tags []string `json:"tags"`
	}{r.name, tags})
}

// pageSize is the number of names a page holds for the n a client asked.
func pageSize(n int) int {
	switch {
	case n < 0:
		return defaultPage
	case n > maxPage:
		return maxPage
	}
	return n
}

// TagNames lists up to n tag names of the image name after last, in byte
// order, and tells whether more follow. It costs one indexed query whatever
// the number of tags.
func (p *Plugin) TagNames(ctx context.Context, name, last string, n int) (tags []string, more bool, err error) {
	s, found, err := p.resolve(ctx, name)
	if err != nil {
		return nil, false, err
	}
	if !found {
		return nil, false, errorf(ErrNameUnknown, "repository %q is not known", name)
	}
	if n <= 0 {
		return []string{}, false, nil
	}
	tags, err = tagNames(ctx, p.store, s.RepoID, s.Version, last, n+1)
	if err != nil {
		return nil, false, err
	}
	if len(tags) > n {
		return tags[:n], true, nil
	}
	return tags, false, nil
}
