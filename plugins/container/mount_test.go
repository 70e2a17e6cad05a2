package container_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/labstack/echo/v4"
	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/api/errcode"
	"github.com/berth-dev/berth/core"
	"github.com/berth-dev/berth/plugins/container"
)

// TestMount mounts blobs across repositories: from a named source, from any
// readable one (no from), and falls back to an upload session when the
// source lacks the blob or may not be read.
func TestMount(t *testing.T) {
	deny := container.AuthorizerFunc(func(c echo.Context, need container.Access) (container.Identity, error) {
		who := testUser(c)
		if need.Repository == "secret/img" && slices.Contains(need.Actions, container.ActionPull) && who.Username != "owner" {
			return who, core.ErrForbidden
		}
		return who, nil
	})
	each(t, func(t *testing.T, e *env) {
		img := newImage(1, "amd64")
		e.mustPushImage("src/img", "v1", img)
		layer := digest.FromBytes(img.layers[0])
		pending := e.pushBlob("src/pending", []byte("only uploaded"))
		secret := e.pushBlob("secret/img", []byte("secret layer"))

		mount := func(name, from string, d digest.Digest, user string) resp {
			q := "?mount=" + d.String()
			if from != "" {
				q += "&from=" + from
			}
			return e.do(http.MethodPost, "/v2/"+name+"/blobs/uploads/"+q, nil, "X-Test-User", user)
		}
		cases := []struct {
			name, target, from string
			d                  digest.Digest
			user               string
			status             int
		}{
			{"from a repository version", "dst/a", "src/img", layer, "", 201},
			{"from a pending upload", "dst/b", "src/pending", pending, "", 201},
			{"without from", "dst/c", "", layer, "", 201},
			{"source lacks the blob", "dst/d", "src/pending", layer, "", 202},
			{"unknown source", "dst/e", "src/none", layer, "", 202},
			{"invalid source name", "dst/f", "Src/None", layer, "", 202},
			{"unknown blob without from", "dst/g", "", digest.FromString("nowhere"), "", 202},
			{"source not readable", "dst/h", "secret/img", secret, "someone", 202},
			{"source not readable, without from", "dst/i", "", secret, "someone", 202},
			{"source readable by its owner", "dst/j", "secret/img", secret, "owner", 201},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				e.t = t
				r := mount(c.target, c.from, c.d, c.user)
				expect(t, "mount", r, c.status, "")
				loc := r.header.Get("Location")
				switch c.status {
				case 201:
					if loc != "/v2/"+c.target+"/blobs/"+c.d.String() || r.header.Get("Docker-Content-Digest") != c.d.String() {
						t.Fatalf("mount headers %v", r.header)
					}
					expect(t, "mounted blob", e.do(http.MethodHead, loc, nil), 200, "")
				case 202:
					if !strings.HasPrefix(loc, "/v2/"+c.target+"/blobs/uploads/") {
						t.Fatalf("fallback Location %q", loc)
					}
					expect(t, "not mounted", e.do(http.MethodGet, "/v2/"+c.target+"/blobs/"+c.d.String(), nil), 404, "BLOB_UNKNOWN")
				}
			})
		}
		// The mounted blob serves a manifest push in the target.
		e.t = t
		expect(t, "mount config", mount("dst/a", "src/img", digest.FromBytes(img.config), ""), 201, "")
		expect(t, "push via mounts", e.do(http.MethodPut, "/v2/dst/a/manifests/v1", img.manifest, "Content-Type", mtOCIManifest), 201, "")
		expect(t, "invalid mount digest", mount("dst/a", "src/img", "sha256:xyz", ""), 400, "DIGEST_INVALID")
	}, container.WithAuthorizer(deny))
}

// TestAuthorizer checks the authorization seam: every request asks with the
// image name, the actions and (for upload sessions) the session's owner;
// refusals map to the codes, and a created namespace is reported to the hook.
func TestAuthorizer(t *testing.T) {
	var mu sync.Mutex
	var calls []string
	auth := container.AuthorizerFunc(func(c echo.Context, need container.Access) (container.Identity, error) {
		who := testUser(c)
		mu.Lock()
		calls = append(calls, fmt.Sprintf("%s %s %v %s", who.Username, need.Repository, need.Actions, need.UploadOwner))
		mu.Unlock()
		switch {
		case who.Username == "":
			return who, errcode.Unauthorized.New().WithHeader("WWW-Authenticate", `Bearer realm="http://x/token"`)
		case who.Username == "reader" && (len(need.Actions) != 1 || need.Actions[0] != container.ActionPull):
			return who, core.ErrForbidden
		}
		return who, nil
	})
	var created []string
	hook := func(_ context.Context, ns string, creator container.Identity) error {
		mu.Lock()
		created = append(created, ns+" by "+creator.UserID)
		mu.Unlock()
		return nil
	}
	each(t, func(t *testing.T, e *env) {
		calls, created = nil, nil
		img := newImage(1, "amd64")
		r := e.do(http.MethodGet, "/v2/", nil)
		expect(t, "anonymous ping", r, 401, "UNAUTHORIZED")
		if r.header.Get("WWW-Authenticate") == "" {
			t.Fatal("no WWW-Authenticate")
		}
		expect(t, "ping", e.do(http.MethodGet, "/v2/", nil, "X-Test-User", "writer"), 200, "")
		expect(t, "reader push", e.do(http.MethodPost, "/v2/auth/img/blobs/uploads/", nil, "X-Test-User", "reader"), 403, "DENIED")
		loc := e.do(http.MethodPost, "/v2/auth/img/blobs/uploads/", nil, "X-Test-User", "writer").header.Get("Location")
		expect(t, "chunk", e.do(http.MethodPatch, loc, img.config, "X-Test-User", "writer"), 202, "")
		expect(t, "finish", e.do(http.MethodPut, loc+"?digest="+digest.FromBytes(img.config).String(), nil, "X-Test-User", "writer"), 201, "")
		b := img.layers[0]
		expect(t, "layer", e.do(http.MethodPost, "/v2/auth/img/blobs/uploads/?digest="+digest.FromBytes(b).String(), b, "X-Test-User", "writer"), 201, "")
		expect(t, "manifest", e.do(http.MethodPut, "/v2/auth/img/manifests/v1", img.manifest, "Content-Type", mtOCIManifest, "X-Test-User", "writer"), 201, "")
		expect(t, "reader pull", e.do(http.MethodGet, "/v2/auth/img/manifests/v1", nil, "X-Test-User", "reader"), 200, "")
		expect(t, "reader delete", e.do(http.MethodDelete, "/v2/auth/img/manifests/v1", nil, "X-Test-User", "reader"), 403, "DENIED")
		expect(t, "reader catalog", e.do(http.MethodGet, "/v2/_catalog", nil, "X-Test-User", "writer"), 200, "")
		want := []string{
			"  [] ", "writer  [] ",
			"reader auth/img [push] ",
			"writer auth/img [push] ", "writer auth/img [push] id-writer", "writer auth/img [push] id-writer",
			"writer auth/img [push] ", "writer auth/img [push] ",
			"reader auth/img [pull] ", "reader auth/img [delete] ",
			"writer  [catalog] ",
		}
		if strings.Join(calls, "\n") != strings.Join(want, "\n") {
			t.Fatalf("calls:\n%s\nwant:\n%s", strings.Join(calls, "\n"), strings.Join(want, "\n"))
		}
		if !slices.Equal(created, []string{"auth by id-writer"}) {
			t.Fatalf("namespace hook: %v", created)
		}
		st, err := e.plugin.ResolveNamespace(ctx, "auth/img")
		if err != nil || st != (container.NamespaceStatus{Name: "auth", Exists: true}) {
			t.Fatalf("resolve: %+v %v", st, err)
		}
		st, err = e.plugin.ResolveNamespace(ctx, "fresh/img")
		if err != nil || st != (container.NamespaceStatus{Name: "fresh"}) {
			t.Fatalf("resolve fresh: %+v %v", st, err)
		}
	}, container.WithAuthorizer(auth), container.WithNamespaceHook(hook))
}
