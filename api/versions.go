package api

import (
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/berth-dev/berth/core"
	"github.com/berth-dev/berth/tasks"
)

// RepositoryVersionResponse is a repository version as the REST API shows
// it.
type RepositoryVersionResponse struct {
	Href        string    `json:"pulp_href" api:"readonly"`
	PulpCreated time.Time `json:"pulp_created" api:"readonly"`
	Number      int       `json:"number"`
	Repository  string    `json:"repository" doc:"Href of the repository."`
	// BaseVersion is always null: versions are made from the latest one.
	BaseVersion    *string                `json:"base_version"`
	ContentSummary ContentSummaryResponse `json:"content_summary"`
}

// ContentSummaryResponse counts, per content type, what a version added,
// removed and holds (Pulp's shape, without the content list hrefs).
type ContentSummaryResponse struct {
	Added   map[string]ContentCount `json:"added"`
	Removed map[string]ContentCount `json:"removed"`
	Present map[string]ContentCount `json:"present"`
}

// ContentCount is the number of content units of one type.
type ContentCount struct {
	Count int `json:"count"`
}

// NewRepositoryVersionResponse renders version v of repository repo.
func NewRepositoryVersionResponse(repo *core.Repository, v *core.RepositoryVersion) RepositoryVersionResponse {
	counts := func(m map[string]int) map[string]ContentCount {
		out := make(map[string]ContentCount, len(m))
		for t, n := range m {
			out[t] = ContentCount{Count: n}
		}
		return out
	}
	return RepositoryVersionResponse{
		Href:        VersionHref(repo.Type, repo.ID, v.Number),
		PulpCreated: APITime(v.CreatedAt),
		Number:      v.Number,
		Repository:  RepositoryHref(repo.Type, repo.ID),
		ContentSummary: ContentSummaryResponse{
			Added:   counts(v.ContentSummary.Added),
			Removed: counts(v.ContentSummary.Removed),
			Present: counts(v.ContentSummary.Present),
		},
	}
}

func versionListSpec() ListSpec {
	return ListSpec{Fields: map[string]Field{
		"number":       {Kind: KindInt, Lookups: []string{Exact, Gt, Gte, Lt, Lte}, Order: true},
		"pulp_created": {Kind: KindTime, Lookups: TimeLookups(), Order: true},
	}}
}

// pathVersion finds the repository and version of the path.
func (s *Server) pathVersion(c echo.Context, typ string) (*core.Repository, *core.RepositoryVersion, error) {
	ctx := c.Request().Context()
	repo, err := s.typedRepository(ctx, typ, c.Param("id"))
	if err != nil {
		return nil, nil, err
	}
	raw := c.Param("number")
	n, err := strconv.Atoi(raw)
	if err != nil || n < 0 {
		return nil, nil, core.NotFound("repository version", raw)
	}
	v, err := s.store.Version(ctx, repo.ID, n)
	if err != nil {
		return nil, nil, err
	}
	return repo, v, nil
}

func (s *Server) versionRoutes(r *Router) {
	for _, typ := range s.registry.TypesOf(kindRepository) {
		s.typedVersionRoutes(r, newTypedRoutes(Repositories, typ))
	}
}

func (s *Server) typedVersionRoutes(r *Router, t typedRoutes) {
	spec := versionListSpec()
	list := t.base + ":id/" + versionsPart + "/"
	item := list + ":number/"
	opID := t.opID + "_versions"
	numberParam := Param{Name: "number", In: "path", Type: "integer", Doc: "The version number."}

	r.Add(Operation{
		Method: http.MethodGet, Path: list, ID: opID + "_list", Tags: t.tags,
		Summary: "List the versions of a " + t.typ + " repository", Params: spec.Params(), Response: Page[RepositoryVersionResponse]{},
	}, func(c echo.Context) error {
		ctx := c.Request().Context()
		repo, err := s.typedRepository(ctx, t.typ, c.Param("id"))
		if err != nil {
			return err
		}
		q, err := ParseList(c, spec)
		if err != nil {
			return err
		}
		vs, count, err := s.store.ListVersions(ctx, repo.ID, q)
		if err != nil {
			return err
		}
		out := make([]RepositoryVersionResponse, len(vs))
		for i := range vs {
			out[i] = NewRepositoryVersionResponse(repo, &vs[i])
		}
		return c.JSON(http.StatusOK, NewPage(c, q, count, out))
	})

	r.Add(Operation{
		Method: http.MethodGet, Path: item, ID: opID + "_read", Tags: t.tags, Params: []Param{numberParam},
		Summary: "Inspect a version of a " + t.typ + " repository", Response: RepositoryVersionResponse{},
	}, func(c echo.Context) error {
		repo, v, err := s.pathVersion(c, t.typ)
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, NewRepositoryVersionResponse(repo, v))
	})

	r.Add(Operation{
		Method: http.MethodDelete, Path: item, ID: opID + "_delete", Tags: t.tags, Params: []Param{numberParam},
		Summary:     "Delete a version of a " + t.typ + " repository",
		Description: "Dispatches a core.delete_repository_version task. The next version keeps exactly the content it had. The latest version cannot be deleted (409), nor a version a distribution serves (the task fails).",
		Response:    TaskAccepted{}, Status: http.StatusAccepted,
	}, func(c echo.Context) error {
		repo, v, err := s.pathVersion(c, t.typ)
		if err != nil {
			return err
		}
		if v.Number == repo.LatestVersion {
			return core.Conflict("version %d is the latest version of repository %q and cannot be deleted", v.Number, repo.Name)
		}
		task, err := s.dispatch(c.Request().Context(), tasks.Spec{
			Name:      TaskDeleteRepositoryVersion,
			Args:      DeleteRepositoryVersionArgs{RepositoryID: repo.ID, Number: v.Number},
			Exclusive: []string{RepositoryResource(repo.ID)},
		})
		if err != nil {
			return err
		}
		return Accepted(c, task)
	})
}
