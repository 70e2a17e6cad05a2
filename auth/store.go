package auth

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"gorm.io/gorm"

	"github.com/berth-dev/berth/core"
	"github.com/berth-dev/berth/core/db"
)

// store holds every SQL statement of package auth. A store is bound to the
// pool or to one transaction (see tx).
type store struct {
	db      *gorm.DB
	dialect db.Dialect
	inTx    bool
}

func newStore(g *gorm.DB) *store { return &store{db: g, dialect: db.DialectOf(g)} }

func (s *store) q(ctx context.Context) *gorm.DB { return s.db.WithContext(ctx) }

// tx runs fn in one transaction; nested calls reuse the outer one.
func (s *store) tx(ctx context.Context, fn func(tx *store) error) error {
	if s.inTx {
		return fn(s)
	}
	err := s.db.WithContext(ctx).Transaction(func(g *gorm.DB) error {
		return fn(&store{db: g, dialect: s.dialect, inTx: true})
	})
	return core.Translate(err)
}

func newID() string { return uuid.NewString() }

// take loads one row into dst or answers ErrNotFound naming kind and key.
func take(g *gorm.DB, dst any, kind, key, where string, args ...any) error {
	err := g.Where(where, args...).Take(dst).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return core.NotFound(kind, key)
	}
	return core.Translate(err)
}

// bumpPolicy advances the policy version. It runs inside the transaction of
// every change that can alter a permission decision, so any process that
// reads the new version also sees the change.
func (s *store) bumpPolicy(ctx context.Context) error {
	if !s.inTx {
		return fmt.Errorf("auth store: bumpPolicy outside a transaction")
	}
	res := s.q(ctx).Exec("UPDATE auth_policy SET version = version + 1 WHERE id = 1")
	if res.Error != nil {
		return core.Translate(res.Error)
	}
	if res.RowsAffected != 1 {
		return fmt.Errorf("auth store: auth_policy row missing (migrations not applied?)")
	}
	return nil
}

// policyVersion reads the current policy version (one primary-key read).
func (s *store) policyVersion(ctx context.Context) (int64, error) {
	var v int64
	if err := s.q(ctx).Raw("SELECT version FROM auth_policy WHERE id = 1").Scan(&v).Error; err != nil {
		return 0, core.Translate(err)
	}
	return v, nil
}

// list runs q over the rows of T selected by scope and counts them all.
func list[T any](ctx context.Context, g *gorm.DB, q core.ListQuery, cols core.Columns, defaultOrder string, scope func(*gorm.DB) *gorm.DB) ([]T, int64, error) {
	var zero T
	base := g.WithContext(ctx).Model(&zero)
	if scope != nil {
		base = scope(base)
	}
	filtered, paged, err := q.Apply(base, cols, defaultOrder)
	if err != nil {
		return nil, 0, err
	}
	var total int64
	if err := filtered.Session(&gorm.Session{}).Count(&total).Error; err != nil {
		return nil, 0, core.Translate(err)
	}
	out := []T{}
	if err := paged.Find(&out).Error; err != nil {
		return nil, 0, core.Translate(err)
	}
	return out, total, nil
}
