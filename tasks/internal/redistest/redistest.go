// Package redistest gives tests a Redis client and a key space of their
// own. Redis is found at BERTH_TEST_REDIS_URL (default
// redis://127.0.0.1:6379/0); a missing server skips the test, or fails it
// when CI=true (testdb.Unavailable).
package redistest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/berth-dev/berth/internal/testdb"
)

// URL is the Redis server tests use.
func URL() string {
	if u := os.Getenv("BERTH_TEST_REDIS_URL"); u != "" {
		return u
	}
	return "redis://127.0.0.1:6379/0"
}

// Client returns a client of the test Redis, closed when t ends.
func Client(t testing.TB) *redis.Client {
	t.Helper()
	opt, err := redis.ParseURL(URL())
	if err != nil {
		t.Fatalf("BERTH_TEST_REDIS_URL: %v", err)
	}
	rc := redis.NewClient(opt)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := rc.Ping(ctx).Err(); err != nil {
		_ = rc.Close()
		testdb.Unavailable(t, "Redis", err)
	}
	t.Cleanup(func() { _ = rc.Close() })
	return rc
}

// AsynqPrefix returns a unique queue-name prefix for asynqq.WithPrefix.
// When t ends (after the cleanups registered later, such as stopping the
// consumers), every asynq key of the prefix's queues is deleted and the
// queues are removed from asynq's queue set.
func AsynqPrefix(t testing.TB, rc *redis.Client) string {
	t.Helper()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	prefix := "berth-test-" + hex.EncodeToString(b)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var keys []string
		iter := rc.Scan(ctx, 0, "asynq:{"+prefix+":*", 1000).Iterator()
		for iter.Next(ctx) {
			keys = append(keys, iter.Val())
		}
		if err := iter.Err(); err != nil {
			t.Errorf("scan test keys: %v", err)
			return
		}
		if len(keys) > 0 {
			if err := rc.Del(ctx, keys...).Err(); err != nil {
				t.Errorf("delete test keys: %v", err)
			}
		}
		members, err := rc.SMembers(ctx, "asynq:queues").Result()
		if err != nil {
			t.Errorf("read asynq queues: %v", err)
			return
		}
		for _, m := range members {
			if strings.HasPrefix(m, prefix+":") {
				rc.SRem(ctx, "asynq:queues", m)
			}
		}
	})
	return prefix
}
