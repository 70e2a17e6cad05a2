package api_test

import (
	"errors"
	"testing"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/core"
)

func TestHrefs(t *testing.T) {
	id := "0b9e2f5c-6d8a-4a57-9f5e-3c2b1a0d9e8f"
	cases := []struct {
		href string
		want api.Ref
	}{
		{api.RepositoryHref("container.container", id), api.Ref{Collection: "repositories", Type: "container.container", ID: id, Version: -1}},
		{api.VersionHref("container.container", id, 12), api.Ref{Collection: "repositories", Type: "container.container", ID: id, Version: 12}},
		{api.RemoteHref("test.test", id), api.Ref{Collection: "remotes", Type: "test.test", ID: id, Version: -1}},
		{api.DistributionHref("test.test", id), api.Ref{Collection: "distributions", Type: "test.test", ID: id, Version: -1}},
		{api.TaskHref(id), api.Ref{Collection: "tasks", ID: id, Version: -1}},
		{api.WorkerHref("host-1 a/b"), api.Ref{Collection: "workers", ID: "host-1 a/b", Version: -1}},
	}
	for _, tc := range cases {
		got, err := api.ParseHref(tc.href)
		if err != nil || got != tc.want {
			t.Errorf("ParseHref(%q) = %+v, %v; want %+v", tc.href, got, err, tc.want)
		}
		if got.String() != tc.href {
			t.Errorf("%+v.String() = %q, want %q", got, got.String(), tc.href)
		}
	}
	if got := api.TaskHref(id); got != "/pulp/api/v3/tasks/"+id+"/" {
		t.Errorf("TaskHref = %q", got)
	}
	if got, err := api.ParseHref("https://berth.example.com/pulp/api/v3/tasks/" + id); err != nil || got.ID != id {
		t.Errorf("absolute URL without slash: %+v %v", got, err)
	}
	for _, bad := range []string{
		"", "tasks", "/pulp/api/v3/", "/pulp/api/v3/tasks/", "/api/v1/tasks/x/", "/pulp/api/v3/a/b/c/",
		"/pulp/api/v3/repositories/t/t/" + id + "/history/1/", "/pulp/api/v3/repositories/t/t/" + id + "/versions/-1/",
		"/pulp/api/v3/repositories/t/t/" + id + "/versions/01/", "/pulp/api/v3/tasks//", "://bad",
	} {
		if _, err := api.ParseHref(bad); !errors.Is(err, core.ErrInvalid) {
			t.Errorf("ParseHref(%q): %v, want ErrInvalid", bad, err)
		}
	}
	if api.TypePath("container.container") != "container/container" || api.TypedListHref(api.Remotes, "a.b") != "/pulp/api/v3/remotes/a/b/" {
		t.Error("type paths")
	}
}
