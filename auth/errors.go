package auth

import (
	"errors"
	"fmt"
	"time"

	"github.com/berth-dev/berth/core"
)

// Sentinel errors of package auth. Each wraps the core sentinel that says how
// the API answers it, so errors.Is works with either.
var (
	// ErrInvalidCredentials: wrong username, password or token. The message
	// never tells which part was wrong.
	ErrInvalidCredentials = fmt.Errorf("invalid credentials: %w", core.ErrUnauthorized)
	// ErrInvalidToken: a registry bearer token is malformed, tampered with,
	// meant for another service or issuer, or expired.
	ErrInvalidToken = fmt.Errorf("invalid registry token: %w", core.ErrUnauthorized)
	// ErrTokenExpired: a registry bearer token was valid but has expired. It
	// matches ErrInvalidToken too.
	ErrTokenExpired = fmt.Errorf("registry token expired: %w", ErrInvalidToken)
	// ErrInsufficientScope: a valid registry token does not grant the action.
	ErrInsufficientScope = fmt.Errorf("registry token does not grant the requested access: %w", core.ErrForbidden)
	// ErrPermanentRole: the binding is a namespace creator's owner role, which
	// cannot be removed.
	ErrPermanentRole = fmt.Errorf("permanent role binding: %w", core.ErrConflict)
	// ErrLastSuperuser: the change would leave no active superuser.
	ErrLastSuperuser = fmt.Errorf("the last active superuser cannot be removed, demoted or deactivated: %w", core.ErrConflict)
	// ErrRateLimited: too many failed logins for this user from this address.
	// The concrete error is a *RateLimitError.
	ErrRateLimited = errors.New("too many failed login attempts")
)

// RateLimitError says when the next login attempt will be accepted.
type RateLimitError struct {
	RetryAfter time.Duration
}

func (e *RateLimitError) Error() string {
	return fmt.Sprintf("%s; retry in %s", ErrRateLimited, e.RetryAfter.Round(time.Second))
}

// Is makes errors.Is(err, ErrRateLimited) true.
func (e *RateLimitError) Is(target error) bool { return target == ErrRateLimited }
