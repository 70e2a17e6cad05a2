package api_test

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/api/apitest"
	"github.com/berth-dev/berth/core"
)

func TestDistributionCRUD(t *testing.T) {
	each(t, func(t *testing.T, env *apitest.Env) {
		repo := createRepo(t, env, "app")
		addVersions(t, env, repo.Href, 2)
		v1 := repo.Href + "versions/1/"

		var d api.DistributionResponse
		env.Call(http.MethodPost, distsPath, map[string]any{"name": "app", "base_path": "team/app", "repository": repo.Href}, http.StatusCreated, &d)
		if d.Name != "app" || d.BasePath != "team/app" || d.Repository == nil || *d.Repository != repo.Href || d.RepositoryVersion != nil || d.Private || d.PulpType != "test.test" {
			t.Errorf("created %+v", d)
		}
		var got api.DistributionResponse
		env.Call(http.MethodGet, d.Href, nil, http.StatusOK, &got)
		if got.Href != d.Href || *got.Repository != repo.Href {
			t.Errorf("read %+v", got)
		}

		var pinned api.DistributionResponse
		env.Call(http.MethodPost, distsPath, map[string]any{"name": "pinned", "base_path": "team/pinned", "repository_version": v1, "private": true}, http.StatusCreated, &pinned)
		if pinned.RepositoryVersion == nil || *pinned.RepositoryVersion != v1 || pinned.Repository != nil || !pinned.Private {
			t.Errorf("pinned %+v", pinned)
		}

		var page api.Page[api.DistributionResponse]
		for _, tc := range []struct {
			query string
			want  int
		}{
			{"", 2},
			{"repository=" + url.QueryEscape(repo.Href), 1},
			{"repository__in=" + url.QueryEscape(repo.Href+","+api.RepositoryHref("test.test", core.NewID())), 1},
			{"private=true", 1},
			{"private=false", 1},
			{"base_path__startswith=team/", 2},
			{"base_path=team/app", 1},
			{"name__icontains=PIN", 1},
		} {
			env.Call(http.MethodGet, distsPath+"?"+tc.query, nil, http.StatusOK, &page)
			if int(page.Count) != tc.want {
				t.Errorf("?%s: %d distributions, want %d", tc.query, page.Count, tc.want)
			}
		}
		wantFields(t, env.Do(http.MethodGet, distsPath+"?repository=nonsense", nil), map[string]string{"repository": "Invalid hyperlink"})
		wantFields(t, env.Do(http.MethodGet, distsPath+"?private=maybe", nil), map[string]string{"private": "true or false"})
		env.Call(http.MethodGet, api.Prefix+"distributions/?pulp_type=test.test", nil, http.StatusOK, &page)
		if page.Count != 2 {
			t.Errorf("generic list: %+v", page)
		}

		// PATCH switches from the repository to a pinned version; PUT resets.
		env.Call(http.MethodPatch, d.Href, map[string]any{"repository": nil, "repository_version": v1}, http.StatusOK, &got)
		if got.Repository != nil || got.RepositoryVersion == nil || *got.RepositoryVersion != v1 {
			t.Errorf("after PATCH %+v", got)
		}
		env.Call(http.MethodPut, d.Href, map[string]any{"name": "app", "base_path": "team/app2"}, http.StatusOK, &got)
		if got.Repository != nil || got.RepositoryVersion != nil || got.BasePath != "team/app2" || got.Private {
			t.Errorf("after PUT %+v", got)
		}
		env.Call(http.MethodPatch, d.Href, map[string]any{"repository": repo.Href}, http.StatusOK, &got)

		// Deleting the repository leaves the distribution serving nothing.
		env.RunTask(env.Call(http.MethodDelete, repo.Href, nil, http.StatusAccepted, nil))
		env.Call(http.MethodGet, d.Href, nil, http.StatusOK, &got)
		if got.Repository != nil {
			t.Errorf("distribution still serves the deleted repository: %+v", got)
		}
		env.Call(http.MethodDelete, d.Href, nil, http.StatusNoContent, nil)
		wantDetail(t, env.Do(http.MethodGet, d.Href, nil), http.StatusNotFound, "not found")
		wantDetail(t, env.Do(http.MethodDelete, d.Href, nil), http.StatusNotFound, "not found")
	})
}

func TestDistributionInvalidInput(t *testing.T) {
	each(t, func(t *testing.T, env *apitest.Env) {
		repo := createRepo(t, env, "app")
		var foreign api.RepositoryResponse
		env.Call(http.MethodPost, api.TypedListHref(api.Repositories, "other.thing"), map[string]any{"name": "foreign"}, http.StatusCreated, &foreign)
		var d api.DistributionResponse
		env.Call(http.MethodPost, distsPath, map[string]any{"name": "app", "base_path": "app", "repository": repo.Href}, http.StatusCreated, &d)

		cases := []struct {
			name   string
			body   map[string]any
			fields map[string]string
		}{
			{"missing", map[string]any{}, map[string]string{"name": api.MsgRequired, "base_path": api.MsgRequired}},
			{"unknown", map[string]any{"name": "n", "base_path": "n", "content_guard": nil}, map[string]string{"content_guard": api.MsgUnexpected}},
			{"bad base path", map[string]any{"name": "n", "base_path": "Upper/Case"}, map[string]string{"base_path": "lowercase"}},
			{"private type", map[string]any{"name": "n", "base_path": "n", "private": "no"}, map[string]string{"private": "boolean"}},
			{"missing repository", map[string]any{"name": "n", "base_path": "n", "repository": api.RepositoryHref("test.test", core.NewID())}, map[string]string{"repository": "Object does not exist"}},
			{"repository of another type path", map[string]any{"name": "n", "base_path": "n", "repository": api.RepositoryHref("test.other", repo.Href[len(reposPath):len(repo.Href)-1])}, map[string]string{"repository": "Object does not exist"}},
			{"repository of another plugin", map[string]any{"name": "n", "base_path": "n", "repository": foreign.Href}, map[string]string{"repository": "Object does not exist"}},
			{"repository not an href", map[string]any{"name": "n", "base_path": "n", "repository": "app"}, map[string]string{"repository": "Invalid hyperlink"}},
			{"missing version", map[string]any{"name": "n", "base_path": "n", "repository_version": repo.Href + "versions/7/"}, map[string]string{"repository_version": "Object does not exist"}},
			{"version href is a repository", map[string]any{"name": "n", "base_path": "n", "repository_version": repo.Href}, map[string]string{"repository_version": "Invalid hyperlink"}},
			{"both", map[string]any{"name": "n", "base_path": "n", "repository": repo.Href, "repository_version": repo.LatestVersionHref}, map[string]string{"repository": "either"}},
			{"two bad hrefs", map[string]any{"name": "n", "base_path": "n", "repository": "x", "repository_version": "y"}, map[string]string{"repository": "", "repository_version": ""}},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				wantFields(t, env.Do(http.MethodPost, distsPath, tc.body), tc.fields)
			})
		}
		wantDetail(t, env.Do(http.MethodPost, distsPath, map[string]any{"name": "other", "base_path": "app"}), http.StatusConflict, "already exists")
		wantDetail(t, env.Do(http.MethodPost, distsPath, map[string]any{"name": "app", "base_path": "other"}), http.StatusConflict, "already exists")

		var page api.Page[api.DistributionResponse]
		env.Call(http.MethodGet, distsPath, nil, http.StatusOK, &page)
		if page.Count != 1 {
			t.Errorf("%d distributions after rejected creates, want 1", page.Count)
		}
		before := env.Call(http.MethodGet, d.Href, nil, http.StatusOK, nil)
		for _, body := range []map[string]any{
			{"base_path": "new", "repository": "bad"},
			{"base_path": "new", "bogus": 1},
			{"base_path": "BAD"},
		} {
			if r := env.Do(http.MethodPatch, d.Href, body); r.Status != http.StatusBadRequest {
				t.Errorf("PATCH %v: %d %s", body, r.Status, r.Body)
			}
		}
		if after := env.Call(http.MethodGet, d.Href, nil, http.StatusOK, nil); string(after) != string(before) {
			t.Errorf("rejected updates changed the distribution:\n%s\nwant\n%s", after, before)
		}
	})
}
