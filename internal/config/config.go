// Package config is Berth's typed configuration: flags, each with a BERTH_*
// environment variable, validated once at start and read-only afterwards.
package config

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Config is everything a berth process is configured with.
type Config struct {
	Listen        string        // BERTH_LISTEN
	DataDir       string        // BERTH_DATA_DIR
	DatabaseURL   string        // BERTH_DATABASE_URL; empty = SQLite in the data dir
	RedisURL      string        // BERTH_REDIS_URL; empty = in-process task queue
	Storage       string        // BERTH_STORAGE; empty = files in the data dir
	PublicURL     string        // BERTH_PUBLIC_URL
	AdminPassword string        // BERTH_ADMIN_PASSWORD
	SecretKey     string        // BERTH_SECRET_KEY
	LogLevel      string        // BERTH_LOG_LEVEL: debug, info, warn, error
	LogFormat     string        // BERTH_LOG_FORMAT: text or json
	Workers       int           // BERTH_WORKERS: in-process workers in embedded mode
	BuildWorkers  int           // BERTH_BUILD_WORKERS: concurrency of the builds queue
	WorkerName    string        // BERTH_WORKER_NAME
	UploadExpiry  time.Duration // BERTH_UPLOAD_EXPIRY
	Heartbeat     time.Duration // BERTH_HEARTBEAT_INTERVAL
	WorkerTimeout time.Duration // BERTH_WORKER_TIMEOUT: a worker silent this long is lost
	AccessLog     bool          // BERTH_ACCESS_LOG
	TestPlugin    bool          // BERTH_TEST_PLUGIN: registers test-only task handlers (end-to-end tests)
}

// Default returns the embedded defaults.
func Default() Config {
	return Config{
		Listen:        "localhost:5001",
		DataDir:       defaultDataDir(),
		LogLevel:      "info",
		LogFormat:     "text",
		Workers:       2,
		BuildWorkers:  1,
		UploadExpiry:  24 * time.Hour,
		Heartbeat:     5 * time.Second,
		WorkerTimeout: 30 * time.Second,
		AccessLog:     true,
	}
}

func defaultDataDir() string {
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "berth")
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".local", "share", "berth")
	}
	return "berth-data"
}

// Env returns the value of BERTH_<name> and whether it is set.
func Env(name string) (string, bool) { return os.LookupEnv("BERTH_" + name) }

// EnvReader reads BERTH_* variables as typed flag defaults and remembers
// malformed values, for Validate to report all at once.
type EnvReader struct{ problems []string }

// Problems lists the malformed values seen.
func (r *EnvReader) Problems() []string { return r.problems }

// String returns BERTH_<name> or def.
func (r *EnvReader) String(name, def string) string {
	if v, ok := Env(name); ok {
		return v
	}
	return def
}

// Int returns BERTH_<name> as an int or def; a malformed value is reported by Validate.
func (r *EnvReader) Int(name string, def int) int {
	if v, ok := Env(name); ok {
		if n, err := strconv.Atoi(v); err == nil {
			return n
		}
		r.problems = append(r.problems, "BERTH_"+name+"="+v+" is not a whole number")
	}
	return def
}

// Duration returns BERTH_<name> as a duration (e.g. 30s, 24h) or def.
func (r *EnvReader) Duration(name string, def time.Duration) time.Duration {
	if v, ok := Env(name); ok {
		if d, err := time.ParseDuration(v); err == nil {
			return d
		}
		r.problems = append(r.problems, "BERTH_"+name+"="+v+" is not a duration such as 30s or 24h")
	}
	return def
}

// Bool returns BERTH_<name> as a bool or def.
func (r *EnvReader) Bool(name string, def bool) bool {
	if v, ok := Env(name); ok {
		if b, err := strconv.ParseBool(v); err == nil {
			return b
		}
		r.problems = append(r.problems, "BERTH_"+name+"="+v+" is not true or false")
	}
	return def
}

// Validate checks the configuration and fills derived defaults.
func (c *Config) Validate(envProblems ...string) error {
	problems := append([]string(nil), envProblems...)
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		problems = append(problems, fmt.Sprintf("listen address %q: want host:port", c.Listen))
	}
	if c.DataDir == "" {
		problems = append(problems, "data directory is empty")
	} else if abs, err := filepath.Abs(c.DataDir); err == nil {
		c.DataDir = abs
	}
	if c.DatabaseURL != "" && !strings.HasPrefix(c.DatabaseURL, "postgres://") && !strings.HasPrefix(c.DatabaseURL, "postgresql://") && !strings.HasPrefix(c.DatabaseURL, "sqlite://") {
		problems = append(problems, "database URL must be postgres://…, sqlite://PATH, or empty for SQLite in the data directory")
	}
	if c.RedisURL != "" && !strings.HasPrefix(c.RedisURL, "redis://") && !strings.HasPrefix(c.RedisURL, "rediss://") {
		problems = append(problems, "redis URL must be redis://host:port[/db]")
	}
	if c.Storage != "" && !strings.HasPrefix(c.Storage, "file://") && !strings.HasPrefix(c.Storage, "/") {
		problems = append(problems, "storage must be empty (files in the data directory), an absolute path or file:///path")
	}
	if c.PublicURL == "" {
		c.PublicURL = "http://" + c.Listen
	} else if u, err := url.Parse(c.PublicURL); err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		problems = append(problems, fmt.Sprintf("public URL %q: want http(s)://host[:port]", c.PublicURL))
	}
	c.PublicURL = strings.TrimRight(c.PublicURL, "/")
	if c.SecretKey != "" && len(c.SecretKey) < 16 {
		problems = append(problems, "secret key must be at least 16 characters")
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		problems = append(problems, "log level must be debug, info, warn or error")
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		problems = append(problems, "log format must be text or json")
	}
	if c.Workers < 0 || c.Workers > 64 {
		problems = append(problems, "workers must be between 0 and 64")
	}
	if c.BuildWorkers < 0 || c.BuildWorkers > 16 {
		problems = append(problems, "build workers must be between 0 and 16")
	}
	if c.UploadExpiry < time.Minute {
		problems = append(problems, "upload expiry must be at least 1m")
	}
	if c.Heartbeat <= 0 || c.WorkerTimeout < 2*c.Heartbeat {
		problems = append(problems, "worker timeout must be at least twice the heartbeat interval")
	}
	if len(problems) > 0 {
		return fmt.Errorf("configuration: %s", strings.Join(problems, "; "))
	}
	return nil
}

// StorageDir is the directory of the filesystem blob storage.
func (c *Config) StorageDir() string {
	switch {
	case c.Storage == "":
		return filepath.Join(c.DataDir, "storage")
	case strings.HasPrefix(c.Storage, "file://"):
		return strings.TrimPrefix(c.Storage, "file://")
	}
	return c.Storage
}

// Embedded reports whether tasks run inside the serve process.
func (c *Config) Embedded() bool { return c.RedisURL == "" }

// Sanitize returns the configuration as key/values safe to log: secrets
// removed, credentials in URLs masked.
func (c *Config) Sanitize() []any {
	return []any{
		"listen", c.Listen, "data_dir", c.DataDir, "database", maskURL(c.DatabaseURL, "sqlite (data dir)"),
		"redis", maskURL(c.RedisURL, "none (in-process tasks)"), "storage", c.StorageDir(), "public_url", c.PublicURL,
		"secret_key", setOrNot(c.SecretKey, "generated in the data dir"), "admin_password", setOrNot(c.AdminPassword, "unset"), "workers", c.Workers,
	}
}

func setOrNot(s, unset string) string {
	if s == "" {
		return unset
	}
	return "set"
}

func maskURL(s, empty string) string {
	if s == "" {
		return empty
	}
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable)"
	}
	if u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		}
	}
	return u.String()
}
