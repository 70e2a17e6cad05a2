package builds

import (
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/api/errcode"
	"github.com/berth-dev/berth/auth"
	"github.com/berth-dev/berth/core"
)

// Path is the root of the builds API.
const Path = "/api/v1/builds/"

// Href is the href of a build.
func Href(id string) string { return Path + id + "/" }

// View is a build as the API shows it.
type View struct {
	Href    string    `json:"pulp_href" api:"readonly"`
	ID      string    `json:"id" api:"readonly"`
	Created time.Time `json:"pulp_created" api:"readonly"`
	Target  string    `json:"target"`
	Tag     string    `json:"tag"`
	// UniqueTag identifies the spec: "<tag>-<8 hex digits of spec_digest>".
	UniqueTag  string   `json:"unique_tag"`
	SpecDigest string   `json:"spec_digest" doc:"SHA-256 of the spec (without credentials): equal specs, equal digests."`
	Images     []string `json:"images" doc:"Pull strings of the image: by its tag and by its unique tag."`
	Mode       string   `json:"mode" enum:"packages,containerfile"`
	Base       string   `json:"base,omitempty" doc:"The base image as given."`
	// ResolvedBase is the base image pulled, in full.
	ResolvedBase       string     `json:"resolved_base,omitempty" doc:"The base image as pulled: Berth's own, or another registry's in full."`
	BaseCredentialsSet bool       `json:"base_credentials_set" doc:"Whether the base image is pulled with a stored pull secret."`
	APT                []string   `json:"apt"`
	Conda              []string   `json:"conda"`
	Pip                []string   `json:"pip"`
	Containerfile      string     `json:"containerfile" doc:"The Containerfile built: the user's own, or the one generated from the packages (rendered again with the base image's user when the build starts)."`
	HasContext         bool       `json:"has_context" doc:"Whether a build context was uploaded."`
	Phase              Phase      `json:"phase" enum:"pending,running,succeeded,failed,cancelled"`
	Task               *string    `json:"task" doc:"Href of the task running the build."`
	TaskState          *string    `json:"task_state"`
	Previous           *string    `json:"previous" doc:"Href of the build this one rebuilds."`
	CreatedBy          string     `json:"created_by"`
	StartedAt          *time.Time `json:"started_at"`
	FinishedAt         *time.Time `json:"finished_at"`
	Digest             *string    `json:"digest" doc:"Manifest digest of the image, once built."`
	Error              *string    `json:"error" doc:"Why the build failed; null otherwise."`
	Logs               string     `json:"logs" doc:"Href of the build log (text; ?follow=true streams it while the build runs)."`
}

// View renders a build.
func (s *Service) View(b *Build) View {
	v := View{
		Href: Href(b.ID), ID: b.ID, Created: api.APITime(b.CreatedAt), Target: b.Target, Tag: b.Tag, UniqueTag: b.UniqueTag,
		SpecDigest: b.SpecDigest, Images: []string{s.PullRef(b.Target, b.Tag), s.PullRef(b.Target, b.UniqueTag)},
		Mode: "packages", BaseCredentialsSet: b.BaseSecret != "", Containerfile: b.Containerfile, HasContext: b.HasContext,
		Phase: b.Phase, TaskState: b.TaskState, CreatedBy: b.CreatedByName, StartedAt: apiTime(b.StartedAt),
		FinishedAt: apiTime(b.FinishedAt), Logs: Href(b.ID) + "logs/",
		APT: []string{}, Conda: []string{}, Pip: []string{},
	}
	if spec, err := b.spec(); err == nil {
		v.Base, v.ResolvedBase = spec.Base, s.ResolvedBase(b, spec)
		v.APT, v.Conda, v.Pip = orEmpty(spec.APT), orEmpty(spec.Conda), orEmpty(spec.Pip)
		if spec.Raw() {
			v.Mode = "containerfile"
		}
	}
	if b.TaskID != nil {
		h := api.TaskHref(*b.TaskID)
		v.Task = &h
	}
	if b.PreviousID != nil {
		h := Href(*b.PreviousID)
		v.Previous = &h
	}
	if b.Digest != "" {
		v.Digest = &b.Digest
	}
	if b.Error != "" {
		v.Error = &b.Error
	}
	return v
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func apiTime(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := api.APITime(*t)
	return &u
}

// Routes are the builds API as an api.Routes set.
type Routes struct {
	Service *Service
}

var _ api.Routes = Routes{}

// listSpec declares the filters and orderings of the build list.
var listSpec = api.ListSpec{Tiebreak: "id", Fields: map[string]api.Field{
	"target":       {Kind: api.KindString, Lookups: api.StringLookups(), Order: true, Doc: "The repository the image goes to."},
	"tag":          {Kind: api.KindString, Lookups: []string{api.Exact, api.In}, Order: true},
	"unique_tag":   {Kind: api.KindString, Lookups: []string{api.Exact}},
	"phase":        {Kind: api.KindString, Lookups: []string{api.Exact, api.In}, Order: true, Doc: "pending, running, succeeded, failed or cancelled."},
	"created_by":   {Kind: api.KindString, Lookups: []string{api.Exact}, Doc: "User name of the build's creator."},
	"pulp_created": {Kind: api.KindTime, Lookups: api.TimeLookups(), Order: true},
	"id":           {Order: true},
}}

// APIRoutes adds the builds API, every route for authenticated users:
//
//	/api/v1/builds/                 GET list (readable builds), POST create (push on the target)
//	/api/v1/builds/status/          GET ?image=name:tag: PENDING, READY or FAILED (pull)
//	/api/v1/builds/{id}/            GET (pull on the target)
//	/api/v1/builds/{id}/logs/       GET the log as text; ?follow=true streams it, ?tail=N
//	/api/v1/builds/{id}/cancel/     POST (push on the target)
//	/api/v1/builds/{id}/rebuild/    POST with the fields to change (push on the target)
//
// Create and rebuild take a JSON body, or multipart/form-data with the
// JSON in part "spec" and a build context archive in part "context".
func (r Routes) APIRoutes(rt *api.Router) {
	tags := []string{"Builds"}
	item := Path + ":id/"
	authn := auth.RequireAuthenticated
	rt.Add(api.Operation{Method: http.MethodGet, Path: Path, ID: "builds_list", Tags: tags,
		Summary: "List image builds", Params: listSpec.Params(), Response: api.Page[View]{},
	}, r.list, authn)
	rt.Add(api.Operation{Method: http.MethodPost, Path: Path, ID: "builds_create", Tags: tags,
		Summary: "Build an image", Request: Request{}, Response: View{}, Status: http.StatusAccepted,
		Description: "Starts a build task on the builds queue and answers the build, with its task. Invalid package lines are a 400 naming each line. " +
			"A raw Containerfile may come with a build context: send multipart/form-data, the JSON in part \"spec\", a tar archive in part \"context\".",
	}, r.create, authn)
	rt.Add(api.Operation{Method: http.MethodGet, Path: Path + "status/", ID: "builds_image_status", Tags: tags,
		Summary: "Whether a built image is ready", Response: ImageStatus{},
		Params: []api.Param{{Name: "image", Required: true, Doc: "The image, name:tag (default tag latest)."}},
	}, r.status, authn)
	rt.Add(api.Operation{Method: http.MethodGet, Path: item, ID: "builds_read", Tags: tags,
		Summary: "Inspect an image build", Response: View{},
	}, r.get, authn)
	rt.Add(api.Operation{Method: http.MethodGet, Path: item + "logs/", ID: "builds_logs", Tags: tags,
		Summary:     "The log of an image build (text/plain)",
		Description: "Lines left out of a long log show as one line \"[… N lines omitted …]\". With follow=true the answer streams new lines until the build ends.",
		Params: []api.Param{
			{Name: "follow", Type: "boolean", Doc: "Keep streaming new lines until the build ends."},
			{Name: "tail", Type: "integer", Doc: "Start with the last N lines."},
		},
	}, r.logs, authn)
	rt.Add(api.Operation{Method: http.MethodPost, Path: item + "cancel/", ID: "builds_cancel", Tags: tags,
		Summary: "Cancel an image build", Response: View{}, Status: http.StatusAccepted,
		Description: "Cancels the build's task: buildah and every process of the build are stopped, its working storage is removed, the target is left as it was.",
	}, r.cancel, authn)
	rt.Add(api.Operation{Method: http.MethodPost, Path: item + "rebuild/", ID: "builds_rebuild", Tags: tags,
		Summary: "Build again, with changes", Request: Request{}, Response: View{}, Status: http.StatusAccepted,
		Description: "Starts a new build from this one's spec with the fields given changed (all optional); the new build links to this one as previous.",
	}, r.rebuild, authn)
}

func (r Routes) list(c echo.Context) error {
	q, err := api.ParseList(c, listSpec)
	if err != nil {
		return err
	}
	bs, total, err := r.Service.List(c.Request().Context(), q)
	if err != nil {
		return err
	}
	views := make([]View, len(bs))
	for i := range bs {
		views[i] = r.Service.View(&bs[i])
	}
	return c.JSON(http.StatusOK, api.NewPage(c, q, total, views))
}

func (r Routes) create(c echo.Context) error {
	var req Request
	_, archive, err := r.bind(c, &req, false)
	if err != nil {
		return err
	}
	b, err := r.Service.Create(c.Request().Context(), req, archive)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusAccepted, r.Service.View(b))
}

func (r Routes) rebuild(c echo.Context) error {
	var req Request
	given, archive, err := r.bind(c, &req, true)
	if err != nil {
		return err
	}
	b, err := r.Service.Rebuild(c.Request().Context(), c.Param("id"), req, given, archive)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusAccepted, r.Service.View(b))
}

func (r Routes) get(c echo.Context) error {
	b, err := r.Service.Get(c.Request().Context(), c.Param("id"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, r.Service.View(b))
}

func (r Routes) cancel(c echo.Context) error {
	b, err := r.Service.Cancel(c.Request().Context(), c.Param("id"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusAccepted, r.Service.View(b))
}

func (r Routes) status(c echo.Context) error {
	st, err := r.Service.ImageStatus(c.Request().Context(), c.QueryParam("image"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, st)
}

func (r Routes) logs(c echo.Context) error {
	opt, err := logOptions(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	b, err := r.Service.Get(ctx, c.Param("id"))
	if err != nil {
		return err
	}
	res := c.Response()
	res.Header().Set(echo.HeaderContentType, "text/plain; charset=utf-8")
	res.Header().Set("X-Content-Type-Options", "nosniff")
	res.Header().Set("Cache-Control", "no-store")
	res.WriteHeader(http.StatusOK)
	return r.Service.Logs(ctx, b, opt, res, res.Flush)
}

// logOptions reads ?follow= and ?tail=.
func logOptions(c echo.Context) (LogOptions, error) {
	var opt LogOptions
	v := &core.ValidationError{}
	if s := c.QueryParam("follow"); s != "" {
		f, err := strconv.ParseBool(s)
		if err != nil {
			v.Add("follow", "Must be a valid boolean.")
		}
		opt.Follow = f
	}
	if s := c.QueryParam("tail"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			v.Add("tail", "Enter a whole number of lines, 0 or more.")
		}
		opt.Tail = n
	}
	return opt, v.Err()
}

// bind decodes a create or rebuild request: a JSON body, or multipart with
// the JSON in part "spec" and a build context archive in part "context".
// It returns the fields given and the archive (nil when there is none).
func (r Routes) bind(c echo.Context, req *Request, partial bool) (api.Fields, []byte, error) {
	mt, _, _ := mime.ParseMediaType(c.Request().Header.Get(echo.HeaderContentType))
	if mt != echo.MIMEMultipartForm {
		if partial {
			given, err := api.BindPatch(c, req)
			return given, nil, err
		}
		given, err := api.Bind(c, req)
		return given, nil, err
	}
	mr, err := c.Request().MultipartReader()
	if err != nil {
		return nil, nil, core.Invalid("non_field_errors", "Malformed multipart body: %v", err)
	}
	var spec, archive []byte
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, nil, core.Invalid("non_field_errors", "Malformed multipart body: %v", err)
		}
		var limit int64
		var dst *[]byte
		switch part.FormName() {
		case "spec":
			limit, dst = api.MaxBodySize, &spec
		case "context":
			limit, dst = r.Service.MaxContextSize(), &archive
		default:
			return nil, nil, core.Invalid(part.FormName(), "Unexpected part: send \"spec\" (JSON) and \"context\" (a tar archive).")
		}
		if *dst != nil {
			return nil, nil, core.Invalid(part.FormName(), "Given twice.")
		}
		data, err := io.ReadAll(io.LimitReader(part, limit+1))
		if err != nil {
			return nil, nil, core.Invalid(part.FormName(), "Cannot read the part: %v", err)
		}
		if int64(len(data)) > limit {
			return nil, nil, errcode.TooLarge.Errorf("Part %q larger than %d bytes.", part.FormName(), limit)
		}
		*dst = data // never nil: io.ReadAll returns an empty slice
	}
	if spec == nil {
		return nil, nil, core.Invalid("spec", "Required: the build request as JSON.")
	}
	if archive != nil && len(archive) == 0 {
		return nil, nil, core.Invalid("context", "The build context is empty.")
	}
	given, err := api.Decode([]byte(strings.TrimSpace(string(spec))), partial, req)
	return given, archive, err
}
