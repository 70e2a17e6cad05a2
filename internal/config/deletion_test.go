package config

import (
	"strings"
	"testing"
	"time"
)

func TestValidateDeletionSettings(t *testing.T) {
	for _, c := range []struct {
		name string
		set  func(*Config)
		want string // "" valid, else a fragment of the error
	}{
		{"defaults", func(*Config) {}, ""},
		{"cleanup off", func(c *Config) { c.OrphanCleanupInterval = 0; c.RetentionInterval = 0 }, ""},
		{"no protection", func(c *Config) { c.OrphanProtection = 0 }, ""},
		{"cleanup too often", func(c *Config) { c.OrphanCleanupInterval = time.Second }, "orphan cleanup interval"},
		{"negative protection", func(c *Config) { c.OrphanProtection = -time.Minute }, "orphan protection time"},
		{"retention too often", func(c *Config) { c.RetentionInterval = time.Second }, "retention interval"},
		{"negative versions", func(c *Config) { c.PushRetainVersions = -1 }, "push retain versions"},
		{"long test pause", func(c *Config) { c.TestOrphanPause = time.Hour }, "test orphan pause"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := Default()
			cfg.DataDir = t.TempDir()
			c.set(&cfg)
			err := cfg.Validate()
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("valid settings refused: %v", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Fatalf("got %v, want an error about %s", err, c.want)
			}
		})
	}
	d := Default()
	if d.OrphanCleanupInterval != 24*time.Hour || d.OrphanProtection != 24*time.Hour || d.PushRetainVersions != 1 {
		t.Fatalf("defaults %+v", d)
	}
}
