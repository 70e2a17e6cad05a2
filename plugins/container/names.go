package container

import (
	"regexp"
	"strings"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/core/storage"
)

// MaxNameLength bounds an image name; registries and clients commonly limit
// the whole reference to 255 characters.
const MaxNameLength = 255

var (
	// nameRE is the OCI distribution spec's repository name grammar.
	nameRE = regexp.MustCompile(`^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$`)
	// tagRE is the OCI distribution spec's tag grammar.
	tagRE = regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$`)
)

// ValidateName checks an image (repository) name.
func ValidateName(name string) error {
	if name == "" || len(name) > MaxNameLength || !nameRE.MatchString(name) {
		return errorf(ErrNameInvalid, "invalid repository name %q: it must be lowercase path components of letters and digits separated by '.', '_', '__' or '-', joined by '/', at most %d characters", truncate(name, 300), MaxNameLength)
	}
	return nil
}

// ValidateTag checks a tag.
func ValidateTag(tag string) error {
	if !tagRE.MatchString(tag) {
		return errorf(ErrTagInvalid, "invalid tag %q: up to 128 letters, digits, '_', '.' and '-', not starting with '.' or '-'", truncate(tag, 300))
	}
	return nil
}

// ParseDigest parses a sha256 or sha512 digest.
func ParseDigest(s string) (digest.Digest, error) {
	d := digest.Digest(s)
	if err := storage.ValidateDigest(d); err != nil {
		return "", errorf(ErrDigestInvalid, "invalid digest %q: want sha256:<64 hex> or sha512:<128 hex>", truncate(s, 300))
	}
	return d, nil
}

// namespaceOf is the namespace an image name belongs to: its first path
// component (an image without a slash is its own namespace).
func namespaceOf(name string) string {
	ns, _, _ := strings.Cut(name, "/")
	return ns
}

// reference is a tag or a digest from a /manifests/ path.
type reference struct {
	tag    string
	digest digest.Digest
}

func (r reference) String() string {
	if r.digest != "" {
		return r.digest.String()
	}
	return r.tag
}

// parseReference tells a digest (it has a ':') from a tag and validates it.
func parseReference(s string) (reference, error) {
	if strings.Contains(s, ":") {
		d, err := ParseDigest(s)
		return reference{digest: d}, err
	}
	if err := ValidateTag(s); err != nil {
		return reference{}, err
	}
	return reference{tag: s}, nil
}

// route is what a /v2/ path addresses.
type route struct {
	kind string // one of the route* constants
	name string // image name; "" for base and catalog
	arg  string // digest, reference or upload id
}

const (
	routeBase      = "base"
	routeCatalog   = "catalog"
	routeTags      = "tags"
	routeManifest  = "manifest"
	routeBlob      = "blob"
	routeUploads   = "uploads" // POST …/blobs/uploads/
	routeUpload    = "upload"  // …/blobs/uploads/<id>
	routeReferrers = "referrers"
)

// parsePath splits the part of a path after "/v2/". A name may itself
// contain components such as "blobs" or "manifests", so the path is matched
// from its end: the resource is the last recognizable suffix.
func parsePath(p string) (route, bool) {
	switch p {
	case "":
		return route{kind: routeBase}, true
	case "_catalog":
		return route{kind: routeCatalog}, true
	}
	if name, ok := strings.CutSuffix(p, "/tags/list"); ok {
		return route{kind: routeTags, name: name}, true
	}
	if name, ok := strings.CutSuffix(p, "/blobs/uploads/"); ok {
		return route{kind: routeUploads, name: name}, true
	}
	if name, ok := strings.CutSuffix(p, "/blobs/uploads"); ok {
		return route{kind: routeUploads, name: name}, true
	}
	i := strings.LastIndexByte(p, '/')
	if i < 0 {
		return route{}, false
	}
	head, last := p[:i], p[i+1:]
	if last == "" {
		return route{}, false
	}
	j := strings.LastIndexByte(head, '/')
	if j < 0 {
		return route{}, false
	}
	name, verb := head[:j], head[j+1:]
	switch verb {
	case "manifests":
		return route{kind: routeManifest, name: name, arg: last}, true
	case "blobs":
		return route{kind: routeBlob, name: name, arg: last}, true
	case "referrers":
		return route{kind: routeReferrers, name: name, arg: last}, true
	case "uploads":
		if n, ok := strings.CutSuffix(name, "/blobs"); ok {
			return route{kind: routeUpload, name: n, arg: last}, true
		}
	}
	return route{}, false
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
