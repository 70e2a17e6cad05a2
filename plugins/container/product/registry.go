package product

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/auth"
	"github.com/berth-dev/berth/core"
	"github.com/berth-dev/berth/plugins/container"
)

// The registry API: what a script or an HPC job needs to push and pull
// (Rescale's container registry module): the host, a login token for
// podman/docker login, repositories, images by "repo:tag" with a status,
// and deletes.

var registryTags = []string{"Registry"}

// RegistryView tells how to log in to the registry.
type RegistryView struct {
	Registry string `json:"registry" doc:"host[:port] to give podman login and to start image names with."`
	URL      string `json:"url" doc:"The server's public URL."`
	Username string `json:"username" doc:"The login user: the caller."`
	Login    string `json:"login" doc:"A podman login command (the password is a registry token)."`
}

// RegistryToken is a registry login token.
type RegistryToken struct {
	Registry  string     `json:"registry"`
	Username  string     `json:"username"`
	Token     string     `json:"token" doc:"The password for podman/docker login; shown once."`
	ExpiresAt *time.Time `json:"expires_at" doc:"When the token stops working: ask for a new one before."`
}

type tokenRequest struct {
	ExpiresIn int64 `json:"expires_in" doc:"Lifetime in seconds (default: the server's registry token lifetime, at most 30 days)."`
}

// RepoRequest creates a repository.
type RepoRequest struct {
	Name string `json:"name" api:"required" doc:"The image name: [namespace/]name."`
}

// RepoView is a repository of the registry API.
type RepoView struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	Created   bool   `json:"created" doc:"false when it existed already."`
	Push      string `json:"push" doc:"What to tag an image as to push it here: host/name:TAG."`
}

// ImageStatus is the status of an image "repo:tag".
type ImageStatus struct {
	Image  string     `json:"image" doc:"repo:tag or repo@digest, as asked."`
	Name   string     `json:"name"`
	Tag    string     `json:"tag"`
	Status string     `json:"status" enum:"PENDING,READY,FAILED" doc:"READY: pullable; PENDING: a build is making it; FAILED: its build failed."`
	Digest string     `json:"digest" doc:"The manifest digest (when READY)."`
	Pull   string     `json:"pull" doc:"host/repo:tag"`
	Build  *BuildInfo `json:"build" doc:"The newest build of the image, if a build made (or makes) it."`
}

// maxRegistryTokenLifetime bounds the lifetime a script may ask for.
const maxRegistryTokenLifetime = 30 * 24 * time.Hour

func (s *Service) registryRoutes(r *api.Router) {
	add := func(method, path, id, summary, desc string, params []api.Param, req, resp any, status int, h echo.HandlerFunc) {
		r.Add(api.Operation{Method: method, Path: path, ID: "registry_" + id, Tags: registryTags, Summary: summary,
			Description: desc, Params: params, Request: req, Response: resp, Status: status}, h)
	}
	ref := api.Param{Name: "ref", In: "path", Doc: "repo:tag or repo@sha256:…, slashes of the repository name included."}
	add(http.MethodGet, registryRoot, "read", "The registry host and login user", "", nil, nil, RegistryView{}, 0, s.getRegistry)
	add(http.MethodPost, registryRoot+"token/", "token_create", "A registry login token",
		"A token to give podman/docker login as the password, with its expiry. POST again for a new one before it expires.",
		nil, tokenRequest{}, RegistryToken{}, http.StatusCreated, s.createRegistryToken)
	add(http.MethodGet, registryRoot+"repos/", "repos_list", "The repositories the caller may see (names)", "", nil, nil, []string{}, 0, s.listRepos)
	add(http.MethodPost, registryRoot+"repos/", "repos_create", "Create a repository (idempotent)",
		"Creates the namespace (when new), repository and distribution of the name, as a first push would (push on the namespace). Asking again is harmless: the answer says created: false.",
		nil, RepoRequest{}, RepoView{}, http.StatusCreated, s.createRepo)
	add(http.MethodGet, imagesRoot, "images_list", `The images the caller may see, as "repo:tag"`, "",
		[]api.Param{{Name: "repo", Doc: "Only the tags of this repository."}}, nil, []string{}, 0, s.listImageRefs)
	add(http.MethodGet, imagesRoot+":ref/", "images_read", "The status of an image",
		"READY when repo:tag resolves; PENDING while a build makes it; FAILED when its build failed; 404 when none of these.",
		[]api.Param{ref}, nil, ImageStatus{}, 0, s.getImageStatus)
	add(http.MethodDelete, imagesRoot+":ref/", "images_delete", "Delete an image",
		"repo@digest removes the image with all its tags; repo:tag removes the tag, and the image when no other tag names it. In a task (delete on the namespace); afterwards the reference is gone from /v2/.",
		[]api.Param{ref}, nil, api.TaskAccepted{}, http.StatusAccepted, s.deleteImageRef)
}

func (s *Service) getRegistry(c echo.Context) error {
	p, err := requireUser(c.Request().Context())
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, RegistryView{
		Registry: s.host, URL: s.publicURL, Username: p.Username,
		Login: fmt.Sprintf("podman login %s -u %s", s.host, p.Username),
	})
}

func (s *Service) createRegistryToken(c echo.Context) error {
	ctx := c.Request().Context()
	var body tokenRequest
	if _, err := api.Bind(c, &body); err != nil {
		return err
	}
	if body.ExpiresIn < 0 || time.Duration(body.ExpiresIn)*time.Second > maxRegistryTokenLifetime {
		return core.Invalid("expires_in", "Must be between 0 (the default lifetime) and %d seconds.", int64(maxRegistryTokenLifetime/time.Second))
	}
	p, err := requireUser(ctx)
	if err != nil {
		return err
	}
	t, err := s.auth.CreateToken(ctx, p.UserID, auth.TokenInput{
		Name: "registry login", Kind: auth.TokenRegistry, Lifetime: time.Duration(body.ExpiresIn) * time.Second,
	})
	if err != nil {
		return err
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(http.StatusCreated, RegistryToken{Registry: s.host, Username: p.Username, Token: t.Value, ExpiresAt: apiTimePtr(t.ExpiresAt)})
}

func (s *Service) listRepos(c echo.Context) error {
	ctx := c.Request().Context()
	if _, err := requireUser(ctx); err != nil {
		return err
	}
	v, err := s.visible(ctx)
	if err != nil {
		return err
	}
	names := []string{}
	for offset := 0; ; offset += core.MaxLimit {
		list, total, err := s.plugin.ListExecutionEnvironments(ctx, core.ListQuery{Limit: core.MaxLimit, Offset: offset}, v)
		if err != nil {
			return err
		}
		for _, ee := range list {
			names = append(names, ee.Name)
		}
		if int64(offset+core.MaxLimit) >= total {
			break
		}
	}
	return c.JSON(http.StatusOK, names)
}

func (s *Service) createRepo(c echo.Context) error {
	ctx := c.Request().Context()
	var body RepoRequest
	if _, err := api.Bind(c, &body); err != nil {
		return err
	}
	if err := container.ValidateName(body.Name); err != nil {
		return core.Invalid("name", "%s", strings.TrimPrefix(err.Error(), "invalid repository name "))
	}
	p, err := requireUser(ctx)
	if err != nil {
		return err
	}
	if err := s.require(ctx, auth.ActionPush, body.Name); err != nil {
		return err
	}
	_, err = s.plugin.GetExecutionEnvironment(ctx, body.Name)
	existed := err == nil
	if err != nil && !errors.Is(err, container.ErrNameUnknown) {
		return err
	}
	if _, err := s.plugin.CreateImage(ctx, identity(p), body.Name); err != nil {
		return err
	}
	ns, _, _ := strings.Cut(body.Name, "/")
	return c.JSON(http.StatusCreated, RepoView{Name: body.Name, Namespace: ns, Created: !existed, Push: s.pullName(body.Name) + ":TAG"})
}

func (s *Service) listImageRefs(c echo.Context) error {
	ctx := c.Request().Context()
	repo := ""
	for k, vs := range c.QueryParams() {
		if k != "repo" {
			return core.Invalid(k, "Unknown parameter; the only filter is repo.")
		}
		repo = vs[len(vs)-1]
	}
	if repo != "" {
		if err := container.ValidateName(repo); err != nil {
			return core.Invalid("repo", "Not a repository name.")
		}
	}
	if _, err := requireUser(ctx); err != nil {
		return err
	}
	v, err := s.visible(ctx)
	if err != nil {
		return err
	}
	refs, err := s.plugin.ImageRefs(ctx, v, repo)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, refs)
}

// imageRef is a parsed "repo:tag" or "repo@digest".
type imageRef struct {
	name, tag, digest string
}

func parseImageRef(s string) (imageRef, error) {
	var r imageRef
	if name, d, ok := strings.Cut(s, "@"); ok {
		if _, err := container.ParseDigest(d); err != nil {
			return r, core.Invalid("ref", "%q: the digest after '@' must be sha256:<64 hex digits>.", s)
		}
		r.name, r.digest = name, d
	} else {
		i := strings.LastIndexByte(s, ':')
		if i < 0 || strings.Contains(s[i:], "/") {
			return r, core.Invalid("ref", "%q: want repo:tag or repo@sha256:…", s)
		}
		r.name, r.tag = s[:i], s[i+1:]
		if err := container.ValidateTag(r.tag); err != nil {
			return r, core.Invalid("ref", "%q: not a valid tag.", r.tag)
		}
	}
	if err := container.ValidateName(r.name); err != nil {
		return r, core.Invalid("ref", "%q: not a valid repository name (lowercase letters, digits, '.', '_', '-', '/').", r.name)
	}
	return r, nil
}

func (s *Service) getImageStatus(c echo.Context) error {
	ctx := c.Request().Context()
	raw := nameParam(c, "ref")
	ref, err := parseImageRef(raw)
	if err != nil {
		return err
	}
	if _, err := requireUser(ctx); err != nil {
		return err
	}
	if err := s.require(ctx, auth.ActionPull, ref.name); err != nil {
		return err
	}
	st := ImageStatus{Image: raw, Name: ref.name, Tag: ref.tag}
	if ref.tag != "" {
		st.Pull = s.pullName(ref.name) + ":" + ref.tag
	} else {
		st.Pull = s.pullName(ref.name) + "@" + ref.digest
	}
	m, err := s.plugin.GetManifest(ctx, ref.name, ref.String())
	switch {
	case err == nil:
		st.Status, st.Digest = StatusReady, m.Digest
	case !errors.Is(err, core.ErrNotFound):
		return err
	}
	if s.builds != nil && ref.tag != "" {
		b, found, err := s.builds.LatestBuild(ctx, ref.name, ref.tag)
		if err != nil {
			return err
		}
		if found {
			st.Build = b
			switch {
			case b.Status == StatusPending:
				// An image being built is not ready, whatever an older
				// build of the tag left.
				st.Status, st.Digest = StatusPending, ""
			case st.Status == "" && b.Status == StatusFailed:
				st.Status = StatusFailed
			}
		}
	}
	if st.Status == "" {
		return core.NotFound("image", raw)
	}
	return c.JSON(http.StatusOK, st)
}

// String is the tag or digest of the reference.
func (r imageRef) String() string {
	if r.digest != "" {
		return r.digest
	}
	return r.tag
}

func (s *Service) deleteImageRef(c echo.Context) error {
	ctx := c.Request().Context()
	raw := nameParam(c, "ref")
	ref, err := parseImageRef(raw)
	if err != nil {
		return err
	}
	if _, err := requireUser(ctx); err != nil {
		return err
	}
	if err := s.require(ctx, auth.ActionDelete, ref.name); err != nil {
		return err
	}
	ee, err := s.plugin.GetExecutionEnvironment(ctx, ref.name)
	if err != nil {
		return err
	}
	m, err := s.plugin.GetManifest(ctx, ref.name, ref.String())
	if err != nil {
		if errors.Is(err, core.ErrNotFound) {
			return core.NotFound("image", raw)
		}
		return err
	}
	// A digest, or the last tag of an image, removes the image; a tag of
	// an image that other tags name removes the tag alone.
	sel := container.Selection{Digests: []string{m.Digest}}
	if ref.tag != "" && len(m.Tags) > 1 {
		sel = container.Selection{Tags: []string{ref.tag}}
	}
	t, err := s.remove(ctx, ee, sel)
	if err != nil {
		return err
	}
	return api.Accepted(c, t)
}
