package api_test

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/api/apitest"
	"github.com/berth-dev/berth/core"
)

func TestTasks(t *testing.T) {
	each(t, func(t *testing.T, env *apitest.Env) {
		repoA := createRepo(t, env, "a")
		repoB := createRepo(t, env, "b")
		refA, _ := api.ParseHref(repoA.Href)
		var accA, accB api.TaskAccepted
		_ = jsonUnmarshal(env.Call(http.MethodDelete, repoA.Href, nil, http.StatusAccepted, nil), &accA)
		time.Sleep(2 * time.Millisecond)
		_ = jsonUnmarshal(env.Call(http.MethodDelete, repoB.Href, nil, http.StatusAccepted, nil), &accB)

		var ta api.TaskResponse
		env.Call(http.MethodGet, accA.Task, nil, http.StatusOK, &ta)
		if ta.Href != accA.Task || ta.State != "waiting" || ta.Name != api.TaskDeleteRepository || ta.Worker != nil || ta.StartedAt != nil ||
			ta.Queue != "default" || !slices.Equal(ta.ReservedResourcesRecord, []string{api.RepositoryResource(refA.ID)}) ||
			ta.CreatedResources == nil || ta.ProgressReports == nil || ta.Error != nil {
			t.Errorf("task %+v", ta)
		}

		hrefs := func(p api.Page[api.TaskResponse]) string {
			var out []string
			for _, r := range p.Results {
				switch r.Href {
				case accA.Task:
					out = append(out, "A")
				case accB.Task:
					out = append(out, "B")
				default:
					out = append(out, r.Href)
				}
			}
			return strings.Join(out, ",")
		}
		created := url.QueryEscape(ta.PulpCreated.Format(time.RFC3339Nano))
		var page api.Page[api.TaskResponse]
		for _, tc := range []struct{ query, want string }{
			{"", "B,A"},
			{"ordering=pulp_created", "A,B"},
			{"ordering=-name", "B,A"},
			{"limit=1", "B"},
			{"limit=1&offset=1", "A"},
			{"state=waiting", "B,A"},
			{"state=completed", ""},
			{"state__in=running,waiting", "B,A"},
			{"name=core.delete_repository", "B,A"},
			{"name__contains=delete_repo", "B,A"},
			{"name__contains=sync", ""},
			{"reserved_resources=" + url.QueryEscape(repoA.Href), "A"},
			{"reserved_resources=" + url.QueryEscape(api.RepositoryResource(refA.ID)), "A"},
			{"pulp_created__gte=" + created, "B,A"},
			{"pulp_created__gt=" + created, "B"},
			{"pulp_created__lte=" + created, "A"},
			{"pulp_created__lt=" + created, ""},
			{"worker=nobody", ""},
		} {
			env.Call(http.MethodGet, api.Prefix+"tasks/?"+tc.query, nil, http.StatusOK, &page)
			if got := hrefs(page); got != tc.want {
				t.Errorf("?%s: %q, want %q", tc.query, got, tc.want)
			}
		}
		env.Call(http.MethodGet, api.Prefix+"tasks/?limit=1", nil, http.StatusOK, &page)
		if page.Count != 2 || page.Next == nil || *page.Next != api.Prefix+"tasks/?limit=1&offset=1" {
			t.Errorf("paged: %+v", page)
		}
		for _, tc := range []struct{ query, field string }{
			{"state=bogus", "state"},
			{"ordering=name,state", "ordering"},
			{"ordering=args", "ordering"},
			{"args=1", "args"},
			{"pulp_created=2024-01-01", "pulp_created"},
			{"parent_task=" + url.QueryEscape(repoA.Href), "parent_task"},
		} {
			wantFields(t, env.Do(http.MethodGet, api.Prefix+"tasks/?"+tc.query, nil), map[string]string{tc.field: ""})
		}

		// Cancel a waiting task: it is canceled at once.
		wantFields(t, env.Do(http.MethodPatch, accA.Task, map[string]any{"state": "running"}), map[string]string{"state": "canceled"})
		wantFields(t, env.Do(http.MethodPatch, accA.Task, map[string]any{"state": "canceled", "force": true}), map[string]string{"force": api.MsgUnexpected})
		wantFields(t, env.Do(http.MethodPatch, accA.Task, map[string]any{}), map[string]string{"state": api.MsgRequired})
		env.Call(http.MethodGet, accA.Task, nil, http.StatusOK, &ta)
		if ta.State != "waiting" {
			t.Fatalf("a rejected cancel changed the task: %+v", ta)
		}
		env.Call(http.MethodPatch, accA.Task, map[string]any{"state": "canceled"}, http.StatusOK, &ta)
		if ta.State != "canceled" || ta.FinishedAt == nil {
			t.Errorf("canceled task %+v", ta)
		}
		wantDetail(t, env.Do(http.MethodPatch, accA.Task, map[string]any{"state": "canceled"}), http.StatusConflict, "canceled")
		wantDetail(t, env.Do(http.MethodPatch, api.TaskHref(core.NewID()), map[string]any{"state": "canceled"}), http.StatusNotFound, "not found")

		// The other runs; a finished task cannot be canceled.
		env.StartWorkers()
		tb := env.WaitTask(accB.Task)
		if tb.State != "completed" || tb.Worker == nil || tb.StartedAt == nil || tb.FinishedAt == nil {
			t.Errorf("completed task %+v", tb)
		}
		wantDetail(t, env.Do(http.MethodPatch, accB.Task, map[string]any{"state": "canceled"}), http.StatusConflict, "completed")
		env.Call(http.MethodGet, api.Prefix+"tasks/?worker="+url.QueryEscape(*tb.Worker), nil, http.StatusOK, &page)
		if hrefs(page) != "B" {
			t.Errorf("worker filter: %q", hrefs(page))
		}
		env.Call(http.MethodGet, api.Prefix+"tasks/?state=canceled", nil, http.StatusOK, &page)
		if hrefs(page) != "A" {
			t.Errorf("state=canceled: %q", hrefs(page))
		}
		// The canceled deletion did nothing; the completed one did its work.
		env.Call(http.MethodGet, repoA.Href, nil, http.StatusOK, nil)
		wantDetail(t, env.Do(http.MethodGet, repoB.Href, nil), http.StatusNotFound, "not found")
	})
}

func TestWorkers(t *testing.T) {
	each(t, func(t *testing.T, env *apitest.Env) {
		var page api.Page[api.WorkerResponse]
		env.Call(http.MethodGet, api.Prefix+"workers/", nil, http.StatusOK, &page)
		if page.Count != 0 || page.Results == nil {
			t.Errorf("workers before start: %+v", page)
		}
		env.StartWorkers()
		name := env.Tasks.Workers()[0].Name()
		deadline := time.Now().Add(apitest.WaitTimeout)
		for page.Count == 0 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
			env.Call(http.MethodGet, api.Prefix+"workers/?online=true", nil, http.StatusOK, &page)
		}
		if page.Count != 1 {
			t.Fatalf("online workers: %+v", page)
		}
		w := page.Results[0]
		if w.Name != name || !w.Online || w.Href != api.WorkerHref(name) || w.LastHeartbeat.IsZero() || w.Queues["default"] != 1 || w.CurrentTask != nil {
			t.Errorf("worker %+v", w)
		}
		var got api.WorkerResponse
		env.Call(http.MethodGet, w.Href, nil, http.StatusOK, &got)
		if got.Name != name {
			t.Errorf("read %+v", got)
		}
		for _, tc := range []struct {
			query string
			want  int64
		}{
			{"online=false", 0},
			{"name=" + url.QueryEscape(name), 1},
			{"name__contains=" + url.QueryEscape(name[:3]), 1},
			{"name__in=a,b", 0},
			{"last_heartbeat__gte=" + url.QueryEscape(time.Now().Add(-time.Hour).Format(time.RFC3339)), 1},
			{"last_heartbeat__lt=2001-01-01", 0},
			{"ordering=-last_heartbeat", 1},
		} {
			env.Call(http.MethodGet, api.Prefix+"workers/?"+tc.query, nil, http.StatusOK, &page)
			if page.Count != tc.want {
				t.Errorf("?%s: %d workers, want %d", tc.query, page.Count, tc.want)
			}
		}
		wantFields(t, env.Do(http.MethodGet, api.Prefix+"workers/?busy=1", nil), map[string]string{"busy": ""})
		wantDetail(t, env.Do(http.MethodGet, api.WorkerHref("nobody"), nil), http.StatusNotFound, "not found")
	})
}
