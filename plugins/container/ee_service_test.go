package container_test

import (
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/core"
	"github.com/berth-dev/berth/plugins/container"
)

func TestImageManifestsExpandIndexes(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		amd, arm := newImage(1, "amd64"), newImage(1, "arm64")
		e.mustPushImage("multi/app", amd.digest.String(), amd)
		e.mustPushImage("multi/app", arm.digest.String(), arm)
		idx := newIndex(mtOCIIndex, amd, arm)
		e.mustPushImage("multi/app", "1", idx)
		solo := newImage(2, "amd64")
		e.mustPushImage("multi/app", "solo", solo)

		list, total, err := e.plugin.ListImageManifests(ctx, "multi/app", container.ImageFilter{}, container.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if total != 2 || list[0].Digest != solo.digest.String() || list[1].Digest != idx.digest.String() {
			t.Fatalf("images = %d %+v: the platform manifests must only show inside the index", total, list)
		}
		if got := len(list[1].References); got != 2 || list[1].References[0].Digest != amd.digest.String() {
			t.Fatalf("index platforms = %+v", list[1].References)
		}
		if _, _, err := e.plugin.ListImageManifests(ctx, "multi/app", container.ImageFilter{Digest: "nope"}, container.ListOptions{}); err == nil {
			t.Fatal("a bad digest filter is accepted")
		}

		// Removing the index removes its platform manifests and their blobs.
		res, err := e.plugin.RemoveManifest(ctx, container.Identity{Username: "alice"}, "multi/app", idx.digest)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Manifests) != 3 || strings.Join(res.Tags, ",") != "1" {
			t.Fatalf("removed %+v", res)
		}
		if r := e.do(http.MethodGet, "/v2/multi/app/manifests/"+amd.digest.String(), nil); r.status != http.StatusNotFound {
			t.Fatalf("platform manifest still served: %d", r.status)
		}
		if r := e.do(http.MethodGet, "/v2/multi/app/blobs/"+digest.FromBytes(amd.layers[0]).String(), nil); r.status != http.StatusNotFound {
			t.Fatalf("blob of a removed image still served: %d", r.status)
		}
		if r := e.do(http.MethodGet, "/v2/multi/app/manifests/solo", nil); r.status != http.StatusOK {
			t.Fatalf("other image gone: %d", r.status)
		}

		acts, n, err := e.plugin.Activity(ctx, "multi/app", container.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if n != 5 || acts[0].CreatedBy != "alice" || len(acts[0].Removed) != 4 || len(acts[0].Added) != 0 {
			t.Fatalf("activity = %d %+v", n, acts)
		}
		kinds := []string{}
		for _, c := range acts[0].Removed {
			kinds = append(kinds, c.Kind)
		}
		slices.Sort(kinds)
		if strings.Join(kinds, ",") != "manifest,manifest,manifest,tag" {
			t.Fatalf("removed kinds = %v", kinds)
		}
	})
}

func TestDeleteExecutionEnvironment(t *testing.T) {
	each(t, func(t *testing.T, e *env) {
		img := newImage(1, "amd64")
		e.mustPushImage("team/gone", "1", img)
		e.mustPushImage("team/stays", "1", newImage(1, "amd64"))
		if err := e.plugin.DeleteExecutionEnvironment(ctx, container.Identity{}, "team/gone"); err != nil {
			t.Fatal(err)
		}
		if _, err := e.plugin.GetExecutionEnvironment(ctx, "team/gone"); !errors.Is(err, core.ErrNotFound) {
			t.Fatalf("after delete: %v", err)
		}
		if _, err := e.store.RepositoryByName(ctx, "team/gone"); !errors.Is(err, core.ErrNotFound) {
			t.Fatalf("repository left: %v", err)
		}
		list, total, err := e.plugin.ListExecutionEnvironments(ctx, core.ListQuery{}, container.Visible{All: true})
		if err != nil || total != 1 || list[0].Name != "team/stays" || list[0].Namespace != "team" {
			t.Fatalf("list = %+v %v", list, err)
		}
		// The name can be pushed again.
		e.mustPushImage("team/gone", "1", img)
	})
}
