package auth

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/berth-dev/berth/api"
)

// Service is an api.Routes set: its users, groups, me and token routes.
var _ api.Routes = (*Service)(nil)

// APIRoutes adds the identity routes, each documented in the OpenAPI
// document:
//
//	/pulp/api/v3/users/                      GET list, POST create          (manage_users: superusers)
//	/pulp/api/v3/users/{id}/                 GET, PUT/PATCH, DELETE         (manage_users)
//	/pulp/api/v3/groups/                     GET list, POST create          (manage_users)
//	/pulp/api/v3/groups/{id}/                GET, PUT/PATCH, DELETE         (manage_users)
//	/pulp/api/v3/groups/{id}/users/          GET members, POST {"username"} (manage_users)
//	/pulp/api/v3/groups/{id}/users/{uid}/    DELETE                         (manage_users)
//	/pulp/api/v3/me/                         GET the current user and its global permissions
//	/api/v1/tokens/                          GET list, POST {"name", "kind": "api"|"registry", "expires_in": seconds}
//	/api/v1/tokens/{id}/                     GET, DELETE (revoke)
//
// Each user sees and revokes only their own tokens (superusers: any token
// by ID). The POST answer is the only one that carries the token's value
// ("token"); for a registry login token it also names the registry host
// and username to give podman login.
func (s *Service) APIRoutes(r *api.Router) {
	s.userRoutes(r)
	s.groupRoutes(r)
	s.tokenRoutes(r)
}

func (s *Service) userRoutes(r *api.Router) {
	admin := []echo.MiddlewareFunc{s.Authenticate, s.RequireAction(ActionManageUsers)}
	tags := []string{"Users"}
	list, item := PulpRoot+"users/", PulpRoot+"users/:id/"
	r.Add(api.Operation{Method: http.MethodGet, Path: list, ID: "users_list", Tags: tags,
		Summary: "List users", Params: listParams(userFilters), Response: api.Page[userView]{},
	}, s.handleListUsers, admin...)
	r.Add(api.Operation{Method: http.MethodPost, Path: list, ID: "users_create", Tags: tags,
		Summary: "Create a user", Request: userBody{}, Response: userView{}, Status: http.StatusCreated,
	}, s.handleCreateUser, admin...)
	r.Add(api.Operation{Method: http.MethodGet, Path: item, ID: "users_read", Tags: tags,
		Summary: "Inspect a user", Response: userView{},
	}, s.handleGetUser, admin...)
	r.Add(api.Operation{Method: http.MethodPut, Path: item, ID: "users_update", Tags: tags,
		Summary: "Update a user", Description: "Fields left out stay as they are, as with PATCH.",
		Request: userBody{}, Response: userView{},
	}, s.handleUpdateUser, admin...)
	r.Add(api.Operation{Method: http.MethodPatch, Path: item, ID: "users_partial_update", Tags: tags,
		Summary: "Change some fields of a user", Request: userBody{}, Response: userView{},
	}, s.handleUpdateUser, admin...)
	r.Add(api.Operation{Method: http.MethodDelete, Path: item, ID: "users_delete", Tags: tags,
		Summary: "Delete a user", Description: "The last active superuser cannot be deleted.", Status: http.StatusNoContent,
	}, s.handleDeleteUser, admin...)
	r.Add(api.Operation{Method: http.MethodGet, Path: PulpRoot + "me/", ID: "me_read", Tags: tags,
		Summary: "The current user and its global permissions", Response: meView{},
	}, s.handleMe, s.Authenticate, RequireAuthenticated)
}

func (s *Service) groupRoutes(r *api.Router) {
	admin := []echo.MiddlewareFunc{s.Authenticate, s.RequireAction(ActionManageUsers)}
	tags := []string{"Groups"}
	list, item := PulpRoot+"groups/", PulpRoot+"groups/:id/"
	r.Add(api.Operation{Method: http.MethodGet, Path: list, ID: "groups_list", Tags: tags,
		Summary: "List groups", Params: listParams(groupFilters), Response: api.Page[groupView]{},
	}, s.handleListGroups, admin...)
	r.Add(api.Operation{Method: http.MethodPost, Path: list, ID: "groups_create", Tags: tags,
		Summary: "Create a group", Request: groupBody{}, Response: groupView{}, Status: http.StatusCreated,
	}, s.handleCreateGroup, admin...)
	r.Add(api.Operation{Method: http.MethodGet, Path: item, ID: "groups_read", Tags: tags,
		Summary: "Inspect a group", Response: groupView{},
	}, s.handleGetGroup, admin...)
	r.Add(api.Operation{Method: http.MethodPut, Path: item, ID: "groups_update", Tags: tags,
		Summary: "Rename a group", Request: groupBody{}, Response: groupView{},
	}, s.handleUpdateGroup, admin...)
	r.Add(api.Operation{Method: http.MethodPatch, Path: item, ID: "groups_partial_update", Tags: tags,
		Summary: "Rename a group", Request: groupBody{}, Response: groupView{},
	}, s.handleUpdateGroup, admin...)
	r.Add(api.Operation{Method: http.MethodDelete, Path: item, ID: "groups_delete", Tags: tags,
		Summary: "Delete a group", Description: "Its members lose the roles the group held, at once.", Status: http.StatusNoContent,
	}, s.handleDeleteGroup, admin...)
	r.Add(api.Operation{Method: http.MethodGet, Path: item + "users/", ID: "groups_users_list", Tags: tags,
		Summary: "List the members of a group", Params: listParams(userFilters), Response: api.Page[userView]{},
	}, s.handleListMembers, admin...)
	r.Add(api.Operation{Method: http.MethodPost, Path: item + "users/", ID: "groups_users_create", Tags: tags,
		Summary: "Add a user to a group", Request: memberBody{}, Response: userView{}, Status: http.StatusCreated,
	}, s.handleAddMember, admin...)
	r.Add(api.Operation{Method: http.MethodDelete, Path: item + "users/:user_id/", ID: "groups_users_delete", Tags: tags,
		Summary:     "Remove a user from a group",
		Description: "The user loses the roles the group holds at once, in every replica, even for registry tokens already issued.",
		Status:      http.StatusNoContent,
	}, s.handleRemoveMember, admin...)
}

func (s *Service) tokenRoutes(r *api.Router) {
	mw := []echo.MiddlewareFunc{s.Authenticate, RequireAuthenticated}
	tags := []string{"Tokens"}
	list, item := APIRoot+"tokens/", APIRoot+"tokens/:id/"
	r.Add(api.Operation{Method: http.MethodGet, Path: list, ID: "tokens_list", Tags: tags,
		Summary: "List your personal tokens", Params: listParams(tokenFilters), Response: api.Page[tokenView]{},
	}, s.handleListTokens, mw...)
	r.Add(api.Operation{Method: http.MethodPost, Path: list, ID: "tokens_create", Tags: tags,
		Summary:     "Create a personal API token or a registry login token",
		Description: "The answer is the only one that shows the token's value; a registry token's answer also names the registry host and the username for podman login.",
		Request:     tokenBody{}, Response: newTokenBody{}, Status: http.StatusCreated,
	}, s.handleCreateToken, mw...)
	r.Add(api.Operation{Method: http.MethodGet, Path: item, ID: "tokens_read", Tags: tags,
		Summary: "Inspect one of your tokens", Response: tokenView{},
	}, s.handleGetToken, mw...)
	r.Add(api.Operation{Method: http.MethodDelete, Path: item, ID: "tokens_delete", Tags: tags,
		Summary: "Revoke one of your tokens", Status: http.StatusNoContent,
	}, s.handleRevokeToken, mw...)
}

// RoleRoutes is an api.Routes set: Pulp's role routes and Galaxy's
// owners routes on one kind of namespace object, added under Base (the
// object's path, with its path parameter and a trailing slash, such as
// "/pulp/api/v3/pulp_container/namespaces/:id/"):
//
//	add_role/        POST {"role", "users": [...], "groups": [...]}  (manage_roles)
//	remove_role/     POST, same body                                  (manage_roles)
//	list_roles/      GET {"roles": [{"role", "users", "groups"}]}     (manage_roles)
//	my_permissions/  GET {"permissions": [...]}                       (anyone)
//	owners/          GET {"groups": [{"id", "name", "object_roles"}]} (pull)
//	owners/          POST {"name", "object_roles": [...]}             (manage_roles)
//	owners/{group}/  DELETE: the group's roles on the namespace       (manage_roles)
//
// Roles are owner, collaborator and consumer (Pulp's
// container.containernamespace_* names are accepted too). A namespace
// creator's owner role cannot be removed: remove_role answers 409.
type RoleRoutes struct {
	Service *Service
	// Base is the path of one namespace object.
	Base string
	// OperationPrefix starts the routes' operation IDs
	// ("pulp_container_namespaces" gives "pulp_container_namespaces_add_role").
	OperationPrefix string
	// Tags group the routes in the document.
	Tags []string
	// Namespace tells which namespace a request addresses.
	Namespace NamespaceFunc
}

// APIRoutes adds the routes.
func (n RoleRoutes) APIRoutes(r *api.Router) {
	s := n.Service
	h := roleHandlers{s: s, ns: n.Namespace}
	op := func(method, path, id, summary string, req, resp any, status int) api.Operation {
		return api.Operation{Method: method, Path: n.Base + path, ID: n.OperationPrefix + "_" + id, Tags: n.Tags,
			Summary: summary, Request: req, Response: resp, Status: status}
	}
	r.Add(op(http.MethodPost, "add_role/", "add_role", "Grant a role on the namespace to users and groups (manage_roles)",
		roleBody{}, roleBody{}, http.StatusCreated), h.addRole, s.Authenticate)
	r.Add(op(http.MethodPost, "remove_role/", "remove_role", "Take a role on the namespace from users and groups (manage_roles); the creator's owner role stays",
		roleBody{}, roleBody{}, http.StatusCreated), h.removeRole, s.Authenticate)
	r.Add(op(http.MethodGet, "list_roles/", "list_roles", "Who holds which role on the namespace (manage_roles)",
		nil, rolesView{}, 0), h.listRoles, s.Authenticate)
	r.Add(op(http.MethodGet, "my_permissions/", "my_permissions", "What the caller may do on the namespace",
		nil, permissionsView{}, 0), h.myPermissions, s.Authenticate)
	r.Add(op(http.MethodGet, "owners/", "owners_list", "The groups holding roles on the namespace (Galaxy's Owners tab)",
		nil, ownersView{}, 0), h.listOwners, s.Authenticate)
	r.Add(op(http.MethodPost, "owners/", "owners_create", "Grant a group roles on the namespace (default: owner)",
		ownerBody{}, ownerView{}, http.StatusCreated), h.addOwner, s.Authenticate)
	r.Add(op(http.MethodDelete, "owners/:group/", "owners_delete", "Take every role on the namespace from a group",
		nil, nil, http.StatusNoContent), h.removeOwner, s.Authenticate)
}
