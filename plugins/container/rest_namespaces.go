package container

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/core"
)

// The REST API of container namespaces, in Pulp's shape:
//
//	/pulp/api/v3/pulp_container/namespaces/        GET list (what the caller may see), POST create (create_namespace)
//	/pulp/api/v3/pulp_container/namespaces/{id}/   GET
//
// The role routes of a namespace (add_role/, remove_role/, list_roles/,
// my_permissions/, owners/) come from the auth service, under the same
// path, looked up with VisibleNamespace.

// NamespacesPath is the collection of container namespaces.
const NamespacesPath = api.Prefix + "pulp_container/namespaces/"

// NamespaceHref is the href of a namespace.
func NamespaceHref(id string) string { return NamespacesPath + id + "/" }

// Actions the REST API asks Permissions about, beside the content app's.
const (
	ActionManageRoles     Action = "manage_roles"     // on a namespace: grant roles, change its images' privacy
	ActionCreateNamespace Action = "create_namespace" // global: create namespaces through the API
)

// Permissions answers what the REST API and the catalog need to know about
// a caller's rights, beyond the per-request checks of Authorizer. An
// Authorizer may implement it (the application's glue over the auth service
// does; AllowAll allows everything). When the configured Authorizer does
// not, the REST API lets nobody change anything and shows only public
// namespaces and images.
type Permissions interface {
	// Caller is who the credentials of a REST request name (the zero
	// Identity for anonymous requests).
	Caller(ctx context.Context) Identity
	// Can reports whether who may do act on the namespace ns (the zero
	// NamespaceStatus for global actions such as ActionCreateNamespace).
	Can(ctx context.Context, who Identity, act Action, ns NamespaceStatus) (bool, error)
	// Readable tells whose private images who may pull: those of every
	// namespace (all), or of the namespaces named.
	Readable(ctx context.Context, who Identity) (names []string, all bool, err error)
}

// Caller sees nobody in particular.
func (AllowAll) Caller(context.Context) Identity { return Identity{} }

// Can allows.
func (AllowAll) Can(context.Context, Identity, Action, NamespaceStatus) (bool, error) {
	return true, nil
}

// Readable is everything.
func (AllowAll) Readable(context.Context, Identity) ([]string, bool, error) { return nil, true, nil }

// denyAll is the Permissions of an Authorizer that has none.
type denyAll struct{}

func (denyAll) Caller(context.Context) Identity { return Identity{} }
func (denyAll) Can(context.Context, Identity, Action, NamespaceStatus) (bool, error) {
	return false, nil
}
func (denyAll) Readable(context.Context, Identity) ([]string, bool, error) { return nil, false, nil }

// permissions returns the Permissions of the plugin's Authorizer.
func (p *Plugin) permissions() Permissions {
	if pm, ok := p.auth.(Permissions); ok {
		return pm
	}
	return denyAll{}
}

// require is Permissions.Can as an error: core.ErrUnauthorized for
// anonymous callers, core.ErrForbidden for others.
func (p *Plugin) require(ctx context.Context, who Identity, act Action, ns NamespaceStatus, what string) error {
	ok, err := p.permissions().Can(ctx, who, act, ns)
	switch {
	case err != nil:
		return err
	case ok:
		return nil
	case who.UserID == "":
		return fmt.Errorf("%s: log in first: %w", what, core.ErrUnauthorized)
	case ns.Name == "":
		return fmt.Errorf("%s needs the %s permission (registry admins and superusers have it): %w", what, act, core.ErrForbidden)
	default:
		return fmt.Errorf("%s needs the %s permission on namespace %q: %w", what, act, ns.Name, core.ErrForbidden)
	}
}

// visibility is what who may see beyond public namespaces and images.
func (p *Plugin) visibility(ctx context.Context, who Identity) (Visible, error) {
	names, all, err := p.permissions().Readable(ctx, who)
	return Visible{All: all, Namespaces: names}, err
}

// NamespaceResponse is a container namespace as the REST API shows it.
type NamespaceResponse struct {
	Href        string    `json:"pulp_href" api:"readonly"`
	PulpCreated time.Time `json:"pulp_created" api:"readonly"`
	Name        string    `json:"name" api:"readonly"`
	CreatedBy   string    `json:"created_by" api:"readonly" doc:"Who created the namespace (by a first push, or through the API): its owner for good."`
	Images      int       `json:"images" api:"readonly" doc:"How many images the namespace holds."`
	Private     bool      `json:"private" api:"readonly" doc:"No image of the namespace is public: only those holding a role on it (and superusers) see it."`
}

func namespaceResponse(r *namespaceRow) NamespaceResponse {
	return NamespaceResponse{Href: NamespaceHref(r.ID), PulpCreated: api.APITime(r.CreatedAt), Name: r.Name,
		CreatedBy: r.CreatedBy, Images: r.Images, Private: !r.Public}
}

// namespaceRequest is the body of a namespace creation.
type namespaceRequest struct {
	Name string `json:"name" api:"required" doc:"One image-name component: lowercase letters and digits separated by '.', '_', '__' or '-'."`
}

var namespaceListSpec = api.ListSpec{Fields: map[string]api.Field{
	"name":         {Kind: api.KindString, Lookups: api.StringLookups(), Order: true},
	"created_by":   {Kind: api.KindString, Lookups: []string{api.Exact, api.In}, Order: true},
	"pulp_created": {Kind: api.KindTime, Lookups: api.TimeLookups(), Order: true},
}, Tiebreak: "name"}

// APIRoutes adds the namespace routes to the REST API.
func (p *Plugin) APIRoutes(r *api.Router) {
	tags := []string{"Container: Namespaces"}
	r.Add(api.Operation{
		Method: http.MethodGet, Path: NamespacesPath, ID: "pulp_container_namespaces_list", Tags: tags,
		Summary:     "List container namespaces",
		Description: "The namespaces the caller may see: those holding a public image, those the caller holds a role on, and for superusers all.",
		Params:      namespaceListSpec.Params(), Response: api.Page[NamespaceResponse]{},
	}, p.listNamespacesREST)
	r.Add(api.Operation{
		Method: http.MethodPost, Path: NamespacesPath, ID: "pulp_container_namespaces_create", Tags: tags,
		Summary:     "Create a container namespace",
		Description: "Needs the create_namespace permission (registry admins and superusers). The creator becomes the namespace's owner for good.",
		Request:     namespaceRequest{}, Response: NamespaceResponse{}, Status: http.StatusCreated,
	}, p.createNamespaceREST)
	r.Add(api.Operation{
		Method: http.MethodGet, Path: NamespacesPath + ":id/", ID: "pulp_container_namespaces_read", Tags: tags,
		Summary: "Inspect a container namespace", Response: NamespaceResponse{},
	}, p.getNamespaceREST)
}

func (p *Plugin) listNamespacesREST(c echo.Context) error {
	ctx := c.Request().Context()
	q, err := api.ParseList(c, namespaceListSpec)
	if err != nil {
		return err
	}
	v, err := p.visibility(ctx, p.permissions().Caller(ctx))
	if err != nil {
		return err
	}
	rows, total, err := listVisibleNamespaces(ctx, p.store, q, v)
	if err != nil {
		return err
	}
	out := make([]NamespaceResponse, len(rows))
	for i := range rows {
		out[i] = namespaceResponse(&rows[i])
	}
	return c.JSON(http.StatusOK, api.NewPage(c, q, total, out))
}

func (p *Plugin) getNamespaceREST(c echo.Context) error {
	row, err := p.visibleNamespace(c.Request().Context(), c.Param("id"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, namespaceResponse(row))
}

func (p *Plugin) createNamespaceREST(c echo.Context) error {
	ctx := c.Request().Context()
	var body namespaceRequest
	if _, err := api.Bind(c, &body); err != nil {
		return err
	}
	who := p.permissions().Caller(ctx)
	if err := p.require(ctx, who, ActionCreateNamespace, NamespaceStatus{}, "creating a namespace"); err != nil {
		return err
	}
	if err := p.CreateNamespace(ctx, who, body.Name); err != nil {
		return err
	}
	row, found, err := namespaceRowBy(ctx, p.store, "", body.Name)
	if err != nil {
		return err
	}
	if !found {
		return core.NotFound("namespace", body.Name) // deleted meanwhile
	}
	return c.JSON(http.StatusCreated, namespaceResponse(row))
}

// visibleNamespace loads a namespace by ID for the REST API's caller: one
// the caller may not see is not found.
func (p *Plugin) visibleNamespace(ctx context.Context, id string) (*namespaceRow, error) {
	row, found, err := namespaceRowBy(ctx, p.store, id, "")
	if err != nil {
		return nil, err
	}
	if found && !row.Public {
		v, err := p.visibility(ctx, p.permissions().Caller(ctx))
		if err != nil {
			return nil, err
		}
		found = sees(v, row.Name)
	}
	if !found {
		return nil, core.NotFound("namespace", id)
	}
	return row, nil
}

// sees reports whether v shows the private images of the namespace.
func sees(v Visible, namespace string) bool {
	return v.All || slices.Contains(v.Namespaces, namespace)
}

// VisibleNamespace tells the name and privacy of the namespace with the
// given ID, for the REST API's caller (see Permissions.Caller): a namespace
// the caller may not see answers core.ErrNotFound. The role routes look
// namespaces up with it.
func (p *Plugin) VisibleNamespace(ctx context.Context, id string) (NamespaceStatus, error) {
	row, err := p.visibleNamespace(ctx, id)
	if err != nil {
		return NamespaceStatus{}, err
	}
	return NamespaceStatus{Name: row.Name, Exists: true, Private: !row.Public}, nil
}

// ValidateNamespace checks a namespace name: one component of an image name.
func ValidateNamespace(name string) error {
	if name == "" || strings.Contains(name, "/") || ValidateName(name) != nil {
		return core.Invalid("name", "%q is not a namespace name: one lowercase component of letters and digits separated by '.', '_', '__' or '-'", truncate(name, 300))
	}
	return nil
}

// CreateNamespace makes an empty namespace created by who, as a first push
// into it would, and tells the namespace hook (the auth service makes who
// its owner for good). A namespace of that name existing already is a
// conflict.
func (p *Plugin) CreateNamespace(ctx context.Context, who Identity, name string) error {
	if err := ValidateNamespace(name); err != nil {
		return err
	}
	var created bool
	err := p.retry(ctx, "create namespace", func() error {
		return p.store.Tx(ctx, func(tx *core.Store) error {
			var err error
			created, err = insertNamespace(ctx, tx, name, who.name())
			return err
		})
	})
	if err != nil {
		return err
	}
	if !created {
		return core.Conflict("namespace %q exists already", name)
	}
	p.log.Info("namespace created", "namespace", name, "user", who.name())
	p.namespaceCreated(ctx, name, who)
	return nil
}
