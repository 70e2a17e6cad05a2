package auth_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/berth-dev/berth/api/errcode"
	"github.com/berth-dev/berth/core"
)

// testEcho returns an echo whose error handler does what the central one in
// package api does for the errors auth returns: *errcode.Error with its
// status and headers, core sentinels mapped to their codes, the OCI envelope
// under /v2/ and {"detail"} or a field map elsewhere. (Package api is a
// dependency we keep out of these unit tests; the end-to-end tests run the
// real handler.)
func testEcho(t *testing.T) *echo.Echo {
	e := echo.New()
	e.HTTPErrorHandler = func(err error, c echo.Context) {
		var ce *errcode.Error
		var ve *core.ValidationError
		switch {
		case errors.As(err, &ce):
		case errors.As(err, &ve):
			_ = c.JSON(http.StatusBadRequest, ve.Fields)
			return
		case errors.Is(err, core.ErrNotFound):
			ce = errcode.NotFound.Errorf("%s", err)
		case errors.Is(err, core.ErrConflict):
			ce = errcode.Conflict.Errorf("%s", err)
		case errors.Is(err, core.ErrInvalid):
			ce = errcode.Invalid.Errorf("%s", err)
		case errors.Is(err, core.ErrUnauthorized):
			ce = errcode.AuthRequired.New()
		case errors.Is(err, core.ErrForbidden):
			ce = errcode.Forbidden.Errorf("%s", err)
		default:
			var he *echo.HTTPError
			if errors.As(err, &he) {
				_ = c.JSON(he.Code, map[string]any{"detail": he.Message})
				return
			}
			t.Errorf("unexpected internal error from a handler: %v", err)
			ce = errcode.Internal.New()
		}
		for k, vs := range ce.Header {
			for _, v := range vs {
				c.Response().Header().Add(k, v)
			}
		}
		if strings.HasPrefix(c.Request().URL.Path, "/v2/") {
			_ = c.JSON(ce.Status(), map[string]any{"errors": []map[string]any{{"code": ce.Code.Value, "message": ce.Message}}})
			return
		}
		_ = c.JSON(ce.Status(), map[string]any{"detail": ce.Message})
	}
	return e
}
