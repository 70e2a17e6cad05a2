package builds

import (
	"context"
	"errors"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/berth-dev/berth/core"
	"github.com/berth-dev/berth/plugins/container"
)

// ownBase tells whether a base image reference names an image in Berth
// itself, and returns its name with its tag or digest ("team/base:1"):
//
//   - a reference whose registry host is Berth's (the host builds reach it
//     at, or the public URL's host) is Berth's;
//   - a reference without a registry host ("team/base:1", "ubuntu:24.04")
//     is Berth's when Berth serves an image of that name, and Docker Hub's
//     otherwise, as container tools read it;
//   - any other reference is another registry's.
//
// ref must have passed build.Spec.Validate.
func (s *Service) ownBase(ctx context.Context, ref string) (string, error) {
	repo, rest := splitRef(ref)
	host, path, hasHost := strings.Cut(repo, "/")
	if hasHost && (strings.ContainsAny(host, ".:") || host == "localhost") {
		if host != s.registry && host != s.publicHost {
			return "", nil
		}
		return path + rest, nil
	}
	if _, _, err := s.images.ListTags(ctx, repo, container.ListOptions{Limit: 1}); err != nil {
		if errors.Is(err, core.ErrNotFound) {
			return "", nil // not Berth's: Docker Hub
		}
		return "", err
	}
	return repo + rest, nil
}

// splitRef splits a reference into its repository (with host) and its
// ":tag" and/or "@digest" suffix.
func splitRef(ref string) (repo, rest string) {
	if i := strings.IndexByte(ref, '@'); i >= 0 {
		repo, rest = ref[:i], ref[i:]
	} else {
		repo = ref
	}
	if i := strings.LastIndexByte(repo, ':'); i >= 0 && !strings.Contains(repo[i:], "/") {
		repo, rest = repo[:i], repo[i:]+rest
	}
	return repo, rest
}

// fullRef is the full form of another registry's reference, with Docker
// Hub spelled docker.io as users know it.
func fullRef(ref string) string {
	r, err := name.ParseReference(ref)
	if err != nil {
		return ref
	}
	full := r.Name()
	if rest, ok := strings.CutPrefix(full, name.DefaultRegistry+"/"); ok {
		return "docker.io/" + rest
	}
	return full
}

// registryOf is the registry host of a reference ("index.docker.io" for
// Docker Hub), or "".
func registryOf(ref string) string {
	r, err := name.ParseReference(ref)
	if err != nil {
		return ""
	}
	return r.Context().RegistryStr()
}
