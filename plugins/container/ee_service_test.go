package container_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

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

		// Removing the index (the container.remove engine) takes its platform
		// manifests with it; the activity shows each manifest and tag that left.
		ee, err := e.plugin.GetExecutionEnvironment(ctx, "multi/app")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.plugin.RemoveContent(ctx, container.Identity{Username: "alice"}, ee.RepositoryID, container.Selection{Digests: []string{idx.digest.String()}}); err != nil {
			t.Fatal(err)
		}
		list, total, err = e.plugin.ListImageManifests(ctx, "multi/app", container.ImageFilter{}, container.ListOptions{})
		if err != nil || total != 1 || list[0].Digest != solo.digest.String() {
			t.Fatalf("after removing the index: %d %+v %v", total, list, err)
		}
		acts, n, err := e.plugin.Activity(ctx, "multi/app", container.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if n != 5 || acts[0].CreatedBy != "alice" || len(acts[0].Removed) != 4 || len(acts[0].Added) != 0 || acts[4].Number != 1 {
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
