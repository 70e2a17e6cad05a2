package api

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/berth-dev/berth/core"
)

// Kind is the type of a filterable field's values.
type Kind int

// The kinds of filterable fields.
const (
	KindString Kind = iota
	KindInt
	KindBool
	KindTime
	// KindHref values are hrefs, turned into stored values by Field.Resolve.
	KindHref
)

// Lookups: the suffixes a filter parameter may carry after "__" ("exact" is
// the bare field name: ?name=foo).
const (
	Exact      = "exact"
	Contains   = "contains"
	IContains  = "icontains"
	StartsWith = "startswith"
	In         = "in"
	Gt         = "gt"
	Gte        = "gte"
	Lt         = "lt"
	Lte        = "lte"
)

// StringLookups are the usual lookups of a KindString field.
func StringLookups() []string { return []string{Exact, Contains, IContains, StartsWith, In} }

// IntLookups are the usual lookups of a KindInt field.
func IntLookups() []string { return []string{Exact, In, Gt, Gte, Lt, Lte} }

// TimeLookups are the usual lookups of a KindTime field.
func TimeLookups() []string { return []string{Exact, Gt, Gte, Lt, Lte} }

// BoolLookups are the lookups of a KindBool field.
func BoolLookups() []string { return []string{Exact} }

// HrefLookups are the usual lookups of a KindHref field.
func HrefLookups() []string { return []string{Exact, In} }

// Field is one field of a list that clients may filter and/or order by.
type Field struct {
	Kind Kind
	// Lookups are the accepted filters; none means the field only orders.
	Lookups []string
	// Order allows ?ordering=<field> and ?ordering=-<field>.
	Order bool
	// Resolve turns a KindHref value into what the store compares (an ID).
	// A value that names nothing answers a *core.ValidationError or
	// core.ErrInvalid.
	Resolve func(ctx context.Context, href string) (any, error)
	// Doc describes the field in the OpenAPI document.
	Doc string
}

// ListSpec declares the query parameters of a list endpoint: limit and
// offset always, ordering and the filters of Fields. Field names are the
// API's; for lists served by core.Store they must be keys of the store's
// core.Columns.
type ListSpec struct {
	Fields map[string]Field
	// Tiebreak is an orderable unique field appended to a client's ordering
	// so that pages never overlap ("pulp_id"); empty for none.
	Tiebreak string
}

// Reserved query parameters of every list.
const (
	paramLimit    = "limit"
	paramOffset   = "offset"
	paramOrdering = "ordering"
)

// ParseList reads the list parameters of the request against spec into a
// core.ListQuery whose Limit is always set. Unknown parameters, lookups and
// orderings, and values of the wrong type, are a *core.ValidationError
// naming each parameter.
func ParseList(c echo.Context, spec ListSpec) (core.ListQuery, error) {
	return parseList(c.Request().Context(), c.QueryParams(), spec)
}

func parseList(ctx context.Context, params url.Values, spec ListSpec) (core.ListQuery, error) {
	q := core.ListQuery{Limit: core.DefaultLimit}
	verr := &core.ValidationError{}
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, key := range keys {
		vals := params[key]
		val := vals[len(vals)-1] // the last one wins, as in Django
		switch key {
		case paramLimit:
			n, err := strconv.Atoi(val)
			switch {
			case err != nil:
				verr.Add(key, "A valid integer is required.")
			case n < 1 || n > core.MaxLimit:
				verr.Add(key, "Ensure this value is between 1 and %d.", core.MaxLimit)
			default:
				q.Limit = n
			}
			continue
		case paramOffset:
			n, err := strconv.Atoi(val)
			switch {
			case err != nil:
				verr.Add(key, "A valid integer is required.")
			case n < 0:
				verr.Add(key, "Ensure this value is greater than or equal to 0.")
			default:
				q.Offset = n
			}
			continue
		case paramOrdering:
			q.Ordering = parseOrdering(verr, val, spec)
			continue
		}
		name, lookup := key, Exact
		if i := strings.LastIndex(key, "__"); i > 0 {
			name, lookup = key[:i], key[i+2:]
		}
		f, ok := spec.Fields[name]
		if !ok || len(f.Lookups) == 0 {
			verr.Add(key, "Unknown filter; the filters of this list are %s.", strings.Join(spec.filterNames(), ", "))
			continue
		}
		if !slices.Contains(f.Lookups, lookup) {
			verr.Add(key, "Unsupported lookup %q for %s; use one of %s.", lookup, name, strings.Join(f.Lookups, ", "))
			continue
		}
		v, problem := f.value(ctx, lookup, val)
		if problem != "" {
			verr.Add(key, "%s", problem)
			continue
		}
		if f.Kind == KindTime {
			q.Filters = append(q.Filters, timeFilters(name, lookup, v.(time.Time))...)
			continue
		}
		op := lookup
		if op == Exact {
			op = "eq"
		}
		q.Filters = append(q.Filters, core.Filter{Field: name, Op: op, Value: v})
	}
	if len(q.Ordering) > 0 && spec.Tiebreak != "" && !slices.ContainsFunc(q.Ordering, func(o string) bool {
		return strings.TrimPrefix(o, "-") == spec.Tiebreak
	}) {
		q.Ordering = append(q.Ordering, spec.Tiebreak)
	}
	return q, verr.Err()
}

func parseOrdering(verr *core.ValidationError, val string, spec ListSpec) []string {
	var out []string
	for _, o := range strings.Split(val, ",") {
		o = strings.TrimSpace(o)
		if o == "" {
			continue
		}
		if f, ok := spec.Fields[strings.TrimPrefix(o, "-")]; !ok || !f.Order {
			verr.Add(paramOrdering, "Cannot order by %q; the orderings of this list are %s.", o, strings.Join(spec.orderNames(), ", "))
			continue
		}
		out = append(out, o)
	}
	return out
}

// value converts a filter's text to what the store compares; problem says
// what is wrong with it.
func (f Field) value(ctx context.Context, lookup, s string) (v any, problem string) {
	if lookup == In {
		parts := strings.Split(s, ",")
		if f.Kind == KindInt {
			out := make([]int64, 0, len(parts))
			for _, p := range parts {
				v, problem := f.value(ctx, Exact, strings.TrimSpace(p))
				if problem != "" {
					return nil, problem
				}
				out = append(out, v.(int64))
			}
			return out, ""
		}
		out := make([]any, 0, len(parts))
		for _, p := range parts {
			v, problem := f.value(ctx, Exact, strings.TrimSpace(p))
			if problem != "" {
				return nil, problem
			}
			out = append(out, v)
		}
		return out, ""
	}
	switch f.Kind {
	case KindInt:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return nil, "Enter a whole number."
		}
		return n, ""
	case KindBool:
		switch strings.ToLower(s) {
		case "true", "1", "yes":
			return true, ""
		case "false", "0", "no":
			return false, ""
		}
		return nil, "Enter true or false."
	case KindTime:
		t, ok := ParseTime(s)
		if !ok {
			return nil, "Enter a valid date/time, such as 2006-01-02T15:04:05Z."
		}
		return t, ""
	case KindHref:
		if f.Resolve == nil {
			return s, ""
		}
		v, err := f.Resolve(ctx, s)
		if err != nil {
			return nil, msgDoesNotExist
		}
		return v, ""
	}
	return s, ""
}

// timeFilters compares times as the API shows them, to the microsecond,
// whatever precision the database keeps: each lookup becomes "at or after"
// (gte) and "before" (lt) bounds on whole microseconds.
func timeFilters(name, lookup string, t time.Time) []core.Filter {
	floor := t.Truncate(time.Microsecond)
	ceil := floor
	if ceil.Before(t) {
		ceil = ceil.Add(time.Microsecond)
	}
	gte := func(v time.Time) core.Filter { return core.Filter{Field: name, Op: Gte, Value: v} }
	lt := func(v time.Time) core.Filter { return core.Filter{Field: name, Op: Lt, Value: v} }
	switch lookup {
	case Gt:
		return []core.Filter{gte(floor.Add(time.Microsecond))}
	case Gte:
		return []core.Filter{gte(ceil)}
	case Lt:
		return []core.Filter{lt(ceil)}
	case Lte:
		return []core.Filter{lt(floor.Add(time.Microsecond))}
	}
	return []core.Filter{gte(floor), lt(floor.Add(time.Microsecond))}
}

// APITime is how the API shows a time: UTC, to the microsecond (what
// PostgreSQL keeps).
func APITime(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// ParseTime reads a time given in a query, in UTC: RFC 3339 (with or
// without fractional seconds), a date-time without zone (taken as UTC), or
// a date.
func ParseTime(s string) (time.Time, bool) {
	if strings.Contains(s, "T") && strings.Contains(s, " ") {
		// An unencoded "+01:00" arrives as " 01:00".
		s = strings.Replace(s, " ", "+", 1)
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05.999999999", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}

func (s ListSpec) filterNames() []string {
	var out []string
	for name, f := range s.Fields {
		for _, l := range f.Lookups {
			if l == Exact {
				out = append(out, name)
			} else {
				out = append(out, name+"__"+l)
			}
		}
	}
	sort.Strings(out)
	return out
}

func (s ListSpec) orderNames() []string {
	var out []string
	for name, f := range s.Fields {
		if f.Order {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// Params documents the list's query parameters for the OpenAPI document.
func (s ListSpec) Params() []Param {
	ps := []Param{
		{Name: paramLimit, Type: "integer", Doc: fmt.Sprintf("Number of results to return per page (1-%d, default %d).", core.MaxLimit, core.DefaultLimit)},
		{Name: paramOffset, Type: "integer", Doc: "The initial index from which to return the results."},
	}
	if orders := s.orderNames(); len(orders) > 0 {
		ps = append(ps, Param{Name: paramOrdering, Type: "string", Doc: "Comma-separated fields to order by, each optionally prefixed with '-' for descending: " + strings.Join(orders, ", ") + "."})
	}
	names := make([]string, 0, len(s.Fields))
	for n := range s.Fields {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		f := s.Fields[name]
		for _, l := range f.Lookups {
			p := Param{Name: name, Type: f.Kind.schemaType(), Doc: f.Doc}
			if l != Exact {
				p.Name += "__" + l
			}
			if f.Kind == KindTime {
				p.Format = "date-time"
			}
			if l == In {
				p.Type, p.Format = "string", ""
				p.Doc = strings.TrimSpace("Comma-separated values. " + f.Doc)
			}
			ps = append(ps, p)
		}
	}
	return ps
}

func (k Kind) schemaType() string {
	switch k {
	case KindInt:
		return "integer"
	case KindBool:
		return "boolean"
	}
	return "string"
}

// Page is one page of a list, in Pulp's shape. Next and Previous are
// absolute-path URLs of the neighbouring pages (the request's query with
// another offset), or null.
type Page[T any] struct {
	Count    int64   `json:"count"`
	Next     *string `json:"next"`
	Previous *string `json:"previous"`
	Results  []T     `json:"results"`
}

// pageItem lets the OpenAPI generator name a Page by its items.
func (Page[T]) pageItem() any { var zero T; return zero }

// NewPage makes the page of results that q (as ParseList made it) selected
// out of count in all.
func NewPage[T any](c echo.Context, q core.ListQuery, count int64, results []T) Page[T] {
	if results == nil {
		results = []T{}
	}
	p := Page[T]{Count: count, Results: results}
	limit := q.Limit
	if limit <= 0 {
		limit = core.DefaultLimit
	}
	u := c.Request().URL
	link := func(offset int) *string {
		v := u.Query()
		v.Set(paramLimit, strconv.Itoa(limit))
		if offset > 0 {
			v.Set(paramOffset, strconv.Itoa(offset))
		} else {
			v.Del(paramOffset)
		}
		s := u.Path + "?" + v.Encode()
		return &s
	}
	if int64(q.Offset+limit) < count {
		p.Next = link(q.Offset + limit)
	}
	if q.Offset > 0 {
		p.Previous = link(max(0, q.Offset-limit))
	}
	return p
}

// typedList is the list handler of a core object kind: parse the query,
// restrict it to one type (when typ is set), load a page and render it.
func typedList[T any](spec ListSpec, typ string,
	load func(context.Context, core.ListQuery) ([]T, int64, error),
	show func(context.Context, []T) ([]any, error),
) echo.HandlerFunc {
	return func(c echo.Context) error {
		var only []core.Filter
		if typ != "" {
			only = append(only, core.Filter{Field: "pulp_type", Op: "eq", Value: typ})
		}
		return RenderList(c, spec, only, load, show)
	}
}

// RenderList answers a list request the way every list of the API does:
// it parses the query against spec (plus the fixed filters), loads one page
// with load, renders its items with show and writes the
// {count, next, previous, results} page.
func RenderList[T, V any](c echo.Context, spec ListSpec, fixed []core.Filter,
	load func(context.Context, core.ListQuery) ([]T, int64, error),
	show func(context.Context, []T) ([]V, error),
) error {
	q, err := ParseList(c, spec)
	if err != nil {
		return err
	}
	q.Filters = append(q.Filters, fixed...)
	ctx := c.Request().Context()
	list, count, err := load(ctx, q)
	if err != nil {
		return err
	}
	out, err := show(ctx, list)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, NewPage(c, q, count, out))
}

// RenderOne answers with one object rendered the way its list renders it:
// show, the list's renderer, on a list of one.
func RenderOne[T, V any](c echo.Context, status int, obj T, show func(context.Context, []T) ([]V, error)) error {
	out, err := show(c.Request().Context(), []T{obj})
	if err != nil {
		return err
	}
	return c.JSON(status, out[0])
}

// typedRead is the detail handler of a core object kind: load the object of
// type typ named by the :id parameter and render it.
func typedRead[T any](typ string, load func(ctx context.Context, typ, id string) (T, error), show func(context.Context, T) (any, error)) echo.HandlerFunc {
	return func(c echo.Context) error {
		ctx := c.Request().Context()
		obj, err := load(ctx, typ, c.Param("id"))
		if err != nil {
			return err
		}
		out, err := show(ctx, obj)
		if err != nil {
			return err
		}
		return c.JSON(http.StatusOK, out)
	}
}
