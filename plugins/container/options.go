package container

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"time"
)

// Cache defaults; see cache.go.
const (
	defaultCacheEntries = 100_000
	defaultCacheBytes   = 64 << 20
	defaultLatestTTL    = 1500 * time.Millisecond
)

type options struct {
	log          *slog.Logger
	auth         Authorizer
	onNamespace  NamespaceHook
	onNSDeleted  func(ctx context.Context, namespace string) error
	publicURL    string
	uploadExpiry time.Duration
	cacheEntries int
	cacheBytes   int64
	latestTTL    time.Duration
	// pushRetention is retain_repo_versions of the repositories pushes
	// create; 0 keeps every version.
	pushRetention int
}

// Option configures New.
type Option func(*options) error

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error {
		if l == nil {
			return errors.New("nil logger")
		}
		o.log = l
		return nil
	}
}

// WithAuthorizer sets the per-request access check (default AllowAll).
func WithAuthorizer(a Authorizer) Option {
	return func(o *options) error {
		if a == nil {
			return errors.New("nil authorizer")
		}
		o.auth = a
		return nil
	}
}

// WithNamespaceHook sets the function told about every namespace a push
// creates (default: none).
func WithNamespaceHook(h NamespaceHook) Option {
	return func(o *options) error {
		o.onNamespace = h
		return nil
	}
}

// WithNamespaceDeletedHook sets the function told about every namespace
// deleted, after the deletion committed (default: none): the auth service
// drops the roles bound to it, so a namespace made again later under the
// same name starts with no owners but its new creator.
func WithNamespaceDeletedHook(h func(ctx context.Context, namespace string) error) Option {
	return func(o *options) error {
		o.onNSDeleted = h
		return nil
	}
}

// WithPublicURL makes Location headers absolute URLs under base (for
// example "https://registry.example.com"), as BERTH_PUBLIC_URL says. By
// default they are paths, which every client resolves against the request.
func WithPublicURL(base string) Option {
	return func(o *options) error {
		if base == "" {
			o.publicURL = ""
			return nil
		}
		u, err := url.Parse(base)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("public URL %q: want http(s)://host[:port][/path]", base)
		}
		if u.RawQuery != "" || u.Fragment != "" {
			return fmt.Errorf("public URL %q: no query or fragment allowed", base)
		}
		o.publicURL = base
		return nil
	}
}

// WithUploadExpiry sets how long an upload session may stay open before it
// is refused and removed by CleanupUploads (default DefaultUploadExpiry).
func WithUploadExpiry(d time.Duration) Option {
	return func(o *options) error {
		if d < time.Minute {
			return fmt.Errorf("upload expiry %s: must be at least a minute", d)
		}
		o.uploadExpiry = d
		return nil
	}
}

// WithCacheLimits bounds the read caches: entries per cache and the total
// bytes of cached manifests (defaults 100 000 and 64 MiB). Zero entries
// turns caching off, which tests use to see the database's answers.
func WithCacheLimits(entries int, manifestBytes int64) Option {
	return func(o *options) error {
		if entries < 0 || manifestBytes < 0 {
			return errors.New("cache limits must not be negative")
		}
		o.cacheEntries, o.cacheBytes = entries, manifestBytes
		return nil
	}
}

// WithLatestTTL sets how long "which version does name serve" is cached
// (default 1.5 s); 0 turns that cache off. Versions this process makes
// invalidate it at once; the TTL bounds how stale another replica's push
// (or a change of a distribution through the REST API) can look.
func WithLatestTTL(d time.Duration) Option {
	return func(o *options) error {
		if d < 0 || d > time.Minute {
			return fmt.Errorf("latest TTL %s: must be between 0 and 1m", d)
		}
		o.latestTTL = d
		return nil
	}
}

// WithPushRetention sets retain_repo_versions of the repositories a first
// push creates (Galaxy NG keeps 1, so that deleting an image and cleaning
// up orphans frees its storage). 0, the default, keeps every version.
func WithPushRetention(versions int) Option {
	return func(o *options) error {
		if versions < 0 {
			return fmt.Errorf("push retention %d: must not be negative (0 keeps every version)", versions)
		}
		o.pushRetention = versions
		return nil
	}
}
