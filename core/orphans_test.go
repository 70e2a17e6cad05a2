package core_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/core"
	"github.com/berth-dev/berth/core/storage"
	"github.com/berth-dev/berth/core/storage/fs"
)

// blobFixture stores files and records them as "test.blob" content the way
// an upload does: lease, write, record, release.
type blobFixture struct {
	t     testing.TB
	s     *core.Store
	blobs storage.Driver
}

func newBlobFixture(t testing.TB, s *core.Store) *blobFixture {
	b, err := fs.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return &blobFixture{t: t, s: s, blobs: b}
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func blobData(key string) []byte { return []byte("blob content of " + key) }

// store writes the file of key and records it as content; it returns the
// content ID.
func (f *blobFixture) store(ctx context.Context, key string) (string, error) {
	data := blobData(key)
	d := digest.FromBytes(data)
	lease, err := f.s.LeaseArtifact(ctx, d.String())
	if err != nil {
		return "", err
	}
	defer lease.Release(context.WithoutCancel(ctx))
	if _, err := f.blobs.Put(ctx, d, int64(len(data)), bytes.NewReader(data)); err != nil {
		return "", err
	}
	var id string
	err = f.s.Tx(ctx, func(tx *core.Store) error {
		a, _, err := tx.GetOrCreateArtifact(ctx, d.String(), int64(len(data)))
		if err != nil {
			return err
		}
		c, _, err := tx.GetOrCreateContent(ctx, "test.blob", d.String())
		if err != nil {
			return err
		}
		id = c.ID
		return tx.AttachArtifact(ctx, c.ID, d.String(), &a.ID)
	})
	return id, err
}

func (f *blobFixture) mustStore(key string) string {
	f.t.Helper()
	id, err := f.store(ctx, key)
	if err != nil {
		f.t.Fatalf("store %s: %v", key, err)
	}
	return id
}

func (f *blobFixture) exists(key string) bool {
	f.t.Helper()
	_, err := f.blobs.Stat(ctx, digest.FromBytes(blobData(key)))
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		f.t.Fatal(err)
	}
	return err == nil
}

func (f *blobFixture) cleaner(opts ...core.CleanerOption) *core.OrphanCleaner {
	f.t.Helper()
	c, err := core.NewOrphanCleaner(f.s, f.blobs, nil, opts...)
	if err != nil {
		f.t.Fatal(err)
	}
	return c
}

// protectKeys is a ContentProtector that needs the content of fixed keys.
type protectKeys map[string]bool

func (p protectKeys) ProtectedContent(ctx context.Context, tx *core.Store, ids []string) ([]string, error) {
	var out []string
	for _, id := range ids {
		c, err := tx.ContentByID(ctx, id)
		if err != nil {
			return nil, err
		}
		if p[c.NaturalKey] {
			out = append(out, id)
		}
	}
	return out, nil
}

func TestOrphanCleanup(t *testing.T) {
	each(t, func(t *testing.T, s *core.Store) {
		f := newBlobFixture(t, s)
		repo := newRepo(t, s, "orphans")
		kept := f.mustStore("kept")
		gone := f.mustStore("gone")
		shared := f.mustStore("shared")
		guarded := f.mustStore("guarded")
		version(t, s, repo.ID, []string{kept, gone, shared}, nil)
		other := newRepo(t, s, "other")
		version(t, s, other.ID, []string{shared}, nil)

		// Everything is too young for the default protection.
		rep, err := f.cleaner().Cleanup(ctx, core.CleanupOptions{Protection: time.Hour})
		if err != nil || rep.ContentRemoved != 0 || rep.FilesRemoved != 0 {
			t.Fatalf("cleanup with protection: %+v %v", rep, err)
		}

		// Removed from the latest version, but an older version holds it.
		version(t, s, repo.ID, nil, []string{gone, shared})
		rep, err = f.cleaner().Cleanup(ctx, core.CleanupOptions{})
		if err != nil || rep.ContentRemoved != 1 || rep.Content["test.blob"] != 1 {
			// Only "guarded" (in no version) goes.
			t.Fatalf("first cleanup: %+v %v", rep, err)
		}
		if f.exists("guarded") {
			t.Fatal("the file of content in no version is still there")
		}
		_ = guarded

		// Once no version holds it, it goes; what another repository holds stays.
		if err := s.DeleteVersion(ctx, repo.ID, 1); err != nil {
			t.Fatal(err)
		}
		stray := digest.FromBytes([]byte("stray"))
		if _, err := f.blobs.Put(ctx, stray, 5, bytes.NewReader([]byte("stray"))); err != nil {
			t.Fatal(err)
		}
		rep, err = f.cleaner().Cleanup(ctx, core.CleanupOptions{})
		if err != nil {
			t.Fatal(err)
		}
		want := int64(len(blobData("gone")) + len("stray"))
		if rep.ContentRemoved != 1 || rep.ArtifactsRemoved != 1 || rep.FilesRemoved != 2 || rep.StrayFiles != 1 || rep.BytesReclaimed != want {
			t.Fatalf("second cleanup: %+v, want 1 content, 1 artifact, 2 files (1 stray), %d bytes", rep, want)
		}
		for key, want := range map[string]bool{"kept": true, "shared": true, "gone": false} {
			if f.exists(key) != want {
				t.Errorf("file of %s exists = %v, want %v", key, !want, want)
			}
		}
		if _, err := s.ContentByID(ctx, gone); !errors.Is(err, core.ErrNotFound) {
			t.Fatalf("orphan content still there: %v", err)
		}

		// A protector keeps what it needs, and touched content is kept
		// for the protection time however old it is.
		f.mustStore("protected")
		f.mustStore("touched")
		f.mustStore("old")
		old := time.Now().UTC().Add(-2 * time.Hour)
		for _, table := range []string{"contents", "artifacts"} {
			if err := s.DB(ctx).Exec("UPDATE "+table+" SET created_at = ?", old).Error; err != nil {
				t.Fatal(err)
			}
		}
		key := func(k string) string { return digest.FromBytes(blobData(k)).String() }
		if ok, err := s.TouchContent(ctx, "test.blob", key("touched")); err != nil || !ok {
			t.Fatalf("touch: %v %v", ok, err)
		}
		rep, err = f.cleaner(core.WithProtectors(protectKeys{key("protected"): true})).Cleanup(ctx, core.CleanupOptions{Protection: time.Hour})
		if err != nil || rep.ContentProtected != 1 || rep.ContentRemoved != 1 || rep.FilesRemoved != 1 {
			t.Fatalf("cleanup with a protector: %+v %v", rep, err)
		}
		if !f.exists("protected") || !f.exists("touched") || f.exists("old") {
			t.Fatalf("files: protected %v touched %v old %v; want true true false", f.exists("protected"), f.exists("touched"), f.exists("old"))
		}

		// A leased digest's file stays even without a row.
		leased := digest.FromBytes([]byte("leased"))
		lease, err := s.LeaseArtifact(ctx, leased.String())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.blobs.Put(ctx, leased, 6, bytes.NewReader([]byte("leased"))); err != nil {
			t.Fatal(err)
		}
		if _, err := f.cleaner().Cleanup(ctx, core.CleanupOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := f.blobs.Stat(ctx, leased); err != nil {
			t.Fatalf("leased file removed: %v", err)
		}
		if err := lease.Release(ctx); err != nil {
			t.Fatal(err)
		}
		rep, err = f.cleaner().Cleanup(ctx, core.CleanupOptions{})
		if err != nil || rep.StrayFiles != 1 {
			t.Fatalf("after the lease: %+v %v", rep, err)
		}

		if _, err := f.cleaner().Cleanup(ctx, core.CleanupOptions{Protection: -time.Second}); !errors.Is(err, core.ErrInvalid) {
			t.Fatalf("negative protection: %v", err)
		}
	})
}

// TestOrphanCleanupRace runs cleanups with no protection in a loop while
// writers store blobs (some again after they were cleaned up) and add them
// to versions, and removers take them out again. Afterwards every content
// in a version has its artifact and file, every artifact row has its file,
// and after a last cleanup no file is left without a row.
func TestOrphanCleanupRace(t *testing.T) {
	each(t, func(t *testing.T, s *core.Store) {
		f := newBlobFixture(t, s)
		keep := 1
		var repos []*core.Repository
		for i := range 4 {
			r := &core.Repository{Type: "test.test", Name: fmt.Sprintf("race-%d", i), RetainRepoVersions: &keep}
			if err := s.CreateRepository(ctx, r); err != nil {
				t.Fatal(err)
			}
			repos = append(repos, r)
		}
		keys := make([]string, 12)
		for i := range keys {
			keys[i] = fmt.Sprintf("k%d", i)
		}
		retry := func(fn func() error) error {
			var err error
			for range 20 {
				if err = fn(); err == nil || !(errors.Is(err, core.ErrConflict) || errors.Is(err, core.ErrUnavailable)) {
					return err
				}
				time.Sleep(time.Duration(rand.IntN(5)) * time.Millisecond)
			}
			return err
		}
		ctx, cancel := context.WithTimeout(ctx, 4*time.Second)
		defer cancel()
		var wg sync.WaitGroup
		var stored, removed, cleanups, filesRemoved atomic.Int64
		errs := make(chan error, 100)
		for w := range 4 {
			wg.Go(func() {
				for ctx.Err() == nil {
					key := keys[rand.IntN(len(keys))]
					repo := repos[rand.IntN(len(repos))]
					err := retry(func() error {
						id, err := f.store(ctx, key)
						if err != nil {
							return err
						}
						_, _, err = s.NewVersion(ctx, repo.ID, "writer", func(b *core.VersionBuilder) error {
							if found, err := b.Store().LockContent(ctx, id); err != nil || len(found) == 0 {
								return core.Conflict("content gone before the version: %v", err)
							}
							return b.Add(ctx, id)
						})
						return err
					})
					if err != nil && ctx.Err() == nil {
						errs <- fmt.Errorf("writer %d: %w", w, err)
						return
					}
					stored.Add(1)
				}
			})
		}
		wg.Go(func() {
			for ctx.Err() == nil {
				repo := repos[rand.IntN(len(repos))]
				err := retry(func() error {
					_, _, err := s.NewVersion(ctx, repo.ID, "remover", func(b *core.VersionBuilder) error {
						ids, err := b.Present(ctx, "")
						if err != nil || len(ids) == 0 {
							return err
						}
						return b.Remove(ctx, ids[rand.IntN(len(ids))])
					})
					return err
				})
				if err != nil && ctx.Err() == nil {
					errs <- fmt.Errorf("remover: %w", err)
					return
				}
				removed.Add(1)
				time.Sleep(2 * time.Millisecond)
			}
		})
		wg.Go(func() {
			c := f.cleaner(core.WithBatchSize(3), core.WithCleanerLogger(quiet))
			for ctx.Err() == nil {
				rep, err := c.Cleanup(ctx, core.CleanupOptions{})
				if err != nil && ctx.Err() == nil {
					errs <- fmt.Errorf("cleanup: %w", err)
					return
				}
				cleanups.Add(1)
				filesRemoved.Add(rep.FilesRemoved)
			}
		})
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		t.Logf("%d stores, %d removals, %d cleanups removing %d files", stored.Load(), removed.Load(), cleanups.Load(), filesRemoved.Load())
		if cleanups.Load() == 0 || stored.Load() == 0 || filesRemoved.Load() == 0 {
			t.Fatal("the race did not run")
		}
		checkConsistent(t, f, repos)
		if _, err := f.cleaner(core.WithCleanerLogger(quiet)).Cleanup(context.Background(), core.CleanupOptions{}); err != nil {
			t.Fatal(err)
		}
		checkConsistent(t, f, repos)
		// Now storage holds exactly the files of the artifact rows.
		var digests []string
		if err := s.DB(context.Background()).Raw("SELECT digest FROM artifacts").Scan(&digests).Error; err != nil {
			t.Fatal(err)
		}
		files := 0
		if err := f.blobs.Walk(context.Background(), func(storage.Info) error { files++; return nil }); err != nil {
			t.Fatal(err)
		}
		if files != len(digests) {
			t.Fatalf("%d files for %d artifact rows after the last cleanup", files, len(digests))
		}
	})
}

// checkConsistent fails unless every content in a latest version has an
// artifact whose file holds the right bytes, and every artifact row has
// its file.
func checkConsistent(t *testing.T, f *blobFixture, repos []*core.Repository) {
	t.Helper()
	bg := context.Background()
	for _, r := range repos {
		repo, err := f.s.Repository(bg, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		ids, err := f.s.VersionContentIDs(bg, repo.ID, repo.LatestVersion, "")
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range ids {
			cas, err := f.s.ContentArtifacts(bg, id)
			if err != nil || len(cas) != 1 || cas[0].ArtifactID == nil {
				t.Fatalf("content %s of %s: artifacts %v %v", id, repo.Name, cas, err)
			}
		}
	}
	var digests []string
	if err := f.s.DB(bg).Raw("SELECT digest FROM artifacts").Scan(&digests).Error; err != nil {
		t.Fatal(err)
	}
	for _, d := range digests {
		rc, _, err := f.blobs.Open(bg, digest.Digest(d))
		if err != nil {
			t.Fatalf("artifact %s has no file: %v", d, err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || digest.FromBytes(b).String() != d {
			t.Fatalf("file of %s is damaged: %v", d, err)
		}
	}
}

func TestClaimSchedule(t *testing.T) {
	each(t, func(t *testing.T, s *core.Store) {
		if ok, err := s.ClaimSchedule(ctx, "job", time.Hour); err != nil || ok {
			t.Fatalf("first claim starts the clock: %v %v", ok, err)
		}
		if ok, err := s.ClaimSchedule(ctx, "fast", time.Millisecond); err != nil || ok {
			t.Fatalf("first claim: %v %v", ok, err)
		}
		time.Sleep(5 * time.Millisecond)
		var wins atomic.Int32
		var wg sync.WaitGroup
		for range 5 {
			wg.Go(func() {
				if ok, err := s.ClaimSchedule(ctx, "fast", time.Hour); err != nil {
					t.Error(err)
				} else if ok {
					wins.Add(1)
				}
			})
		}
		wg.Wait()
		if wins.Load() != 1 {
			t.Fatalf("%d claims won a due run, want 1", wins.Load())
		}
		if ok, _ := s.ClaimSchedule(ctx, "job", time.Hour); ok {
			t.Fatal("a job not due was claimed")
		}
	})
}

func TestUsage(t *testing.T) {
	each(t, func(t *testing.T, s *core.Store) {
		f := newBlobFixture(t, s)
		a, b := newRepo(t, s, "usage-a"), newRepo(t, s, "usage-b")
		x, y, z := f.mustStore("x"), f.mustStore("y"), f.mustStore("zz")
		version(t, s, a.ID, []string{x, y}, nil)
		version(t, s, b.ID, []string{y, z}, nil)
		version(t, s, a.ID, nil, []string{x})
		sz := func(keys ...string) int64 {
			var n int64
			for _, k := range keys {
				n += int64(len(blobData(k)))
			}
			return n
		}
		check := func(what string, u core.Usage, err error, n int64, bytes int64) {
			t.Helper()
			if err != nil || u.Artifacts != n || u.Bytes != bytes {
				t.Fatalf("%s: %+v %v, want %d artifacts, %d bytes", what, u, err, n, bytes)
			}
		}
		u, err := s.RepositoriesUsage(ctx, []string{a.ID})
		check("a", u, err, 2, sz("x", "y"))
		u, err = s.RepositoriesUsage(ctx, []string{a.ID, b.ID})
		check("a+b", u, err, 3, sz("x", "y", "zz"))
		u, err = s.ExclusiveUsage(ctx, []string{a.ID})
		check("a alone", u, err, 1, sz("x"))
		u, err = s.VersionUsage(ctx, a.ID, 2)
		check("a latest", u, err, 1, sz("y"))
		sum, err := s.Summary(ctx)
		if err != nil || sum.Total.Artifacts != 3 || sum.Unreferenced.Artifacts != 0 {
			t.Fatalf("summary %+v %v", sum, err)
		}
	})
}
