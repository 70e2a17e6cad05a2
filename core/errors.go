package core

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Sentinel errors of the core. Every layer wraps them with %w and tests them
// with errors.Is; the API maps them to HTTP statuses in one place.
var (
	// ErrNotFound: the named object does not exist (or is not visible to the caller).
	ErrNotFound = errors.New("not found")
	// ErrConflict: the change collides with existing state (a duplicate unique key,
	// an object still in use, a stale state transition).
	ErrConflict = errors.New("conflict")
	// ErrInvalid: the input is malformed. A *ValidationError carries the fields.
	ErrInvalid = errors.New("invalid input")
	// ErrUnauthorized: no or bad credentials.
	ErrUnauthorized = errors.New("authentication required")
	// ErrForbidden: authenticated, but not allowed.
	ErrForbidden = errors.New("permission denied")
	// ErrUnavailable: a backing service (database, Redis, storage) does not answer.
	ErrUnavailable = errors.New("service unavailable")
)

// ValidationError names the fields that are wrong and why. It matches ErrInvalid.
type ValidationError struct {
	Fields map[string][]string
}

// Invalid returns a ValidationError for one field.
func Invalid(field, format string, args ...any) *ValidationError {
	v := &ValidationError{}
	v.Add(field, format, args...)
	return v
}

// Add records a message for a field.
func (v *ValidationError) Add(field, format string, args ...any) {
	if v.Fields == nil {
		v.Fields = map[string][]string{}
	}
	v.Fields[field] = append(v.Fields[field], fmt.Sprintf(format, args...))
}

// Empty reports whether no field has a message.
func (v *ValidationError) Empty() bool { return v == nil || len(v.Fields) == 0 }

// Err returns v as an error, or nil when it holds nothing.
func (v *ValidationError) Err() error {
	if v.Empty() {
		return nil
	}
	return v
}

func (v *ValidationError) Error() string {
	keys := make([]string, 0, len(v.Fields))
	for k := range v.Fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, k+": "+strings.Join(v.Fields[k], "; "))
	}
	return "invalid input: " + strings.Join(parts, ", ")
}

// Is makes errors.Is(v, ErrInvalid) true.
func (v *ValidationError) Is(target error) bool { return target == ErrInvalid }

// NotFound returns an ErrNotFound naming what is missing.
func NotFound(kind, key string) error { return fmt.Errorf("%s %q: %w", kind, key, ErrNotFound) }

// Conflict returns an ErrConflict with a reason.
func Conflict(format string, args ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), ErrConflict)
}
