package build

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/berth-dev/berth/core"
)

// Limits of a spec.
const (
	// MaxTargetLength bounds the target repository name.
	MaxTargetLength = 255
	// MaxContainerfileSize bounds a raw-mode Containerfile, in bytes.
	MaxContainerfileSize = 256 << 10
	// specTagSuffixLength is the length of "-" and the digest prefix that
	// [Spec.UniqueTag] appends to the tag.
	specTagSuffixLength = 1 + 8
	// maxTagLength is the OCI limit on tags.
	maxTagLength = 128
)

var (
	// repoNameRE is the OCI distribution spec's repository name grammar
	// (the same as plugins/container's; kept here so that this package does
	// not depend on the registry plugin).
	repoNameRE = regexp.MustCompile(`^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$`)
	// tagRE is the OCI distribution spec's tag grammar.
	tagRE = regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$`)
)

// Credentials are a user name and password (or token) for one registry.
//
// They are never logged or serialized: String, GoString and LogValue redact
// the password, MarshalJSON fails, and [Spec] keeps them out of its JSON form.
type Credentials struct {
	Username string
	Password string
}

// String redacts the password.
func (c Credentials) String() string { return c.Username + ":REDACTED" }

// GoString redacts the password for %#v.
func (c Credentials) GoString() string {
	return fmt.Sprintf("build.Credentials{Username:%q, Password:REDACTED}", c.Username)
}

// LogValue redacts the password for log/slog.
func (c Credentials) LogValue() slog.Value {
	return slog.GroupValue(slog.String("username", c.Username), slog.String("password", "REDACTED"))
}

// MarshalJSON refuses to serialize credentials: store a reference to them
// (a secret's ID) instead.
func (c Credentials) MarshalJSON() ([]byte, error) { return nil, ErrSerializeCredentials }

// check validates credentials under field without ever echoing them.
func (c Credentials) check(v *core.ValidationError, field string) {
	if c.Username == "" {
		v.Add(field, "the user name is required")
	}
	if strings.Contains(c.Username, ":") {
		v.Add(field, "the user name may not contain ':'")
	}
	if strings.ContainsFunc(c.Username+c.Password, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		v.Add(field, "the user name and password may not contain control characters")
	}
}

// Spec is what a user asks to build: in package mode, a base image and the
// packages to add to it; in raw mode, a Containerfile of their own. Its JSON
// form (without credentials) is what a build task stores.
//
// Package lists hold one package per line, as the user typed them (see
// [SplitLines]). Blanks around a line are ignored, and so are blank lines,
// comment lines starting with '#', and comments after white space
// ("numpy  # arrays"), as in pip's requirement files. Every other line must
// be valid for its package manager: see "APT lines", "Pip lines" and "Conda
// lines" in the package documentation.
type Spec struct {
	// Target is the repository the image is pushed to, "namespace/name".
	Target string `json:"target"`
	// Tag is the tag the image is pushed to; [Spec.UniqueTag] is the other.
	Tag string `json:"tag"`
	// Base is the base image reference (package mode only), for example
	// "docker.io/library/python:3.12" or "ubuntu:24.04".
	Base string `json:"base,omitempty"`
	// BaseCredentials, when set, are used to pull Base (package mode only).
	BaseCredentials *Credentials `json:"-"`
	// APT lists Debian packages: name, name=version, name/release.
	APT []string `json:"apt,omitempty"`
	// Conda lists conda match specs, optionally "-c channel::spec".
	Conda []string `json:"conda,omitempty"`
	// Pip lists PEP 508 requirement specifiers.
	Pip []string `json:"pip,omitempty"`
	// Containerfile is raw mode: the user's own Containerfile. It excludes
	// Base, BaseCredentials and the package lists; registry credentials for
	// its FROM images go to [Job.PullAuth].
	Containerfile string `json:"containerfile,omitempty"`
}

// Raw reports whether s is in raw mode (it has a Containerfile).
func (s *Spec) Raw() bool { return s.Containerfile != "" }

// Validate checks the spec and returns a *core.ValidationError (matching
// core.ErrInvalid) naming every bad field and every bad package line, or nil.
// Field names are the JSON names; messages about lines start with "line N:"
// (counting from 1, blank and comment lines included).
func (s *Spec) Validate() error {
	v := &core.ValidationError{}
	switch {
	case s.Target == "":
		v.Add("target", "required")
	case len(s.Target) > MaxTargetLength || !repoNameRE.MatchString(s.Target):
		v.Add("target", "must be lower-case path components of letters and digits separated by '.', '_', '__' or '-', joined by '/', at most %d characters", MaxTargetLength)
	case !strings.Contains(s.Target, "/"):
		v.Add("target", "must be namespace/name")
	}
	switch {
	case s.Tag == "":
		v.Add("tag", "required")
	case !tagRE.MatchString(s.Tag):
		v.Add("tag", "must be letters, digits, '_', '.' and '-', not starting with '.' or '-'")
	case len(s.Tag) > maxTagLength-specTagSuffixLength:
		v.Add("tag", "must be at most %d characters (the unique tag adds %d)", maxTagLength-specTagSuffixLength, specTagSuffixLength)
	}
	if s.Raw() {
		s.validateRaw(v)
	} else {
		s.validatePackages(v)
	}
	return v.Err()
}

// validatePackages checks a package-mode spec.
func (s *Spec) validatePackages(v *core.ValidationError) {
	if s.Base == "" {
		v.Add("base", "required (or give a containerfile)")
	} else if _, err := parseBase(s.Base); err != nil {
		v.Add("base", "%v", err)
	}
	if s.BaseCredentials != nil {
		s.BaseCredentials.check(v, "base_credentials")
	}
	checkLines(v, "apt", s.APT, checkAPT)
	checkLines(v, "conda", s.Conda, checkConda)
	checkLines(v, "pip", s.Pip, checkPip)
	if len(cleanLines(s.APT))+len(cleanLines(s.Conda))+len(cleanLines(s.Pip)) == 0 && v.Empty() {
		v.Add("packages", "name at least one apt, conda or pip package (or give a containerfile)")
	}
}

// validateRaw checks a raw-mode spec.
func (s *Spec) validateRaw(v *core.ValidationError) {
	for field, set := range map[string]bool{
		"base": s.Base != "", "base_credentials": s.BaseCredentials != nil,
		"apt": len(s.APT) > 0, "conda": len(s.Conda) > 0, "pip": len(s.Pip) > 0,
	} {
		if set {
			v.Add(field, "not allowed with a containerfile")
		}
	}
	switch {
	case len(s.Containerfile) > MaxContainerfileSize:
		v.Add("containerfile", "larger than %d bytes", MaxContainerfileSize)
		return
	case !utf8.ValidString(s.Containerfile):
		v.Add("containerfile", "is not valid UTF-8")
		return
	}
	for i, line := range strings.Split(s.Containerfile, "\n") {
		line = strings.TrimSuffix(line, "\r")
		if strings.ContainsFunc(line, func(r rune) bool { return r != '\t' && (r < 0x20 || r == 0x7f) }) {
			v.Add("containerfile", "line %d: contains a control character", i+1)
		}
	}
}

// parseBase parses a base image reference. Docker Hub short names
// ("ubuntu:24.04") are accepted and made explicit.
func parseBase(s string) (name.Reference, error) {
	if strings.TrimSpace(s) != s {
		return nil, errors.New("must not have blanks around it")
	}
	ref, err := name.ParseReference(s)
	if err != nil {
		return nil, fmt.Errorf("invalid image reference %q: %w", s, err)
	}
	return ref, nil
}

// refString is the full form of a reference, with Docker Hub spelled
// "docker.io" as users know it.
func refString(ref name.Reference) string {
	full := ref.Name()
	if rest, ok := strings.CutPrefix(full, name.DefaultRegistry+"/"); ok {
		return "docker.io/" + rest
	}
	return full
}

// canonicalSpec is the versioned form of a spec that [Spec.SpecDigest]
// hashes: what changes the build, without credentials, comments and blanks.
type canonicalSpec struct {
	Version       int      `json:"v"`
	Target        string   `json:"target"`
	Tag           string   `json:"tag"`
	Base          string   `json:"base"`
	APT           []string `json:"apt"`
	Conda         []string `json:"conda"`
	Pip           []string `json:"pip"`
	Containerfile string   `json:"containerfile"`
}

// SpecDigest returns the hex SHA-256 of the spec's canonical JSON: target,
// tag, base (in its full form when it parses), the meaningful package lines
// (cleaned of blanks and comments, in order) and the Containerfile. It
// excludes the credentials. Equal builds have equal digests; any change to
// what is built changes it.
func (s *Spec) SpecDigest() string {
	base := s.Base
	if ref, err := parseBase(s.Base); err == nil && s.Base != "" {
		base = refString(ref)
	}
	c := canonicalSpec{
		Version: 1, Target: s.Target, Tag: s.Tag, Base: base,
		APT: nonNil(cleanLines(s.APT)), Conda: nonNil(cleanLines(s.Conda)), Pip: nonNil(cleanLines(s.Pip)),
		Containerfile: s.Containerfile,
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(c); err != nil {
		panic(fmt.Sprintf("build: encoding a canonical spec: %v", err)) // strings and slices always encode
	}
	sum := sha256.Sum256(bytes.TrimSuffix(buf.Bytes(), []byte("\n")))
	return hex.EncodeToString(sum[:])
}

// UniqueTag is the tag that identifies this spec: "<tag>-<first 8 hex digits
// of SpecDigest>".
func (s *Spec) UniqueTag() string { return s.Tag + "-" + s.SpecDigest()[:8] }

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
