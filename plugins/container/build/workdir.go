package build

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// workDir is the layout of one build's work directory. Everything a build
// writes lives here, so that removing it frees all of it:
//
//	storage/     buildah --root (vfs layers: the big part)
//	run/         buildah --runroot
//	tmp/         TMPDIR (blobs being pulled or pushed)
//	home/        HOME, XDG_CONFIG_HOME and DOCKER_CONFIG: no logins of the
//	             worker's leak in; holds the insecure-registry drop-in
//	auth/        pull.json and push.json, 0600
//	context/     the build context
//	Containerfile, image-id, digest-N
type workDir struct{ dir string }

func (w workDir) path(elem ...string) string {
	return filepath.Join(append([]string{w.dir}, elem...)...)
}

func (w workDir) storage() string       { return w.path("storage") }
func (w workDir) runroot() string       { return w.path("run") }
func (w workDir) tmp() string           { return w.path("tmp") }
func (w workDir) home() string          { return w.path("home") }
func (w workDir) contextDir() string    { return w.path("context") }
func (w workDir) containerfile() string { return w.path("Containerfile") }
func (w workDir) imageIDFile() string   { return w.path("image-id") }
func (w workDir) pullAuth() string      { return w.path("auth", "pull.json") }
func (w workDir) pushAuth() string      { return w.path("auth", "push.json") }
func (w workDir) digestFile(i int) string {
	return w.path(fmt.Sprintf("digest-%d", i))
}

// registriesDropIn is where the insecure registries go: containers/image
// merges $HOME/.config/containers/registries.conf.d/*.conf over the system's
// registries.conf and its drop-ins, so the operator's settings (mirrors,
// short names) still apply. (buildah's --registries-conf-dir names the
// signature lookaside directory, not this one.)
func (w workDir) registriesDropIn() string {
	return w.path("home", ".config", "containers", "registries.conf.d", "50-berth-insecure.conf")
}

// errWorkDirInUse is returned for a work directory that is not empty.
var errWorkDirInUse = errors.New("work directory exists and is not empty")

// create makes the work directory and its layout. dir must not exist or be
// an empty directory: the runner removes it when the build ends.
func (w workDir) create() error {
	if entries, err := os.ReadDir(w.dir); err == nil && len(entries) > 0 {
		return fmt.Errorf("%s: %w", w.dir, errWorkDirInUse)
	}
	for _, d := range []string{w.dir, w.storage(), w.runroot(), w.tmp(), w.contextDir(),
		filepath.Dir(w.registriesDropIn()), w.path("home", ".docker"), w.path("auth")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
	}
	return os.Chmod(w.dir, 0o700)
}

// Auth maps registry hosts to credentials. Keys are hosts as in image
// references, with their port: "registry.example.com", "127.0.0.1:5000";
// "docker.io" (or "index.docker.io") for Docker Hub.
type Auth map[string]Credentials

// authFileKey is the key containers/image looks Docker Hub up by.
func authFileKey(host string) string {
	switch host {
	case "index.docker.io", "registry-1.docker.io", "docker.io":
		return "docker.io"
	}
	return host
}

// writeAuthFile writes a containers-auth.json file with mode 0600, creating
// it (an existing file is an error). An empty Auth writes an empty file, so
// that buildah uses no credentials at all.
func writeAuthFile(path string, auth Auth) error {
	type entry struct {
		Auth string `json:"auth"`
	}
	file := struct {
		Auths map[string]entry `json:"auths"`
	}{Auths: map[string]entry{}}
	for host, c := range auth {
		file.Auths[authFileKey(host)] = entry{Auth: base64.StdEncoding.EncodeToString([]byte(c.Username + ":" + c.Password))}
	}
	data, err := json.Marshal(file)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// writeRegistriesDropIn writes the insecure registries (possibly none) as a
// registries.conf drop-in.
func writeRegistriesDropIn(path string, insecure map[string]bool) error {
	hosts := make([]string, 0, len(insecure))
	for h := range insecure {
		hosts = append(hosts, h)
	}
	slices.Sort(hosts)
	var b strings.Builder
	b.WriteString("# Written by Berth for one build: registries reached without TLS verification.\n")
	for _, h := range hosts {
		// Hosts are checked by WithInsecureRegistries: no quotes to escape.
		fmt.Fprintf(&b, "\n[[registry]]\nlocation = %q\ninsecure = true\n", h)
	}
	return os.WriteFile(path, []byte(b.String()), 0o600)
}

// buildahEnv is the environment of buildah: the worker's, with HOME,
// XDG_CONFIG_HOME and DOCKER_CONFIG moved into the work directory (no logins
// of the worker's can leak into a build), TMPDIR too (pulled blobs are
// large and must go when the work directory goes), and buildah's own
// settings (BUILDAH_*, REGISTRY_AUTH_FILE, STORAGE_*) removed, since the
// runner passes what it wants as flags.
func buildahEnv(base []string, w workDir) []string {
	drop := []string{"HOME=", "TMPDIR=", "XDG_CONFIG_HOME=", "DOCKER_CONFIG=", "REGISTRY_AUTH_FILE=",
		"BUILDAH_", "STORAGE_DRIVER=", "STORAGE_OPTS="}
	env := make([]string, 0, len(base)+4)
	for _, kv := range base {
		if !slices.ContainsFunc(drop, func(p string) bool { return strings.HasPrefix(kv, p) }) {
			env = append(env, kv)
		}
	}
	return append(env,
		"HOME="+w.home(),
		"XDG_CONFIG_HOME="+w.path("home", ".config"),
		"DOCKER_CONFIG="+w.path("home", ".docker"),
		"TMPDIR="+w.tmp(),
	)
}

// removeAll removes a work directory, robustly: it first detaches any mount
// left under it (and refuses to remove anything if one stays, rather than
// delete through it), then removes it; if that fails, it makes every
// directory writable and searchable (vfs layers keep the images' own modes,
// such as 0555 directories) and tries again.
func removeAll(dir string) error {
	if err := unmountUnder(dir); err != nil {
		return err
	}
	err := os.RemoveAll(dir)
	if err == nil {
		return nil
	}
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			_ = os.Chmod(p, 0o700)
		}
		return nil
	})
	if err2 := os.RemoveAll(dir); err2 != nil {
		return fmt.Errorf("removing %s: %w", dir, err2)
	}
	return nil
}

// readSmallFile reads a file buildah wrote (image ID, digest), trimmed.
func readSmallFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 4096))
	return strings.TrimSpace(string(b)), err
}
