package app

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/berth-dev/berth/plugins/container"
)

// TestDeletedNamespaceForgetsRoles: deleting a namespace drops the roles
// bound to it, so whoever makes a namespace of that name again is its only
// owner and the old owner keeps nothing.
func TestDeletedNamespaceForgetsRoles(t *testing.T) {
	s := newServer(t)
	ctx := context.Background()
	admin := basic("admin", adminPassword)
	for _, u := range []string{"olive", "nora"} {
		s.want(s.do(http.MethodPost, "/pulp/api/v3/users/", admin, map[string]any{"username": u, "password": u + "-password-1"}), 201)
	}
	olive, nora := basic("olive", "olive-password-1"), basic("nora", "nora-password-1")
	s.push(olive, "shared/app", "1")
	before, err := s.app.Auth.NamespaceRoleBindings(ctx, "shared")
	if err != nil || len(before) == 0 {
		t.Fatalf("the creator holds no role on the new namespace: %v %v", before, err)
	}
	var list struct {
		Results []struct {
			Href string `json:"pulp_href"`
		} `json:"results"`
	}
	s.json(s.want(s.do(http.MethodGet, "/pulp/api/v3/pulp_container/namespaces/?name=shared", admin, nil), 200), &list)
	if len(list.Results) != 1 {
		t.Fatalf("namespaces: %+v", list)
	}
	// The deletion as its task runs it (the REST route dispatches this).
	id := strings.TrimSuffix(list.Results[0].Href, "/")
	id = id[strings.LastIndex(id, "/")+1:]
	if _, err := s.app.Container.DeleteNamespace(ctx, container.Identity{Username: "olive"}, id, true); err != nil {
		t.Fatal(err)
	}
	after, err := s.app.Auth.NamespaceRoleBindings(ctx, "shared")
	if err != nil || len(after) != 0 {
		t.Fatalf("roles left on the deleted namespace: %+v %v", after, err)
	}
	// nora makes it again: she alone owns it; olive may no longer push.
	s.push(nora, "shared/app", "1")
	again, err := s.app.Auth.NamespaceRoleBindings(ctx, "shared")
	if err != nil || len(again) != 1 {
		t.Fatalf("bindings of the new namespace: %+v %v", again, err)
	}
	s.want(s.do(http.MethodPost, "/v2/shared/app/blobs/uploads/", olive, nil), 403)
}
