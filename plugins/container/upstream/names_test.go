package upstream

import "testing"

func TestUpstreamName(t *testing.T) {
	for _, tc := range []struct{ url, name, want string }{
		{"https://docker.io", "alpine", "library/alpine"},
		{"https://registry-1.docker.io", "alpine", "library/alpine"},
		{"https://index.docker.io/v2/", "alpine", "library/alpine"},
		{"https://registry.hub.docker.com", "nginx", "library/nginx"},
		{"https://REGISTRY-1.DOCKER.IO:443", "alpine", "library/alpine"},
		{"docker.io", "alpine", "library/alpine"},
		{"https://docker.io", "foo/bar", "foo/bar"},
		{"https://docker.io", "library/alpine", "library/alpine"},
		{"https://docker.io", "a/b/c", "a/b/c"},
		{"https://quay.io", "alpine", "alpine"},
		{"https://ghcr.io", "foo/bar", "foo/bar"},
		{"http://127.0.0.1:5000", "alpine", "alpine"},
		{"https://docker.io.example.com", "alpine", "alpine"},
		{"https://docker.io:5000", "alpine", "alpine"},
		{"https://docker.io", "", ""},
	} {
		if got := UpstreamName(tc.url, tc.name); got != tc.want {
			t.Errorf("UpstreamName(%q, %q) = %q, want %q", tc.url, tc.name, got, tc.want)
		}
	}
}
