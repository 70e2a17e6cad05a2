// Package testdb gives each test a database of its own, on SQLite and on
// PostgreSQL, and removes it when the test ends. PostgreSQL is found at
// BERTH_TEST_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/postgres).
// Outside CI a missing PostgreSQL skips the PostgreSQL half; with CI=true it
// fails the test, so a broken CI machine can never pass by skipping.
package testdb

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx" for admin statements
	"gorm.io/gorm"

	"github.com/berth-dev/berth/core/db"
)

// Dialects lists the databases every core test runs on.
var Dialects = []db.Dialect{db.SQLite, db.Postgres}

// AdminURL is the PostgreSQL server used to create test databases.
func AdminURL() string {
	if u := os.Getenv("BERTH_TEST_POSTGRES_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
}

// InCI reports whether missing services must fail rather than skip.
func InCI() bool { return os.Getenv("CI") == "true" || os.Getenv("CI") == "1" }

// Unavailable skips the test, or fails it in CI, because a service is missing.
func Unavailable(t testing.TB, what string, err error) {
	t.Helper()
	if InCI() {
		t.Fatalf("%s is required in CI but unavailable: %v", what, err)
	}
	t.Skipf("%s unavailable (%v); set CI=true to make this a failure", what, err)
}

func randomName() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return "berth_test_" + hex.EncodeToString(b)
}

// URL creates an empty database of the dialect for this test and returns the
// URL (BERTH_DATABASE_URL form) that opens it. The database is dropped (or the
// file removed) when the test ends.
func URL(t testing.TB, dialect db.Dialect) string {
	t.Helper()
	switch dialect {
	case db.SQLite:
		return "sqlite://" + filepath.Join(t.TempDir(), "berth.db")
	case db.Postgres:
		admin, err := sql.Open("pgx", AdminURL())
		if err != nil {
			Unavailable(t, "PostgreSQL", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := admin.PingContext(ctx); err != nil {
			admin.Close()
			Unavailable(t, "PostgreSQL", err)
		}
		name := randomName()
		if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
			admin.Close()
			t.Fatalf("create test database: %v", err)
		}
		t.Cleanup(func() {
			defer admin.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if _, err := admin.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
				t.Errorf("drop test database %s: %v", name, err)
			}
		})
		return replaceDBName(AdminURL(), name)
	}
	t.Fatalf("unknown dialect %q", dialect)
	return ""
}

func replaceDBName(adminURL, name string) string {
	base, query, _ := strings.Cut(adminURL, "?")
	i := strings.LastIndex(base, "/")
	u := base[:i+1] + name
	if query != "" {
		u += "?" + query
	}
	if !strings.Contains(u, "sslmode=") {
		sep := "?"
		if strings.Contains(u, "?") {
			sep = "&"
		}
		u += sep + "sslmode=disable"
	}
	return u
}

// Open creates an empty database for this test, migrates it with the given
// sets, and returns it open. It is closed and removed when the test ends.
func Open(t testing.TB, dialect db.Dialect, sets ...db.MigrationSet) *gorm.DB {
	t.Helper()
	u := URL(t, dialect)
	g, err := db.Open(context.Background(), u, "")
	if err != nil {
		t.Fatalf("open %s: %v", dialect, err)
	}
	t.Cleanup(func() { _ = db.Close(g) })
	if err := db.Migrate(context.Background(), g, sets...); err != nil {
		t.Fatalf("migrate %s: %v", dialect, err)
	}
	return g
}

// Each runs fn as a subtest per dialect, each with its own migrated database.
func Each(t *testing.T, sets []db.MigrationSet, fn func(t *testing.T, g *gorm.DB)) {
	t.Helper()
	for _, d := range Dialects {
		t.Run(string(d), func(t *testing.T) {
			fn(t, Open(t, d, sets...))
		})
	}
}

// Name is a short unique name for objects a test creates.
func Name(prefix string) string {
	return fmt.Sprintf("%s-%s", prefix, randomName()[len("berth_test_"):])
}
