package test

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-dev/berth/core/db"
)

// registryEnv starts one berth serve for the client tests and gives the
// clients their own credential stores, logged in as the admin.
type registryEnv struct {
	srv    *Server
	dir    string
	auth   string // podman/skopeo auth file
	docker string // DOCKER_CONFIG for crane
}

func newRegistryEnv(t *testing.T, dialect db.Dialect) *registryEnv {
	t.Helper()
	env := NewEnv(t, dialect, false)
	srv := env.Serve(t)
	r := &registryEnv{srv: srv, dir: t.TempDir()}
	r.auth = filepath.Join(r.dir, "auth.json")
	r.docker = filepath.Join(r.dir, "docker")
	if err := os.MkdirAll(r.docker, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DOCKER_CONFIG", r.docker)
	t.Setenv("REGISTRY_AUTH_FILE", r.auth)
	crane := requireTool(t, "crane")
	run(t, crane, "auth", "login", srv.Addr, "-u", "admin", "-p", "admin-e2e-password")
	return r
}

func (r *registryEnv) ref(name string) string { return r.srv.Addr + "/" + name }

func sha256hex(b []byte) string { return fmt.Sprintf("sha256:%x", sha256.Sum256(b)) }

func TestClientsPushPull(t *testing.T) {
	crane := requireTool(t, "crane")
	skopeo := requireTool(t, "skopeo")
	r := newRegistryEnv(t, db.SQLite)
	layer := busyboxLayer(t, r.dir, "clients")

	// crane builds and pushes an image; it pulls back byte-identical.
	ref := r.ref("tools/busybox:1.0")
	dgst := cranePush(t, layer, ref)
	manifest := run(t, crane, "manifest", "--insecure", ref)
	if got := sha256hex([]byte(manifest)); got != dgst {
		t.Fatalf("manifest pulled by tag hashes to %s, pushed digest %s", got, dgst)
	}
	byDigest := run(t, crane, "manifest", "--insecure", r.ref("tools/busybox@"+dgst))
	if byDigest != manifest {
		t.Fatalf("manifest by digest differs from manifest by tag")
	}
	var m struct {
		Layers []struct {
			Digest string `json:"digest"`
			Size   int64  `json:"size"`
		} `json:"layers"`
	}
	if err := json.Unmarshal([]byte(manifest), &m); err != nil || len(m.Layers) != 1 {
		t.Fatalf("manifest %s: %v", manifest, err)
	}
	blob := run(t, crane, "blob", "--insecure", r.ref("tools/busybox@"+m.Layers[0].Digest))
	if got := sha256hex([]byte(blob)); got != m.Layers[0].Digest || int64(len(blob)) != m.Layers[0].Size {
		t.Fatalf("layer pulled hashes to %s (%d bytes), want %s (%d)", got, len(blob), m.Layers[0].Digest, m.Layers[0].Size)
	}

	// skopeo copies registry to registry byte for byte, and out to an OCI
	// layout and back (converting the Docker manifest to OCI: the same image
	// config, a new manifest digest).
	run(t, skopeo, "copy", "--src-tls-verify=false", "--dest-tls-verify=false", "docker://"+ref, "docker://"+r.ref("skopeo/direct:latest"))
	if got := strings.TrimSpace(run(t, crane, "digest", "--insecure", r.ref("skopeo/direct:latest"))); got != dgst {
		t.Fatalf("skopeo copy digest %s, want %s", got, dgst)
	}
	layout := filepath.Join(r.dir, "layout")
	run(t, skopeo, "copy", "--src-tls-verify=false", "docker://"+ref, "oci:"+layout+":1.0")
	run(t, skopeo, "copy", "--dest-tls-verify=false", "oci:"+layout+":1.0", "docker://"+r.ref("skopeo/copied:latest"))
	if a, b := diffIDs(t, ref), diffIDs(t, r.ref("skopeo/copied:latest")); a != b {
		t.Fatalf("layers changed through an OCI layout round trip: %s vs %s", a, b)
	}
	out := run(t, skopeo, "inspect", "--tls-verify=false", "docker://"+r.ref("skopeo/direct:latest"))
	var insp struct{ Digest string }
	if err := json.Unmarshal([]byte(out), &insp); err != nil || insp.Digest != dgst {
		t.Fatalf("skopeo inspect digest %q (%v), want %s", insp.Digest, err, dgst)
	}

	// Tags list through crane.
	run(t, crane, "tag", "--insecure", ref, "1.0.1")
	tags := strings.Fields(run(t, crane, "ls", "--insecure", r.ref("tools/busybox")))
	if strings.Join(tags, ",") != "1.0,1.0.1" {
		t.Fatalf("tags = %v", tags)
	}
}

func TestClientsMultiArchIndex(t *testing.T) {
	crane := requireTool(t, "crane")
	skopeo := requireTool(t, "skopeo")
	r := newRegistryEnv(t, db.Postgres)
	a := cranePush(t, smallLayer(t, r.dir, "amd64"), r.ref("multi/parts:amd64"))
	b := cranePush(t, smallLayer(t, r.dir, "arm64"), r.ref("multi/parts:arm64"))
	idx := r.ref("multi/app:1")
	want := pushManifestList(t, r, idx, map[string]string{"amd64": r.ref("multi/parts@" + a), "arm64": r.ref("multi/parts@" + b)})
	// Copy the whole index (every child) to another repository and compare.
	run(t, skopeo, "copy", "--all", "--src-tls-verify=false", "--dest-tls-verify=false", "docker://"+idx, "docker://"+r.ref("mirror/app:1"))
	got := strings.TrimSpace(run(t, crane, "digest", "--insecure", r.ref("mirror/app:1")))
	if got != want {
		t.Fatalf("index copied with skopeo --all has digest %s, want %s", got, want)
	}
	for _, child := range []string{a, b} {
		mf := run(t, crane, "manifest", "--insecure", r.ref("mirror/app@"+child))
		if sha256hex([]byte(mf)) != child {
			t.Fatalf("child %s not pulled byte-identical from the copy", child)
		}
	}
}

func TestClientsMountAndDelete(t *testing.T) {
	crane := requireTool(t, "crane")
	r := newRegistryEnv(t, db.SQLite)
	dgst := cranePush(t, smallLayer(t, r.dir, "mount"), r.ref("src/img:1"))
	var m struct {
		Layers []struct{ Digest string } `json:"layers"`
	}
	if err := json.Unmarshal([]byte(run(t, crane, "manifest", "--insecure", r.ref("src/img:1"))), &m); err != nil {
		t.Fatal(err)
	}
	layerDigest := m.Layers[0].Digest

	// Cross-repository mount answers 201 with the blob's location.
	req, _ := http.NewRequest(http.MethodPost, r.srv.URL+"/v2/dst/img/blobs/uploads/?mount="+layerDigest+"&from=src/img", nil)
	req.SetBasicAuth("admin", "admin-e2e-password")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated || !strings.Contains(resp.Header.Get("Location"), layerDigest) {
		t.Fatalf("mount: status %d, Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	// crane copy within the registry mounts too and the copy pulls.
	run(t, crane, "copy", "--insecure", r.ref("src/img:1"), r.ref("dst/img:1"))
	if got := strings.TrimSpace(run(t, crane, "digest", "--insecure", r.ref("dst/img:1"))); got != dgst {
		t.Fatalf("copy digest %s, want %s", got, dgst)
	}

	// Delete a tag: the manifest stays reachable by digest and other tags.
	run(t, crane, "tag", "--insecure", r.ref("src/img:1"), "2")
	run(t, crane, "delete", "--insecure", r.ref("src/img:2"))
	if _, err := runErr(crane, "manifest", "--insecure", r.ref("src/img:2")); err == nil {
		t.Fatal("deleted tag still resolves")
	}
	run(t, crane, "manifest", "--insecure", r.ref("src/img:1"))
	// Delete the manifest: every tag of it goes.
	run(t, crane, "delete", "--insecure", r.ref("src/img@"+dgst))
	out, err := runErr(crane, "manifest", "--insecure", r.ref("src/img:1"))
	if err == nil || !strings.Contains(out, "MANIFEST_UNKNOWN") {
		t.Fatalf("after deleting the manifest, tag 1: err=%v out=%s", err, out)
	}
	// The copy in the other repository is untouched.
	run(t, crane, "manifest", "--insecure", r.ref("dst/img:1"))
}

// podmanArgs gives podman its own storage, so tests never touch the host's.
func podmanArgs(dir string, args ...string) []string {
	base := []string{"--root", filepath.Join(dir, "podman-root"), "--runroot", filepath.Join(dir, "podman-run"), "--storage-driver", "vfs"}
	return append(base, args...)
}

func TestPodmanPushPull(t *testing.T) {
	podman := requireTool(t, "podman")
	crane := requireTool(t, "crane")
	r := newRegistryEnv(t, db.Postgres)
	src := r.ref("seed/busybox:1")
	dgst := cranePush(t, busyboxLayer(t, r.dir, "podman"), src)
	p := func(args ...string) string { return run(t, podman, podmanArgs(r.dir, args...)...) }
	p("login", "--tls-verify=false", "--authfile", r.auth, "-u", "admin", "-p", "admin-e2e-password", r.srv.Addr)
	p("pull", "--tls-verify=false", "--authfile", r.auth, src)
	// Galaxy's flow: tag with the registry host and push, un-namespaced and namespaced.
	for _, name := range []string{"my_ee:latest", "ns/img:1.0"} {
		p("tag", src, r.ref(name))
		p("push", "--tls-verify=false", "--authfile", r.auth, r.ref(name))
		mf := run(t, crane, "manifest", "--insecure", r.ref(name))
		if len(mf) == 0 {
			t.Fatalf("%s: empty manifest", name)
		}
	}
	// podman may rewrite the manifest and config on push (format, key
	// order), so compare the uncompressed layer content.
	if a, b := diffIDs(t, src), diffIDs(t, r.ref("my_ee:latest")); a != b {
		t.Fatalf("pushed image layers %s differ from the source's %s", b, a)
	}
	// A pull by digest of what podman pushed.
	pushed := strings.TrimSpace(run(t, crane, "digest", "--insecure", r.ref("ns/img:1.0")))
	p("pull", "--tls-verify=false", "--authfile", r.auth, r.ref("ns/img@"+pushed))
	_ = dgst

	// The namespace my_ee holds only that image.
	p("tag", src, r.ref("my_ee/other:1"))
	out, err := runErr(podman, podmanArgs(r.dir, "push", "--tls-verify=false", "--authfile", r.auth, r.ref("my_ee/other:1"))...)
	if err == nil {
		t.Fatalf("push into the single-image namespace my_ee succeeded:\n%s", out)
	}
	if !strings.Contains(strings.ToLower(out), "namespace") {
		t.Fatalf("refused push gives no clear reason:\n%s", out)
	}
}

// diffIDs returns an image's uncompressed layer digests, which survive any
// manifest or config rewriting by a client.
func diffIDs(t testing.TB, ref string) string {
	t.Helper()
	var cfg struct {
		RootFS struct {
			DiffIDs []string `json:"diff_ids"`
		} `json:"rootfs"`
	}
	raw := run(t, requireTool(t, "crane"), "config", "--insecure", ref)
	if err := json.Unmarshal([]byte(raw), &cfg); err != nil || len(cfg.RootFS.DiffIDs) == 0 {
		t.Fatalf("config of %s: %v: %s", ref, err, raw)
	}
	return strings.Join(cfg.RootFS.DiffIDs, ",")
}
