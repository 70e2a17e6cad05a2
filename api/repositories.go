package api

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/berth-dev/berth/core"
	"github.com/berth-dev/berth/tasks"
)

// RepositoryResponse is a repository as the REST API shows it.
type RepositoryResponse struct {
	Href              string    `json:"pulp_href" api:"readonly"`
	PulpCreated       time.Time `json:"pulp_created" api:"readonly"`
	PulpLastUpdated   time.Time `json:"pulp_last_updated" api:"readonly"`
	PulpType          string    `json:"pulp_type" api:"readonly"`
	VersionsHref      string    `json:"versions_href" api:"readonly"`
	LatestVersionHref string    `json:"latest_version_href" api:"readonly"`
	Name              string    `json:"name"`
	Description       string    `json:"description"`
	// RetainRepoVersions is how many versions are kept; null keeps all.
	RetainRepoVersions *int    `json:"retain_repo_versions"`
	Remote             *string `json:"remote" doc:"Href of the remote syncs fetch from by default."`
}

// repositoryRequest is the body of a repository create or update.
type repositoryRequest struct {
	Name               string  `json:"name" api:"required" doc:"Unique name; letters, digits, '.', '_', '-' and '/'."`
	Description        *string `json:"description"`
	RetainRepoVersions *int    `json:"retain_repo_versions" doc:"How many versions to keep (at least 1); null keeps all."`
	Remote             *string `json:"remote" doc:"Href of a remote of the same plugin, or null."`
}

// typedRoutes names the routes of one type of a typed collection.
type typedRoutes struct {
	collection, typ string
	base            string // "/pulp/api/v3/repositories/container/container/"
	opID            string // "repositories_container_container"
	tags            []string
}

func newTypedRoutes(collection, typ string) typedRoutes {
	plugin, kind, _ := strings.Cut(typ, ".")
	title := strings.ToUpper(collection[:1]) + collection[1:]
	return typedRoutes{
		collection: collection,
		typ:        typ,
		base:       TypedListHref(collection, typ),
		opID:       collection + "_" + plugin + "_" + kind,
		tags:       []string{title + ": " + typ},
	}
}

func repositoryListSpec(generic bool) ListSpec {
	f := map[string]Field{
		"name":              {Kind: KindString, Lookups: StringLookups(), Order: true},
		"pulp_created":      {Kind: KindTime, Lookups: TimeLookups(), Order: true},
		"pulp_last_updated": {Kind: KindTime, Lookups: TimeLookups(), Order: true},
		"latest_version":    {Kind: KindInt, Lookups: IntLookups(), Order: true},
		"pulp_id":           {Kind: KindString, Lookups: []string{In}, Order: true},
	}
	if generic {
		f["pulp_type"] = Field{Kind: KindString, Lookups: []string{Exact, In}, Order: true, Doc: "A repository type, such as container.container."}
	}
	return ListSpec{Fields: f, Tiebreak: "pulp_id"}
}

// repositoryResponses renders repositories, finding their remotes' types
// in one query.
func (s *Server) repositoryResponses(ctx context.Context, repos []core.Repository) ([]RepositoryResponse, error) {
	var remoteIDs []string
	for _, r := range repos {
		if r.RemoteID != nil {
			remoteIDs = append(remoteIDs, *r.RemoteID)
		}
	}
	types, err := s.remoteTypes(ctx, remoteIDs)
	if err != nil {
		return nil, err
	}
	out := make([]RepositoryResponse, len(repos))
	for i, r := range repos {
		href := RepositoryHref(r.Type, r.ID)
		out[i] = RepositoryResponse{
			Href:               href,
			PulpCreated:        APITime(r.CreatedAt),
			PulpLastUpdated:    APITime(r.UpdatedAt),
			PulpType:           r.Type,
			VersionsHref:       href + versionsPart + "/",
			LatestVersionHref:  VersionHref(r.Type, r.ID, r.LatestVersion),
			Name:               r.Name,
			Description:        r.Description,
			RetainRepoVersions: r.RetainRepoVersions,
		}
		if r.RemoteID != nil {
			if t, ok := types[*r.RemoteID]; ok {
				h := RemoteHref(t, *r.RemoteID)
				out[i].Remote = &h
			}
		}
	}
	return out, nil
}

// showRepositories renders repositories with their plugins' fields.
func (s *Server) showRepositories(ctx context.Context, repos []core.Repository) ([]any, error) {
	out, err := s.repositoryResponses(ctx, repos)
	if err != nil {
		return nil, err
	}
	return extendAll(ctx, s, kindRepository, out, func(i int) (string, string) { return repos[i].Type, repos[i].ID })
}

func (s *Server) showRepository(ctx context.Context, r *core.Repository) (any, error) {
	out, err := s.showRepositories(ctx, []core.Repository{*r})
	if err != nil {
		return nil, err
	}
	return out[0], nil
}

// typedRepository finds the repository of the path, which must be of typ.
func (s *Server) typedRepository(ctx context.Context, typ, id string) (*core.Repository, error) {
	r, err := s.store.Repository(ctx, id)
	if err != nil {
		return nil, err
	}
	if r.Type != typ {
		return nil, core.NotFound("repository", id)
	}
	return r, nil
}

func (s *Server) listRepositories(spec ListSpec, typ string) echo.HandlerFunc {
	return typedList(spec, typ, s.store.ListRepositories, s.showRepositories)
}

func (s *Server) repositoryRoutes(r *Router) {
	generic := repositoryListSpec(true)
	r.Add(Operation{
		Method: http.MethodGet, Path: Prefix + Repositories + "/", ID: "repositories_list", Tags: []string{"Repositories"},
		Summary: "List repositories of every type", Params: generic.Params(), Response: Page[RepositoryResponse]{},
	}, s.listRepositories(generic, ""))
	for _, typ := range s.registry.TypesOf(kindRepository) {
		s.typedRepositoryRoutes(r, newTypedRoutes(Repositories, typ))
	}
}

func (s *Server) typedRepositoryRoutes(r *Router, t typedRoutes) {
	spec := repositoryListSpec(false)
	item := t.base + ":id/"
	request := s.docRequest(kindRepository, t.typ, repositoryRequest{})
	response := s.docResponse(kindRepository, t.typ, RepositoryResponse{})
	r.Add(Operation{
		Method: http.MethodGet, Path: t.base, ID: t.opID + "_list", Tags: t.tags,
		Summary: "List " + t.typ + " repositories", Params: spec.Params(), Response: docPage(response),
	}, s.listRepositories(spec, t.typ))

	r.Add(Operation{
		Method: http.MethodPost, Path: t.base, ID: t.opID + "_create", Tags: t.tags,
		Summary: "Create a " + t.typ + " repository", Request: request, Response: response, Status: http.StatusCreated,
	}, func(c echo.Context) error {
		ctx := c.Request().Context()
		var body repositoryRequest
		given, fields, err := s.bindObject(c, kindRepository, t.typ, false, &body)
		if err != nil {
			return err
		}
		repo := &core.Repository{Type: t.typ, Name: body.Name, RetainRepoVersions: body.RetainRepoVersions}
		if body.Description != nil {
			repo.Description = *body.Description
		}
		if body.Remote != nil {
			rem, err := s.remoteFromHref(ctx, "remote", *body.Remote, pluginOf(t.typ))
			if err != nil {
				return err
			}
			repo.RemoteID = &rem.ID
		}
		err = s.saveObject(ctx, kindRepository, t.typ, Create, fields, given, func(tx *core.Store) (any, error) {
			return repo, tx.CreateRepository(ctx, repo)
		})
		if err != nil {
			return err
		}
		out, err := s.showRepository(ctx, repo)
		if err != nil {
			return err
		}
		return c.JSON(http.StatusCreated, out)
	})

	r.Add(Operation{
		Method: http.MethodGet, Path: item, ID: t.opID + "_read", Tags: t.tags,
		Summary: "Inspect a " + t.typ + " repository", Response: response,
	}, typedRead(t.typ, s.typedRepository, s.showRepository))

	update := func(partial bool) echo.HandlerFunc {
		return func(c echo.Context) error {
			ctx := c.Request().Context()
			repo, err := s.typedRepository(ctx, t.typ, c.Param("id"))
			if err != nil {
				return err
			}
			var body repositoryRequest
			given, fields, err := s.bindObject(c, kindRepository, t.typ, partial, &body)
			if err != nil {
				return err
			}
			u, err := s.repositoryUpdate(ctx, repo, t.typ, body, given, partial)
			if err != nil {
				return err
			}
			err = s.saveObject(ctx, kindRepository, t.typ, opOf(partial), fields, given, func(tx *core.Store) (any, error) {
				repo, err = tx.UpdateRepository(ctx, repo.ID, u)
				return repo, err
			})
			if err != nil {
				return err
			}
			out, err := s.showRepository(ctx, repo)
			if err != nil {
				return err
			}
			return c.JSON(http.StatusOK, out)
		}
	}
	r.Add(Operation{
		Method: http.MethodPut, Path: item, ID: t.opID + "_update", Tags: t.tags,
		Summary: "Replace a " + t.typ + " repository's settings", Description: "Fields left out are reset to their defaults.",
		Request: request, Response: response,
	}, update(false))
	r.Add(Operation{
		Method: http.MethodPatch, Path: item, ID: t.opID + "_partial_update", Tags: t.tags,
		Summary: "Change some of a " + t.typ + " repository's settings", Request: request, Response: response,
	}, update(true))

	r.Add(Operation{
		Method: http.MethodDelete, Path: item, ID: t.opID + "_delete", Tags: t.tags,
		Summary:     "Delete a " + t.typ + " repository",
		Description: "Dispatches a core.delete_repository task; its content stays until orphan cleanup.",
		Response:    TaskAccepted{}, Status: http.StatusAccepted,
	}, func(c echo.Context) error {
		ctx := c.Request().Context()
		repo, err := s.typedRepository(ctx, t.typ, c.Param("id"))
		if err != nil {
			return err
		}
		task, err := s.dispatch(ctx, tasks.Spec{
			Name:      TaskDeleteRepository,
			Args:      DeleteRepositoryArgs{RepositoryID: repo.ID},
			Exclusive: []string{RepositoryResource(repo.ID)},
		})
		if err != nil {
			return err
		}
		return Accepted(c, task)
	})
}

// repositoryUpdate turns an update body into the store's change. A PUT
// (partial false) resets the fields it leaves out.
func (s *Server) repositoryUpdate(ctx context.Context, repo *core.Repository, typ string, body repositoryRequest, given Fields, partial bool) (core.RepositoryUpdate, error) {
	var u core.RepositoryUpdate
	if given.Has("name") && body.Name != repo.Name {
		return u, core.Invalid("name", "Repositories cannot be renamed.")
	}
	if given.Has("description") || !partial {
		d := ""
		if body.Description != nil {
			d = *body.Description
		}
		u.Description = &d
	}
	if given.Has("retain_repo_versions") || !partial {
		u.RetainRepoVersions = &body.RetainRepoVersions
	}
	if given.Has("remote") || !partial {
		var id *string
		if body.Remote != nil {
			rem, err := s.remoteFromHref(ctx, "remote", *body.Remote, pluginOf(typ))
			if err != nil {
				return u, err
			}
			id = &rem.ID
		}
		u.RemoteID = &id
	}
	return u, nil
}
