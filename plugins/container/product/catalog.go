package product

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/labstack/echo/v4"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/core"
)

// The image catalog (PrimeHub's image management): the images users may
// pick, each with a display name, a type, a container image URL (or a
// build that makes it), an optional pull secret, and the groups that may
// use it. Administrators (superusers and registry admins) change it.

var catalogTags = []string{"Image catalog"}

// Catalog entry types.
const (
	TypeCPU       = "cpu"
	TypeGPU       = "gpu"
	TypeUniversal = "universal"
)

// displayNameRE is PrimeHub's rule for display names.
var displayNameRE = regexp.MustCompile(`^[a-z0-9.-]+$`)

// maxDisplayName bounds a display name (the image name derived from it
// must fit a DNS label with a suffix).
const maxDisplayName = 50

// CatalogEntry is an image of the catalog.
type CatalogEntry struct {
	Href          string     `json:"href" api:"readonly"`
	Name          string     `json:"name" doc:"The image name, generated from the display name and unique."`
	DisplayName   string     `json:"display_name"`
	Description   string     `json:"description"`
	Type          string     `json:"type" enum:"cpu,gpu,universal"`
	URL           string     `json:"url" doc:"The container image URL."`
	GPUURL        string     `json:"gpu_url" doc:"The image URL for GPU use: the url unless a universal image names another."`
	HasPullSecret bool       `json:"has_pull_secret" doc:"A pull secret is stored (it is never shown)."`
	Global        bool       `json:"global" doc:"Every group may use the image."`
	Groups        []string   `json:"groups" doc:"The groups that may use the image when it is not global."`
	System        bool       `json:"system" doc:"A system image."`
	Build         *BuildInfo `json:"build" doc:"The build that makes the image, for a custom image; null otherwise."`
	Building      bool       `json:"building" doc:"The image is still being built: not ready to use."`
	Ready         bool       `json:"ready" doc:"The image can be used."`
	CreatedAt     time.Time  `json:"created_at"`
	UpdatedAt     time.Time  `json:"updated_at"`
}

// catalogRequest creates an entry.
type catalogRequest struct {
	DisplayName string   `json:"display_name" api:"required" doc:"Lowercase letters, digits, '-' and '.' only."`
	Description string   `json:"description"`
	Type        string   `json:"type" enum:"cpu,gpu,universal" doc:"Default cpu."`
	URL         string   `json:"url" doc:"An existing image's URL; required unless build is given."`
	GPUURL      string   `json:"gpu_url" doc:"A separate image URL for GPU use (universal images only)."`
	PullSecret  string   `json:"pull_secret" api:"writeonly" doc:"Credentials to pull the image; stored encrypted, never shown."`
	Global      bool     `json:"global"`
	Groups      []string `json:"groups" doc:"Names of the groups that may use the image (not with global)."`
	System      bool     `json:"system"`
	Build       string   `json:"build" doc:"Href or ID of the build that makes the image (a custom image) instead of url."`
}

// catalogPatch changes some fields of an entry.
type catalogPatch struct {
	DisplayName *string   `json:"display_name"`
	Description *string   `json:"description"`
	Type        *string   `json:"type" enum:"cpu,gpu,universal"`
	URL         *string   `json:"url"`
	GPUURL      *string   `json:"gpu_url"`
	PullSecret  *string   `json:"pull_secret" api:"writeonly" doc:"\"\" removes the secret."`
	Global      *bool     `json:"global"`
	Groups      *[]string `json:"groups"`
	System      *bool     `json:"system"`
	Build       *string   `json:"build"`
}

var catalogSpec = api.ListSpec{Fields: map[string]api.Field{
	"name":         {Kind: api.KindString, Lookups: api.StringLookups(), Order: true},
	"display_name": {Kind: api.KindString, Lookups: api.StringLookups(), Order: true},
	"type":         {Kind: api.KindString, Lookups: []string{api.Exact, api.In}, Order: true},
	"system":       {Kind: api.KindBool, Lookups: api.BoolLookups()},
	"global":       {Kind: api.KindBool, Lookups: api.BoolLookups()},
	"created_at":   {Kind: api.KindTime, Lookups: api.TimeLookups(), Order: true},
}}

func (s *Service) catalogRoutes(r *api.Router) {
	item := catalogRoot + ":name/"
	add := func(method, path, id, summary, desc string, params []api.Param, req, resp any, status int, h echo.HandlerFunc) {
		r.Add(api.Operation{Method: method, Path: path, ID: "catalog_" + id, Tags: catalogTags, Summary: summary,
			Description: desc, Params: params, Request: req, Response: resp, Status: status}, h)
	}
	add(http.MethodGet, catalogRoot, "list", "List the catalog images the caller may use",
		"Global images and those of the caller's groups; administrators see every image.", catalogSpec.Params(), nil, api.Page[CatalogEntry]{}, 0, s.listCatalog)
	add(http.MethodPost, catalogRoot, "create", "Add an image to the catalog (administrators)",
		"Either an existing image (url) or a custom image made by a build (build). The image name is generated from the display name; a taken one gets a suffix.",
		nil, catalogRequest{}, CatalogEntry{}, http.StatusCreated, s.createEntry)
	add(http.MethodGet, item, "read", "Inspect a catalog image", "", nil, nil, CatalogEntry{}, 0, s.getEntry)
	add(http.MethodPatch, item, "partial_update", "Change a catalog image (administrators)", "", nil, catalogPatch{}, CatalogEntry{}, 0, s.patchEntry)
	add(http.MethodDelete, item, "delete", "Remove an image from the catalog (administrators)",
		"The image itself stays in its registry.", nil, nil, nil, http.StatusNoContent, s.deleteEntry)
}

// catalogAccess is what the caller may see of the catalog.
func (s *Service) catalogAccess(ctx context.Context) (all bool, groupIDs []string, err error) {
	p := principal(ctx)
	if p.IsAnonymous() {
		return false, nil, nil
	}
	if all, err = s.isAdmin(ctx); err != nil || all {
		return all, nil, err
	}
	groups, err := s.auth.UserGroups(ctx, p.UserID)
	if err != nil {
		return false, nil, err
	}
	for _, g := range groups {
		groupIDs = append(groupIDs, g.ID)
	}
	return false, groupIDs, nil
}

func (s *Service) listCatalog(c echo.Context) error {
	ctx := c.Request().Context()
	q, err := api.ParseList(c, catalogSpec)
	if err != nil {
		return err
	}
	all, groups, err := s.catalogAccess(ctx)
	if err != nil {
		return err
	}
	rows, total, err := listEntries(ctx, s.store, q, all, groups)
	if err != nil {
		return err
	}
	out, err := s.entries(ctx, rows)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, api.NewPage(c, q, total, out))
}

// entries renders catalog rows.
func (s *Service) entries(ctx context.Context, rows []entryRow) ([]CatalogEntry, error) {
	ids := make([]string, len(rows))
	for i, r := range rows {
		ids[i] = r.ID
	}
	groups, err := entryGroups(ctx, s.store, ids)
	if err != nil {
		return nil, err
	}
	out := make([]CatalogEntry, len(rows))
	for i, r := range rows {
		e := CatalogEntry{
			Href: catalogRoot + r.Name + "/", Name: r.Name, DisplayName: r.DisplayName, Description: r.Description, Type: r.Type,
			URL: r.URL, GPUURL: r.GPUURL, HasPullSecret: r.PullSecretEnc != "", Global: r.Global, Groups: []string{},
			System: r.System, Ready: true, CreatedAt: apiTime(r.CreatedAt), UpdatedAt: apiTime(r.UpdatedAt),
		}
		if e.GPUURL == "" && e.Type != TypeCPU {
			e.GPUURL = e.URL
		}
		for _, g := range groups[r.ID] {
			e.Groups = append(e.Groups, g.Name)
		}
		if r.BuildID != "" {
			b, err := s.buildOf(ctx, r.BuildID)
			if err != nil {
				return nil, err
			}
			e.Build = b
			e.Ready = b != nil && b.Status == StatusReady
			e.Building = b != nil && b.Status == StatusPending
		}
		out[i] = e
	}
	return out, nil
}

// buildOf is the build of an entry; nil when the builds service is not
// there or forgot the build.
func (s *Service) buildOf(ctx context.Context, id string) (*BuildInfo, error) {
	if s.builds == nil {
		return nil, nil
	}
	b, err := s.builds.Build(ctx, id)
	if errors.Is(err, core.ErrNotFound) {
		return nil, nil
	}
	return b, err
}

// visibleEntry loads an entry the caller may see.
func (s *Service) visibleEntry(ctx context.Context, name string) (*entryRow, error) {
	all, groups, err := s.catalogAccess(ctx)
	if err != nil {
		return nil, err
	}
	rows, _, err := listEntries(ctx, s.store, core.ListQuery{Limit: 1, Filters: []core.Filter{{Field: "name", Op: "eq", Value: name}}}, all, groups)
	if err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, core.NotFound("catalog image", name)
	}
	return &rows[0], nil
}

func (s *Service) getEntry(c echo.Context) error {
	ctx := c.Request().Context()
	r, err := s.visibleEntry(ctx, nameParam(c, "name"))
	if err != nil {
		return err
	}
	out, err := s.entries(ctx, []entryRow{*r})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, out[0])
}

// entryInput is a create or the result of a patch, to check.
type entryInput struct {
	catalogRequest
	secretSet bool // PullSecret is to be stored (create, or patch with it)
}

// checkEntry validates an entry and resolves its groups and build; it
// fills e's fields. Every problem is reported at once.
func (s *Service) checkEntry(ctx context.Context, in entryInput, e *entryRow) ([]string, error) {
	verr := &core.ValidationError{}
	switch {
	case in.DisplayName == "":
		verr.Add("display_name", "This field is required.")
	case len(in.DisplayName) > maxDisplayName:
		verr.Add("display_name", "At most %d characters.", maxDisplayName)
	case !displayNameRE.MatchString(in.DisplayName):
		verr.Add("display_name", "Only lowercase letters, digits, '-' and '.' may be used (%q has others).", in.DisplayName)
	}
	if in.Type == "" {
		in.Type = TypeCPU
	}
	if !slices.Contains([]string{TypeCPU, TypeGPU, TypeUniversal}, in.Type) {
		verr.Add("type", "Must be cpu, gpu or universal.")
	}
	if in.GPUURL != "" && in.Type != TypeUniversal {
		verr.Add("gpu_url", "Only a universal image has a separate GPU URL.")
	}
	if len(in.Description) > 10000 {
		verr.Add("description", "At most 10000 characters.")
	}
	for field, u := range map[string]string{"url": in.URL, "gpu_url": in.GPUURL} {
		if u != "" {
			if _, err := name.ParseReference(u); err != nil || strings.ContainsAny(u, " \t\n") {
				verr.Add(field, "Not a container image URL such as registry.example.com/team/image:tag (%v).", err)
			}
		}
	}
	switch {
	case in.Build != "" && in.URL != "":
		verr.Add("non_field_errors", "Give either url (an existing image) or build (a custom image), not both.")
	case in.Build == "" && in.URL == "":
		verr.Add("url", "This field is required (or give build for a custom image).")
	}
	if in.Global && len(in.Groups) > 0 {
		verr.Add("groups", "A global image is for every group: give groups only when global is false.")
	}
	var groupIDs []string
	for _, g := range in.Groups {
		grp, err := s.auth.GroupByName(ctx, g)
		if errors.Is(err, core.ErrNotFound) {
			verr.Add("groups", "No group named %q.", g)
			continue
		}
		if err != nil {
			return nil, err
		}
		groupIDs = append(groupIDs, grp.ID)
	}
	e.BuildID = ""
	if in.Build != "" {
		if s.builds == nil {
			verr.Add("build", "Builds are not available on this server.")
		} else {
			b, err := s.builds.Build(ctx, in.Build)
			switch {
			case errors.Is(err, core.ErrNotFound):
				verr.Add("build", "No build %q.", in.Build)
			case err != nil:
				return nil, err
			default:
				e.BuildID = b.ID
				in.URL = s.pullName(b.Image)
			}
		}
	}
	if err := verr.Err(); err != nil {
		return nil, err
	}
	if in.secretSet {
		e.PullSecretEnc = ""
		if in.PullSecret != "" {
			sealed, err := s.store.Secrets().Seal(in.PullSecret)
			if err != nil {
				return nil, fmt.Errorf("seal the pull secret: %w", err)
			}
			e.PullSecretEnc = sealed
		}
	}
	e.DisplayName, e.Description, e.Type, e.URL, e.GPUURL = in.DisplayName, in.Description, in.Type, in.URL, in.GPUURL
	e.Global, e.System = in.Global, in.System
	return groupIDs, nil
}

// imageNameFor makes the image name of a display name: dots become
// hyphens, and a taken name gets the first free "-2", "-3", … suffix.
func imageNameFor(display string, taken []string) string {
	base := strings.Trim(strings.ReplaceAll(display, ".", "-"), "-")
	if base == "" {
		base = "image"
	}
	if !slices.Contains(taken, base) {
		return base
	}
	for n := 2; ; n++ {
		if c := base + "-" + strconv.Itoa(n); !slices.Contains(taken, c) {
			return c
		}
	}
}

func (s *Service) createEntry(c echo.Context) error {
	ctx := c.Request().Context()
	var body catalogRequest
	if _, err := api.Bind(c, &body); err != nil {
		return err
	}
	if err := s.requireAdmin(ctx); err != nil {
		return err
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	e := entryRow{ID: core.NewID(), CreatedBy: principal(ctx).Username, CreatedAt: now, UpdatedAt: now}
	groups, err := s.checkEntry(ctx, entryInput{catalogRequest: body, secretSet: true}, &e)
	if err != nil {
		return err
	}
	// Two creates may pick the same name: the unique key refuses the
	// second, which then picks again.
	for attempt := 0; ; attempt++ {
		err = s.store.Tx(ctx, func(tx *core.Store) error {
			base := strings.Trim(strings.ReplaceAll(e.DisplayName, ".", "-"), "-")
			taken, err := entryNamesLike(ctx, tx, base)
			if err != nil {
				return err
			}
			e.Name = imageNameFor(e.DisplayName, taken)
			return insertEntry(ctx, tx, e, groups)
		})
		if !errors.Is(err, core.ErrConflict) || attempt == 4 {
			break
		}
	}
	if err != nil {
		return err
	}
	s.log.InfoContext(ctx, "catalog image added", "name", e.Name, "user", e.CreatedBy)
	out, err := s.entries(ctx, []entryRow{e})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, out[0])
}

func (s *Service) patchEntry(c echo.Context) error {
	ctx := c.Request().Context()
	var body catalogPatch
	if _, err := api.BindPatch(c, &body); err != nil {
		return err
	}
	if err := s.requireAdmin(ctx); err != nil {
		return err
	}
	name := nameParam(c, "name")
	e, found, err := entryByName(ctx, s.store, name)
	if err != nil {
		return err
	}
	if !found {
		return core.NotFound("catalog image", name)
	}
	groups, err := entryGroups(ctx, s.store, []string{e.ID})
	if err != nil {
		return err
	}
	in := entryInput{catalogRequest: catalogRequest{
		DisplayName: e.DisplayName, Description: e.Description, Type: e.Type, URL: e.URL, GPUURL: e.GPUURL,
		Global: e.Global, System: e.System, Build: e.BuildID,
	}}
	if e.BuildID != "" {
		in.URL = "" // the build's image, looked up again
	}
	for _, g := range groups[e.ID] {
		in.Groups = append(in.Groups, g.Name)
	}
	set := func(dst *string, v *string) {
		if v != nil {
			*dst = *v
		}
	}
	set(&in.DisplayName, body.DisplayName)
	set(&in.Description, body.Description)
	set(&in.Type, body.Type)
	set(&in.GPUURL, body.GPUURL)
	if body.URL != nil {
		in.URL, in.Build = *body.URL, ""
	}
	if body.Build != nil {
		in.Build = *body.Build
		if *body.Build != "" && body.URL == nil {
			in.URL = ""
		}
	}
	if body.PullSecret != nil {
		in.PullSecret, in.secretSet = *body.PullSecret, true
	}
	if body.Global != nil {
		in.Global = *body.Global
		if in.Global && body.Groups == nil {
			in.Groups = nil
		}
	}
	if body.Groups != nil {
		in.Groups = *body.Groups
	}
	if body.System != nil {
		in.System = *body.System
	}
	ids, err := s.checkEntry(ctx, in, &e)
	if err != nil {
		return err
	}
	e.UpdatedAt = time.Now().UTC().Truncate(time.Microsecond)
	if err := s.store.Tx(ctx, func(tx *core.Store) error { return updateEntry(ctx, tx, e, ids) }); err != nil {
		return err
	}
	out, err := s.entries(ctx, []entryRow{e})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, out[0])
}

func (s *Service) deleteEntry(c echo.Context) error {
	ctx := c.Request().Context()
	if err := s.requireAdmin(ctx); err != nil {
		return err
	}
	name := nameParam(c, "name")
	e, found, err := entryByName(ctx, s.store, name)
	if err != nil {
		return err
	}
	if !found {
		return core.NotFound("catalog image", name)
	}
	if _, err := deleteEntry(ctx, s.store, e.ID); err != nil {
		return err
	}
	s.log.InfoContext(ctx, "catalog image removed", "name", name, "user", principal(ctx).Username)
	return c.NoContent(http.StatusNoContent)
}
