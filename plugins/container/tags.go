package container

import (
	"context"
	"net/http"
	"sort"
	"strconv"

	"github.com/labstack/echo/v4"
)

// Page sizes of tags/list and _catalog: without n a page holds defaultPage
// names (so most clients get every tag in one answer, as from other
// registries); a larger n than maxPage is cut to maxPage (the Link header
// then leads on, as the spec allows).
const (
	defaultPage = 50000
	maxPage     = 50000
)

// maxCachedTags is the largest tag list kept whole in memory per version.
const maxCachedTags = 100000

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
	all, err := p.versionTags(ctx, s)
	if err != nil {
		return nil, false, err
	}
	if all != nil {
		// A page is a slice of the version's sorted list: no query at all.
		i := sort.SearchStrings(all, last)
		if i < len(all) && all[i] == last {
			i++
		}
		rest := all[i:]
		if len(rest) > n {
			return rest[:n:n], true, nil
		}
		return rest[:len(rest):len(rest)], false, nil
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

// versionTags returns every tag name of a version, sorted, from the cache or
// one query (versions are immutable, so the list is never stale). It returns
// nil when the version has more than maxCachedTags tags: those repositories
// are paged by the database instead.
func (p *Plugin) versionTags(ctx context.Context, s served) ([]string, error) {
	key := s.RepoID + "|" + strconv.Itoa(s.Version)
	if all, ok := p.caches.tags.get(key); ok {
		return all, nil
	}
	all, err := tagNames(ctx, p.store, s.RepoID, s.Version, "", maxCachedTags+1)
	if err != nil || len(all) > maxCachedTags {
		return nil, err
	}
	var cost int64
	for _, t := range all {
		cost += int64(len(t)) + 16
	}
	p.caches.tags.put(key, all, cost)
	return all, nil
}
