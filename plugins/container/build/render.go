package build

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/berth-dev/berth/core"
)

// Commands of the generated Containerfile. Package lines are appended to the
// install commands as separate arguments of exec-form RUN instructions, so no
// shell ever parses them.
var (
	aptInstall   = []string{"apt-get", "install", "-y", "--no-install-recommends"}
	condaInstall = []string{"conda", "install", "--yes"}
	pipInstall   = []string{"pip", "install", "--no-cache-dir"}
)

// userRE is what a base image's USER may be for [Spec.Render] to restore it:
// a user name or ID, optionally ":group". The USER instruction expands
// variables and a newline would start a new instruction, so anything else is
// refused rather than escaped.
var userRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,255}(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,255})?$`)

// Render returns the Containerfile that builds s: the spec's own in raw mode,
// otherwise one generated from the base and the packages. baseUser is the
// base image's configured user (its config's User, see [Runner.BaseUser]);
// it is ignored in raw mode.
//
// A generated Containerfile looks like this (for a base running as "1000"):
//
//	FROM docker.io/library/python:3.12
//	USER root
//	ARG DEBIAN_FRONTEND=noninteractive
//	RUN apt-get update
//	RUN ["apt-get", "install", "-y", "--no-install-recommends", "curl", "git=1:2.39.2-1.1"]
//	RUN rm -rf /var/lib/apt/lists/*
//	RUN ["conda", "install", "--yes", "-c", "conda-forge", "conda-forge::numpy==1.17*"]
//	RUN conda clean -afy
//	RUN ["pip", "install", "--no-cache-dir", "requests ; python_version < \"3.11\""]
//	USER 1000
//
// Package lines appear cleaned (without blanks and comments) and in order.
// Steps with package arguments use the exec (JSON array) form, so that no
// shell parses a package line; the constant steps use the shell form. The
// steps are separate RUN instructions rather than one "&&" chain: the
// [Runner] builds with --layers=false, so they still commit as one layer.
// When the base runs as root (its user is empty, "root" or "0"), no USER
// instruction is written at all, so the image keeps the base's setting
// exactly; otherwise the build switches to root and back to baseUser.
//
// Render validates s first and returns its *core.ValidationError; a base
// user that cannot be restored safely is reported under "base".
func (s *Spec) Render(baseUser string) (string, error) {
	if err := s.Validate(); err != nil {
		return "", err
	}
	if s.Raw() {
		return s.Containerfile, nil
	}
	ref, err := parseBase(s.Base)
	if err != nil {
		return "", core.Invalid("base", "%v", err)
	}
	if baseUser != "" && !userRE.MatchString(baseUser) {
		return "", core.Invalid("base", "the base image runs as user %q, which cannot be restored in a Containerfile: it must be a user name or ID, optionally with :group", truncate(baseUser, 100))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "FROM %s\n", refString(ref))
	switchUser := !isRoot(baseUser)
	if switchUser {
		b.WriteString("USER root\n")
	}
	if apt := cleanLines(s.APT); len(apt) > 0 {
		b.WriteString("ARG DEBIAN_FRONTEND=noninteractive\n")
		b.WriteString("RUN apt-get update\n")
		writeExec(&b, append(clone(aptInstall), apt...))
		b.WriteString("RUN rm -rf /var/lib/apt/lists/*\n")
	}
	if conda := cleanLines(s.Conda); len(conda) > 0 {
		var channels, specs []string
		seen := map[string]bool{}
		for _, line := range conda {
			cs, err := parseConda(line)
			if err != nil { // Validate accepted it: cannot happen
				return "", core.Invalid("conda", "%s: %v", quoteLine(line), err)
			}
			if cs.channel != "" && !seen[cs.channel] {
				seen[cs.channel] = true
				channels = append(channels, "-c", cs.channel)
			}
			specs = append(specs, cs.spec)
		}
		writeExec(&b, append(append(clone(condaInstall), channels...), specs...))
		b.WriteString("RUN conda clean -afy\n")
	}
	if pip := cleanLines(s.Pip); len(pip) > 0 {
		writeExec(&b, append(clone(pipInstall), pip...))
	}
	if switchUser {
		fmt.Fprintf(&b, "USER %s\n", baseUser)
	}
	return b.String(), nil
}

// isRoot reports whether a configured user means root: empty (the default),
// "root" or "0", with no group or the root group.
func isRoot(user string) bool {
	u, g, _ := strings.Cut(user, ":")
	return (u == "" || u == "root" || u == "0") && (g == "" || g == "root" || g == "0")
}

// writeExec writes an exec-form RUN instruction: a JSON array of strings,
// written with ", " between them for readability. The Containerfile parser
// decodes it with encoding/json, so every byte of every argument survives;
// validation keeps the arguments to printable ASCII, so the array is always
// one line.
func writeExec(b *strings.Builder, args []string) {
	b.WriteString("RUN [")
	for i, a := range args {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(jsonString(a))
	}
	b.WriteString("]\n")
}

// jsonString encodes s as a JSON string without HTML escaping.
func jsonString(s string) string {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string always encodes
	return strings.TrimSuffix(buf.String(), "\n")
}

func clone(s []string) []string { return append([]string(nil), s...) }

// truncate shortens s for messages.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// Job returns the job that builds s with a [Runner]: its Containerfile
// rendered for baseUser (see [Spec.Render]), pushed to
// "<registry>/<target>:<tag>" and "<registry>/<target>:<unique tag>", and,
// when the spec has base credentials, pulling the base with them. registry is
// the host[:port] of the registry that receives the image (Berth itself).
// The caller adds Job.PushAuth, and Job.Context in raw mode.
func (s *Spec) Job(registry, baseUser string) (Job, error) {
	containerfile, err := s.Render(baseUser)
	if err != nil {
		return Job{}, err
	}
	if _, err := name.NewRegistry(registry, name.StrictValidation); err != nil || registry == "" || strings.ContainsAny(registry, "/@") {
		return Job{}, fmt.Errorf("build: invalid destination registry %q: want host[:port]", registry)
	}
	repo := registry + "/" + s.Target
	job := Job{
		Containerfile: containerfile,
		Destinations:  []string{repo + ":" + s.Tag, repo + ":" + s.UniqueTag()},
	}
	if s.BaseCredentials != nil && !s.Raw() {
		ref, err := parseBase(s.Base)
		if err != nil {
			return Job{}, core.Invalid("base", "%v", err)
		}
		job.PullAuth = Auth{ref.Context().RegistryStr(): *s.BaseCredentials}
	}
	return job, nil
}
