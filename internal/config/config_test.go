package config

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestValidate(t *testing.T) {
	good := Default()
	good.DataDir = t.TempDir()
	if err := good.Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	if good.PublicURL != "http://localhost:5001" {
		t.Fatalf("public URL default = %q", good.PublicURL)
	}
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"listen", func(c *Config) { c.Listen = "5001" }, "listen address"},
		{"database", func(c *Config) { c.DatabaseURL = "mysql://x" }, "database URL"},
		{"redis", func(c *Config) { c.RedisURL = "localhost:6379" }, "redis URL"},
		{"public url", func(c *Config) { c.PublicURL = "ftp://x" }, "public URL"},
		{"secret", func(c *Config) { c.SecretKey = "short" }, "secret key"},
		{"log level", func(c *Config) { c.LogLevel = "loud" }, "log level"},
		{"timeout", func(c *Config) { c.WorkerTimeout = c.Heartbeat }, "worker timeout"},
		{"expiry", func(c *Config) { c.UploadExpiry = time.Second }, "upload expiry"},
		{"storage", func(c *Config) { c.Storage = "s3://bucket" }, "storage"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			c.DataDir = t.TempDir()
			tc.mod(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one about %q", err, tc.want)
			}
		})
	}
}

func TestEnvReader(t *testing.T) {
	t.Setenv("BERTH_WORKERS", "seven")
	t.Setenv("BERTH_UPLOAD_EXPIRY", "2h")
	t.Setenv("BERTH_ACCESS_LOG", "maybe")
	var r EnvReader
	if n := r.Int("WORKERS", 2); n != 2 {
		t.Fatalf("bad int gave %d, want the default", n)
	}
	if d := r.Duration("UPLOAD_EXPIRY", time.Hour); d != 2*time.Hour {
		t.Fatalf("duration = %v", d)
	}
	r.Bool("ACCESS_LOG", true)
	c := Default()
	c.DataDir = t.TempDir()
	err := c.Validate(r.Problems()...)
	if err == nil || !strings.Contains(err.Error(), "BERTH_WORKERS=seven") || !strings.Contains(err.Error(), "BERTH_ACCESS_LOG=maybe") {
		t.Fatalf("malformed environment not reported: %v", err)
	}
}

func TestSanitizeHidesSecrets(t *testing.T) {
	c := Default()
	c.DataDir = t.TempDir()
	c.SecretKey = "super-secret-key-value-123"
	c.AdminPassword = "admin-password-value"
	c.DatabaseURL = "postgres://berth:db-password-value@db:5432/berth"
	c.RedisURL = "redis://:redis-password-value@redis:6379/0"
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	out := fmt.Sprint(c.Sanitize()...)
	for _, secret := range []string{"super-secret-key-value-123", "admin-password-value", "db-password-value", "redis-password-value"} {
		if strings.Contains(out, secret) {
			t.Fatalf("sanitized config shows %q: %s", secret, out)
		}
	}
	if !strings.Contains(out, "db:5432") {
		t.Fatalf("sanitized config lost the database host: %s", out)
	}
}
