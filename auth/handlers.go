package auth

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/core"
)

// Where the REST handlers are mounted; hrefs are built from these.
const (
	PulpRoot = api.Prefix
	APIRoot  = "/api/v1/"
)

// maxBody bounds a JSON request body.
const maxBody = 1 << 20

// decodeJSON reads a JSON body into dst. Unknown fields are ignored, as in
// Pulp (clients send back read-only fields).
func decodeJSON(c echo.Context, dst any) error {
	r := c.Request()
	body := http.MaxBytesReader(c.Response(), r.Body, maxBody)
	err := json.NewDecoder(body).Decode(dst)
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, io.EOF):
		return core.Invalid("body", "a JSON object is required")
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			field = "body"
		}
		return core.Invalid(field, "must be a %s", typ.Type.String())
	case errors.As(err, &syn), errors.Is(err, io.ErrUnexpectedEOF):
		return core.Invalid("body", "malformed JSON: %v", err)
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return core.Invalid("body", "larger than %d bytes", maxBody)
	}
	return core.Invalid("body", "%v", err)
}

// fieldKind says how a list filter's value is parsed.
type fieldKind int

const (
	textField fieldKind = iota
	boolField
)

// listQuery reads limit, offset, ordering and filters (field, field__op)
// for the given fields; other parameters are ignored, as DRF does.
func listQuery(c echo.Context, fields map[string]fieldKind) (core.ListQuery, error) {
	v := &core.ValidationError{}
	q := core.ListQuery{}
	params := c.QueryParams()
	for _, p := range []struct {
		name string
		dst  *int
	}{{"limit", &q.Limit}, {"offset", &q.Offset}} {
		if s := params.Get(p.name); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 0 {
				v.Add(p.name, "must be a non-negative whole number")
			}
			*p.dst = n
		}
	}
	if o := params.Get("ordering"); o != "" {
		for _, f := range strings.Split(o, ",") {
			if f = strings.TrimSpace(f); f != "" {
				q.Ordering = append(q.Ordering, f)
			}
		}
	}
	for key, vals := range params {
		field, op, _ := strings.Cut(key, "__")
		kind, ok := fields[field]
		if !ok || len(vals) == 0 {
			continue
		}
		val := vals[len(vals)-1]
		switch {
		case kind == boolField && (op == "" || op == "eq"):
			b, err := strconv.ParseBool(val)
			if err != nil {
				v.Add(key, "must be true or false")
				continue
			}
			q.Filters = append(q.Filters, core.Filter{Field: field, Op: "eq", Value: b})
		case kind == textField && op == "in":
			q.Filters = append(q.Filters, core.Filter{Field: field, Op: "in", Value: strings.Split(val, ",")})
		case kind == textField:
			q.Filters = append(q.Filters, core.Filter{Field: field, Op: op, Value: val})
		default:
			v.Add(key, "unsupported filter")
		}
	}
	return q, v.Err()
}

// listParams documents the query parameters listQuery reads for fields.
func listParams(fields map[string]fieldKind) []api.Param {
	ps := []api.Param{
		{Name: "limit", Type: "integer", Doc: fmt.Sprintf("Number of results to return per page (default %d).", core.DefaultLimit)},
		{Name: "offset", Type: "integer", Doc: "The initial index from which to return the results."},
		{Name: "ordering", Doc: "Comma-separated fields to order by, each optionally prefixed with '-' for descending."},
	}
	names := make([]string, 0, len(fields))
	for n := range fields {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if fields[n] == boolField {
			ps = append(ps, api.Param{Name: n, Type: "boolean"})
			continue
		}
		ps = append(ps, api.Param{Name: n})
		for _, op := range []string{api.Contains, api.IContains, api.StartsWith} {
			ps = append(ps, api.Param{Name: n + "__" + op})
		}
		ps = append(ps, api.Param{Name: n + "__in", Doc: "Comma-separated values."})
	}
	return ps
}
