package build

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/berth-dev/berth/core"
)

func TestRenderGolden(t *testing.T) {
	s := &Spec{
		Target: "team/app", Tag: "v1", Base: "python:3.12",
		APT:   []string{"curl", "", "# version control", "git=1:2.39.2-1.1  # pinned"},
		Conda: []string{"-c conda-forge::numpy==1.17*", "scipy", "bioconda::samtools=1.9", "conda-forge/linux-64::pandas"},
		Pip:   []string{"pkg[extra]>=1,<2", `requests ; python_version < "3.11"`, "numpy==1.26.*"},
	}
	got, err := s.Render("1000")
	if err != nil {
		t.Fatal(err)
	}
	want := `FROM docker.io/library/python:3.12
USER root
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update
RUN ["apt-get", "install", "-y", "--no-install-recommends", "curl", "git=1:2.39.2-1.1"]
RUN rm -rf /var/lib/apt/lists/*
RUN ["conda", "install", "--yes", "-c", "conda-forge", "-c", "bioconda", "conda-forge::numpy==1.17*", "scipy", "bioconda::samtools=1.9", "conda-forge/linux-64::pandas"]
RUN conda clean -afy
RUN ["pip", "install", "--no-cache-dir", "pkg[extra]>=1,<2", "requests ; python_version < \"3.11\"", "numpy==1.26.*"]
USER 1000
`
	if got != want {
		t.Errorf("Render() =\n%s\nwant\n%s", got, want)
	}
}

func TestRenderSections(t *testing.T) {
	tests := []struct {
		name string
		spec *Spec
		user string
		want string
	}{
		{"pip only, root base", &Spec{Target: "a/b", Tag: "t", Base: "registry.example.com:5000/base/img@sha256:" + strings.Repeat("ab", 32), Pip: []string{"numpy"}}, "",
			"FROM registry.example.com:5000/base/img@sha256:" + strings.Repeat("ab", 32) + "\nRUN [\"pip\", \"install\", \"--no-cache-dir\", \"numpy\"]\n"},
		{"explicit root user", &Spec{Target: "a/b", Tag: "t", Base: "debian:12", APT: []string{"curl"}}, "root",
			"FROM docker.io/library/debian:12\nARG DEBIAN_FRONTEND=noninteractive\nRUN apt-get update\nRUN [\"apt-get\", \"install\", \"-y\", \"--no-install-recommends\", \"curl\"]\nRUN rm -rf /var/lib/apt/lists/*\n"},
		{"root by uid and gid", &Spec{Target: "a/b", Tag: "t", Base: "debian:12", Conda: []string{"numpy"}}, "0:0",
			"FROM docker.io/library/debian:12\nRUN [\"conda\", \"install\", \"--yes\", \"numpy\"]\nRUN conda clean -afy\n"},
		{"user and group", &Spec{Target: "a/b", Tag: "t", Base: "quay.io/org/img:1", Pip: []string{"x"}}, "jovyan:users",
			"FROM quay.io/org/img:1\nUSER root\nRUN [\"pip\", \"install\", \"--no-cache-dir\", \"x\"]\nUSER jovyan:users\n"},
		{"root user with another group", &Spec{Target: "a/b", Tag: "t", Base: "quay.io/org/img:1", Pip: []string{"x"}}, "0:100",
			"FROM quay.io/org/img:1\nUSER root\nRUN [\"pip\", \"install\", \"--no-cache-dir\", \"x\"]\nUSER 0:100\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.spec.Render(tt.user)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("Render() =\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}

// TestRenderExecArguments decodes every exec-form RUN as the Containerfile
// parser does (encoding/json) and checks that each package line arrives as
// exactly one argument, byte for byte.
func TestRenderExecArguments(t *testing.T) {
	pip := []string{
		`requests ; python_version < "3.11"`, "pkg[extra]>=1,<2", "numpy==1.26.*",
		`pkg ; platform_version == "#1 SMP (x) {y} [z] ~=!@%^*+,:/?"`,
		"name @ https://example.com/a%20b.whl#sha256=00ff", "pkg (>=1.0)",
	}
	conda := []string{"numpy[version='>=1.17,<2', build=py39*]", "numpy 1.17|1.18", "numpy>=1.8,<2|1.9"}
	s := &Spec{Target: "a/b", Tag: "t", Base: "debian:12", Pip: pip, Conda: conda}
	got, err := s.Render("1000")
	if err != nil {
		t.Fatal(err)
	}
	var runs [][]string
	for _, line := range strings.Split(got, "\n") {
		if arr, ok := strings.CutPrefix(line, "RUN ["); ok {
			var args []string
			if err := json.Unmarshal([]byte("["+arr), &args); err != nil {
				t.Fatalf("RUN line %q is not a JSON array: %v", line, err)
			}
			runs = append(runs, args)
		}
	}
	want := [][]string{append(clone(condaInstall), conda...), append(clone(pipInstall), pip...)}
	if len(runs) != len(want) {
		t.Fatalf("exec-form RUNs %q, want %q", runs, want)
	}
	for i := range want {
		if strings.Join(runs[i], "\x00") != strings.Join(want[i], "\x00") {
			t.Errorf("RUN %d arguments %q, want %q", i, runs[i], want[i])
		}
	}
}

func TestRenderRefusesUnsafeBaseUser(t *testing.T) {
	s := &Spec{Target: "a/b", Tag: "t", Base: "debian:12", Pip: []string{"numpy"}}
	for _, user := range []string{"1000\nRUN id", "$UID", "${USER}", "app user", "app:", ":app", "a:b:c", "-1", strings.Repeat("a", 300)} {
		_, err := s.Render(user)
		var v *core.ValidationError
		if !errors.As(err, &v) || len(v.Fields["base"]) != 1 || !strings.Contains(v.Fields["base"][0], "cannot be restored") {
			t.Errorf("Render(%q) = %v, want a validation error under base", user, err)
		}
	}
}

func TestRenderRawAndInvalid(t *testing.T) {
	raw := &Spec{Target: "a/b", Tag: "t", Containerfile: "FROM scratch\nCOPY . /\n"}
	if got, err := raw.Render("$whatever"); err != nil || got != raw.Containerfile {
		t.Errorf("raw Render() = %q, %v; want the Containerfile unchanged", got, err)
	}
	bad := &Spec{Target: "a/b", Tag: "t", Base: "debian:12", Pip: []string{"numpy; rm -rf /"}}
	if _, err := bad.Render(""); !errors.Is(err, core.ErrInvalid) {
		t.Errorf("Render(invalid) = %v, want core.ErrInvalid", err)
	}
}

func TestSpecJob(t *testing.T) {
	s := &Spec{Target: "team/app", Tag: "v1", Base: "registry.example.com/base/py:3", Pip: []string{"numpy"},
		BaseCredentials: &Credentials{Username: "u", Password: "p"}}
	job, err := s.Job("127.0.0.1:5000", "")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"127.0.0.1:5000/team/app:v1", "127.0.0.1:5000/team/app:" + s.UniqueTag()}
	if strings.Join(job.Destinations, " ") != strings.Join(want, " ") {
		t.Errorf("Destinations = %q, want %q", job.Destinations, want)
	}
	if c, ok := job.PullAuth["registry.example.com"]; !ok || c.Username != "u" || len(job.PullAuth) != 1 {
		t.Errorf("PullAuth = %v, want the base credentials for registry.example.com", job.PullAuth)
	}
	if !strings.HasPrefix(job.Containerfile, "FROM registry.example.com/base/py:3\n") || job.Context != nil || job.PushAuth != nil {
		t.Errorf("job = %+v", job)
	}
	if err := job.validate(); err != nil {
		t.Errorf("job.validate() = %v", err)
	}
	for _, reg := range []string{"", "host/path", "https://host", "user@host"} {
		if _, err := s.Job(reg, ""); err == nil {
			t.Errorf("Job(%q) = nil error", reg)
		}
	}
	hub := &Spec{Target: "team/app", Tag: "v1", Base: "python:3.12", Pip: []string{"numpy"}, BaseCredentials: &Credentials{Username: "u"}}
	job, err = hub.Job("registry.example.com", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := job.PullAuth["index.docker.io"]; !ok || authFileKey("index.docker.io") != "docker.io" {
		t.Errorf("Docker Hub PullAuth = %v", job.PullAuth)
	}
}
