package api

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/berth-dev/berth/api/errcode"
	"github.com/berth-dev/berth/core"
	"github.com/berth-dev/berth/tasks"
)

// CheckTimeout bounds each probe of a backing service.
const CheckTimeout = 3 * time.Second

// PingDatabase returns a check that pings the store's database.
func PingDatabase(s *core.Store) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		sqlDB, err := s.DB(ctx).DB()
		if err != nil {
			return fmt.Errorf("database handle: %w", err)
		}
		if err := sqlDB.PingContext(ctx); err != nil {
			return fmt.Errorf("ping database: %w", core.Translate(err))
		}
		return nil
	}
}

// StorageProbe returns a check that creates, syncs and removes a small file
// in dir: it fails when the blob storage directory is missing, full or
// read-only.
func StorageProbe(dir string) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		f, err := os.CreateTemp(dir, ".berth-probe-*")
		if err != nil {
			return fmt.Errorf("storage probe: %w", err)
		}
		name := f.Name()
		defer os.Remove(name)
		if _, err := f.WriteString("ok"); err != nil {
			f.Close()
			return fmt.Errorf("storage probe %s: %w", filepath.Base(name), err)
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return fmt.Errorf("storage probe %s: %w", filepath.Base(name), err)
		}
		if err := f.Close(); err != nil {
			return fmt.Errorf("storage probe %s: %w", filepath.Base(name), err)
		}
		return ctx.Err()
	}
}

// HealthResponse is the body of /healthz and /readyz.
type HealthResponse struct {
	Status string `json:"status" enum:"ok,ready"`
	// Database and Redis are "ok" or "not used" (/readyz only).
	Database string `json:"database,omitempty"`
	Redis    string `json:"redis,omitempty"`
}

// StatusResponse is the body of the status endpoint, in Pulp's shape.
type StatusResponse struct {
	Versions           []ComponentVersion `json:"versions"`
	OnlineWorkers      []WorkerResponse   `json:"online_workers"`
	DatabaseConnection ConnectionStatus   `json:"database_connection"`
	RedisConnection    ConnectionStatus   `json:"redis_connection"`
	Storage            StorageStatus      `json:"storage"`
}

// ComponentVersion is the version of Berth or of one of its plugins.
type ComponentVersion struct {
	Component string `json:"component"`
	Version   string `json:"version"`
}

// ConnectionStatus tells whether a backing service answers. Configured is
// false for Redis in the embedded mode.
type ConnectionStatus struct {
	Configured bool `json:"configured"`
	Connected  bool `json:"connected"`
}

// StorageStatus tells whether the blob storage accepts writes.
type StorageStatus struct {
	Configured bool `json:"configured" doc:"Whether the server checks its storage."`
	Writable   bool `json:"writable"`
}

// Versioned is implemented by plugins that have a version of their own;
// the others are shown with Berth's.
type Versioned interface {
	Version() string
}

// check runs one probe with CheckTimeout; a nil probe is "not configured".
func (s *Server) check(ctx context.Context, what string, probe func(context.Context) error) (configured, ok bool) {
	if probe == nil {
		return false, false
	}
	ctx, cancel := context.WithTimeout(ctx, CheckTimeout)
	defer cancel()
	if err := probe(ctx); err != nil {
		s.log.WarnContext(ctx, "health check failed", "service", what, "err", err)
		return true, false
	}
	return true, true
}

// probeAll runs the probes at once.
func (s *Server) probeAll(ctx context.Context, probes map[string]func(context.Context) error) map[string][2]bool {
	var (
		wg  sync.WaitGroup
		mu  sync.Mutex
		out = map[string][2]bool{}
	)
	for name, p := range probes {
		wg.Go(func() {
			configured, ok := s.check(ctx, name, p)
			mu.Lock()
			out[name] = [2]bool{configured, ok}
			mu.Unlock()
		})
	}
	wg.Wait()
	return out
}

func (s *Server) healthRoutes(r *Router) {
	tags := []string{"Status"}
	r.Add(Operation{
		Method: http.MethodGet, Path: "/healthz", ID: "healthz", Tags: tags,
		Summary: "Liveness: the process answers", Response: HealthResponse{},
	}, func(c echo.Context) error {
		return c.JSON(http.StatusOK, HealthResponse{Status: "ok"})
	})
	r.Add(Operation{
		Method: http.MethodGet, Path: "/readyz", ID: "readyz", Tags: tags,
		Summary:     "Readiness: the database, and Redis when used, answer",
		Description: "503 with a detail when a service does not answer.",
		Response:    HealthResponse{},
	}, func(c echo.Context) error {
		res := s.probeAll(c.Request().Context(), map[string]func(context.Context) error{
			"database": s.checks.Database, "redis": s.checks.Redis,
		})
		out := HealthResponse{Status: "ready", Database: "ok", Redis: "ok"}
		var down []string
		for _, name := range []string{"database", "redis"} {
			switch st := res[name]; {
			case !st[0]:
				if name == "redis" {
					out.Redis = "not used"
				}
			case !st[1]:
				down = append(down, name)
			}
		}
		if len(down) > 0 {
			return errcode.Unavailable.Errorf("Not ready: %s does not answer.", strings.Join(down, " and "))
		}
		return c.JSON(http.StatusOK, out)
	})
	r.Add(Operation{
		Method: http.MethodGet, Path: Prefix + "status/", ID: "status_read", Tags: tags,
		Summary: "Versions, online workers and the state of the backing services", Response: StatusResponse{},
	}, func(c echo.Context) error {
		ctx := c.Request().Context()
		res := s.probeAll(ctx, map[string]func(context.Context) error{
			"database": s.checks.Database, "redis": s.checks.Redis, "storage": s.checks.Storage,
		})
		out := StatusResponse{
			Versions:           s.versions(),
			OnlineWorkers:      []WorkerResponse{},
			DatabaseConnection: ConnectionStatus{Configured: true, Connected: res["database"][1]},
			RedisConnection:    ConnectionStatus{Configured: res["redis"][0], Connected: res["redis"][1]},
			Storage:            StorageStatus{Configured: res["storage"][0], Writable: res["storage"][1]},
		}
		if out.DatabaseConnection.Connected {
			online := true
			ws, err := s.tasks.Workers(ctx, tasks.WorkerFilter{Online: &online})
			if err == nil {
				out.OnlineWorkers, err = s.workerResponses(ctx, ws)
			}
			if err != nil {
				// The status page must answer even when part of it fails.
				s.log.WarnContext(ctx, "status: list online workers", "err", err)
				out.OnlineWorkers = []WorkerResponse{}
			}
		}
		return c.JSON(http.StatusOK, out)
	})
}

// versions lists Berth's version and each plugin's.
func (s *Server) versions() []ComponentVersion {
	out := []ComponentVersion{{Component: "berth", Version: s.version}}
	for _, p := range s.registry.Plugins() {
		v := s.version
		if vp, ok := p.(Versioned); ok && vp.Version() != "" {
			v = vp.Version()
		}
		out = append(out, ComponentVersion{Component: p.Name(), Version: v})
	}
	return out
}
