package api

import (
	"context"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/berth-dev/berth/core"
)

// RemoteResponse is a remote as the REST API shows it. Its secrets
// (password, client_key, proxy_password) are write-only: HiddenFields only
// says whether each is set, as Pulp does.
type RemoteResponse struct {
	Href                string        `json:"pulp_href" api:"readonly"`
	PulpCreated         time.Time     `json:"pulp_created" api:"readonly"`
	PulpLastUpdated     time.Time     `json:"pulp_last_updated" api:"readonly"`
	PulpType            string        `json:"pulp_type" api:"readonly"`
	Name                string        `json:"name"`
	URL                 string        `json:"url"`
	Username            *string       `json:"username"`
	CACert              *string       `json:"ca_cert" doc:"PEM certificates of the CAs to trust."`
	ClientCert          *string       `json:"client_cert" doc:"PEM client certificate for TLS client authentication."`
	TLSValidation       bool          `json:"tls_validation"`
	ProxyURL            *string       `json:"proxy_url"`
	ProxyUsername       *string       `json:"proxy_username"`
	RateLimit           float64       `json:"rate_limit" doc:"Requests per second; 0 means no limit."`
	DownloadConcurrency int           `json:"download_concurrency"`
	Policy              string        `json:"policy" enum:"immediate,on_demand"`
	HiddenFields        []HiddenField `json:"hidden_fields" api:"readonly"`
}

// HiddenField says whether a write-only field holds a value.
type HiddenField struct {
	Name  string `json:"name"`
	IsSet bool   `json:"is_set"`
}

// remoteRequest is the body of a remote create or update. Secrets are
// accepted in plain text, stored sealed and never shown again; null or ""
// clears one.
type remoteRequest struct {
	Name                string   `json:"name" api:"required"`
	URL                 string   `json:"url" api:"required" doc:"http:// or https:// URL of the upstream registry."`
	Username            *string  `json:"username"`
	Password            *string  `json:"password" api:"writeonly"`
	CACert              *string  `json:"ca_cert"`
	ClientCert          *string  `json:"client_cert"`
	ClientKey           *string  `json:"client_key" api:"writeonly"`
	TLSValidation       *bool    `json:"tls_validation" doc:"Verify the upstream's TLS certificate (default true)."`
	ProxyURL            *string  `json:"proxy_url"`
	ProxyUsername       *string  `json:"proxy_username"`
	ProxyPassword       *string  `json:"proxy_password" api:"writeonly"`
	RateLimit           *float64 `json:"rate_limit" doc:"Requests per second; 0 (default) means no limit."`
	DownloadConcurrency *int     `json:"download_concurrency" doc:"Parallel downloads, 1-64 (default 4)."`
	Policy              *string  `json:"policy" enum:"immediate,on_demand" doc:"Default immediate."`
}

func remoteListSpec(generic bool) ListSpec {
	f := map[string]Field{
		"name":              {Kind: KindString, Lookups: StringLookups(), Order: true},
		"url":               {Kind: KindString, Lookups: []string{Exact, Contains}, Order: true},
		"pulp_created":      {Kind: KindTime, Lookups: TimeLookups(), Order: true},
		"pulp_last_updated": {Kind: KindTime, Lookups: TimeLookups(), Order: true},
		"pulp_id":           {Kind: KindString, Lookups: []string{In}, Order: true},
	}
	if generic {
		f["pulp_type"] = Field{Kind: KindString, Lookups: []string{Exact, In}, Order: true}
	}
	return ListSpec{Fields: f, Tiebreak: "pulp_id"}
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// NewRemoteResponse renders a remote without its secrets.
func NewRemoteResponse(r *core.Remote) RemoteResponse {
	return RemoteResponse{
		Href:                RemoteHref(r.Type, r.ID),
		PulpCreated:         APITime(r.CreatedAt),
		PulpLastUpdated:     APITime(r.UpdatedAt),
		PulpType:            r.Type,
		Name:                r.Name,
		URL:                 r.URL,
		Username:            optional(r.Username),
		CACert:              optional(r.CACert),
		ClientCert:          optional(r.ClientCert),
		TLSValidation:       r.TLSValidation,
		ProxyURL:            optional(r.ProxyURL),
		ProxyUsername:       optional(r.ProxyUsername),
		RateLimit:           r.RateLimit,
		DownloadConcurrency: r.DownloadConcurrency,
		Policy:              r.Policy,
		HiddenFields: []HiddenField{
			{Name: "client_key", IsSet: r.ClientKeyEnc != ""},
			{Name: "password", IsSet: r.PasswordEnc != ""},
			{Name: "proxy_password", IsSet: r.ProxyPasswordEnc != ""},
		},
	}
}

// applyRemote copies a body onto r. A PUT (reset) first resets every field
// to its default, secrets included; a PATCH changes only what it gives.
func applyRemote(r *core.Remote, body remoteRequest, given Fields, reset bool) (core.RemoteSecrets, error) {
	if reset {
		*r = core.Remote{ID: r.ID, Type: r.Type, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt,
			TLSValidation: true, Policy: core.PolicyImmediate, DownloadConcurrency: 4}
	}
	set := func(name string, dst *string, v *string) {
		if given.Has(name) {
			*dst = deref(v)
		}
	}
	if given.Has("name") {
		r.Name = body.Name
	}
	if given.Has("url") {
		r.URL = body.URL
	}
	set("username", &r.Username, body.Username)
	set("ca_cert", &r.CACert, body.CACert)
	set("client_cert", &r.ClientCert, body.ClientCert)
	set("proxy_url", &r.ProxyURL, body.ProxyURL)
	set("proxy_username", &r.ProxyUsername, body.ProxyUsername)
	set("policy", &r.Policy, body.Policy)
	if given.Has("policy") && body.Policy == nil {
		r.Policy = core.PolicyImmediate
	}
	if given.Has("tls_validation") {
		r.TLSValidation = body.TLSValidation == nil || *body.TLSValidation
	}
	if given.Has("rate_limit") {
		r.RateLimit = 0
		if body.RateLimit != nil {
			r.RateLimit = *body.RateLimit
		}
	}
	if given.Has("download_concurrency") {
		r.DownloadConcurrency = 4
		if body.DownloadConcurrency != nil {
			// The store reads 0 as "the default"; a client's 0 is a mistake.
			if *body.DownloadConcurrency < 1 {
				return core.RemoteSecrets{}, core.Invalid("download_concurrency", "must be between 1 and 64")
			}
			r.DownloadConcurrency = *body.DownloadConcurrency
		}
	}
	var sec core.RemoteSecrets
	secret := func(name string, v *string) *string {
		if given.Has(name) {
			s := deref(v)
			return &s
		}
		if reset {
			s := ""
			return &s
		}
		return nil
	}
	sec.Password = secret("password", body.Password)
	sec.ClientKey = secret("client_key", body.ClientKey)
	sec.ProxyPassword = secret("proxy_password", body.ProxyPassword)
	return sec, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// typedRemote finds the remote of the path, which must be of typ.
func (s *Server) typedRemote(ctx context.Context, typ, id string) (*core.Remote, error) {
	r, err := s.store.Remote(ctx, id)
	if err != nil {
		return nil, err
	}
	if r.Type != typ {
		return nil, core.NotFound("remote", id)
	}
	return r, nil
}

// showRemotes renders remotes with their plugins' fields.
func (s *Server) showRemotes(ctx context.Context, list []core.Remote) ([]any, error) {
	out := make([]RemoteResponse, len(list))
	for i := range list {
		out[i] = NewRemoteResponse(&list[i])
	}
	return extendAll(ctx, s, kindRemote, out, func(i int) (string, string) { return list[i].Type, list[i].ID })
}

func (s *Server) showRemote(ctx context.Context, r *core.Remote) (any, error) {
	out, err := s.showRemotes(ctx, []core.Remote{*r})
	if err != nil {
		return nil, err
	}
	return out[0], nil
}

func (s *Server) listRemotes(spec ListSpec, typ string) echo.HandlerFunc {
	return typedList(spec, typ, s.store.ListRemotes, s.showRemotes)
}

func (s *Server) remoteRoutes(r *Router) {
	generic := remoteListSpec(true)
	r.Add(Operation{
		Method: http.MethodGet, Path: Prefix + Remotes + "/", ID: "remotes_list", Tags: []string{"Remotes"},
		Summary: "List remotes of every type", Params: generic.Params(), Response: Page[RemoteResponse]{},
	}, s.listRemotes(generic, ""))
	for _, typ := range s.registry.TypesOf(kindRemote) {
		s.typedRemoteRoutes(r, newTypedRoutes(Remotes, typ))
	}
}

func (s *Server) typedRemoteRoutes(r *Router, t typedRoutes) {
	spec := remoteListSpec(false)
	item := t.base + ":id/"
	request := s.docRequest(kindRemote, t.typ, remoteRequest{})
	response := s.docResponse(kindRemote, t.typ, RemoteResponse{})
	r.Add(Operation{
		Method: http.MethodGet, Path: t.base, ID: t.opID + "_list", Tags: t.tags,
		Summary: "List " + t.typ + " remotes", Params: spec.Params(), Response: docPage(response),
	}, s.listRemotes(spec, t.typ))

	r.Add(Operation{
		Method: http.MethodPost, Path: t.base, ID: t.opID + "_create", Tags: t.tags,
		Summary: "Create a " + t.typ + " remote", Request: request, Response: response, Status: http.StatusCreated,
	}, func(c echo.Context) error {
		ctx := c.Request().Context()
		var body remoteRequest
		given, fields, err := s.bindObject(c, kindRemote, t.typ, false, &body)
		if err != nil {
			return err
		}
		rem := &core.Remote{Type: t.typ}
		sec, err := applyRemote(rem, body, given, true)
		if err != nil {
			return err
		}
		err = s.saveObject(ctx, kindRemote, t.typ, Create, fields, given, func(tx *core.Store) (any, error) {
			return rem, tx.CreateRemote(ctx, rem, sec)
		})
		if err != nil {
			return err
		}
		out, err := s.showRemote(ctx, rem)
		if err != nil {
			return err
		}
		return c.JSON(http.StatusCreated, out)
	})

	r.Add(Operation{
		Method: http.MethodGet, Path: item, ID: t.opID + "_read", Tags: t.tags,
		Summary: "Inspect a " + t.typ + " remote", Response: response,
	}, typedRead(t.typ, s.typedRemote, s.showRemote))

	update := func(partial bool) echo.HandlerFunc {
		return func(c echo.Context) error {
			ctx := c.Request().Context()
			rem, err := s.typedRemote(ctx, t.typ, c.Param("id"))
			if err != nil {
				return err
			}
			var body remoteRequest
			given, fields, err := s.bindObject(c, kindRemote, t.typ, partial, &body)
			if err != nil {
				return err
			}
			sec, err := applyRemote(rem, body, given, !partial)
			if err != nil {
				return err
			}
			err = s.saveObject(ctx, kindRemote, t.typ, opOf(partial), fields, given, func(tx *core.Store) (any, error) {
				return rem, tx.UpdateRemote(ctx, rem, sec)
			})
			if err != nil {
				return err
			}
			out, err := s.showRemote(ctx, rem)
			if err != nil {
				return err
			}
			return c.JSON(http.StatusOK, out)
		}
	}
	r.Add(Operation{
		Method: http.MethodPut, Path: item, ID: t.opID + "_update", Tags: t.tags,
		Summary: "Replace a " + t.typ + " remote", Description: "Fields left out, secrets included, are reset to their defaults.",
		Request: request, Response: response,
	}, update(false))
	r.Add(Operation{
		Method: http.MethodPatch, Path: item, ID: t.opID + "_partial_update", Tags: t.tags,
		Summary: "Change some fields of a " + t.typ + " remote", Request: request, Response: response,
	}, update(true))

	r.Add(Operation{
		Method: http.MethodDelete, Path: item, ID: t.opID + "_delete", Tags: t.tags,
		Summary:     "Delete a " + t.typ + " remote",
		Description: "Synchronous: repositories that used the remote keep their content and lose the link.",
		Status:      http.StatusNoContent,
	}, func(c echo.Context) error {
		ctx := c.Request().Context()
		rem, err := s.typedRemote(ctx, t.typ, c.Param("id"))
		if err != nil {
			return err
		}
		if err := s.store.DeleteRemote(ctx, rem.ID); err != nil {
			return err
		}
		return c.NoContent(http.StatusNoContent)
	})
}
