package api

import (
	"errors"
	"log/slog"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/berth-dev/berth/api/errcode"
	"github.com/berth-dev/berth/core"
)

// V2Prefix is where the OCI content app lives; errors there use the OCI envelope.
const V2Prefix = "/v2/"

// toCode finds the registered code for any error a handler returned.
func toCode(err error) *errcode.Error {
	var ce *errcode.Error
	if errors.As(err, &ce) {
		return ce
	}
	var he *echo.HTTPError
	if errors.As(err, &he) {
		msg := http.StatusText(he.Code)
		if s, ok := he.Message.(string); ok {
			msg = s
		}
		switch he.Code {
		case http.StatusNotFound:
			return errcode.NotFound.New()
		case http.StatusMethodNotAllowed:
			return errcode.MethodNotAllowed.New()
		case http.StatusUnauthorized:
			return errcode.AuthRequired.New()
		case http.StatusForbidden:
			return errcode.Forbidden.New()
		case http.StatusRequestEntityTooLarge:
			return errcode.TooLarge.New()
		case http.StatusUnsupportedMediaType:
			return errcode.UnsupportedMediaType.New()
		case http.StatusServiceUnavailable:
			return errcode.Unavailable.New()
		}
		if he.Code >= 400 && he.Code < 500 {
			if he.Internal != nil {
				msg += ": " + he.Internal.Error()
			}
			return errcode.Invalid.Errorf("%s", msg)
		}
		return nil
	}
	var ve *core.ValidationError
	if errors.As(err, &ve) {
		return errcode.Invalid.Errorf("%s", ve.Error()).WithDetail(ve.Fields)
	}
	switch {
	case errors.Is(err, core.ErrNotFound):
		return errcode.NotFound.Errorf("%s", err.Error())
	case errors.Is(err, core.ErrConflict):
		return errcode.Conflict.Errorf("%s", err.Error())
	case errors.Is(err, core.ErrInvalid):
		return errcode.Invalid.Errorf("%s", err.Error())
	case errors.Is(err, core.ErrUnauthorized):
		return errcode.AuthRequired.New()
	case errors.Is(err, core.ErrForbidden):
		return errcode.Forbidden.Errorf("%s", err.Error())
	case errors.Is(err, core.ErrUnavailable):
		return errcode.Unavailable.Errorf("%s", err.Error())
	}
	return nil
}

// RESTChallenge is the WWW-Authenticate of the REST API's 401 answers:
// HTTP Basic with a password or a personal API token.
const RESTChallenge = `Basic realm="berth"`

// ErrorHandler is the single place that turns a handler's error into a
// response body and a log line. Unknown errors are a 500 whose cause is
// logged with the request ID and never shown to the client.
func ErrorHandler(log *slog.Logger) echo.HTTPErrorHandler {
	return func(err error, c echo.Context) {
		if c.Response().Committed {
			return
		}
		req := c.Request()
		rid := c.Response().Header().Get(echo.HeaderXRequestID)
		ce := toCode(err)
		if ce == nil {
			log.Error("internal error", "request_id", rid, "method", req.Method, "path", req.URL.Path, "err", err)
			ce = errcode.Internal.Errorf("Internal server error (request %s).", rid)
		}
		for k, vs := range ce.Header {
			for _, v := range vs {
				c.Response().Header().Add(k, v)
			}
		}
		status := ce.Status()
		v2 := strings.HasPrefix(req.URL.Path, V2Prefix) || req.URL.Path == "/v2"
		if status == http.StatusUnauthorized && !v2 && c.Response().Header().Get(echo.HeaderWWWAuthenticate) == "" {
			// RFC 9110: a 401 says how to authenticate. /v2/ answers carry
			// the registry's own challenge.
			c.Response().Header().Set(echo.HeaderWWWAuthenticate, RESTChallenge)
		}
		if req.Method == http.MethodHead {
			_ = c.NoContent(status)
			return
		}
		if v2 {
			_ = c.JSON(status, OCIErrors(ce))
			return
		}
		if fields, ok := ce.Detail.(map[string][]string); ok && ce.Code == errcode.Invalid {
			_ = c.JSON(status, fields)
			return
		}
		_ = c.JSON(status, map[string]any{"detail": ce.Message})
	}
}

// OCIErrors is the OCI error envelope.
func OCIErrors(errs ...*errcode.Error) map[string]any {
	list := make([]map[string]any, 0, len(errs))
	for _, e := range errs {
		item := map[string]any{"code": e.Code.Value, "message": e.Message}
		if e.Detail != nil {
			item["detail"] = e.Detail
		}
		list = append(list, item)
	}
	return map[string]any{"errors": list}
}
