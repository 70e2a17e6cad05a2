package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/berth-dev/berth/core"
)

// Extension lets a plugin take part in the REST API's create, update and
// display of the objects of one of its types: a container distribution's
// namespace, a container remote's upstream_name and tag filters. The core's
// typed CRUD stays the one implementation; the plugin adds fields.
type Extension interface {
	// NewFields returns a pointer to a new, zero struct of the plugin's
	// fields, tagged as for Bind (json, and api, doc, enum). The fields of a
	// request body that are not the core's are decoded into it, strictly;
	// responses show it beside the core's fields (api:"readonly" fields only
	// there, api:"writeonly" ones only in requests); the OpenAPI document
	// describes both. Its JSON names must not be core field names.
	NewFields() any
	// Save checks and stores the plugin's fields of obj, the
	// *core.Repository, *core.Remote or *core.Distribution that tx has just
	// written, in the same transaction: an error (a *core.ValidationError
	// naming the plugin's fields, say) undoes the whole request. fields is
	// the NewFields value decoded from the body; given names the fields the
	// body gave, core and plugin alike.
	Save(ctx context.Context, tx *core.Store, op SaveOp, obj any, fields any, given Fields) error
	// Show returns the plugin's fields (values of the NewFields type) of the
	// objects with the given IDs, keyed by ID, in as few queries as it can.
	// An object missing from the map is shown with the core's fields only.
	Show(ctx context.Context, s *core.Store, ids []string) (map[string]any, error)
}

// Committer is implemented by extensions that act once a save has
// committed: dropping a cache of the object, telling another service about
// it. Committed runs after the transaction of a successful create or update
// (never after a failed one), with the object as written.
type Committer interface {
	Committed(ctx context.Context, op SaveOp, obj any)
}

// SaveOp tells Extension.Save which request wrote the object.
type SaveOp int

// The requests that save an object.
const (
	// Create: POST; fields left out of the body are at their zero value.
	Create SaveOp = iota
	// Replace: PUT; fields left out are reset to their defaults.
	Replace
	// Update: PATCH; only the fields in given change.
	Update
)

// Extender is implemented by plugins whose typed objects carry fields of
// their own.
type Extender interface {
	// APIExtension returns the extension of type typ of kind "repository",
	// "remote" or "distribution", or nil when the type has none.
	APIExtension(kind, typ string) Extension
}

// extensionKey names an extension in Server.exts.
func extensionKey(kind, typ string) string { return kind + " " + typ }

// loadExtensions asks the plugins for their extensions and checks that
// their fields do not take core names.
func (s *Server) loadExtensions() error {
	s.exts = map[string]Extension{}
	core := map[string][]any{
		kindRepository:   {repositoryRequest{}, RepositoryResponse{}},
		kindRemote:       {remoteRequest{}, RemoteResponse{}},
		kindDistribution: {distributionRequest{}, DistributionResponse{}},
	}
	for _, p := range s.registry.Plugins() {
		ex, ok := p.(Extender)
		if !ok {
			continue
		}
		for kind, bases := range core {
			for _, typ := range s.registry.TypesOf(kind) {
				x := ex.APIExtension(kind, typ)
				if x == nil {
					continue
				}
				ft := reflect.TypeOf(x.NewFields())
				if ft == nil || ft.Kind() != reflect.Pointer || ft.Elem().Kind() != reflect.Struct {
					return fmt.Errorf("api: extension of %s %s: NewFields must return a pointer to a struct, not %v", kind, typ, ft)
				}
				for _, b := range bases {
					for _, cf := range structFields(reflect.TypeOf(b)) {
						for _, pf := range structFields(ft.Elem()) {
							if cf.name == pf.name {
								return fmt.Errorf("api: extension of %s %s: field %q is a core field", kind, typ, pf.name)
							}
						}
					}
				}
				s.exts[extensionKey(kind, typ)] = x
			}
		}
	}
	return nil
}

// extension returns the extension of a type, or nil.
func (s *Server) extension(kind, typ string) Extension { return s.exts[extensionKey(kind, typ)] }

// bindObject decodes a create or update body into dst and, when the type
// has an extension, the extension's fields, which it returns.
func (s *Server) bindObject(c echo.Context, kind, typ string, partial bool, dst any) (Fields, any, error) {
	bind := Bind
	if partial {
		bind = BindPatch
	}
	x := s.extension(kind, typ)
	if x == nil {
		given, err := bind(c, dst)
		return given, nil, err
	}
	fields := x.NewFields()
	given, err := bind(c, dst, fields)
	return given, fields, err
}

// saveObject runs write, which returns the object it wrote, then the
// extension's Save, in one transaction; then, if it committed, the
// extension's Committed.
func (s *Server) saveObject(ctx context.Context, kind, typ string, op SaveOp, fields any, given Fields, write func(tx *core.Store) (any, error)) error {
	x := s.extension(kind, typ)
	var obj any
	err := s.store.Tx(ctx, func(tx *core.Store) error {
		var err error
		obj, err = write(tx)
		if err != nil || x == nil {
			return err
		}
		return x.Save(ctx, tx, op, obj, fields, given)
	})
	if cm, ok := x.(Committer); ok && err == nil {
		cm.Committed(ctx, op, obj)
	}
	return err
}

// opOf is the SaveOp of an update.
func opOf(partial bool) SaveOp {
	if partial {
		return Update
	}
	return Replace
}

// extended is a core response with a plugin's fields after its own.
type extended struct {
	base  any
	extra any
}

// MarshalJSON writes the core's fields, then the plugin's.
func (x extended) MarshalJSON() ([]byte, error) {
	base, err := json.Marshal(x.base)
	if err != nil {
		return nil, err
	}
	extra, err := json.Marshal(x.extra)
	if err != nil {
		return nil, err
	}
	extra = bytes.TrimSpace(extra)
	if len(extra) < 2 || extra[0] != '{' || string(extra) == "{}" {
		return base, nil // not an object, or empty: nothing to add
	}
	base = bytes.TrimSpace(base)
	out := make([]byte, 0, len(base)+len(extra))
	out = append(out, base[:len(base)-1]...)
	out = append(out, ',')
	return append(out, extra[1:]...), nil
}

// extendAll merges each object's plugin fields into its response; typeID
// gives the type and ID of the i-th object.
func extendAll[T any](ctx context.Context, s *Server, kind string, out []T, typeID func(i int) (typ, id string)) ([]any, error) {
	res := make([]any, len(out))
	byType := map[string][]int{}
	for i := range out {
		res[i] = out[i]
		if typ, _ := typeID(i); s.extension(kind, typ) != nil {
			byType[typ] = append(byType[typ], i)
		}
	}
	for typ, idx := range byType {
		ids := make([]string, len(idx))
		for j, i := range idx {
			_, ids[j] = typeID(i)
		}
		shown, err := s.extension(kind, typ).Show(ctx, s.store, ids)
		if err != nil {
			return nil, fmt.Errorf("show the %s fields of %s objects: %w", typ, kind, err)
		}
		for j, i := range idx {
			if v, ok := shown[ids[j]]; ok && v != nil {
				res[i] = extended{base: out[i], extra: v}
			}
		}
	}
	return res, nil
}

// docRequest and docResponse are what the OpenAPI document shows for a
// type's bodies: the core's, with the extension's fields when it has one.
func (s *Server) docRequest(kind, typ string, base any) any {
	return s.docComposite(kind, typ, base, "Request")
}

func (s *Server) docResponse(kind, typ string, base any) any {
	return s.docComposite(kind, typ, base, "Response")
}

func (s *Server) docComposite(kind, typ string, base any, suffix string) any {
	x := s.extension(kind, typ)
	if x == nil {
		return base
	}
	name := ""
	for _, part := range strings.FieldsFunc(typ+"."+kind, func(r rune) bool { return r == '.' || r == '_' }) {
		name += exportName(part)
	}
	return Composite{Name: name + suffix, Parts: []any{base, x.NewFields()}}
}

// docPage documents a page of items described by item (a Composite, say).
func docPage(item any) any {
	if _, ok := item.(Composite); ok {
		return PageOf{Item: item}
	}
	switch item.(type) {
	case RepositoryResponse:
		return Page[RepositoryResponse]{}
	case RemoteResponse:
		return Page[RemoteResponse]{}
	case DistributionResponse:
		return Page[DistributionResponse]{}
	}
	return PageOf{Item: item}
}
