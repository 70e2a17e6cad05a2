package container_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/core"
	"github.com/berth-dev/berth/plugins/container"
)

// TestNamespaceRules follows Galaxy NG's rules: a push creates the
// namespace (first path component, or the whole un-namespaced name, which
// then holds only that image), the repository and the distribution.
func TestNamespaceRules(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		push := func(name, user string) resp {
			img := newImage(1, "amd64")
			for _, b := range [][]byte{img.config, img.layers[0]} {
				r := e.do(http.MethodPost, "/v2/"+name+"/blobs/uploads/?digest="+digest.FromBytes(b).String(), b, "X-Test-User", user)
				if r.status != 201 {
					return r
				}
			}
			return e.do(http.MethodPut, "/v2/"+name+"/manifests/latest", img.manifest, "Content-Type", mtOCIManifest, "X-Test-User", user)
		}
		cases := []struct {
			name, user string
			status     int
			code, msg  string
		}{
			{"my_ee", "alice", 201, "", ""},
			{"my_ee/other", "bob", 403, "DENIED", `namespace "my_ee" holds only the image "my_ee"`},
			{"ns/img", "bob", 201, "", ""},
			{"ns/img2", "carol", 201, "", ""},
			{"ns", "carol", 403, "DENIED", `"ns" is a namespace holding images`},
			{"ns/img/sub", "carol", 403, "DENIED", `the image "ns/img" exists`},
			{"deep/a/b/c", "dave", 201, "", ""},
			{"deep/a", "dave", 403, "DENIED", "prefix"},
			{"my_ee", "bob", 201, "", ""}, // pushing to an existing image is fine
		}
		for _, c := range cases {
			r := push(c.name, c.user)
			expect(t, "push "+c.name, r, c.status, c.code)
			if c.msg != "" && !strings.Contains(r.message(), c.msg) {
				t.Fatalf("push %s: message %s lacks %q", c.name, r.body, c.msg)
			}
		}
		// A refused name is refused at the first upload request already.
		expect(t, "upload to refused name", e.do(http.MethodPost, "/v2/my_ee/x/blobs/uploads/", nil), 403, "DENIED")

		nss, total, err := e.plugin.ListNamespaces(ctx, core.ListQuery{})
		if err != nil || total != 3 {
			t.Fatalf("namespaces: %d %v", total, err)
		}
		got := map[string]string{}
		for _, ns := range nss {
			got[ns.Name] = fmt.Sprintf("%s:%d", ns.CreatedBy, ns.Images)
		}
		if want := map[string]string{"my_ee": "alice:1", "ns": "bob:2", "deep": "dave:1"}; fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("namespaces = %v, want %v", got, want)
		}
		imgs, _, err := e.plugin.ListImages(ctx, coreQuery("namespace", "ns"))
		if err != nil || len(imgs) != 2 || imgs[0].Name != "ns/img" || imgs[1].Name != "ns/img2" {
			t.Fatalf("images of ns: %+v %v", imgs, err)
		}
		// The repository and distribution are named after the image.
		repo, err := e.store.RepositoryByName(ctx, "ns/img")
		if err != nil || repo.Type != container.TypeRepository || repo.LatestVersion < 1 {
			t.Fatalf("repository: %+v %v", repo, err)
		}
		d, err := e.store.DistributionByBasePath(ctx, "ns/img")
		if err != nil || d.RepositoryID == nil || *d.RepositoryID != repo.ID || d.Type != container.TypeDistribution {
			t.Fatalf("distribution: %+v %v", d, err)
		}
		v, err := e.store.Version(ctx, repo.ID, repo.LatestVersion)
		if err != nil || v.CreatedBy != "bob" {
			t.Fatalf("version: %+v %v", v, err)
		}
		if _, err := e.plugin.GetNamespace(ctx, "nope"); !errors.Is(err, core.ErrNotFound) {
			t.Fatalf("unknown namespace: %v", err)
		}
	})
}

// TestConcurrentPushes pushes 20 tags to one repository at once, and the
// same new image name from several clients at once: no tag is lost and
// nothing answers 5xx.
func TestConcurrentPushes(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		const n = 20
		imgs := make([]image, n)
		for i := range imgs {
			imgs[i] = newImage(1, "amd64")
		}
		var wg sync.WaitGroup
		errs := make(chan string, 4*n)
		for i := range n {
			wg.Go(func() {
				r := e.pushImageQuiet("race/app", fmt.Sprintf("tag-%02d", i), imgs[i])
				if r.status != 201 {
					errs <- fmt.Sprintf("tag-%02d: %s", i, r)
				}
			})
		}
		// Meanwhile, five clients push the same new name.
		for i := range 5 {
			wg.Go(func() {
				r := e.pushImageQuiet("race/fresh", fmt.Sprintf("c%d", i), imgs[i])
				if r.status != 201 {
					errs <- fmt.Sprintf("fresh c%d: %s", i, r)
				}
			})
		}
		// And two new un-namespaced/namespaced names that exclude each other.
		results := make(chan int, 2)
		for _, name := range []string{"solo", "solo/img"} {
			wg.Go(func() { results <- e.pushImageQuiet(name, "v1", imgs[0]).status })
		}
		wg.Wait()
		close(errs)
		for msg := range errs {
			t.Error(msg)
		}
		a, b := <-results, <-results
		if !(a == 201 && b == 403 || a == 403 && b == 201) {
			t.Errorf("solo and solo/img: %d and %d, want one 201 and one 403", a, b)
		}
		tags := e.tags("race/app")
		if len(tags) != n {
			t.Fatalf("%d tags after concurrent pushes: %v", len(tags), tags)
		}
		if tags := e.tags("race/fresh"); !slices.Equal(tags, []string{"c0", "c1", "c2", "c3", "c4"}) {
			t.Fatalf("fresh tags %v", tags)
		}
		for i := range n {
			g := e.do(http.MethodGet, fmt.Sprintf("/v2/race/app/manifests/tag-%02d", i), nil)
			if g.status != 200 || g.header.Get("Docker-Content-Digest") != imgs[i].digest.String() {
				t.Fatalf("tag-%02d: %s", i, g)
			}
		}
	})
}

// pushImageQuiet is pushImage for goroutines: it reports instead of failing.
func (e *env) pushImageQuiet(name, ref string, img image) resp {
	for _, b := range append([][]byte{img.config}, img.layers...) {
		r := e.doQuiet(http.MethodPost, "/v2/"+name+"/blobs/uploads/?digest="+digest.FromBytes(b).String(), b)
		if r.status != 201 {
			return r
		}
	}
	return e.doQuiet(http.MethodPut, "/v2/"+name+"/manifests/"+ref, img.manifest, "Content-Type", img.mt)
}

// doQuiet is do without the test's Fatal, for goroutines.
func (e *env) doQuiet(method, path string, body []byte, header ...string) resp {
	req, err := http.NewRequestWithContext(context.Background(), method, e.srv.URL+path, strings.NewReader(string(body)))
	if err != nil {
		return resp{status: -1, body: []byte(err.Error())}
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return resp{status: -1, body: []byte(err.Error())}
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{status: res.StatusCode, header: res.Header, body: b}
}

// TestDistributionStates: a private distribution is reported so; one pinned
// to a version serves that version and refuses pushes. (No TTL cache here,
// so changes made behind the plugin's back are seen at once.)
func TestDistributionStates(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		e.mustPushImage("pin/app", "v1", newImage(1, "amd64"))
		e.mustPushImage("pin/app", "v2", newImage(1, "amd64"))
		if err := e.g.Exec("UPDATE distributions SET private = ? WHERE base_path = ?", true, "pin/app").Error; err != nil {
			t.Fatal(err)
		}
		if st, err := e.plugin.ResolveNamespace(ctx, "pin/app"); err != nil || !st.Private || !st.Exists || st.Name != "pin" {
			t.Fatalf("resolve: %+v %v", st, err)
		}
		repo, err := e.store.RepositoryByName(ctx, "pin/app")
		if err != nil {
			t.Fatal(err)
		}
		v, err := e.store.Version(ctx, repo.ID, repo.LatestVersion-1)
		if err != nil {
			t.Fatal(err)
		}
		if err := e.g.Exec("UPDATE distributions SET repository_id = NULL, repository_version_id = ? WHERE base_path = ?", v.ID, "pin/app").Error; err != nil {
			t.Fatal(err)
		}
		expect(t, "v1 in the pinned version", e.do(http.MethodGet, "/v2/pin/app/manifests/v1", nil), 200, "")
		expect(t, "v2 not in it", e.do(http.MethodGet, "/v2/pin/app/manifests/v2", nil), 404, "MANIFEST_UNKNOWN")
		expect(t, "upload to a pinned distribution", e.do(http.MethodPost, "/v2/pin/app/blobs/uploads/", nil), 403, "DENIED")
		img := newImage(1, "amd64")
		expect(t, "push to a pinned distribution", e.do(http.MethodPut, "/v2/pin/app/manifests/v3", img.manifest, "Content-Type", mtOCIManifest), 403, "DENIED")
		expect(t, "delete in a pinned distribution", e.do(http.MethodDelete, "/v2/pin/app/manifests/v1", nil), 403, "DENIED")
	}, container.WithLatestTTL(0))
}
