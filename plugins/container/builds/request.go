package builds

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/core"
	"github.com/berth-dev/berth/plugins/container/build"
)

// DefaultTag is the tag of a build whose request names none.
const DefaultTag = "latest"

// Lines is a package list: a JSON array of lines, or one string holding one
// package per line (the text box of a form, see build.SplitLines).
type Lines []string

// UnmarshalJSON accepts an array of strings or a string.
func (l *Lines) UnmarshalJSON(b []byte) error {
	var text string
	if err := json.Unmarshal(b, &text); err == nil {
		*l = build.SplitLines(text)
		return nil
	}
	var lines []string
	if err := json.Unmarshal(b, &lines); err != nil {
		return errors.New("Expected a list of strings, or a string with one package per line.")
	}
	*l = lines
	return nil
}

// Credentials are a user name and password (or token) for a registry.
type Credentials struct {
	Username string `json:"username" doc:"User name at the base image's registry."`
	Password string `json:"password" doc:"Password or token; stored encrypted, never shown."`
}

// Request is the body of a build request (POST /api/v1/builds/) and of a
// rebuild, where every field is optional and changes the previous build's.
//
// A build is either a base image plus packages, or a raw Containerfile
// (with, optionally, a build context uploaded beside it as multipart part
// "context").
type Request struct {
	Target string `json:"target" api:"required" doc:"Repository the image is pushed to, namespace/name; pushing there needs the push permission on the namespace."`
	Tag    string `json:"tag" doc:"Tag the image is pushed to (default latest); the build also pushes a unique tag, <tag>-<8 hex digits of the spec digest>."`
	Base   string `json:"base" doc:"Base image: any registry's reference (docker.io/library/python:3.12), or an image in Berth by its name (team/base:1). A name without a registry host is Berth's when Berth serves it, else Docker Hub's."`
	// BaseCredentials pull the base image; write-only.
	BaseCredentials *Credentials `json:"base_credentials" api:"writeonly" doc:"Pull secret of the base image's registry: stored encrypted, never shown. In a rebuild, the previous build's stays unless given (null removes it) or the base moves to another registry."`
	APT             Lines        `json:"apt" doc:"Debian packages: a list, or a text with one package per line (name, name=version, name/release)."`
	Conda           Lines        `json:"conda" doc:"Conda match specifications, one per line; \"-c channel::spec\" takes the package from a channel."`
	Pip             Lines        `json:"pip" doc:"PEP 508 requirement specifiers, one per line."`
	Containerfile   string       `json:"containerfile" doc:"A raw Containerfile instead of base and packages; a build context may be uploaded with it (multipart/form-data part \"context\", a tar archive, gzip-compressed or not)."`
}

// spec is the build spec of a create request.
func (r *Request) spec() build.Spec {
	s := build.Spec{
		Target: r.Target, Tag: r.Tag, Base: r.Base,
		APT: r.APT, Conda: r.Conda, Pip: r.Pip, Containerfile: r.Containerfile,
	}
	if s.Tag == "" {
		s.Tag = DefaultTag
	}
	if r.BaseCredentials != nil {
		s.BaseCredentials = &build.Credentials{Username: r.BaseCredentials.Username, Password: r.BaseCredentials.Password}
	}
	return s
}

// merge applies the fields a rebuild request gave to a previous spec.
func (r *Request) merge(prev build.Spec, given api.Fields) build.Spec {
	s := prev
	if given.Has("target") {
		s.Target = r.Target
	}
	if given.Has("tag") {
		s.Tag = r.Tag
		if s.Tag == "" {
			s.Tag = DefaultTag
		}
	}
	if given.Has("base") {
		s.Base = r.Base
	}
	if given.Has("apt") {
		s.APT = r.APT
	}
	if given.Has("conda") {
		s.Conda = r.Conda
	}
	if given.Has("pip") {
		s.Pip = r.Pip
	}
	if given.Has("containerfile") {
		s.Containerfile = r.Containerfile
	}
	s.BaseCredentials = nil
	if given.Has("base_credentials") && r.BaseCredentials != nil {
		s.BaseCredentials = &build.Credentials{Username: r.BaseCredentials.Username, Password: r.BaseCredentials.Password}
	}
	return s
}

// storedSpec is the JSON of a spec, as stored with a build: build.Spec's
// own JSON form, which leaves the credentials out.
func storedSpec(s build.Spec) (string, error) {
	b, err := json.Marshal(s)
	if err != nil {
		return "", fmt.Errorf("encode build spec: %w", err)
	}
	return string(b), nil
}

// spec decodes the stored spec of a build.
func (b *Build) spec() (build.Spec, error) {
	var s build.Spec
	if err := json.Unmarshal([]byte(b.Spec), &s); err != nil {
		return s, fmt.Errorf("build %s: decode spec: %w", b.ID, err)
	}
	return s, nil
}

// sealCredentials seals credentials for storage.
func sealCredentials(s *core.Store, c *build.Credentials) (string, error) {
	if c == nil {
		return "", nil
	}
	raw, err := json.Marshal(Credentials{Username: c.Username, Password: c.Password})
	if err != nil {
		return "", err
	}
	return s.Secrets().Seal(string(raw))
}

// openCredentials opens sealed credentials; "" is none.
func openCredentials(s *core.Store, sealed string) (*build.Credentials, error) {
	if sealed == "" {
		return nil, nil
	}
	raw, err := s.Secrets().Open(sealed)
	if err != nil {
		return nil, fmt.Errorf("open the base image's credentials: %w", err)
	}
	var c Credentials
	if err := json.Unmarshal([]byte(raw), &c); err != nil {
		return nil, fmt.Errorf("decode the base image's credentials: %w", err)
	}
	return &build.Credentials{Username: c.Username, Password: c.Password}, nil
}
