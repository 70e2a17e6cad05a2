package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/api/apitest"
)

func TestRepositoryVersions(t *testing.T) {
	each(t, func(t *testing.T, env *apitest.Env) {
		repo := createRepo(t, env, "versioned")
		addVersions(t, env, repo.Href, 3)

		var page api.Page[api.RepositoryVersionResponse]
		env.Call(http.MethodGet, repo.VersionsHref, nil, http.StatusOK, &page)
		if page.Count != 4 || page.Results[0].Number != 3 || page.Results[3].Number != 0 {
			t.Fatalf("versions: %+v", page)
		}
		env.Call(http.MethodGet, repo.VersionsHref+"?ordering=number&number__gte=2", nil, http.StatusOK, &page)
		if page.Count != 2 || page.Results[0].Number != 2 || page.Results[1].Number != 3 {
			t.Errorf("filtered versions: %+v", page)
		}
		wantFields(t, env.Do(http.MethodGet, repo.VersionsHref+"?name=x", nil), map[string]string{"name": "Unknown filter"})

		v2href := repo.Href + "versions/2/"
		raw := env.Call(http.MethodGet, v2href, nil, http.StatusOK, nil)
		var v2 api.RepositoryVersionResponse
		if err := jsonUnmarshal(raw, &v2); err != nil {
			t.Fatal(err)
		}
		if v2.Href != v2href || v2.Number != 2 || v2.Repository != repo.Href || v2.BaseVersion != nil {
			t.Errorf("version 2: %+v", v2)
		}
		cs := v2.ContentSummary
		if cs.Added["test.item"].Count != 1 || cs.Present["test.item"].Count != 2 || len(cs.Removed) != 0 {
			t.Errorf("content summary: %+v", cs)
		}
		if strings.Contains(string(raw), `"href"`) {
			t.Errorf("the content summary has hrefs: %s", raw)
		}

		for _, p := range []string{"versions/9/", "versions/abc/", "versions/-1/"} {
			wantDetail(t, env.Do(http.MethodGet, repo.Href+p, nil), http.StatusNotFound, "ot found")
		}
		wantDetail(t, env.Do(http.MethodDelete, repo.Href+"versions/3/", nil), http.StatusConflict, "latest")

		// Deleting version 1 folds its change into version 2.
		body := env.Call(http.MethodDelete, repo.Href+"versions/1/", nil, http.StatusAccepted, nil)
		var acc api.TaskAccepted
		_ = jsonUnmarshal(body, &acc)
		var task api.TaskResponse
		env.Call(http.MethodGet, acc.Task, nil, http.StatusOK, &task)
		if task.Name != api.TaskDeleteRepositoryVersion || task.State != "waiting" {
			t.Errorf("task %+v", task)
		}
		env.RunTask(body)
		wantDetail(t, env.Do(http.MethodGet, repo.Href+"versions/1/", nil), http.StatusNotFound, "ot found")
		env.Call(http.MethodGet, v2href, nil, http.StatusOK, &v2)
		if cs := v2.ContentSummary; cs.Added["test.item"].Count != 2 || cs.Present["test.item"].Count != 2 {
			t.Errorf("version 2 after deleting 1: %+v", cs)
		}

		// A version a distribution serves cannot go: the task fails.
		env.Call(http.MethodPost, distsPath, map[string]any{"name": "pin", "base_path": "pin", "repository_version": v2href}, http.StatusCreated, nil)
		body = env.Call(http.MethodDelete, v2href, nil, http.StatusAccepted, nil)
		_ = jsonUnmarshal(body, &acc)
		task = env.WaitTask(acc.Task)
		if task.State != "failed" || task.Error == nil || !strings.Contains(task.Error.Description, "distribution") {
			t.Errorf("task deleting a served version: %+v (error %+v)", task, task.Error)
		}
		env.Call(http.MethodGet, v2href, nil, http.StatusOK, nil)
	})
}
