package auth_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/berth-dev/berth/auth"
	"github.com/berth-dev/berth/core"
)

// tableText returns every value of every row of table, as text.
func tableText(t *testing.T, g *gorm.DB, table string) string {
	t.Helper()
	var rows []map[string]any
	if err := g.Table(table).Find(&rows).Error; err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, r := range rows {
		for k, v := range r {
			fmt.Fprintf(&b, "%s=%v\n", k, v)
		}
	}
	return b.String()
}

func TestAPITokens(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, g *gorm.DB) {
		clk := newClock()
		s := newService(t, g, auth.WithClock(clk.Now))
		u := mustUser(t, s, "ivy", false)

		tok, err := s.CreateToken(ctx, u.ID, auth.TokenInput{Name: "ci"})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(tok.Value, auth.TokenPrefix) || len(tok.Value) < 40 || tok.ExpiresAt != nil || tok.Kind != auth.TokenAPI {
			t.Fatalf("token %+v", tok.Token)
		}
		// Stored hashed: the value appears nowhere in the table.
		if dump := tableText(t, g, "auth_tokens"); strings.Contains(dump, tok.Value) || strings.Contains(dump, tok.Value[len(auth.TokenPrefix):]) {
			t.Fatalf("token value stored in clear:\n%s", dump)
		}
		// Shown once: listing never carries it.
		list, n, err := s.ListTokens(ctx, u.ID, core.ListQuery{})
		if err != nil || n != 1 || list[0].ID != tok.ID || list[0].Prefix != tok.Prefix {
			t.Fatalf("list: %+v %d %v", list, n, err)
		}
		if strings.Contains(fmt.Sprintf("%+v", list), tok.Value) {
			t.Fatal("listed token carries its value")
		}

		p, err := s.AuthenticateToken(ctx, tok.Value, auth.UsageAPI)
		if err != nil || p.UserID != u.ID || p.Method != auth.MethodToken || p.TokenID != tok.ID {
			t.Fatalf("authenticate: %+v %v", p, err)
		}
		// As a Basic password, for podman login, with the right username only.
		if _, err := s.AuthenticateBasic(ctx, "ivy", tok.Value, "192.0.2.1", auth.UsageRegistry); err != nil {
			t.Fatalf("token as password: %v", err)
		}
		mustUser(t, s, "jack", false)
		if _, err := s.AuthenticateBasic(ctx, "jack", tok.Value, "192.0.2.1", auth.UsageRegistry); !errors.Is(err, auth.ErrInvalidCredentials) {
			t.Fatalf("someone else's token as password: %v", err)
		}
		for _, bad := range []string{"", "berth_", tok.Value + "x", strings.ToUpper(tok.Value), "Bearer " + tok.Value} {
			if _, err := s.AuthenticateToken(ctx, bad, auth.UsageAPI); !errors.Is(err, auth.ErrInvalidCredentials) {
				t.Fatalf("bad token %q: %v", bad, err)
			}
		}

		// Revoked tokens stop at once.
		if err := s.RevokeToken(ctx, tok.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := s.AuthenticateToken(ctx, tok.Value, auth.UsageAPI); !errors.Is(err, auth.ErrInvalidCredentials) {
			t.Fatalf("revoked token: %v", err)
		}
		if err := s.RevokeToken(ctx, tok.ID); !errors.Is(err, core.ErrNotFound) {
			t.Fatalf("revoke twice: %v", err)
		}

		// Expiring tokens expire.
		short, err := s.CreateToken(ctx, u.ID, auth.TokenInput{Name: "short", Lifetime: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.AuthenticateToken(ctx, short.Value, auth.UsageAPI); err != nil {
			t.Fatal(err)
		}
		clk.Advance(time.Hour)
		if _, err := s.AuthenticateToken(ctx, short.Value, auth.UsageAPI); !errors.Is(err, auth.ErrInvalidCredentials) {
			t.Fatalf("expired token: %v", err)
		}
		if n, err := s.PruneExpiredTokens(ctx); err != nil || n != 0 {
			t.Fatalf("prune at expiry: %d %v", n, err)
		}
		clk.Advance(time.Second)
		if n, err := s.PruneExpiredTokens(ctx); err != nil || n != 1 {
			t.Fatalf("prune after expiry: %d %v", n, err)
		}

		// Tokens of inactive users do not work.
		keep, _ := s.CreateToken(ctx, u.ID, auth.TokenInput{})
		off := false
		if _, err := s.UpdateUser(ctx, u.ID, auth.UserPatch{Active: &off}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.AuthenticateToken(ctx, keep.Value, auth.UsageAPI); !errors.Is(err, auth.ErrInvalidCredentials) {
			t.Fatalf("inactive user's token: %v", err)
		}
	})
}

func TestRegistryLoginTokens(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, g *gorm.DB) {
		clk := newClock()
		s := newService(t, g, auth.WithClock(clk.Now), auth.WithLoginTokenLifetime(12*time.Hour))
		u := mustUser(t, s, "kim", false)
		tok, err := s.CreateToken(ctx, u.ID, auth.TokenInput{Kind: auth.TokenRegistry, Name: "script"})
		if err != nil {
			t.Fatal(err)
		}
		if tok.ExpiresAt == nil || !tok.ExpiresAt.Equal(clk.Now().Add(12*time.Hour)) {
			t.Fatalf("login token expiry %v", tok.ExpiresAt)
		}
		if _, err := s.AuthenticateBasic(ctx, "kim", tok.Value, "192.0.2.1", auth.UsageRegistry); err != nil {
			t.Fatalf("podman login with a login token: %v", err)
		}
		if _, err := s.AuthenticateToken(ctx, tok.Value, auth.UsageAPI); !errors.Is(err, auth.ErrInvalidCredentials) {
			t.Fatalf("login token on the REST API: %v", err)
		}
		if _, err := s.AuthenticateBasic(ctx, "kim", tok.Value, "192.0.2.1", auth.UsageAPI); !errors.Is(err, auth.ErrInvalidCredentials) {
			t.Fatalf("login token as REST password: %v", err)
		}
		clk.Advance(12 * time.Hour)
		if _, err := s.AuthenticateBasic(ctx, "kim", tok.Value, "192.0.2.1", auth.UsageRegistry); !errors.Is(err, auth.ErrInvalidCredentials) {
			t.Fatalf("expired login token: %v", err)
		}
		if _, err := s.CreateToken(ctx, u.ID, auth.TokenInput{Kind: "ssh"}); !errors.Is(err, core.ErrInvalid) {
			t.Fatalf("unknown kind: %v", err)
		}
	})
}

func TestSecretsStayOutOfFormatting(t *testing.T) {
	t.Parallel()
	u := auth.User{ID: "1", Username: "x", PasswordHash: "$argon2id$secret-hash"}
	tok := auth.NewToken{Token: auth.Token{ID: "2", Prefix: "berth_abc", Hash: "deadbeef-hash"}, Value: "berth_the-value"}
	fa := auth.FirstAdmin{Created: true, Username: "admin", Password: "generated-pw"}
	for _, s := range []string{fmt.Sprintf("%v %+v %s", u, u, &u), fmt.Sprintf("%v %+v", tok, &tok), fmt.Sprintf("%v %+v", fa, fa)} {
		for _, secret := range []string{"secret-hash", "deadbeef-hash", "the-value", "generated-pw"} {
			if strings.Contains(s, secret) {
				t.Errorf("%q shows %q", s, secret)
			}
		}
	}
	for _, v := range []any{u, tok, fa} {
		b, _ := json.Marshal(v)
		for _, secret := range []string{"secret-hash", "deadbeef-hash", "the-value", "generated-pw"} {
			if strings.Contains(string(b), secret) {
				t.Errorf("JSON %s shows %q", b, secret)
			}
		}
	}
}
