// Package config is Berth's typed configuration: flags, each with a BERTH_*
// environment variable, validated once at start and read-only afterwards.
package config

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
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

	// Deletions that free storage: how often orphans are cleaned up (0:
	// never by itself) and how long an orphan is kept first, how often
	// stored retention policies are applied (0: never), and how many
	// versions the repositories pushes create keep (0: all).
	OrphanCleanupInterval time.Duration // BERTH_ORPHAN_CLEANUP_INTERVAL
	OrphanProtection      time.Duration // BERTH_ORPHAN_PROTECTION_TIME
	RetentionInterval     time.Duration // BERTH_RETENTION_INTERVAL
	PushRetainVersions    int           // BERTH_PUSH_RETAIN_VERSIONS
	// TestOrphanPause slows orphan cleanup down after each file it removes,
	// so that end-to-end tests can interrupt one (hidden).
	TestOrphanPause time.Duration // BERTH_TEST_ORPHAN_PAUSE

	// ControllerURLs are the Ansible controllers that "Use in Controller"
	// links of execution environments point into.
	ControllerURLs []string // BERTH_CONTROLLER_URLS: comma-separated http(s) URLs

	// Image builds: Berth's registry as builds reach it (host:port; empty:
	// the listen address, see BuildPushRegistry), and the registries they
	// may reach over plain HTTP or unverified TLS.
	BuildRegistry           string   // BERTH_BUILD_REGISTRY
	BuildInsecureRegistries []string // BERTH_BUILD_INSECURE_REGISTRIES: comma-separated host:port
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

		OrphanCleanupInterval: 24 * time.Hour,
		OrphanProtection:      24 * time.Hour,
		RetentionInterval:     24 * time.Hour,
		PushRetainVersions:    1,
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
	if c.BuildRegistry != "" && !isHostPort(c.BuildRegistry) {
		problems = append(problems, fmt.Sprintf("build registry %q: want host[:port]", c.BuildRegistry))
	}
	for _, h := range c.BuildInsecureRegistries {
		if !isHostPort(h) {
			problems = append(problems, fmt.Sprintf("build insecure registry %q: want host[:port]", h))
		}
	}
	for _, u := range c.ControllerURLs {
		if cu, err := url.Parse(u); err != nil || cu.Host == "" || (cu.Scheme != "http" && cu.Scheme != "https") {
			problems = append(problems, fmt.Sprintf("controller URL %q: want http(s)://host[/path]", u))
		}
	}
	if c.OrphanCleanupInterval != 0 && c.OrphanCleanupInterval < time.Minute {
		problems = append(problems, "orphan cleanup interval must be 0 (off) or at least 1m")
	}
	if c.OrphanProtection < 0 {
		problems = append(problems, "orphan protection time must not be negative")
	}
	if c.RetentionInterval != 0 && c.RetentionInterval < time.Minute {
		problems = append(problems, "retention interval must be 0 (off) or at least 1m")
	}
	if c.PushRetainVersions < 0 {
		problems = append(problems, "push retain versions must be 0 (keep all) or more")
	}
	if c.TestOrphanPause < 0 || c.TestOrphanPause > time.Minute {
		problems = append(problems, "test orphan pause must be between 0 and 1m")
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

// isHostPort reports whether s is a registry host with an optional port:
// no scheme, path or blanks.
func isHostPort(s string) bool {
	if s == "" || strings.ContainsAny(s, "/@ \t") {
		return false
	}
	u, err := url.Parse("//" + s)
	return err == nil && u.Host == s
}

// BuildPushRegistry is the host:port that image builds push to (and pull
// Berth's own images from), and whether it is reached over plain HTTP.
// Without BuildRegistry it is the listen address, with an unspecified host
// made loopback; Berth serves plain HTTP there, so it is insecure. A
// configured registry is insecure when its host is loopback or when it is
// listed in BuildInsecureRegistries.
func (c *Config) BuildPushRegistry() (host string, insecure bool) {
	if c.BuildRegistry == "" {
		h, port, err := net.SplitHostPort(c.Listen)
		if err != nil {
			return c.Listen, true
		}
		switch h {
		case "", "0.0.0.0":
			h = "127.0.0.1"
		case "::":
			h = "::1"
		}
		return net.JoinHostPort(h, port), true
	}
	h := c.BuildRegistry
	if host, _, err := net.SplitHostPort(h); err == nil {
		h = host
	}
	ip := net.ParseIP(strings.Trim(h, "[]"))
	loopback := h == "localhost" || (ip != nil && ip.IsLoopback())
	return c.BuildRegistry, loopback || slices.Contains(c.BuildInsecureRegistries, c.BuildRegistry)
}

// SplitList splits a comma-separated list, dropping blanks and empty items.
func SplitList(s string) []string {
	var out []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
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
		"build_workers", c.BuildWorkers, "build_registry", buildRegistry(c),
	}
}

func buildRegistry(c *Config) string {
	h, _ := c.BuildPushRegistry()
	return h
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
