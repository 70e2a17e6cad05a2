package test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	randomimage "github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/berth-dev/berth/core/db"
)

// End-to-end tests of issue #9: deletions that free storage. Images are
// removed through the REST API's tasks, orphan cleanup runs on the
// workers, and what is left must pull whole, with real clients, while
// storage and the database agree.

// delTask is what the tests read of a finished task.
type delTask struct {
	Href            string  `json:"pulp_href"`
	State           string  `json:"state"`
	Worker          *string `json:"worker"`
	Error           *struct{ Description string }
	Result          json.RawMessage `json:"result"`
	ProgressReports []struct {
		Code  string `json:"code"`
		State string `json:"state"`
		Done  int64  `json:"done"`
	} `json:"progress_reports"`
}

// cleanupResult is an orphan cleanup task's result.
type cleanupResult struct {
	ContentRemoved   int64 `json:"content_removed"`
	ArtifactsRemoved int64 `json:"artifacts_removed"`
	FilesRemoved     int64 `json:"files_removed"`
	StrayFiles       int64 `json:"stray_files_removed"`
	BytesReclaimed   int64 `json:"bytes_reclaimed"`
}

// removalResult is a removal or retention task's result.
type removalResult struct {
	DryRun    bool     `json:"dry_run"`
	Created   bool     `json:"created"`
	Manifests []string `json:"manifests"`
	Blobs     []string `json:"blobs"`
	Tags      []struct {
		Name   string `json:"name"`
		Digest string `json:"digest"`
	} `json:"tags"`
	Bytes int64 `json:"bytes"`
}

// delSite is a berth serve (and its workers) under deletion tests.
type delSite struct {
	t   *testing.T
	env *Env
	srv *Server
	api *Client
}

func newDelSite(t *testing.T, env *Env) *delSite {
	t.Helper()
	s := &delSite{t: t, env: env, srv: env.Serve(t)}
	s.api = s.srv.API(t)
	return s
}

// call sends a REST request as the admin and fails unless the status is
// want; out receives the JSON answer.
func (s *delSite) call(method, path string, body any, want int, out any) []byte {
	s.t.Helper()
	status, raw := s.api.Do(method, path, body, out)
	if status != want {
		s.t.Fatalf("%s %s: status %d, want %d: %s", method, path, status, want, raw)
	}
	return raw
}

// task dispatches through a request answering 202 and waits for the task.
func (s *delSite) task(method, path string, body any, timeout time.Duration) delTask {
	s.t.Helper()
	var acc struct {
		Task string `json:"task"`
	}
	s.call(method, path, body, http.StatusAccepted, &acc)
	return s.wait(acc.Task, timeout)
}

// wait polls a task until it is finished; it must complete.
func (s *delSite) wait(href string, timeout time.Duration) delTask {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var v delTask
		s.call(http.MethodGet, href, nil, http.StatusOK, &v)
		switch v.State {
		case "completed":
			return v
		case "failed", "canceled":
			s.t.Fatalf("task %s ended %s: %+v", href, v.State, v.Error)
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("task %s still %s after %s", href, v.State, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// cleanup runs an orphan cleanup with no protection time.
func (s *delSite) cleanup(timeout time.Duration) cleanupResult {
	s.t.Helper()
	tr := s.task(http.MethodPost, "/pulp/api/v3/orphans/cleanup/", map[string]any{"orphan_protection_time": 0}, timeout)
	var r cleanupResult
	if err := json.Unmarshal(tr.Result, &r); err != nil {
		s.t.Fatalf("cleanup result %s: %v", tr.Result, err)
	}
	return r
}

// repository returns the href of the container repository of an image.
func (s *delSite) repository(image string) string {
	s.t.Helper()
	var p struct {
		Results []struct {
			Href string `json:"pulp_href"`
		} `json:"results"`
	}
	s.call(http.MethodGet, "/pulp/api/v3/repositories/container/container/?name="+image, nil, http.StatusOK, &p)
	if len(p.Results) != 1 {
		s.t.Fatalf("repository %s: %+v", image, p)
	}
	return p.Results[0].Href
}

// repoHref is repository for goroutines: it returns its error.
func (s *delSite) repoHref(image string) (string, error) {
	var p struct {
		Results []struct {
			Href string `json:"pulp_href"`
		} `json:"results"`
	}
	status, raw := s.api.Do(http.MethodGet, "/pulp/api/v3/repositories/container/container/?name="+image, nil, &p)
	if status != http.StatusOK || len(p.Results) != 1 {
		return "", fmt.Errorf("repository %s: %d %s", image, status, raw)
	}
	return p.Results[0].Href, nil
}

// removeImage removes an image ({"digest"} or {"tag"}) and returns what went.
func (s *delSite) removeImage(image string, body map[string]string) removalResult {
	s.t.Helper()
	tr := s.task(http.MethodPost, s.repository(image)+"remove_image/", body, time.Minute)
	var r removalResult
	if err := json.Unmarshal(tr.Result, &r); err != nil {
		s.t.Fatal(err)
	}
	return r
}

// stored reports whether blob storage holds the file of digest d.
func (s *delSite) stored(d string) bool {
	hexd := strings.TrimPrefix(d, "sha256:")
	_, err := os.Stat(filepath.Join(s.env.DataDir, "storage", "blobs", "sha256", hexd[:2], hexd))
	return err == nil
}

// storedFiles lists the digests of every blob file in storage.
func storedFiles(t testing.TB, dataDir string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	root := filepath.Join(dataDir, "storage", "blobs", "sha256")
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		out["sha256:"+d.Name()] = true
		return nil
	})
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return out
}

// manifestBlobs lists the config and layer digests of a manifest.
func manifestBlobs(t testing.TB, manifest string) []string {
	t.Helper()
	var m struct {
		Config struct{ Digest string }   `json:"config"`
		Layers []struct{ Digest string } `json:"layers"`
	}
	if err := json.Unmarshal([]byte(manifest), &m); err != nil {
		t.Fatalf("manifest %s: %v", manifest, err)
	}
	out := []string{m.Config.Digest}
	for _, l := range m.Layers {
		out = append(out, l.Digest)
	}
	return out
}

// cranePullsWhole fails unless crane pulls ref's manifest and every blob
// byte-identical (each hashes to its digest).
func cranePullsWhole(t testing.TB, crane, ref, wantDigest string) {
	t.Helper()
	manifest := run(t, crane, "manifest", "--insecure", ref)
	if got := sha256hex([]byte(manifest)); got != wantDigest {
		t.Fatalf("%s: manifest hashes to %s, want %s", ref, got, wantDigest)
	}
	repo, _, _ := strings.Cut(ref, "@")
	if i := strings.LastIndex(repo, ":"); i > strings.LastIndex(repo, "/") {
		repo = repo[:i]
	}
	for _, d := range manifestBlobs(t, manifest) {
		blob := run(t, crane, "blob", "--insecure", repo+"@"+d)
		if got := sha256hex([]byte(blob)); got != d {
			t.Fatalf("%s: blob %s hashes to %s", ref, d, got)
		}
	}
}

// TestDeletionFreesStorage pushes images with crane, removes some by tag
// and by digest through the REST API, runs an orphan cleanup with no
// protection, and checks that the removed images' unique blobs are gone
// from storage, shared blobs are not, and every remaining image pulls
// byte-identical. Bad requests are refused and change nothing.
func TestDeletionFreesStorage(t *testing.T) {
	crane := requireTool(t, "crane")
	skopeo := requireTool(t, "skopeo")
	r := newRegistryEnv(t, db.SQLite)
	s := &delSite{t: t, srv: r.srv, api: r.srv.API(t)}
	s.env = &Env{DataDir: dataDirOf(t, r)}

	base := smallLayer(t, r.dir, "shared base")
	push := func(ref string, markers ...string) string {
		args := []string{}
		for _, m := range markers {
			args = append(args, "-f", smallLayer(t, r.dir, m))
		}
		return cranePush(t, base, r.ref(ref), args...)
	}
	keep := push("e2e/app:keep", "keep")
	byTag := push("e2e/app:bytag", "bytag")
	byDigest := push("e2e/app:bydigest", "bydigest")
	other := push("other/app:1", "other")
	run(t, crane, "tag", "--insecure", r.ref("e2e/app:bydigest"), "alias")

	blobsOf := func(image, dgst string) []string {
		return manifestBlobs(t, run(t, crane, "manifest", "--insecure", r.ref(image+"@"+dgst)))
	}
	keepBlobs, tagBlobs, digestBlobs, otherBlobs := blobsOf("e2e/app", keep), blobsOf("e2e/app", byTag), blobsOf("e2e/app", byDigest), blobsOf("other/app", other)
	shared := keepBlobs[1] // the base layer, first layer of every image
	for _, bs := range [][]string{tagBlobs, digestBlobs, otherBlobs} {
		if bs[1] != shared {
			t.Fatalf("images do not share their base layer: %v", bs)
		}
	}

	t.Run("bad input changes nothing", func(t *testing.T) {
		s.t = t
		repo := s.repository("e2e/app")
		var before struct {
			Count int `json:"count"`
		}
		s.call(http.MethodGet, "/pulp/api/v3/tasks/", nil, http.StatusOK, &before)
		for _, c := range []struct {
			path  string
			body  any
			field string
		}{
			{repo + "remove/", map[string]any{"content_units": []string{"/pulp/api/v3/content/container/manifests/4f5a0000-0000-0000-0000-000000000000/"}}, "content_units"},
			{repo + "remove/", map[string]any{"content_units": []string{"not an href"}}, "content_units"},
			{repo + "remove_image/", map[string]any{"digest": "sha256:" + strings.Repeat("0", 64)}, "digest"},
			{repo + "untag/", map[string]any{"tag": "missing"}, "tag"},
			{"/pulp/api/v3/orphans/cleanup/", map[string]any{"orphan_protection_time": -5}, "orphan_protection_time"},
		} {
			status, raw := s.api.Do(http.MethodPost, c.path, c.body, nil)
			var fields map[string][]string
			if status != http.StatusBadRequest || json.Unmarshal(raw, &fields) != nil || len(fields[c.field]) == 0 {
				t.Errorf("POST %s %v: %d %s, want 400 naming %s", c.path, c.body, status, raw, c.field)
			}
		}
		var ns struct {
			Results []struct {
				Href string `json:"pulp_href"`
			} `json:"results"`
		}
		s.call(http.MethodGet, "/pulp/api/v3/pulp_container/namespaces/?name=e2e", nil, http.StatusOK, &ns)
		status, raw := s.api.Do(http.MethodDelete, ns.Results[0].Href, nil, nil)
		if status != http.StatusConflict || !strings.Contains(string(raw), "still holds 1 image") || !strings.Contains(string(raw), "force=true") {
			t.Errorf("deleting a namespace with images: %d %s, want 409 explaining force", status, raw)
		}
		var after struct {
			Count int `json:"count"`
		}
		s.call(http.MethodGet, "/pulp/api/v3/tasks/", nil, http.StatusOK, &after)
		if after.Count != before.Count {
			t.Fatalf("rejected requests dispatched %d tasks", after.Count-before.Count)
		}
		for _, tag := range []string{"keep", "bytag", "bydigest", "alias"} {
			run(t, crane, "manifest", "--insecure", r.ref("e2e/app:"+tag))
		}
	})

	t.Run("remove, clean up, pull", func(t *testing.T) {
		s.t = t
		got := s.removeImage("e2e/app", map[string]string{"tag": "bytag"})
		if !slices.Equal(got.Manifests, []string{byTag}) || len(got.Blobs) != 2 {
			t.Fatalf("remove by tag: %+v", got)
		}
		got = s.removeImage("e2e/app", map[string]string{"digest": byDigest})
		if !slices.Equal(got.Manifests, []string{byDigest}) || len(got.Tags) != 2 {
			t.Fatalf("remove by digest (two tags): %+v", got)
		}
		for _, d := range append(tagBlobs, digestBlobs...) {
			if !s.stored(d) {
				t.Fatalf("blob %s left storage before the cleanup", d)
			}
		}
		res := s.cleanup(time.Minute)
		gone := []string{tagBlobs[0], tagBlobs[2], digestBlobs[0], digestBlobs[2]}
		for _, d := range gone {
			if s.stored(d) {
				t.Errorf("the file of removed blob %s is still stored", d)
			}
		}
		for _, d := range append(append(keepBlobs, otherBlobs...), shared) {
			if !s.stored(d) {
				t.Errorf("the file of blob %s, still used, was removed", d)
			}
		}
		if res.FilesRemoved != int64(len(gone)) || res.BytesReclaimed <= 0 {
			t.Errorf("cleanup reported %+v, want %d files", res, len(gone))
		}
		t.Logf("cleanup: %+v", res)

		// What is left pulls byte-identical: crane, and skopeo to a directory.
		cranePullsWhole(t, crane, r.ref("e2e/app:keep"), keep)
		cranePullsWhole(t, crane, r.ref("other/app:1"), other)
		dir := filepath.Join(r.dir, "skopeo-keep")
		run(t, skopeo, "copy", "--src-tls-verify=false", "docker://"+r.ref("e2e/app:keep"), "dir:"+dir)
		for _, d := range keepBlobs {
			b, err := os.ReadFile(filepath.Join(dir, strings.TrimPrefix(d, "sha256:")))
			if err != nil || sha256hex(b) != d {
				t.Fatalf("skopeo copy of blob %s: %v", d, err)
			}
		}
		for _, ref := range []string{"e2e/app:bytag", "e2e/app:bydigest", "e2e/app@" + byDigest} {
			if out, err := runErr(crane, "manifest", "--insecure", r.ref(ref)); err == nil || !strings.Contains(out, "MANIFEST_UNKNOWN") {
				t.Errorf("removed %s still resolves: %s", ref, out)
			}
		}

		// Storage accounting: the repository now holds the kept image only.
		var st struct {
			Total struct{ Bytes int64 } `json:"total"`
		}
		s.call(http.MethodGet, s.repository("e2e/app")+"storage/", nil, http.StatusOK, &st)
		var sum struct {
			Total        struct{ Bytes, Artifacts int64 } `json:"total"`
			Unreferenced struct{ Bytes int64 }            `json:"unreferenced"`
		}
		s.call(http.MethodGet, "/pulp/api/v3/storage/", nil, http.StatusOK, &sum)
		if st.Total.Bytes <= 0 || sum.Unreferenced.Bytes != 0 || sum.Total.Artifacts != int64(len(storedFiles(t, s.env.DataDir))) {
			t.Fatalf("storage: repository %+v, summary %+v, %d files", st, sum, len(storedFiles(t, s.env.DataDir)))
		}

		// A removed image pushed again pulls again.
		again := push("e2e/app:bytag", "bytag")
		cranePullsWhole(t, crane, r.ref("e2e/app:bytag"), again)
	})

	t.Run("delete a whole repository", func(t *testing.T) {
		s.t = t
		s.task(http.MethodDelete, s.repository("other/app"), nil, time.Minute)
		if out, err := runErr(crane, "manifest", "--insecure", r.ref("other/app:1")); err == nil || !strings.Contains(out, "NAME_UNKNOWN") {
			t.Fatalf("the deleted repository's image still resolves: %s", out)
		}
		res := s.cleanup(time.Minute)
		if s.stored(otherBlobs[0]) || s.stored(otherBlobs[2]) || !s.stored(shared) || res.FilesRemoved != 2 {
			t.Fatalf("after deleting other/app: cleanup %+v; its unique blobs must go, the shared one stay", res)
		}
		// The name is free again: a push recreates the image.
		d := push("other/app:2", "other-2")
		cranePullsWhole(t, crane, r.ref("other/app:2"), d)
		cranePullsWhole(t, crane, r.ref("e2e/app:keep"), keep)
	})
}

// dataDirOf finds the data directory of a registryEnv's server (its
// BERTH_DATA_DIR), from the process environment.
func dataDirOf(t *testing.T, r *registryEnv) string {
	t.Helper()
	for _, kv := range r.srv.cmd.Env {
		if v, ok := strings.CutPrefix(kv, "BERTH_DATA_DIR="); ok {
			return v
		}
	}
	t.Fatal("no BERTH_DATA_DIR in the server's environment")
	return ""
}

// TestRetentionDryRunAgrees: a retention policy's dry run lists exactly
// what the real run removes, and untagged cleanup never removes a manifest
// an index still references.
func TestRetentionDryRunAgrees(t *testing.T) {
	crane := requireTool(t, "crane")
	r := newRegistryEnv(t, db.Postgres)
	s := &delSite{t: t, srv: r.srv, api: r.srv.API(t)}
	var digests []string
	for i := range 4 {
		digests = append(digests, cranePush(t, smallLayer(t, r.dir, fmt.Sprintf("ret-%d", i)), r.ref(fmt.Sprintf("ret/app:v%d", i))))
	}
	// Two untagged platform images behind a tagged index, and an untagged
	// image of its own (its tag moved away).
	amd := cranePush(t, smallLayer(t, r.dir, "ret-amd64"), r.ref("ret/app:tmp-amd64"))
	arm := cranePush(t, smallLayer(t, r.dir, "ret-arm64"), r.ref("ret/app:tmp-arm64"))
	idx := pushManifestList(t, r, r.ref("ret/app:multi"), map[string]string{"amd64": r.ref("ret/app@" + amd), "arm64": r.ref("ret/app@" + arm)})
	loose := cranePush(t, smallLayer(t, r.dir, "ret-loose"), r.ref("ret/app:loose"))
	cranePush(t, smallLayer(t, r.dir, "ret-loose-2"), r.ref("ret/app:loose"))
	repo := s.repository("ret/app")
	for _, tag := range []string{"tmp-amd64", "tmp-arm64"} {
		s.task(http.MethodPost, repo+"untag/", map[string]string{"tag": tag}, time.Minute)
	}

	policy := map[string]any{"keep_tags": 2, "tag_pattern": "v[0-9]+", "untagged_older_than_days": 0}
	decode := func(tr delTask) removalResult {
		var rr removalResult
		if err := json.Unmarshal(tr.Result, &rr); err != nil {
			t.Fatal(err)
		}
		return rr
	}
	dry := decode(s.task(http.MethodPost, repo+"retention/", withField(policy, "dry_run", true), time.Minute))
	wantManifests := []string{digests[0], digests[1], loose}
	slices.Sort(wantManifests)
	if !dry.DryRun || !slices.Equal(dry.Manifests, wantManifests) || len(dry.Tags) != 2 {
		t.Fatalf("dry run: %+v; want manifests %v (v0, v1, the untagged loose image) and tags v0, v1", dry, wantManifests)
	}
	if tags := strings.Fields(run(t, crane, "ls", "--insecure", r.ref("ret/app"))); len(tags) != 6 {
		t.Fatalf("the dry run changed the tags: %v", tags)
	}
	real := decode(s.task(http.MethodPost, repo+"retention/", withField(policy, "dry_run", false), time.Minute))
	if !real.Created || !slices.Equal(real.Manifests, dry.Manifests) || !slices.Equal(real.Blobs, dry.Blobs) || fmt.Sprint(real.Tags) != fmt.Sprint(dry.Tags) {
		t.Fatalf("the real run removed %+v; the dry run said %+v", real, dry)
	}
	if tags := strings.Join(strings.Fields(run(t, crane, "ls", "--insecure", r.ref("ret/app"))), ","); tags != "loose,multi,v2,v3" {
		t.Fatalf("tags after retention: %s", tags)
	}
	// The index and both (untagged) images it lists still pull.
	for _, d := range []string{idx, amd, arm, digests[2], digests[3]} {
		mf := run(t, crane, "manifest", "--insecure", r.ref("ret/app@"+d))
		if sha256hex([]byte(mf)) != d {
			t.Fatalf("manifest %s changed", d)
		}
	}
	cranePullsWhole(t, crane, r.ref("ret/app@"+amd), amd)
	res := s.cleanup(time.Minute)
	if res.FilesRemoved < 6 {
		t.Fatalf("cleanup after retention removed %+v, want the blobs of 3 images", res)
	}
	cranePullsWhole(t, crane, r.ref("ret/app:v3"), digests[3])
	cranePullsWhole(t, crane, r.ref("ret/app@"+arm), arm)
}

func withField(m map[string]any, k string, v any) map[string]any {
	out := map[string]any{k: v}
	for kk, vv := range m {
		out[kk] = vv
	}
	return out
}

// pushedImage is an image a stress pusher pushed.
type pushedImage struct {
	ref    string
	digest string
}

// TestOrphanCleanupStress runs orphan cleanups (no protection) in a loop
// on separate worker processes while 20 clients push images that share
// base layers with images a deleter keeps removing; then every image still
// tagged must pull whole (no missing blob, no broken manifest), and after a
// last cleanup storage and the database must agree.
func TestOrphanCleanupStress(t *testing.T) {
	crane := requireTool(t, "crane")
	env := NewEnv(t, db.Postgres, true)
	env.Extra = []string{"BERTH_ACCESS_LOG=false", "BERTH_LOG_LEVEL=info", "BERTH_WORKERS=2"}
	s := newDelSite(t, env)
	for _, w := range []string{"stress-a", "stress-b"} {
		env.Worker(t, w)
	}
	host := s.srv.Addr
	adminAuthn := &authn.Basic{Username: "admin", Password: "admin-e2e-password"}
	auth := remote.WithAuth(adminAuthn)
	registry, err := name.NewRegistry(host, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}

	const (
		pushers  = 20
		duration = 30 * time.Second
		repos    = 6
	)
	// Each repository's images share two base layers no other repository
	// uses: when the deleter empties a repository, its bases become
	// orphans while pushers keep pushing images on them.
	bases := make([][]v1.Layer, repos)
	for r := range bases {
		for range 2 {
			l, err := randomimage.Layer(8<<10, types.OCILayer)
			if err != nil {
				t.Fatal(err)
			}
			bases[r] = append(bases[r], l)
		}
	}
	var scopes []string
	for r := range repos {
		scopes = append(scopes, fmt.Sprintf("repository:stress/r%d:push,pull", r))
	}
	ctx, cancel := context.WithTimeout(context.Background(), duration)
	defer cancel()

	var mu sync.Mutex
	var pushed []pushedImage
	var pushes, blobUnknown, removals, cleanups atomic.Int64
	var cleaned atomic.Int64
	errs := make(chan error, 100)
	var wg sync.WaitGroup
	for w := range pushers {
		wg.Go(func() {
			// One login per pusher, for every repository; each push then
			// checks its blobs afresh (HEAD), as a new client would.
			rt, err := transport.NewWithContext(ctx, registry, adminAuthn, http.DefaultTransport, scopes)
			if err != nil {
				errs <- err
				return
			}
			for i := 0; ctx.Err() == nil; i++ {
				repo := (w + i) % repos
				img, err := mutate.AppendLayers(empty.Image, bases[repo][rand.IntN(2)], uniqueLayer(t))
				if err != nil {
					errs <- err
					return
				}
				ref, err := name.ParseReference(fmt.Sprintf("%s/stress/r%d:p%d-%d", host, repo, w, i), name.Insecure)
				if err != nil {
					errs <- err
					return
				}
				for attempt := 0; ; attempt++ {
					err = remote.Write(ref, img, remote.WithTransport(rt), remote.WithContext(ctx))
					if err == nil || !isBlobUnknown(err) || attempt == 5 {
						break
					}
					// A blob HEAD found was removed before the manifest came:
					// the registry said so, and the client pushes again.
					blobUnknown.Add(1)
					time.Sleep(500 * time.Millisecond)
				}
				if err != nil {
					if ctx.Err() == nil {
						errs <- fmt.Errorf("push %s: %w", ref, err)
					}
					return
				}
				d, _ := img.Digest()
				pushes.Add(1)
				mu.Lock()
				pushed = append(pushed, pushedImage{ref: ref.String(), digest: d.String()})
				mu.Unlock()
				time.Sleep(time.Duration(50+rand.IntN(100)) * time.Millisecond)
			}
		})
	}
	// The deleter removes random images, and now and then empties a
	// repository (its base layers become orphans), for two thirds of the
	// run: the images pushed in the last third stay, to be pulled.
	deleting, stopDeleting := context.WithTimeout(ctx, duration*2/3)
	defer stopDeleting()
	wg.Go(func() {
		for n := 0; deleting.Err() == nil; n++ {
			mu.Lock()
			if len(pushed) == 0 {
				mu.Unlock()
				time.Sleep(100 * time.Millisecond)
				continue
			}
			victim := pushed[rand.IntN(len(pushed))]
			mu.Unlock()
			refName, tag, _ := strings.Cut(strings.TrimPrefix(victim.ref, host+"/"), ":")
			repo, err := s.repoHref(refName)
			if err != nil {
				errs <- err
				return
			}
			path, body := repo+"remove_image/", any(map[string]string{"tag": tag})
			if n%5 == 4 {
				path, body = repo+"remove/", map[string][]string{"content_units": {"*"}}
			}
			status, raw := s.api.Do(http.MethodPost, path, body, nil)
			switch {
			case status == http.StatusAccepted:
				removals.Add(1)
			case status == http.StatusBadRequest: // removed already
			default:
				errs <- fmt.Errorf("remove %s: %d %s", victim.ref, status, raw)
				return
			}
			time.Sleep(150 * time.Millisecond)
		}
	})
	// The cleaner runs orphan cleanups back to back.
	wg.Go(func() {
		for ctx.Err() == nil {
			var acc struct {
				Task string `json:"task"`
			}
			if status, raw := s.api.Do(http.MethodPost, "/pulp/api/v3/orphans/cleanup/", map[string]any{"orphan_protection_time": 0}, &acc); status != http.StatusAccepted {
				errs <- fmt.Errorf("cleanup: %d %s", status, raw)
				return
			}
			for ctx.Err() == nil {
				var v delTask
				s.api.Do(http.MethodGet, acc.Task, nil, &v)
				if v.State == "completed" {
					var r cleanupResult
					_ = json.Unmarshal(v.Result, &r)
					cleaned.Add(r.FilesRemoved)
					cleanups.Add(1)
					break
				}
				if v.State == "failed" || v.State == "canceled" {
					errs <- fmt.Errorf("cleanup task %s ended %s: %+v", acc.Task, v.State, v.Error)
					return
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	t.Logf("%d pushes by %d clients (%d manifest pushes refused MANIFEST_BLOB_UNKNOWN and retried), %d removals, %d cleanups removing %d files, in %s",
		pushes.Load(), pushers, blobUnknown.Load(), removals.Load(), cleanups.Load(), cleaned.Load(), duration)
	if pushes.Load() < 100 || cleanups.Load() < 5 || cleaned.Load() == 0 {
		t.Fatalf("the stress did not stress: %d pushes, %d cleanups, %d files cleaned", pushes.Load(), cleanups.Load(), cleaned.Load())
	}

	// Let the removals dispatched last finish and the caches expire.
	waitIdle(t, s)
	time.Sleep(2 * time.Second)

	// Every image still tagged pulls whole: manifest and every blob.
	missing, broken, checked := 0, 0, 0
	var craneRefs []pushedImage
	puller, err := remote.NewPuller(auth)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pushed {
		ref, _ := name.ParseReference(p.ref, name.Insecure)
		desc, err := puller.Get(context.Background(), ref)
		var img v1.Image
		if err == nil {
			img, err = desc.Image()
		}
		var te *transport.Error
		if errors.As(err, &te) && te.StatusCode == http.StatusNotFound {
			continue // removed by the deleter
		}
		if err != nil {
			broken++
			t.Errorf("%s: %v", p.ref, err)
			continue
		}
		if d, _ := img.Digest(); d.String() != p.digest {
			broken++
			t.Errorf("%s: digest %s, pushed %s", p.ref, d, p.digest)
			continue
		}
		checked++
		missing += pullLayers(t, img, p.ref)
		if len(craneRefs) < 5 {
			craneRefs = append(craneRefs, p)
		}
	}
	for _, p := range craneRefs {
		cranePullsWhole(t, crane, p.ref, p.digest)
	}
	t.Logf("%d images still tagged pulled: %d missing blobs, %d broken manifests (%d also pulled with crane)", checked, missing, broken, len(craneRefs))
	if missing != 0 || broken != 0 || checked == 0 {
		t.Fatalf("%d missing blobs, %d broken manifests among %d images", missing, broken, checked)
	}

	// After a last cleanup, storage holds exactly the artifacts' files.
	s.cleanup(2 * time.Minute)
	checkStorageAgrees(t, env)
}

// uniqueLayer is a small random layer.
func uniqueLayer(t testing.TB) v1.Layer {
	l, err := randomimage.Layer(512, types.OCILayer)
	if err != nil {
		t.Error(err)
	}
	return l
}

// isBlobUnknown reports whether a push failed on MANIFEST_BLOB_UNKNOWN.
func isBlobUnknown(err error) bool {
	var te *transport.Error
	if !errors.As(err, &te) {
		return false
	}
	for _, d := range te.Errors {
		if d.Code == transport.ManifestBlobUnknownErrorCode {
			return true
		}
	}
	return false
}

// pullLayers reads every blob of an image (go-containerregistry checks
// each against its digest) and returns how many are missing or damaged.
func pullLayers(t *testing.T, img v1.Image, ref string) int {
	t.Helper()
	bad := 0
	if _, err := img.RawConfigFile(); err != nil {
		t.Errorf("%s: config: %v", ref, err)
		bad++
	}
	layers, err := img.Layers()
	if err != nil {
		t.Errorf("%s: layers: %v", ref, err)
		return bad + 1
	}
	for _, l := range layers {
		d, _ := l.Digest()
		rc, err := l.Compressed()
		if err == nil {
			h := sha256.New()
			_, err = io.Copy(h, rc)
			rc.Close()
			if err == nil && "sha256:"+hex.EncodeToString(h.Sum(nil)) != d.String() {
				err = fmt.Errorf("content hashes differently")
			}
		}
		if err != nil {
			t.Errorf("%s: layer %s: %v", ref, d, err)
			bad++
		}
	}
	return bad
}

// waitIdle waits until no task is waiting or running.
func waitIdle(t *testing.T, s *delSite) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var page struct {
			Count int `json:"count"`
		}
		s.api.Do(http.MethodGet, "/pulp/api/v3/tasks/?state__in=waiting,running,canceling", nil, &page)
		if page.Count == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d tasks still unfinished", page.Count)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// checkStorageAgrees fails unless every artifact row has its file and
// every file has its row, and every blob in a repository version has an
// artifact.
func checkStorageAgrees(t *testing.T, env *Env) {
	t.Helper()
	ctx := context.Background()
	g, err := db.Open(ctx, env.DatabaseURL, env.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(g)
	var rows []string
	if err := g.Raw(`SELECT digest FROM artifacts`).Scan(&rows).Error; err != nil {
		t.Fatal(err)
	}
	files := storedFiles(t, env.DataDir)
	noFile := 0
	for _, d := range rows {
		if !files[d] {
			noFile++
			t.Errorf("artifact %s has no file", d)
		}
		delete(files, d)
	}
	for d := range files {
		t.Errorf("file %s has no artifact row", d)
	}
	var orphanBlobs int64
	if err := g.Raw(`SELECT COUNT(*) FROM container_blobs b JOIN repository_contents rc ON rc.content_id = b.content_id
		WHERE NOT EXISTS (SELECT 1 FROM content_artifacts ca JOIN artifacts a ON a.id = ca.artifact_id WHERE ca.content_id = b.content_id)`).Scan(&orphanBlobs).Error; err != nil {
		t.Fatal(err)
	}
	if orphanBlobs != 0 {
		t.Errorf("%d blobs in repository versions have no artifact", orphanBlobs)
	}
	t.Logf("storage and database agree: %d artifacts, %d rows without file, %d files without row", len(rows), noFile, len(files))
}

// TestOrphanCleanupKill9 kills the worker (SIGKILL) in the middle of an
// orphan cleanup made slow by many orphans and a pause after each file;
// a second cleanup on a new worker then leaves storage and the database
// in agreement, and what was kept still pulls.
func TestOrphanCleanupKill9(t *testing.T) {
	env := NewEnv(t, db.Postgres, true)
	env.Extra = []string{"BERTH_ACCESS_LOG=false", "BERTH_LOG_LEVEL=info", "BERTH_HEARTBEAT_INTERVAL=1s", "BERTH_WORKER_TIMEOUT=5s"}
	s := newDelSite(t, env)
	slow := env.Worker(t, "slow-cleaner", "BERTH_TEST_ORPHAN_PAUSE=40ms")
	auth := remote.WithAuth(&authn.Basic{Username: "admin", Password: "admin-e2e-password"})

	// One image of many layers to delete, one to keep.
	doomed, err := randomimage.Image(256, 150)
	if err != nil {
		t.Fatal(err)
	}
	kept, err := randomimage.Image(256, 3)
	if err != nil {
		t.Fatal(err)
	}
	for ref, img := range map[string]v1.Image{"kill/doomed:1": doomed, "kill/kept:1": kept} {
		r, _ := name.ParseReference(s.srv.Addr+"/"+ref, name.Insecure)
		if err := remote.Write(r, img, auth); err != nil {
			t.Fatalf("push %s: %v", ref, err)
		}
	}
	s.removeImage("kill/doomed", map[string]string{"tag": "1"})

	var acc struct {
		Task string `json:"task"`
	}
	s.call(http.MethodPost, "/pulp/api/v3/orphans/cleanup/", map[string]any{"orphan_protection_time": 0}, http.StatusAccepted, &acc)
	deadline := time.Now().Add(time.Minute)
	for {
		var v delTask
		s.call(http.MethodGet, acc.Task, nil, http.StatusOK, &v)
		files := int64(0)
		for _, p := range v.ProgressReports {
			if p.Code == "clean-up.files" {
				files = p.Done
			}
		}
		if v.State == "running" && files >= 10 {
			t.Logf("killing the worker after %d files", files)
			break
		}
		if v.State != "running" && v.State != "waiting" {
			t.Fatalf("the cleanup ended %s before the kill", v.State)
		}
		if time.Now().After(deadline) {
			t.Fatal("the cleanup did not get to its files")
		}
		time.Sleep(50 * time.Millisecond)
	}
	slow.Kill(t)
	left := len(storedFiles(t, env.DataDir))

	// A new worker takes over; the killed one's task fails (worker lost)
	// and a new cleanup, queued behind it, repairs.
	env.Worker(t, "cleaner-2")
	res := s.cleanup(2 * time.Minute)
	var first delTask
	s.api.Do(http.MethodGet, acc.Task, nil, &first)
	if first.State != "failed" {
		t.Fatalf("the killed cleanup is %s, want failed", first.State)
	}
	t.Logf("%d files left at the kill; the second cleanup: %+v", left, res)
	if res.StrayFiles == 0 {
		t.Fatalf("the second cleanup found no file the first left behind: %+v", res)
	}
	checkStorageAgrees(t, env)
	r, _ := name.ParseReference(s.srv.Addr+"/kill/kept:1", name.Insecure)
	img, err := remote.Image(r, auth)
	if err != nil {
		t.Fatal(err)
	}
	if n := pullLayers(t, img, r.String()); n != 0 {
		t.Fatalf("%d blobs of the kept image are missing", n)
	}
}
