package auth

import (
	"context"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/core"
)

func userHref(id string) string  { return PulpRoot + "users/" + id + "/" }
func groupHref(id string) string { return PulpRoot + "groups/" + id + "/" }

// userView is a user in Pulp's shape. It has no password field at all: the
// password is write-only and hidden_fields tells whether one is set.
type userView struct {
	PulpHref     string        `json:"pulp_href"`
	ID           string        `json:"id"`
	Username     string        `json:"username"`
	FirstName    string        `json:"first_name"`
	LastName     string        `json:"last_name"`
	Email        string        `json:"email"`
	IsSuperuser  bool          `json:"is_superuser"`
	IsActive     bool          `json:"is_active"`
	DateJoined   time.Time     `json:"date_joined"`
	Groups       []groupRef    `json:"groups"`
	HiddenFields []hiddenField `json:"hidden_fields"`
}

type groupRef struct {
	Name     string `json:"name"`
	PulpHref string `json:"pulp_href"`
}

type hiddenField struct {
	Name  string `json:"name"`
	IsSet bool   `json:"is_set"`
}

func newUserView(u *User, groups []Group) userView {
	v := userView{PulpHref: userHref(u.ID), ID: u.ID, Username: u.Username, FirstName: u.FirstName, LastName: u.LastName,
		Email: u.Email, IsSuperuser: u.Superuser, IsActive: u.Active, DateJoined: u.CreatedAt,
		Groups: make([]groupRef, len(groups)), HiddenFields: []hiddenField{{Name: "password", IsSet: u.HasPassword()}}}
	for i, g := range groups {
		v.Groups[i] = groupRef{Name: g.Name, PulpHref: groupHref(g.ID)}
	}
	return v
}

func (s *Service) userViews(ctx context.Context, users []User) ([]userView, error) {
	ids := make([]string, len(users))
	for i, u := range users {
		ids[i] = u.ID
	}
	groups, err := s.store.groupsOfUsers(ctx, ids)
	if err != nil {
		return nil, err
	}
	out := make([]userView, len(users))
	for i := range users {
		out[i] = newUserView(&users[i], groups[users[i].ID])
	}
	return out, nil
}

func (s *Service) userView(ctx context.Context, u *User) (userView, error) {
	groups, err := s.store.groupsOfUser(ctx, u.ID)
	if err != nil {
		return userView{}, err
	}
	return newUserView(u, groups), nil
}

var userFilters = map[string]fieldKind{"username": textField, "email": textField, "first_name": textField,
	"last_name": textField, "is_superuser": boolField, "is_active": boolField}

func (s *Service) handleListUsers(c echo.Context) error {
	ctx := c.Request().Context()
	q, err := listQuery(c, userFilters)
	if err != nil {
		return err
	}
	users, total, err := s.ListUsers(ctx, q)
	if err != nil {
		return err
	}
	views, err := s.userViews(ctx, users)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, api.NewPage(c, q, total, views))
}

// userBody is a user as clients write it.
type userBody struct {
	Username    *string `json:"username" doc:"Unique (case-insensitively); required to create a user."`
	Password    *string `json:"password" api:"writeonly" doc:"Never shown; hidden_fields tells whether one is set."`
	FirstName   *string `json:"first_name"`
	LastName    *string `json:"last_name"`
	Email       *string `json:"email"`
	IsSuperuser *bool   `json:"is_superuser"`
	IsActive    *bool   `json:"is_active"`
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

func (s *Service) handleCreateUser(c echo.Context) error {
	ctx := c.Request().Context()
	var b userBody
	if err := decodeJSON(c, &b); err != nil {
		return err
	}
	if b.Username == nil {
		return core.Invalid("username", "this field is required")
	}
	u, err := s.CreateUser(ctx, UserInput{Username: *b.Username, Password: deref(b.Password), FirstName: deref(b.FirstName),
		LastName: deref(b.LastName), Email: deref(b.Email), Superuser: deref(b.IsSuperuser)})
	if err != nil {
		return err
	}
	if b.IsActive != nil && !*b.IsActive {
		if u, err = s.UpdateUser(ctx, u.ID, UserPatch{Active: b.IsActive}); err != nil {
			return err
		}
	}
	v, err := s.userView(ctx, u)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, v)
}

func (s *Service) handleGetUser(c echo.Context) error {
	ctx := c.Request().Context()
	u, err := s.User(ctx, c.Param("id"))
	if err != nil {
		return err
	}
	v, err := s.userView(ctx, u)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, v)
}

func (s *Service) handleUpdateUser(c echo.Context) error {
	ctx := c.Request().Context()
	var b userBody
	if err := decodeJSON(c, &b); err != nil {
		return err
	}
	u, err := s.UpdateUser(ctx, c.Param("id"), UserPatch{Username: b.Username, Password: b.Password, FirstName: b.FirstName,
		LastName: b.LastName, Email: b.Email, Superuser: b.IsSuperuser, Active: b.IsActive})
	if err != nil {
		return err
	}
	v, err := s.userView(ctx, u)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, v)
}

func (s *Service) handleDeleteUser(c echo.Context) error {
	if err := s.DeleteUser(c.Request().Context(), c.Param("id")); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// meView is the current user with its global permissions.
type meView struct {
	userView
	Permissions []Action `json:"permissions"`
}

func (s *Service) handleMe(c echo.Context) error {
	ctx := c.Request().Context()
	p := PrincipalFrom(ctx)
	u, err := s.User(ctx, p.UserID)
	if err != nil {
		return err
	}
	v, err := s.userView(ctx, u)
	if err != nil {
		return err
	}
	perms, err := s.authz.GlobalPermissions(ctx, p)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, meView{userView: v, Permissions: perms})
}
