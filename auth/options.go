package auth

import (
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"
)

// Option configures a Service. Options are validated by New; a bad value
// makes New fail rather than fall back to a default.
type Option func(*options) error

type options struct {
	secretKey          string
	publicURL          string
	service            string
	tokenLifetime      time.Duration
	loginTokenLifetime time.Duration
	uploadGrace        time.Duration
	pushCreates        bool
	log                *slog.Logger
	namespaces         NamespaceResolver
	failureBurst       int
	failureRefill      time.Duration
	policyRefresh      time.Duration
	credentialCacheTTL time.Duration
	hashParams         argonParams
	now                func() time.Time
}

func defaultOptions() options {
	return options{
		publicURL:          "http://localhost:5001",
		tokenLifetime:      5 * time.Minute,
		loginTokenLifetime: 12 * time.Hour,
		uploadGrace:        24 * time.Hour,
		pushCreates:        true,
		log:                slog.Default(),
		namespaces:         defaultNamespaces{},
		failureBurst:       5,
		failureRefill:      time.Minute,
		credentialCacheTTL: 5 * time.Minute,
		hashParams:         defaultArgonParams,
		now:                time.Now,
	}
}

// WithSecretKey sets the server secret (BERTH_SECRET_KEY, at least 16
// characters). Registry tokens are signed with a key derived from it, so
// every serve replica must share it. Required.
func WithSecretKey(key string) Option {
	return func(o *options) error {
		if len(key) < 16 {
			return fmt.Errorf("secret key must be at least 16 characters")
		}
		o.secretKey = key
		return nil
	}
}

// WithPublicURL sets the URL clients reach Berth at (BERTH_PUBLIC_URL). The
// token realm is <public URL>/token and the token issuer is the URL itself.
// Default http://localhost:5001.
func WithPublicURL(u string) Option {
	return func(o *options) error {
		p, err := url.Parse(u)
		if err != nil || p.Host == "" || (p.Scheme != "http" && p.Scheme != "https") {
			return fmt.Errorf("public URL %q: want http(s)://host[:port]", u)
		}
		o.publicURL = strings.TrimRight(u, "/")
		return nil
	}
}

// WithService sets the registry service name that challenges announce and
// tokens are bound to (their audience). Default: the host[:port] of the
// public URL, as Docker's token servers do.
func WithService(name string) Option {
	return func(o *options) error {
		if strings.TrimSpace(name) == "" || strings.ContainsAny(name, "\"\\") {
			return fmt.Errorf("service name %q: must be non-empty and contain no quotes or backslashes", name)
		}
		o.service = name
		return nil
	}
}

// WithTokenLifetime sets how long a registry bearer token from /token is
// valid. Default 5 minutes.
func WithTokenLifetime(d time.Duration) Option {
	return func(o *options) error {
		if d < time.Second {
			return fmt.Errorf("token lifetime %s: must be at least 1s", d)
		}
		o.tokenLifetime = d
		return nil
	}
}

// WithLoginTokenLifetime sets the default lifetime of registry login tokens
// (the password scripts give to podman login). Default 12 hours.
func WithLoginTokenLifetime(d time.Duration) Option {
	return func(o *options) error {
		if d < time.Minute {
			return fmt.Errorf("login token lifetime %s: must be at least 1m", d)
		}
		o.loginTokenLifetime = d
		return nil
	}
}

// WithUploadGrace sets how long after its expiry a registry token is still
// accepted for an upload session its own user began (VerifyAllowExpired).
// It should match the registry's upload expiry. Default 24 hours.
func WithUploadGrace(d time.Duration) Option {
	return func(o *options) error {
		if d < 0 {
			return fmt.Errorf("upload grace %s: must not be negative", d)
		}
		o.uploadGrace = d
		return nil
	}
}

// WithPushCreatesNamespace says whether any authenticated user may create a
// namespace by pushing into it (and so become its owner). When false, only
// superusers and registry admins may. Default true, as in Galaxy NG.
func WithPushCreatesNamespace(allow bool) Option {
	return func(o *options) error {
		o.pushCreates = allow
		return nil
	}
}

// WithLogger sets the structured logger. Default slog.Default().
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error {
		if l == nil {
			return fmt.Errorf("logger is nil")
		}
		o.log = l
		return nil
	}
}

// WithNamespaces sets how a repository name maps to its namespace and
// whether that namespace exists and is private; the container plugin owns
// that knowledge. Default: the first path component, existing and private
// (so nothing is public until the plugin says so).
func WithNamespaces(r NamespaceResolver) Option {
	return func(o *options) error {
		if r == nil {
			return fmt.Errorf("namespace resolver is nil")
		}
		o.namespaces = r
		return nil
	}
}

// WithFailedLoginLimit sets the failed-login rate limit per username and
// client address: burst failures are allowed, then one more per refill
// interval. The limit is kept in memory, per process. Default 5 and 1m.
func WithFailedLoginLimit(burst int, refill time.Duration) Option {
	return func(o *options) error {
		if burst < 1 || refill <= 0 {
			return fmt.Errorf("failed login limit: burst must be ≥ 1 and refill > 0")
		}
		o.failureBurst, o.failureRefill = burst, refill
		return nil
	}
}

// WithPolicyRefresh lets a process trust its loaded permission policy for up
// to d before it checks the database's policy version again. The default, 0,
// checks on every decision (one primary-key read), so a change made through
// any replica is seen by all at once; a positive d trades that for fewer
// queries, with changes seen after at most d.
func WithPolicyRefresh(d time.Duration) Option {
	return func(o *options) error {
		if d < 0 {
			return fmt.Errorf("policy refresh %s: must not be negative", d)
		}
		o.policyRefresh = d
		return nil
	}
}

// WithCredentialCache sets how long a verified username and password are
// remembered in memory (as a keyed hash), so that clients sending Basic
// credentials on every /v2/ request do not pay an argon2id computation each
// time. A changed password or deactivated user is never served from it. 0
// disables it. Default 5 minutes.
func WithCredentialCache(ttl time.Duration) Option {
	return func(o *options) error {
		if ttl < 0 {
			return fmt.Errorf("credential cache TTL %s: must not be negative", ttl)
		}
		o.credentialCacheTTL = ttl
		return nil
	}
}

// WithClock replaces time.Now, for deterministic tests of expiry and rate
// limits.
func WithClock(now func() time.Time) Option {
	return func(o *options) error {
		if now == nil {
			return fmt.Errorf("clock is nil")
		}
		o.now = now
		return nil
	}
}
