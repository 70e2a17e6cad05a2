package upstream

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/berth-dev/berth/core"
)

func TestConfigValidate(t *testing.T) {
	cert, key, _ := clientCert(t)
	ok := Config{URL: "https://registry.example.com"}
	for _, tc := range []struct {
		name  string
		edit  func(*Config)
		field string // "" = valid
	}{
		{"minimal", func(*Config) {}, ""},
		{"http loopback", func(c *Config) { c.URL = "http://127.0.0.1:5000" }, ""},
		{"v2 path", func(c *Config) { c.URL = "https://registry.example.com/v2/" }, ""},
		{"everything", func(c *Config) {
			c.Username, c.Password = "u", "p"
			c.CACert, c.ClientCert, c.ClientKey = cert, cert, key
			c.ProxyURL, c.ProxyUsername, c.ProxyPassword = "http://proxy:3128", "pu", "pp"
			c.RateLimit, c.DownloadConcurrency = 2.5, 8
		}, ""},
		{"no url", func(c *Config) { c.URL = "" }, "url"},
		{"ftp", func(c *Config) { c.URL = "ftp://x" }, "url"},
		{"no host", func(c *Config) { c.URL = "https://" }, "url"},
		{"credentials in url", func(c *Config) { c.URL = "https://u:p@registry.example.com" }, "url"},
		{"path", func(c *Config) { c.URL = "https://registry.example.com/prefix" }, "url"},
		{"password without user", func(c *Config) { c.Password = "p" }, "username"},
		{"bad ca", func(c *Config) { c.CACert = "not pem" }, "ca_cert"},
		{"cert without key", func(c *Config) { c.ClientCert = cert }, "client_cert"},
		{"mismatched key", func(c *Config) { _, other, _ := clientCert(t); c.ClientCert, c.ClientKey = cert, other }, "client_cert"},
		{"bad proxy", func(c *Config) { c.ProxyURL = "socks://x" }, "proxy_url"},
		{"proxy creds without proxy", func(c *Config) { c.ProxyUsername = "pu" }, "proxy_username"},
		{"negative rate", func(c *Config) { c.RateLimit = -1 }, "rate_limit"},
		{"too many downloads", func(c *Config) { c.DownloadConcurrency = 65 }, "download_concurrency"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := ok
			tc.edit(&cfg)
			err := cfg.Validate()
			if tc.field == "" {
				if err != nil {
					t.Fatal(err)
				}
				if _, err := New(cfg, WithLogger(discardLogger())); err != nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tc.field+":") {
				t.Fatalf("err = %v, want ErrInvalidConfig naming %s", err, tc.field)
			}
			if _, nerr := New(cfg); !errors.Is(nerr, ErrInvalidConfig) {
				t.Errorf("New: %v", nerr)
			}
		})
	}
}

func TestConfigFromRemote(t *testing.T) {
	r := &core.Remote{URL: "https://quay.io", Username: "u", TLSValidation: true, CACert: "ca", ClientCert: "cc",
		ProxyURL: "http://p", ProxyUsername: "pu", RateLimit: 3, DownloadConcurrency: 7}
	got := ConfigFromRemote(r, core.RemoteCredentials{Password: "pw", ClientKey: "ck", ProxyPassword: "pp"})
	want := Config{URL: "https://quay.io", Username: "u", Password: "pw", CACert: "ca", ClientCert: "cc", ClientKey: "ck",
		ProxyURL: "http://p", ProxyUsername: "pu", ProxyPassword: "pp", RateLimit: 3, DownloadConcurrency: 7}
	if got != want {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
	r.TLSValidation = false
	if !ConfigFromRemote(r, core.RemoteCredentials{}).InsecureSkipTLSVerify {
		t.Error("tls_validation false should skip verification")
	}
}

func TestConfigNeverShowsSecrets(t *testing.T) {
	_, key, _ := clientCert(t)
	cfg := Config{URL: "https://r.example.com", Username: "u", Password: "hunter2-password",
		ClientKey: key, ProxyURL: "http://pu:proxy-url-secret@proxy:3128", ProxyPassword: "proxy-secret"}
	var buf syncBuffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("remote", "cfg", cfg)
	for _, out := range []string{buf.String(), fmt.Sprint(cfg), fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg), cfg.String()} {
		for _, secret := range []string{"hunter2-password", "proxy-url-secret", "proxy-secret", "PRIVATE KEY"} {
			if strings.Contains(out, secret) {
				t.Errorf("%q shows %q", out, secret)
			}
		}
	}
	if !strings.Contains(buf.String(), `"password_set":true`) {
		t.Errorf("log %s", buf.String())
	}
}
