package api_test

import (
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/api/apitest"
	"github.com/berth-dev/berth/core"
	"github.com/berth-dev/berth/internal/testdb"
)

func statusEnv(t *testing.T, checks api.Checks, fn func(t *testing.T, env *apitest.Env)) {
	apitest.Each(t, apitest.Options{Plugins: []core.Plugin{testPlugin{}, otherPlugin{}}, Checks: checks, Version: "9.9.9"}, fn)
}

func TestHealth(t *testing.T) {
	statusEnv(t, api.Checks{}, func(t *testing.T, env *apitest.Env) {
		var h api.HealthResponse
		env.Call(http.MethodGet, "/healthz", nil, http.StatusOK, &h)
		if h.Status != "ok" {
			t.Errorf("healthz %+v", h)
		}
		env.Call(http.MethodGet, "/readyz", nil, http.StatusOK, &h)
		if h != (api.HealthResponse{Status: "ready", Database: "ok", Redis: "not used"}) {
			t.Errorf("readyz %+v", h)
		}
	})
	down := errors.New("connection refused")
	failing := func(context.Context) error { return down }
	statusEnv(t, api.Checks{Redis: failing}, func(t *testing.T, env *apitest.Env) {
		wantDetail(t, env.Do(http.MethodGet, "/readyz", nil), http.StatusServiceUnavailable, "redis")
		env.Call(http.MethodGet, "/healthz", nil, http.StatusOK, nil)
	})
	statusEnv(t, api.Checks{Database: failing}, func(t *testing.T, env *apitest.Env) {
		wantDetail(t, env.Do(http.MethodGet, "/readyz", nil), http.StatusServiceUnavailable, "database")
		var st api.StatusResponse
		env.Call(http.MethodGet, api.Prefix+"status/", nil, http.StatusOK, &st)
		if st.DatabaseConnection.Connected || st.OnlineWorkers == nil {
			t.Errorf("status with the database down: %+v", st)
		}
	})
	_, redisURL := testdb.Redis(t)
	opt, err := redis.ParseURL(redisURL)
	if err != nil {
		t.Fatal(err)
	}
	rc := redis.NewClient(opt)
	t.Cleanup(func() { rc.Close() })
	ping := func(ctx context.Context) error { return rc.Ping(ctx).Err() }
	statusEnv(t, api.Checks{Redis: ping}, func(t *testing.T, env *apitest.Env) {
		var h api.HealthResponse
		env.Call(http.MethodGet, "/readyz", nil, http.StatusOK, &h)
		if h.Redis != "ok" {
			t.Errorf("readyz with Redis: %+v", h)
		}
	})
}

func TestStatus(t *testing.T) {
	dir := t.TempDir()
	checks := api.Checks{Storage: api.StorageProbe(dir)}
	statusEnv(t, checks, func(t *testing.T, env *apitest.Env) {
		var st api.StatusResponse
		env.Call(http.MethodGet, api.Prefix+"status/", nil, http.StatusOK, &st)
		want := []api.ComponentVersion{{Component: "berth", Version: "9.9.9"}, {Component: "test", Version: "1.2.3"}, {Component: "other", Version: "9.9.9"}}
		if len(st.Versions) != 3 || st.Versions[0] != want[0] || st.Versions[1] != want[1] || st.Versions[2] != want[2] {
			t.Errorf("versions %+v", st.Versions)
		}
		if !st.DatabaseConnection.Connected || !st.DatabaseConnection.Configured || st.RedisConnection.Configured || st.RedisConnection.Connected ||
			!st.Storage.Configured || !st.Storage.Writable || st.OnlineWorkers == nil || len(st.OnlineWorkers) != 0 {
			t.Errorf("status %+v", st)
		}
		if left, _ := filepath.Glob(filepath.Join(dir, "*")); len(left) != 0 {
			t.Errorf("the storage probe left %v", left)
		}
		env.StartWorkers()
		deadline := time.Now().Add(apitest.WaitTimeout)
		for len(st.OnlineWorkers) == 0 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
			env.Call(http.MethodGet, api.Prefix+"status", nil, http.StatusOK, &st) // without the slash
		}
		if len(st.OnlineWorkers) != 1 || !st.OnlineWorkers[0].Online {
			t.Errorf("online workers %+v", st.OnlineWorkers)
		}
		wantDetail(t, env.Do(http.MethodPost, api.Prefix+"status/", nil), http.StatusMethodNotAllowed, "not allowed")
	})
	statusEnv(t, api.Checks{Storage: api.StorageProbe(filepath.Join(dir, "missing"))}, func(t *testing.T, env *apitest.Env) {
		var st api.StatusResponse
		env.Call(http.MethodGet, api.Prefix+"status/", nil, http.StatusOK, &st)
		if !st.Storage.Configured || st.Storage.Writable {
			t.Errorf("storage %+v", st.Storage)
		}
	})
}
