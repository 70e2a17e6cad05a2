package upstream

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/url"
	"strings"

	"github.com/berth-dev/berth/core"
)

// DefaultDownloadConcurrency is used when Config.DownloadConcurrency is 0.
const DefaultDownloadConcurrency = 4

// Config is how to reach one remote registry. Its zero TLS setting is the
// safe one: certificates are verified unless InsecureSkipTLSVerify is set.
type Config struct {
	// URL is the registry's base URL: http:// or https://, host and optional
	// port, e.g. "https://registry-1.docker.io". The path may only be empty,
	// "/" or "/v2/": the distribution API lives at the host's root.
	// "docker.io" means Docker Hub's registry, index.docker.io.
	URL string
	// Username and Password are Basic credentials, sent to the registry
	// (Basic challenge) or to its token service (Bearer challenge). Empty
	// means anonymous.
	Username, Password string
	// InsecureSkipTLSVerify turns certificate verification off (a remote's
	// tls_validation false).
	InsecureSkipTLSVerify bool
	// CACert is PEM: certificates trusted in addition to the system's.
	CACert string
	// ClientCert and ClientKey are PEM: a certificate to authenticate with.
	ClientCert, ClientKey string
	// ProxyURL is an http:// or https:// proxy; empty means the environment's
	// (HTTP_PROXY, HTTPS_PROXY, NO_PROXY). ProxyUsername and ProxyPassword
	// are sent to it as Proxy-Authorization.
	ProxyURL                     string
	ProxyUsername, ProxyPassword string
	// RateLimit is the most requests per second sent on behalf of this
	// remote (0: no limit).
	RateLimit float64
	// DownloadConcurrency bounds the blobs open at once (0:
	// DefaultDownloadConcurrency).
	DownloadConcurrency int
}

// ConfigFromRemote is the Config of a stored remote and its opened secrets.
func ConfigFromRemote(r *core.Remote, cred core.RemoteCredentials) Config {
	return Config{
		URL:                   r.URL,
		Username:              r.Username,
		Password:              cred.Password,
		InsecureSkipTLSVerify: !r.TLSValidation,
		CACert:                r.CACert,
		ClientCert:            r.ClientCert,
		ClientKey:             cred.ClientKey,
		ProxyURL:              r.ProxyURL,
		ProxyUsername:         r.ProxyUsername,
		ProxyPassword:         cred.ProxyPassword,
		RateLimit:             r.RateLimit,
		DownloadConcurrency:   r.DownloadConcurrency,
	}
}

// Validate checks the configuration, naming every problem; the error
// matches ErrInvalidConfig.
func (c Config) Validate() error {
	var errs []error
	add := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: %s: %s", ErrInvalidConfig, field, fmt.Sprintf(format, args...)))
	}
	if _, err := parseRegistryURL(c.URL); err != nil {
		add("url", "%v", err)
	}
	if c.Password != "" && c.Username == "" {
		add("username", "required with a password")
	}
	if c.CACert != "" {
		if !x509.NewCertPool().AppendCertsFromPEM([]byte(c.CACert)) {
			add("ca_cert", "no PEM certificate found")
		}
	}
	switch {
	case c.ClientCert == "" && c.ClientKey == "":
	case c.ClientCert == "" || c.ClientKey == "":
		add("client_cert", "a client certificate and its key go together")
	default:
		if _, err := tls.X509KeyPair([]byte(c.ClientCert), []byte(c.ClientKey)); err != nil {
			// The crypto/tls error never contains key material.
			add("client_cert", "not a usable certificate and key pair: %v", err)
		}
	}
	if c.ProxyURL != "" {
		if _, err := parseProxyURL(c.ProxyURL); err != nil {
			add("proxy_url", "%v", err)
		}
	} else if c.ProxyUsername != "" || c.ProxyPassword != "" {
		add("proxy_username", "proxy credentials need a proxy URL")
	}
	if c.ProxyPassword != "" && c.ProxyUsername == "" {
		add("proxy_username", "required with a proxy password")
	}
	if c.RateLimit < 0 || math.IsNaN(c.RateLimit) || math.IsInf(c.RateLimit, 0) {
		add("rate_limit", "must be a number of requests per second, 0 for no limit")
	}
	if c.DownloadConcurrency < 0 || c.DownloadConcurrency > 64 {
		add("download_concurrency", "must be between 1 and 64 (0 for the default)")
	}
	return errors.Join(errs...)
}

// LogValue shows the configuration without its secrets.
func (c Config) LogValue() slog.Value {
	proxy := ""
	if u, err := parseProxyURL(c.ProxyURL); err == nil {
		proxy = redactURL(u)
	}
	return slog.GroupValue(
		slog.String("url", c.URL),
		slog.String("username", c.Username),
		slog.Bool("password_set", c.Password != ""),
		slog.Bool("tls_validation", !c.InsecureSkipTLSVerify),
		slog.Bool("ca_cert_set", c.CACert != ""),
		slog.Bool("client_cert_set", c.ClientCert != ""),
		slog.String("proxy_url", proxy),
		slog.String("proxy_username", c.ProxyUsername),
		slog.Float64("rate_limit", c.RateLimit),
		slog.Int("download_concurrency", c.DownloadConcurrency),
	)
}

// String is LogValue's text, so that printing a Config by mistake does not
// leak its secrets.
func (c Config) String() string { return c.LogValue().String() }

// GoString is String, for %#v.
func (c Config) GoString() string { return "upstream.Config" + c.String() }

// parseRegistryURL checks a registry URL and returns it reduced to scheme
// and lower-cased host.
func parseRegistryURL(raw string) (*url.URL, error) {
	if raw == "" {
		return nil, errors.New("required")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, errors.New("not a URL")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("scheme must be http or https, not %q", u.Scheme)
	}
	if u.Host == "" {
		return nil, errors.New("host missing")
	}
	if u.User != nil {
		return nil, errors.New("must not contain credentials; use username and password")
	}
	switch strings.TrimSuffix(u.Path, "/") {
	case "", "/v2":
	default:
		return nil, fmt.Errorf("path %q not supported: a registry's API is at the host's /v2/", u.Path)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, errors.New("must not have a query or fragment")
	}
	return &url.URL{Scheme: u.Scheme, Host: strings.ToLower(u.Host)}, nil
}

func parseProxyURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, errors.New("not a URL")
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errors.New("must be an http:// or https:// URL with a host")
	}
	return u, nil
}
