package auth_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"gorm.io/gorm"

	"github.com/berth-dev/berth/auth"
	"github.com/berth-dev/berth/core"
	"github.com/berth-dev/berth/core/db"
	"github.com/berth-dev/berth/internal/testdb"
	"github.com/berth-dev/berth/migrations"
)

// TestPermissionTable checks every cell of who × how granted × action ×
// public/private namespace against expectations written out by hand.
func TestPermissionTable(t *testing.T) {
	t.Parallel()
	const (
		all    = "pull push delete tag untag edit_readme sync manage_roles delete_namespace"
		collab = "pull push delete tag untag edit_readme sync"
	)
	actions := []auth.Action{auth.ActionPull, auth.ActionPush, auth.ActionDelete, auth.ActionTag, auth.ActionUntag,
		auth.ActionEditReadme, auth.ActionManageRoles, auth.ActionSync, auth.ActionDeleteNamespace}
	type row struct {
		who     string // anonymous, nobody, consumer, collaborator, owner, superuser, registry_admin
		via     string // user or group
		public  string // allowed actions on the public namespace
		private string // allowed actions on the private namespace
		global  string // allowed global actions
	}
	rows := []row{
		{"anonymous", "-", "pull", "", ""},
		{"nobody", "user", "pull", "", ""},
		{"consumer", "user", "pull", "pull", ""},
		{"consumer", "group", "pull", "pull", ""},
		{"collaborator", "user", collab, collab, ""},
		{"collaborator", "group", collab, collab, ""},
		{"owner", "user", all, all, ""},
		{"owner", "group", all, all, ""},
		{"superuser", "user", all, all, "create_namespace create_remote manage_users"}, // a flag on the user: no group form
		{"registry_admin", "user", "pull", "", "create_namespace create_remote"},
		{"registry_admin", "group", "pull", "", "create_namespace create_remote"},
	}
	each(t, func(t *testing.T, g *gorm.DB) {
		s := newService(t, g)
		// Bindings on another namespace must not leak into "team".
		decoy := mustUser(t, s, "decoy-owner", false)
		if err := s.GrantCreator(ctx, "elsewhere", decoy.ID); err != nil {
			t.Fatal(err)
		}
		for i, r := range rows {
			var p *auth.Principal
			if r.who == "anonymous" {
				p = auth.Anonymous()
			} else {
				u := mustUser(t, s, strings.ReplaceAll(r.who, "_", "-")+"-"+r.via+"-"+string(rune('a'+i)), r.who == "superuser")
				var sub auth.Subject = auth.UserSubject(u.ID)
				if r.via == "group" {
					sub = auth.GroupSubject(mustGroup(t, s, "grp-"+u.Username, u).ID)
				}
				switch r.who {
				case "consumer", "collaborator", "owner":
					role, _ := auth.ParseRole(r.who)
					if err := s.GrantRole(ctx, "team", role, sub); err != nil {
						t.Fatal(err)
					}
				case "registry_admin":
					if err := s.GrantGlobalRole(ctx, auth.RoleRegistryAdmin, sub); err != nil {
						t.Fatal(err)
					}
				}
				p = principal(t, s, u)
			}
			for _, private := range []bool{false, true} {
				want := strings.Fields(r.public)
				if private {
					want = strings.Fields(r.private)
				}
				ns := auth.Namespace{Name: "team", Private: private}
				for _, act := range actions {
					got, err := s.Authorizer().Can(ctx, p, act, ns)
					if err != nil {
						t.Fatal(err)
					}
					if exp := slices.Contains(want, string(act)); got != exp {
						t.Errorf("%s via %s, %s on private=%v namespace: got %v, want %v", r.who, r.via, act, private, got, exp)
					}
				}
				perms, err := s.Authorizer().Permissions(ctx, p, ns)
				if err != nil {
					t.Fatal(err)
				}
				if len(perms) != len(want) {
					t.Errorf("%s via %s, private=%v: Permissions = %v, want %v", r.who, r.via, private, perms, want)
				}
			}
			// Namespaces agrees with Can on the private namespace (where
			// nothing is open to all), for every action.
			for _, act := range actions {
				names, everywhere, err := s.Authorizer().Namespaces(ctx, p, act)
				if err != nil {
					t.Fatal(err)
				}
				want := slices.Contains(strings.Fields(r.private), string(act))
				got := everywhere || slices.Contains(names, "team")
				if got != want || slices.Contains(names, "elsewhere") || (everywhere && r.who != "superuser") {
					t.Errorf("%s via %s: Namespaces(%s) = %v, all=%v; want team=%v", r.who, r.via, act, names, everywhere, want)
				}
			}
			for _, act := range auth.GlobalActions() {
				got, err := s.Authorizer().Can(ctx, p, act, auth.Namespace{})
				if err != nil {
					t.Fatal(err)
				}
				if exp := slices.Contains(strings.Fields(r.global), string(act)); got != exp {
					t.Errorf("%s via %s, global %s: got %v, want %v", r.who, r.via, act, got, exp)
				}
			}
		}
	})
}

func TestPushIntoMissingNamespace(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, g *gorm.DB) {
		for _, pushCreates := range []bool{true, false} {
			s := newService(t, g, auth.WithPushCreatesNamespace(pushCreates))
			suffix := map[bool]string{true: "-on", false: "-off"}[pushCreates]
			plain := principal(t, s, mustUser(t, s, "plain"+suffix, false))
			admin := mustUser(t, s, "radmin"+suffix, false)
			if err := s.GrantGlobalRole(ctx, auth.RoleRegistryAdmin, auth.UserSubject(admin.ID)); err != nil {
				t.Fatal(err)
			}
			adminP := principal(t, s, admin)
			missing := auth.Namespace{Name: "brand-new", Missing: true}
			for _, tc := range []struct {
				p    *auth.Principal
				act  auth.Action
				want bool
			}{
				{auth.Anonymous(), auth.ActionPush, false},
				{auth.Anonymous(), auth.ActionPull, false},
				{plain, auth.ActionPush, pushCreates},
				{plain, auth.ActionPull, pushCreates}, // a push checks for blobs first
				{plain, auth.ActionDelete, false},
				{adminP, auth.ActionPush, true},
				{adminP, auth.ActionTag, false},
			} {
				got, err := s.Authorizer().Can(ctx, tc.p, tc.act, missing)
				if err != nil || got != tc.want {
					t.Errorf("pushCreates=%v %s %s on missing namespace: got %v (%v), want %v", pushCreates, tc.p.Username, tc.act, got, err, tc.want)
				}
			}
		}
	})
}

func TestAuthorizerRejectsBadRequests(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, g *gorm.DB) {
		s := newService(t, g)
		p := principal(t, s, mustUser(t, s, "frank", false))
		if _, err := s.Authorizer().Can(ctx, p, "fly", auth.Namespace{Name: "x"}); !errors.Is(err, core.ErrInvalid) {
			t.Fatalf("unknown action: %v", err)
		}
		if _, err := s.Authorizer().Can(ctx, p, auth.ActionPush, auth.Namespace{}); !errors.Is(err, core.ErrInvalid) {
			t.Fatalf("namespace action without namespace: %v", err)
		}
		err := s.Authorizer().Require(ctx, p, auth.ActionPush, auth.Namespace{Name: "x"})
		if !errors.Is(err, core.ErrForbidden) {
			t.Fatalf("Require, authenticated: %v", err)
		}
		err = s.Authorizer().Require(ctx, auth.Anonymous(), auth.ActionPush, auth.Namespace{Name: "x"})
		if !errors.Is(err, core.ErrUnauthorized) {
			t.Fatalf("Require, anonymous: %v", err)
		}
		if err := s.GrantRole(ctx, "x", auth.RoleRegistryAdmin, auth.UserSubject(p.UserID)); !errors.Is(err, core.ErrInvalid) {
			t.Fatalf("global role on a namespace: %v", err)
		}
		if err := s.GrantGlobalRole(ctx, auth.RoleOwner, auth.UserSubject(p.UserID)); !errors.Is(err, core.ErrInvalid) {
			t.Fatalf("namespace role as global role: %v", err)
		}
		if err := s.GrantRole(ctx, "x", auth.RoleOwner, auth.UserSubject("no-such-user")); !errors.Is(err, core.ErrNotFound) {
			t.Fatalf("grant to unknown user: %v", err)
		}
	})
}

func TestPermanentOwner(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, g *gorm.DB) {
		s := newService(t, g)
		creator := mustUser(t, s, "creator", false)
		if err := s.GrantCreator(ctx, "acme", creator.ID); err != nil {
			t.Fatal(err)
		}
		// Granting the same role again, non-permanently, keeps it permanent.
		if err := s.GrantRole(ctx, "acme", auth.RoleOwner, auth.UserSubject(creator.ID)); err != nil {
			t.Fatal(err)
		}
		err := s.RevokeRole(ctx, "acme", auth.RoleOwner, auth.UserSubject(creator.ID))
		if !errors.Is(err, auth.ErrPermanentRole) || !errors.Is(err, core.ErrConflict) || !strings.Contains(err.Error(), "creator") {
			t.Fatalf("revoke permanent owner: %v", err)
		}
		ok, err := s.Authorizer().Can(ctx, principal(t, s, creator), auth.ActionManageRoles, auth.Namespace{Name: "acme", Private: true})
		if err != nil || !ok {
			t.Fatalf("creator lost rights: %v %v", ok, err)
		}
		// Other owners come and go.
		other := mustUser(t, s, "other", false)
		if err := s.GrantRole(ctx, "acme", auth.RoleOwner, auth.UserSubject(other.ID)); err != nil {
			t.Fatal(err)
		}
		if err := s.RevokeRole(ctx, "acme", auth.RoleOwner, auth.UserSubject(other.ID)); err != nil {
			t.Fatal(err)
		}
		if err := s.RevokeRole(ctx, "acme", auth.RoleOwner, auth.UserSubject(other.ID)); !errors.Is(err, core.ErrNotFound) {
			t.Fatalf("revoke a role not held: %v", err)
		}
		bs, err := s.NamespaceRoleBindings(ctx, "acme")
		if err != nil || len(bs) != 1 || !bs[0].Permanent || bs[0].SubjectName != "creator" {
			t.Fatalf("bindings: %+v, %v", bs, err)
		}
		// Deleting the namespace forgets everything, permanent bindings included.
		if err := s.ForgetNamespace(ctx, "acme"); err != nil {
			t.Fatal(err)
		}
		if bs, _ := s.NamespaceRoleBindings(ctx, "acme"); len(bs) != 0 {
			t.Fatalf("bindings after ForgetNamespace: %+v", bs)
		}
	})
}

// TestChangesReachOtherReplicas runs two Services on two connection pools
// to one database, like two serve replicas: a change made through one is
// seen by the other on its very next decision.
func TestChangesReachOtherReplicas(t *testing.T) {
	t.Parallel()
	for _, d := range testdb.Dialects {
		t.Run(string(d), func(t *testing.T) {
			url := testdb.URL(t, d)
			open := func() *gorm.DB {
				g, err := db.Open(ctx, url, "")
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = db.Close(g) })
				return g
			}
			g1, g2 := open(), open()
			if err := db.Migrate(ctx, g1, migrations.Core); err != nil {
				t.Fatal(err)
			}
			a, b := newService(t, g1), newService(t, g2)

			u := mustUser(t, a, "gina", false)
			grp := mustGroup(t, a, "pushers", u)
			if err := a.GrantRole(ctx, "proj", auth.RoleCollaborator, auth.GroupSubject(grp.ID)); err != nil {
				t.Fatal(err)
			}
			p := principal(t, b, u)
			ns := auth.Namespace{Name: "proj", Private: true}
			can := func(s *auth.Service, act auth.Action) bool {
				t.Helper()
				ok, err := s.Authorizer().Can(ctx, p, act, ns)
				if err != nil {
					t.Fatal(err)
				}
				return ok
			}
			if !can(b, auth.ActionPush) || !can(a, auth.ActionPush) {
				t.Fatal("group collaborator cannot push")
			}

			// Removal from the group, through replica a, applies in b at once.
			if err := a.RemoveGroupMember(ctx, grp.ID, u.ID); err != nil {
				t.Fatal(err)
			}
			if can(b, auth.ActionPush) || can(b, auth.ActionPull) {
				t.Fatal("replica b still lets a removed member push or pull")
			}

			// Back in the group through b; a sees it.
			if err := b.AddGroupMember(ctx, grp.ID, u.ID); err != nil {
				t.Fatal(err)
			}
			if !can(a, auth.ActionPush) {
				t.Fatal("replica a does not see the new membership")
			}
			// Revoking the group's role, deleting the group, deactivating the user.
			if err := b.RevokeRole(ctx, "proj", auth.RoleCollaborator, auth.GroupSubject(grp.ID)); err != nil {
				t.Fatal(err)
			}
			if can(a, auth.ActionPush) {
				t.Fatal("replica a still honours a revoked role")
			}
			if err := a.GrantRole(ctx, "proj", auth.RoleOwner, auth.UserSubject(u.ID)); err != nil {
				t.Fatal(err)
			}
			if !can(b, auth.ActionManageRoles) {
				t.Fatal("replica b does not see a new grant")
			}
			off := false
			if _, err := a.UpdateUser(ctx, u.ID, auth.UserPatch{Active: &off}); err != nil {
				t.Fatal(err)
			}
			if can(b, auth.ActionPull) {
				t.Fatal("replica b still honours a deactivated user's role")
			}
		})
	}
}

func TestPolicyRefreshIntervalTradesFreshness(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, g *gorm.DB) {
		clk := newClock()
		writer := newService(t, g)
		reader := newService(t, g, auth.WithPolicyRefresh(30e9), auth.WithClock(clk.Now))
		u := mustUser(t, writer, "hank", false)
		p := principal(t, writer, u)
		ns := auth.Namespace{Name: "cached", Private: true}
		if ok, _ := reader.Authorizer().Can(ctx, p, auth.ActionPull, ns); ok {
			t.Fatal("pull without a role")
		}
		if err := writer.GrantRole(ctx, "cached", auth.RoleConsumer, auth.UserSubject(u.ID)); err != nil {
			t.Fatal(err)
		}
		if ok, _ := reader.Authorizer().Can(ctx, p, auth.ActionPull, ns); ok {
			t.Fatal("the reader was told to trust its policy for 30s")
		}
		clk.Advance(31e9)
		if ok, _ := reader.Authorizer().Can(ctx, p, auth.ActionPull, ns); !ok {
			t.Fatal("the reader did not reload after the refresh interval")
		}
	})
}

// TestConcurrentDecisions runs decisions while the policy changes under
// them (run with -race).
func TestConcurrentDecisions(t *testing.T) {
	t.Parallel()
	each(t, func(t *testing.T, g *gorm.DB) {
		s := newService(t, g)
		u := mustUser(t, s, "concurrent", false)
		p := principal(t, s, u)
		ns := auth.Namespace{Name: "busy", Private: true}
		done := make(chan struct{})
		errs := make(chan error, 8)
		for range 4 {
			go func() {
				for {
					select {
					case <-done:
						errs <- nil
						return
					default:
					}
					if _, err := s.Authorizer().Permissions(ctx, p, ns); err != nil {
						errs <- err
						return
					}
				}
			}()
		}
		for range 10 {
			if err := s.GrantRole(ctx, "busy", auth.RoleOwner, auth.UserSubject(u.ID)); err != nil {
				t.Error(err)
			}
			if err := s.RevokeRole(ctx, "busy", auth.RoleOwner, auth.UserSubject(u.ID)); err != nil {
				t.Error(err)
			}
		}
		close(done)
		for range 4 {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
		if ok, err := s.Authorizer().Can(ctx, p, auth.ActionPull, ns); err != nil || ok {
			t.Fatalf("after the last revoke: %v %v", ok, err)
		}
	})
}
