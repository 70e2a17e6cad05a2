package auth

import (
	"errors"
	"net/http"
	"net/url"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/core"
)

// tokenBody asks for a new token.
type tokenBody struct {
	Name      string    `json:"name" doc:"What the token is for."`
	Kind      TokenKind `json:"kind" enum:"api,registry" doc:"api (default): a personal API token; registry: a login token for podman/docker login."`
	ExpiresIn int64     `json:"expires_in" doc:"Lifetime in seconds; 0 for the default."`
}

// tokenView is a token without its value.
type tokenView struct {
	Href       string     `json:"href"`
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	Kind       TokenKind  `json:"kind"`
	Prefix     string     `json:"prefix"`
	Created    time.Time  `json:"created"`
	ExpiresAt  *time.Time `json:"expires_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
}

func newTokenView(t *Token) tokenView {
	return tokenView{Href: APIRoot + "tokens/" + t.ID + "/", ID: t.ID, Name: t.Name, Kind: t.Kind, Prefix: t.Prefix,
		Created: t.CreatedAt, ExpiresAt: t.ExpiresAt, LastUsedAt: t.LastUsedAt}
}

// newTokenBody is the creation answer: the view plus the value, once.
type newTokenBody struct {
	tokenView
	Token    string `json:"token"`
	Registry string `json:"registry,omitempty"`
	Username string `json:"username,omitempty"`
}

var tokenFilters = map[string]fieldKind{"name": textField, "kind": textField}

func (s *Service) handleListTokens(c echo.Context) error {
	ctx := c.Request().Context()
	q, err := listQuery(c, tokenFilters)
	if err != nil {
		return err
	}
	tokens, total, err := s.ListTokens(ctx, PrincipalFrom(ctx).UserID, q)
	if err != nil {
		return err
	}
	views := make([]tokenView, len(tokens))
	for i := range tokens {
		views[i] = newTokenView(&tokens[i])
	}
	return c.JSON(http.StatusOK, api.NewPage(c, q, total, views))
}

func (s *Service) handleCreateToken(c echo.Context) error {
	ctx := c.Request().Context()
	var b tokenBody
	if err := decodeJSON(c, &b); err != nil {
		return err
	}
	if b.ExpiresIn < 0 || b.ExpiresIn > 10*365*24*3600 {
		return core.Invalid("expires_in", "must be between 0 (default) and ten years, in seconds")
	}
	p := PrincipalFrom(ctx)
	t, err := s.CreateToken(ctx, p.UserID, TokenInput{Name: b.Name, Kind: b.Kind, Lifetime: time.Duration(b.ExpiresIn) * time.Second})
	if err != nil {
		return err
	}
	body := newTokenBody{tokenView: newTokenView(&t.Token), Token: t.Value}
	if t.Kind == TokenRegistry {
		if u, err := url.Parse(s.opt.publicURL); err == nil {
			body.Registry = u.Host
		}
		body.Username = p.Username
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return c.JSON(http.StatusCreated, body)
}

// ownToken loads a token the principal may see; others' tokens are "not found".
func (s *Service) ownToken(c echo.Context) (*Token, error) {
	ctx := c.Request().Context()
	p := PrincipalFrom(ctx)
	id := c.Param("id")
	t, err := s.TokenByID(ctx, id)
	if err != nil {
		return nil, err
	}
	if t.UserID != p.UserID {
		ok, err := s.authz.Can(ctx, p, ActionManageUsers, Namespace{})
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, core.NotFound("token", id)
		}
	}
	return t, nil
}

func (s *Service) handleGetToken(c echo.Context) error {
	t, err := s.ownToken(c)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, newTokenView(t))
}

func (s *Service) handleRevokeToken(c echo.Context) error {
	t, err := s.ownToken(c)
	if err != nil {
		return err
	}
	if err := s.RevokeToken(c.Request().Context(), t.ID); err != nil && !errors.Is(err, core.ErrNotFound) {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}
