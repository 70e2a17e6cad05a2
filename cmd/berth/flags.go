package main

import (
	"github.com/spf13/pflag"

	"github.com/berth-dev/berth/internal/config"
)

// settings holds the configuration a command builds from its flags, whose
// defaults come from the BERTH_* environment.
type settings struct {
	cfg config.Config
	env config.EnvReader
}

// validate checks the configuration once flags are parsed.
func (s *settings) validate() (*config.Config, error) {
	if err := s.cfg.Validate(s.env.Problems()...); err != nil {
		return nil, usageError{err}
	}
	return &s.cfg, nil
}

// storeFlags are the flags every command that touches records needs.
func (s *settings) storeFlags(fs *pflag.FlagSet) {
	d := config.Default()
	e := &s.env
	fs.StringVar(&s.cfg.DataDir, "data-dir", e.String("DATA_DIR", d.DataDir), "directory for the embedded database, blob files and the secret key (BERTH_DATA_DIR)")
	fs.StringVar(&s.cfg.DatabaseURL, "database-url", e.String("DATABASE_URL", ""), "postgres://user@host:5432/db, or empty for SQLite in the data directory (BERTH_DATABASE_URL)")
	fs.StringVar(&s.cfg.LogLevel, "log-level", e.String("LOG_LEVEL", d.LogLevel), "debug, info, warn or error (BERTH_LOG_LEVEL)")
	fs.StringVar(&s.cfg.LogFormat, "log-format", e.String("LOG_FORMAT", d.LogFormat), "text or json (BERTH_LOG_FORMAT)")
	s.cfg.Listen = d.Listen
	s.cfg.UploadExpiry = d.UploadExpiry
	s.cfg.Heartbeat = d.Heartbeat
	s.cfg.WorkerTimeout = d.WorkerTimeout
	s.cfg.Workers = d.Workers
	s.cfg.BuildWorkers = d.BuildWorkers
	s.cfg.OrphanCleanupInterval = d.OrphanCleanupInterval
	s.cfg.OrphanProtection = d.OrphanProtection
	s.cfg.RetentionInterval = d.RetentionInterval
	s.cfg.PushRetainVersions = d.PushRetainVersions
}

// runtimeFlags are the flags of the long-running commands (serve, worker).
func (s *settings) runtimeFlags(fs *pflag.FlagSet) {
	s.storeFlags(fs)
	d := config.Default()
	e := &s.env
	fs.StringVar(&s.cfg.RedisURL, "redis-url", e.String("REDIS_URL", ""), "redis://host:6379/0 to run tasks on 'berth worker' processes; empty runs them inside 'berth serve' (BERTH_REDIS_URL)")
	fs.StringVar(&s.cfg.Storage, "storage", e.String("STORAGE", ""), "blob storage: empty for files in the data directory, or an absolute path (BERTH_STORAGE)")
	fs.StringVar(&s.cfg.SecretKey, "secret-key", e.String("SECRET_KEY", ""), "key that encrypts stored credentials and signs tokens; generated into the data directory if unset (BERTH_SECRET_KEY)")
	fs.DurationVar(&s.cfg.UploadExpiry, "upload-expiry", e.Duration("UPLOAD_EXPIRY", d.UploadExpiry), "how long an unfinished blob upload is kept (BERTH_UPLOAD_EXPIRY)")
	fs.DurationVar(&s.cfg.Heartbeat, "heartbeat-interval", e.Duration("HEARTBEAT_INTERVAL", d.Heartbeat), "how often workers report that they are alive (BERTH_HEARTBEAT_INTERVAL)")
	fs.DurationVar(&s.cfg.WorkerTimeout, "worker-timeout", e.Duration("WORKER_TIMEOUT", d.WorkerTimeout), "a worker silent this long is lost and its running tasks fail (BERTH_WORKER_TIMEOUT)")
	fs.IntVar(&s.cfg.BuildWorkers, "build-workers", e.Int("BUILD_WORKERS", d.BuildWorkers), "concurrent image builds per worker process (BERTH_BUILD_WORKERS)")
	fs.StringVar(&s.cfg.BuildRegistry, "build-registry", e.String("BUILD_REGISTRY", ""), "host:port of this Berth's registry as image builds reach it; default the listen address (set it on 'berth worker' processes) (BERTH_BUILD_REGISTRY)")
	fs.StringSliceVar(&s.cfg.BuildInsecureRegistries, "build-insecure-registries", config.SplitList(e.String("BUILD_INSECURE_REGISTRIES", "")), "registries (host:port, comma-separated) image builds may reach over plain HTTP or unverified TLS (BERTH_BUILD_INSECURE_REGISTRIES)")
	fs.DurationVar(&s.cfg.OrphanCleanupInterval, "orphan-cleanup-interval", e.Duration("ORPHAN_CLEANUP_INTERVAL", d.OrphanCleanupInterval), "how often orphan content and blob files are cleaned up; 0 only on request (BERTH_ORPHAN_CLEANUP_INTERVAL)")
	fs.DurationVar(&s.cfg.OrphanProtection, "orphan-protection-time", e.Duration("ORPHAN_PROTECTION_TIME", d.OrphanProtection), "how long orphan content is kept before cleanup removes it, unless a request says otherwise (BERTH_ORPHAN_PROTECTION_TIME)")
	fs.DurationVar(&s.cfg.RetentionInterval, "retention-interval", e.Duration("RETENTION_INTERVAL", d.RetentionInterval), "how often the stored retention policies of repositories are applied; 0 only on request (BERTH_RETENTION_INTERVAL)")
	fs.IntVar(&s.cfg.PushRetainVersions, "push-retain-versions", e.Int("PUSH_RETAIN_VERSIONS", d.PushRetainVersions), "repository versions kept by the repositories pushes create (so deleted images free storage); 0 keeps all (BERTH_PUSH_RETAIN_VERSIONS)")
	fs.DurationVar(&s.cfg.TestOrphanPause, "test-orphan-pause", e.Duration("TEST_ORPHAN_PAUSE", 0), "pause after each file orphan cleanup removes (tests only) (BERTH_TEST_ORPHAN_PAUSE)")
	_ = fs.MarkHidden("test-orphan-pause")
	fs.BoolVar(&s.cfg.TestPlugin, "test-plugin", e.Bool("TEST_PLUGIN", false), "register the test-only task handlers used by the end-to-end tests (BERTH_TEST_PLUGIN)")
	_ = fs.MarkHidden("test-plugin")
}
