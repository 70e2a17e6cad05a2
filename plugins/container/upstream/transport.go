package upstream

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"
)

// newBaseTransport is the wire: proxy, TLS roots and client certificate
// from cfg (already validated).
func newBaseTransport(cfg Config) (*http.Transport, error) {
	tlsConf := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: cfg.InsecureSkipTLSVerify, //nolint:gosec // the remote's explicit choice
	}
	if cfg.CACert != "" {
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM([]byte(cfg.CACert)) {
			return nil, fmt.Errorf("%w: ca_cert: no PEM certificate found", ErrInvalidConfig)
		}
		tlsConf.RootCAs = pool
	}
	if cfg.ClientCert != "" {
		pair, err := tls.X509KeyPair([]byte(cfg.ClientCert), []byte(cfg.ClientKey))
		if err != nil {
			return nil, fmt.Errorf("%w: client_cert: %w", ErrInvalidConfig, err)
		}
		tlsConf.Certificates = []tls.Certificate{pair}
	}
	proxy := http.ProxyFromEnvironment
	if cfg.ProxyURL != "" {
		u, err := parseProxyURL(cfg.ProxyURL)
		if err != nil {
			return nil, fmt.Errorf("%w: proxy_url: %w", ErrInvalidConfig, err)
		}
		if cfg.ProxyUsername != "" {
			u.User = url.UserPassword(cfg.ProxyUsername, cfg.ProxyPassword)
		}
		proxy = http.ProxyURL(u)
	}
	conc := cfg.DownloadConcurrency
	if conc == 0 {
		conc = DefaultDownloadConcurrency
	}
	return &http.Transport{
		Proxy: proxy,
		// A proxy's refusal to CONNECT becomes a typed error (net/http
		// would return an untyped one with the status text only).
		OnProxyConnectResponse: func(_ context.Context, _ *url.URL, _ *http.Request, resp *http.Response) error {
			if resp.StatusCode != http.StatusOK {
				return &proxyStatusError{status: resp.Status}
			}
			return nil
		},
		DialContext: (&net.Dialer{
			Timeout:   15 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		TLSClientConfig:       tlsConf,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   max(2*conc, 8),
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   15 * time.Second,
		ResponseHeaderTimeout: 2 * time.Minute,
		ExpectContinueTimeout: time.Second,
	}, nil
}

// userAgentTransport sets the User-Agent on a clone of each request.
type userAgentTransport struct {
	inner http.RoundTripper
	ua    string
}

func (t *userAgentTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	r := req.Clone(req.Context())
	r.Header.Set("User-Agent", t.ua)
	return t.inner.RoundTrip(r)
}

// checkRedirect is the redirect policy of every request the Client makes
// itself (blob GETs are redirected to storage, often on another host):
//   - only http and https, and no https→http downgrade from an https
//     registry;
//   - Authorization is removed whenever host or port changes (net/http
//     keeps it for the same host name on another port, and for subdomains);
//   - a registry on a public address may not send us to a loopback,
//     private or link-local address (SSRF); one on such an address may,
//     since its storage usually lives there too. Host names are judged by
//     their text (localhost, IP literals), not resolved.
func (c *Client) checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= 10 {
		return &redirectError{reason: "stopped after 10 redirects"}
	}
	orig := via[0].URL
	switch req.URL.Scheme {
	case "https":
	case "http":
		if c.base.Scheme == "https" {
			return &redirectError{reason: fmt.Sprintf("refusing redirect from https to plain http (%s)", redactURL(req.URL))}
		}
	default:
		return &redirectError{reason: fmt.Sprintf("refusing redirect to scheme %q", req.URL.Scheme)}
	}
	if !sameHostPort(req.URL, orig) {
		req.Header.Del("Authorization")
		req.Header.Del("Cookie")
	}
	if dst := req.URL.Hostname(); !strings.EqualFold(dst, orig.Hostname()) && isInternalHost(dst) && !isInternalHost(c.base.Hostname()) {
		return &redirectError{reason: fmt.Sprintf("refusing redirect from %s to internal address %s", orig.Host, req.URL.Host)}
	}
	return nil
}

// sameHostPort compares host and port, defaulting the port by scheme.
func sameHostPort(a, b *url.URL) bool {
	return strings.EqualFold(a.Hostname(), b.Hostname()) && portOf(a) == portOf(b)
}

func portOf(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	if u.Scheme == "http" {
		return "80"
	}
	return "443"
}

// isInternalHost reports whether host names a loopback, private,
// link-local or unspecified address.
func isInternalHost(host string) bool {
	h := strings.ToLower(strings.TrimSuffix(host, "."))
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return true
	}
	h, _, _ = strings.Cut(h, "%") // IPv6 zone
	addr, err := netip.ParseAddr(h)
	if err != nil {
		return false
	}
	addr = addr.Unmap()
	return addr.IsLoopback() || addr.IsPrivate() || addr.IsLinkLocalUnicast() ||
		addr.IsLinkLocalMulticast() || addr.IsUnspecified()
}
