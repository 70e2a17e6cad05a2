package api_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"strings"
	"testing"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/api/apitest"
	"github.com/berth-dev/berth/core"
)

// testPlugin brings the types the tests use: test.test and test.other
// repositories, remotes and distributions.
type testPlugin struct{}

func (testPlugin) Name() string      { return "test" }
func (testPlugin) Migrations() fs.FS { return nil }
func (testPlugin) Version() string   { return "1.2.3" }
func (testPlugin) Types() core.Types {
	return core.Types{
		Content:       []string{"test.item"},
		Repositories:  []string{"test.test", "test.other"},
		Remotes:       []string{"test.test"},
		Distributions: []string{"test.test"},
	}
}

// otherPlugin is a second plugin, whose objects test.test objects may not
// point at.
type otherPlugin struct{}

func (otherPlugin) Name() string      { return "other" }
func (otherPlugin) Migrations() fs.FS { return nil }
func (otherPlugin) Types() core.Types {
	return core.Types{Repositories: []string{"other.thing"}, Remotes: []string{"other.thing"}}
}

// Paths of the test types' endpoints.
var (
	reposPath   = api.TypedListHref(api.Repositories, "test.test")
	remotesPath = api.TypedListHref(api.Remotes, "test.test")
	distsPath   = api.TypedListHref(api.Distributions, "test.test")
)

func each(t *testing.T, fn func(t *testing.T, env *apitest.Env)) {
	apitest.Each(t, apitest.Options{Plugins: []core.Plugin{testPlugin{}, otherPlugin{}}}, fn)
}

// createRepo makes a test.test repository through the API.
func createRepo(t *testing.T, env *apitest.Env, name string) api.RepositoryResponse {
	t.Helper()
	var r api.RepositoryResponse
	env.Call(http.MethodPost, reposPath, map[string]any{"name": name}, http.StatusCreated, &r)
	return r
}

func createRemote(t *testing.T, env *apitest.Env, body map[string]any) api.RemoteResponse {
	t.Helper()
	var r api.RemoteResponse
	env.Call(http.MethodPost, remotesPath, body, http.StatusCreated, &r)
	return r
}

// addVersions makes n new versions of a repository, each adding one item.
func addVersions(t *testing.T, env *apitest.Env, repoHref string, n int) {
	t.Helper()
	ref, err := api.ParseHref(repoHref)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	for i := range n {
		c, _, err := env.Store.GetOrCreateContent(ctx, "test.item", fmt.Sprintf("%s-%d", ref.ID, i))
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := env.Store.NewVersion(ctx, ref.ID, "test", func(b *core.VersionBuilder) error {
			return b.Add(ctx, c.ID)
		}); err != nil {
			t.Fatal(err)
		}
	}
}

// wantFields checks that a 400 body names exactly the given fields, each
// with a message containing the given text (when not empty).
func wantFields(t *testing.T, r *apitest.Response, fields map[string]string) {
	t.Helper()
	if r.Status != http.StatusBadRequest {
		t.Fatalf("status %d, want 400; body %s", r.Status, r.Body)
	}
	var got map[string][]string
	r.JSON(t, &got)
	if len(got) != len(fields) {
		t.Errorf("body %s names %d fields, want %v", r.Body, len(got), fields)
	}
	for f, text := range fields {
		msgs, ok := got[f]
		if !ok {
			t.Errorf("body %s does not name %q", r.Body, f)
			continue
		}
		if text != "" && !strings.Contains(strings.Join(msgs, " "), text) {
			t.Errorf("%s: messages %q do not say %q", f, msgs, text)
		}
	}
}

// wantDetail checks the status and that {"detail": …} contains text.
func wantDetail(t *testing.T, r *apitest.Response, status int, text string) {
	t.Helper()
	if r.Status != status {
		t.Fatalf("status %d, want %d; body %s", r.Status, status, r.Body)
	}
	var got struct {
		Detail string `json:"detail"`
	}
	r.JSON(t, &got)
	if got.Detail == "" || !strings.Contains(got.Detail, text) {
		t.Errorf("detail %q does not say %q (body %s)", got.Detail, text, r.Body)
	}
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

func isNotFound(err error) bool { return errors.Is(err, core.ErrNotFound) }

// fakeTasks is a TaskService for tests that dispatch nothing.
type fakeTasks struct{ api.TaskService }
