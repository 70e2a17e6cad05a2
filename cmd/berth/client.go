package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

// The client commands talk to a Berth server's REST API with the API token
// that 'berth login' stored. They print tables for people and, with
// -o json, the server's JSON for scripts.

// clientCommands are the commands that talk to a server.
func clientCommands() []*cobra.Command {
	return []*cobra.Command{
		newLoginCmd(), newRegistriesCmd(), newEECmd(), newImagesCmd(), newBuildCmd(),
		newCatalogCmd(), newTaskCmd(), newPushCmd(),
	}
}

// clientConfig is what 'berth login' stores: the server and an API token
// (never the password).
type clientConfig struct {
	Server   string `json:"server"`
	Username string `json:"username"`
	Token    string `json:"token"`
}

// clientOptions are the flags every client command has.
type clientOptions struct {
	config string
	output string
}

func (o *clientOptions) flags(cmd *cobra.Command) {
	cmd.PersistentFlags().StringVar(&o.config, "config", "", "client configuration file (default $XDG_CONFIG_HOME/berth/config.json, i.e. ~/.config/berth/config.json)")
	cmd.PersistentFlags().StringVarP(&o.output, "output", "o", "table", "output format: table or json")
}

func (o *clientOptions) path() (string, error) {
	if o.config != "" {
		return o.config, nil
	}
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("cannot find the configuration directory (set HOME or use --config): %w", err)
	}
	return filepath.Join(dir, "berth", "config.json"), nil
}

func (o *clientOptions) checkOutput() error {
	if o.output != "table" && o.output != "json" {
		return usageError{fmt.Errorf("--output %q: want table or json", o.output)}
	}
	return nil
}

// client returns an API client from the stored configuration.
func (o *clientOptions) client(cmd *cobra.Command) (*apiClient, error) {
	if err := o.checkOutput(); err != nil {
		return nil, err
	}
	p, err := o.path()
	if err != nil {
		return nil, err
	}
	raw, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, usageError{fmt.Errorf("not logged in: run 'berth login URL -u USER' first")}
	}
	if err != nil {
		return nil, err
	}
	var cfg clientConfig
	if err := json.Unmarshal(raw, &cfg); err != nil || cfg.Server == "" || cfg.Token == "" {
		return nil, fmt.Errorf("%s is not a berth client configuration (run 'berth login' again)", p)
	}
	return &apiClient{cfg: cfg, http: &http.Client{Timeout: 5 * time.Minute}, out: cmd.OutOrStdout(), json: o.output == "json"}, nil
}

// saveConfig writes the configuration, readable by its owner only.
func (o *clientOptions) saveConfig(cfg clientConfig) (string, error) {
	p, err := o.path()
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return "", err
	}
	raw, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return "", err
	}
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, append(raw, '\n'), 0o600); err != nil {
		return "", err
	}
	if err := os.Chmod(tmp, 0o600); err != nil {
		return "", err
	}
	return p, os.Rename(tmp, p)
}

// apiClient calls the REST API.
type apiClient struct {
	cfg  clientConfig
	http *http.Client
	out  io.Writer
	json bool
}

// apiError is an error answer of the server.
type apiError struct {
	Status int
	Method string
	Path   string
	Body   []byte
}

func (e *apiError) Error() string {
	msg := strings.TrimSpace(string(e.Body))
	var detail struct {
		Detail string `json:"detail"`
	}
	var fields map[string][]string
	switch {
	case json.Unmarshal(e.Body, &detail) == nil && detail.Detail != "":
		msg = detail.Detail
	case json.Unmarshal(e.Body, &fields) == nil && len(fields) > 0:
		keys := make([]string, 0, len(fields))
		for k := range fields {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, 0, len(keys))
		for _, k := range keys {
			parts = append(parts, k+": "+strings.Join(fields[k], " "))
		}
		msg = strings.Join(parts, "; ")
	}
	return fmt.Sprintf("%s %s: %d %s: %s", e.Method, e.Path, e.Status, http.StatusText(e.Status), msg)
}

// url makes an absolute URL of a path (or returns an absolute href as it is).
func (c *apiClient) url(path string) string {
	if strings.HasPrefix(path, "http://") || strings.HasPrefix(path, "https://") {
		return path
	}
	return strings.TrimRight(c.cfg.Server, "/") + path
}

// raw sends a request and returns the response body of a success.
func (c *apiClient) raw(ctx context.Context, method, path, contentType string, body io.Reader) ([]byte, http.Header, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.url(path), body)
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Authorization", "Token "+c.cfg.Token)
	req.Header.Set("Accept", "application/json")
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, nil, err
	}
	if resp.StatusCode >= 300 {
		if resp.StatusCode == http.StatusUnauthorized {
			return nil, nil, fmt.Errorf("%w (the stored token may have been revoked: run 'berth login' again)", &apiError{resp.StatusCode, method, path, b})
		}
		return nil, nil, &apiError{resp.StatusCode, method, path, b}
	}
	return b, resp.Header, nil
}

// call sends a JSON request and decodes a JSON answer into out (when not
// nil); it returns the raw answer.
func (c *apiClient) call(ctx context.Context, method, path string, in, out any) ([]byte, error) {
	var body io.Reader
	ct := ""
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, err
		}
		body, ct = bytes.NewReader(b), "application/json"
	}
	raw, _, err := c.raw(ctx, method, path, ct, body)
	if err != nil {
		return nil, err
	}
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			return nil, fmt.Errorf("%s %s: unexpected answer: %w", method, path, err)
		}
	}
	return raw, nil
}

// page is a page of a list.
type page[T any] struct {
	Count   int64   `json:"count"`
	Next    *string `json:"next"`
	Results []T     `json:"results"`
}

// all follows a list's pages and returns every item, with the raw items
// for JSON output.
func listAll[T any](ctx context.Context, c *apiClient, path string) ([]T, []json.RawMessage, error) {
	var items []T
	var raws []json.RawMessage
	next := &path
	for next != nil && *next != "" {
		var p page[json.RawMessage]
		if _, err := c.call(ctx, http.MethodGet, *next, nil, &p); err != nil {
			return nil, nil, err
		}
		for _, r := range p.Results {
			var v T
			if err := json.Unmarshal(r, &v); err != nil {
				return nil, nil, err
			}
			items = append(items, v)
			raws = append(raws, r)
		}
		next = p.Next
	}
	return items, raws, nil
}

// printJSON writes v indented.
func (c *apiClient) printJSON(v any) error {
	if raw, ok := v.([]byte); ok {
		var buf bytes.Buffer
		if err := json.Indent(&buf, raw, "", "  "); err != nil {
			_, err = c.out.Write(raw)
			return err
		}
		buf.WriteByte('\n')
		_, err := c.out.Write(buf.Bytes())
		return err
	}
	enc := json.NewEncoder(c.out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// table writes rows under a header, aligned.
func (c *apiClient) table(header []string, rows [][]string) error {
	tw := tabwriter.NewWriter(c.out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

// fields writes "key: value" lines, aligned.
func (c *apiClient) fields(kv [][2]string) error {
	tw := tabwriter.NewWriter(c.out, 2, 4, 2, ' ', 0)
	for _, f := range kv {
		fmt.Fprintf(tw, "%s:\t%s\n", f[0], f[1])
	}
	return tw.Flush()
}

// taskAnswer is a 202 answer.
type taskAnswer struct {
	Task string `json:"task"`
}

// started reports a dispatched task and, unless noWait, waits for it.
func (c *apiClient) started(cmd *cobra.Command, raw []byte, noWait bool) error {
	var a taskAnswer
	if err := json.Unmarshal(raw, &a); err != nil || a.Task == "" {
		return fmt.Errorf("the server did not answer with a task: %s", raw)
	}
	if noWait {
		if c.json {
			return c.printJSON(raw)
		}
		fmt.Fprintln(c.out, a.Task)
		return nil
	}
	return waitTask(cmd, c, a.Task, 0)
}

// escapeName escapes an image name for a URL path, keeping its slashes.
func escapeName(name string) string {
	parts := strings.Split(name, "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return strings.Join(parts, "/")
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func shortDigest(d string) string {
	if i := strings.IndexByte(d, ':'); i >= 0 && len(d) > i+13 {
		return d[:i+13]
	}
	return d
}

func ago(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04")
}
