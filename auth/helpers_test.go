package auth_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/berth-dev/berth/auth"
	"github.com/berth-dev/berth/core/db"
	"github.com/berth-dev/berth/internal/testdb"
	"github.com/berth-dev/berth/migrations"
)

var ctx = context.Background()

const testSecret = "test-secret-key-0123456789abcdef"

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// logBuffer collects log output safely from many goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// each runs fn on SQLite and PostgreSQL with a migrated database.
func each(t *testing.T, fn func(t *testing.T, g *gorm.DB)) {
	t.Helper()
	testdb.Each(t, []db.MigrationSet{migrations.Core}, fn)
}

// newService makes a Service with test defaults (fast hashing, a fixed
// public URL, no logs) plus opts.
func newService(t *testing.T, g *gorm.DB, opts ...auth.Option) *auth.Service {
	t.Helper()
	base := []auth.Option{auth.WithSecretKey(testSecret), auth.WithPublicURL("https://registry.example.com"),
		auth.WithLogger(discardLogger()), auth.WithFastHashing()}
	s, err := auth.New(g, append(base, opts...)...)
	if err != nil {
		t.Fatalf("auth.New: %v", err)
	}
	return s
}

func mustUser(t *testing.T, s *auth.Service, name string, superuser bool) *auth.User {
	t.Helper()
	u, err := s.CreateUser(ctx, auth.UserInput{Username: name, Password: name + "-password", Superuser: superuser})
	if err != nil {
		t.Fatalf("create user %s: %v", name, err)
	}
	return u
}

func mustGroup(t *testing.T, s *auth.Service, name string, members ...*auth.User) *auth.Group {
	t.Helper()
	g, err := s.CreateGroup(ctx, name)
	if err != nil {
		t.Fatalf("create group %s: %v", name, err)
	}
	for _, u := range members {
		if err := s.AddGroupMember(ctx, g.ID, u.ID); err != nil {
			t.Fatalf("add %s to %s: %v", u.Username, name, err)
		}
	}
	return g
}

func principal(t *testing.T, s *auth.Service, u *auth.User) *auth.Principal {
	t.Helper()
	p, err := s.AuthenticateBasic(ctx, u.Username, u.Username+"-password", "192.0.2.1", auth.UsageAPI)
	if err != nil {
		t.Fatalf("authenticate %s: %v", u.Username, err)
	}
	return p
}

func slogTo(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
