package product

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"
	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/api/errcode"
	"github.com/berth-dev/berth/auth"
	"github.com/berth-dev/berth/core"
	"github.com/berth-dev/berth/plugins/container"
)

// MaxReadmeSize bounds a readme (1 MiB of markdown).
const MaxReadmeSize = 1 << 20

var eeTags = []string{"Execution environments"}

// eeListSpec declares the filters of the execution-environment list.
var eeListSpec = api.ListSpec{Fields: map[string]api.Field{
	"name":              {Kind: api.KindString, Lookups: api.StringLookups(), Order: true, Doc: "The image name."},
	"namespace":         {Kind: api.KindString, Lookups: []string{api.Exact, api.In}, Order: true},
	"remote":            {Kind: api.KindBool, Lookups: api.BoolLookups(), Doc: "true: mirrored (remote) execution environments; false: local ones."},
	"private":           {Kind: api.KindBool, Lookups: api.BoolLookups()},
	"pulp_created":      {Kind: api.KindTime, Lookups: api.TimeLookups(), Order: true},
	"pulp_last_updated": {Kind: api.KindTime, Lookups: api.TimeLookups(), Order: true},
}}

// pageSpec is the list spec of sub-lists that only page.
var pageSpec = api.ListSpec{}

// imagesSpec declares the filters of an execution environment's images.
var imagesSpec = api.ListSpec{Fields: map[string]api.Field{
	"tag":    {Kind: api.KindString, Lookups: []string{api.Exact}, Doc: "Only the image this tag names."},
	"digest": {Kind: api.KindString, Lookups: []string{api.Exact}, Doc: "Only the image with this digest."},
}}

var nameParamDoc = api.Param{Name: "name", In: "path", Doc: "The image name, slashes included ([namespace/]name)."}

func (s *Service) eeRoutes(r *api.Router) {
	item := eeRoot + ":name/"
	content := item + "_content/"
	add := func(method, path, id, summary, desc string, params []api.Param, req, resp any, status int, h echo.HandlerFunc) {
		if strings.Contains(path, ":name") {
			params = append([]api.Param{nameParamDoc}, params...)
		}
		r.Add(api.Operation{Method: method, Path: path, ID: "execution_environments_" + id, Tags: eeTags, Summary: summary,
			Description: desc, Params: params, Request: req, Response: resp, Status: status}, h)
	}
	add(http.MethodGet, eeRoot, "list", "List execution environments",
		"The images the caller may see: public ones, and private ones of namespaces where the caller holds a role.",
		eeListSpec.Params(), nil, api.Page[EEView]{}, 0, s.listEEs)
	add(http.MethodGet, item, "read", "Inspect an execution environment",
		"Names hold slashes as they are: /api/v1/execution-environments/team/ee/.", nil, nil, EEDetail{}, 0, s.getEE)
	add(http.MethodDelete, item, "delete", "Delete an execution environment",
		"Deletes its distribution, repository (every version) and the remote it mirrors, in a task (delete on the namespace).",
		nil, nil, api.TaskAccepted{}, http.StatusAccepted, s.deleteEE)
	add(http.MethodGet, content+"readme/", "readme_read", "The readme (markdown, as written)",
		"Send Accept: text/markdown to get the markdown alone.", nil, nil, ReadmeView{}, 0, s.getReadme)
	add(http.MethodPut, content+"readme/", "readme_update", "Replace the readme",
		fmt.Sprintf(`Body {"text": "…"}, or the markdown itself as text/markdown or text/plain; at most %d bytes (edit_readme on the namespace). Readmes are never synced from remotes.`, MaxReadmeSize),
		nil, readmeRequest{}, ReadmeView{}, 0, s.putReadme)
	add(http.MethodGet, content+"images/", "images_list", "List the images (manifests) of the latest version",
		"Tagged manifests and those no index lists, newest first; a multi-arch index lists its platform images.",
		imagesSpec.Params(), nil, api.Page[ImageView]{}, 0, s.listImages)
	add(http.MethodGet, content+"images/:digest/", "images_read", "The layers view of an image",
		"Its layers and the build history its config records.", nil, nil, ImageDetail{}, 0, s.getImage)
	add(http.MethodDelete, content+"images/:digest/", "images_delete", "Delete an image by digest",
		"Removes the manifest with every tag of it (and an index's platform images nothing else keeps) in a new repository version, in a task (delete on the namespace).",
		nil, nil, api.TaskAccepted{}, http.StatusAccepted, s.deleteImage)
	add(http.MethodGet, content+"tags/", "tags_list", "List the tags", "", pageSpec.Params(), nil, api.Page[TagView]{}, 0, s.listTags)
	add(http.MethodPost, content+"tags/", "tags_create", "Add a tag to an image",
		"In a task (tag on the namespace); the image keeps its other tags. A tag that names another image already is a conflict: move it with PUT.",
		nil, tagRequest{}, api.TaskAccepted{}, http.StatusAccepted, s.addTag)
	add(http.MethodPut, content+"tags/:tag/", "tags_update", "Point a tag at an image (move it)",
		"In a task (tag on the namespace); the image the tag named keeps its other tags.",
		nil, moveRequest{}, api.TaskAccepted{}, http.StatusAccepted, s.moveTag)
	add(http.MethodDelete, content+"tags/:tag/", "tags_delete", "Remove a tag",
		"In a task (untag on the namespace); the image stays, by digest and its other tags.",
		nil, nil, api.TaskAccepted{}, http.StatusAccepted, s.removeTag)
	add(http.MethodGet, content+"activity/", "activity_list", "The history of tag and image changes",
		"One entry per repository version that changed tags or manifests, newest first: the tags and manifests it added and removed, when and by whom. "+
			"A moved tag is removed (from the image it named) and added. The history is recorded as each version is made and kept with the image, "+
			"whatever versions retention prunes (retain_repo_versions, BERTH_PUSH_RETAIN_VERSIONS).",
		pageSpec.Params(), nil, api.Page[ActivityView]{}, 0, s.listActivity)
	add(http.MethodGet, content+"controllers/", "controllers_list", "Use in Controller: links with the image prefilled",
		"One link per configured controller (BERTH_CONTROLLER_URLS), for the tag or digest given, or the latest tag.",
		[]api.Param{{Name: "tag", Doc: "The tag to prefill."}, {Name: "digest", Doc: "The digest to prefill."}},
		nil, ControllersView{}, 0, s.listControllers)
}

// ee loads the execution environment of the request after checking the
// caller may do act on it.
func (s *Service) ee(c echo.Context, act auth.Action) (*container.ExecutionEnvironment, error) {
	ctx := c.Request().Context()
	name := nameParam(c, "name")
	if err := container.ValidateName(name); err != nil {
		return nil, core.Invalid("name", "%s", strings.TrimPrefix(err.Error(), "invalid repository name "))
	}
	if err := s.require(ctx, act, name); err != nil {
		return nil, err
	}
	return s.plugin.GetExecutionEnvironment(ctx, name)
}

func (s *Service) listEEs(c echo.Context) error {
	ctx := c.Request().Context()
	q, err := api.ParseList(c, eeListSpec)
	if err != nil {
		return err
	}
	v, err := s.visible(ctx)
	if err != nil {
		return err
	}
	list, total, err := s.plugin.ListExecutionEnvironments(ctx, q, v)
	if err != nil {
		return err
	}
	out := make([]EEView, len(list))
	for i := range list {
		if out[i], err = s.eeView(ctx, &list[i]); err != nil {
			return err
		}
	}
	return c.JSON(http.StatusOK, api.NewPage(c, q, total, out))
}

func (s *Service) getEE(c echo.Context) error {
	ee, err := s.ee(c, auth.ActionPull)
	if err != nil {
		return err
	}
	v, err := s.eeView(c.Request().Context(), ee)
	if err != nil {
		return err
	}
	d := EEDetail{EEView: v, UseInController: []ControllerLink{}, Links: EELinks{
		Readme: eeContentHref(ee.Name, "readme"), Images: eeContentHref(ee.Name, "images"),
		Tags: eeContentHref(ee.Name, "tags"), Activity: eeContentHref(ee.Name, "activity"),
	}}
	if v.Pull != nil {
		d.UseInController = s.controllerLinks(v.Pull.ByTag)
	}
	return c.JSON(http.StatusOK, d)
}

func (s *Service) deleteEE(c echo.Context) error {
	ee, err := s.ee(c, auth.ActionDelete)
	if err != nil {
		return err
	}
	t, err := s.dispatch(c.Request().Context(), TaskDeleteEE, ee, TaskArgs{Name: ee.Name})
	if err != nil {
		return err
	}
	return api.Accepted(c, t)
}

// ReadmeView is an execution environment's readme.
type ReadmeView struct {
	Text      string     `json:"text" doc:"Markdown, as written."`
	UpdatedAt *time.Time `json:"updated_at" doc:"null when there is no readme yet."`
	UpdatedBy string     `json:"updated_by"`
}

type readmeRequest struct {
	Text string `json:"text" api:"required" doc:"Markdown."`
}

func (s *Service) getReadme(c echo.Context) error {
	ee, err := s.ee(c, auth.ActionPull)
	if err != nil {
		return err
	}
	r, found, err := readmeOf(c.Request().Context(), s.store, ee.DistributionID)
	if err != nil {
		return err
	}
	if strings.Contains(c.Request().Header.Get(echo.HeaderAccept), "text/markdown") {
		return c.Blob(http.StatusOK, "text/markdown; charset=utf-8", []byte(r.Text))
	}
	v := ReadmeView{Text: r.Text, UpdatedBy: r.UpdatedBy}
	if found {
		t := apiTime(r.UpdatedAt)
		v.UpdatedAt = &t
	}
	return c.JSON(http.StatusOK, v)
}

func (s *Service) putReadme(c echo.Context) error {
	text, err := readReadme(c)
	if err != nil {
		return err
	}
	ee, err := s.ee(c, auth.ActionEditReadme)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	now := time.Now().UTC().Truncate(time.Microsecond)
	r := readme{DistributionID: ee.DistributionID, Text: text, UpdatedBy: principal(ctx).Username, CreatedAt: now, UpdatedAt: now}
	if err := saveReadme(ctx, s.store, r); err != nil {
		return err
	}
	t := apiTime(now)
	return c.JSON(http.StatusOK, ReadmeView{Text: text, UpdatedAt: &t, UpdatedBy: r.UpdatedBy})
}

// readReadme reads a readme from a JSON body ({"text": …}) or a markdown
// or plain text one, refusing more than MaxReadmeSize bytes of text.
func readReadme(c echo.Context) (string, error) {
	req := c.Request()
	body, err := io.ReadAll(io.LimitReader(req.Body, 2*MaxReadmeSize+4096))
	if err != nil {
		return "", fmt.Errorf("read request body: %w", err)
	}
	if len(body) > 2*MaxReadmeSize+4095 {
		return "", errcode.TooLarge.Errorf("The readme is larger than %d bytes.", MaxReadmeSize)
	}
	text := string(body)
	mt, _, _ := mime.ParseMediaType(req.Header.Get(echo.HeaderContentType))
	switch {
	case mt == "text/markdown" || mt == "text/plain":
	case mt == "" || mt == echo.MIMEApplicationJSON || strings.HasSuffix(mt, "+json"):
		var r readmeRequest
		if _, err := api.Decode(bytes.TrimSpace(body), false, &r); err != nil {
			return "", err
		}
		text = r.Text
	default:
		return "", errcode.UnsupportedMediaType.Errorf("Unsupported media type %q; send application/json ({\"text\": …}) or text/markdown.", mt)
	}
	if len(text) > MaxReadmeSize {
		return "", core.Invalid("text", "The readme is %d bytes; the limit is %d.", len(text), MaxReadmeSize)
	}
	if !utf8.ValidString(text) {
		return "", core.Invalid("text", "The readme must be UTF-8 text.")
	}
	return text, nil
}

// listOptions turns a parsed list query into the plugin's paging.
func listOptions(q core.ListQuery) container.ListOptions {
	return container.ListOptions{Limit: q.Limit, Offset: q.Offset}
}

func (s *Service) listImages(c echo.Context) error {
	q, err := api.ParseList(c, imagesSpec)
	if err != nil {
		return err
	}
	ee, err := s.ee(c, auth.ActionPull)
	if err != nil {
		return err
	}
	f := container.ImageFilter{}
	for _, fl := range q.Filters {
		switch fl.Field {
		case "tag":
			f.Tag = fl.Value.(string)
			if err := checkTag("tag", f.Tag); err != nil {
				return err
			}
		case "digest":
			f.Digest = fl.Value.(string)
			if _, err := container.ParseDigest(f.Digest); err != nil {
				return core.Invalid("digest", "Not a digest: want sha256:<64 hex digits>.")
			}
		}
	}
	list, total, err := s.plugin.ListImageManifests(c.Request().Context(), ee.Name, f, listOptions(q))
	if err != nil {
		return emptyIfUnserved(c, q, err)
	}
	out := make([]ImageView, len(list))
	for i, m := range list {
		out[i] = s.imageView(ee.Name, m)
	}
	return c.JSON(http.StatusOK, api.NewPage(c, q, total, out))
}

// emptyIfUnserved answers an empty page for an image whose distribution
// serves nothing (yet): a remote execution environment before its first
// sync, say.
func emptyIfUnserved(c echo.Context, q core.ListQuery, err error) error {
	if errors.Is(err, container.ErrNameUnknown) {
		return c.JSON(http.StatusOK, api.NewPage[any](c, q, 0, nil))
	}
	return err
}

// digestParam reads and checks the :digest parameter.
func digestParam(c echo.Context) (digest.Digest, error) {
	d, err := container.ParseDigest(nameParam(c, "digest"))
	if err != nil {
		return "", core.Invalid("digest", "Not a digest: want sha256:<64 hex digits>.")
	}
	return d, nil
}

func (s *Service) getImage(c echo.Context) error {
	d, err := digestParam(c)
	if err != nil {
		return err
	}
	ee, err := s.ee(c, auth.ActionPull)
	if err != nil {
		return err
	}
	out, err := s.imageDetail(c.Request().Context(), ee.Name, d)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, out)
}

// checkManifest answers 404 unless d is in the latest version of ee.
func (s *Service) checkManifest(ctx context.Context, ee *container.ExecutionEnvironment, d digest.Digest) error {
	_, err := s.plugin.GetManifest(ctx, ee.Name, d.String())
	if errors.Is(err, container.ErrNameUnknown) {
		return core.NotFound("image", ee.Name+"@"+d.String())
	}
	return err
}

func (s *Service) deleteImage(c echo.Context) error {
	d, err := digestParam(c)
	if err != nil {
		return err
	}
	ee, err := s.ee(c, auth.ActionDelete)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	if err := s.checkManifest(ctx, ee, d); err != nil {
		return err
	}
	t, err := s.remove(ctx, ee, container.Selection{Digests: []string{d.String()}})
	if err != nil {
		return err
	}
	return api.Accepted(c, t)
}

// TagView is a tag and the image it names.
type TagView struct {
	Name      string `json:"name"`
	Digest    string `json:"digest"`
	MediaType string `json:"media_type"`
	Pull      string `json:"pull" doc:"host/name:tag"`
	Href      string `json:"href" doc:"The image's layers view."`
}

func (s *Service) listTags(c echo.Context) error {
	q, err := api.ParseList(c, pageSpec)
	if err != nil {
		return err
	}
	ee, err := s.ee(c, auth.ActionPull)
	if err != nil {
		return err
	}
	list, total, err := s.plugin.ListTags(c.Request().Context(), ee.Name, listOptions(q))
	if err != nil {
		return emptyIfUnserved(c, q, err)
	}
	out := make([]TagView, len(list))
	for i, t := range list {
		out[i] = TagView{Name: t.Name, Digest: t.Digest, MediaType: t.MediaType, Pull: s.pullName(ee.Name) + ":" + t.Name,
			Href: eeContentHref(ee.Name, "images", t.Digest)}
	}
	return c.JSON(http.StatusOK, api.NewPage(c, q, total, out))
}

type tagRequest struct {
	Tag    string `json:"tag" api:"required"`
	Digest string `json:"digest" api:"required" doc:"The image to tag: sha256:…"`
}

type moveRequest struct {
	Digest string `json:"digest" api:"required" doc:"The image the tag is to name: sha256:…"`
}

// checkTag validates a tag for a field.
func checkTag(field, tag string) error {
	if err := container.ValidateTag(tag); err != nil {
		return core.Invalid(field, "Not a tag: up to 128 letters, digits, '_', '.' and '-', not starting with '.' or '-'.")
	}
	return nil
}

func (s *Service) addTag(c echo.Context) error {
	var body tagRequest
	if _, err := api.Bind(c, &body); err != nil {
		return err
	}
	return s.setTag(c, body.Tag, body.Digest, false)
}

func (s *Service) moveTag(c echo.Context) error {
	var body moveRequest
	if _, err := api.Bind(c, &body); err != nil {
		return err
	}
	return s.setTag(c, nameParam(c, "tag"), body.Digest, true)
}

// setTag checks and dispatches a tag change: a new tag (move=false) may not
// name another image already.
func (s *Service) setTag(c echo.Context, tag, dg string, move bool) error {
	verr := &core.ValidationError{}
	if err := checkTag("tag", tag); err != nil {
		verr.Add("tag", "%s", err.(*core.ValidationError).Fields["tag"][0])
	}
	d, err := container.ParseDigest(dg)
	if err != nil {
		verr.Add("digest", "Not a digest: want sha256:<64 hex digits>.")
	}
	if err := verr.Err(); err != nil {
		return err
	}
	ee, err := s.ee(c, auth.ActionTag)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	if err := s.checkManifest(ctx, ee, d); err != nil {
		return err
	}
	if !move {
		cur, err := s.plugin.GetManifest(ctx, ee.Name, tag)
		switch {
		case err == nil && cur.Digest != d.String():
			return core.Conflict("tag %q names %s already; move it with PUT %s", tag, cur.Digest, eeContentHref(ee.Name, "tags", tag))
		case err != nil && !errors.Is(err, core.ErrNotFound):
			return err
		}
	}
	t, err := s.dispatch(ctx, TaskTag, ee, TaskArgs{Name: ee.Name, Tag: tag, Digest: d.String()})
	if err != nil {
		return err
	}
	return api.Accepted(c, t)
}

func (s *Service) removeTag(c echo.Context) error {
	tag := nameParam(c, "tag")
	if err := checkTag("tag", tag); err != nil {
		return err
	}
	ee, err := s.ee(c, auth.ActionUntag)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	if _, err := s.plugin.GetManifest(ctx, ee.Name, tag); err != nil {
		if errors.Is(err, core.ErrNotFound) {
			return core.NotFound("tag", ee.Name+":"+tag)
		}
		return err
	}
	t, err := s.remove(ctx, ee, container.Selection{Tags: []string{tag}})
	if err != nil {
		return err
	}
	return api.Accepted(c, t)
}

func (s *Service) listActivity(c echo.Context) error {
	q, err := api.ParseList(c, pageSpec)
	if err != nil {
		return err
	}
	ee, err := s.ee(c, auth.ActionPull)
	if err != nil {
		return err
	}
	list, total, err := s.plugin.Activity(c.Request().Context(), ee.Name, listOptions(q))
	if err != nil {
		return err
	}
	out := make([]ActivityView, len(list))
	for i, a := range list {
		out[i] = activityView(ee.Name, a)
	}
	return c.JSON(http.StatusOK, api.NewPage(c, q, total, out))
}

// ControllersView are the "Use in Controller" links of an image.
type ControllersView struct {
	Image       string           `json:"image" doc:"The pull string prefilled."`
	Controllers []ControllerLink `json:"controllers"`
}

func (s *Service) listControllers(c echo.Context) error {
	tag, dg := c.QueryParam("tag"), c.QueryParam("digest")
	for k := range c.QueryParams() {
		if k != "tag" && k != "digest" {
			return core.Invalid(k, "Unknown parameter; use tag or digest.")
		}
	}
	if tag != "" && dg != "" {
		return core.Invalid("non_field_errors", "Give a tag or a digest, not both.")
	}
	if tag != "" {
		if err := checkTag("tag", tag); err != nil {
			return err
		}
	}
	ee, err := s.ee(c, auth.ActionPull)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	var image string
	switch {
	case dg != "":
		d, err := container.ParseDigest(dg)
		if err != nil {
			return core.Invalid("digest", "Not a digest: want sha256:<64 hex digits>.")
		}
		if err := s.checkManifest(ctx, ee, d); err != nil {
			return err
		}
		image = s.pullName(ee.Name) + "@" + d.String()
	case tag != "":
		if _, err := s.plugin.GetManifest(ctx, ee.Name, tag); err != nil {
			if errors.Is(err, core.ErrNotFound) {
				return core.NotFound("tag", ee.Name+":"+tag)
			}
			return err
		}
		image = s.pullName(ee.Name) + ":" + tag
	default:
		latest, found, err := s.plugin.LatestTag(ctx, ee.Name)
		if err != nil {
			return err
		}
		if !found {
			return core.NotFound("tagged image of", ee.Name)
		}
		image = s.pullName(ee.Name) + ":" + latest.Name
	}
	return c.JSON(http.StatusOK, ControllersView{Image: image, Controllers: s.controllerLinks(image)})
}
