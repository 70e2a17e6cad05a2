package testdb

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisAddr is the Redis server of the tests (BERTH_TEST_REDIS_ADDR, default 127.0.0.1:6379).
func RedisAddr() string {
	if a := os.Getenv("BERTH_TEST_REDIS_ADDR"); a != "" {
		return a
	}
	return "127.0.0.1:6379"
}

// Redis reserves one of Redis's numbered databases (1–15) for this test, so
// that tests running at once in several packages never see each other's
// keys, and flushes it when the test ends. It returns the database number
// and a redis:// URL for it. The reservation is a key with a TTL in database
// 0, so a crashed test run frees it by itself.
func Redis(t testing.TB) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ctl := redis.NewClient(&redis.Options{Addr: RedisAddr(), DB: 0})
	if err := ctl.Ping(ctx).Err(); err != nil {
		ctl.Close()
		Unavailable(t, "Redis", err)
	}
	token := randomName()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		for n := 1; n <= 15; n++ {
			key := "berth-test-redis-db:" + strconv.Itoa(n)
			ok, err := ctl.SetNX(ctx, key, token, 10*time.Minute).Result()
			if err != nil {
				ctl.Close()
				t.Fatalf("reserve redis db: %v", err)
			}
			if !ok {
				continue
			}
			c := redis.NewClient(&redis.Options{Addr: RedisAddr(), DB: n})
			if err := c.FlushDB(ctx).Err(); err != nil {
				t.Fatalf("flush redis db %d: %v", n, err)
			}
			c.Close()
			t.Cleanup(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				c := redis.NewClient(&redis.Options{Addr: RedisAddr(), DB: n})
				_ = c.FlushDB(ctx).Err()
				c.Close()
				if v, _ := ctl.Get(ctx, key).Result(); v == token {
					ctl.Del(ctx, key)
				}
				ctl.Close()
			})
			return n, fmt.Sprintf("redis://%s/%d", RedisAddr(), n)
		}
		if time.Now().After(deadline) {
			ctl.Close()
			t.Fatalf("no free Redis test database (1-15) after 2 minutes")
		}
		time.Sleep(200 * time.Millisecond)
	}
}
