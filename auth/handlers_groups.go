package auth

import (
	"errors"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/core"
)

// groupView is a group in Pulp's shape.
type groupView struct {
	PulpHref    string    `json:"pulp_href"`
	ID          string    `json:"id"`
	Name        string    `json:"name"`
	PulpCreated time.Time `json:"pulp_created"`
}

func newGroupView(g *Group) groupView {
	return groupView{PulpHref: groupHref(g.ID), ID: g.ID, Name: g.Name, PulpCreated: g.CreatedAt}
}

var groupFilters = map[string]fieldKind{"name": textField, "id": textField}

func (s *Service) handleListGroups(c echo.Context) error {
	q, err := listQuery(c, groupFilters)
	if err != nil {
		return err
	}
	groups, total, err := s.ListGroups(c.Request().Context(), q)
	if err != nil {
		return err
	}
	views := make([]groupView, len(groups))
	for i := range groups {
		views[i] = newGroupView(&groups[i])
	}
	return c.JSON(http.StatusOK, api.NewPage(c, q, total, views))
}

type groupBody struct {
	Name *string `json:"name" doc:"Unique; required to create a group."`
}

// memberBody adds a user to a group.
type memberBody struct {
	Username string `json:"username" api:"required"`
}

func (s *Service) handleCreateGroup(c echo.Context) error {
	var b groupBody
	if err := decodeJSON(c, &b); err != nil {
		return err
	}
	if b.Name == nil {
		return core.Invalid("name", "this field is required")
	}
	g, err := s.CreateGroup(c.Request().Context(), *b.Name)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, newGroupView(g))
}

func (s *Service) handleGetGroup(c echo.Context) error {
	g, err := s.Group(c.Request().Context(), c.Param("id"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, newGroupView(g))
}

func (s *Service) handleUpdateGroup(c echo.Context) error {
	ctx := c.Request().Context()
	var b groupBody
	if err := decodeJSON(c, &b); err != nil {
		return err
	}
	g, err := s.Group(ctx, c.Param("id"))
	if err != nil {
		return err
	}
	if b.Name != nil && *b.Name != g.Name {
		if g, err = s.RenameGroup(ctx, g.ID, *b.Name); err != nil {
			return err
		}
	}
	return c.JSON(http.StatusOK, newGroupView(g))
}

func (s *Service) handleDeleteGroup(c echo.Context) error {
	if err := s.DeleteGroup(c.Request().Context(), c.Param("id")); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

func (s *Service) handleListMembers(c echo.Context) error {
	ctx := c.Request().Context()
	q, err := listQuery(c, userFilters)
	if err != nil {
		return err
	}
	users, total, err := s.GroupMembers(ctx, c.Param("id"), q)
	if err != nil {
		return err
	}
	views, err := s.userViews(ctx, users)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, api.NewPage(c, q, total, views))
}

func (s *Service) handleAddMember(c echo.Context) error {
	ctx := c.Request().Context()
	var b memberBody
	if err := decodeJSON(c, &b); err != nil {
		return err
	}
	if b.Username == "" {
		return core.Invalid("username", "this field is required")
	}
	g, err := s.Group(ctx, c.Param("id"))
	if err != nil {
		return err
	}
	u, err := s.UserByName(ctx, b.Username)
	if errors.Is(err, core.ErrNotFound) {
		return core.Invalid("username", "no user %q", b.Username)
	}
	if err != nil {
		return err
	}
	if err := s.AddGroupMember(ctx, g.ID, u.ID); err != nil {
		return err
	}
	v, err := s.userView(ctx, u)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, v)
}

func (s *Service) handleRemoveMember(c echo.Context) error {
	if err := s.RemoveGroupMember(c.Request().Context(), c.Param("id"), c.Param("user_id")); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}
