package core

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	sqlite "github.com/glebarez/go-sqlite"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgconn"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/berth-dev/berth/core/db"
	"github.com/berth-dev/berth/core/secret"
)

// Store is the core's record store: every SQL statement of the generic model
// is in this package. A Store is bound either to the pool or to one
// transaction (see Tx); its methods work the same either way.
type Store struct {
	db      *gorm.DB
	dialect db.Dialect
	secrets *secret.Box
	inTx    bool
	// hooks is shared by the store and every transaction-bound copy of it.
	hooks *versionHooks
}

// NewStore wraps an open database. secrets seals remote credentials; it may
// be nil only in tests that store none.
func NewStore(g *gorm.DB, secrets *secret.Box) *Store {
	return &Store{db: g, dialect: db.DialectOf(g), secrets: secrets, hooks: &versionHooks{}}
}

// DB returns the gorm handle (transaction-bound inside Tx) for plugin store
// code that keeps its own tables beside the core's.
func (s *Store) DB(ctx context.Context) *gorm.DB { return s.db.WithContext(ctx) }

// Dialect tells which database the store talks to.
func (s *Store) Dialect() db.Dialect { return s.dialect }

// Secrets returns the box that seals stored credentials.
func (s *Store) Secrets() *secret.Box { return s.secrets }

// InTx reports whether the store is bound to a transaction.
func (s *Store) InTx() bool { return s.inTx }

// Tx runs fn in one transaction. Nested calls reuse the outer transaction.
func (s *Store) Tx(ctx context.Context, fn func(tx *Store) error) error {
	if s.inTx {
		return fn(s)
	}
	err := s.db.WithContext(ctx).Transaction(func(g *gorm.DB) error {
		return fn(&Store{db: g, dialect: s.dialect, secrets: s.secrets, inTx: true, hooks: s.hooks})
	})
	return Translate(err)
}

// lockRow takes a row lock on PostgreSQL (SQLite transactions are already
// serialized by BEGIN IMMEDIATE).
func (s *Store) lockRow(g *gorm.DB) *gorm.DB {
	if s.dialect == db.Postgres {
		return g.Clauses(clause.Locking{Strength: "UPDATE"})
	}
	return g
}

// now is the current time as the databases keep it: UTC, to the
// microsecond (PostgreSQL's precision), so an object reads back the same on
// SQLite and PostgreSQL.
func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

// NewID returns a new random identifier.
func NewID() string { return uuid.NewString() }

// Translate maps driver errors to the core's sentinels, so that both
// databases answer the same typed errors: unique and foreign-key violations
// become ErrConflict, a missing row ErrNotFound, a dead connection
// ErrUnavailable. Other errors pass through unchanged.
func Translate(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, ErrNotFound) || errors.Is(err, ErrConflict) || errors.Is(err, ErrInvalid) || errors.Is(err, ErrUnavailable) {
		return err
	}
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return fmt.Errorf("%w", ErrNotFound)
	}
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		switch pg.Code {
		case "23505":
			return fmt.Errorf("already exists (%s): %w", pg.ConstraintName, ErrConflict)
		case "23503":
			return fmt.Errorf("still referenced or reference missing (%s): %w", pg.ConstraintName, ErrConflict)
		case "40001", "40P01":
			return fmt.Errorf("concurrent update, try again: %w", ErrConflict)
		}
		if strings.HasPrefix(pg.Code, "08") || pg.Code == "57P01" {
			return fmt.Errorf("database: %s: %w", pg.Message, ErrUnavailable)
		}
		return err
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() {
		case 2067, 1555: // SQLITE_CONSTRAINT_UNIQUE, SQLITE_CONSTRAINT_PRIMARYKEY
			return fmt.Errorf("already exists: %s: %w", se.Error(), ErrConflict)
		case 787: // SQLITE_CONSTRAINT_FOREIGNKEY
			return fmt.Errorf("still referenced or reference missing: %w", ErrConflict)
		case 5, 6, 517: // BUSY, LOCKED, BUSY_SNAPSHOT
			return fmt.Errorf("database busy: %w", ErrUnavailable)
		}
		return err
	}
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, driver.ErrBadConn) {
		return fmt.Errorf("database: %v: %w", err, ErrUnavailable)
	}
	return err
}

// first loads one row into dst or answers ErrNotFound naming kind and key.
func first(g *gorm.DB, dst any, kind, key string, where string, args ...any) error {
	err := g.Where(where, args...).Take(dst).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return NotFound(kind, key)
	}
	return Translate(err)
}
