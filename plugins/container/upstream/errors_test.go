package upstream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"testing"
)

func TestRedactURL(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"https://r.example.com/v2/app/tags/list?n=100&last=v1", "https://r.example.com/v2/app/tags/list?last=v1&n=100"},
		{"https://auth.example.com/token?scope=repository%3Aapp%3Apull&service=reg&account=bob&password=x",
			"https://auth.example.com/token?account=REDACTED&password=REDACTED&scope=repository%3Aapp%3Apull&service=reg"},
		{"https://bucket.s3.amazonaws.com/blob?X-Amz-Credential=AKIA&X-Amz-Signature=abc&X-Amz-Expires=60",
			"https://bucket.s3.amazonaws.com/blob?X-Amz-Credential=REDACTED&X-Amz-Expires=REDACTED&X-Amz-Signature=REDACTED"},
		{"https://x.blob.core.windows.net/c/b?sig=abc&se=2030", "https://x.blob.core.windows.net/c/b?se=REDACTED&sig=REDACTED"},
		{"https://u:pw@host/path?access_token=t#frag", "https://host/path?access_token=REDACTED"},
	} {
		u, _ := url.Parse(tc.in)
		if got := redactURL(u); got != tc.want {
			t.Errorf("redactURL(%s)\n got %s\nwant %s", tc.in, got, tc.want)
		}
	}
}

// TestSecretsNeverShown drives failures that involve every secret a Client
// holds or meets, and checks the errors and the debug log.
func TestSecretsNeverShown(t *testing.T) {
	reg := newRegistry()
	img := pushImage(t, reg, "app", "1.0")
	d, _ := layerOf(t, img)
	secrets := []string{"alice-password", "proxy-password", "url-proxy-password", "AMZSECRET", "TOKSECRET", "SIGSECRET", "secret-token-"}
	var logs syncBuffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var errs []error

	// A storage URL full of credentials that keeps failing.
	storage := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "storage down", http.StatusServiceUnavailable)
	}), false)
	ts := newTokenServer("alice", "alice-password")
	redirect := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/") {
				http.Redirect(w, r, storage.URL+"/b?X-Amz-Signature=AMZSECRET&token=TOKSECRET&sig=SIGSECRET", http.StatusTemporaryRedirect)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
	srv := serve(t, chain(reg, ts.middleware, redirect), false)
	c := newTestClient(t, Config{URL: srv.URL, Username: "alice", Password: "alice-password"}, WithLogger(logger), WithMaxAttempts(2))
	_, _, err := c.Blob(context.Background(), "app", d)
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "X-Amz-Signature=REDACTED") {
		t.Errorf("storage failure: %v", err)
	}
	errs = append(errs, err)

	// Wrong password, with a registry that echoes it back.
	echo := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, _ := r.BasicAuth()
		w.Header().Set("WWW-Authenticate", `Basic realm="x"`)
		ociError(w, http.StatusUnauthorized, "UNAUTHORIZED", fmt.Sprintf("bad credentials %s:%s", u, p))
	}), false)
	c = newTestClient(t, Config{URL: echo.URL, Username: "alice", Password: "alice-password"}, WithLogger(logger))
	errs = append(errs, c.Ping(context.Background()))
	_, err = c.Tags(context.Background(), "app")
	errs = append(errs, err)
	if !strings.Contains(err.Error(), "bad credentials alice:REDACTED") {
		t.Errorf("echoed password not scrubbed: %v", err)
	}

	// Proxies with passwords, in the settings and in the URL.
	for _, cfg := range []Config{
		{URL: srv.URL, ProxyURL: "http://" + closedAddr(t), ProxyUsername: "p", ProxyPassword: "proxy-password"},
		{URL: srv.URL, ProxyURL: "http://p:url-proxy-password@" + closedAddr(t)},
	} {
		c = newTestClient(t, cfg, WithLogger(logger))
		err := c.Ping(context.Background())
		if !errors.Is(err, ErrProxy) {
			t.Errorf("proxy: %v", err)
		}
		errs = append(errs, err)
	}

	for _, err := range errs {
		for _, s := range secrets {
			if strings.Contains(err.Error(), s) {
				t.Errorf("error shows %q: %v", s, err)
			}
		}
	}
	for _, s := range secrets {
		if strings.Contains(logs.String(), s) {
			t.Errorf("log shows %q:\n%s", s, logs.String())
		}
	}
	if !strings.Contains(logs.String(), "retrying registry request") {
		t.Errorf("no retry logged:\n%s", logs.String())
	}
}

func TestErrorChain(t *testing.T) {
	c := newTestClient(t, Config{URL: "http://" + closedAddr(t)}, WithMaxAttempts(1))
	_, err := c.Tags(context.Background(), "app")
	var e *Error
	if !errors.As(err, &e) || !errors.Is(err, ErrUnreachable) || !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("err = %v", err)
	}
	if e.Op != "list tags of app" || e.Method != http.MethodGet || e.StatusCode != 0 || e.Temporary() {
		t.Errorf("%+v", e)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = c.Tags(ctx, "app")
	if !errors.Is(err, context.Canceled) || errors.Is(err, ErrUnreachable) {
		t.Errorf("canceled: %v", err)
	}
}
