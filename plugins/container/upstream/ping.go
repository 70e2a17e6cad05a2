package upstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Ping checks that the remote works as configured, for the "test
// connection" button: it reaches /v2/ (through the proxy, over TLS as
// configured) and, when the registry wants authentication, authenticates
// (Basic, or a token from the Bearer realm). The error says what failed, in
// words, and matches one of ErrUnreachable (DNS, refused, timeout), ErrTLS
// (unknown authority, wrong host, not TLS, client certificate refused),
// ErrProxy, ErrNotRegistry (an HTTP server that is not a registry),
// ErrUnauthorized (credentials refused, or needed and missing),
// ErrForbidden, ErrRateLimited or ErrUnavailable.
//
// An open registry (200 at /v2/) passes even with wrong credentials: it
// does not look at them there.
func (c *Client) Ping(ctx context.Context) error {
	const op = "ping"
	ch, err := c.probe(ctx)
	if err != nil {
		return err
	}
	if unlock, err := lock(ctx, c.chLock); err == nil {
		c.ch = ch
		unlock()
	}

	switch strings.ToLower(ch.Scheme) {
	case "":
		return nil
	case "basic":
		if c.cfg.Username == "" {
			return &Error{Op: op, Method: http.MethodGet, URL: c.url("/v2/"), StatusCode: http.StatusUnauthorized,
				Kind: ErrUnauthorized, Message: "the registry requires credentials and none are configured"}
		}
		rt, err := transport.FromToken(c.reg, c.auth, c.plain, ch, &transport.Token{})
		if err != nil {
			return c.fail(op, err)
		}
		return c.pingWith(ctx, rt, fmt.Sprintf("the registry rejected the credentials of user %q", c.cfg.Username))
	default: // bearer
		tok, err := c.token(ctx, ch, nil)
		if err != nil {
			var e *Error
			if !errors.As(c.fail(op, err), &e) {
				return err // not reached: fail always gives an *Error
			}
			if e.StatusCode == http.StatusUnauthorized || e.StatusCode == http.StatusForbidden {
				if c.cfg.Username == "" {
					e.Message = "the registry's token service requires credentials and none are configured (" + e.Message + ")"
				} else {
					e.Message = fmt.Sprintf("the registry's token service rejected the credentials of user %q (%s)", c.cfg.Username, e.Message)
				}
			}
			return e
		}
		rt, err := transport.FromToken(c.reg, c.auth, c.plain, ch, tok)
		if err != nil {
			return c.fail(op, err)
		}
		why := "the registry refused the token from its token service"
		if c.cfg.Username == "" {
			why = "the registry refused anonymous access; it needs credentials"
		}
		return c.pingWith(ctx, rt, why)
	}
}

// pingWith asks /v2/ through an authenticated transport; unauthorized says
// what a 401 means.
func (c *Client) pingWith(ctx context.Context, rt http.RoundTripper, unauthorized string) error {
	const op = "ping"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url("/v2/"), nil)
	if err != nil {
		return c.fail(op, err)
	}
	resp, err := c.httpClient(rt).Do(req)
	if err != nil {
		return c.fail(op, err)
	}
	defer discard(resp)
	if resp.StatusCode == http.StatusOK {
		return nil
	}
	e := c.statusError(op, resp)
	if e.Kind == ErrUnauthorized {
		e.Message = unauthorized + " (" + e.Message + ")"
	}
	return e
}

// probe asks GET /v2/ without credentials and returns the registry's
// challenge: Scheme "" when /v2/ is open. A server that answers but not as
// a registry gives ErrNotRegistry.
func (c *Client) probe(ctx context.Context) (*transport.Challenge, error) {
	const op = "ping"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url("/v2/"), nil)
	if err != nil {
		return nil, c.fail(op, err)
	}
	resp, err := c.httpClient(c.plain).Do(req)
	if err != nil {
		return nil, c.fail(op, err)
	}
	defer discard(resp)
	insecure := c.base.Scheme == "http"
	notRegistry := func(why string) error {
		return &Error{Op: op, Method: req.Method, URL: redactURL(resp.Request.URL), StatusCode: resp.StatusCode,
			Kind:    ErrNotRegistry,
			Message: fmt.Sprintf("the server answers HTTP, but not as a container registry: %s", why)}
	}
	switch resp.StatusCode {
	case http.StatusOK:
		if !looksLikeRegistry(resp) {
			return nil, notRegistry(fmt.Sprintf("/v2/ is a %s page", contentType(resp)))
		}
		return &transport.Challenge{Insecure: insecure}, nil
	case http.StatusUnauthorized:
		var basic, bearer *authChallenge
		chs := parseChallenges(resp.Header.Values("WWW-Authenticate"))
		for i := range chs {
			switch {
			case chs[i].scheme == "bearer" && bearer == nil:
				bearer = &chs[i]
			case chs[i].scheme == "basic" && basic == nil:
				basic = &chs[i]
			}
		}
		switch {
		case bearer != nil && bearer.params["realm"] != "":
			return &transport.Challenge{Scheme: "bearer", Parameters: bearer.params, Insecure: insecure}, nil
		case basic != nil:
			return &transport.Challenge{Scheme: "basic", Parameters: basic.params, Insecure: insecure}, nil
		case bearer != nil:
			return nil, &Error{Op: op, Method: req.Method, URL: redactURL(resp.Request.URL), StatusCode: resp.StatusCode,
				Kind: ErrProtocol, Message: "the registry's Bearer challenge has no realm to get a token from"}
		default:
			return nil, notRegistry("401 without a Basic or Bearer challenge")
		}
	case http.StatusNotFound, http.StatusMethodNotAllowed, http.StatusBadRequest:
		return nil, notRegistry(fmt.Sprintf("GET /v2/ answered %d %s", resp.StatusCode, http.StatusText(resp.StatusCode)))
	}
	e := c.statusError(op, resp)
	switch e.Kind {
	case ErrProxy:
		e.Message = "the proxy wants credentials, or refused the ones configured (" + e.Message + ")"
	case ErrProtocol:
		e.Kind, e.Message = ErrNotRegistry, "the server answers HTTP, but not as a container registry: "+e.Message
	}
	return nil, e
}

// looksLikeRegistry judges a 200 answer to GET /v2/: registries announce
// their API version, or answer JSON or nothing; a web server answers HTML.
func looksLikeRegistry(resp *http.Response) bool {
	if strings.HasPrefix(resp.Header.Get("Docker-Distribution-API-Version"), "registry/2") {
		return true
	}
	if contentType(resp) == "text/html" {
		return false
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if err != nil {
		return false
	}
	return len(strings.TrimSpace(string(body))) == 0 || json.Valid(body)
}

func contentType(resp *http.Response) string {
	mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err != nil {
		return "non-JSON"
	}
	return mt
}

// realmHost names the token service of a Bearer challenge.
func realmHost(ch *transport.Challenge) string {
	realm := ch.Parameters["realm"]
	if i := strings.Index(realm, "://"); i >= 0 {
		realm = realm[i+3:]
	}
	host, _, _ := strings.Cut(realm, "/")
	return host
}
