package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"time"

	"github.com/berth-dev/berth/core"
)

// User is an account. Its password hash never leaves the package: it is
// excluded from JSON and from log output.
type User struct {
	ID           string    `gorm:"primaryKey" json:"id"`
	Username     string    `json:"username"`
	PasswordHash string    `json:"-"`
	FirstName    string    `json:"first_name"`
	LastName     string    `json:"last_name"`
	Email        string    `json:"email"`
	Superuser    bool      `gorm:"column:is_superuser" json:"is_superuser"`
	Active       bool      `gorm:"column:is_active" json:"is_active"`
	CreatedAt    time.Time `json:"date_joined"`
	UpdatedAt    time.Time `json:"-"`
}

// TableName is the users table.
func (User) TableName() string { return "auth_users" }

// HasPassword reports whether the user can log in with a password.
func (u *User) HasPassword() bool { return u.PasswordHash != "" }

// String describes the user without its password hash, so that fmt's %v
// and %+v never print it.
func (u User) String() string { return "user " + u.Username + " (" + u.ID + ")" }

// LogValue logs a user without its password hash.
func (u User) LogValue() slog.Value {
	return slog.GroupValue(slog.String("id", u.ID), slog.String("username", u.Username), slog.Bool("superuser", u.Superuser))
}

// UserInput creates a user.
type UserInput struct {
	Username  string
	Password  string // empty: no password login (API and registry tokens only)
	FirstName string
	LastName  string
	Email     string
	Superuser bool
}

// UserPatch changes the fields that are not nil.
type UserPatch struct {
	Username  *string
	Password  *string // "" removes the password
	FirstName *string
	LastName  *string
	Email     *string
	Superuser *bool
	Active    *bool
}

// FirstAdminName is the username EnsureFirstAdmin creates.
const FirstAdminName = "admin"

// FirstAdmin reports what EnsureFirstAdmin did.
type FirstAdmin struct {
	Created  bool   `json:"created"`
	Username string `json:"username"`
	// Password is the generated password when Created and none was given:
	// the caller shows it once. It is never stored, logged or marshalled.
	Password string `json:"-"`
}

// String keeps a generated password out of fmt output.
func (f FirstAdmin) String() string {
	return fmt.Sprintf("first admin %q (created %v, password generated %v)", f.Username, f.Created, f.Password != "")
}

// LogValue keeps a generated password out of logs.
func (f FirstAdmin) LogValue() slog.Value {
	return slog.GroupValue(slog.Bool("created", f.Created), slog.String("username", f.Username), slog.Bool("password_generated", f.Password != ""))
}

var (
	usernameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@+-]{0,149}$`)
	userCols   = core.Columns{"username": "username", "email": "email", "first_name": "first_name", "last_name": "last_name",
		"is_superuser": "is_superuser", "is_active": "is_active", "date_joined": "created_at", "id": "id"}
)

func validateUsername(v *core.ValidationError, name string) {
	if !usernameRE.MatchString(name) {
		v.Add("username", "must be 1-150 characters: letters, digits and . _ @ + -, starting with a letter or digit")
	}
}

func validateEmail(v *core.ValidationError, email string) {
	if email != "" && (len(email) > 254 || !strings.Contains(email, "@") || strings.ContainsAny(email, " \t\r\n")) {
		v.Add("email", "is not an email address")
	}
}

// CreateUser adds a user. A taken username (in any letter case) is ErrConflict.
func (s *Service) CreateUser(ctx context.Context, in UserInput) (*User, error) {
	v := &core.ValidationError{}
	validateUsername(v, in.Username)
	validateEmail(v, in.Email)
	if in.Password != "" {
		if err := validatePassword(in.Password); err != nil {
			v.Add("password", "%s", err.Error())
		}
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	u := &User{ID: newID(), Username: in.Username, FirstName: in.FirstName, LastName: in.LastName,
		Email: in.Email, Superuser: in.Superuser, Active: true}
	if in.Password != "" {
		h, err := s.hasher.hash(ctx, in.Password)
		if err != nil {
			return nil, err
		}
		u.PasswordHash = h
	}
	if err := s.store.insertUser(ctx, u); err != nil {
		if errors.Is(err, core.ErrConflict) {
			return nil, core.Conflict("user %q already exists", in.Username)
		}
		return nil, err
	}
	s.log.InfoContext(ctx, "user created", "user", u)
	return u, nil
}

// User returns the user with the given ID.
func (s *Service) User(ctx context.Context, id string) (*User, error) {
	return s.store.userByID(ctx, id)
}

// UserByName returns the user with the given username (any letter case).
func (s *Service) UserByName(ctx context.Context, username string) (*User, error) {
	return s.store.userByName(ctx, username)
}

// ListUsers returns a page of users. Filters and ordering take the API's
// field names: username, email, first_name, last_name, is_superuser,
// is_active, date_joined.
func (s *Service) ListUsers(ctx context.Context, q core.ListQuery) ([]User, int64, error) {
	return s.store.listUsers(ctx, q)
}

// UpdateUser changes a user. Demoting, deactivating or renaming follow the
// same rules as creation; the last active superuser cannot be demoted or
// deactivated (ErrLastSuperuser).
func (s *Service) UpdateUser(ctx context.Context, id string, p UserPatch) (*User, error) {
	v := &core.ValidationError{}
	if p.Username != nil {
		validateUsername(v, *p.Username)
	}
	if p.Email != nil {
		validateEmail(v, *p.Email)
	}
	if p.Password != nil && *p.Password != "" {
		if err := validatePassword(*p.Password); err != nil {
			v.Add("password", "%s", err.Error())
		}
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	var newHash *string
	if p.Password != nil {
		h := ""
		if *p.Password != "" {
			var err error
			if h, err = s.hasher.hash(ctx, *p.Password); err != nil {
				return nil, err
			}
		}
		newHash = &h
	}
	var out *User
	err := s.store.tx(ctx, func(tx *store) error {
		u, err := tx.userByID(ctx, id)
		if err != nil {
			return err
		}
		stillSuper := u.Superuser && u.Active
		if (p.Superuser != nil && !*p.Superuser) || (p.Active != nil && !*p.Active) {
			stillSuper = false
		}
		if u.Superuser && u.Active && !stillSuper {
			if err := tx.requireOtherSuperuser(ctx, u.ID); err != nil {
				return err
			}
		}
		set(&u.Username, p.Username)
		set(&u.FirstName, p.FirstName)
		set(&u.LastName, p.LastName)
		set(&u.Email, p.Email)
		set(&u.Superuser, p.Superuser)
		set(&u.Active, p.Active)
		set(&u.PasswordHash, newHash)
		if err := tx.saveUser(ctx, u); err != nil {
			if errors.Is(err, core.ErrConflict) {
				return core.Conflict("user %q already exists", u.Username)
			}
			return err
		}
		out = u
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "user updated", "user", out, "password_changed", p.Password != nil)
	return out, nil
}

func set[T any](dst *T, v *T) {
	if v != nil {
		*dst = *v
	}
}

// SetPassword sets a user's password (berth admin set-password).
func (s *Service) SetPassword(ctx context.Context, username, password string) error {
	if err := validatePassword(password); err != nil {
		return core.Invalid("password", "%s", err.Error())
	}
	u, err := s.store.userByName(ctx, username)
	if err != nil {
		return err
	}
	_, err = s.UpdateUser(ctx, u.ID, UserPatch{Password: &password})
	return err
}

// DeleteUser removes a user with its tokens, memberships and role bindings
// (its permanent ones too). The last active superuser cannot be deleted.
func (s *Service) DeleteUser(ctx context.Context, id string) error {
	var u *User
	err := s.store.tx(ctx, func(tx *store) error {
		var err error
		if u, err = tx.userByID(ctx, id); err != nil {
			return err
		}
		if u.Superuser && u.Active {
			if err := tx.requireOtherSuperuser(ctx, u.ID); err != nil {
				return err
			}
		}
		return tx.deleteUser(ctx, id)
	})
	if err != nil {
		return err
	}
	s.log.InfoContext(ctx, "user deleted", "user", u)
	return nil
}

// EnsureFirstAdmin creates the superuser "admin" when no active superuser
// exists, with the given password or, if it is empty, a generated one that
// the result carries for the caller to show once. When a superuser exists it
// does nothing (a given password is not applied). Replicas starting at once
// are safe: one creates the user, the others see it.
func (s *Service) EnsureFirstAdmin(ctx context.Context, password string) (FirstAdmin, error) {
	res := FirstAdmin{Username: FirstAdminName}
	exists, err := s.store.anySuperuser(ctx)
	if err != nil || exists {
		return res, err
	}
	generated := password == ""
	if generated {
		if password, err = randomPassword(); err != nil {
			return res, err
		}
	}
	_, err = s.CreateUser(ctx, UserInput{Username: FirstAdminName, Password: password, Superuser: true})
	if errors.Is(err, core.ErrConflict) {
		if exists, err2 := s.store.anySuperuser(ctx); err2 == nil && exists {
			return res, nil // another replica won
		}
		return res, core.Conflict("a user %q exists but no active superuser does; make one with berth admin", FirstAdminName)
	}
	if err != nil {
		return res, err
	}
	res.Created = true
	if generated {
		res.Password = password
	}
	return res, nil
}
