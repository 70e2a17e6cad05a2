package app

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/core"
	"github.com/berth-dev/berth/internal/config"
	"github.com/berth-dev/berth/plugins/container"
	"github.com/berth-dev/berth/tasks"
)

// recorder is a dispatcher that remembers the specs it was given.
type recorder struct {
	mu    sync.Mutex
	specs []tasks.Spec
}

func (r *recorder) Dispatch(_ context.Context, s tasks.Spec) (*tasks.Task, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.specs = append(r.specs, s)
	return &tasks.Task{ID: core.NewID(), Name: s.Name}, nil
}

func (r *recorder) names() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, s := range r.specs {
		out = append(out, s.Name)
	}
	return out
}

// TestPeriodicMaintenance: the periodic jobs dispatch an orphan cleanup and
// a retention run per repository with a stored policy, once per interval,
// the first one interval after start; the handlers are registered.
func TestPeriodicMaintenance(t *testing.T) {
	ctx := context.Background()
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.SecretKey = "app-test-secret-key-0123456789"
	cfg.OrphanCleanupInterval = time.Minute
	cfg.RetentionInterval = time.Minute
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	a, err := Open(ctx, &cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), "test", true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	for _, name := range []string{api.TaskOrphanCleanup, container.TaskRemove, container.TaskRetention, container.TaskDeleteNamespace} {
		if !a.Tasks.Has(name) {
			t.Errorf("no handler for %s", name)
		}
	}
	repo, err := a.Container.CreateImage(ctx, container.Identity{Username: "admin"}, "ns/app")
	if err != nil {
		t.Fatal(err)
	}
	if repo.RetainRepoVersions == nil || *repo.RetainRepoVersions != 1 {
		t.Fatalf("pushed repositories keep %v versions, want 1", repo.RetainRepoVersions)
	}
	if err := a.DB.Exec(`INSERT INTO container_retention_policies (repository_id, keep_tags, tag_pattern, updated_at) VALUES (?, 3, '', ?)`,
		repo.ID, time.Now().UTC()).Error; err != nil {
		t.Fatal(err)
	}

	rec := &recorder{}
	a.dispatchDue(ctx, rec)
	if got := rec.names(); len(got) != 0 {
		t.Fatalf("the first look dispatched %v; the first run is one interval later", got)
	}
	// An interval later (moved back in the database), both are due, once.
	if err := a.DB.Exec(`UPDATE schedules SET next_at = ?`, time.Now().UTC().Add(-time.Second)).Error; err != nil {
		t.Fatal(err)
	}
	a.dispatchDue(ctx, rec)
	a.dispatchDue(ctx, rec)
	got := rec.names()
	slices.Sort(got)
	if !slices.Equal(got, []string{container.TaskRetention, api.TaskOrphanCleanup}) {
		t.Fatalf("dispatched %v", got)
	}
	for _, s := range rec.specs {
		if s.Name == api.TaskOrphanCleanup && !slices.Equal(s.Exclusive, []string{api.OrphansResource}) {
			t.Fatalf("cleanup resources %v", s.Exclusive)
		}
		if s.Name == container.TaskRetention && !slices.Equal(s.Exclusive, []string{api.RepositoryResource(repo.ID)}) {
			t.Fatalf("retention resources %v", s.Exclusive)
		}
	}
}
