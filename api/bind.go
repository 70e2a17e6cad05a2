package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"reflect"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/berth-dev/berth/api/errcode"
	"github.com/berth-dev/berth/core"
)

// MaxBodySize bounds the JSON body of a REST request (1 MiB).
const MaxBodySize = 1 << 20

// Messages of strict decoding, in Django REST framework's words so that Pulp
// clients recognise them.
const (
	MsgUnexpected = "Unexpected field."
	MsgRequired   = "This field is required."
	MsgNotNull    = "This field may not be null."
)

// Fields is the set of top-level fields a request body gave.
type Fields map[string]bool

// Has reports whether the body gave the field (null included).
func (f Fields) Has(name string) bool { return f[name] }

// Bind decodes the request's JSON object body strictly into dst, a pointer
// to a struct whose fields carry json tags, and returns the fields it gave.
// Further targets (a plugin's fields, see Extension) take the fields dst
// does not know.
//
// Every problem is reported at once as a *core.ValidationError naming the
// fields: unknown fields ("Unexpected field."), values of the wrong type,
// null for a field that is not a pointer, and missing fields tagged
// `api:"required"`. A body that is not JSON, or not an object, is a 400
// with a detail; a body that is not declared as JSON is a 415, one larger
// than MaxBodySize a 413. On error the targets may be partly filled:
// callers change nothing before Bind succeeded.
func Bind(c echo.Context, dst any, more ...any) (Fields, error) {
	return bindRequest(c, false, append([]any{dst}, more...))
}

// BindPatch is Bind for partial updates (PATCH): required fields may be
// absent.
func BindPatch(c echo.Context, dst any, more ...any) (Fields, error) {
	return bindRequest(c, true, append([]any{dst}, more...))
}

func bindRequest(c echo.Context, partial bool, dsts []any) (Fields, error) {
	req := c.Request()
	if ct := req.Header.Get(echo.HeaderContentType); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != echo.MIMEApplicationJSON && !strings.HasSuffix(mt, "+json")) {
			return nil, errcode.UnsupportedMediaType.Errorf("Unsupported media type %q in request; send application/json.", ct)
		}
	}
	var body []byte
	if req.Body != nil {
		var err error
		body, err = io.ReadAll(io.LimitReader(req.Body, MaxBodySize+1))
		if err != nil {
			return nil, fmt.Errorf("read request body: %w", err)
		}
	}
	if len(body) > MaxBodySize {
		return nil, errcode.TooLarge.Errorf("Request body larger than %d bytes.", MaxBodySize)
	}
	return Decode(body, partial, dsts...)
}

// Decode is the strict decoding of Bind (partial: of BindPatch) applied to
// a body already read, into one or more targets (each a pointer to a
// struct; a field goes to the first target that has it). An empty body is
// an empty object.
func Decode(body []byte, partial bool, dsts ...any) (Fields, error) {
	type target struct {
		v reflect.Value
		f fieldInfo
	}
	byName := map[string]target{}
	var required []string
	for _, dst := range dsts {
		rv := reflect.ValueOf(dst)
		if rv.Kind() != reflect.Pointer || rv.IsNil() || rv.Elem().Kind() != reflect.Struct {
			return nil, fmt.Errorf("decode: want a pointer to a struct, got %T", dst)
		}
		for _, f := range structFields(rv.Elem().Type()) {
			if _, dup := byName[f.name]; dup {
				continue
			}
			byName[f.name] = target{rv.Elem(), f}
			if f.required {
				required = append(required, f.name)
			}
		}
	}
	if len(bytes.TrimSpace(body)) == 0 {
		body = []byte("{}")
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return nil, core.Invalid("non_field_errors", "Invalid data. Expected a dictionary, but got %s.", te.Value)
		}
		return nil, errcode.Invalid.Errorf("JSON parse error - %s", strings.TrimPrefix(err.Error(), "json: "))
	}
	if raw == nil { // the body was "null"
		return nil, core.Invalid("non_field_errors", "Invalid data. Expected a dictionary, but got null.")
	}
	verr := &core.ValidationError{}
	given := Fields{}
	for name, val := range raw {
		t, ok := byName[name]
		if !ok || t.f.readOnly {
			verr.Add(name, MsgUnexpected)
			continue
		}
		given[name] = true
		fv := t.v.FieldByIndex(t.f.index)
		if string(bytes.TrimSpace(val)) == "null" {
			switch fv.Kind() {
			case reflect.Pointer, reflect.Map, reflect.Slice, reflect.Interface:
				fv.Set(reflect.Zero(fv.Type()))
			default:
				verr.Add(name, MsgNotNull)
			}
			continue
		}
		dec := json.NewDecoder(bytes.NewReader(val))
		dec.DisallowUnknownFields()
		if err := dec.Decode(fv.Addr().Interface()); err != nil {
			verr.Add(name, "%s", valueMessage(fv.Type(), err))
		}
	}
	if !partial {
		for _, name := range required {
			if !given[name] {
				verr.Add(name, MsgRequired)
			}
		}
	}
	if err := verr.Err(); err != nil {
		return nil, err
	}
	return given, nil
}

var timeType = reflect.TypeFor[time.Time]()

// valueMessage says what is wrong with a value that did not decode into t.
func valueMessage(t reflect.Type, err error) string {
	if msg, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return "Unexpected field " + msg + "."
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == timeType {
		return "Datetime has wrong format. Use RFC 3339, such as 2006-01-02T15:04:05Z."
	}
	if !isJSONError(err) {
		// A type's own UnmarshalJSON said why (an enum, a duration, …).
		return err.Error()
	}
	switch t.Kind() {
	case reflect.String:
		return "Not a valid string."
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "A valid integer is required."
	case reflect.Float32, reflect.Float64:
		return "A valid number is required."
	case reflect.Bool:
		return "Must be a valid boolean."
	case reflect.Slice, reflect.Array:
		return "Expected a list of items."
	case reflect.Map, reflect.Struct:
		return "Expected a dictionary of items."
	}
	return "Invalid value."
}

func isJSONError(err error) bool {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	return errors.As(err, &te) || errors.As(err, &se)
}

// fieldInfo is one JSON field of a struct, with Berth's tags:
// `api:"required,readonly,writeonly"`, `doc:"description"` and
// `enum:"a,b,c"`.
type fieldInfo struct {
	name      string
	index     []int
	typ       reflect.Type
	required  bool
	readOnly  bool
	writeOnly bool
	doc       string
	enum      []string
}

// structFields lists the JSON fields of struct type t in declaration
// order, promoting those of embedded structs like encoding/json does (an
// outer field wins over an embedded one of the same name).
func structFields(t reflect.Type) []fieldInfo {
	var out []fieldInfo
	seen := map[string]bool{}
	var walk func(t reflect.Type, index []int, depth int)
	walk = func(t reflect.Type, index []int, depth int) {
		var embedded []reflect.StructField
		for i := range t.NumField() {
			sf := t.Field(i)
			tag := sf.Tag.Get("json")
			if tag == "-" {
				continue
			}
			name, _, _ := strings.Cut(tag, ",")
			if sf.Anonymous && name == "" {
				ft := sf.Type
				if ft.Kind() == reflect.Pointer {
					ft = ft.Elem()
				}
				if ft.Kind() == reflect.Struct {
					embedded = append(embedded, sf)
					continue
				}
			}
			if !sf.IsExported() {
				continue
			}
			if name == "" {
				name = sf.Name
			}
			if seen[name] {
				continue
			}
			seen[name] = true
			f := fieldInfo{name: name, index: append(append([]int(nil), index...), i), typ: sf.Type, doc: sf.Tag.Get("doc")}
			for _, opt := range strings.Split(sf.Tag.Get("api"), ",") {
				switch opt {
				case "required":
					f.required = true
				case "readonly":
					f.readOnly = true
				case "writeonly":
					f.writeOnly = true
				}
			}
			if e := sf.Tag.Get("enum"); e != "" {
				f.enum = strings.Split(e, ",")
			}
			out = append(out, f)
		}
		if depth > 8 {
			return
		}
		for _, sf := range embedded {
			ft := sf.Type
			if ft.Kind() == reflect.Pointer {
				// encoding/json cannot allocate unexported embedded pointers
				// and we never need to: embed structs by value.
				continue
			}
			walk(ft, append(append([]int(nil), index...), sf.Index...), depth+1)
		}
	}
	walk(t, nil, 0)
	return out
}
