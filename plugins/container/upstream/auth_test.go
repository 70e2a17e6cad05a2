package upstream

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestBasicAuth(t *testing.T) {
	reg := newRegistry()
	img := pushImage(t, reg, "app", "1.0")
	d, _ := layerOf(t, img)
	srv := serve(t, chain(reg, basicAuth("alice", "s3cret")), false)
	ctx := context.Background()

	c := newTestClient(t, Config{URL: srv.URL, Username: "alice", Password: "s3cret"})
	if err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Tags(ctx, "app"); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := c.Manifest(ctx, "app", "1.0"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := fetch(c, "app", d); err != nil {
		t.Fatal(err)
	}

	wrong := newTestClient(t, Config{URL: srv.URL, Username: "alice", Password: "wrong"})
	if _, err := wrong.Tags(ctx, "app"); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("wrong password: %v", err)
	}
}

func TestBearerAuth(t *testing.T) {
	reg := newRegistry()
	img := pushImage(t, reg, "team/app", "1.0")
	pushImage(t, reg, "team/other", "2.0")
	d, _ := layerOf(t, img)
	ts := newTokenServer("bob", "hunter2")
	var log requestLog
	srv := serve(t, chain(reg, log.middleware, ts.middleware), false)
	ctx := context.Background()

	c := newTestClient(t, Config{URL: srv.URL, Username: "bob", Password: "hunter2"})
	for range 3 {
		if _, err := c.Tags(ctx, "team/app"); err != nil {
			t.Fatal(err)
		}
		if _, _, _, err := c.HeadManifest(ctx, "team/app", "1.0"); err != nil {
			t.Fatal(err)
		}
		if _, _, err := fetch(c, "team/app", d); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Tags(ctx, "team/other"); err != nil {
		t.Fatal(err)
	}
	// One token per repository, asked for with its pull scope; one /v2/
	// probe for the client.
	if want := []string{"repository:team/app:pull", "repository:team/other:pull"}; !slices.Equal(ts.scopes, want) {
		t.Errorf("token scopes %q, want %q", ts.scopes, want)
	}
	if countPath(&log, "/v2/") != 1 {
		t.Errorf("%d probes of /v2/, want 1", countPath(&log, "/v2/"))
	}
	for _, r := range log.all() {
		if strings.HasPrefix(r.Path, "/v2/") && r.Path != "/v2/" && r.Header.Get("Authorization") == "" {
			t.Errorf("%s %s without a token", r.Method, r.Path)
		}
	}

	// Tokens expire: the registry says 401 again, a new token is fetched.
	ts.revoke()
	if _, _, _, err := c.Manifest(ctx, "team/app", "1.0"); err != nil {
		t.Fatalf("after expiry: %v", err)
	}
	if ts.issued() != 3 {
		t.Errorf("%d token requests, want 3", ts.issued())
	}

	wrong := newTestClient(t, Config{URL: srv.URL, Username: "bob", Password: "nope"})
	_, err := wrong.Tags(ctx, "team/app")
	var e *Error
	if !errors.Is(err, ErrUnauthorized) || !errors.As(err, &e) || !strings.HasSuffix(e.URL, "/token?scope=repository%3Ateam%2Fapp%3Apull&service=test-registry") {
		t.Fatalf("wrong password: %v", err)
	}
}

func TestBearerAnonymous(t *testing.T) {
	reg := newRegistry()
	pushImage(t, reg, "library/alpine", "3")
	ts := newTokenServer("", "")
	srv := serve(t, chain(reg, ts.middleware), false)
	c := newTestClient(t, Config{URL: srv.URL})
	if err := c.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	tags, err := c.Tags(context.Background(), "library/alpine")
	if err != nil || !slices.Equal(tags, []string{"3"}) {
		t.Fatalf("%q %v", tags, err)
	}
}

func countPath(l *requestLog, path string) int {
	n := 0
	for _, r := range l.all() {
		if r.Path == path {
			n++
		}
	}
	return n
}
