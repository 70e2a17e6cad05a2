package container_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/berth-dev/berth/core/db"
	"github.com/berth-dev/berth/internal/testdb"
	"github.com/berth-dev/berth/plugins/container"
)

var linkRE = regexp.MustCompile(`^<([^>]+)>; rel="next"$`)

// pages follows Link headers from path and returns every page's names.
func pages(t *testing.T, e *env, path, field string) [][]string {
	t.Helper()
	var out [][]string
	for path != "" {
		r := e.do(http.MethodGet, path, nil)
		expect(t, path, r, 200, "")
		var body map[string]json.RawMessage
		if err := json.Unmarshal(r.body, &body); err != nil {
			t.Fatal(err)
		}
		var names []string
		if err := json.Unmarshal(body[field], &names); err != nil || names == nil {
			t.Fatalf("%s: %s is not a list: %s", path, field, r.body)
		}
		out = append(out, names)
		path = ""
		if l := r.header.Get("Link"); l != "" {
			m := linkRE.FindStringSubmatch(l)
			if m == nil {
				t.Fatalf("Link header %q", l)
			}
			path = m[1]
		}
		if len(out) > 100 {
			t.Fatal("too many pages")
		}
	}
	return out
}

// TestTagsList lists 1000 tags in pages with Link headers.
func TestTagsList(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		img := newImage(1, "amd64")
		e.mustPushImage("many/tags", "seed", img)
		var tags []string
		for i := range 999 {
			tags = append(tags, fmt.Sprintf("t%04d", i))
		}
		// Mixed case and punctuation sort byte-wise.
		tags = append(tags[:996], "A", "Z_", "b.1")
		// One version with all tags (the service API, like a push with ?tag=).
		if _, err := e.plugin.PutManifest(ctx, container.Identity{}, "many/tags", mtOCIManifest, img.manifest, img.digest, tags); err != nil {
			t.Fatal(err)
		}
		want := append(slices.Clone(tags), "seed")
		slices.Sort(want)

		got := pages(t, e, "/v2/many/tags/tags/list?n=100", "tags")
		if len(got) != 10 {
			t.Fatalf("%d pages, want 10", len(got))
		}
		for i, p := range got {
			if len(p) != 100 {
				t.Fatalf("page %d has %d tags", i, len(p))
			}
		}
		if all := slices.Concat(got...); !slices.Equal(all, want) {
			t.Fatalf("paged tags differ: first %v", all[:5])
		}
		// The Link header carries n and last as the spec shows.
		r := e.do(http.MethodGet, "/v2/many/tags/tags/list?n=2", nil)
		if l := r.header.Get("Link"); l != `</v2/many/tags/tags/list?last=`+url.QueryEscape(want[1])+`&n=2>; rel="next"` {
			t.Fatalf("Link = %q", l)
		}
		// Without n: one page of all 1000, no Link.
		if got := pages(t, e, "/v2/many/tags/tags/list", "tags"); len(got) != 1 || !slices.Equal(got[0], want) {
			t.Fatalf("unpaged: %d pages", len(got))
		}
		// last alone.
		after := pages(t, e, "/v2/many/tags/tags/list?last=t0990", "tags")
		if !slices.Equal(after[0], want[slices.Index(want, "t0990")+1:]) {
			t.Fatalf("after t0990: %v", after[0])
		}
		// n=0 is an empty list without Link.
		r = e.do(http.MethodGet, "/v2/many/tags/tags/list?n=0", nil)
		if r.status != 200 || r.header.Get("Link") != "" || !strings.Contains(string(r.body), `"tags":[]`) {
			t.Fatalf("n=0: %s", r)
		}
		expect(t, "bad n", e.do(http.MethodGet, "/v2/many/tags/tags/list?n=-1", nil), 400, "PAGINATION_NUMBER_INVALID")
		expect(t, "unknown repo", e.do(http.MethodGet, "/v2/many/none/tags/list", nil), 404, "NAME_UNKNOWN")
	})
}

// TestCatalog lists image names in pages.
func TestCatalog(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		var want []string
		for i := range 7 {
			img := newImage(1, "amd64")
			name := fmt.Sprintf("cat%d/img", i)
			e.mustPushImage(name, "v1", img)
			want = append(want, name)
		}
		got := pages(t, e, "/v2/_catalog?n=3", "repositories")
		if len(got) != 3 || !slices.Equal(slices.Concat(got...), want) {
			t.Fatalf("catalog pages %v", got)
		}
		if all := pages(t, e, "/v2/_catalog", "repositories"); !slices.Equal(all[0], want) {
			t.Fatalf("catalog %v", all)
		}
	})
}

// TestTagPushReadsOnlyTheChange: tagging an image in a repository of 1500
// tags, and then moving a tag, run statements that find their rows through
// indexes on what they concern, never by reading every tag or membership
// row of the repository, so that a push costs the same whatever the
// repository's size. It checks SQLite's query plans, which come from the
// schema alone.
func TestTagPushReadsOnlyTheChange(t *testing.T) {
	t.Parallel()
	e := newEnv(t, testdb.Open(t, db.SQLite, sets...), t.TempDir())
	img, other := newImage(1, "amd64"), newImage(2, "arm64")
	e.mustPushImage("big/tags", "seed", img)
	e.mustPushImage("big/tags", "other", other)
	var tags []string
	for i := range 1500 {
		tags = append(tags, fmt.Sprintf("t%04d", i))
	}
	if _, err := e.plugin.PutManifest(ctx, container.Identity{}, "big/tags", mtOCIManifest, img.manifest, img.digest, tags); err != nil {
		t.Fatal(err)
	}
	for _, push := range []struct{ tag string }{{"new-tag"}, {"t0750"}} {
		statements := testdb.Record(t, e.g, func() {
			r := e.do(http.MethodPut, "/v2/big/tags/manifests/"+push.tag, other.manifest, "Content-Type", other.mt)
			expect(t, "push "+push.tag, r, http.StatusCreated, "")
		})
		checked := 0
		for _, st := range statements {
			for _, table := range []struct{ name, prefix string }{
				{"repository_contents", "repository_id"},
				{"container_tags", ""},
				{"container_manifests", ""},
				{"contents", ""},
			} {
				if bad := testdb.WholeTableReads(t, e.g, st, table.name, table.prefix); len(bad) > 0 {
					t.Errorf("push %s: %s\nreads all of %s: %v", push.tag, st.SQL, table.name, bad)
				}
				if table.name == "repository_contents" && strings.Contains(st.SQL, table.name) {
					checked++
				}
			}
		}
		if checked < 3 {
			t.Fatalf("push %s: only %d of %d statements read repository_contents", push.tag, checked, len(statements))
		}
	}
	got := pages(t, e, "/v2/big/tags/tags/list", "tags")[0]
	if len(got) != 1503 || !slices.Contains(got, "new-tag") || !slices.Contains(got, "t0750") {
		t.Fatalf("%d tags after the pushes", len(got))
	}
	r := e.do(http.MethodGet, "/v2/big/tags/manifests/t0750", nil, "Accept", other.mt)
	if r.header.Get("Docker-Content-Digest") != other.digest.String() {
		t.Fatalf("t0750 serves %s, want %s", r.header.Get("Docker-Content-Digest"), other.digest)
	}
}
