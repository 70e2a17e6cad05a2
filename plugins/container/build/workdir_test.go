package build

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriteAuthFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "auth.json")
	err := writeAuthFile(path, Auth{
		"127.0.0.1:5000":  {Username: "alice", Password: "p:w\"d"},
		"index.docker.io": {Username: "bob", Password: "x"},
	})
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("auth file mode %v, %v; want 0600", fi.Mode(), err)
	}
	data, _ := os.ReadFile(path)
	var file struct {
		Auths map[string]struct{ Auth string } `json:"auths"`
	}
	if err := json.Unmarshal(data, &file); err != nil {
		t.Fatal(err)
	}
	decoded := map[string]string{}
	for host, e := range file.Auths {
		b, _ := base64.StdEncoding.DecodeString(e.Auth)
		decoded[host] = string(b)
	}
	if decoded["127.0.0.1:5000"] != `alice:p:w"d` || decoded["docker.io"] != "bob:x" || len(decoded) != 2 {
		t.Errorf("auth file entries %v", decoded)
	}
	if err := writeAuthFile(path, nil); err == nil {
		t.Error("writeAuthFile overwrote an existing file")
	}
	empty := filepath.Join(t.TempDir(), "empty.json")
	if err := writeAuthFile(empty, nil); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(empty); string(b) != `{"auths":{}}` {
		t.Errorf("empty auth file = %s", b)
	}
}

func TestRegistriesDropIn(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.conf")
	if err := writeRegistriesDropIn(path, map[string]bool{"localhost:5000": true, "127.0.0.1:5001": true}); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	want := "# Written by Berth for one build: registries reached without TLS verification.\n" +
		"\n[[registry]]\nlocation = \"127.0.0.1:5001\"\ninsecure = true\n" +
		"\n[[registry]]\nlocation = \"localhost:5000\"\ninsecure = true\n"
	if string(b) != want {
		t.Errorf("drop-in =\n%s\nwant\n%s", b, want)
	}
}

func TestInsecureRegistryOption(t *testing.T) {
	for _, h := range []string{"127.0.0.1:5000", "localhost", "[::1]:5000", "registry.example.com"} {
		if _, err := NewRunner(WithInsecureRegistries(h)); err != nil {
			t.Errorf("WithInsecureRegistries(%q) = %v", h, err)
		}
	}
	for _, h := range []string{"", "http://x", "x/y", "a\"b", "x:port", "x\n[[registry]]"} {
		if _, err := NewRunner(WithInsecureRegistries(h)); err == nil {
			t.Errorf("WithInsecureRegistries(%q) accepted", h)
		}
	}
}

func TestBuildahEnv(t *testing.T) {
	w := workDir{dir: "/w"}
	env := buildahEnv([]string{
		"PATH=/usr/bin", "HOME=/root", "TMPDIR=/tmp", "DOCKER_CONFIG=/root/.docker",
		"REGISTRY_AUTH_FILE=/run/auth.json", "BUILDAH_LAYERS=true", "BUILDAH_ISOLATION=oci",
		"XDG_CONFIG_HOME=/root/.config", "STORAGE_DRIVER=overlay", "LANG=C.UTF-8",
	}, w)
	want := []string{"PATH=/usr/bin", "LANG=C.UTF-8", "HOME=/w/home", "XDG_CONFIG_HOME=/w/home/.config",
		"DOCKER_CONFIG=/w/home/.docker", "TMPDIR=/w/tmp"}
	if strings.Join(env, " ") != strings.Join(want, " ") {
		t.Errorf("env = %q, want %q", env, want)
	}
}

func TestWorkDirCreate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "build")
	w := workDir{dir: dir}
	if err := w.create(); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("work dir mode %v, %v", fi.Mode(), err)
	}
	if err := (workDir{dir: dir}).create(); !errors.Is(err, errWorkDirInUse) {
		t.Errorf("create() on a used directory = %v, want errWorkDirInUse", err)
	}
	empty := t.TempDir()
	if err := (workDir{dir: empty}).create(); err != nil {
		t.Errorf("create() on an empty directory = %v", err)
	}
}

func TestRemoveAllOddPermissions(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "w")
	deep := filepath.Join(dir, "storage", "vfs", "dir", "layer")
	if err := os.MkdirAll(filepath.Join(deep, "usr"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(deep, "usr", "f"), []byte("x"), 0o000)
	os.Symlink("/etc/passwd", filepath.Join(deep, "passwd")) // never followed
	os.Chmod(filepath.Join(deep, "usr"), 0o000)
	os.Chmod(deep, 0o555)
	if err := removeAll(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(dir); !os.IsNotExist(err) {
		t.Errorf("work dir still there: %v", err)
	}
	if _, err := os.Stat("/etc/passwd"); err != nil {
		t.Errorf("/etc/passwd: %v", err)
	}
	if err := removeAll(dir); err != nil {
		t.Errorf("removeAll of a missing dir = %v", err)
	}
}
