package upstream

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
)

// tagNames are n tags in the registry's (lexical) order.
func tagNames(n int) []string {
	var tags []string
	for i := range n {
		tags = append(tags, fmt.Sprintf("v%02d", i))
	}
	slices.Sort(tags)
	return tags
}

func TestTagsPaginated(t *testing.T) {
	for _, tlsOn := range []bool{false, true} {
		t.Run(fmt.Sprintf("tls=%v", tlsOn), func(t *testing.T) {
			reg := newRegistry()
			want := tagNames(25)
			pushImage(t, reg, "team/app", want...)
			var log requestLog
			srv := serve(t, chain(reg, log.middleware, paginate(10)), tlsOn)
			cfg := Config{URL: srv.URL}
			if tlsOn {
				// An https registry on a loopback (or private) address: the
				// case go-containerregistry's remote.List refuses, its
				// next-page check expecting http for such hosts.
				cfg.CACert = certPEM(srv.Certificate())
			}
			c := newTestClient(t, cfg)
			got, err := c.Tags(context.Background(), "team/app")
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, want) {
				t.Errorf("tags = %q, want %q", got, want)
			}
			if n := log.count(http.MethodGet, "/tags/list"); n != 3 {
				t.Errorf("%d tag pages fetched, want 3", n)
			}
		})
	}
}

func TestTagsPageSize(t *testing.T) {
	reg := newRegistry()
	want := tagNames(20)
	pushImage(t, reg, "app", want...)
	var log requestLog
	srv := serve(t, chain(reg, log.middleware, paginate(100)), false)
	c := newTestClient(t, Config{URL: srv.URL}, WithPageSize(7))
	got, err := c.Tags(context.Background(), "app")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) {
		t.Errorf("tags = %q", got)
	}
	pages := 0
	for _, r := range log.all() {
		if strings.HasSuffix(r.Path, "/tags/list") {
			pages++
			if !strings.Contains(r.Query, "n=7") {
				t.Errorf("page query %q", r.Query)
			}
		}
	}
	if pages != 3 {
		t.Errorf("%d pages, want 3", pages)
	}
}

func TestTagsBadPagination(t *testing.T) {
	reg := newRegistry()
	pushImage(t, reg, "app", "a", "b")
	for _, tc := range []struct{ name, link, want string }{
		{"foreign host", `<http://169.254.169.254/v2/app/tags/list?n=1>; rel="next"`, "not on the registry"},
		{"loop", `</v2/app/tags/list?n=1000>; rel="next"`, "does not end"},
		{"malformed", `<http://x`, "malformed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var log requestLog
			h := chain(reg, log.middleware, func(next http.Handler) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if strings.HasSuffix(r.URL.Path, "/tags/list") {
						w.Header().Set("Link", tc.link)
					}
					next.ServeHTTP(w, r)
				})
			})
			c := newTestClient(t, Config{URL: serve(t, h, false).URL})
			_, err := c.Tags(context.Background(), "app")
			if !errors.Is(err, ErrProtocol) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want ErrProtocol saying %q", err, tc.want)
			}
		})
	}
}

func TestTagsNotFound(t *testing.T) {
	srv := serve(t, newRegistry(), false)
	c := newTestClient(t, Config{URL: srv.URL})
	_, err := c.Tags(context.Background(), "nope")
	var e *Error
	if !errors.Is(err, ErrNotFound) || !errors.As(err, &e) {
		t.Fatalf("err = %v", err)
	}
	if e.StatusCode != 404 || !slices.Contains(e.Codes, "NAME_UNKNOWN") || e.Temporary() {
		t.Errorf("error %+v", e)
	}
	if want := "GET " + srv.URL + "/v2/nope/tags/list?n=1000"; !strings.Contains(err.Error(), want) {
		t.Errorf("%q does not say %q", err, want)
	}
}

func TestInvalidNames(t *testing.T) {
	var log requestLog
	srv := serve(t, chain(newRegistry(), log.middleware), false)
	c := newTestClient(t, Config{URL: srv.URL})
	ctx := context.Background()
	_, err1 := c.Tags(ctx, "UPPER/case")
	_, _, _, err2 := c.Manifest(ctx, "app", "bad tag")
	_, _, _, err3 := c.HeadManifest(ctx, "app", "sha256:short")
	_, _, err4 := c.Blob(ctx, "app", "md5:abc")
	for i, err := range []error{err1, err2, err3, err4} {
		if !errors.Is(err, ErrInvalidName) {
			t.Errorf("%d: err = %v, want ErrInvalidName", i+1, err)
		}
	}
	if n := len(log.all()); n != 0 {
		t.Errorf("%d requests sent for invalid names", n)
	}
}
