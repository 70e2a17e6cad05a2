// Package errcode is the one registry of Berth's API error codes: each code
// carries its HTTP status, so no handler ever chooses a status by itself.
// Handlers return errors; the central echo error handler (package api) finds
// the code with errors.As and writes the body: the OCI envelope
// {"errors":[{code,message,detail}]} under /v2/, {"detail": …} elsewhere.
package errcode

import (
	"fmt"
	"net/http"
	"sort"
	"sync"
)

// Code is a registered error code.
type Code struct {
	Value       string // "BLOB_UNKNOWN"
	Message     string // default human message
	Description string // for generated docs
	Status      int    // HTTP status
}

var (
	mu       sync.Mutex
	registry = map[string]Code{}
)

// Register adds a code at init time; registering a value twice panics, as a
// programming error found by any test run.
func Register(group string, c Code) Code {
	mu.Lock()
	defer mu.Unlock()
	if _, dup := registry[c.Value]; dup {
		panic(fmt.Sprintf("errcode: %s registered twice (group %s)", c.Value, group))
	}
	registry[c.Value] = c
	return c
}

// All lists every registered code, sorted by value (for docs and tests).
func All() []Code {
	mu.Lock()
	defer mu.Unlock()
	out := make([]Code, 0, len(registry))
	for _, c := range registry {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Value < out[j].Value })
	return out
}

// Error is one occurrence of a code, with an optional message and detail.
type Error struct {
	Code    Code
	Message string
	Detail  any
	// Header holds extra response headers (e.g. WWW-Authenticate, Range).
	Header http.Header
	cause  error
}

// New returns an Error of code c with its default message.
func (c Code) New() *Error { return &Error{Code: c, Message: c.Message} }

// Errorf returns an Error of code c with a formatted message.
func (c Code) Errorf(format string, args ...any) *Error {
	return &Error{Code: c, Message: fmt.Sprintf(format, args...)}
}

// Wrap returns an Error of code c caused by err (its text becomes the message).
func (c Code) Wrap(err error) *Error { return &Error{Code: c, Message: err.Error(), cause: err} }

func (e *Error) Error() string {
	if e.Message != "" && e.Message != e.Code.Message {
		return e.Code.Value + ": " + e.Message
	}
	return e.Code.Value + ": " + e.Code.Message
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.cause }

// WithDetail returns a copy carrying detail.
func (e *Error) WithDetail(d any) *Error {
	c := *e
	c.Detail = d
	return &c
}

// WithHeader returns a copy that also sets a response header.
func (e *Error) WithHeader(k, v string) *Error {
	c := *e
	c.Header = e.Header.Clone()
	if c.Header == nil {
		c.Header = http.Header{}
	}
	c.Header.Set(k, v)
	return &c
}

// Status is the HTTP status of the error.
func (e *Error) Status() int { return e.Code.Status }
