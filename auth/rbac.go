package auth

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/casbin/casbin/v2"

	"github.com/berth-dev/berth/core"
)

// Action is something a principal may be allowed to do.
type Action string

// Actions on a namespace (and the repositories in it).
const (
	ActionPull            Action = "pull"             // pull images (needed only for private namespaces)
	ActionPush            Action = "push"             // push images and tags
	ActionDelete          Action = "delete"           // delete images (manifests, blobs)
	ActionTag             Action = "tag"              // add a tag through the API
	ActionUntag           Action = "untag"            // remove a tag through the API
	ActionEditReadme      Action = "edit_readme"      // edit an image's readme
	ActionSync            Action = "sync"             // sync a repository from its remote
	ActionManageRoles     Action = "manage_roles"     // grant and revoke roles on the namespace
	ActionDeleteNamespace Action = "delete_namespace" // delete the namespace itself
)

// Global actions: no namespace involved.
const (
	ActionCreateNamespace Action = "create_namespace" // create namespaces through the API
	ActionCreateRemote    Action = "create_remote"    // create remotes (remote registries)
	ActionManageUsers     Action = "manage_users"     // manage users, groups and global roles
)

var (
	namespaceActions = []Action{ActionPull, ActionPush, ActionDelete, ActionTag, ActionUntag, ActionEditReadme,
		ActionSync, ActionManageRoles, ActionDeleteNamespace}
	globalActions = []Action{ActionCreateNamespace, ActionCreateRemote, ActionManageUsers}
)

// NamespaceActions lists the actions checked on a namespace.
func NamespaceActions() []Action { return slices.Clone(namespaceActions) }

// GlobalActions lists the actions that concern no namespace.
func GlobalActions() []Action { return slices.Clone(globalActions) }

// IsGlobal reports whether act concerns no namespace.
func (a Action) IsGlobal() bool { return slices.Contains(globalActions, a) }

func (a Action) valid() bool { return a.IsGlobal() || slices.Contains(namespaceActions, a) }

// Role is a named set of actions, granted to users and groups on a
// namespace (or, for global roles, everywhere).
type Role string

const (
	// RoleOwner may do everything on the namespace, managing roles included.
	RoleOwner Role = "owner"
	// RoleCollaborator pushes, tags, untags and deletes images, edits
	// readmes and syncs.
	RoleCollaborator Role = "collaborator"
	// RoleConsumer pulls images of a private namespace.
	RoleConsumer Role = "consumer"
	// RoleRegistryAdmin is a global role: it creates namespaces and remotes.
	RoleRegistryAdmin Role = "registry_admin"

	// roleSuperuser is held globally by users with the superuser flag.
	roleSuperuser Role = "superuser"
)

// roleActions is the whole role model. Each role lists every action it
// grants (the hierarchy consumer ⊂ collaborator ⊂ owner is spelled out).
var roleActions = map[Role][]Action{
	RoleConsumer:      {ActionPull},
	RoleCollaborator:  {ActionPull, ActionPush, ActionDelete, ActionTag, ActionUntag, ActionEditReadme, ActionSync},
	RoleOwner:         {ActionPull, ActionPush, ActionDelete, ActionTag, ActionUntag, ActionEditReadme, ActionSync, ActionManageRoles, ActionDeleteNamespace},
	RoleRegistryAdmin: {ActionCreateNamespace, ActionCreateRemote},
	roleSuperuser:     append(slices.Clone(namespaceActions), globalActions...),
}

// NamespaceRoles lists the roles that can be granted on a namespace.
func NamespaceRoles() []Role { return []Role{RoleOwner, RoleCollaborator, RoleConsumer} }

// Actions lists what the role grants.
func (r Role) Actions() []Action { return slices.Clone(roleActions[r]) }

// pulpRoles maps Pulp's role names to Berth's, so Pulp clients' role names work.
var pulpRoles = map[string]Role{
	"container.containernamespace_owner":        RoleOwner,
	"container.containernamespace_collaborator": RoleCollaborator,
	"container.containernamespace_consumer":     RoleConsumer,
}

// ParseRole reads a role name: Berth's (owner, collaborator, consumer,
// registry_admin) or Pulp's (container.containernamespace_owner, …).
func ParseRole(s string) (Role, error) {
	if r, ok := pulpRoles[s]; ok {
		return r, nil
	}
	r := Role(s)
	if r == RoleRegistryAdmin || slices.Contains(NamespaceRoles(), r) {
		return r, nil
	}
	return "", core.Invalid("role", "unknown role %q: want owner, collaborator, consumer or registry_admin", s)
}

// Namespace is what the Authorizer must know about the namespace an action
// concerns. The container plugin owns namespaces and fills it in.
type Namespace struct {
	Name    string
	Private bool // pulls need a role; public namespaces are pulled by anyone
	Missing bool // does not exist yet: a push would create it
}

// NamespaceObject names a namespace in role bindings: "namespace:<name>".
func NamespaceObject(name string) string { return "namespace:" + name }

// globalObject is the object of global role bindings.
const globalObject = "*"

// NamespaceOf returns the namespace of a repository name by Galaxy's rule:
// its first path component ("foo" for "foo/bar", and for "foo").
func NamespaceOf(repository string) string {
	ns, _, _ := strings.Cut(repository, "/")
	return ns
}

// NamespaceResolver finds the namespace a repository name belongs to.
type NamespaceResolver interface {
	ResolveNamespace(ctx context.Context, repository string) (Namespace, error)
}

// NamespaceResolverFunc adapts a function to NamespaceResolver.
type NamespaceResolverFunc func(ctx context.Context, repository string) (Namespace, error)

// ResolveNamespace calls f.
func (f NamespaceResolverFunc) ResolveNamespace(ctx context.Context, repository string) (Namespace, error) {
	return f(ctx, repository)
}

// defaultNamespaces is the conservative resolver used until the plugin
// provides one: every namespace exists and is private.
type defaultNamespaces struct{}

func (defaultNamespaces) ResolveNamespace(_ context.Context, repository string) (Namespace, error) {
	return Namespace{Name: NamespaceOf(repository), Private: true}, nil
}

// Authorizer decides every permission question, for the REST API and the
// content app alike.
//
// The policy (role bindings, group memberships, superuser flags) is loaded
// from the database into a casbin enforcer, tagged with the policy version
// it was loaded at. Every change bumps that version in its own transaction;
// before deciding, the Authorizer reads the version (one primary-key read)
// and reloads if it moved. So a change made through one replica applies in
// every replica from the next request on, with no cache to go stale. (See
// WithPolicyRefresh to trade that for fewer reads.)
type Authorizer struct {
	store       *store
	pushCreates bool
	refresh     time.Duration
	now         func() time.Time
	log         *slog.Logger

	mu      sync.Mutex // serializes reloads
	cur     atomic.Pointer[policy]
	checked atomic.Int64 // when the version was last read (unix ns)
}

func newAuthorizer(st *store, pushCreates bool, refresh time.Duration, now func() time.Time, log *slog.Logger) *Authorizer {
	return &Authorizer{store: st, pushCreates: pushCreates, refresh: refresh, now: now, log: log}
}

// policy is one loaded, immutable policy.
type policy struct {
	version  int64
	enforcer *casbin.Enforcer
	groups   map[string][]string      // user ID → group IDs
	held     map[string][]bindingRule // subject key → its bindings (superusers': global)
}

func (p *policy) subjects(userID string) []string {
	out := []string{subjectKey(SubjectUser, userID)}
	for _, g := range p.groups[userID] {
		out = append(out, subjectKey(SubjectGroup, g))
	}
	return out
}

// allows asks casbin whether any of the subjects holds a role granting act
// on object (directly or through a global binding).
func (p *policy) allows(subjects []string, object string, act Action) (bool, error) {
	for _, s := range subjects {
		ok, err := p.enforcer.Enforce(s, object, string(act))
		if err != nil {
			return false, fmt.Errorf("authorize: %w", err)
		}
		if ok {
			return true, nil
		}
	}
	return false, nil
}

// current returns an up-to-date policy, reloading it if the database's
// version moved.
func (a *Authorizer) current(ctx context.Context) (*policy, error) {
	cur := a.cur.Load()
	now := a.now().UnixNano()
	if cur != nil && a.refresh > 0 && now-a.checked.Load() < int64(a.refresh) {
		return cur, nil
	}
	v, err := a.store.policyVersion(ctx)
	if err != nil {
		return nil, err
	}
	a.checked.Store(now)
	if cur != nil && cur.version >= v {
		return cur, nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if cur = a.cur.Load(); cur != nil && cur.version >= v {
		return cur, nil
	}
	snap, err := a.store.loadPolicy(ctx)
	if err != nil {
		return nil, err
	}
	pol, err := buildPolicy(snap)
	if err != nil {
		return nil, err
	}
	a.cur.Store(pol)
	a.log.DebugContext(ctx, "permission policy loaded", "version", snap.version, "bindings", len(snap.bindings), "memberships", len(snap.members))
	return pol, nil
}

// Can reports whether p may do act on the namespace ns. For global actions
// ns is ignored (pass the zero Namespace).
//
// Pulls of an existing public namespace are open to everyone, anonymous
// included. Everything else needs a role held by the user or one of its
// groups, on the namespace or globally; superusers hold every role. Pushing
// into (and pulling from) a namespace that does not exist yet is allowed to
// those who may create it: any authenticated user when push creates
// namespaces (WithPushCreatesNamespace), else registry admins.
func (a *Authorizer) Can(ctx context.Context, p *Principal, act Action, ns Namespace) (bool, error) {
	if err := checkRequest(act, ns); err != nil {
		return false, err
	}
	if publicPull(act, ns) {
		return true, nil
	}
	if p.IsAnonymous() {
		return false, nil
	}
	pol, err := a.current(ctx)
	if err != nil {
		return false, err
	}
	return a.decide(pol, p, act, ns)
}

func checkRequest(act Action, ns Namespace) error {
	if !act.valid() {
		return core.Invalid("action", "unknown action %q", act)
	}
	if !act.IsGlobal() && ns.Name == "" {
		return core.Invalid("namespace", "action %q needs a namespace", act)
	}
	return nil
}

func publicPull(act Action, ns Namespace) bool {
	return act == ActionPull && !ns.Private && !ns.Missing
}

func (a *Authorizer) decide(pol *policy, p *Principal, act Action, ns Namespace) (bool, error) {
	subs := pol.subjects(p.UserID)
	if act.IsGlobal() {
		return pol.allows(subs, globalObject, act)
	}
	ok, err := pol.allows(subs, NamespaceObject(ns.Name), act)
	if ok || err != nil || !ns.Missing {
		return ok, err
	}
	if act != ActionPull && act != ActionPush {
		return false, nil
	}
	if a.pushCreates {
		return true, nil
	}
	return pol.allows(subs, globalObject, ActionCreateNamespace)
}

// Require is Can as an error: nil when allowed, an error matching
// core.ErrUnauthorized for anonymous principals and core.ErrForbidden for
// others when not.
func (a *Authorizer) Require(ctx context.Context, p *Principal, act Action, ns Namespace) error {
	ok, err := a.Can(ctx, p, act, ns)
	switch {
	case err != nil:
		return err
	case ok:
		return nil
	case p.IsAnonymous():
		return fmt.Errorf("%s: %w", act, core.ErrUnauthorized)
	case act.IsGlobal():
		return fmt.Errorf("%s: %w", act, core.ErrForbidden)
	default:
		return fmt.Errorf("%s on namespace %q: %w", act, ns.Name, core.ErrForbidden)
	}
}

// Namespaces tells where p holds a role granting the namespace action act,
// itself or through a group: everywhere (all, for superusers), or on the
// namespaces named, sorted. Anonymous principals hold none. What is open to
// everyone (pulls of public namespaces) is not counted: only the plugin that
// owns namespaces knows which are public. Lists filtered by visibility use
// it, so that they need not ask Can about every namespace.
func (a *Authorizer) Namespaces(ctx context.Context, p *Principal, act Action) (names []string, all bool, err error) {
	if act.IsGlobal() || !act.valid() {
		return nil, false, core.Invalid("action", "%q is not a namespace action", act)
	}
	if p.IsAnonymous() {
		return []string{}, false, nil
	}
	pol, err := a.current(ctx)
	if err != nil {
		return nil, false, err
	}
	names = []string{}
	for _, sub := range pol.subjects(p.UserID) {
		for _, b := range pol.held[sub] {
			if !slices.Contains(roleActions[Role(b.Role)], act) {
				continue
			}
			if b.Object == globalObject {
				return nil, true, nil
			}
			if ns, ok := strings.CutPrefix(b.Object, NamespaceObject("")); ok && !slices.Contains(names, ns) {
				names = append(names, ns)
			}
		}
	}
	slices.Sort(names)
	return names, false, nil
}

// Permissions lists the namespace actions p may do on ns.
func (a *Authorizer) Permissions(ctx context.Context, p *Principal, ns Namespace) ([]Action, error) {
	return a.permissions(ctx, p, ns, namespaceActions)
}

// GlobalPermissions lists the global actions p may do.
func (a *Authorizer) GlobalPermissions(ctx context.Context, p *Principal) ([]Action, error) {
	return a.permissions(ctx, p, Namespace{}, globalActions)
}

func (a *Authorizer) permissions(ctx context.Context, p *Principal, ns Namespace, acts []Action) ([]Action, error) {
	out := []Action{}
	var pol *policy
	for _, act := range acts {
		if err := checkRequest(act, ns); err != nil {
			return nil, err
		}
		if publicPull(act, ns) {
			out = append(out, act)
			continue
		}
		if p.IsAnonymous() {
			continue
		}
		if pol == nil {
			var err error
			if pol, err = a.current(ctx); err != nil {
				return nil, err
			}
		}
		ok, err := a.decide(pol, p, act, ns)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, act)
		}
	}
	return out, nil
}
