package upstream

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// forwardProxy is an HTTP proxy for plain-http targets that wants Basic
// proxy credentials; it refuses CONNECT.
type forwardProxy struct {
	user, pass string
	mu         sync.Mutex
	seen       int
}

func (p *forwardProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	p.seen++
	p.mu.Unlock()
	want := "Basic " + base64.StdEncoding.EncodeToString([]byte(p.user+":"+p.pass))
	if r.Header.Get("Proxy-Authorization") != want {
		w.Header().Set("Proxy-Authenticate", `Basic realm="proxy"`)
		http.Error(w, "proxy authentication required", http.StatusProxyAuthRequired)
		return
	}
	if r.Method == http.MethodConnect {
		http.Error(w, "no tunnels", http.StatusForbidden)
		return
	}
	out := r.Clone(r.Context())
	out.RequestURI = ""
	out.Header.Del("Proxy-Authorization")
	resp, err := http.DefaultTransport.RoundTrip(out)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	for k, vs := range resp.Header {
		w.Header()[k] = vs
	}
	w.WriteHeader(resp.StatusCode)
	io.Copy(w, resp.Body)
}

func TestPing(t *testing.T) {
	reg := newRegistry()
	pushImage(t, reg, "app", "1.0")
	open := serve(t, reg, false)
	basic := serve(t, chain(reg, basicAuth("alice", "alice-password")), false)
	bearer := serve(t, chain(reg, newTokenServer("bob", "bob-password").middleware), false)
	tlsSrv := serve(t, reg, true)
	tlsCA := certPEM(tlsSrv.Certificate())
	_, tlsPort, _ := net.SplitHostPort(tlsSrv.Listener.Addr().String())

	mtls := httptest.NewUnstartedServer(reg)
	cert, key, pool := clientCert(t)
	mtls.TLS = &tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool}
	mtls.StartTLS()
	t.Cleanup(mtls.Close)
	mtlsCA := certPEM(mtls.Certificate())

	notFound := serve(t, http.NotFoundHandler(), false)
	html := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, "<html><body>Welcome to nginx!</body></html>")
	}), false)
	noChallenge := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusUnauthorized)
	}), false)
	down := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ociError(w, http.StatusServiceUnavailable, "UNAVAILABLE", "maintenance")
	}), false)
	foreignRealm := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="http://127.0.0.2:1/token",service="x"`)
		ociError(w, http.StatusUnauthorized, "UNAUTHORIZED", "authentication required")
	}), false)
	proxy := &forwardProxy{user: "puser", pass: "proxy-password"}
	proxySrv := serve(t, proxy, false)

	for _, tc := range []struct {
		name string
		cfg  Config
		kind error  // nil: success
		says string // in the error
	}{
		{"open registry", Config{URL: open.URL}, nil, ""},
		{"basic", Config{URL: basic.URL, Username: "alice", Password: "alice-password"}, nil, ""},
		{"basic wrong password", Config{URL: basic.URL, Username: "alice", Password: "wrong-password"},
			ErrUnauthorized, `the registry rejected the credentials of user "alice"`},
		{"basic anonymous", Config{URL: basic.URL}, ErrUnauthorized, "the registry requires credentials and none are configured"},
		{"bearer", Config{URL: bearer.URL, Username: "bob", Password: "bob-password"}, nil, ""},
		{"bearer wrong password", Config{URL: bearer.URL, Username: "bob", Password: "wrong-password"},
			ErrUnauthorized, `the registry's token service rejected the credentials of user "bob"`},
		{"bearer anonymous", Config{URL: bearer.URL}, ErrUnauthorized, "token service requires credentials and none are configured"},
		{"realm on another internal host", Config{URL: foreignRealm.URL}, ErrUnauthorized,
			"cannot get a token from the registry's token service at 127.0.0.2:1: invalid realm"},
		{"nothing listening", Config{URL: "http://" + closedAddr(t)}, ErrUnreachable, "connection refused"},
		{"https to plain http", Config{URL: strings.Replace(open.URL, "http:", "https:", 1)}, ErrTLS, "the server speaks plain HTTP, not TLS (use an http:// URL)"},
		{"unknown authority", Config{URL: tlsSrv.URL}, ErrTLS, "signed by an unknown authority"},
		{"ca cert", Config{URL: tlsSrv.URL, CACert: tlsCA}, nil, ""},
		{"tls validation off", Config{URL: tlsSrv.URL, InsecureSkipTLSVerify: true}, nil, ""},
		{"wrong host", Config{URL: "https://localhost:" + tlsPort, CACert: tlsCA}, ErrTLS, `not valid for host "localhost"`},
		{"client cert missing", Config{URL: mtls.URL, CACert: mtlsCA}, ErrTLS, "refused the TLS handshake"},
		{"client cert", Config{URL: mtls.URL, CACert: mtlsCA, ClientCert: cert, ClientKey: key}, nil, ""},
		{"404 web server", Config{URL: notFound.URL}, ErrNotRegistry, "not as a container registry: GET /v2/ answered 404"},
		{"html web server", Config{URL: html.URL}, ErrNotRegistry, "/v2/ is a text/html page"},
		{"401 without challenge", Config{URL: noChallenge.URL}, ErrNotRegistry, "401 without a Basic or Bearer challenge"},
		{"registry down", Config{URL: down.URL}, ErrUnavailable, "503 Service Unavailable: UNAVAILABLE: maintenance"},
		{"through proxy", Config{URL: open.URL, ProxyURL: proxySrv.URL, ProxyUsername: "puser", ProxyPassword: "proxy-password"}, nil, ""},
		{"proxy wrong password", Config{URL: open.URL, ProxyURL: proxySrv.URL, ProxyUsername: "puser", ProxyPassword: "wrong-proxy-password"},
			ErrProxy, "the proxy wants credentials, or refused the ones configured (407 Proxy Authentication Required: proxy authentication required)"},
		{"proxy refuses CONNECT", Config{URL: tlsSrv.URL, CACert: tlsCA, ProxyURL: proxySrv.URL, ProxyUsername: "puser", ProxyPassword: "proxy-password"},
			ErrProxy, "the proxy refused to connect us to the registry (403 Forbidden)"},
		{"proxy unreachable", Config{URL: open.URL, ProxyURL: "http://" + closedAddr(t)}, ErrProxy, "cannot connect to the proxy"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newTestClient(t, tc.cfg, WithMaxAttempts(2))
			err := c.Ping(ctxTimeout(t, 10e9))
			if tc.kind == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, tc.kind) {
				t.Fatalf("err = %v, want %v", err, tc.kind)
			}
			msg := err.Error()
			if !strings.Contains(msg, tc.says) || !strings.HasPrefix(msg, "upstream: ping: ") {
				t.Errorf("%q does not say %q", msg, tc.says)
			}
			for _, secret := range []string{tc.cfg.Password, tc.cfg.ProxyPassword} {
				if secret != "" && strings.Contains(msg, secret) {
					t.Errorf("%q shows a secret", msg)
				}
			}
			var e *Error
			if errors.As(err, &e); e.Temporary() != (tc.kind == ErrUnavailable) {
				t.Errorf("Temporary() = %v", e.Temporary())
			}
			t.Log(msg)
		})
	}
	if proxy.seen == 0 {
		t.Error("the proxy saw nothing")
	}
}

func TestDescribeNetError(t *testing.T) {
	dns := &net.OpError{Op: "dial", Net: "tcp", Err: &net.DNSError{Err: "no such host", Name: "registry.invalid", IsNotFound: true}}
	kind, msg, temp := describeNetError(dns)
	if kind != ErrUnreachable || msg != `cannot resolve host "registry.invalid"` || temp {
		t.Errorf("DNS: %v %q %v", kind, msg, temp)
	}
	if retryableError(dns) {
		t.Error("a missing host is retried")
	}
	tempDNS := &net.DNSError{Err: "server misbehaving", Name: "r.example.com", IsTemporary: true}
	if _, _, temp := describeNetError(tempDNS); !temp || !retryableError(tempDNS) {
		t.Error("a temporary DNS failure is final")
	}
	if kind, _, _ := describeNetError(context.Canceled); kind != nil {
		t.Errorf("canceled: %v", kind)
	}
}
