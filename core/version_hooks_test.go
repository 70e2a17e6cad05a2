package core_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/berth-dev/berth/core"
)

// hookCall is what a version hook saw.
type hookCall struct {
	repo, latest, number int
	inTx                 bool
	added, removed       int64
	found                bool
}

func TestVersionHooksRunInTheVersionsTransaction(t *testing.T) {
	each(t, func(t *testing.T, s *core.Store) {
		one := 1
		r := &core.Repository{Type: "test.test", Name: "hooked", RetainRepoVersions: &one}
		if err := s.CreateRepository(ctx, r); err != nil {
			t.Fatal(err)
		}
		var calls []hookCall
		record := func(ctx context.Context, tx *core.Store, repo *core.Repository, v *core.RepositoryVersion) error {
			c := hookCall{latest: repo.LatestVersion, number: v.Number, inTx: tx.InTx()}
			if repo.ID == r.ID {
				c.repo = 1
			}
			g := tx.DB(ctx)
			if err := g.Raw("SELECT COUNT(*) FROM repository_contents WHERE repository_id = ? AND version_added = ?", repo.ID, v.Number).Scan(&c.added).Error; err != nil {
				return err
			}
			if err := g.Raw("SELECT COUNT(*) FROM repository_contents WHERE repository_id = ? AND version_removed = ?", repo.ID, v.Number).Scan(&c.removed).Error; err != nil {
				return err
			}
			got, err := tx.Version(ctx, repo.ID, v.Number)
			c.found = err == nil && got.ID == v.ID
			calls = append(calls, c)
			return nil
		}
		s.OnNewVersion("test.record", func(context.Context, *core.Store, *core.Repository, *core.RepositoryVersion) error {
			t.Error("a replaced hook ran")
			return nil
		})
		s.OnNewVersion("test.record", record) // replaces the one above

		ids := content(t, s, "a", "b", "c")
		version(t, s, r.ID, ids[:2], nil)
		// Retention (1 version) folds version 1 into 2 after the hook ran:
		// the hook sees only what version 2 itself changed.
		version(t, s, r.ID, ids[2:], ids[:1])
		// Made through a transaction of the store: the hook runs too.
		if err := s.Tx(ctx, func(tx *core.Store) error {
			_, created, err := tx.NewVersion(ctx, r.ID, "tester", func(b *core.VersionBuilder) error { return b.Add(ctx, ids[0]) })
			if !created && err == nil {
				err = errors.New("no version made")
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
		want := []hookCall{
			{repo: 1, latest: 1, number: 1, inTx: true, added: 2, found: true},
			{repo: 1, latest: 2, number: 2, inTx: true, added: 1, removed: 1, found: true},
			{repo: 1, latest: 3, number: 3, inTx: true, added: 1, found: true},
		}
		if fmt.Sprint(calls) != fmt.Sprint(want) {
			t.Fatalf("hook calls = %+v, want %+v", calls, want)
		}

		// No change, no version: the hook does not run.
		calls = nil
		if _, created := version(t, s, r.ID, ids, nil); created || len(calls) != 0 {
			t.Fatalf("unchanged version: created=%v, hook calls %+v", created, calls)
		}
	})
}

func TestVersionHookErrorRollsTheVersionBack(t *testing.T) {
	each(t, func(t *testing.T, s *core.Store) {
		r := newRepo(t, s, "refused")
		ids := content(t, s, "a", "b")
		version(t, s, r.ID, ids[:1], nil)
		boom := errors.New("hook refuses")
		s.OnNewVersion("test.refuse", func(ctx context.Context, tx *core.Store, repo *core.Repository, v *core.RepositoryVersion) error {
			// Work done by the hook in the transaction goes with it.
			if err := tx.CreateRepository(ctx, &core.Repository{Type: "test.test", Name: fmt.Sprintf("side-effect-%d", v.Number)}); err != nil {
				return err
			}
			return boom
		})
		v, created, err := s.NewVersion(ctx, r.ID, "tester", func(b *core.VersionBuilder) error { return b.Add(ctx, ids[1]) })
		if !errors.Is(err, boom) || created || v != nil {
			t.Fatalf("NewVersion with a failing hook = %v, %v, %v", v, created, err)
		}
		got, err := s.Repository(ctx, r.ID)
		if err != nil || got.LatestVersion != 1 {
			t.Fatalf("latest version after the hook failed = %+v, %v", got, err)
		}
		if _, err := s.Version(ctx, r.ID, 2); !errors.Is(err, core.ErrNotFound) {
			t.Fatalf("version 2 left behind: %v", err)
		}
		if got := keysAt(t, s, r.ID, 1); got != "a" {
			t.Fatalf("version 1 = %q", got)
		}
		if _, err := s.RepositoryByName(ctx, "side-effect-2"); !errors.Is(err, core.ErrNotFound) {
			t.Fatalf("the hook's own work survived the rollback: %v", err)
		}

		// Once the hook lets it, the same change makes version 2.
		s.OnNewVersion("test.refuse", func(context.Context, *core.Store, *core.Repository, *core.RepositoryVersion) error { return nil })
		if v, created := version(t, s, r.ID, ids[1:], nil); !created || v.Number != 2 {
			t.Fatalf("after the hook relented: %+v created=%v", v, created)
		}
	})
}
