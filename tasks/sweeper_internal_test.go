package tasks

import (
	"context"
	"testing"

	"gorm.io/gorm"

	"github.com/berth-dev/berth/core/db"
	"github.com/berth-dev/berth/internal/testdb"
	"github.com/berth-dev/berth/migrations"
)

// TestSweepsRunOneAtATime holds the sweep lock the way a running sweep does
// and checks that another sweep steps aside (PostgreSQL; SQLite serializes
// sweeps in its write transaction).
func TestSweepsRunOneAtATime(t *testing.T) {
	t.Parallel()
	g := testdb.Open(t, db.Postgres, migrations.Core)
	ctx := context.Background()
	s, err := NewSweeper(g, NewMemoryQueue())
	if err != nil {
		t.Fatal(err)
	}
	locked := make(chan struct{})
	release := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- g.Transaction(func(tx *gorm.DB) error {
			var ok bool
			if err := tx.Raw(`SELECT pg_try_advisory_xact_lock(?, 0)`, sweepLockNamespace).Scan(&ok).Error; err != nil || !ok {
				t.Errorf("take the sweep lock: %v, %v", ok, err)
			}
			close(locked)
			<-release
			return nil
		})
	}()
	<-locked
	res, err := s.Sweep(ctx)
	close(release)
	if err != nil || !res.Skipped {
		t.Errorf("Sweep while another holds the lock = %+v, %v; want skipped", res, err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if res, err := s.Sweep(ctx); err != nil || res.Skipped {
		t.Errorf("Sweep = %+v, %v; want it to run", res, err)
	}
}

func TestResourceKeysAreSortedAndUnique(t *testing.T) {
	t.Parallel()
	keys := resourceKeys([]string{"b", "a", "b", "c"})
	if len(keys) != 3 {
		t.Fatalf("keys = %v, want 3", keys)
	}
	for i := 1; i < len(keys); i++ {
		if keys[i-1] >= keys[i] {
			t.Errorf("keys not strictly increasing: %v", keys)
		}
	}
}
