package upstream

import (
	"net/url"
	"strings"
)

// dockerHubHosts are the names of Docker Hub's registry.
var dockerHubHosts = map[string]bool{
	"docker.io":               true,
	"index.docker.io":         true,
	"registry-1.docker.io":    true,
	"registry.hub.docker.com": true,
}

// IsDockerHub reports whether registryURL (a URL or a bare host) is Docker
// Hub.
func IsDockerHub(registryURL string) bool {
	raw := registryURL
	if !strings.Contains(raw, "://") {
		raw = "https://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil {
		return false
	}
	host := strings.ToLower(strings.TrimSuffix(u.Hostname(), "."))
	if p := u.Port(); p != "" && p != "443" {
		return false
	}
	return dockerHubHosts[host]
}

// UpstreamName is the name of repository name on the remote registryURL:
// on Docker Hub, an official image has the implicit namespace "library"
// ("alpine" is "library/alpine", "foo/bar" stays); elsewhere the name is
// unchanged.
func UpstreamName(registryURL, name string) string {
	if name != "" && !strings.Contains(name, "/") && IsDockerHub(registryURL) {
		return "library/" + name
	}
	return name
}
