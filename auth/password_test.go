package auth_test

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/argon2"
	"gorm.io/gorm"

	"github.com/berth-dev/berth/auth"
	"github.com/berth-dev/berth/core"
)

func TestPasswords(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, g *gorm.DB) {
		// Real argon2id parameters here.
		s, err := auth.New(g, auth.WithSecretKey(testSecret), auth.WithLogger(discardLogger()), auth.WithCredentialCache(0))
		if err != nil {
			t.Fatal(err)
		}
		u, err := s.CreateUser(ctx, auth.UserInput{Username: "alice", Password: "correct horse battery"})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(u.PasswordHash, "$argon2id$v=19$m=7168,t=5,p=1$") {
			t.Fatalf("hash %q is not argon2id with the default parameters", u.PasswordHash)
		}
		if strings.Contains(u.PasswordHash, "correct horse") {
			t.Fatal("hash contains the password")
		}
		var stored string
		if err := g.Raw("SELECT password_hash FROM auth_users WHERE username = ?", "alice").Scan(&stored).Error; err != nil || stored != u.PasswordHash {
			t.Fatalf("stored hash %q, %v", stored, err)
		}

		p, err := s.AuthenticateBasic(ctx, "alice", "correct horse battery", "192.0.2.1", auth.UsageAPI)
		if err != nil {
			t.Fatalf("right password: %v", err)
		}
		if p.UserID != u.ID || p.Username != "alice" || p.Method != auth.MethodPassword {
			t.Fatalf("principal %+v", p)
		}
		if _, err := s.AuthenticateBasic(ctx, "ALICE", "correct horse battery", "192.0.2.1", auth.UsageAPI); err != nil {
			t.Fatalf("usernames are case-insensitive at login: %v", err)
		}

		for _, tc := range []struct{ name, user, pass string }{
			{"wrong password", "alice", "wrong horse battery"},
			{"unknown user", "mallory", "correct horse battery"},
			{"empty password", "alice", ""},
			{"empty username", "", "correct horse battery"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, err := s.AuthenticateBasic(ctx, tc.user, tc.pass, "192.0.2.2", auth.UsageAPI)
				if !errors.Is(err, auth.ErrInvalidCredentials) || !errors.Is(err, core.ErrUnauthorized) {
					t.Fatalf("got %v, want ErrInvalidCredentials", err)
				}
			})
		}

		// A new password replaces the old one at once.
		if err := s.SetPassword(ctx, "alice", "another good password"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.AuthenticateBasic(ctx, "alice", "correct horse battery", "192.0.2.3", auth.UsageAPI); !errors.Is(err, auth.ErrInvalidCredentials) {
			t.Fatalf("old password after change: %v", err)
		}
		if _, err := s.AuthenticateBasic(ctx, "alice", "another good password", "192.0.2.3", auth.UsageAPI); err != nil {
			t.Fatalf("new password: %v", err)
		}
		if err := s.SetPassword(ctx, "alice", "short"); !errors.Is(err, core.ErrInvalid) {
			t.Fatalf("short password: %v", err)
		}

		// Inactive users cannot log in.
		off := false
		if _, err := s.UpdateUser(ctx, u.ID, auth.UserPatch{Active: &off}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.AuthenticateBasic(ctx, "alice", "another good password", "192.0.2.3", auth.UsageAPI); !errors.Is(err, auth.ErrInvalidCredentials) {
			t.Fatalf("inactive user: %v", err)
		}
	})
}

// TestPasswordsHashedWithOtherParameters: a hash keeps the argon2id cost it
// was made with, so accounts created under earlier defaults (19 MiB, 2
// passes) still log in, and a tampered hash never does.
func TestPasswordsHashedWithOtherParameters(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, g *gorm.DB) {
		s := newService(t, g, auth.WithCredentialCache(0))
		mustUser(t, s, "carol", false)
		salt := []byte("0123456789abcdef")
		key := argon2.IDKey([]byte("carol-old-password"), salt, 2, 19*1024, 1, 32)
		b64 := base64.RawStdEncoding
		old := "$argon2id$v=19$m=19456,t=2,p=1$" + b64.EncodeToString(salt) + "$" + b64.EncodeToString(key)
		setHash := func(h string) {
			t.Helper()
			if err := g.Exec("UPDATE auth_users SET password_hash = ? WHERE username = ?", h, "carol").Error; err != nil {
				t.Fatal(err)
			}
		}
		setHash(old)
		if _, err := s.AuthenticateBasic(ctx, "carol", "carol-old-password", "192.0.2.1", auth.UsageAPI); err != nil {
			t.Fatalf("password hashed with m=19456,t=2: %v", err)
		}
		if _, err := s.AuthenticateBasic(ctx, "carol", "carol-wrong-password", "192.0.2.1", auth.UsageAPI); !errors.Is(err, auth.ErrInvalidCredentials) {
			t.Fatalf("wrong password against an old hash: %v", err)
		}
		for _, bad := range []string{
			strings.Replace(old, "t=2", "t=3", 1), // another cost: another key
			strings.Replace(old, "argon2id", "argon2i", 1),
			"$argon2id$v=19$m=19456,t=2,p=1$" + b64.EncodeToString(salt) + "$", // no key
			"",
		} {
			setHash(bad)
			if _, err := s.AuthenticateBasic(ctx, "carol", "carol-old-password", "192.0.2.1", auth.UsageAPI); !errors.Is(err, auth.ErrInvalidCredentials) {
				t.Fatalf("hash %q accepted the password: %v", bad, err)
			}
		}
	})
}

func TestCredentialCacheFollowsPasswordChanges(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, g *gorm.DB) {
		s := newService(t, g, auth.WithCredentialCache(time.Hour))
		mustUser(t, s, "bob", false)
		for range 2 { // the second login is served from the cache
			if _, err := s.AuthenticateBasic(ctx, "bob", "bob-password", "192.0.2.1", auth.UsageRegistry); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.SetPassword(ctx, "bob", "a brand new password"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.AuthenticateBasic(ctx, "bob", "bob-password", "192.0.2.1", auth.UsageRegistry); !errors.Is(err, auth.ErrInvalidCredentials) {
			t.Fatalf("cached old password still accepted: %v", err)
		}
	})
}

func TestFailedLoginRateLimit(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, g *gorm.DB) {
		clk := newClock()
		s := newService(t, g, auth.WithFailedLoginLimit(3, time.Minute), auth.WithClock(clk.Now))
		mustUser(t, s, "carol", false)

		for i := range 3 {
			if _, err := s.AuthenticateBasic(ctx, "carol", "guess", "198.51.100.7", auth.UsageAPI); !errors.Is(err, auth.ErrInvalidCredentials) {
				t.Fatalf("failure %d: %v", i+1, err)
			}
		}
		// The bucket is empty: even the right password is refused from here.
		_, err := s.AuthenticateBasic(ctx, "carol", "carol-password", "198.51.100.7", auth.UsageAPI)
		var rl *auth.RateLimitError
		if !errors.As(err, &rl) || !errors.Is(err, auth.ErrRateLimited) || rl.RetryAfter <= 0 || rl.RetryAfter > time.Minute {
			t.Fatalf("after 3 failures: %v", err)
		}
		// Another address, and another user from the same address, are not limited.
		if _, err := s.AuthenticateBasic(ctx, "carol", "carol-password", "198.51.100.8", auth.UsageAPI); err != nil {
			t.Fatalf("other address: %v", err)
		}
		mustUser(t, s, "dave", false)
		if _, err := s.AuthenticateBasic(ctx, "dave", "dave-password", "198.51.100.7", auth.UsageAPI); err != nil {
			t.Fatalf("other user: %v", err)
		}
		// Unknown users are limited the same way (no hint that they don't exist).
		for range 3 {
			_, _ = s.AuthenticateBasic(ctx, "nobody", "guess", "198.51.100.7", auth.UsageAPI)
		}
		if _, err := s.AuthenticateBasic(ctx, "nobody", "guess", "198.51.100.7", auth.UsageAPI); !errors.Is(err, auth.ErrRateLimited) {
			t.Fatalf("unknown user after 3 failures: %v", err)
		}
		// One token refills per minute.
		clk.Advance(61 * time.Second)
		if _, err := s.AuthenticateBasic(ctx, "carol", "carol-password", "198.51.100.7", auth.UsageAPI); err != nil {
			t.Fatalf("after refill: %v", err)
		}
	})
}

func TestEnsureFirstAdmin(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, g *gorm.DB) {
		s := newService(t, g)
		res, err := s.EnsureFirstAdmin(ctx, "")
		if err != nil || !res.Created || res.Username != "admin" || len(res.Password) < 20 {
			t.Fatalf("first run: %+v, %v", res, err)
		}
		p, err := s.AuthenticateBasic(ctx, "admin", res.Password, "192.0.2.1", auth.UsageAPI)
		if err != nil || !p.Superuser {
			t.Fatalf("generated password does not log in: %+v, %v", p, err)
		}
		again, err := s.EnsureFirstAdmin(ctx, "ignored-password")
		if err != nil || again.Created || again.Password != "" {
			t.Fatalf("second run: %+v, %v", again, err)
		}

		// The last superuser cannot be demoted, deactivated or deleted.
		admin, _ := s.UserByName(ctx, "admin")
		no := false
		if _, err := s.UpdateUser(ctx, admin.ID, auth.UserPatch{Superuser: &no}); !errors.Is(err, auth.ErrLastSuperuser) {
			t.Fatalf("demote last superuser: %v", err)
		}
		if _, err := s.UpdateUser(ctx, admin.ID, auth.UserPatch{Active: &no}); !errors.Is(err, auth.ErrLastSuperuser) {
			t.Fatalf("deactivate last superuser: %v", err)
		}
		if err := s.DeleteUser(ctx, admin.ID); !errors.Is(err, auth.ErrLastSuperuser) || !errors.Is(err, core.ErrConflict) {
			t.Fatalf("delete last superuser: %v", err)
		}
		mustUser(t, s, "root2", true)
		if err := s.DeleteUser(ctx, admin.ID); err != nil {
			t.Fatalf("delete with another superuser left: %v", err)
		}
	})
}

func TestEnsureFirstAdminWithPassword(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, g *gorm.DB) {
		s := newService(t, g)
		res, err := s.EnsureFirstAdmin(ctx, "configured-admin-pw")
		if err != nil || !res.Created || res.Password != "" {
			t.Fatalf("%+v, %v", res, err)
		}
		if _, err := s.AuthenticateBasic(ctx, "admin", "configured-admin-pw", "192.0.2.1", auth.UsageAPI); err != nil {
			t.Fatal(err)
		}
	})
}

func TestUserValidation(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, g *gorm.DB) {
		s := newService(t, g)
		mustUser(t, s, "erin", false)
		if _, err := s.CreateUser(ctx, auth.UserInput{Username: "Erin"}); !errors.Is(err, core.ErrConflict) {
			t.Fatalf("same name in another case: %v", err)
		}
		var ve *core.ValidationError
		_, err := s.CreateUser(ctx, auth.UserInput{Username: "bad name", Password: "short", Email: "nope"})
		if !errors.As(err, &ve) || len(ve.Fields["username"]) == 0 || len(ve.Fields["password"]) == 0 || len(ve.Fields["email"]) == 0 {
			t.Fatalf("validation: %v", err)
		}
		// A user without a password cannot log in with an empty one.
		if _, err := s.CreateUser(ctx, auth.UserInput{Username: "robot"}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.AuthenticateBasic(ctx, "robot", "", "192.0.2.1", auth.UsageAPI); !errors.Is(err, auth.ErrInvalidCredentials) {
			t.Fatalf("passwordless user: %v", err)
		}
	})
}
