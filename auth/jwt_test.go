package auth_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/berth-dev/berth/auth"
	"github.com/berth-dev/berth/core"
)

// resolver is a namespace table for tests: listed namespaces exist, with
// their privacy; others are missing.
type resolver map[string]bool

func (r resolver) ResolveNamespace(_ context.Context, repo string) (auth.Namespace, error) {
	name := auth.NamespaceOf(repo)
	private, ok := r[name]
	return auth.Namespace{Name: name, Private: private, Missing: !ok}, nil
}

// issue gets a registry token the way a client does, from the handler.
func issue(t *testing.T, s *auth.Service, user, pass string, scopes ...string) (string, map[string]any) {
	t.Helper()
	e := testEcho(t)
	e.GET("/token", s.TokenHandler)
	req := httptest.NewRequest(http.MethodGet, "/token?service="+s.ServiceName()+scopeQuery(scopes), nil)
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("/token: %d %s", rec.Code, rec.Body)
	}
	var body map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatal(err)
	}
	return body["token"].(string), body
}

func scopeQuery(scopes []string) string {
	var b strings.Builder
	for _, s := range scopes {
		b.WriteString("&scope=" + s)
	}
	return b.String()
}

// accessOf decodes a token's access claim without verifying it.
func accessOf(t *testing.T, raw string) []auth.Scope {
	t.Helper()
	parts := strings.Split(raw, ".")
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c auth.Claims
	if err := json.Unmarshal(payload, &c); err != nil {
		t.Fatal(err)
	}
	return c.Access
}

func TestRegistryTokenScopes(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, g *gorm.DB) {
		s := newService(t, g, auth.WithNamespaces(resolver{"pub": false, "priv": true}), auth.WithPushCreatesNamespace(true))
		reader := mustUser(t, s, "reader", false)
		writer := mustUser(t, s, "writer", false)
		mustUser(t, s, "stranger", false)
		if err := s.GrantRole(ctx, "priv", auth.RoleConsumer, auth.UserSubject(reader.ID)); err != nil {
			t.Fatal(err)
		}
		if err := s.GrantRole(ctx, "priv", auth.RoleCollaborator, auth.UserSubject(writer.ID)); err != nil {
			t.Fatal(err)
		}
		scopes := []string{"repository:pub/app:pull,push", "repository:priv/app:pull,push,delete", "repository:new/app:push", "registry:catalog:*"}
		for _, tc := range []struct {
			user string
			want string // granted scopes, formatted
		}{
			{"", "repository:pub/app:pull"},
			{"stranger", "repository:pub/app:pull repository:new/app:pull,push registry:catalog:*"},
			{"reader", "repository:pub/app:pull repository:priv/app:pull repository:new/app:pull,push registry:catalog:*"},
			{"writer", "repository:pub/app:pull repository:priv/app:pull,push,delete repository:new/app:pull,push registry:catalog:*"},
		} {
			t.Run("as "+tc.user, func(t *testing.T) {
				raw, _ := issue(t, s, tc.user, tc.user+"-password", scopes...)
				var got []string
				for _, a := range accessOf(t, raw) {
					got = append(got, a.String())
				}
				if strings.Join(got, " ") != tc.want {
					t.Fatalf("granted %q, want %q", strings.Join(got, " "), tc.want)
				}
			})
		}

		// Push implies pull when verifying too.
		raw, _ := issue(t, s, "writer", "writer-password", "repository:priv/app:push")
		if _, err := s.VerifyBearer(raw, auth.RepositoryScope("priv/app", auth.ActionPull)); err != nil {
			t.Fatalf("push token for a pull: %v", err)
		}
		if _, err := s.VerifyBearer(raw, auth.RepositoryScope("priv/other", auth.ActionPull)); !errors.Is(err, auth.ErrInsufficientScope) {
			t.Fatalf("token for another repository: %v", err)
		}
		if _, err := s.VerifyBearer(raw, auth.RepositoryScope("priv/app", auth.ActionDelete)); !errors.Is(err, auth.ErrInsufficientScope) {
			t.Fatalf("delete not granted: %v", err)
		}
		c, err := s.VerifyBearer(raw, auth.Scope{})
		if err != nil || c.Subject != writer.ID || c.Username != "writer" || c.Principal().UserID != writer.ID {
			t.Fatalf("claims %+v %v", c, err)
		}
	})
}

func TestRegistryTokenVerification(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, g *gorm.DB) {
		clk := newClock()
		opts := []auth.Option{auth.WithNamespaces(resolver{"ns": false}), auth.WithClock(clk.Now),
			auth.WithTokenLifetime(5 * time.Minute), auth.WithUploadGrace(time.Hour)}
		s := newService(t, g, opts...)
		u := mustUser(t, s, "lee", false)
		if err := s.GrantRole(ctx, "ns", auth.RoleCollaborator, auth.UserSubject(u.ID)); err != nil {
			t.Fatal(err)
		}
		raw, body := issue(t, s, "lee", "lee-password", "repository:ns/img:pull,push")
		if body["access_token"] != raw || body["expires_in"].(float64) != 300 || body["issued_at"] != clk.Now().Format(time.RFC3339) {
			t.Fatalf("token response %v", body)
		}
		push := auth.RepositoryScope("ns/img", auth.ActionPush)
		if _, err := s.VerifyBearer(raw, push); err != nil {
			t.Fatalf("fresh token: %v", err)
		}

		// Another service (audience), another issuer, another key: all rejected.
		for name, other := range map[string]*auth.Service{
			"other service": newService(t, g, append(opts, auth.WithService("other.example.com"))...),
			"other issuer":  newService(t, g, append(opts, auth.WithPublicURL("https://elsewhere.example.com"), auth.WithService(s.ServiceName()))...),
			"other key":     newService(t, g, append(opts, auth.WithSecretKey("a-different-secret-key-123"))...),
		} {
			if _, err := other.VerifyBearer(raw, push); !errors.Is(err, auth.ErrInvalidToken) || !errors.Is(err, core.ErrUnauthorized) {
				t.Errorf("%s: %v", name, err)
			}
		}

		// Tampering: change the claims but keep the signature.
		parts := strings.Split(raw, ".")
		payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
		forged := strings.Replace(string(payload), `"actions":["pull","push"]`, `"actions":["pull","push","delete"]`, 1)
		if forged == string(payload) {
			t.Fatalf("test did not change the payload: %s", payload)
		}
		tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(forged)) + "." + parts[2]
		if _, err := s.VerifyBearer(tampered, auth.RepositoryScope("ns/img", auth.ActionDelete)); !errors.Is(err, auth.ErrInvalidToken) {
			t.Fatalf("tampered token: %v", err)
		}
		// "alg: none" and garbage.
		none := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + parts[1] + "."
		for _, bad := range []string{none, "", "abc", raw[:len(raw)-2]} {
			if _, err := s.VerifyBearer(bad, auth.Scope{}); !errors.Is(err, auth.ErrInvalidToken) {
				t.Errorf("token %q: %v", bad, err)
			}
		}

		// Expiry: rejected by VerifyBearer, reported by VerifyAllowExpired
		// during the upload grace, rejected after it.
		clk.Advance(5 * time.Minute)
		if _, err := s.VerifyBearer(raw, push); !errors.Is(err, auth.ErrTokenExpired) || !errors.Is(err, auth.ErrInvalidToken) {
			t.Fatalf("expired token: %v", err)
		}
		c, expired, err := s.VerifyAllowExpired(raw, push)
		if err != nil || !expired || c.Subject != u.ID {
			t.Fatalf("VerifyAllowExpired within grace: %+v %v %v", c, expired, err)
		}
		if _, _, err := s.VerifyAllowExpired(raw, auth.RepositoryScope("ns/img", auth.ActionDelete)); !errors.Is(err, auth.ErrInsufficientScope) {
			t.Fatalf("VerifyAllowExpired still checks the scope: %v", err)
		}
		clk.Advance(time.Hour)
		if _, expired, err := s.VerifyAllowExpired(raw, push); !errors.Is(err, auth.ErrTokenExpired) || !expired {
			t.Fatalf("VerifyAllowExpired after grace: %v %v", expired, err)
		}
	})
}
