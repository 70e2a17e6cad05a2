package test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// prodSite drives the product API (/api/v1/) of a running berth serve and
// checks every answer against the OpenAPI document the server serves: the
// status must be documented for the operation, and the body must match the
// schema documented for that status (required properties, types, nested
// objects and arrays).
type prodSite struct {
	t   *testing.T
	srv *Server
	doc *openAPIDoc
}

func newProdSite(t *testing.T, srv *Server) *prodSite {
	t.Helper()
	s := &prodSite{t: t, srv: srv}
	var raw map[string]any
	if st, _ := srv.API(t).Do(http.MethodGet, "/pulp/api/v3/docs/api.json", nil, &raw); st != http.StatusOK {
		t.Fatalf("OpenAPI document: status %d", st)
	}
	s.doc = newOpenAPIDoc(raw)
	return s
}

// prodUser is who calls: a user and password, or "" for anonymous.
type prodUser struct{ name, pass string }

var prodAdmin = prodUser{"admin", "admin-e2e-password"}

// call sends a request as u, checks the status (want) and the answer
// against the document, and decodes it into out. body is JSON, or sent as
// it is when a string (as text/markdown).
func (s *prodSite) call(u prodUser, method, path string, body any, want int, out any) []byte {
	s.t.Helper()
	status, raw := s.do(u, method, path, body)
	if status != want {
		s.t.Fatalf("%s %s as %q: status %d, want %d: %s", method, path, u.name, status, want, raw)
	}
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			s.t.Fatalf("%s %s: decode %s: %v", method, path, raw, err)
		}
	}
	return raw
}

// do sends a request and checks the answer against the document, whatever
// its status.
func (s *prodSite) do(u prodUser, method, path string, body any) (int, []byte) {
	s.t.Helper()
	var rd io.Reader
	ct := "application/json"
	switch b := body.(type) {
	case nil:
	case string:
		rd, ct = strings.NewReader(b), "text/markdown"
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			s.t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, s.srv.URL+path, rd)
	if err != nil {
		s.t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", ct)
	}
	if u.name != "" {
		req.SetBasicAuth(u.name, u.pass)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if err := s.doc.check(method, path, resp.StatusCode, raw); err != nil {
		s.t.Errorf("%s %s: answer does not match the OpenAPI document: %v\n%s", method, path, err, truncateBody(raw))
	}
	return resp.StatusCode, raw
}

func truncateBody(b []byte) string {
	if len(b) > 600 {
		return string(b[:600]) + "…"
	}
	return string(b)
}

// wait waits for the task of a 202 answer and returns its final state.
func (s *prodSite) wait(accepted []byte) map[string]any {
	s.t.Helper()
	var a struct {
		Task string `json:"task"`
	}
	if err := json.Unmarshal(accepted, &a); err != nil || a.Task == "" {
		s.t.Fatalf("not a task answer: %s", accepted)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		var task map[string]any
		s.call(prodAdmin, http.MethodGet, a.Task, nil, http.StatusOK, &task)
		switch task["state"] {
		case "completed", "failed", "canceled":
			return task
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("task %s still %v", a.Task, task["state"])
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// done waits for a task that must complete.
func (s *prodSite) done(accepted []byte) {
	s.t.Helper()
	if task := s.wait(accepted); task["state"] != "completed" {
		s.t.Fatalf("task %v ended %v: %v", task["name"], task["state"], task["error"])
	}
}

// eventually retries check until it passes (the /v2/ read caches of a
// replica may lag a task's change by a moment).
func eventually(t *testing.T, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// openAPIDoc checks answers against an OpenAPI 3 document.
type openAPIDoc struct {
	raw     map[string]any
	schemas map[string]any
	mu      sync.Mutex
	routes  []docRoute
}

type docRoute struct {
	template string
	re       *regexp.Regexp
	literal  int
	ops      map[string]any
}

func newOpenAPIDoc(raw map[string]any) *openAPIDoc {
	d := &openAPIDoc{raw: raw}
	if c, ok := raw["components"].(map[string]any); ok {
		d.schemas, _ = c["schemas"].(map[string]any)
	}
	paths, _ := raw["paths"].(map[string]any)
	param := regexp.MustCompile(`\{[^}]+\}`)
	for tpl, ops := range paths {
		parts := param.Split(tpl, -1)
		var b strings.Builder
		lit := 0
		for i, p := range parts {
			if i > 0 {
				b.WriteString(`(.+)`)
			}
			b.WriteString(regexp.QuoteMeta(p))
			lit += len(p)
		}
		d.routes = append(d.routes, docRoute{template: tpl, re: regexp.MustCompile("^" + b.String() + "$"), literal: lit, ops: ops.(map[string]any)})
	}
	sort.Slice(d.routes, func(i, j int) bool { return d.routes[i].literal > d.routes[j].literal })
	return d
}

// has reports whether the document describes a path (template form).
func (d *openAPIDoc) has(method, template string) bool {
	for _, r := range d.routes {
		if r.template == template {
			_, ok := r.ops[strings.ToLower(method)]
			return ok
		}
	}
	return false
}

// check validates an answer to method path.
func (d *openAPIDoc) check(method, path string, status int, body []byte) error {
	path, _, _ = strings.Cut(path, "?")
	for _, r := range d.routes {
		if !r.re.MatchString(path) {
			continue
		}
		op, ok := r.ops[strings.ToLower(method)].(map[string]any)
		if !ok {
			continue
		}
		responses, _ := op["responses"].(map[string]any)
		resp, ok := responses[fmt.Sprint(status)].(map[string]any)
		if !ok {
			if status < 300 {
				return fmt.Errorf("status %d is not documented for %s %s", status, method, r.template)
			}
			return nil // 401/403 and the like: not described per operation
		}
		content, _ := resp["content"].(map[string]any)
		js, _ := content["application/json"].(map[string]any)
		if js == nil {
			if len(bytes.TrimSpace(body)) > 0 && status < 300 {
				return fmt.Errorf("a body came, none is documented")
			}
			return nil
		}
		var v any
		if err := json.Unmarshal(body, &v); err != nil {
			return fmt.Errorf("not JSON: %v", err)
		}
		return d.validate(js["schema"], v, "$", isProductPath(path))
	}
	return fmt.Errorf("no documented operation for %s %s", method, path)
}

// isProductPath tells the product API's paths: their answers show every
// documented property (none is left out when empty).
func isProductPath(p string) bool {
	for _, root := range []string{"/api/v1/execution-environments/", "/api/v1/registry/", "/api/v1/catalog/"} {
		if strings.HasPrefix(p, root) {
			return true
		}
	}
	return false
}

// validate checks v against schema; strict also wants every documented
// property of an object present.
func (d *openAPIDoc) validate(schema any, v any, at string, strict bool) error {
	s, ok := schema.(map[string]any)
	if !ok {
		return nil
	}
	if ref, ok := s["$ref"].(string); ok {
		return d.validate(d.schemas[strings.TrimPrefix(ref, "#/components/schemas/")], v, at, strict)
	}
	if v == nil {
		if s["nullable"] == true {
			return nil
		}
		if all, ok := s["allOf"].([]any); ok && len(all) > 0 && s["nullable"] == true {
			return nil
		}
		if _, typed := s["type"]; !typed && s["allOf"] == nil {
			return nil
		}
		return fmt.Errorf("%s: null where the schema does not allow it", at)
	}
	if all, ok := s["allOf"].([]any); ok {
		for _, sub := range all {
			if err := d.validate(sub, v, at, strict); err != nil {
				return err
			}
		}
	}
	if enum, ok := s["enum"].([]any); ok {
		found := false
		for _, e := range enum {
			if e == v {
				found = true
			}
		}
		if !found {
			return fmt.Errorf("%s: %v is not one of %v", at, v, enum)
		}
	}
	switch s["type"] {
	case "object":
		m, ok := v.(map[string]any)
		if !ok {
			return fmt.Errorf("%s: want an object, got %T", at, v)
		}
		if req, ok := s["required"].([]any); ok {
			for _, r := range req {
				if _, ok := m[r.(string)]; !ok {
					return fmt.Errorf("%s: required property %q missing", at, r)
				}
			}
		}
		props, _ := s["properties"].(map[string]any)
		for k, val := range m {
			if ps, ok := props[k]; ok {
				if err := d.validate(ps, val, at+"."+k, strict); err != nil {
					return err
				}
			} else if ap, ok := s["additionalProperties"]; ok {
				if err := d.validate(ap, val, at+"."+k, strict); err != nil {
					return err
				}
			}
		}
		// Every documented property of a product answer is present: the
		// document says what clients may rely on.
		if strict {
			for k, ps := range props {
				if _, ok := m[k]; !ok && !isWriteOnly(ps) {
					return fmt.Errorf("%s: documented property %q missing", at, k)
				}
			}
		}
	case "array":
		a, ok := v.([]any)
		if !ok {
			return fmt.Errorf("%s: want an array, got %T", at, v)
		}
		for i, item := range a {
			if err := d.validate(s["items"], item, fmt.Sprintf("%s[%d]", at, i), strict); err != nil {
				return err
			}
		}
	case "string":
		if _, ok := v.(string); !ok {
			return fmt.Errorf("%s: want a string, got %T", at, v)
		}
	case "integer":
		f, ok := v.(float64)
		if !ok || f != float64(int64(f)) {
			return fmt.Errorf("%s: want an integer, got %v", at, v)
		}
	case "number":
		if _, ok := v.(float64); !ok {
			return fmt.Errorf("%s: want a number, got %T", at, v)
		}
	case "boolean":
		if _, ok := v.(bool); !ok {
			return fmt.Errorf("%s: want a boolean, got %T", at, v)
		}
	}
	return nil
}

func isWriteOnly(s any) bool {
	m, _ := s.(map[string]any)
	return m["writeOnly"] == true
}
