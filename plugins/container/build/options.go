package build

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"time"
)

// Runner runs builds with buildah. It holds configuration only and is safe
// for concurrent use: each run has its own work directory and storage.
type Runner struct {
	buildah    string
	insecure   map[string]bool
	grace      time.Duration
	retries    int // -1: buildah's default
	retryDelay time.Duration
	limits     ContextLimits
	transport  http.RoundTripper
	log        *slog.Logger
}

// Option configures a [Runner].
type Option func(*Runner) error

// NewRunner returns a Runner. Without options it runs "buildah" from PATH,
// verifies TLS for every registry, gives buildah 5 seconds to stop after
// SIGTERM when a build is canceled, keeps buildah's retry policy and uses
// [DefaultContextLimits].
func NewRunner(opts ...Option) (*Runner, error) {
	r := &Runner{
		buildah:  "buildah",
		insecure: map[string]bool{},
		grace:    5 * time.Second,
		retries:  -1,
		limits:   DefaultContextLimits,
		log:      slog.Default(),
	}
	for _, opt := range opts {
		if err := opt(r); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// WithBuildah sets the buildah executable (default "buildah", from PATH).
func WithBuildah(path string) Option {
	return func(r *Runner) error {
		if path == "" {
			return errors.New("build: empty buildah path")
		}
		r.buildah = path
		return nil
	}
}

// hostRE is a registry host: a name or IPv4 address, or an IPv6 address in
// brackets, with an optional port.
var hostRE = regexp.MustCompile(`^(?:[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$`)

// WithInsecureRegistries lets builds reach these registries over plain HTTP
// or TLS without verification ("127.0.0.1:5000", "localhost:5000"). Each
// host is matched exactly (with its port); every other registry needs
// verified TLS. Default: none.
func WithInsecureRegistries(hosts ...string) Option {
	return func(r *Runner) error {
		for _, h := range hosts {
			if !hostRE.MatchString(h) {
				return fmt.Errorf("build: invalid insecure registry %q: want host[:port]", h)
			}
			r.insecure[h] = true
		}
		return nil
	}
}

// WithKillGrace sets how long a canceled build's processes get between
// SIGTERM and SIGKILL (default 5s).
func WithKillGrace(d time.Duration) Option {
	return func(r *Runner) error {
		if d <= 0 {
			return fmt.Errorf("build: kill grace %v: must be positive", d)
		}
		r.grace = d
		return nil
	}
}

// WithRetry sets how often buildah retries a failed pull or push, and the
// delay between tries (buildah's --retry and --retry-delay; default:
// buildah's own, 3 times 2s). Zero retries fails at the first error.
func WithRetry(retries int, delay time.Duration) Option {
	return func(r *Runner) error {
		if retries < 0 || delay < 0 {
			return fmt.Errorf("build: retry %d, %v: must not be negative", retries, delay)
		}
		r.retries, r.retryDelay = retries, delay
		return nil
	}
}

// WithContextLimits bounds the build context archives of raw-mode jobs
// (default [DefaultContextLimits]).
func WithContextLimits(l ContextLimits) Option {
	return func(r *Runner) error {
		if l.MaxBytes <= 0 || l.MaxEntries <= 0 {
			return errors.New("build: context limits must be positive")
		}
		r.limits = l
		return nil
	}
}

// WithTransport sets the HTTP transport [Runner.BaseUser] uses to read base
// images (default http.DefaultTransport), for example one with Berth's
// rate limiting and proxy settings. The runner wraps it so that plain HTTP
// only goes to insecure registries.
func WithTransport(t http.RoundTripper) Option {
	return func(r *Runner) error {
		if t == nil {
			return errors.New("build: nil transport")
		}
		r.transport = t
		return nil
	}
}

// WithLogger sets the logger (default slog.Default()). The runner logs the
// start, end and cancellation of builds; never credentials.
func WithLogger(l *slog.Logger) Option {
	return func(r *Runner) error {
		if l == nil {
			return errors.New("build: nil logger")
		}
		r.log = l
		return nil
	}
}
