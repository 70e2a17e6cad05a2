package api_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/api/errcode"
	"github.com/berth-dev/berth/core"
)

// syncBuffer is a log sink safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestErrorHandler(t *testing.T) {
	var logs syncBuffer
	e := api.NewEcho(slog.New(slog.NewTextHandler(&logs, nil)))
	errs := map[string]error{
		"internal":   fmt.Errorf("query users: %w", errors.New("connection reset by 10.0.0.7")),
		"notfound":   fmt.Errorf("load: %w", core.NotFound("repository", "x")),
		"conflict":   core.Conflict("repository %q already exists", "x"),
		"invalid":    fmt.Errorf("wrapped: %w", core.Invalid("name", "bad")),
		"forbidden":  core.ErrForbidden,
		"unauth":     core.ErrUnauthorized,
		"down":       fmt.Errorf("ping: %w", core.ErrUnavailable),
		"code":       errcode.Conflict.Errorf("custom"),
		"v2notfound": errcode.BlobUnknown.New(),
	}
	for name, err := range errs {
		e.GET("/pulp/api/v3/"+name+"/", func(echo.Context) error { return err })
	}
	e.GET("/v2/x/manifests/y", func(echo.Context) error {
		return errcode.Unauthorized.New().WithHeader(echo.HeaderWWWAuthenticate, `Bearer realm="https://r/token"`)
	})
	e.GET("/v2/x/blobs/y", func(echo.Context) error {
		return errcode.BlobUnknown.New().WithDetail(map[string]string{"digest": "y"})
	})
	srv := httptest.NewServer(e)
	defer srv.Close()

	cases := []struct {
		path   string
		status int
		body   string
	}{
		{"/pulp/api/v3/internal/", 500, `"detail":"Internal server error (request `},
		{"/pulp/api/v3/notfound/", 404, `repository \"x\"`},
		{"/pulp/api/v3/conflict/", 409, `already exists`},
		{"/pulp/api/v3/invalid/", 400, `{"name":["bad"]}`},
		{"/pulp/api/v3/forbidden/", 403, `permission`},
		{"/pulp/api/v3/unauth/", 401, `credentials`},
		{"/pulp/api/v3/down/", 503, `"detail"`},
		{"/pulp/api/v3/code/", 409, `{"detail":"custom"}`},
		{"/pulp/api/v3/missing/", 404, `{"detail":"Not found."}`},
		{"/v2/x/blobs/y", 404, `{"errors":[{"code":"BLOB_UNKNOWN","detail":{"digest":"y"},"message":"blob unknown to registry"}]}`},
	}
	// A /v2/ 401 keeps the registry's challenge, never gets the REST one.
	if resp, err := http.Get(srv.URL + "/v2/x/manifests/y"); err != nil {
		t.Fatal(err)
	} else if resp.Body.Close(); resp.StatusCode != 401 || resp.Header.Values(echo.HeaderWWWAuthenticate)[0] != `Bearer realm="https://r/token"` ||
		len(resp.Header.Values(echo.HeaderWWWAuthenticate)) != 1 {
		t.Errorf("/v2/ 401: %d %q", resp.StatusCode, resp.Header.Values(echo.HeaderWWWAuthenticate))
	}
	for _, tc := range cases {
		resp, err := http.Get(srv.URL + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		var raw json.RawMessage
		_ = json.NewDecoder(resp.Body).Decode(&raw)
		resp.Body.Close()
		if resp.StatusCode != tc.status || !strings.Contains(string(raw), tc.body) {
			t.Errorf("%s: %d %s, want %d with %s", tc.path, resp.StatusCode, raw, tc.status, tc.body)
		}
		challenge := resp.Header.Get(echo.HeaderWWWAuthenticate)
		if (tc.status == 401) != (challenge == api.RESTChallenge) {
			t.Errorf("%s: %d with WWW-Authenticate %q", tc.path, resp.StatusCode, challenge)
		}
		if strings.Contains(string(raw), "10.0.0.7") {
			t.Errorf("%s leaked the cause: %s", tc.path, raw)
		}
		if tc.status == 500 {
			rid := resp.Header.Get(echo.HeaderXRequestID)
			if rid == "" || !strings.Contains(string(raw), rid) || !strings.Contains(logs.String(), rid) || !strings.Contains(logs.String(), "10.0.0.7") {
				t.Errorf("500 not logged with its request ID %q: %s", rid, logs.String())
			}
		}
	}
}
