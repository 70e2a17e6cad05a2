package auth

import (
	"slices"
	"strings"

	"github.com/berth-dev/berth/core"
)

// Scope is a Docker token scope, "type:name:action,action": what a client
// asks /token for, and what a registry token grants (its "access" claim).
type Scope struct {
	Type    string   `json:"type"`
	Name    string   `json:"name"`
	Actions []string `json:"actions"`
}

// Scope types and the wildcard action.
const (
	ScopeRepository = "repository"
	ScopeRegistry   = "registry"
	ScopeAll        = "*"
)

// RepositoryScope is the scope of actions on one repository.
func RepositoryScope(name string, actions ...Action) Scope {
	s := Scope{Type: ScopeRepository, Name: name}
	for _, a := range actions {
		s.Actions = append(s.Actions, string(a))
	}
	return s
}

// CatalogScope is the scope of GET /v2/_catalog: registry:catalog:*.
func CatalogScope() Scope {
	return Scope{Type: ScopeRegistry, Name: "catalog", Actions: []string{ScopeAll}}
}

// IsZero reports whether s asks for nothing (the base /v2/ endpoint).
func (s Scope) IsZero() bool { return s.Type == "" && s.Name == "" && len(s.Actions) == 0 }

// String formats s as clients send it: "repository:foo/bar:pull,push".
func (s Scope) String() string { return s.Type + ":" + s.Name + ":" + strings.Join(s.Actions, ",") }

// ParseScope reads one scope. A resource class ("repository(plugin)") is
// dropped; names may contain colons (the actions follow the last one).
func ParseScope(raw string) (Scope, error) {
	typ, rest, ok := strings.Cut(raw, ":")
	i := strings.LastIndex(rest, ":")
	if !ok || i <= 0 {
		return Scope{}, core.Invalid("scope", "%q: want type:name:actions", raw)
	}
	if j := strings.IndexByte(typ, '('); j > 0 && strings.HasSuffix(typ, ")") {
		typ = typ[:j]
	}
	s := Scope{Type: typ, Name: rest[:i]}
	for _, a := range strings.Split(rest[i+1:], ",") {
		if a = strings.TrimSpace(a); a != "" && !slices.Contains(s.Actions, a) {
			s.Actions = append(s.Actions, a)
		}
	}
	if s.Type == "" || len(s.Actions) == 0 {
		return Scope{}, core.Invalid("scope", "%q: want type:name:actions", raw)
	}
	return s, nil
}

// ParseScopes reads scope parameters; each may hold several scopes
// separated by spaces (as OAuth2 clients send them).
func ParseScopes(params []string) ([]Scope, error) {
	var out []Scope
	for _, p := range params {
		for _, f := range strings.Fields(p) {
			s, err := ParseScope(f)
			if err != nil {
				return nil, err
			}
			out = append(out, s)
		}
	}
	return out, nil
}

// grants reports whether the granted scope g covers action on (typ, name).
// A push grant covers pull (push implies pull); "*" covers everything.
func (g Scope) grants(typ, name, action string) bool {
	if g.Type != typ || g.Name != name {
		return false
	}
	for _, a := range g.Actions {
		if a == action || a == ScopeAll || (a == string(ActionPush) && action == string(ActionPull)) {
			return true
		}
	}
	return false
}
