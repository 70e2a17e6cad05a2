package api

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/berth-dev/berth/core"
)

// Prefix is the root of Berth's Pulp-compatible REST API. Every pulp_href
// starts with it.
const Prefix = "/pulp/api/v3/"

// Collections of the core's hrefs (the first path segment after Prefix).
const (
	Repositories  = "repositories"
	Remotes       = "remotes"
	Distributions = "distributions"
	Tasks         = "tasks"
	Workers       = "workers"
	versionsPart  = "versions"
)

// Href builds an href under Prefix from path segments, escaping each one and
// ending with a slash, as Pulp does: Href("tasks", id) is
// "/pulp/api/v3/tasks/<id>/".
func Href(segments ...string) string {
	var b strings.Builder
	b.WriteString(Prefix)
	for _, s := range segments {
		b.WriteString(url.PathEscape(s))
		b.WriteByte('/')
	}
	return b.String()
}

// TypePath turns a type name into its href segments: "container.container"
// becomes "container/container". Types are "<plugin>.<kind>"; a name without
// a dot is used as it is.
func TypePath(typ string) string {
	plugin, kind, ok := strings.Cut(typ, ".")
	if !ok {
		return typ
	}
	return plugin + "/" + kind
}

// TypedHref is the href of an object of a typed collection:
// TypedHref("remotes", "container.container", id) is
// "/pulp/api/v3/remotes/container/container/<id>/".
func TypedHref(collection, typ, id string) string {
	plugin, kind, _ := strings.Cut(typ, ".")
	return Href(collection, plugin, kind, id)
}

// TypedListHref is the list endpoint of a typed collection, such as
// "/pulp/api/v3/repositories/container/container/".
func TypedListHref(collection, typ string) string {
	plugin, kind, _ := strings.Cut(typ, ".")
	return Href(collection, plugin, kind)
}

// RepositoryHref is the href of a repository of type typ.
func RepositoryHref(typ, id string) string { return TypedHref(Repositories, typ, id) }

// VersionHref is the href of version number of a repository of type typ.
func VersionHref(typ, repoID string, number int) string {
	return RepositoryHref(typ, repoID) + versionsPart + "/" + strconv.Itoa(number) + "/"
}

// RemoteHref is the href of a remote of type typ.
func RemoteHref(typ, id string) string { return TypedHref(Remotes, typ, id) }

// DistributionHref is the href of a distribution of type typ.
func DistributionHref(typ, id string) string { return TypedHref(Distributions, typ, id) }

// TaskHref is the href of a task.
func TaskHref(id string) string { return Href(Tasks, id) }

// WorkerHref is the href of a worker; workers are named, not numbered.
func WorkerHref(name string) string { return Href(Workers, name) }

// Ref is a parsed href.
type Ref struct {
	// Collection is the first segment: "repositories", "tasks", …
	Collection string
	// Type is the object's type ("container.container") for typed
	// collections, "" for untyped ones such as tasks and workers.
	Type string
	// ID is the object's identifier (a UUID, or a worker's name).
	ID string
	// Version is the repository version number of a version href, -1 otherwise.
	Version int
}

// IsVersion reports whether the href names a repository version.
func (r Ref) IsVersion() bool { return r.Version >= 0 }

// String rebuilds the href.
func (r Ref) String() string {
	var h string
	if r.Type == "" {
		h = Href(r.Collection, r.ID)
	} else {
		h = TypedHref(r.Collection, r.Type, r.ID)
	}
	if r.IsVersion() {
		h += versionsPart + "/" + strconv.Itoa(r.Version) + "/"
	}
	return h
}

// Messages for bad hyperlinks, in Pulp's words.
const (
	msgNoURLMatch   = "Invalid hyperlink - No URL match."
	msgDoesNotExist = "Invalid hyperlink - Object does not exist."
)

// ParseHref parses an object href: "/pulp/api/v3/<collection>/<id>/",
// "/pulp/api/v3/<collection>/<plugin>/<kind>/<id>/" or a repository version
// "…/<id>/versions/<n>/". A full URL ("https://host/pulp/api/v3/…") is
// accepted too; its scheme and host are ignored. The trailing slash is
// optional. A malformed href is a core.ErrInvalid error.
func ParseHref(href string) (Ref, error) {
	bad := func() (Ref, error) {
		return Ref{}, fmt.Errorf("href %q: %s: %w", href, msgNoURLMatch, core.ErrInvalid)
	}
	u, err := url.Parse(href)
	if err != nil {
		return bad()
	}
	p := u.EscapedPath()
	if !strings.HasPrefix(p, Prefix) {
		return bad()
	}
	rest := strings.TrimSuffix(strings.TrimPrefix(p, Prefix), "/")
	if rest == "" {
		return bad()
	}
	segs := strings.Split(rest, "/")
	for i, s := range segs {
		v, err := url.PathUnescape(s)
		if err != nil || v == "" {
			return bad()
		}
		segs[i] = v
	}
	ref := Ref{Collection: segs[0], Version: -1}
	switch len(segs) {
	case 2:
		ref.ID = segs[1]
	case 4:
		ref.Type, ref.ID = segs[1]+"."+segs[2], segs[3]
	case 6:
		if segs[4] != versionsPart {
			return bad()
		}
		n, err := strconv.Atoi(segs[5])
		if err != nil || n < 0 || strconv.Itoa(n) != segs[5] {
			return bad()
		}
		ref.Type, ref.ID, ref.Version = segs[1]+"."+segs[2], segs[3], n
	default:
		return bad()
	}
	return ref, nil
}

// RepositoryResource is the task-system resource of a repository: a task
// that changes a repository (a new version, a deletion) holds it exclusively.
func RepositoryResource(id string) string { return "repository:" + id }

// RemoteResource is the task-system resource of a remote (a sync holds it
// shared).
func RemoteResource(id string) string { return "remote:" + id }

// DistributionResource is the task-system resource of a distribution.
func DistributionResource(id string) string { return "distribution:" + id }

// resourceOf maps an href given to the tasks' reserved_resources filter to
// the task system's resource name; other strings are taken as they are.
func resourceOf(s string) string {
	ref, err := ParseHref(s)
	if err != nil || ref.IsVersion() {
		return s
	}
	switch ref.Collection {
	case Repositories:
		return RepositoryResource(ref.ID)
	case Remotes:
		return RemoteResource(ref.ID)
	case Distributions:
		return DistributionResource(ref.ID)
	}
	return s
}
