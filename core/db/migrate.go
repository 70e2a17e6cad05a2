package db

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/database"
	"github.com/pressly/goose/v3/lock"
	"gorm.io/gorm"
)

// MigrationSet is one owner's schema: the core's, or a plugin's. FS holds a
// directory per dialect ("postgres", "sqlite") of goose SQL files. Each set
// keeps its own version table, so plugins number their files independently.
type MigrationSet struct {
	Name string
	FS   fs.FS
}

// SetStatus tells where a database stands for one migration set.
type SetStatus struct {
	Name       string
	Current    int64
	Latest     int64
	Migrations []MigrationState
}

// MigrationState is one migration file and whether it has been applied.
type MigrationState struct {
	Version int64
	File    string
	Applied bool
}

func provider(g *gorm.DB, set MigrationSet) (*goose.Provider, error) {
	sqlDB, err := g.DB()
	if err != nil {
		return nil, err
	}
	dialect := DialectOf(g)
	sub, err := fs.Sub(set.FS, string(dialect))
	if err != nil {
		return nil, fmt.Errorf("migrations %s: %w", set.Name, err)
	}
	gd := database.DialectSQLite3
	if dialect == Postgres {
		gd = database.DialectPostgres
	}
	store, err := database.NewStore(gd, "berth_schema_"+set.Name)
	if err != nil {
		return nil, err
	}
	opts := []goose.ProviderOption{goose.WithStore(store), goose.WithDisableGlobalRegistry(true)}
	if dialect == Postgres {
		// Several replicas may start at once: one migrates, the others wait.
		locker, err := lock.NewPostgresSessionLocker()
		if err != nil {
			return nil, err
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	}
	return goose.NewProvider("", sqlDB, sub, opts...)
}

// Migrate applies every pending migration of each set, in order.
func Migrate(ctx context.Context, g *gorm.DB, sets ...MigrationSet) error {
	for _, set := range sets {
		p, err := provider(g, set)
		if err != nil {
			return err
		}
		res, err := p.Up(ctx)
		if err != nil {
			return fmt.Errorf("migrate %s: %w", set.Name, err)
		}
		for _, r := range res {
			slog.Debug("migration applied", "set", set.Name, "version", r.Source.Version, "file", r.Source.Path, "duration", r.Duration)
		}
	}
	return nil
}

// Status reports each set's applied and pending migrations.
func Status(ctx context.Context, g *gorm.DB, sets ...MigrationSet) ([]SetStatus, error) {
	out := make([]SetStatus, 0, len(sets))
	for _, set := range sets {
		p, err := provider(g, set)
		if err != nil {
			return nil, err
		}
		st, err := p.Status(ctx)
		if err != nil {
			return nil, fmt.Errorf("status %s: %w", set.Name, err)
		}
		s := SetStatus{Name: set.Name}
		for _, m := range st {
			applied := m.State == goose.StateApplied
			s.Migrations = append(s.Migrations, MigrationState{Version: m.Source.Version, File: m.Source.Path, Applied: applied})
			if applied && m.Source.Version > s.Current {
				s.Current = m.Source.Version
			}
			if m.Source.Version > s.Latest {
				s.Latest = m.Source.Version
			}
		}
		out = append(out, s)
	}
	return out, nil
}
