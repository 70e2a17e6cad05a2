package upstream

import (
	"reflect"
	"testing"
)

func TestParseChallenges(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want []authChallenge
	}{
		{[]string{`Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull"`},
			[]authChallenge{{"bearer", map[string]string{"realm": "https://auth.docker.io/token", "service": "registry.docker.io", "scope": "repository:library/alpine:pull"}}}},
		{[]string{`Basic realm="Registry Realm"`}, []authChallenge{{"basic", map[string]string{"realm": "Registry Realm"}}}},
		{[]string{`basic Realm=plain , charset="UTF-8"`}, []authChallenge{{"basic", map[string]string{"realm": "plain", "charset": "UTF-8"}}}},
		{[]string{`Negotiate abc==, Basic realm="x"`}, nil}, // checked below: Basic found
		{[]string{`Basic realm="a, \"b\""`, `Bearer realm="r",scope="x y"`},
			[]authChallenge{{"basic", map[string]string{"realm": `a, "b"`}}, {"bearer", map[string]string{"realm": "r", "scope": "x y"}}}},
		{[]string{`Basic realm="x", Bearer realm="y"`},
			[]authChallenge{{"basic", map[string]string{"realm": "x"}}, {"bearer", map[string]string{"realm": "y"}}}},
		{[]string{""}, nil},
	} {
		got := parseChallenges(tc.in)
		if tc.want == nil && len(tc.in[0]) > 0 {
			found := false
			for _, ch := range got {
				found = found || (ch.scheme == "basic" && ch.params["realm"] == "x")
			}
			if !found {
				t.Errorf("%q: no Basic challenge in %+v", tc.in, got)
			}
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q:\n got %+v\nwant %+v", tc.in, got, tc.want)
		}
	}
}
