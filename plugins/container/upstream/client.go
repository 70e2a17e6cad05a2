package upstream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Client talks to one remote registry. It is safe for concurrent use; its
// rate limit holds across all its goroutines.
type Client struct {
	cfg     Config
	opts    options
	log     *slog.Logger
	base    *urlBase // scheme and host of the registry
	reg     name.Registry
	auth    authn.Authenticator
	wire    *http.Transport
	plain   http.RoundTripper // user agent → retry → limit → wire, no auth
	lim     *hostLimiter
	slots   chan struct{} // open blob downloads
	secrets []string      // scrubbed from error texts

	chLock chan struct{}        // held while finding the challenge
	ch     *transport.Challenge // the /v2/ challenge, once known

	mu    sync.Mutex
	repos map[string]*repoAuth
}

// urlBase is a registry's scheme and host.
type urlBase struct{ Scheme, Host string }

// Hostname is Host without its port.
func (b *urlBase) Hostname() string {
	h := b.Host
	if strings.HasPrefix(h, "[") {
		if i := strings.Index(h, "]"); i > 0 {
			return h[1:i]
		}
	}
	if i := strings.LastIndex(h, ":"); i >= 0 {
		return h[:i]
	}
	return h
}

// repoAuth is a repository's authenticated transport, built once.
type repoAuth struct {
	lock chan struct{} // held while building rt
	rt   http.RoundTripper
}

// lock takes a one-slot channel lock, or gives up when ctx ends.
func lock(ctx context.Context, l chan struct{}) (unlock func(), err error) {
	select {
	case l <- struct{}{}:
		return func() { <-l }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// New builds a Client from a remote's settings. It makes no request: use
// Ping to check the settings.
func New(cfg Config, opts ...Option) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	o := defaultOptions()
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	u, err := parseRegistryURL(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("%w: url: %w", ErrInvalidConfig, err)
	}
	regOpts := []name.Option{name.WeakValidation}
	if u.Scheme == "http" {
		regOpts = append(regOpts, name.Insecure)
	}
	reg, err := name.NewRegistry(u.Host, regOpts...)
	if err != nil {
		return nil, fmt.Errorf("%w: url: %w", ErrInvalidConfig, err)
	}
	wire, err := newBaseTransport(cfg)
	if err != nil {
		return nil, err
	}
	if cfg.DownloadConcurrency == 0 {
		cfg.DownloadConcurrency = DefaultDownloadConcurrency
	}
	if o.limiters == nil {
		o.limiters = NewLimiters()
	}
	// docker.io becomes index.docker.io here: requests go to, and limits
	// are kept for, the registry's API host.
	host := reg.RegistryStr()
	lim := o.limiters.get(host, cfg.RateLimit, o.burst)
	c := &Client{
		cfg:    cfg,
		opts:   o,
		log:    o.logger.With("registry", host),
		base:   &urlBase{Scheme: u.Scheme, Host: host},
		reg:    reg,
		auth:   authn.Anonymous,
		wire:   wire,
		lim:    lim,
		slots:  make(chan struct{}, cfg.DownloadConcurrency),
		chLock: make(chan struct{}, 1),
		repos:  map[string]*repoAuth{},
	}
	if cfg.Username != "" {
		c.auth = authn.FromConfig(authn.AuthConfig{Username: cfg.Username, Password: cfg.Password})
	}
	c.secrets = []string{cfg.Password, cfg.ProxyPassword, cfg.ClientKey}
	if pu, err := parseProxyURL(cfg.ProxyURL); err == nil && pu.User != nil {
		if p, ok := pu.User.Password(); ok {
			c.secrets = append(c.secrets, p)
		}
	}
	c.plain = &userAgentTransport{
		ua: o.userAgent,
		inner: &retryTransport{
			inner:         &limitTransport{inner: wire, lim: lim, limited: cfg.RateLimit > 0},
			lim:           lim,
			log:           c.log,
			maxAttempts:   o.maxAttempts,
			backoffBase:   o.backoffBase,
			backoffMax:    o.backoffMax,
			maxRetryAfter: o.maxRetryAfter,
			scrub:         c.scrub,
		},
	}
	return c, nil
}

// Registry is the registry's API host (and port), e.g. "index.docker.io"
// for a docker.io URL.
func (c *Client) Registry() string { return c.base.Host }

// Concurrency is the configured download concurrency: how many blobs may
// be open at once (Blob blocks beyond it), and so a good number of workers
// for a sync.
func (c *Client) Concurrency() int { return cap(c.slots) }

// Close releases idle connections. Open blob bodies stay usable.
func (c *Client) Close() { c.wire.CloseIdleConnections() }

// url is the registry URL of path (which starts with /v2/).
func (c *Client) url(path string) string { return c.base.Scheme + "://" + c.base.Host + path }

// httpClient sends requests through rt with our redirect policy.
func (c *Client) httpClient(rt http.RoundTripper) *http.Client {
	return &http.Client{Transport: rt, CheckRedirect: c.checkRedirect}
}

// repository validates a repository name and returns it as the registry
// knows it (index.docker.io/alpine is library/alpine).
func (c *Client) repository(repo string) (name.Repository, error) {
	r, err := name.NewRepository(c.base.Host+"/"+repo, name.WeakValidation)
	if err != nil {
		return name.Repository{}, fmt.Errorf("invalid repository name %q: %w", oneLine(repo, 300), err)
	}
	return r, nil
}

// challenge returns the registry's authentication challenge, asking /v2/
// the first time (and again after a failure).
func (c *Client) challenge(ctx context.Context) (*transport.Challenge, error) {
	unlock, err := lock(ctx, c.chLock)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if c.ch != nil {
		return c.ch, nil
	}
	ch, err := c.probe(ctx)
	if err != nil {
		return nil, err
	}
	c.ch = ch
	return ch, nil
}

// transport returns the authenticated transport for a repository: for a
// Bearer registry a token with pull scope for it, fetched once (and
// refreshed by go-containerregistry when the registry answers 401 again);
// for Basic or open registries a transport that adds the credentials to
// requests to the registry host.
func (c *Client) transport(ctx context.Context, repo name.Repository) (http.RoundTripper, error) {
	ch, err := c.challenge(ctx)
	if err != nil {
		return nil, err
	}
	key := ""
	if strings.EqualFold(ch.Scheme, "bearer") {
		key = repo.RepositoryStr()
	}
	c.mu.Lock()
	ra := c.repos[key]
	if ra == nil {
		ra = &repoAuth{lock: make(chan struct{}, 1)}
		c.repos[key] = ra
	}
	c.mu.Unlock()

	unlock, err := lock(ctx, ra.lock)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if ra.rt != nil {
		return ra.rt, nil
	}
	tok := &transport.Token{}
	if key != "" {
		if tok, err = c.token(ctx, ch, []string{repo.Scope(transport.PullScope)}); err != nil {
			return nil, err
		}
	}
	rt, err := transport.FromToken(c.reg, c.auth, c.plain, ch, tok)
	if err != nil {
		return nil, err
	}
	ra.rt = rt
	return rt, nil
}

// token asks the challenge's realm for a token with the given scopes.
// Failures other than the token service's answers and network errors (an
// unusable realm, an answer without a token) become a *tokenError.
func (c *Client) token(ctx context.Context, ch *transport.Challenge, scopes []string) (*transport.Token, error) {
	tok, err := transport.Exchange(ctx, c.reg, c.auth, c.plain, scopes, ch)
	if err != nil {
		var te *transport.Error
		var ue *url.Error
		if errors.As(err, &te) || errors.As(err, &ue) || ctx.Err() != nil {
			return nil, err
		}
		return nil, &tokenError{realm: realmHost(ch), err: err}
	}
	if tok.Token == "" {
		tok.Token = tok.AccessToken // OAuth2-style answer
	}
	return tok, nil
}

// tokenError is a failure to get a token that is not the token service
// refusing us.
type tokenError struct {
	realm string
	err   error
}

// Error is the cause's first line: go-containerregistry appends the token
// service's whole answer to some errors, and that may hold credentials.
func (e *tokenError) Error() string {
	msg, _, _ := strings.Cut(e.err.Error(), "\n")
	return msg
}

func (e *tokenError) Unwrap() error { return e.err }
