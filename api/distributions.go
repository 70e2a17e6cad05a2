package api

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/berth-dev/berth/core"
)

// DistributionResponse is a distribution as the REST API shows it.
type DistributionResponse struct {
	Href            string    `json:"pulp_href" api:"readonly"`
	PulpCreated     time.Time `json:"pulp_created" api:"readonly"`
	PulpLastUpdated time.Time `json:"pulp_last_updated" api:"readonly"`
	PulpType        string    `json:"pulp_type" api:"readonly"`
	Name            string    `json:"name"`
	BasePath        string    `json:"base_path"`
	// Repository is served at its latest version; RepositoryVersion is a
	// pinned version. At most one is set.
	Repository        *string `json:"repository"`
	RepositoryVersion *string `json:"repository_version"`
	Private           bool    `json:"private" doc:"Only users with access to the namespace may pull."`
}

// distributionRequest is the body of a distribution create or update.
type distributionRequest struct {
	Name              string  `json:"name" api:"required"`
	BasePath          string  `json:"base_path" api:"required" doc:"Unique path it is served at: lowercase components separated by '/'."`
	Repository        *string `json:"repository" doc:"Href of a repository to serve at its latest version."`
	RepositoryVersion *string `json:"repository_version" doc:"Href of a repository version to serve (instead of repository)."`
	Private           *bool   `json:"private" doc:"Default false."`
}

func distributionListSpec(generic bool) ListSpec {
	f := map[string]Field{
		"name":         {Kind: KindString, Lookups: StringLookups(), Order: true},
		"base_path":    {Kind: KindString, Lookups: StringLookups(), Order: true},
		"pulp_created": {Kind: KindTime, Lookups: TimeLookups(), Order: true},
		"private":      {Kind: KindBool, Lookups: BoolLookups()},
		"repository":   {Kind: KindHref, Lookups: HrefLookups(), Resolve: hrefResolver(Repositories), Doc: "Href of the repository served."},
		"pulp_id":      {Kind: KindString, Lookups: []string{In}, Order: true},
	}
	if generic {
		f["pulp_type"] = Field{Kind: KindString, Lookups: []string{Exact, In}, Order: true}
	}
	return ListSpec{Fields: f, Tiebreak: "pulp_id"}
}

// distributionResponses renders distributions; the types of the
// repositories they serve are found in one query, pinned versions one by
// one (they are rare).
func (s *Server) distributionResponses(ctx context.Context, ds []core.Distribution) ([]DistributionResponse, error) {
	versions := map[string]*core.RepositoryVersion{}
	var repoIDs []string
	for _, d := range ds {
		if d.RepositoryID != nil {
			repoIDs = append(repoIDs, *d.RepositoryID)
		}
		if d.RepositoryVersionID != nil {
			if _, ok := versions[*d.RepositoryVersionID]; ok {
				continue
			}
			v, err := s.store.VersionByID(ctx, *d.RepositoryVersionID)
			if err != nil {
				return nil, err
			}
			versions[v.ID] = v
			repoIDs = append(repoIDs, v.RepositoryID)
		}
	}
	types, err := s.repositoryTypes(ctx, repoIDs)
	if err != nil {
		return nil, err
	}
	out := make([]DistributionResponse, len(ds))
	for i, d := range ds {
		out[i] = DistributionResponse{
			Href:            DistributionHref(d.Type, d.ID),
			PulpCreated:     APITime(d.CreatedAt),
			PulpLastUpdated: APITime(d.UpdatedAt),
			PulpType:        d.Type,
			Name:            d.Name,
			BasePath:        d.BasePath,
			Private:         d.Private,
		}
		if d.RepositoryID != nil {
			if t, ok := types[*d.RepositoryID]; ok {
				h := RepositoryHref(t, *d.RepositoryID)
				out[i].Repository = &h
			}
		}
		if d.RepositoryVersionID != nil {
			v := versions[*d.RepositoryVersionID]
			if t, ok := types[v.RepositoryID]; ok {
				h := VersionHref(t, v.RepositoryID, v.Number)
				out[i].RepositoryVersion = &h
			}
		}
	}
	return out, nil
}

// showDistributions renders distributions with their plugins' fields.
func (s *Server) showDistributions(ctx context.Context, ds []core.Distribution) ([]any, error) {
	out, err := s.distributionResponses(ctx, ds)
	if err != nil {
		return nil, err
	}
	return extendAll(ctx, s, kindDistribution, out, func(i int) (string, string) { return ds[i].Type, ds[i].ID })
}

func (s *Server) showDistribution(ctx context.Context, d *core.Distribution) (any, error) {
	out, err := s.showDistributions(ctx, []core.Distribution{*d})
	if err != nil {
		return nil, err
	}
	return out[0], nil
}

// typedDistribution finds the distribution of the path, which must be of typ.
func (s *Server) typedDistribution(ctx context.Context, typ, id string) (*core.Distribution, error) {
	d, err := s.store.Distribution(ctx, id)
	if err != nil {
		return nil, err
	}
	if d.Type != typ {
		return nil, core.NotFound("distribution", id)
	}
	return d, nil
}

// applyDistribution copies a body onto d, resolving its hrefs. A PUT
// (reset) first resets every field to its default.
func (s *Server) applyDistribution(ctx context.Context, d *core.Distribution, body distributionRequest, given Fields, reset bool) error {
	if reset {
		*d = core.Distribution{ID: d.ID, Type: d.Type, CreatedAt: d.CreatedAt, UpdatedAt: d.UpdatedAt}
	}
	if given.Has("name") {
		d.Name = body.Name
	}
	if given.Has("base_path") {
		d.BasePath = body.BasePath
	}
	if given.Has("private") {
		d.Private = body.Private != nil && *body.Private
	}
	verr := &core.ValidationError{}
	if given.Has("repository") {
		d.RepositoryID = nil
		if body.Repository != nil {
			repo, err := s.repositoryFromHref(ctx, "repository", *body.Repository, pluginOf(d.Type))
			if err != nil {
				if !mergeInvalid(verr, err) {
					return err
				}
			} else {
				d.RepositoryID = &repo.ID
			}
		}
	}
	if given.Has("repository_version") {
		d.RepositoryVersionID = nil
		if body.RepositoryVersion != nil {
			_, v, err := s.versionFromHref(ctx, "repository_version", *body.RepositoryVersion, pluginOf(d.Type))
			if err != nil {
				if !mergeInvalid(verr, err) {
					return err
				}
			} else {
				d.RepositoryVersionID = &v.ID
			}
		}
	}
	return verr.Err()
}

// mergeInvalid adds the fields of a validation error to verr and reports
// whether err was one.
func mergeInvalid(verr *core.ValidationError, err error) bool {
	var ve *core.ValidationError
	if !errors.As(err, &ve) {
		return false
	}
	for f, msgs := range ve.Fields {
		for _, m := range msgs {
			verr.Add(f, "%s", m)
		}
	}
	return true
}

func (s *Server) listDistributions(spec ListSpec, typ string) echo.HandlerFunc {
	return typedList(spec, typ, s.store.ListDistributions, s.showDistributions)
}

func (s *Server) distributionRoutes(r *Router) {
	generic := distributionListSpec(true)
	r.Add(Operation{
		Method: http.MethodGet, Path: Prefix + Distributions + "/", ID: "distributions_list", Tags: []string{"Distributions"},
		Summary: "List distributions of every type", Params: generic.Params(), Response: Page[DistributionResponse]{},
	}, s.listDistributions(generic, ""))
	for _, typ := range s.registry.TypesOf(kindDistribution) {
		s.typedDistributionRoutes(r, newTypedRoutes(Distributions, typ))
	}
}

func (s *Server) typedDistributionRoutes(r *Router, t typedRoutes) {
	spec := distributionListSpec(false)
	item := t.base + ":id/"
	request := s.docRequest(kindDistribution, t.typ, distributionRequest{})
	response := s.docResponse(kindDistribution, t.typ, DistributionResponse{})
	r.Add(Operation{
		Method: http.MethodGet, Path: t.base, ID: t.opID + "_list", Tags: t.tags,
		Summary: "List " + t.typ + " distributions", Params: spec.Params(), Response: docPage(response),
	}, s.listDistributions(spec, t.typ))

	r.Add(Operation{
		Method: http.MethodPost, Path: t.base, ID: t.opID + "_create", Tags: t.tags,
		Summary: "Create a " + t.typ + " distribution", Request: request, Response: response, Status: http.StatusCreated,
	}, func(c echo.Context) error {
		ctx := c.Request().Context()
		var body distributionRequest
		given, fields, err := s.bindObject(c, kindDistribution, t.typ, false, &body)
		if err != nil {
			return err
		}
		d := &core.Distribution{Type: t.typ}
		if err := s.applyDistribution(ctx, d, body, given, true); err != nil {
			return err
		}
		err = s.saveObject(ctx, kindDistribution, t.typ, Create, fields, given, func(tx *core.Store) (any, error) {
			return d, tx.CreateDistribution(ctx, d)
		})
		if err != nil {
			return err
		}
		out, err := s.showDistribution(ctx, d)
		if err != nil {
			return err
		}
		return c.JSON(http.StatusCreated, out)
	})

	r.Add(Operation{
		Method: http.MethodGet, Path: item, ID: t.opID + "_read", Tags: t.tags,
		Summary: "Inspect a " + t.typ + " distribution", Response: response,
	}, typedRead(t.typ, s.typedDistribution, s.showDistribution))

	update := func(partial bool) echo.HandlerFunc {
		return func(c echo.Context) error {
			ctx := c.Request().Context()
			d, err := s.typedDistribution(ctx, t.typ, c.Param("id"))
			if err != nil {
				return err
			}
			var body distributionRequest
			given, fields, err := s.bindObject(c, kindDistribution, t.typ, partial, &body)
			if err != nil {
				return err
			}
			if err := s.applyDistribution(ctx, d, body, given, !partial); err != nil {
				return err
			}
			err = s.saveObject(ctx, kindDistribution, t.typ, opOf(partial), fields, given, func(tx *core.Store) (any, error) {
				return d, tx.UpdateDistribution(ctx, d)
			})
			if err != nil {
				return err
			}
			out, err := s.showDistribution(ctx, d)
			if err != nil {
				return err
			}
			return c.JSON(http.StatusOK, out)
		}
	}
	r.Add(Operation{
		Method: http.MethodPut, Path: item, ID: t.opID + "_update", Tags: t.tags,
		Summary: "Replace a " + t.typ + " distribution", Description: "Fields left out are reset to their defaults.",
		Request: request, Response: response,
	}, update(false))
	r.Add(Operation{
		Method: http.MethodPatch, Path: item, ID: t.opID + "_partial_update", Tags: t.tags,
		Summary: "Change some fields of a " + t.typ + " distribution", Request: request, Response: response,
	}, update(true))

	r.Add(Operation{
		Method: http.MethodDelete, Path: item, ID: t.opID + "_delete", Tags: t.tags,
		Summary:     "Delete a " + t.typ + " distribution",
		Description: "Synchronous; the repository it served stays.",
		Status:      http.StatusNoContent,
	}, func(c echo.Context) error {
		ctx := c.Request().Context()
		d, err := s.typedDistribution(ctx, t.typ, c.Param("id"))
		if err != nil {
			return err
		}
		if err := s.store.DeleteDistribution(ctx, d.ID); err != nil {
			return err
		}
		return c.NoContent(http.StatusNoContent)
	})
}
