package upstream

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestFilterApply(t *testing.T) {
	tags := []string{"latest", "1.0", "1.2.3", "1.2.3-rc1", "2.0-rc1", "2.0", "10.1", "edge", "1.0", "1_x", "v1.0"}
	for _, tc := range []struct {
		name             string
		include, exclude []string
		want             []string
	}{
		{"everything", nil, nil, []string{"1.0", "1.2.3", "1.2.3-rc1", "10.1", "1_x", "2.0", "2.0-rc1", "edge", "latest", "v1.0"}},
		{"star crosses dots and dashes", []string{"1.*"}, nil, []string{"1.0", "1.2.3", "1.2.3-rc1"}},
		{"exact", []string{"latest"}, nil, []string{"latest"}},
		{"exclude rc", []string{"1.*", "2.*"}, []string{"*-rc*"}, []string{"1.0", "1.2.3", "2.0"}},
		{"exclude only", nil, []string{"*-rc?", "edge", "latest"}, []string{"1.0", "1.2.3", "10.1", "1_x", "2.0", "v1.0"}},
		{"question mark is one char", []string{"?.0"}, nil, []string{"1.0", "2.0"}},
		{"class", []string{"[0-9]*"}, []string{"1*"}, []string{"2.0", "2.0-rc1"}},
		{"negated class", []string{"[!0-9]*"}, nil, []string{"edge", "latest", "v1.0"}},
		{"whole tag, not substring", []string{"1"}, nil, []string{}},
		{"escaped star", []string{`1\*`}, nil, []string{}},
		{"nothing included", []string{"nope"}, nil, []string{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := Filter{Include: tc.include, Exclude: tc.exclude}
			if err := f.Validate(); err != nil {
				t.Fatal(err)
			}
			if got := f.Apply(tags); !slices.Equal(got, tc.want) {
				t.Errorf("Apply = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestFilterValidate(t *testing.T) {
	for _, tc := range []struct {
		f    Filter
		bad  []string // names in the error
		okay bool
	}{
		{Filter{Include: []string{"1.*", "latest"}, Exclude: []string{"*-rc*"}}, nil, true},
		{Filter{Include: []string{"[a-"}}, []string{`include: "[a-"`}, false},
		{Filter{Exclude: []string{`abc\`}}, []string{`exclude: "abc\\"`}, false},
		{Filter{Include: []string{""}}, []string{"include: empty pattern"}, false},
		{Filter{Include: []string{"ok", "[z"}, Exclude: []string{"[y"}}, []string{`"[z"`, `"[y"`}, false},
	} {
		err := tc.f.Validate()
		if tc.okay {
			if err != nil {
				t.Errorf("%+v: %v", tc.f, err)
			}
			continue
		}
		if !errors.Is(err, ErrInvalidPattern) {
			t.Errorf("%+v: err = %v, want ErrInvalidPattern", tc.f, err)
			continue
		}
		for _, b := range tc.bad {
			if !strings.Contains(err.Error(), b) {
				t.Errorf("%+v: %q does not name %s", tc.f, err, b)
			}
		}
	}
}
