package api_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/api/errcode"
	"github.com/berth-dev/berth/core"
)

type inner struct {
	Key string `json:"key"`
}

type Embedded struct {
	Shared string `json:"shared"`
}

type bindTarget struct {
	Embedded
	Name    string            `json:"name" api:"required"`
	Count   int               `json:"count"`
	Ratio   *float64          `json:"ratio"`
	On      bool              `json:"on"`
	Tags    []string          `json:"tags"`
	Labels  map[string]string `json:"labels"`
	Inner   *inner            `json:"inner"`
	Href    string            `json:"pulp_href" api:"readonly"`
	ignored string            //lint:ignore U1000 shows that unexported fields are not decoded
}

func TestDecode(t *testing.T) {
	cases := []struct {
		name    string
		body    string
		partial bool
		fields  map[string]string // field → message part; nil means success
		detail  bool              // a 400 with a detail rather than fields
	}{
		{"ok", `{"name":"n","count":3,"ratio":null,"on":true,"tags":["a"],"labels":{"k":"v"},"inner":{"key":"x"},"shared":"s"}`, false, nil, false},
		{"empty body", ``, false, map[string]string{"name": api.MsgRequired}, false},
		{"partial", `{"count":1}`, true, nil, false},
		{"unknown", `{"name":"n","extra":1}`, false, map[string]string{"extra": api.MsgUnexpected}, false},
		{"read-only", `{"name":"n","pulp_href":"x"}`, false, map[string]string{"pulp_href": api.MsgUnexpected}, false},
		{"unexported", `{"name":"n","ignored":"x"}`, false, map[string]string{"ignored": api.MsgUnexpected}, false},
		{"nested unknown", `{"name":"n","inner":{"key":"x","nope":1}}`, false, map[string]string{"inner": `"nope"`}, false},
		{"int", `{"name":"n","count":1.5}`, false, map[string]string{"count": "integer"}, false},
		{"float", `{"name":"n","ratio":"x"}`, false, map[string]string{"ratio": "number"}, false},
		{"bool", `{"name":"n","on":"true"}`, false, map[string]string{"on": "boolean"}, false},
		{"list", `{"name":"n","tags":"a"}`, false, map[string]string{"tags": "list"}, false},
		{"dict", `{"name":"n","labels":[]}`, false, map[string]string{"labels": "dictionary"}, false},
		{"null not allowed", `{"name":"n","count":null}`, false, map[string]string{"count": api.MsgNotNull}, false},
		{"array body", `[]`, false, map[string]string{"non_field_errors": "array"}, false},
		{"null body", `null`, false, map[string]string{"non_field_errors": "null"}, false},
		{"syntax", `{"name":`, false, nil, true},
		{"trailing", `{"name":"n"} {}`, false, nil, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var dst bindTarget
			given, err := api.Decode([]byte(tc.body), tc.partial, &dst)
			switch {
			case tc.detail:
				var ce *errcode.Error
				if !errors.As(err, &ce) || ce.Code != errcode.Invalid {
					t.Fatalf("err %v, want an invalid errcode", err)
				}
			case tc.fields == nil:
				if err != nil {
					t.Fatalf("err %v", err)
				}
			default:
				var ve *core.ValidationError
				if !errors.As(err, &ve) || !errors.Is(err, core.ErrInvalid) {
					t.Fatalf("err %v, want a validation error", err)
				}
				if len(ve.Fields) != len(tc.fields) {
					t.Errorf("fields %v, want %v", ve.Fields, tc.fields)
				}
				for f, msg := range tc.fields {
					if len(ve.Fields[f]) == 0 || !strings.Contains(ve.Fields[f][0], msg) {
						t.Errorf("%s: %v, want %q", f, ve.Fields[f], msg)
					}
				}
			}
			if tc.name == "ok" {
				want := bindTarget{Embedded: Embedded{Shared: "s"}, Name: "n", Count: 3, On: true, Tags: []string{"a"}, Labels: map[string]string{"k": "v"}, Inner: &inner{Key: "x"}}
				if !reflect.DeepEqual(dst, want) {
					t.Errorf("decoded %+v, want %+v", dst, want)
				}
				if !given.Has("ratio") || !given.Has("shared") || given.Has("pulp_href") {
					t.Errorf("given %v", given)
				}
			}
		})
	}
}
