package core_test

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"

	"gorm.io/gorm"

	"github.com/berth-dev/berth/core"
	"github.com/berth-dev/berth/core/db"
	"github.com/berth-dev/berth/core/secret"
	"github.com/berth-dev/berth/internal/testdb"
	"github.com/berth-dev/berth/migrations"
)

var ctx = context.Background()

func each(t *testing.T, fn func(t *testing.T, s *core.Store)) {
	testdb.Each(t, []db.MigrationSet{migrations.Core}, func(t *testing.T, g *gorm.DB) {
		box, err := secret.New("test-secret-key-0123456789")
		if err != nil {
			t.Fatal(err)
		}
		fn(t, core.NewStore(g, box))
	})
}

func newRepo(t *testing.T, s *core.Store, name string) *core.Repository {
	t.Helper()
	r := &core.Repository{Type: "test.test", Name: name}
	if err := s.CreateRepository(ctx, r); err != nil {
		t.Fatalf("create repository: %v", err)
	}
	return r
}

func content(t *testing.T, s *core.Store, keys ...string) []string {
	t.Helper()
	ids := make([]string, len(keys))
	for i, k := range keys {
		c, _, err := s.GetOrCreateContent(ctx, "test.item", k)
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = c.ID
	}
	return ids
}

// keysAt lists the natural keys in a version, sorted.
func keysAt(t *testing.T, s *core.Store, repoID string, n int) string {
	t.Helper()
	ids, err := s.VersionContentIDs(ctx, repoID, n, "")
	if err != nil {
		t.Fatalf("content of version %d: %v", n, err)
	}
	keys := make([]string, 0, len(ids))
	for _, id := range ids {
		c, err := s.ContentByID(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, c.NaturalKey)
	}
	sort.Strings(keys)
	return strings.Join(keys, ",")
}

func version(t *testing.T, s *core.Store, repoID string, add, remove []string) (*core.RepositoryVersion, bool) {
	t.Helper()
	v, created, err := s.NewVersion(ctx, repoID, "tester", func(b *core.VersionBuilder) error {
		if err := b.Remove(ctx, remove...); err != nil {
			return err
		}
		return b.Add(ctx, add...)
	})
	if err != nil {
		t.Fatalf("new version: %v", err)
	}
	return v, created
}

func TestRepositoryCreateAndValidate(t *testing.T) {
	each(t, func(t *testing.T, s *core.Store) {
		r := newRepo(t, s, "repo-a")
		v, err := s.Version(ctx, r.ID, 0)
		if err != nil || v.Number != 0 {
			t.Fatalf("version 0 = %v, %v", v, err)
		}
		err = s.CreateRepository(ctx, &core.Repository{Type: "test.test", Name: "repo-a"})
		if !errors.Is(err, core.ErrConflict) || !strings.Contains(err.Error(), "repo-a") {
			t.Fatalf("duplicate: err = %v, want ErrConflict naming the repository", err)
		}
		err = s.CreateRepository(ctx, &core.Repository{Type: "test.test", Name: "../bad name"})
		var ve *core.ValidationError
		if !errors.As(err, &ve) || len(ve.Fields["name"]) == 0 {
			t.Fatalf("bad name: err = %v, want a ValidationError on name", err)
		}
		zero := 0
		if err := s.CreateRepository(ctx, &core.Repository{Type: "test.test", Name: "r0", RetainRepoVersions: &zero}); !errors.Is(err, core.ErrInvalid) {
			t.Fatalf("retain 0: err = %v", err)
		}
		if _, err := s.Repository(ctx, core.NewID()); !errors.Is(err, core.ErrNotFound) {
			t.Fatalf("missing repository: err = %v", err)
		}
		_, total, err := s.ListRepositories(ctx, core.ListQuery{})
		if err != nil || total != 1 {
			t.Fatalf("list: total %d, err %v (rejected creates must leave nothing)", total, err)
		}
	})
}

func TestVersionsAddRemoveSummary(t *testing.T) {
	each(t, func(t *testing.T, s *core.Store) {
		r := newRepo(t, s, "versions")
		ids := content(t, s, "a", "b", "c")
		v1, created := version(t, s, r.ID, ids[:2], nil)
		if !created || v1.Number != 1 {
			t.Fatalf("v1: created=%v number=%d", created, v1.Number)
		}
		if v1.ContentSummary.Added["test.item"] != 2 || v1.ContentSummary.Present["test.item"] != 2 {
			t.Fatalf("v1 summary = %+v", v1.ContentSummary)
		}
		// Adding what is there, removing what is not: no new version.
		v, created := version(t, s, r.ID, ids[:1], ids[2:])
		if created || v.Number != 1 {
			t.Fatalf("no-op change created version %d (created=%v)", v.Number, created)
		}
		// Remove then add back in one change: also nothing.
		if _, created := version(t, s, r.ID, ids[:1], ids[:1]); created {
			t.Fatal("remove+re-add of the same content created a version")
		}
		v2, created := version(t, s, r.ID, ids[2:], ids[:1])
		if !created || v2.Number != 2 {
			t.Fatalf("v2: created=%v number=%d", created, v2.Number)
		}
		want := core.ContentSummary{Added: map[string]int{"test.item": 1}, Removed: map[string]int{"test.item": 1}, Present: map[string]int{"test.item": 2}}
		if fmt.Sprint(v2.ContentSummary) != fmt.Sprint(want) {
			t.Fatalf("v2 summary = %+v, want %+v", v2.ContentSummary, want)
		}
		if got := keysAt(t, s, r.ID, 1); got != "a,b" {
			t.Fatalf("v1 content = %s", got)
		}
		if got := keysAt(t, s, r.ID, 2); got != "b,c" {
			t.Fatalf("v2 content = %s", got)
		}
		if got := keysAt(t, s, r.ID, 0); got != "" {
			t.Fatalf("v0 content = %s", got)
		}
		repo, _ := s.Repository(ctx, r.ID)
		if repo.LatestVersion != 2 {
			t.Fatalf("latest = %d", repo.LatestVersion)
		}
		// A failing change leaves no trace.
		boom := errors.New("boom")
		_, _, err := s.NewVersion(ctx, r.ID, "", func(b *core.VersionBuilder) error {
			_ = b.Add(ctx, ids[0])
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatalf("err = %v", err)
		}
		if got := keysAt(t, s, r.ID, 2); got != "b,c" {
			t.Fatalf("after failed change, v2 content = %s", got)
		}
		if _, err := s.Version(ctx, r.ID, 3); !errors.Is(err, core.ErrNotFound) {
			t.Fatalf("failed change left version 3: %v", err)
		}
	})
}

func TestDeleteVersionFoldsIntoNext(t *testing.T) {
	each(t, func(t *testing.T, s *core.Store) {
		r := newRepo(t, s, "fold")
		ids := content(t, s, "a", "b", "c", "d")
		a, b, c, d := ids[0], ids[1], ids[2], ids[3]
		version(t, s, r.ID, []string{a, b}, nil)         // 1: a b
		version(t, s, r.ID, []string{c, d}, []string{a}) // 2: b c d
		version(t, s, r.ID, []string{a}, []string{d})    // 3: a b c
		version(t, s, r.ID, []string{d}, nil)            // 4: a b c d
		if err := s.DeleteVersion(ctx, r.ID, 4); !errors.Is(err, core.ErrConflict) {
			t.Fatalf("deleting the latest: err = %v", err)
		}
		if err := s.DeleteVersion(ctx, r.ID, 2); err != nil {
			t.Fatal(err)
		}
		for n, want := range map[int]string{0: "", 1: "a,b", 3: "a,b,c", 4: "a,b,c,d"} {
			if got := keysAt(t, s, r.ID, n); got != want {
				t.Errorf("after deleting 2, version %d = %q, want %q", n, got, want)
			}
		}
		v3, _ := s.Version(ctx, r.ID, 3)
		want := core.ContentSummary{Added: map[string]int{"test.item": 1}, Removed: map[string]int{}, Present: map[string]int{"test.item": 3}}
		if fmt.Sprint(v3.ContentSummary) != fmt.Sprint(want) {
			t.Errorf("v3 summary = %+v, want %+v (relative to v1 now)", v3.ContentSummary, want)
		}
		if err := s.DeleteVersion(ctx, r.ID, 1); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteVersion(ctx, r.ID, 3); err != nil {
			t.Fatal(err)
		}
		if got := keysAt(t, s, r.ID, 4); got != "a,b,c,d" {
			t.Errorf("version 4 = %q", got)
		}
		if got := keysAt(t, s, r.ID, 0); got != "" {
			t.Errorf("version 0 = %q", got)
		}
		if _, err := s.Version(ctx, r.ID, 2); !errors.Is(err, core.ErrNotFound) {
			t.Errorf("deleted version still there: %v", err)
		}
		if err := s.DeleteVersion(ctx, r.ID, 2); !errors.Is(err, core.ErrNotFound) {
			t.Errorf("deleting twice: %v", err)
		}
	})
}

func TestRetainRepoVersions(t *testing.T) {
	each(t, func(t *testing.T, s *core.Store) {
		two := 2
		r := &core.Repository{Type: "test.test", Name: "retained", RetainRepoVersions: &two}
		if err := s.CreateRepository(ctx, r); err != nil {
			t.Fatal(err)
		}
		ids := content(t, s, "a", "b", "c", "d")
		for i := range ids {
			version(t, s, r.ID, ids[i:i+1], nil)
		}
		vs, total, err := s.ListVersions(ctx, r.ID, core.ListQuery{})
		if err != nil {
			t.Fatal(err)
		}
		if total != 2 || vs[0].Number != 4 || vs[1].Number != 3 {
			t.Fatalf("versions kept = %d (%v)", total, vs)
		}
		if got := keysAt(t, s, r.ID, 3); got != "a,b,c" {
			t.Fatalf("version 3 = %q", got)
		}
		if got := keysAt(t, s, r.ID, 4); got != "a,b,c,d" {
			t.Fatalf("version 4 = %q", got)
		}
	})
}

// TestNewVersionReadsOnlyTheChange: a change of one item to a repository
// of thousands that keeps one version — what a tag push does — finds every
// membership row it needs through the version it concerns, so that a push
// costs the same whatever the size of the repository. It checks SQLite's
// query plans, which come from the schema alone (PostgreSQL's come from
// statistics, and the same indexes serve it).
func TestNewVersionReadsOnlyTheChange(t *testing.T) {
	t.Parallel()
	g := testdb.Open(t, db.SQLite, migrations.Core)
	box, err := secret.New("test-secret-key-0123456789")
	if err != nil {
		t.Fatal(err)
	}
	s := core.NewStore(g, box)
	one := 1
	r := &core.Repository{Type: "test.test", Name: "big", RetainRepoVersions: &one}
	if err := s.CreateRepository(ctx, r); err != nil {
		t.Fatal(err)
	}
	keys := make([]string, 2000)
	for i := range keys {
		keys[i] = fmt.Sprintf("item-%04d", i)
	}
	ids := content(t, s, keys...)
	version(t, s, r.ID, ids[:1000], nil)
	version(t, s, r.ID, ids[1000:1999], nil)
	statements := testdb.Record(t, g, func() {
		if _, created := version(t, s, r.ID, ids[1999:], ids[:1]); !created {
			t.Fatal("no version made")
		}
	})
	if len(statements) < 5 {
		t.Fatalf("recorded %d statements: the recorder missed the change's", len(statements))
	}
	checked := 0
	for _, st := range statements {
		if !strings.Contains(st.SQL, "repository_contents") {
			continue
		}
		checked++
		if bad := testdb.WholeTableReads(t, g, st, "repository_contents", "repository_id"); len(bad) > 0 {
			t.Errorf("%s\nreads every membership row of the repository: %v", st.SQL, bad)
		}
	}
	if checked < 3 {
		t.Fatalf("only %d statements read repository_contents", checked)
	}
	// The check itself catches a read that cannot seek by version.
	scan := testdb.Statement{SQL: "SELECT COUNT(*) FROM repository_contents rc WHERE rc.repository_id = ? AND rc.version_added + 0 = ?", Vars: []any{r.ID, 3}}
	if bad := testdb.WholeTableReads(t, g, scan, "repository_contents", "repository_id"); len(bad) == 0 {
		t.Fatalf("%s: not reported as reading the whole repository (plan %v)", scan.SQL, testdb.SQLitePlan(t, g, scan))
	}
	if got := keysAt(t, s, r.ID, 3); !strings.HasPrefix(got, "item-0001,") || !strings.HasSuffix(got, ",item-1999") || strings.Count(got, ",") != 1998 {
		t.Fatalf("version 3 holds %d items, %.30s…", strings.Count(got, ",")+1, got)
	}
}

func TestConcurrentVersionsLoseNothing(t *testing.T) {
	each(t, func(t *testing.T, s *core.Store) {
		r := newRepo(t, s, "busy")
		const n = 12
		keys := make([]string, n)
		for i := range keys {
			keys[i] = fmt.Sprintf("k%02d", i)
		}
		ids := content(t, s, keys...)
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := range ids {
			wg.Add(1)
			go func(id string) {
				defer wg.Done()
				_, _, err := s.NewVersion(ctx, r.ID, "", func(b *core.VersionBuilder) error { return b.Add(ctx, id) })
				errs <- err
			}(ids[i])
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Errorf("concurrent version: %v", err)
			}
		}
		repo, _ := s.Repository(ctx, r.ID)
		if repo.LatestVersion != n {
			t.Fatalf("latest = %d, want %d", repo.LatestVersion, n)
		}
		if got := keysAt(t, s, r.ID, n); got != strings.Join(keys, ",") {
			t.Fatalf("latest content = %s", got)
		}
	})
}

func TestRemotesSealSecrets(t *testing.T) {
	each(t, func(t *testing.T, s *core.Store) {
		pw, key := "s3cr3t-pass", "-----BEGIN KEY-----"
		r := &core.Remote{Type: "test.test", Name: "upstream", URL: "https://registry.example.test", Username: "bob", TLSValidation: true}
		if err := s.CreateRemote(ctx, r, core.RemoteSecrets{Password: &pw, ClientKey: &key}); err != nil {
			t.Fatal(err)
		}
		var raw map[string]any
		if err := s.DB(ctx).Table("remotes").Where("id = ?", r.ID).Take(&raw).Error; err != nil {
			t.Fatal(err)
		}
		for col, v := range raw {
			if str, ok := v.(string); ok && (strings.Contains(str, pw) || strings.Contains(str, key)) {
				t.Fatalf("column %s holds a plaintext secret", col)
			}
		}
		got, _ := s.Remote(ctx, r.ID)
		creds, err := s.OpenCredentials(got)
		if err != nil || creds.Password != pw || creds.ClientKey != key {
			t.Fatalf("open credentials = %+v, %v", creds, err)
		}
		empty := ""
		if err := s.UpdateRemote(ctx, got, core.RemoteSecrets{Password: &empty}); err != nil {
			t.Fatal(err)
		}
		got, _ = s.Remote(ctx, r.ID)
		if got.PasswordEnc != "" || got.ClientKeyEnc == "" {
			t.Fatalf("clearing the password: enc=%q key=%q", got.PasswordEnc, got.ClientKeyEnc)
		}
		for _, tc := range []struct {
			name  string
			r     core.Remote
			field string
		}{
			{"bad url", core.Remote{Type: "t", Name: "x1", URL: "ftp://h"}, "url"},
			{"creds in url", core.Remote{Type: "t", Name: "x2", URL: "https://u:p@h"}, "url"},
			{"negative rate", core.Remote{Type: "t", Name: "x3", URL: "https://h", RateLimit: -1}, "rate_limit"},
			{"bad policy", core.Remote{Type: "t", Name: "x4", URL: "https://h", Policy: "later"}, "policy"},
			{"too much concurrency", core.Remote{Type: "t", Name: "x5", URL: "https://h", DownloadConcurrency: 1000}, "download_concurrency"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				r := tc.r
				err := s.CreateRemote(ctx, &r, core.RemoteSecrets{})
				var ve *core.ValidationError
				if !errors.As(err, &ve) || len(ve.Fields[tc.field]) == 0 {
					t.Fatalf("err = %v, want a message on %s", err, tc.field)
				}
			})
		}
		dup := &core.Remote{Type: "test.test", Name: "upstream", URL: "https://other.test"}
		if err := s.CreateRemote(ctx, dup, core.RemoteSecrets{}); !errors.Is(err, core.ErrConflict) {
			t.Fatalf("duplicate remote: %v", err)
		}
	})
}

func TestDistributions(t *testing.T) {
	each(t, func(t *testing.T, s *core.Store) {
		r := newRepo(t, s, "served")
		ids := content(t, s, "a", "b")
		version(t, s, r.ID, ids[:1], nil)
		d := &core.Distribution{Type: "test.test", Name: "served", BasePath: "/ns/served/", RepositoryID: &r.ID}
		if err := s.CreateDistribution(ctx, d); err != nil {
			t.Fatal(err)
		}
		if d.BasePath != "ns/served" {
			t.Fatalf("base path = %q", d.BasePath)
		}
		got, err := s.DistributionByBasePath(ctx, "ns/served")
		if err != nil {
			t.Fatal(err)
		}
		_, v, err := s.ServedVersion(ctx, got)
		if err != nil || v.Number != 1 {
			t.Fatalf("served = %v, %v", v, err)
		}
		version(t, s, r.ID, ids[1:], nil)
		if _, v, _ = s.ServedVersion(ctx, got); v.Number != 2 {
			t.Fatalf("served after new version = %d", v.Number)
		}
		v1, _ := s.Version(ctx, r.ID, 1)
		pinned := &core.Distribution{Type: "test.test", Name: "pinned", BasePath: "pinned", RepositoryVersionID: &v1.ID}
		if err := s.CreateDistribution(ctx, pinned); err != nil {
			t.Fatal(err)
		}
		if _, v, _ := s.ServedVersion(ctx, pinned); v.Number != 1 {
			t.Fatalf("pinned serves %d", v.Number)
		}
		if err := s.DeleteVersion(ctx, r.ID, 1); !errors.Is(err, core.ErrConflict) {
			t.Fatalf("deleting a served version: %v", err)
		}
		for _, bad := range []core.Distribution{
			{Type: "test.test", Name: "dup-path", BasePath: "ns/served"},
			{Type: "test.test", Name: "served", BasePath: "other"},
		} {
			if err := s.CreateDistribution(ctx, &bad); !errors.Is(err, core.ErrConflict) {
				t.Fatalf("duplicate %+v: %v", bad, err)
			}
		}
		for _, bp := range []string{"UPPER", "a//b", "../x", "sp ace", ""} {
			bad := core.Distribution{Type: "test.test", Name: "bad", BasePath: bp}
			if err := s.CreateDistribution(ctx, &bad); !errors.Is(err, core.ErrInvalid) {
				t.Fatalf("base path %q: %v", bp, err)
			}
		}
		missing := core.NewID()
		bad := core.Distribution{Type: "test.test", Name: "dangling", BasePath: "dangling", RepositoryID: &missing}
		if err := s.CreateDistribution(ctx, &bad); !errors.Is(err, core.ErrInvalid) {
			t.Fatalf("missing repository: %v", err)
		}
		if err := s.DeleteRepository(ctx, r.ID); err != nil {
			t.Fatal(err)
		}
		got, _ = s.Distribution(ctx, d.ID)
		if got.RepositoryID != nil {
			t.Fatalf("distribution still points at the deleted repository")
		}
		if _, _, err := s.ServedVersion(ctx, got); !errors.Is(err, core.ErrNotFound) {
			t.Fatalf("serving a deleted repository: %v", err)
		}
	})
}

func TestListQuery(t *testing.T) {
	each(t, func(t *testing.T, s *core.Store) {
		for _, n := range []string{"alpha", "beta", "gamma", "al_pha"} {
			newRepo(t, s, n)
		}
		got := func(q core.ListQuery) (string, int64) {
			t.Helper()
			rs, total, err := s.ListRepositories(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			names := []string{}
			for _, r := range rs {
				names = append(names, r.Name)
			}
			return strings.Join(names, ","), total
		}
		if n, total := got(core.ListQuery{Limit: 2}); n != "al_pha,alpha" || total != 4 {
			t.Fatalf("page 1 = %s (%d)", n, total)
		}
		if n, _ := got(core.ListQuery{Limit: 2, Offset: 2}); n != "beta,gamma" {
			t.Fatalf("page 2 = %s", n)
		}
		if n, _ := got(core.ListQuery{Ordering: []string{"-name"}}); n != "gamma,beta,alpha,al_pha" {
			t.Fatalf("ordering = %s", n)
		}
		// LIKE wildcards in the value are literal.
		if n, total := got(core.ListQuery{Filters: []core.Filter{{Field: "name", Op: "contains", Value: "_"}}}); n != "al_pha" || total != 1 {
			t.Fatalf("contains _ = %s", n)
		}
		if n, _ := got(core.ListQuery{Filters: []core.Filter{{Field: "name", Op: "in", Value: []string{"beta", "gamma"}}}}); n != "beta,gamma" {
			t.Fatalf("in = %s", n)
		}
		for _, q := range []core.ListQuery{
			{Filters: []core.Filter{{Field: "password", Op: "eq", Value: "x"}}},
			{Ordering: []string{"drop table"}},
			{Limit: 100000},
			{Offset: -1},
		} {
			if _, _, err := s.ListRepositories(ctx, q); !errors.Is(err, core.ErrInvalid) {
				t.Fatalf("query %+v: err = %v", q, err)
			}
		}
	})
}
