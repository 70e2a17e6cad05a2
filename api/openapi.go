package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"sync"
	"unicode"

	"github.com/labstack/echo/v4"
)

// DocPath is where the OpenAPI document is served.
const DocPath = Prefix + "docs/api.json"

// Operation describes one route for the OpenAPI document. Router.Add
// registers the route and its Operation together, so the document cannot
// forget a route.
type Operation struct {
	// Method is the HTTP method ("GET").
	Method string
	// Path is the echo route path, with ":name" path parameters.
	Path string
	// ID is the OpenAPI operationId, unique in the document
	// ("repositories_container_container_list"); derived from the method
	// and path when empty.
	ID      string
	Summary string
	// Description is longer documentation, optional.
	Description string
	Tags        []string
	// Params are the query parameters (ListSpec.Params gives a list's).
	// Path parameters are taken from Path; declare one here (In: "path") only
	// to give it a type or a description.
	Params []Param
	// Request is a value of the request body's type (a struct whose fields
	// carry json, api, doc and enum tags), or nil when there is no body.
	Request any
	// Response is a value of the success body's type, or nil for no body.
	Response any
	// Status is the success status; 0 means 200.
	Status int
}

// Param is one parameter of an operation.
type Param struct {
	Name string
	// In is "query" (the default) or "path".
	In string
	// Type is the JSON schema type: "string" (default), "integer", "boolean".
	Type     string
	Format   string
	Doc      string
	Required bool
	Enum     []string
}

// Doc collects the operations of the API and renders them as an OpenAPI
// 3.0 document. It is safe for concurrent use.
type Doc struct {
	title, version string

	mu  sync.RWMutex
	ops []Operation
	idx map[string]int // "METHOD path" → index in ops
	ids map[string]bool
}

// NewDoc returns an empty document.
func NewDoc(title, version string) *Doc {
	return &Doc{title: title, version: version, idx: map[string]int{}, ids: map[string]bool{}}
}

// Add documents an operation. A second operation for the same method and
// path, or with the same ID, is an error.
func (d *Doc) Add(op Operation) error {
	if op.Method == "" || !strings.HasPrefix(op.Path, "/") {
		return fmt.Errorf("openapi: operation %q %q: method and absolute path required", op.Method, op.Path)
	}
	op.Method = strings.ToUpper(op.Method)
	if op.ID == "" {
		op.ID = operationID(op.Method, op.Path)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	key := op.Method + " " + op.Path
	if _, dup := d.idx[key]; dup {
		return fmt.Errorf("openapi: %s documented twice", key)
	}
	if d.ids[op.ID] {
		return fmt.Errorf("openapi: operation id %q used twice (%s)", op.ID, key)
	}
	d.idx[key] = len(d.ops)
	d.ids[op.ID] = true
	d.ops = append(d.ops, op)
	return nil
}

// Has reports whether a route (echo path form) is documented.
func (d *Doc) Has(method, path string) bool {
	d.mu.RLock()
	defer d.mu.RUnlock()
	_, ok := d.idx[strings.ToUpper(method)+" "+path]
	return ok
}

// Operations lists the documented operations in the order they were added.
func (d *Doc) Operations() []Operation {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return append([]Operation(nil), d.ops...)
}

// DocumentedPrefixes are the paths whose every route must be in the
// OpenAPI document (see Undocumented).
func DocumentedPrefixes() []string { return []string{Prefix, "/api/v1/", "/healthz", "/readyz"} }

// Undocumented lists the routes of e under DocumentedPrefixes that d does
// not describe, as "METHOD path". Tests of every package that adds routes
// should expect it to be empty.
func Undocumented(e *echo.Echo, d *Doc) []string {
	var out []string
	for _, r := range e.Routes() {
		if r.Method == echo.RouteNotFound {
			continue
		}
		for _, p := range DocumentedPrefixes() {
			if strings.HasPrefix(r.Path, p) {
				if !d.Has(r.Method, r.Path) {
					out = append(out, r.Method+" "+r.Path)
				}
				break
			}
		}
	}
	sort.Strings(out)
	return out
}

var pathParam = regexp.MustCompile(`:([A-Za-z0-9_]+)`)

// OpenAPIPath turns an echo path into an OpenAPI one (":id" → "{id}").
func OpenAPIPath(p string) string { return pathParam.ReplaceAllString(p, "{$1}") }

func operationID(method, path string) string {
	p := strings.Trim(strings.TrimPrefix(path, Prefix), "/")
	p = pathParam.ReplaceAllString(p, "by_$1")
	p = strings.NewReplacer("/", "_", "-", "_", ".", "_").Replace(p)
	return strings.ToLower(method) + "_" + p
}

// MarshalJSON renders the OpenAPI document.
func (d *Doc) MarshalJSON() ([]byte, error) { return json.Marshal(d.Spec()) }

// Spec builds the OpenAPI 3.0 document as JSON-ready maps.
func (d *Doc) Spec() map[string]any {
	ops := d.Operations()
	g := &schemaGen{components: map[string]any{}, names: map[reflect.Type]string{}, taken: map[string]reflect.Type{}}
	g.components["Error"] = map[string]any{
		"type":        "object",
		"description": "An error: detail says what went wrong.",
		"properties":  map[string]any{"detail": map[string]any{"type": "string"}},
		"required":    []string{"detail"},
	}
	g.components["ValidationError"] = map[string]any{
		"type":                 "object",
		"description":          "Invalid input: each field named maps to its problems (non_field_errors for the body as a whole).",
		"additionalProperties": map[string]any{"type": "array", "items": map[string]any{"type": "string"}},
	}
	paths := map[string]any{}
	for _, op := range ops {
		p := OpenAPIPath(op.Path)
		item, _ := paths[p].(map[string]any)
		if item == nil {
			item = map[string]any{}
			paths[p] = item
		}
		item[strings.ToLower(op.Method)] = g.operation(op)
	}
	return map[string]any{
		"openapi": "3.0.3",
		"info": map[string]any{
			"title":       d.title,
			"version":     d.version,
			"description": "Berth's REST API, shaped like Pulp's: objects by pulp_href, lists as {count, next, previous, results} with limit, offset, ordering and field filters; long operations answer 202 {\"task\": href}.",
		},
		"paths":      paths,
		"components": map[string]any{"schemas": g.components},
	}
}

func (g *schemaGen) operation(op Operation) map[string]any {
	o := map[string]any{"operationId": op.ID}
	if op.Summary != "" {
		o["summary"] = op.Summary
	}
	if op.Description != "" {
		o["description"] = op.Description
	}
	if len(op.Tags) > 0 {
		o["tags"] = op.Tags
	}
	declared := map[string]Param{}
	for _, p := range op.Params {
		if p.In == "path" {
			declared[p.Name] = p
		}
	}
	var params []any
	for _, m := range pathParam.FindAllStringSubmatch(op.Path, -1) {
		p, ok := declared[m[1]]
		if !ok {
			p = Param{Name: m[1]}
		}
		p.In, p.Required = "path", true
		params = append(params, paramSchema(p))
	}
	for _, p := range op.Params {
		if p.In == "path" {
			continue
		}
		p.In = "query"
		params = append(params, paramSchema(p))
	}
	if len(params) > 0 {
		o["parameters"] = params
	}
	if op.Request != nil {
		o["requestBody"] = map[string]any{
			"required": true,
			"content":  map[string]any{"application/json": map[string]any{"schema": g.schemaOf(op.Request)}},
		}
	}
	status := op.Status
	if status == 0 {
		status = http.StatusOK
	}
	responses := map[string]any{}
	ok := map[string]any{"description": http.StatusText(status)}
	if op.Response != nil {
		ok["content"] = map[string]any{"application/json": map[string]any{"schema": g.schemaOf(op.Response)}}
	}
	responses[fmt.Sprint(status)] = ok
	errResp := func(code int, ref string) {
		responses[fmt.Sprint(code)] = map[string]any{
			"description": http.StatusText(code),
			"content":     map[string]any{"application/json": map[string]any{"schema": map[string]any{"$ref": "#/components/schemas/" + ref}}},
		}
	}
	if op.Request != nil || len(op.Params) > 0 {
		errResp(http.StatusBadRequest, "ValidationError")
	}
	if strings.Contains(op.Path, ":") {
		errResp(http.StatusNotFound, "Error")
	}
	switch op.Method {
	case http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
		errResp(http.StatusConflict, "Error")
	}
	o["responses"] = responses
	return o
}

func paramSchema(p Param) map[string]any {
	typ := p.Type
	if typ == "" {
		typ = "string"
	}
	s := map[string]any{"type": typ}
	if p.Format != "" {
		s["format"] = p.Format
	}
	if len(p.Enum) > 0 {
		s["enum"] = p.Enum
	}
	out := map[string]any{"name": p.Name, "in": p.In, "schema": s}
	if p.Required {
		out["required"] = true
	}
	if p.Doc != "" {
		out["description"] = p.Doc
	}
	return out
}

// schemaGen turns Go types into JSON schemas; named struct types become
// components referenced by $ref.
type schemaGen struct {
	components map[string]any
	names      map[reflect.Type]string
	taken      map[string]reflect.Type
}

var jsonMarshaler = reflect.TypeFor[json.Marshaler]()

// pager is implemented by Page[T].
type pager interface{ pageItem() any }

func (g *schemaGen) schema(t reflect.Type) map[string]any {
	nullable := false
	for t.Kind() == reflect.Pointer {
		t, nullable = t.Elem(), true
	}
	s := g.baseSchema(t)
	if nullable {
		if _, isRef := s["$ref"]; isRef {
			s = map[string]any{"allOf": []any{s}}
		}
		s["nullable"] = true
	}
	return s
}

func (g *schemaGen) baseSchema(t reflect.Type) map[string]any {
	switch {
	case t == timeType:
		return map[string]any{"type": "string", "format": "date-time"}
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Uint8:
		if t.Implements(jsonMarshaler) {
			return map[string]any{"description": "Any JSON value."}
		}
		return map[string]any{"type": "string", "format": "byte"}
	}
	switch t.Kind() {
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32:
		return map[string]any{"type": "integer"}
	case reflect.Int64, reflect.Uint64:
		return map[string]any{"type": "integer", "format": "int64"}
	case reflect.Float32, reflect.Float64:
		return map[string]any{"type": "number"}
	case reflect.Slice, reflect.Array:
		return map[string]any{"type": "array", "items": g.schema(t.Elem())}
	case reflect.Map:
		return map[string]any{"type": "object", "additionalProperties": g.schema(t.Elem())}
	case reflect.Interface:
		return map[string]any{"description": "Any JSON value."}
	case reflect.Struct:
		return g.ref(t)
	}
	return map[string]any{}
}

// Composite documents an object made of the fields of several structs (a
// core body with a plugin's fields, see Extension); Name names its schema.
type Composite struct {
	Name  string
	Parts []any
}

// PageOf documents a Page whose items Item describes (a Composite, say).
type PageOf struct {
	Item any
}

// schemaOf is the schema of an Operation's Request or Response value.
func (g *schemaGen) schemaOf(v any) map[string]any {
	switch v := v.(type) {
	case Composite:
		return g.composite(v)
	case PageOf:
		return g.pageOf(v)
	}
	return g.schema(reflect.TypeOf(v))
}

func (g *schemaGen) composite(c Composite) map[string]any {
	ref := map[string]any{"$ref": "#/components/schemas/" + c.Name}
	if _, done := g.components[c.Name]; done {
		return ref
	}
	g.components[c.Name] = map[string]any{} // placeholder against recursion
	var types []reflect.Type
	for _, p := range c.Parts {
		t := reflect.TypeOf(p)
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		types = append(types, t)
	}
	g.components[c.Name] = g.object(types...)
	return ref
}

func (g *schemaGen) pageOf(p PageOf) map[string]any {
	item := g.schemaOf(p.Item)
	ref, _ := item["$ref"].(string)
	name := "Paginated" + strings.TrimPrefix(ref, "#/components/schemas/")
	if _, done := g.components[name]; !done {
		nullable := map[string]any{"type": "string", "nullable": true}
		g.components[name] = map[string]any{
			"type": "object",
			"properties": map[string]any{
				"count":    map[string]any{"type": "integer", "format": "int64"},
				"next":     nullable,
				"previous": nullable,
				"results":  map[string]any{"type": "array", "items": item},
			},
		}
	}
	return map[string]any{"$ref": "#/components/schemas/" + name}
}

// ref returns a $ref to the component of struct type t, building it once.
func (g *schemaGen) ref(t reflect.Type) map[string]any {
	if name, ok := g.names[t]; ok {
		return map[string]any{"$ref": "#/components/schemas/" + name}
	}
	name := g.componentName(t)
	g.names[t] = name
	g.taken[name] = t
	g.components[name] = map[string]any{} // placeholder against recursion
	g.components[name] = g.object(t)
	return map[string]any{"$ref": "#/components/schemas/" + name}
}

// object is the schema of the fields of the struct types, in order.
func (g *schemaGen) object(types ...reflect.Type) map[string]any {
	props := map[string]any{}
	var required []string
	for _, t := range types {
		for _, f := range structFields(t) {
			if _, dup := props[f.name]; dup {
				continue
			}
			s := g.schema(f.typ)
			if f.doc != "" || f.readOnly || f.writeOnly || len(f.enum) > 0 {
				if _, isRef := s["$ref"]; isRef {
					s = map[string]any{"allOf": []any{s}}
				}
			}
			if f.doc != "" {
				s["description"] = f.doc
			}
			if f.readOnly {
				s["readOnly"] = true
			}
			if f.writeOnly {
				s["writeOnly"] = true
			}
			if len(f.enum) > 0 {
				s["enum"] = f.enum
			}
			props[f.name] = s
			if f.required {
				required = append(required, f.name)
			}
		}
	}
	c := map[string]any{"type": "object", "properties": props}
	if len(required) > 0 {
		sort.Strings(required)
		c["required"] = required
	}
	return c
}

// componentName names a struct's schema after its Go type ("Paginated" plus
// the item's name for a Page), prefixing the package on a clash.
func (g *schemaGen) componentName(t reflect.Type) string {
	var name string
	if p, ok := reflect.Zero(t).Interface().(pager); ok {
		item := reflect.TypeOf(p.pageItem())
		for item.Kind() == reflect.Pointer {
			item = item.Elem()
		}
		if item.Kind() == reflect.Struct {
			g.ref(item)
			name = "Paginated" + g.names[item]
		} else {
			name = "Paginated" + exportName(item.Name())
		}
	} else {
		name = exportName(t.Name())
		if name == "" {
			name = "Object"
		}
	}
	if other, ok := g.taken[name]; ok && other != t {
		pkg := t.PkgPath()
		if i := strings.LastIndex(pkg, "/"); i >= 0 {
			pkg = pkg[i+1:]
		}
		name = exportName(pkg) + name
		for n := 2; g.taken[name] != nil && g.taken[name] != t; n++ {
			name = fmt.Sprintf("%s%d", strings.TrimRight(name, "0123456789"), n)
		}
	}
	return name
}

// exportName capitalizes a Go type name and drops what a schema name
// cannot hold (type parameters).
func exportName(s string) string {
	if i := strings.IndexByte(s, '['); i >= 0 {
		s = s[:i]
	}
	r := []rune(s)
	if len(r) == 0 {
		return ""
	}
	r[0] = unicode.ToUpper(r[0])
	return string(r)
}
