package container_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"
	"github.com/opencontainers/go-digest"
	"gorm.io/gorm"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/core"
	"github.com/berth-dev/berth/core/db"
	"github.com/berth-dev/berth/core/storage/fs"
	"github.com/berth-dev/berth/internal/testdb"
	"github.com/berth-dev/berth/migrations"
	"github.com/berth-dev/berth/plugins/container"
)

var ctx = context.Background()

const (
	mtOCIManifest = "application/vnd.oci.image.manifest.v1+json"
	mtOCIIndex    = "application/vnd.oci.image.index.v1+json"
	mtOCIConfig   = "application/vnd.oci.image.config.v1+json"
	mtOCILayer    = "application/vnd.oci.image.layer.v1.tar+gzip"
	mtDockerV2    = "application/vnd.docker.distribution.manifest.v2+json"
	mtDockerList  = "application/vnd.docker.distribution.manifest.list.v2+json"
	mtDockerCfg   = "application/vnd.docker.container.image.v1+json"
	mtDockerLayer = "application/vnd.docker.image.rootfs.diff.tar.gzip"
)

// env is a registry under test: the plugin on a migrated database and file
// storage, served by httptest through api.NewEcho.
type env struct {
	t      *testing.T
	g      *gorm.DB
	store  *core.Store
	dir    string
	opts   []container.Option
	plugin *container.Plugin
	srv    *httptest.Server
}

var sets = []db.MigrationSet{migrations.Core, container.Migrations()}

// each runs fn on SQLite and on PostgreSQL, each with a fresh registry.
func each(t *testing.T, fn func(t *testing.T, e *env), opts ...container.Option) {
	t.Helper()
	testdb.Each(t, sets, func(t *testing.T, g *gorm.DB) {
		fn(t, newEnv(t, g, t.TempDir(), opts...))
	})
}

// headerUser lets every request in, as the user the X-Test-User header names.
var headerUser = container.AuthorizerFunc(func(c echo.Context, _ container.Access) (container.Identity, error) {
	return testUser(c), nil
})

func testUser(c echo.Context) container.Identity {
	u := c.Request().Header.Get("X-Test-User")
	if u == "" {
		return container.Identity{}
	}
	return container.Identity{UserID: "id-" + u, Username: u}
}

// newEnv starts a registry on database g and storage under dir. The
// request header X-Test-User names the user.
func newEnv(t *testing.T, g *gorm.DB, dir string, opts ...container.Option) *env {
	t.Helper()
	e := &env{t: t, g: g, store: core.NewStore(g, nil), dir: dir, opts: opts}
	e.start()
	return e
}

// start makes a new plugin instance and server on the env's database and
// storage, as a restarted process would.
func (e *env) start() {
	t := e.t
	blobs, err := fs.New(filepath.Join(e.dir, "storage"))
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(&testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	opts := append([]container.Option{container.WithLogger(log), container.WithAuthorizer(headerUser)}, e.opts...)
	p, err := container.New(e.store, blobs, opts...)
	if err != nil {
		t.Fatal(err)
	}
	ech := api.NewEcho(log)
	p.ContentRoutes(ech)
	if e.srv != nil {
		e.srv.Close()
	}
	e.plugin = p
	e.srv = httptest.NewServer(ech)
	t.Cleanup(e.srv.Close)
}

type testWriter struct{ t *testing.T }

func (w *testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// resp is a finished response.
type resp struct {
	status int
	header http.Header
	body   []byte
}

// code is the first OCI error code of the body, "" if none.
func (r resp) code() string {
	var env struct {
		Errors []struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"errors"`
	}
	if json.Unmarshal(r.body, &env) != nil || len(env.Errors) == 0 {
		return ""
	}
	return env.Errors[0].Code
}

// message is the first OCI error message of the body.
func (r resp) message() string {
	var env struct {
		Errors []struct {
			Message string `json:"message"`
		} `json:"errors"`
	}
	if json.Unmarshal(r.body, &env) != nil || len(env.Errors) == 0 {
		return ""
	}
	return env.Errors[0].Message
}

func (r resp) String() string {
	return fmt.Sprintf("%d %s", r.status, truncate(string(r.body), 400))
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// do sends a request; header is a list of key, value pairs.
func (e *env) do(method, path string, body []byte, header ...string) resp {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	u := path
	if !strings.HasPrefix(u, "http") {
		u = e.srv.URL + path
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return resp{status: res.StatusCode, header: res.Header, body: b}
}

// expect fails unless r has the status and (if not empty) the error code.
func expect(t *testing.T, what string, r resp, status int, code string) {
	t.Helper()
	if r.status != status || r.code() != code {
		t.Fatalf("%s: got %s (code %q), want %d %q", what, r, r.code(), status, code)
	}
}

// randomBytes returns n random bytes.
func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

// pushBlob uploads content to name in one POST and returns its digest.
func (e *env) pushBlob(name string, content []byte) digest.Digest {
	e.t.Helper()
	d := digest.FromBytes(content)
	r := e.do(http.MethodPost, "/v2/"+name+"/blobs/uploads/?digest="+d.String(), content)
	expect(e.t, "push blob", r, http.StatusCreated, "")
	return d
}

// image is a test image: config, layers and the manifest over them.
type image struct {
	config   []byte
	layers   [][]byte
	manifest []byte
	digest   digest.Digest
	mt       string
}

type imageOpt func(m map[string]any)

// newImage makes an OCI image with n random layers and the given
// platform; opts change the manifest before it is encoded.
func newImage(n int, arch string, opts ...imageOpt) image {
	cfg, _ := json.Marshal(map[string]any{
		"architecture": arch, "os": "linux",
		"config": map[string]any{"Labels": map[string]string{"org.example.arch": arch}},
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{}},
		"nonce":  digest.FromBytes(randomBytes(16)).String(),
	})
	img := image{config: cfg, mt: mtOCIManifest}
	var layers []map[string]any
	for range n {
		l := randomBytes(512)
		img.layers = append(img.layers, l)
		layers = append(layers, map[string]any{"mediaType": mtOCILayer, "digest": digest.FromBytes(l), "size": len(l)})
	}
	m := map[string]any{
		"schemaVersion": 2,
		"mediaType":     mtOCIManifest,
		"config":        map[string]any{"mediaType": mtOCIConfig, "digest": digest.FromBytes(cfg), "size": len(cfg)},
		"layers":        layers,
	}
	for _, o := range opts {
		o(m)
	}
	if mt, ok := m["mediaType"].(string); ok {
		img.mt = mt
	}
	img.manifest, _ = json.Marshal(m)
	img.digest = digest.FromBytes(img.manifest)
	return img
}

// docker turns the image into a Docker schema 2 image.
func docker(m map[string]any) {
	m["mediaType"] = mtDockerV2
	m["config"].(map[string]any)["mediaType"] = mtDockerCfg
	for _, l := range m["layers"].([]map[string]any) {
		l["mediaType"] = mtDockerLayer
	}
}

// descriptor of a pushed manifest, for indexes and subjects.
func (i image) descriptor() map[string]any {
	return map[string]any{"mediaType": i.mt, "digest": i.digest, "size": len(i.manifest)}
}

// pushImage uploads the image's blobs and puts its manifest under ref.
func (e *env) pushImage(name, ref string, img image) resp {
	e.t.Helper()
	e.pushBlob(name, img.config)
	for _, l := range img.layers {
		e.pushBlob(name, l)
	}
	return e.do(http.MethodPut, "/v2/"+name+"/manifests/"+ref, img.manifest, "Content-Type", img.mt)
}

// mustPushImage is pushImage that fails the test unless it answers 201.
func (e *env) mustPushImage(name, ref string, img image) {
	e.t.Helper()
	expect(e.t, "push "+name+":"+ref, e.pushImage(name, ref, img), http.StatusCreated, "")
}

// newIndex makes an OCI index of the given images.
func newIndex(mt string, imgs ...image) image {
	var ms []map[string]any
	for _, i := range imgs {
		d := i.descriptor()
		d["platform"] = map[string]any{"os": "linux", "architecture": "amd64"}
		ms = append(ms, d)
	}
	b, _ := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": mt, "manifests": ms})
	return image{manifest: b, digest: digest.FromBytes(b), mt: mt}
}

// tags lists the tags of name (one page).
func (e *env) tags(name string) []string {
	e.t.Helper()
	r := e.do(http.MethodGet, "/v2/"+name+"/tags/list", nil)
	expect(e.t, "tags/list "+name, r, http.StatusOK, "")
	var tl struct {
		Name string   `json:"name"`
		Tags []string `json:"tags"`
	}
	if err := json.Unmarshal(r.body, &tl); err != nil {
		e.t.Fatal(err)
	}
	return tl.Tags
}

// coreQuery is a list query with one equality filter.
func coreQuery(field, value string) core.ListQuery {
	return core.ListQuery{Filters: []core.Filter{{Field: field, Value: value}}}
}
