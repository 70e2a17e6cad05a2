package auth

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"

	"github.com/labstack/echo/v4"

	"github.com/berth-dev/berth/core"
)

// NamespaceFunc tells which namespace a request addresses, typically from a
// route parameter; the plugin that owns namespaces provides it. It answers
// an error matching core.ErrNotFound for an unknown namespace.
type NamespaceFunc func(c echo.Context) (Namespace, error)

type roleHandlers struct {
	s  *Service
	ns NamespaceFunc
}

// namespace resolves the request's namespace and checks that the principal
// may do act on it.
func (h roleHandlers) namespace(c echo.Context, act Action) (Namespace, error) {
	ns, err := h.ns(c)
	if err != nil {
		return ns, err
	}
	if ns.Missing {
		return ns, core.NotFound("namespace", ns.Name)
	}
	ctx := c.Request().Context()
	return ns, h.s.authz.Require(ctx, PrincipalFrom(ctx), act, ns)
}

// roleBody is Pulp's add_role/remove_role body, and a list_roles entry.
type roleBody struct {
	Role           Role     `json:"role" doc:"owner, collaborator or consumer (Pulp's container.containernamespace_* names are accepted too)."`
	Users          []string `json:"users" doc:"Usernames."`
	Groups         []string `json:"groups" doc:"Group names."`
	PermanentUsers []string `json:"permanent_users,omitempty" api:"readonly" doc:"Users whose role cannot be removed: the namespace's creator."`
}

// rolesView is the list_roles answer.
type rolesView struct {
	Roles []roleBody `json:"roles"`
}

// permissionsView is the my_permissions answer.
type permissionsView struct {
	Permissions []Action `json:"permissions" doc:"The actions the caller may do on the object."`
}

// namedSubject is a subject with the name the request gave it.
type namedSubject struct {
	Subject
	name string
}

// subjects reads and checks an add_role/remove_role body.
func (h roleHandlers) subjects(ctx context.Context, b *roleBody) (Role, []namedSubject, error) {
	v := &core.ValidationError{}
	role, err := ParseRole(string(b.Role))
	if err == nil && !slices.Contains(NamespaceRoles(), role) {
		v.Add("role", "%q is not a namespace role: want owner, collaborator or consumer", b.Role)
	} else if err != nil {
		v.Add("role", "unknown role %q: want owner, collaborator or consumer", b.Role)
	}
	if len(b.Users) == 0 && len(b.Groups) == 0 {
		v.Add("users", "name at least one user or group")
	}
	var subs []namedSubject
	for _, name := range b.Users {
		u, err := h.s.store.userByName(ctx, name)
		switch {
		case errors.Is(err, core.ErrNotFound):
			v.Add("users", "no user %q", name)
		case err != nil:
			return "", nil, err
		default:
			subs = append(subs, namedSubject{UserSubject(u.ID), name})
		}
	}
	for _, name := range b.Groups {
		g, err := h.s.store.groupByName(ctx, name)
		switch {
		case errors.Is(err, core.ErrNotFound):
			v.Add("groups", "no group %q", name)
		case err != nil:
			return "", nil, err
		default:
			subs = append(subs, namedSubject{GroupSubject(g.ID), name})
		}
	}
	return role, subs, v.Err()
}

func (h roleHandlers) addRole(c echo.Context) error {
	ctx := c.Request().Context()
	ns, err := h.namespace(c, ActionManageRoles)
	if err != nil {
		return err
	}
	var b roleBody
	if err := decodeJSON(c, &b); err != nil {
		return err
	}
	role, subs, err := h.subjects(ctx, &b)
	if err != nil {
		return err
	}
	for _, sub := range subs {
		if err := h.s.GrantRole(ctx, ns.Name, role, sub.Subject); err != nil {
			return err
		}
	}
	return c.JSON(http.StatusCreated, roleBody{Role: role, Users: orEmpty(b.Users), Groups: orEmpty(b.Groups)})
}

func (h roleHandlers) removeRole(c echo.Context) error {
	ctx := c.Request().Context()
	ns, err := h.namespace(c, ActionManageRoles)
	if err != nil {
		return err
	}
	var b roleBody
	if err := decodeJSON(c, &b); err != nil {
		return err
	}
	role, subs, err := h.subjects(ctx, &b)
	if err != nil {
		return err
	}
	// Check every removal first, so that a refused one changes nothing.
	bindings, err := h.s.NamespaceRoleBindings(ctx, ns.Name)
	if err != nil {
		return err
	}
	v := &core.ValidationError{}
	for _, sub := range subs {
		i := slices.IndexFunc(bindings, func(rb RoleBinding) bool { return rb.Role == role && rb.Subject == sub.Subject })
		switch {
		case i < 0:
			field := "users"
			if sub.Kind == SubjectGroup {
				field = "groups"
			}
			v.Add(field, "%s does not hold the %s role", sub.name, role)
		case bindings[i].Permanent:
			return fmt.Errorf("%s created namespace %q and keeps its %s role for good: %w",
				bindings[i].SubjectName, ns.Name, role, ErrPermanentRole)
		}
	}
	if err := v.Err(); err != nil {
		return err
	}
	for _, sub := range subs {
		if err := h.s.RevokeRole(ctx, ns.Name, role, sub.Subject); err != nil && !errors.Is(err, core.ErrNotFound) {
			return err
		}
	}
	return c.JSON(http.StatusCreated, roleBody{Role: role, Users: orEmpty(b.Users), Groups: orEmpty(b.Groups)})
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func (h roleHandlers) listRoles(c echo.Context) error {
	ns, err := h.namespace(c, ActionManageRoles)
	if err != nil {
		return err
	}
	bindings, err := h.s.NamespaceRoleBindings(c.Request().Context(), ns.Name)
	if err != nil {
		return err
	}
	roles := []roleBody{}
	for _, role := range NamespaceRoles() {
		e := roleBody{Role: role, Users: []string{}, Groups: []string{}}
		for _, rb := range bindings {
			switch {
			case rb.Role != role:
			case rb.Subject.Kind == SubjectUser:
				e.Users = append(e.Users, rb.SubjectName)
				if rb.Permanent {
					e.PermanentUsers = append(e.PermanentUsers, rb.SubjectName)
				}
			default:
				e.Groups = append(e.Groups, rb.SubjectName)
			}
		}
		if len(e.Users)+len(e.Groups) > 0 {
			roles = append(roles, e)
		}
	}
	return c.JSON(http.StatusOK, rolesView{Roles: roles})
}

func (h roleHandlers) myPermissions(c echo.Context) error {
	ctx := c.Request().Context()
	ns, err := h.ns(c)
	if err != nil {
		return err
	}
	perms, err := h.s.authz.Permissions(ctx, PrincipalFrom(ctx), ns)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, permissionsView{Permissions: perms})
}

// ownerView is one group holding roles on a namespace (Galaxy's shape).
type ownerView struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	ObjectRoles []Role `json:"object_roles"`
}

// ownersView is the owners/ answer.
type ownersView struct {
	Groups []ownerView `json:"groups"`
}

// ownerBody adds a group to a namespace's owners.
type ownerBody struct {
	Name        string   `json:"name" api:"required" doc:"The group's name."`
	ObjectRoles []string `json:"object_roles" doc:"Roles to grant; default [owner]."`
}

func groupOwners(bindings []RoleBinding) []ownerView {
	out := []ownerView{}
	for _, rb := range bindings {
		if rb.Subject.Kind != SubjectGroup {
			continue
		}
		i := slices.IndexFunc(out, func(o ownerView) bool { return o.ID == rb.Subject.ID })
		if i < 0 {
			out = append(out, ownerView{ID: rb.Subject.ID, Name: rb.SubjectName})
			i = len(out) - 1
		}
		out[i].ObjectRoles = append(out[i].ObjectRoles, rb.Role)
	}
	slices.SortFunc(out, func(a, b ownerView) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

func (h roleHandlers) listOwners(c echo.Context) error {
	ns, err := h.namespace(c, ActionPull)
	if err != nil {
		return err
	}
	bindings, err := h.s.NamespaceRoleBindings(c.Request().Context(), ns.Name)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, ownersView{Groups: groupOwners(bindings)})
}

func (h roleHandlers) addOwner(c echo.Context) error {
	ctx := c.Request().Context()
	ns, err := h.namespace(c, ActionManageRoles)
	if err != nil {
		return err
	}
	var b ownerBody
	if err := decodeJSON(c, &b); err != nil {
		return err
	}
	v := &core.ValidationError{}
	g, err := h.s.store.groupByName(ctx, b.Name)
	if errors.Is(err, core.ErrNotFound) {
		v.Add("name", "no group %q", b.Name)
	} else if err != nil {
		return err
	}
	if len(b.ObjectRoles) == 0 {
		b.ObjectRoles = []string{string(RoleOwner)}
	}
	var roles []Role
	for _, r := range b.ObjectRoles {
		role, err := ParseRole(r)
		if err != nil || !slices.Contains(NamespaceRoles(), role) {
			v.Add("object_roles", "%q is not a namespace role: want owner, collaborator or consumer", r)
			continue
		}
		roles = append(roles, role)
	}
	if err := v.Err(); err != nil {
		return err
	}
	for _, role := range roles {
		if err := h.s.GrantRole(ctx, ns.Name, role, GroupSubject(g.ID)); err != nil {
			return err
		}
	}
	bindings, err := h.s.NamespaceRoleBindings(ctx, ns.Name)
	if err != nil {
		return err
	}
	for _, o := range groupOwners(bindings) {
		if o.ID == g.ID {
			return c.JSON(http.StatusCreated, o)
		}
	}
	return core.NotFound("group", g.Name) // deleted meanwhile
}

func (h roleHandlers) removeOwner(c echo.Context) error {
	ctx := c.Request().Context()
	ns, err := h.namespace(c, ActionManageRoles)
	if err != nil {
		return err
	}
	g, err := h.s.store.groupByName(ctx, c.Param("group"))
	if err != nil {
		return err
	}
	bindings, err := h.s.NamespaceRoleBindings(ctx, ns.Name)
	if err != nil {
		return err
	}
	removed := 0
	for _, rb := range bindings {
		if rb.Subject == GroupSubject(g.ID) {
			if err := h.s.RevokeRole(ctx, ns.Name, rb.Role, rb.Subject); err != nil && !errors.Is(err, core.ErrNotFound) {
				return err
			}
			removed++
		}
	}
	if removed == 0 {
		return core.NotFound("owner group", g.Name)
	}
	return c.NoContent(http.StatusNoContent)
}
