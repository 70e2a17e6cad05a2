package test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	randomimage "github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/berth-dev/berth/auth"
	"github.com/berth-dev/berth/core/db"
)

// End-to-end tests of issue #5: logins, roles and their effect on every
// client, through /v2/ (tokens as the clients get them, crane, skopeo,
// podman) and through the REST API.

const adminPass = "admin-e2e-password"

// site drives one berth serve as its users: the REST API with Basic
// credentials, /v2/ through the Docker token flow.
type site struct {
	t   *testing.T
	srv *Server
}

// rest sends a REST request as user ("" for anonymous); pass is the
// user's password. out, when not nil, receives a 2xx JSON answer.
func (s *site) rest(method, path, user, pass string, body any, out any) (int, string) {
	s.t.Helper()
	c := &Client{t: s.t, Base: s.srv.URL, User: user, Pass: pass}
	status, raw := c.Do(method, path, body, out)
	return status, string(raw)
}

// admin sends a REST request as the first admin and fails unless the
// status is want.
func (s *site) admin(method, path string, body any, want int, out any) string {
	s.t.Helper()
	status, raw := s.rest(method, path, "admin", adminPass, body, out)
	if status != want {
		s.t.Fatalf("admin %s %s: status %d, want %d: %s", method, path, status, want, raw)
	}
	return raw
}

type userOut struct {
	ID   string `json:"id"`
	Href string `json:"pulp_href"`
}

func (s *site) user(name string, superuser bool) userOut {
	s.t.Helper()
	var u userOut
	s.admin(http.MethodPost, "/pulp/api/v3/users/", map[string]any{"username": name, "password": pw(name), "is_superuser": superuser}, 201, &u)
	return u
}

func (s *site) group(name string, members ...string) string {
	s.t.Helper()
	var g struct {
		ID string `json:"id"`
	}
	s.admin(http.MethodPost, "/pulp/api/v3/groups/", map[string]any{"name": name}, 201, &g)
	for _, m := range members {
		s.admin(http.MethodPost, "/pulp/api/v3/groups/"+g.ID+"/users/", map[string]any{"username": m}, 201, nil)
	}
	return g.ID
}

// pw is each test user's password.
func pw(user string) string {
	if user == "admin" {
		return adminPass
	}
	return user + "-e2e-password"
}

// namespace returns the href of a namespace, as the admin sees it.
func (s *site) namespace(ns string) string {
	s.t.Helper()
	var page struct {
		Results []struct {
			Href string `json:"pulp_href"`
		} `json:"results"`
	}
	s.admin(http.MethodGet, "/pulp/api/v3/pulp_container/namespaces/?name="+ns, nil, 200, &page)
	if len(page.Results) != 1 {
		s.t.Fatalf("namespace %s not found", ns)
	}
	return page.Results[0].Href
}

// setPrivate makes an image private (or public) as user, through its
// distribution.
func (s *site) setPrivate(image, user string, private bool) {
	s.t.Helper()
	var page struct {
		Results []struct {
			Href string `json:"pulp_href"`
		} `json:"results"`
	}
	s.admin(http.MethodGet, "/pulp/api/v3/distributions/container/container/?base_path="+image, nil, 200, &page)
	if len(page.Results) != 1 {
		s.t.Fatalf("distribution %s not found", image)
	}
	if status, raw := s.rest(http.MethodPatch, page.Results[0].Href, user, pw(user), map[string]any{"private": private}, nil); status != 200 {
		s.t.Fatalf("%s makes %s private=%v: %d %s", user, image, private, status, raw)
	}
}

// grant gives users/groups a role on a namespace, as user (an owner).
func (s *site) grant(nsHref, by, role string, users, groups []string) {
	s.t.Helper()
	body := map[string]any{"role": role, "users": orNone(users), "groups": orNone(groups)}
	if status, raw := s.rest(http.MethodPost, nsHref+"add_role/", by, pw(by), body, nil); status != 201 {
		s.t.Fatalf("%s grants %s: %d %s", by, role, status, raw)
	}
}

func orNone(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// registryToken gets a registry token as the clients do: GET /token with
// Basic credentials (none for anonymous) and one repository scope. It
// returns the token and the actions it grants on the repository.
func (s *site) registryToken(user, repo string, actions ...string) (string, []string) {
	s.t.Helper()
	q := url.Values{"scope": {"repository:" + repo + ":" + strings.Join(actions, ",")}}
	req, _ := http.NewRequest(http.MethodGet, s.srv.URL+"/token?"+q.Encode(), nil)
	if user != "" {
		req.SetBasicAuth(user, pw(user))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Token string `json:"token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != 200 || body.Token == "" {
		s.t.Fatalf("token for %q: status %d, %v", user, resp.StatusCode, err)
	}
	parts := strings.Split(body.Token, ".")
	if len(parts) != 3 {
		s.t.Fatalf("token is not a JWT: %q", body.Token)
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		s.t.Fatal(err)
	}
	var claims struct {
		Access []struct {
			Type    string   `json:"type"`
			Name    string   `json:"name"`
			Actions []string `json:"actions"`
		} `json:"access"`
	}
	if err := json.Unmarshal(payload, &claims); err != nil {
		s.t.Fatal(err)
	}
	granted := []string{}
	for _, a := range claims.Access {
		if a.Type == "repository" && a.Name == repo {
			granted = append(granted, a.Actions...)
		}
	}
	return body.Token, granted
}

// v2Result is the outcome of one /v2/ request.
type v2Result struct {
	status int
	code   string // the first OCI error code, if any
	body   string
}

// v2 sends a /v2/ request with a header Authorization value ("" for none).
func (s *site) v2(method, path, authz string, body []byte, header ...string) v2Result {
	s.t.Helper()
	var rd io.Reader
	if body != nil {
		rd = strings.NewReader(string(body))
	}
	req, _ := http.NewRequest(method, s.srv.URL+path, rd)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := v2Result{status: resp.StatusCode, body: string(raw)}
	var env struct {
		Errors []struct {
			Code string `json:"code"`
		} `json:"errors"`
	}
	if json.Unmarshal(raw, &env) == nil && len(env.Errors) > 0 {
		r.code = env.Errors[0].Code
	}
	return r
}

func basicAuth(user string) string {
	if user == "" {
		return ""
	}
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pw(user)))
}

// remoteOpts are go-containerregistry options acting as user.
func remoteOpts(user string) []remote.Option {
	if user == "" {
		return []remote.Option{remote.WithAuth(authn.Anonymous)}
	}
	return []remote.Option{remote.WithAuth(&authn.Basic{Username: user, Password: pw(user)})}
}

// pushRandom pushes a small random image to ref as user and returns it.
func (s *site) pushRandom(user, ref string) v1.Image {
	s.t.Helper()
	img, err := randomimage.Image(256, 1)
	if err != nil {
		s.t.Fatal(err)
	}
	r, err := name.ParseReference(s.srv.Addr+"/"+ref, name.Insecure)
	if err != nil {
		s.t.Fatal(err)
	}
	if err := remote.Write(r, img, remoteOpts(user)...); err != nil {
		s.t.Fatalf("push %s as %s: %v", ref, user, err)
	}
	return img
}

// tagImage points tag at img in repo, as user.
func (s *site) tagImage(user, repo, tag string, img v1.Image) {
	s.t.Helper()
	t, err := name.NewTag(s.srv.Addr+"/"+repo+":"+tag, name.Insecure)
	if err != nil {
		s.t.Fatal(err)
	}
	if err := remote.Tag(t, img, remoteOpts(user)...); err != nil {
		s.t.Fatalf("tag %s:%s: %v", repo, tag, err)
	}
}

func digestOf(t *testing.T, img v1.Image) string {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

// dockerConfig writes a DOCKER_CONFIG directory logged in to host as user
// (empty for anonymous) and returns it.
func dockerConfig(t *testing.T, host, user string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "docker-"+strings.ReplaceAll(user, "/", "_"))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	cfg := map[string]any{"auths": map[string]any{}}
	if user != "" {
		cfg["auths"] = map[string]any{host: map[string]string{"auth": base64.StdEncoding.EncodeToString([]byte(user + ":" + pw(user)))}}
	}
	raw, _ := json.Marshal(cfg)
	if err := os.WriteFile(filepath.Join(dir, "config.json"), raw, 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// runWith executes a client program with extra environment and returns its
// combined output and whether it succeeded.
func runWith(env []string, prog string, args ...string) (string, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, prog, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err == nil
}

// The permission matrix.

// Roles of the matrix's principals, and how each holds its role.
type principal struct {
	label string // as the report shows it
	role  string // anonymous, none, consumer, collaborator, owner, superuser
	user  string // "" for anonymous
}

// Matrix actions.
const (
	actPull        = "pull"
	actPush        = "push"
	actDeleteTag   = "delete tag"
	actDeleteMan   = "delete manifest"
	actTag         = "tag"
	actUntag       = "untag"
	actEditReadme  = "edit readme"
	actManageRoles = "manage roles"
	actSync        = "sync"
	actView        = "see namespace"
)

// allowed is the expected answer of every cell: the role model of
// Galaxy NG's container namespaces.
func allowed(role, action string, private bool) bool {
	switch role {
	case "superuser", "owner":
		return true
	case "collaborator":
		return action != actManageRoles
	case "consumer":
		return action == actPull || action == actView
	}
	return !private && (action == actPull || action == actView)
}

// tally counts cells and failures, and keeps the matrix for the log.
type tally struct {
	mu           sync.Mutex
	t            *testing.T
	cells        int
	unauthorized int // expected deny, got allow
	refused      int // expected allow, got deny
	surface      map[string]int
	grid         map[string]map[string]string // principal → column → A/D per surface
}

func newTally(t *testing.T) *tally {
	return &tally{t: t, surface: map[string]int{}, grid: map[string]map[string]string{}}
}

// record checks one cell: got is whether the action succeeded.
func (ty *tally) record(surface string, p principal, action string, private bool, got bool, detail string) {
	ty.t.Helper()
	want := allowed(p.role, action, private)
	ty.mu.Lock()
	defer ty.mu.Unlock()
	ty.cells++
	ty.surface[surface]++
	where := "public"
	if private {
		where = "private"
	}
	switch {
	case got && !want:
		ty.unauthorized++
		ty.t.Errorf("UNAUTHORIZED SUCCESS: %s: %s %s on the %s namespace was allowed (%s)", surface, p.label, action, where, detail)
	case !got && want:
		ty.refused++
		ty.t.Errorf("wrongly denied: %s: %s %s on the %s namespace (%s)", surface, p.label, action, where, detail)
	}
	col := action + "/" + where
	if ty.grid[p.label] == nil {
		ty.grid[p.label] = map[string]string{}
	}
	mark := "D"
	if got {
		mark = "A"
	}
	prev := ty.grid[p.label][col]
	if !strings.Contains(prev, mark) {
		ty.grid[p.label][col] = prev + mark
	}
}

func (ty *tally) report(principals []principal, actions []string) {
	ty.t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "%-20s", "")
	for _, a := range actions {
		fmt.Fprintf(&b, " %-16s", a)
	}
	b.WriteString("\n")
	fmt.Fprintf(&b, "%-20s", "")
	for range actions {
		fmt.Fprintf(&b, " %-16s", "pub  priv")
	}
	b.WriteString("\n")
	for _, p := range principals {
		fmt.Fprintf(&b, "%-20s", p.label)
		for _, a := range actions {
			fmt.Fprintf(&b, " %-4s %-11s", ty.grid[p.label][a+"/public"], ty.grid[p.label][a+"/private"])
		}
		b.WriteString("\n")
	}
	surfaces := make([]string, 0, len(ty.surface))
	for s := range ty.surface {
		surfaces = append(surfaces, s)
	}
	sort.Strings(surfaces)
	for _, s := range surfaces {
		fmt.Fprintf(&b, "  %-44s %4d cells\n", s, ty.surface[s])
	}
	ty.t.Logf("permission matrix (A allowed, D denied):\n%s%d cells, %d unauthorized successes, %d wrong denials",
		b.String(), ty.cells, ty.unauthorized, ty.refused)
	if ty.unauthorized != 0 || ty.refused != 0 {
		ty.t.Errorf("%d unauthorized successes and %d wrong denials in %d cells", ty.unauthorized, ty.refused, ty.cells)
	}
}

// authError reports whether a client's output tells of a refusal: the OCI
// codes, or the bare status of a HEAD request (which has no body).
func authError(out string) bool {
	for _, s := range []string{"UNAUTHORIZED", "DENIED", "401 Unauthorized", "403 Forbidden"} {
		if strings.Contains(out, s) {
			return true
		}
	}
	return false
}

// denial checks that a refused /v2/ request says so in the OCI way.
func denial(t *testing.T, what string, r v2Result) {
	t.Helper()
	ok := (r.status == 401 && r.code == "UNAUTHORIZED") || (r.status == 403 && r.code == "DENIED")
	if !ok {
		t.Errorf("%s: neither allowed nor denied: status %d code %q: %s", what, r.status, r.code, r.body)
	}
}

// TestPermissionMatrix checks who may do what, for anonymous, a user
// without roles, consumer, collaborator and owner (each holding the role
// as a user and through a group) and a superuser, on a public and on a
// private namespace:
//
//   - /v2/ pull, push, delete tag and delete manifest: every cell over
//     HTTP with a fresh token from /token (and the token's grant is
//     checked), and again with crane (every cell) and skopeo (pulls);
//   - REST: manage roles (add_role + remove_role), seeing the namespace
//     (list and detail), and my_permissions for every action;
//   - tag, untag, edit readme and sync, whose endpoints come later (issues
//     #6 and #8): at the Authorizer level, auth.Service.Authorizer().Can on
//     the same database with the same users.
func TestPermissionMatrix(t *testing.T) {
	crane := requireTool(t, "crane")
	skopeo := requireTool(t, "skopeo")
	env := NewEnv(t, db.Postgres, false)
	s := &site{t: t, srv: env.Serve(t)}

	principals := []principal{
		{"anonymous", "anonymous", ""},
		{"no role", "none", "nobody"},
		{"consumer (user)", "consumer", "cons-u"},
		{"consumer (group)", "consumer", "cons-g"},
		{"collaborator (user)", "collaborator", "collab-u"},
		{"collaborator (group)", "collaborator", "collab-g"},
		{"owner (user)", "owner", "owner-u"},
		{"owner (group)", "owner", "owner-g"},
		{"superuser", "superuser", "root"},
	}
	s.user("creator", false)
	s.user("bystander", false)
	for _, p := range principals {
		if p.user != "" {
			s.user(p.user, p.role == "superuser")
		}
	}
	s.group("consumers", "cons-g")
	s.group("collaborators", "collab-g")
	s.group("owners", "owner-g")

	// Two namespaces, created by pushes of "creator", who owns them for
	// good and grants the roles; one image of each is made private.
	type nsFixture struct {
		name, repo, href string
		private          bool
		base             v1.Image
		delman           map[string]v1.Image // per principal and surface: a manifest to delete
	}
	spaces := []*nsFixture{{name: "pubns", repo: "pubns/app"}, {name: "privns", repo: "privns/app", private: true}}
	fixtureKey := func(p principal, surface string) string { return surface + "-" + strings.ReplaceAll(p.label, " ", "") }
	slug := func(p principal) string {
		return strings.NewReplacer(" ", "-", "(", "", ")", "").Replace(p.label)
	}
	for _, ns := range spaces {
		ns.base = s.pushRandom("creator", ns.repo+":base")
		ns.href = s.namespace(ns.name)
		s.grant(ns.href, "creator", "consumer", []string{"cons-u"}, []string{"consumers"})
		s.grant(ns.href, "creator", "collaborator", []string{"collab-u"}, []string{"collaborators"})
		s.grant(ns.href, "creator", "owner", []string{"owner-u"}, []string{"owners"})
		ns.delman = map[string]v1.Image{}
		for _, p := range principals {
			for _, surface := range []string{"http", "crane"} {
				key := fixtureKey(p, surface)
				ns.delman[key] = s.pushRandom("creator", ns.repo+":delman-"+slug(p)+"-"+surface)
				s.tagImage("creator", ns.repo, "deltag-"+slug(p)+"-"+surface, ns.base)
			}
		}
		if ns.private {
			s.setPrivate(ns.repo, "creator", true)
		}
	}
	ty := newTally(t)
	accept := "application/vnd.oci.image.manifest.v1+json,application/vnd.docker.distribution.manifest.v2+json"

	// /v2/ over HTTP, each request with a fresh token for its scope.
	for _, ns := range spaces {
		// A push cell pushes the base manifest under a new tag.
		baseManifest, err := ns.base.RawManifest()
		if err != nil {
			t.Fatal(err)
		}
		baseType, err := ns.base.MediaType()
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range principals {
			sl := slug(p)
			type cell struct {
				action, scope, method, ref string
				body                       []byte
				ok                         int
			}
			cells := []cell{
				{actPull, "pull", http.MethodGet, "base", nil, 200},
				{actPush, "push", http.MethodPut, "push-" + sl, baseManifest, 201},
				{actDeleteTag, "delete", http.MethodDelete, "deltag-" + sl + "-http", nil, 202},
				{actDeleteMan, "delete", http.MethodDelete, digestOf(t, ns.delman[fixtureKey(p, "http")]), nil, 202},
			}
			for _, c := range cells {
				token, granted := s.registryToken(p.user, ns.repo, c.scope)
				ty.record("/v2/ token grant (GET /token)", p, c.action, ns.private, slices.Contains(granted, c.scope), fmt.Sprintf("grants %v", granted))
				r := s.v2(c.method, "/v2/"+ns.repo+"/manifests/"+c.ref, "Bearer "+token, c.body, "Accept", accept, "Content-Type", string(baseType))
				got := r.status == c.ok
				if !got {
					denial(t, p.label+" "+c.action+" "+ns.repo, r)
				}
				ty.record("/v2/ HTTP with a bearer token", p, c.action, ns.private, got, fmt.Sprintf("%d %s", r.status, r.code))
			}
		}
	}

	// /v2/ with crane, every cell, and pulls with skopeo.
	layer := smallLayer(t, t.TempDir(), "matrix")
	for _, p := range principals {
		cfg := []string{"DOCKER_CONFIG=" + dockerConfig(t, s.srv.Addr, p.user)}
		sl := slug(p)
		for _, ns := range spaces {
			ref := s.srv.Addr + "/" + ns.repo
			cmds := []struct {
				action string
				args   []string
			}{
				{actPull, []string{"manifest", "--insecure", ref + ":base"}},
				{actPush, []string{"append", "--insecure", "-f", layer, "-t", ref + ":crane-push-" + sl}},
				{actDeleteTag, []string{"delete", "--insecure", ref + ":deltag-" + sl + "-crane"}},
				{actDeleteMan, []string{"delete", "--insecure", ref + "@" + digestOf(t, ns.delman[fixtureKey(p, "crane")])}},
			}
			for _, c := range cmds {
				out, ok := runWith(cfg, crane, c.args...)
				if !ok && !authError(out) {
					t.Errorf("crane %s as %s: failed without an authorization error:\n%s", c.action, p.label, out)
				}
				ty.record("/v2/ crane", p, c.action, ns.private, ok, strings.TrimSpace(out))
			}
			args := []string{"inspect", "--tls-verify=false", "--raw"}
			if p.user == "" {
				args = append(args, "--no-creds")
			} else {
				args = append(args, "--creds", p.user+":"+pw(p.user))
			}
			out, ok := runWith(nil, skopeo, append(args, "docker://"+ref+":base")...)
			if !ok && !strings.Contains(strings.ToLower(out), "unauthorized") && !strings.Contains(strings.ToLower(out), "denied") {
				t.Errorf("skopeo inspect as %s: failed without an authorization error:\n%s", p.label, out)
			}
			ty.record("/v2/ skopeo", p, actPull, ns.private, ok, strings.TrimSpace(out))
		}
	}

	// REST: managing roles, seeing the namespace, my_permissions.
	for _, ns := range spaces {
		for _, p := range principals {
			body := map[string]any{"role": "consumer", "users": []string{"bystander"}, "groups": []string{}}
			status, raw := s.rest(http.MethodPost, ns.href+"add_role/", p.user, pw(p.user), body, nil)
			if status == 201 {
				if st, raw := s.rest(http.MethodPost, ns.href+"remove_role/", p.user, pw(p.user), body, nil); st != 201 {
					t.Errorf("%s added a role but cannot remove it: %d %s", p.label, st, raw)
				}
			} else if status != 401 && status != 403 && status != 404 {
				t.Errorf("add_role as %s: unexpected %d %s", p.label, status, raw)
			}
			ty.record("REST add_role/remove_role", p, actManageRoles, ns.private, status == 201, fmt.Sprintf("%d %s", status, raw))
			status, _ = s.rest(http.MethodGet, ns.href+"list_roles/", p.user, pw(p.user), nil, nil)
			ty.record("REST list_roles", p, actManageRoles, ns.private, status == 200, fmt.Sprint(status))

			var page struct {
				Results []struct {
					Name string `json:"name"`
				} `json:"results"`
			}
			status, raw = s.rest(http.MethodGet, "/pulp/api/v3/pulp_container/namespaces/?limit=1000", p.user, pw(p.user), nil, &page)
			if status != 200 {
				t.Fatalf("namespace list as %s: %d %s", p.label, status, raw)
			}
			listed := slices.ContainsFunc(page.Results, func(r struct {
				Name string `json:"name"`
			}) bool {
				return r.Name == ns.name
			})
			ty.record("REST namespace list", p, actView, ns.private, listed, "")
			status, raw = s.rest(http.MethodGet, ns.href, p.user, pw(p.user), nil, nil)
			if status != 200 && status != 404 {
				t.Errorf("namespace detail as %s: %d %s", p.label, status, raw)
			}
			ty.record("REST namespace detail", p, actView, ns.private, status == 200, fmt.Sprint(status))

			var perms struct {
				Permissions []string `json:"permissions"`
			}
			status, raw = s.rest(http.MethodGet, ns.href+"my_permissions/", p.user, pw(p.user), nil, &perms)
			if status != 200 && status != 404 {
				t.Fatalf("my_permissions as %s: %d %s", p.label, status, raw)
			}
			for action, perm := range map[string]string{actPull: "pull", actPush: "push", actDeleteTag: "delete", actDeleteMan: "delete",
				actTag: "tag", actUntag: "untag", actEditReadme: "edit_readme", actSync: "sync", actManageRoles: "manage_roles"} {
				ty.record("REST my_permissions", p, action, ns.private, slices.Contains(perms.Permissions, perm), strings.Join(perms.Permissions, ","))
			}
		}
	}

	// The Authorizer, on the same database, for the same users.
	g, err := db.Open(context.Background(), env.DatabaseURL, env.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(g)
	svc, err := auth.New(g, auth.WithSecretKey("e2e-secret-key-0123456789abcdef"), auth.WithPublicURL(s.srv.URL),
		auth.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range principals {
		who := auth.Anonymous()
		if p.user != "" {
			if who, err = svc.AuthenticateBasic(context.Background(), p.user, pw(p.user), "127.0.0.1", auth.UsageAPI); err != nil {
				t.Fatal(err)
			}
		}
		for _, ns := range spaces {
			target := auth.Namespace{Name: ns.name, Private: ns.private}
			for action, act := range map[string]auth.Action{actPull: auth.ActionPull, actPush: auth.ActionPush, actDeleteTag: auth.ActionDelete,
				actDeleteMan: auth.ActionDelete, actTag: auth.ActionTag, actUntag: auth.ActionUntag, actEditReadme: auth.ActionEditReadme,
				actSync: auth.ActionSync, actManageRoles: auth.ActionManageRoles} {
				ok, err := svc.Authorizer().Can(context.Background(), who, act, target)
				if err != nil {
					t.Fatal(err)
				}
				ty.record("Authorizer.Can (no endpoint yet for tag/untag/readme/sync)", p, action, ns.private, ok, "")
			}
		}
	}

	// The catalog lists the private image only to those who may pull it.
	for _, p := range principals[1:] {
		r := s.v2(http.MethodGet, "/v2/_catalog?n=1000", basicAuth(p.user), nil)
		if r.status != 200 {
			t.Fatalf("catalog as %s: %d %s", p.label, r.status, r.body)
		}
		ty.record("/v2/_catalog (Basic)", p, actView, true, strings.Contains(r.body, `"privns/app"`), "")
		ty.record("/v2/_catalog (Basic)", p, actView, false, strings.Contains(r.body, `"pubns/app"`), "")
	}
	if r := s.v2(http.MethodGet, "/v2/_catalog", "", nil); r.status != 401 || r.code != "UNAUTHORIZED" {
		t.Errorf("anonymous catalog: %d %s", r.status, r.body)
	}

	ty.report(principals, []string{actPull, actPush, actDeleteTag, actDeleteMan, actTag, actUntag, actEditReadme, actManageRoles, actSync, actView})
}

// TestPodmanLoginPushPull follows Galaxy NG's documentation with podman: a
// user given rights through a group logs in (with a password, then with a
// registry login token) and pushes and pulls; anybody pulls a public image
// without logging in; a user without rights is told "denied" or
// "unauthorized", and so is everyone without a role once the image is
// private.
func TestPodmanLoginPushPull(t *testing.T) {
	podman := requireTool(t, "podman")
	skopeo := requireTool(t, "skopeo")
	dir, err := os.MkdirTemp("", "pm") // podman wants a short run root
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	env := NewEnv(t, db.SQLite, false)
	s := &site{t: t, srv: env.Serve(t)}
	s.user("pat", false)
	s.user("ned", false)
	s.group("devs", "pat")
	// The admin creates the namespace through the API and gives the group
	// the collaborator role.
	var ns struct {
		Href      string `json:"pulp_href"`
		CreatedBy string `json:"created_by"`
	}
	s.admin(http.MethodPost, "/pulp/api/v3/pulp_container/namespaces/", map[string]any{"name": "team"}, 201, &ns)
	if ns.CreatedBy != "admin" {
		t.Fatalf("namespace created by %q", ns.CreatedBy)
	}
	s.grant(ns.Href, "admin", "collaborator", nil, []string{"devs"})
	if raw := s.admin(http.MethodGet, ns.Href+"list_roles/", nil, 200, nil); !strings.Contains(raw, `"permanent_users":["admin"]`) {
		t.Fatalf("the creator of a namespace made through the API is not its permanent owner: %s", raw)
	}

	// A local image for podman to push.
	seed := s.srv.Addr + "/seed/busybox:1"
	cranePushAs(t, dockerConfig(t, s.srv.Addr, "admin"), busyboxLayer(t, dir, "podman-auth"), seed)
	authFile := func(user string) string { return filepath.Join(dir, "auth-"+user+".json") }
	pm := func(args ...string) (string, bool) {
		out, ok := runWith(nil, podman, podmanArgs(dir, args...)...)
		return out, ok
	}
	must := func(args ...string) string {
		t.Helper()
		out, ok := pm(args...)
		if !ok {
			t.Fatalf("podman %s:\n%s", strings.Join(args, " "), out)
		}
		return out
	}
	refused := func(what string, args ...string) string {
		t.Helper()
		out, ok := pm(args...)
		if ok {
			t.Fatalf("%s: podman %s succeeded:\n%s", what, strings.Join(args, " "), out)
		}
		low := strings.ToLower(out)
		if !strings.Contains(low, "unauthorized") && !strings.Contains(low, "denied") {
			t.Fatalf("%s: podman says neither unauthorized nor denied:\n%s", what, out)
		}
		return out
	}
	must("pull", "--tls-verify=false", seed)

	// pat: podman login with a password, push, pull back.
	must("login", "--tls-verify=false", "--authfile", authFile("pat"), "-u", "pat", "-p", pw("pat"), s.srv.Addr)
	img := s.srv.Addr + "/team/ee:1"
	must("tag", seed, img)
	must("push", "--tls-verify=false", "--authfile", authFile("pat"), img)
	must("rmi", img)
	must("pull", "--tls-verify=false", "--authfile", authFile("pat"), img)

	// pat again, logged in with a registry login token instead.
	var tok struct {
		Token    string `json:"token"`
		Registry string `json:"registry"`
		Username string `json:"username"`
	}
	if status, raw := s.rest(http.MethodPost, "/api/v1/tokens/", "pat", pw("pat"), map[string]any{"name": "podman", "kind": "registry"}, &tok); status != 201 {
		t.Fatalf("registry token: %d %s", status, raw)
	}
	if tok.Registry != s.srv.Addr || tok.Username != "pat" {
		t.Fatalf("registry token names %q as %q", tok.Registry, tok.Username)
	}
	must("login", "--tls-verify=false", "--authfile", authFile("pat-token"), "-u", tok.Username, "-p", tok.Token, tok.Registry)
	img2 := s.srv.Addr + "/team/ee:2"
	must("tag", seed, img2)
	must("push", "--tls-verify=false", "--authfile", authFile("pat-token"), img2)
	must("rmi", img2)
	must("pull", "--tls-verify=false", "--authfile", authFile("pat-token"), img2)

	// Anybody pulls the public image, logged in or not.
	emptyAuth := filepath.Join(dir, "auth-none.json")
	if err := os.WriteFile(emptyAuth, []byte(`{"auths":{}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	must("rmi", img)
	must("pull", "--tls-verify=false", "--authfile", emptyAuth, img)
	if out, ok := runWith(nil, skopeo, "inspect", "--tls-verify=false", "--no-creds", "docker://"+img); !ok {
		t.Fatalf("anonymous skopeo inspect of a public image:\n%s", out)
	}

	// ned has no role: podman login works, the push is refused, clearly.
	must("login", "--tls-verify=false", "--authfile", authFile("ned"), "-u", "ned", "-p", pw("ned"), s.srv.Addr)
	img3 := s.srv.Addr + "/team/ee:ned"
	must("tag", seed, img3)
	out := refused("push without a role", "push", "--tls-verify=false", "--authfile", authFile("ned"), img3)
	if !strings.Contains(out, "user ned may not push team/ee") {
		t.Errorf("podman push without a role does not say why:\n%s", out)
	}
	t.Logf("podman push without a role says:\n%s", tail(out, 3))
	refused("anonymous push", "push", "--tls-verify=false", "--authfile", emptyAuth, img3)
	if out, ok := pm("login", "--tls-verify=false", "--authfile", authFile("bad"), "-u", "ned", "-p", "wrong-password", s.srv.Addr); ok ||
		!strings.Contains(strings.ToLower(out), "unauthorized") && !strings.Contains(strings.ToLower(out), "invalid") {
		t.Fatalf("login with a wrong password:\n%s", out)
	}

	// Private: only role holders pull.
	s.setPrivate("team/ee", "admin", true)
	must("rmi", img)
	out = refused("anonymous pull of a private image", "pull", "--tls-verify=false", "--authfile", emptyAuth, img)
	if !strings.Contains(out, "log in") {
		t.Errorf("anonymous podman pull of a private image does not say to log in:\n%s", out)
	}
	t.Logf("anonymous podman pull of a private image says:\n%s", tail(out, 3))
	out = refused("pull of a private image without a role", "pull", "--tls-verify=false", "--authfile", authFile("ned"), img)
	t.Logf("podman pull of a private image without a role says:\n%s", tail(out, 3))
	must("pull", "--tls-verify=false", "--authfile", authFile("pat"), img)
}

// cranePushAs pushes a layer as an image with crane logged in through
// DOCKER_CONFIG dir.
func cranePushAs(t *testing.T, dir, layer, ref string) {
	t.Helper()
	if out, ok := runWith([]string{"DOCKER_CONFIG=" + dir}, requireTool(t, "crane"), "append", "--insecure", "-f", layer, "-t", ref); !ok {
		t.Fatalf("crane append %s:\n%s", ref, out)
	}
}

// TestAuthCreatorKeepsOwner: the user whose push created a namespace keeps
// its owner role whoever tries to take it, and keeps pushing.
func TestAuthCreatorKeepsOwner(t *testing.T) {
	env := NewEnv(t, db.SQLite, false)
	s := &site{t: t, srv: env.Serve(t)}
	s.user("cora", false)
	s.user("otto", false)
	s.pushRandom("cora", "cora/app:1")
	href := s.namespace("cora")
	s.grant(href, "cora", "owner", []string{"otto"}, nil)

	for _, by := range []string{"otto", "cora", "admin"} {
		status, raw := s.rest(http.MethodPost, href+"remove_role/", by, pw(by), map[string]any{"role": "owner", "users": []string{"cora"}}, nil)
		if status != 409 || !strings.Contains(raw, "cora created namespace") || !strings.Contains(raw, "for good") {
			t.Fatalf("%s removes the creator's owner role: %d %s", by, status, raw)
		}
	}
	var roles struct {
		Roles []struct {
			Role           string   `json:"role"`
			Users          []string `json:"users"`
			PermanentUsers []string `json:"permanent_users"`
		} `json:"roles"`
	}
	s.admin(http.MethodGet, href+"list_roles/", nil, 200, &roles)
	if len(roles.Roles) == 0 || roles.Roles[0].Role != "owner" || !slices.Equal(roles.Roles[0].PermanentUsers, []string{"cora"}) {
		t.Fatalf("list_roles %+v", roles)
	}
	// otto's owner role, not permanent, goes.
	if status, raw := s.rest(http.MethodPost, href+"remove_role/", "cora", pw("cora"), map[string]any{"role": "owner", "users": []string{"otto"}}, nil); status != 201 {
		t.Fatalf("remove otto: %d %s", status, raw)
	}
	s.pushRandom("cora", "cora/app:2")
	var perms struct {
		Permissions []string `json:"permissions"`
	}
	if status, raw := s.rest(http.MethodGet, href+"my_permissions/", "cora", pw("cora"), nil, &perms); status != 200 || len(perms.Permissions) != len(auth.NamespaceActions()) {
		t.Fatalf("cora's permissions: %d %s", status, raw)
	}
}

// TestAuthGroupRemovalAcrossReplicas: removing a user from a group through
// one serve replica takes the group's rights away at once in another
// replica on the same database, for new tokens, for a token issued before,
// and for Basic credentials; adding them back restores them at once too.
func TestAuthGroupRemovalAcrossReplicas(t *testing.T) {
	env := NewEnv(t, db.Postgres, true) // production's set-up: replicas share PostgreSQL, Redis and storage
	a := &site{t: t, srv: env.Serve(t)}
	// Replicas share the public URL (a load balancer's): tokens name it.
	b := &site{t: t, srv: env.Serve(t, "BERTH_PUBLIC_URL="+a.srv.URL)}
	gus := a.user("gus", false)
	crew := a.group("crew", "gus")
	img := a.pushRandom("admin", "shared/app:1")
	a.setPrivate("shared/app", "admin", true)
	a.grant(a.namespace("shared"), "admin", "collaborator", nil, []string{"crew"})
	manifest, err := img.RawManifest()
	if err != nil {
		t.Fatal(err)
	}
	mt, err := img.MediaType()
	if err != nil {
		t.Fatal(err)
	}
	put := func(s *site, authz, tag string) v2Result {
		return s.v2(http.MethodPut, "/v2/shared/app/manifests/"+tag, authz, manifest, "Content-Type", string(mt))
	}

	issued, granted := b.registryToken("gus", "shared/app", "pull", "push")
	if !slices.Equal(granted, []string{"pull", "push"}) {
		t.Fatalf("gus's token grants %v", granted)
	}
	if r := put(b, "Bearer "+issued, "before"); r.status != 201 {
		t.Fatalf("push with the group's role: %d %s", r.status, r.body)
	}

	a.admin(http.MethodDelete, "/pulp/api/v3/groups/"+crew+"/users/"+gus.ID+"/", nil, 204, nil)
	for _, s := range []*site{b, a} {
		if _, granted := s.registryToken("gus", "shared/app", "pull", "push"); len(granted) != 0 {
			t.Errorf("%s: a fresh token still grants %v", s.srv.Addr, granted)
		}
		if r := put(s, "Bearer "+issued, "after"); r.status != 403 || r.code != "DENIED" {
			t.Errorf("%s: the token issued before still pushes: %d %s", s.srv.Addr, r.status, r.body)
		}
		if r := s.v2(http.MethodGet, "/v2/shared/app/manifests/1", "Bearer "+issued, nil); r.status != 403 || r.code != "DENIED" {
			t.Errorf("%s: the token issued before still pulls: %d %s", s.srv.Addr, r.status, r.body)
		}
		if r := s.v2(http.MethodGet, "/v2/shared/app/manifests/1", basicAuth("gus"), nil); r.status != 403 || r.code != "DENIED" {
			t.Errorf("%s: Basic credentials still pull: %d %s", s.srv.Addr, r.status, r.body)
		}
		if r := s.v2(http.MethodGet, "/v2/_catalog", basicAuth("gus"), nil); strings.Contains(r.body, "shared/app") {
			t.Errorf("%s: the catalog still lists the private image: %s", s.srv.Addr, r.body)
		}
		if status, _ := s.rest(http.MethodGet, a.namespace("shared"), "gus", pw("gus"), nil, nil); status != 404 {
			t.Errorf("%s: gus still sees the private namespace: %d", s.srv.Addr, status)
		}
	}

	a.admin(http.MethodPost, "/pulp/api/v3/groups/"+crew+"/users/", map[string]any{"username": "gus"}, 201, nil)
	token, granted := b.registryToken("gus", "shared/app", "pull", "push")
	if !slices.Equal(granted, []string{"pull", "push"}) {
		t.Fatalf("back in the group, gus's token grants %v", granted)
	}
	if r := put(b, "Bearer "+token, "again"); r.status != 201 {
		t.Fatalf("push back in the group: %d %s", r.status, r.body)
	}
	if r := put(b, "Bearer "+issued, "again-old"); r.status != 201 {
		t.Fatalf("push with the first token back in the group: %d %s", r.status, r.body)
	}
}
