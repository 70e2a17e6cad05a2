// Package api holds the HTTP plumbing shared by every route (echo setup, the
// central error handler, request IDs, access logs, pagination, hrefs) and the
// core's REST routes under /pulp/api/v3/.
//
// The REST API has Pulp's shapes: objects by pulp_href (Href, ParseHref),
// lists as {count, next, previous, results} (ParseList, NewPage), bodies
// decoded strictly (Bind), long work answered 202 {"task": href}
// (Accepted). New builds the Server from explicit Deps; Register adds its
// routes, and those of plugins implementing Routes, to an echo instance made
// by NewEcho. Every route goes through Router.Add, which also describes it
// in the OpenAPI document served at DocPath; Undocumented finds routes that
// bypassed it. Plugins add fields of their own to the core's typed objects
// with an Extension. The core's task handlers are in CoreTaskHandlers.
//
// Handlers are thin: they parse, call the core (no SQL here) and return a
// value or an error; ErrorHandler alone writes error bodies.
package api

import (
	"log/slog"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
)

// EchoOption adjusts NewEcho.
type EchoOption func(*echoOptions)

type echoOptions struct{ accessLog bool }

// WithAccessLog turns the per-request log line on or off (default on).
func WithAccessLog(on bool) EchoOption { return func(o *echoOptions) { o.accessLog = on } }

// NewEcho returns an echo instance with Berth's error handler, request IDs,
// panic recovery and structured access logs.
func NewEcho(log *slog.Logger, opts ...EchoOption) *echo.Echo {
	o := echoOptions{accessLog: true}
	for _, opt := range opts {
		opt(&o)
	}
	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.HTTPErrorHandler = ErrorHandler(log)
	e.Use(middleware.RequestID())
	e.Use(middleware.RecoverWithConfig(middleware.RecoverConfig{
		LogErrorFunc: func(c echo.Context, err error, stack []byte) error {
			log.Error("panic in handler", "request_id", c.Response().Header().Get(echo.HeaderXRequestID), "err", err, "stack", string(stack))
			return err
		},
	}))
	if !o.accessLog {
		return e
	}
	e.Use(middleware.RequestLoggerWithConfig(middleware.RequestLoggerConfig{
		// HandleError runs the central error handler first, so the logged
		// status is the one the client got.
		HandleError: true,
		LogStatus:   true, LogMethod: true, LogURIPath: true, LogLatency: true, LogRequestID: true, LogResponseSize: true,
		LogValuesFunc: func(c echo.Context, v middleware.RequestLoggerValues) error {
			log.Info("request", "method", v.Method, "path", v.URIPath, "status", v.Status,
				"bytes", v.ResponseSize, "latency_ms", float64(v.Latency)/float64(time.Millisecond), "request_id", v.RequestID)
			return nil
		},
	}))
	return e
}
