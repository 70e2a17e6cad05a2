// Package db opens Berth's record database (SQLite or PostgreSQL through gorm)
// and runs the embedded schema migrations of the core and of each plugin.
package db

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/glebarez/sqlite"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// Dialect names a supported database.
type Dialect string

const (
	Postgres Dialect = "postgres"
	SQLite   Dialect = "sqlite"
)

// DialectOf tells which database g talks to.
func DialectOf(g *gorm.DB) Dialect {
	if g.Dialector.Name() == "postgres" {
		return Postgres
	}
	return SQLite
}

// DefaultSQLitePath is where the embedded database lives inside the data dir.
func DefaultSQLitePath(dataDir string) string { return filepath.Join(dataDir, "berth.db") }

// Open connects to the database named by dsn. An empty dsn means the SQLite
// file in dataDir; "postgres://" and "postgresql://" URLs mean PostgreSQL;
// "sqlite://PATH" or "file:PATH" name another SQLite file.
func Open(ctx context.Context, dsn, dataDir string) (*gorm.DB, error) {
	cfg := &gorm.Config{
		Logger:                                   logger.Discard,
		NowFunc:                                  func() time.Time { return time.Now().UTC() },
		DisableForeignKeyConstraintWhenMigrating: true,
		SkipDefaultTransaction:                   true,
	}
	var (
		g   *gorm.DB
		err error
	)
	switch {
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		g, err = gorm.Open(postgres.Open(dsn), cfg)
		if err != nil {
			return nil, fmt.Errorf("open postgres: %w", err)
		}
		sqlDB, _ := g.DB()
		sqlDB.SetMaxOpenConns(20)
		sqlDB.SetMaxIdleConns(10)
		sqlDB.SetConnMaxIdleTime(5 * time.Minute)
	default:
		path := dsn
		switch {
		case path == "":
			if dataDir == "" {
				return nil, fmt.Errorf("open sqlite: no database URL and no data directory")
			}
			path = DefaultSQLitePath(dataDir)
		case strings.HasPrefix(path, "sqlite://"):
			path = strings.TrimPrefix(path, "sqlite://")
		case strings.HasPrefix(path, "file:"):
			path = strings.TrimPrefix(path, "file:")
		default:
			return nil, fmt.Errorf("database URL %q: want postgres://…, sqlite://PATH or empty for the embedded default", redact(dsn))
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return nil, fmt.Errorf("open sqlite: %w", err)
		}
		g, err = gorm.Open(sqlite.Open(sqliteDSN(path)), cfg)
		if err != nil {
			return nil, fmt.Errorf("open sqlite %s: %w", path, err)
		}
		sqlDB, _ := g.DB()
		// WAL lets readers run beside the single writer; every transaction
		// begins IMMEDIATE so two writers queue on busy_timeout instead of
		// failing with "database is locked" when a read lock must upgrade.
		sqlDB.SetMaxOpenConns(8)
		sqlDB.SetMaxIdleConns(8)
	}
	sqlDB, err := g.DB()
	if err != nil {
		return nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := sqlDB.PingContext(pctx); err != nil {
		_ = sqlDB.Close()
		return nil, fmt.Errorf("database %s does not answer: %w", redact(dsn), err)
	}
	return g, nil
}

func sqliteDSN(path string) string {
	q := url.Values{}
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "busy_timeout(15000)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Add("_txlock", "immediate")
	return "file:" + path + "?" + q.Encode()
}

// Close closes the pool behind g.
func Close(g *gorm.DB) error {
	sqlDB, err := g.DB()
	if err != nil {
		return err
	}
	return sqlDB.Close()
}

// redact hides a password in a database URL.
func redact(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil || u.User == nil {
		return dsn
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}

// Redact hides the password of a database URL for logs.
func Redact(dsn string) string { return redact(dsn) }
