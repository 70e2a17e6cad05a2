package api_test

import (
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/api/apitest"
	"github.com/berth-dev/berth/core"
)

func TestRepositoryCRUD(t *testing.T) {
	each(t, func(t *testing.T, env *apitest.Env) {
		r := createRepo(t, env, "alpha")
		if r.Name != "alpha" || r.PulpType != "test.test" || r.Remote != nil || r.RetainRepoVersions != nil || r.Description != "" {
			t.Errorf("created %+v", r)
		}
		ref, err := api.ParseHref(r.Href)
		if err != nil || ref.Collection != api.Repositories || ref.Type != "test.test" || !strings.HasPrefix(r.Href, reposPath) {
			t.Fatalf("href %q: %+v %v", r.Href, ref, err)
		}
		if r.LatestVersionHref != r.Href+"versions/0/" || r.VersionsHref != r.Href+"versions/" {
			t.Errorf("version hrefs %q %q", r.LatestVersionHref, r.VersionsHref)
		}

		var got api.RepositoryResponse
		env.Call(http.MethodGet, r.Href, nil, http.StatusOK, &got)
		if !reflect.DeepEqual(got, r) {
			t.Errorf("read %+v, want %+v", got, r)
		}

		rem := createRemote(t, env, map[string]any{"name": "up", "url": "https://registry.example.com"})
		env.Call(http.MethodPatch, r.Href, map[string]any{"description": "first", "retain_repo_versions": 3, "remote": rem.Href}, http.StatusOK, &got)
		if got.Description != "first" || got.RetainRepoVersions == nil || *got.RetainRepoVersions != 3 || got.Remote == nil || *got.Remote != rem.Href {
			t.Errorf("after PATCH: %+v", got)
		}
		if !got.PulpLastUpdated.After(r.PulpLastUpdated) || !got.PulpCreated.Equal(r.PulpCreated) {
			t.Errorf("timestamps after PATCH: %v %v (before %v %v)", got.PulpCreated, got.PulpLastUpdated, r.PulpCreated, r.PulpLastUpdated)
		}
		// PATCH changes only what it gives.
		env.Call(http.MethodPatch, r.Href, map[string]any{"description": "second"}, http.StatusOK, &got)
		if got.Description != "second" || got.RetainRepoVersions == nil || got.Remote == nil {
			t.Errorf("after second PATCH: %+v", got)
		}
		// PUT resets what it leaves out.
		env.Call(http.MethodPut, r.Href, map[string]any{"name": "alpha"}, http.StatusOK, &got)
		if got.Description != "" || got.RetainRepoVersions != nil || got.Remote != nil {
			t.Errorf("after PUT: %+v", got)
		}
		wantFields(t, env.Do(http.MethodPatch, r.Href, map[string]any{"name": "beta"}), map[string]string{"name": "renamed"})

		// Typed lists show only their type; the generic list shows all.
		var other api.RepositoryResponse
		env.Call(http.MethodPost, api.TypedListHref(api.Repositories, "test.other"), map[string]any{"name": "omega"}, http.StatusCreated, &other)
		var page api.Page[api.RepositoryResponse]
		env.Call(http.MethodGet, reposPath, nil, http.StatusOK, &page)
		if page.Count != 1 || len(page.Results) != 1 || page.Results[0].Href != r.Href {
			t.Errorf("typed list: %+v", page)
		}
		env.Call(http.MethodGet, api.Prefix+"repositories/", nil, http.StatusOK, &page)
		if page.Count != 2 || page.Results[0].Name != "alpha" || page.Results[1].Href != other.Href {
			t.Errorf("generic list: %+v", page)
		}
		// An object of another type is not found under this type's path.
		wantDetail(t, env.Do(http.MethodGet, strings.Replace(other.Href, "test/other", "test/test", 1), nil), http.StatusNotFound, "not found")

		// DELETE dispatches a task; the repository goes when it runs.
		body := env.Call(http.MethodDelete, r.Href, nil, http.StatusAccepted, nil)
		var acc api.TaskAccepted
		if err := jsonUnmarshal(body, &acc); err != nil || !strings.HasPrefix(acc.Task, api.Prefix+"tasks/") {
			t.Fatalf("202 body %s", body)
		}
		var task api.TaskResponse
		env.Call(http.MethodGet, acc.Task, nil, http.StatusOK, &task)
		if task.Name != api.TaskDeleteRepository || task.State != "waiting" || task.ReservedResourcesRecord[0] != api.RepositoryResource(ref.ID) {
			t.Errorf("task %+v", task)
		}
		env.Call(http.MethodGet, r.Href, nil, http.StatusOK, nil) // not yet
		done := env.RunTask(body)
		if len(done.ProgressReports) != 1 || done.ProgressReports[0].State != "completed" {
			t.Errorf("progress %+v", done.ProgressReports)
		}
		wantDetail(t, env.Do(http.MethodGet, r.Href, nil), http.StatusNotFound, "not found")
		if _, err := env.Store.Repository(t.Context(), ref.ID); !isNotFound(err) {
			t.Errorf("store still has the repository: %v", err)
		}
		wantDetail(t, env.Do(http.MethodDelete, r.Href, nil), http.StatusNotFound, "not found")
	})
}

func TestRepositoryInvalidInput(t *testing.T) {
	each(t, func(t *testing.T, env *apitest.Env) {
		existing := createRepo(t, env, "taken")
		up := createRemote(t, env, map[string]any{"name": "up", "url": "https://example.com"})
		var foreign api.RemoteResponse
		env.Call(http.MethodPost, api.TypedListHref(api.Remotes, "other.thing"), map[string]any{"name": "foreign", "url": "https://example.com"}, http.StatusCreated, &foreign)
		missingRemote := api.RemoteHref("test.test", core.NewID())

		cases := []struct {
			name   string
			body   any
			fields map[string]string
		}{
			{"unknown field", map[string]any{"name": "x", "bogus": 1}, map[string]string{"bogus": api.MsgUnexpected}},
			{"read-only field", map[string]any{"name": "x", "pulp_href": existing.Href}, map[string]string{"pulp_href": api.MsgUnexpected}},
			{"wrong type", map[string]any{"name": 5}, map[string]string{"name": "string"}},
			{"wrong type int", map[string]any{"name": "x", "retain_repo_versions": "three"}, map[string]string{"retain_repo_versions": "integer"}},
			{"missing", map[string]any{"description": "d"}, map[string]string{"name": api.MsgRequired}},
			{"null", map[string]any{"name": nil}, map[string]string{"name": api.MsgNotNull}},
			{"bad name", map[string]any{"name": "no spaces"}, map[string]string{"name": "characters"}},
			{"retain zero", map[string]any{"name": "x", "retain_repo_versions": 0}, map[string]string{"retain_repo_versions": "at least 1"}},
			{"remote missing", map[string]any{"name": "x", "remote": missingRemote}, map[string]string{"remote": "Object does not exist"}},
			{"remote not an href", map[string]any{"name": "x", "remote": "up"}, map[string]string{"remote": "Invalid hyperlink"}},
			{"remote is a repository", map[string]any{"name": "x", "remote": existing.Href}, map[string]string{"remote": "Invalid hyperlink"}},
			{"remote of another plugin", map[string]any{"name": "x", "remote": foreign.Href}, map[string]string{"remote": "Object does not exist"}},
			{"several problems", map[string]any{"bogus": true, "retain_repo_versions": "x"}, map[string]string{"bogus": "", "retain_repo_versions": "", "name": ""}},
			{"not an object", []int{1}, map[string]string{"non_field_errors": "dictionary"}},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				wantFields(t, env.Do(http.MethodPost, reposPath, tc.body), tc.fields)
			})
		}
		wantDetail(t, env.Do(http.MethodPost, reposPath, `{"name": "x"`), http.StatusBadRequest, "JSON parse error")
		wantDetail(t, env.Do(http.MethodPost, reposPath, map[string]any{"name": "taken"}), http.StatusConflict, "already exists")
		r := env.Do(http.MethodPost, reposPath, nil)
		wantFields(t, r, map[string]string{"name": api.MsgRequired})
		req, _ := http.NewRequest(http.MethodPost, env.URL+reposPath, strings.NewReader(`name=x`))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := env.HTTP.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnsupportedMediaType {
			t.Errorf("form body: status %d, want 415", resp.StatusCode)
		}
		big := `{"name": "x", "description": "` + strings.Repeat("a", api.MaxBodySize) + `"}`
		wantDetail(t, env.Do(http.MethodPost, reposPath, big), http.StatusRequestEntityTooLarge, "larger")

		// Nothing was created by the rejected requests.
		var page api.Page[api.RepositoryResponse]
		env.Call(http.MethodGet, api.Prefix+"repositories/", nil, http.StatusOK, &page)
		if page.Count != 1 {
			t.Errorf("%d repositories after rejected creates, want 1: %+v", page.Count, page.Results)
		}

		// A rejected update changes nothing.
		env.Call(http.MethodPatch, existing.Href, map[string]any{"description": "kept", "remote": up.Href}, http.StatusOK, &existing)
		for _, body := range []any{
			map[string]any{"description": "changed", "bogus": 1},
			map[string]any{"description": "changed", "remote": missingRemote},
			map[string]any{"description": "changed", "retain_repo_versions": -1},
			map[string]any{"description": 7},
		} {
			if r := env.Do(http.MethodPatch, existing.Href, body); r.Status != http.StatusBadRequest {
				t.Errorf("PATCH %v: status %d, want 400; body %s", body, r.Status, r.Body)
			}
		}
		wantFields(t, env.Do(http.MethodPut, existing.Href, map[string]any{"description": "changed"}), map[string]string{"name": api.MsgRequired})
		var after api.RepositoryResponse
		env.Call(http.MethodGet, existing.Href, nil, http.StatusOK, &after)
		if !reflect.DeepEqual(after, existing) {
			t.Errorf("rejected updates changed the repository:\n%+v\nwant\n%+v", after, existing)
		}
	})
}

func TestRepositoryList(t *testing.T) {
	each(t, func(t *testing.T, env *apitest.Env) {
		var made []api.RepositoryResponse
		for i := range 5 {
			made = append(made, createRepo(t, env, fmt.Sprintf("r%d", i)))
			time.Sleep(2 * time.Millisecond) // distinct creation times
		}
		env.Call(http.MethodPost, api.TypedListHref(api.Repositories, "test.other"), map[string]any{"name": "Other"}, http.StatusCreated, nil)
		addVersions(t, env, made[3].Href, 2)

		names := func(p api.Page[api.RepositoryResponse]) string {
			var out []string
			for _, r := range p.Results {
				out = append(out, r.Name)
			}
			return strings.Join(out, ",")
		}
		var page api.Page[api.RepositoryResponse]

		// Pagination: next and previous carry the query.
		env.Call(http.MethodGet, reposPath+"?limit=2&name__startswith=r", nil, http.StatusOK, &page)
		if page.Count != 5 || names(page) != "r0,r1" || page.Previous != nil || page.Next == nil {
			t.Fatalf("page 1: %+v", page)
		}
		if want := reposPath + "?limit=2&name__startswith=r&offset=2"; *page.Next != want {
			t.Errorf("next %q, want %q", *page.Next, want)
		}
		env.Call(http.MethodGet, *page.Next, nil, http.StatusOK, &page)
		if names(page) != "r2,r3" || page.Previous == nil || *page.Previous != reposPath+"?limit=2&name__startswith=r" {
			t.Errorf("page 2: %+v", page)
		}
		env.Call(http.MethodGet, *page.Next, nil, http.StatusOK, &page)
		if names(page) != "r4" || page.Next != nil || *page.Previous != reposPath+"?limit=2&name__startswith=r&offset=2" {
			t.Errorf("page 3: %+v", page)
		}

		created := url.QueryEscape(made[2].PulpCreated.Format(time.RFC3339Nano))
		cases := []struct {
			query, want string
		}{
			{"", "r0,r1,r2,r3,r4"},
			{"ordering=-name", "r4,r3,r2,r1,r0"},
			{"ordering=-latest_version,name", "r3,r0,r1,r2,r4"},
			{"ordering=-pulp_created", "r4,r3,r2,r1,r0"},
			{"name=r2", "r2"},
			{"name__in=r1,r3,nope", "r1,r3"},
			{"name__contains=3", "r3"},
			{"name__icontains=R4", "r4"},
			{"name__startswith=r", "r0,r1,r2,r3,r4"},
			{"latest_version__gte=1", "r3"},
			{"latest_version=0&name__in=r0,r3", "r0"},
			{"pulp_created__gte=" + created, "r2,r3,r4"},
			{"pulp_created__gt=" + created, "r3,r4"},
			{"pulp_created__lte=" + created, "r0,r1,r2"},
			{"pulp_created__lt=" + created, "r0,r1"},
			{"pulp_created=" + created, "r2"},
			{"offset=3", "r3,r4"},
			{"offset=10", ""},
		}
		for _, tc := range cases {
			t.Run(tc.query, func(t *testing.T) {
				env.Call(http.MethodGet, reposPath+"?"+tc.query, nil, http.StatusOK, &page)
				if got := names(page); got != tc.want {
					t.Errorf("?%s: %q, want %q", tc.query, got, tc.want)
				}
			})
		}
		generic := api.Prefix + "repositories/"
		env.Call(http.MethodGet, generic+"?pulp_type=test.other", nil, http.StatusOK, &page)
		if names(page) != "Other" {
			t.Errorf("pulp_type filter: %q", names(page))
		}
		env.Call(http.MethodGet, generic+"?pulp_type__in=test.test,test.other&ordering=pulp_type,name&limit=1", nil, http.StatusOK, &page)
		if page.Count != 6 || names(page) != "Other" {
			t.Errorf("pulp_type__in: %d %q", page.Count, names(page))
		}

		bad := []struct{ query, field string }{
			{"bogus=1", "bogus"},
			{"name__regex=x", "name__regex"},
			{"pulp_type=test.test", "pulp_type"}, // not a filter of a typed list
			{"ordering=bogus", "ordering"},
			{"ordering=name,-nope", "ordering"},
			{"limit=0", "limit"},
			{"limit=abc", "limit"},
			{"limit=100000", "limit"},
			{"offset=-1", "offset"},
			{"pulp_created__gte=yesterday", "pulp_created__gte"},
			{"latest_version=x", "latest_version"},
		}
		for _, tc := range bad {
			t.Run("bad "+tc.query, func(t *testing.T) {
				wantFields(t, env.Do(http.MethodGet, reposPath+"?"+tc.query, nil), map[string]string{tc.field: ""})
			})
		}
	})
}

func TestUnknownRoutes(t *testing.T) {
	each(t, func(t *testing.T, env *apitest.Env) {
		for _, p := range []string{
			api.Prefix + "nope/",
			api.Prefix + "repositories/nope/nope/",
			api.Prefix + "repositories/test/test/" + core.NewID() + "/",
			api.Prefix + "tasks/" + core.NewID() + "/",
		} {
			wantDetail(t, env.Do(http.MethodGet, p, nil), http.StatusNotFound, "ot found")
		}
		wantDetail(t, env.Do(http.MethodDelete, reposPath, nil), http.StatusMethodNotAllowed, "not allowed")
		// Without the trailing slash, as Pulp clients sometimes ask.
		env.Call(http.MethodGet, strings.TrimSuffix(reposPath, "/"), nil, http.StatusOK, nil)
	})
}
