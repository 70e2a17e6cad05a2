package auth

import (
	"errors"
	"sort"

	"github.com/casbin/casbin/v2"
	"github.com/casbin/casbin/v2/model"
	"github.com/casbin/casbin/v2/persist"
)

// casbinModel is RBAC with domains, a domain being a role binding's object
// ("namespace:<name>", or "*" for global bindings):
//
//   - p (role, action): what each role grants — Berth's role model (roleActions);
//   - g (subject, role, object): the role bindings of auth_role_bindings, plus
//     (user, superuser, *) for every active superuser.
//
// A request (subject, object, action) is allowed when the subject holds, on
// the object or globally, a role granting the action. The Authorizer asks
// once for the user and once per group the user belongs to.
const casbinModel = `
[request_definition]
r = sub, obj, act

[policy_definition]
p = role, act

[role_definition]
g = _, _, _

[policy_effect]
e = some(where (p.eft == allow))

[matchers]
m = (g(r.sub, p.role, r.obj) || g(r.sub, p.role, "*")) && r.act == p.act
`

// policySnapshot is the policy as read from Berth's tables at one version.
type policySnapshot struct {
	version    int64
	bindings   []bindingRule
	superusers []string // user IDs
	members    []membership
}

type bindingRule struct {
	Subject string // subjectKey form: "user:<id>" or "group:<id>"
	Role    string
	Object  string
}

type membership struct {
	UserID  string
	GroupID string
}

// errReadOnlyAdapter: policy changes go through the Service, which validates
// them and bumps the policy version in the same transaction; casbin never
// writes.
var errReadOnlyAdapter = errors.New("auth: the casbin adapter is read-only; change roles through auth.Service")

// snapshotAdapter is the casbin adapter over Berth's tables. The store reads
// the tables (with the request's context, which casbin's adapter interface
// cannot carry) into a snapshot; LoadPolicy hands it to casbin.
type snapshotAdapter struct{ snap *policySnapshot }

var _ persist.Adapter = snapshotAdapter{}

// LoadPolicy fills the model: role definitions, superusers, bindings.
func (a snapshotAdapter) LoadPolicy(m model.Model) error {
	roles := make([]string, 0, len(roleActions))
	for r := range roleActions {
		roles = append(roles, string(r))
	}
	sort.Strings(roles)
	for _, r := range roles {
		for _, act := range roleActions[Role(r)] {
			if err := persist.LoadPolicyArray([]string{"p", r, string(act)}, m); err != nil {
				return err
			}
		}
	}
	for _, id := range a.snap.superusers {
		if err := persist.LoadPolicyArray([]string{"g", subjectKey(SubjectUser, id), string(roleSuperuser), globalObject}, m); err != nil {
			return err
		}
	}
	for _, b := range a.snap.bindings {
		if err := persist.LoadPolicyArray([]string{"g", b.Subject, b.Role, b.Object}, m); err != nil {
			return err
		}
	}
	return nil
}

// SavePolicy is refused: see errReadOnlyAdapter.
func (snapshotAdapter) SavePolicy(model.Model) error { return errReadOnlyAdapter }

// AddPolicy is refused: see errReadOnlyAdapter.
func (snapshotAdapter) AddPolicy(string, string, []string) error { return errReadOnlyAdapter }

// RemovePolicy is refused: see errReadOnlyAdapter.
func (snapshotAdapter) RemovePolicy(string, string, []string) error { return errReadOnlyAdapter }

// RemoveFilteredPolicy is refused: see errReadOnlyAdapter.
func (snapshotAdapter) RemoveFilteredPolicy(string, string, int, ...string) error {
	return errReadOnlyAdapter
}

// buildPolicy makes a fresh enforcer for a snapshot. The enforcer is never
// changed afterwards, so concurrent Enforce calls need no lock.
func buildPolicy(snap *policySnapshot) (*policy, error) {
	m, err := model.NewModelFromString(casbinModel)
	if err != nil {
		return nil, err
	}
	e, err := casbin.NewEnforcer(m, snapshotAdapter{snap: snap})
	if err != nil {
		return nil, err
	}
	e.EnableAutoSave(false)
	groups := map[string][]string{}
	for _, mb := range snap.members {
		groups[mb.UserID] = append(groups[mb.UserID], mb.GroupID)
	}
	held := map[string][]bindingRule{}
	for _, id := range snap.superusers {
		sub := subjectKey(SubjectUser, id)
		held[sub] = append(held[sub], bindingRule{Subject: sub, Role: string(roleSuperuser), Object: globalObject})
	}
	for _, b := range snap.bindings {
		held[b.Subject] = append(held[b.Subject], b)
	}
	return &policy{version: snap.version, enforcer: e, groups: groups, held: held}, nil
}
