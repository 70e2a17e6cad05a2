package build

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/berth-dev/berth/core"
)

// pkgSpec is a valid package-mode spec with the given lists.
func pkgSpec(apt, conda, pip []string) *Spec {
	return &Spec{Target: "team/app", Tag: "v1", Base: "docker.io/library/python:3.12", APT: apt, Conda: conda, Pip: pip}
}

// listSpec is a valid spec with lines in the named list.
func listSpec(field string, lines ...string) *Spec {
	switch field {
	case "apt":
		return pkgSpec(lines, nil, nil)
	case "conda":
		return pkgSpec(nil, lines, nil)
	case "pip":
		return pkgSpec(nil, nil, lines)
	}
	panic("unknown list " + field)
}

// validationError returns err as a *core.ValidationError, failing otherwise.
func validationError(t *testing.T, err error) *core.ValidationError {
	t.Helper()
	if err == nil {
		t.Fatal("Validate() = nil, want an error")
	}
	if !errors.Is(err, core.ErrInvalid) {
		t.Fatalf("errors.Is(%v, core.ErrInvalid) = false", err)
	}
	var v *core.ValidationError
	if !errors.As(err, &v) {
		t.Fatalf("error %T is not a *core.ValidationError", err)
	}
	return v
}

func TestValidateAcceptsPackageLines(t *testing.T) {
	accepted := map[string][]string{
		"apt": {
			"curl", "g++", "python3.11", "libstdc++6", "0ad",
			"git=1:2.39.2-1.1", "libssl3=3.0.11-1~deb12u2", "pkg=1.0~rc1",
			"pkg=2:1.0+dfsg-1ubuntu0.1", "pkg=1.0", "pkg=1.0-1-2", "libstdc++6=12.2.0-14",
			"vim/bookworm-backports", "nginx/stable", "libc6:i386", "libc6:amd64=2.36-9",
			"libc6:i386/bookworm", "  curl  ", "curl\t", "curl  # the HTTP client",
		},
		"pip": {
			"numpy", "a", "Numpy", "zope.interface", "ruamel.yaml>=0.17", "typing_extensions",
			"numpy==1.26.*", "numpy!=1.25.*", "numpy~=1.26", "numpy===1.0-custom",
			"torch==2.1.0+cpu", "numpy>=1.0.0rc1", "numpy==1.26.0.post1", "numpy>=1.0.dev0",
			"numpy==v1.0", "numpy==1!2.0", "Django>=4.2,<5", "Django >= 4.2 , < 5",
			"pkg[extra]>=1,<2", "pkg[a, b]", "pkg[]", "pkg (>=1.0)", "pkg(>=1.0,<2)",
			`requests ; python_version < "3.11"`, `requests;python_version<"3.11"`,
			`pkg; sys_platform == "linux" and python_version >= "3.8"`,
			`pkg; (os_name == "nt" or os_name == "posix") and extra == "test"`,
			`pkg ; "linux" in sys_platform`, `pkg ; platform_machine not in 'arm64 aarch64'`,
			`pkg ; platform_version == "#1 SMP PREEMPT_DYNAMIC Debian 6.1.0-10"`,
			`pkg ; platform.python_implementation == "CPython"`,
			"name @ https://example.com/name-1.0-py3-none-any.whl#sha256=0123abcdef",
			"name @ git+https://github.com/org/name.git@v1.0",
			"name[extra] @ https://example.com/name-1.0.tar.gz",
			`name @ https://example.com/name.whl ; python_version >= "3.8"`,
			"numpy  # arrays", "numpy==1.26.* # pinned",
		},
		"conda": {
			"numpy", "_libgcc_mutex", "r-base>=4", "python=3.11", "numpy==1.17*",
			"numpy>=1.17,<2", "numpy=1.17=py39*", "numpy=1.17", "numpy 1.17.* py39_0",
			"numpy 1.17|1.18", "numpy >=1.17", "numpy>=1.8,<2|1.9", "numpy!=1.17",
			"numpy[version='>=1.17']", `numpy[version=">=1.17,<2", build=py39*]`,
			"numpy[build_number='>=2']", "pytorch::pytorch[build=*cuda*]",
			"numpy[md5=0123456789abcdef0123456789abcdef]", "numpy[subdir=linux-64]",
			"conda-forge::numpy", "conda-forge/linux-64::numpy==1.17*",
			"conda-forge/label/dev::numpy", "-c conda-forge::numpy==1.17*",
			"-c  bioconda::samtools=1.9", "-c\tconda-forge::numpy", "numpy # fast arrays",
		},
	}
	for field, lines := range accepted {
		for _, line := range lines {
			t.Run(field+"/"+line, func(t *testing.T) {
				if err := listSpec(field, line).Validate(); err != nil {
					t.Errorf("Validate(%s %q) = %v, want nil", field, line, err)
				}
			})
		}
	}
}

func TestValidateRejectsPackageLines(t *testing.T) {
	tests := []struct {
		field, line string
		want        string // in the message
	}{
		// Injection attempts, in every list.
		{"apt", "$(touch /tmp/pwned)", `invalid character "$"`},
		{"apt", "`id`", "invalid character \"`\""},
		{"apt", "curl;rm -rf /", `invalid character ";"`},
		{"apt", "curl&&id", `invalid character "&"`},
		{"apt", "curl\nwget", "control character"},
		{"apt", "curl\x00", "control character U+0000"},
		{"apt", "curl\r", "control character"},
		{"apt", "curl\x1b[31m", "control character"},
		{"apt", "cürl", "outside ASCII"},
		{"apt", "-y", "options are not allowed"},
		{"apt", "--allow-unauthenticated", "options are not allowed"},
		{"apt", "-o=APT::Get::AllowUnauthenticated=true", "options are not allowed"},
		// Debian grammar.
		{"apt", "curl wget", "one package per line"},
		{"apt", "Curl", "lower case"},
		{"apt", "c", "at least two characters"},
		{"apt", ".curl", "starting with a letter or digit"},
		{"apt", "curl-", "remove the package"},
		{"apt", "curl=", "empty version"},
		{"apt", "curl=a1", "must start with a digit"},
		{"apt", "curl=x:1", "epoch"},
		{"apt", "curl=1:", "empty upstream version"},
		{"apt", "curl=1.0-", "revision"},
		{"apt", "curl=1.0-a_b", "revision"},
		{"apt", "curl=1_0", "may only hold"},
		{"apt", "curl=1.0/stable", "not both"},
		{"apt", "curl/", "invalid release"},
		{"apt", "libc6:", "invalid architecture"},
		{"apt", "curl/$(id)", `invalid character "$"`},
		{"apt", "curl/-x", "invalid release"},

		{"pip", "numpy; rm -rf /", "invalid environment marker"},
		{"pip", "numpy ; os_name", "comparison"},
		{"pip", "$(touch /tmp/pwned)", "package name"},
		{"pip", "numpy==1.0$(touch x)", `unexpected "$(touch x)"`},
		{"pip", "numpy`id`", "unexpected"},
		{"pip", "numpy|id", "unexpected"},
		{"pip", "numpy && id", "unexpected"},
		{"pip", `pkg ; python_version < "$(id)"`, `"$"`},
		{"pip", "pkg ; python_version < '`id`'", "not allowed in marker strings"},
		{"pip", `pkg ; python_version < "3" && rm`, "unexpected"},
		{"pip", `pkg ; foo == "1"`, `unknown marker variable "foo"`},
		{"pip", `pkg ; python_version < "3`, "unterminated"},
		{"pip", `pkg ; (python_version < "3"`, "missing ')'"},
		{"pip", "pkg ;", "missing environment marker"},
		{"pip", "numpy\n", "control character"},
		{"pip", "numpy\x00", "control character U+0000"},
		{"pip", "--index-url=http://evil", "options"},
		{"pip", "--extra-index-url http://evil", "options"},
		{"pip", "-i http://evil", "options"},
		{"pip", "-e git+https://github.com/x/y", "options"},
		{"pip", "-r requirements.txt", "options"},
		{"pip", "numpy --hash=sha256:abc", "unexpected"},
		{"pip", "numpy=1.0", "conda's syntax"},
		{"pip", "numpy>=1.*", "wildcard is only allowed"},
		{"pip", "numpy~=1", "two release numbers"},
		{"pip", "numpy>=1.0+local", "local version"},
		{"pip", "numpy==", "missing version"},
		{"pip", "numpy>1,", "version operator"},
		{"pip", "numpy==1.0 2.0", "unexpected"},
		{"pip", "numpy==abc", "PEP 440"},
		{"pip", "numpy[", "extras"},
		{"pip", "numpy[a b]", "extras"},
		{"pip", "-numpy", "options"},
		{"pip", "numpy-", "start and end with a letter or digit"},
		{"pip", "https://example.com/x.whl", "name @ URL"},
		{"pip", "./local/pkg", "local paths"},
		{"pip", "/abs/pkg", "local paths"},
		{"pip", "name @ http://example.com/x.whl", "scheme"},
		{"pip", "name @ file:///tmp/x.whl", "scheme"},
		{"pip", "name @ git+ssh://git@github.com/x/y", "scheme"},
		{"pip", "name @ https://user:token@example.com/x.whl", "credentials"},
		{"pip", "name @ https://example.com/x.whl;python_version<'3'", "may only hold"},
		{"pip", "name @ https://example.com/x.whl extra", "';'"},
		{"pip", "name @ https://example.com/$(id).whl", "may only hold"},
		{"pip", "name @", "missing URL"},
		{"pip", "nümpy", "outside ASCII"},

		{"conda", "-c conda-forge", "-c channel::package"},
		{"conda", "-c", "-c channel::package"},
		{"conda", "-cconda-forge::numpy", "options are not allowed"},
		{"conda", "--channel conda-forge::numpy", "options are not allowed"},
		{"conda", "-y", "options are not allowed"},
		{"conda", "--override-channels", "options are not allowed"},
		{"conda", "numpy; rm -rf /", "unexpected"},
		{"conda", "$(touch /tmp/pwned)", "package name"},
		{"conda", "`id`", "package name"},
		{"conda", "numpy|id", "unexpected"},
		{"conda", "numpy==1.17$(id)", "bad constraint"},
		{"conda", "numpy=1.17=py39*=x", "invalid build string"},
		{"conda", "numpy=>1", "invalid version"},
		{"conda", "numpy 1.17 py39 extra", "name [version [build]]"},
		{"conda", "numpy>=1.17,", "empty constraint"},
		{"conda", "https://conda.anaconda.org/conda-forge::numpy", "channel URLs"},
		{"conda", "conda-forge:ns::numpy", "namespace"},
		{"conda", "::numpy", "empty channel"},
		{"conda", "conda-forge::", "missing package name"},
		{"conda", "numpy[foo=bar]", "unknown match spec key"},
		{"conda", "numpy[version='>=1.17'", "brackets"},
		{"conda", "numpy[version='>=1.17]", "unterminated quote"},
		{"conda", "numpy[build=$(id)]", "invalid build"},
		{"conda", "numpy[url='https://x/$(id)']", "invalid url"},
		{"conda", "numpy[subdir=mars-64]", "unknown platform"},
		{"conda", "numpy\x00", "control character"},
		{"conda", "numpy\nscipy", "control character"},
	}
	for _, tt := range tests {
		t.Run(tt.field+"/"+tt.line, func(t *testing.T) {
			v := validationError(t, listSpec(tt.field, tt.line).Validate())
			msgs := v.Fields[tt.field]
			if len(msgs) != 1 {
				t.Fatalf("messages for %q = %q, want one (all: %v)", tt.field, msgs, v.Fields)
			}
			if !strings.HasPrefix(msgs[0], "line 1: ") {
				t.Errorf("message %q does not name the line", msgs[0])
			}
			if !strings.Contains(msgs[0], tt.want) {
				t.Errorf("message %q does not contain %q", msgs[0], tt.want)
			}
		})
	}
}

// TestValidateNamesEveryBadLine: every bad line gets its own message with its
// line number (blank and comment lines count), none is dropped.
func TestValidateNamesEveryBadLine(t *testing.T) {
	s := pkgSpec(
		[]string{"curl", "", "# tools", "curl wget", "-y", "git"},
		[]string{"numpy", "-c conda-forge"},
		SplitLines("numpy\n\nrequests ; rm -rf /\n# comment\n--index-url=http://evil\nscipy\n`id`\n"),
	)
	v := validationError(t, s.Validate())
	want := map[string][]string{
		"apt":   {"line 4: ", "line 5: "},
		"conda": {"line 2: "},
		"pip":   {"line 3: ", "line 5: ", "line 7: "},
	}
	for field, prefixes := range want {
		msgs := v.Fields[field]
		if len(msgs) != len(prefixes) {
			t.Errorf("%s: messages %q, want %d", field, msgs, len(prefixes))
			continue
		}
		for i, p := range prefixes {
			if !strings.HasPrefix(msgs[i], p) {
				t.Errorf("%s message %d = %q, want prefix %q", field, i, msgs[i], p)
			}
		}
	}
	if len(v.Fields) != len(want) {
		t.Errorf("fields %v, want only %v", v.Fields, want)
	}
}

func TestValidateCountsMessagesBeyondLimit(t *testing.T) {
	lines := make([]string, maxLineMessages+7)
	for i := range lines {
		lines[i] = "bad line"
	}
	v := validationError(t, listSpec("apt", lines...).Validate())
	msgs := v.Fields["apt"]
	if len(msgs) != maxLineMessages+1 || msgs[len(msgs)-1] != "and 7 more invalid lines" {
		t.Errorf("got %d messages ending %q", len(msgs), msgs[len(msgs)-1])
	}
}

func TestValidateSpecFields(t *testing.T) {
	valid := func() *Spec { return pkgSpec(nil, nil, []string{"numpy"}) }
	tests := []struct {
		name   string
		change func(*Spec)
		field  string
		want   string
	}{
		{"no target", func(s *Spec) { s.Target = "" }, "target", "required"},
		{"target without namespace", func(s *Spec) { s.Target = "app" }, "target", "namespace/name"},
		{"upper-case target", func(s *Spec) { s.Target = "Team/App" }, "target", "lower-case"},
		{"target with tag", func(s *Spec) { s.Target = "team/app:v1" }, "target", "lower-case"},
		{"target too long", func(s *Spec) { s.Target = "team/" + strings.Repeat("a", 251) }, "target", "at most 255"},
		{"no tag", func(s *Spec) { s.Tag = "" }, "tag", "required"},
		{"bad tag", func(s *Spec) { s.Tag = "-v1" }, "tag", "not starting"},
		{"tag with newline", func(s *Spec) { s.Tag = "v1\nRUN id" }, "tag", "letters"},
		{"tag too long for unique tag", func(s *Spec) { s.Tag = strings.Repeat("a", 120) }, "tag", "at most 119"},
		{"no base", func(s *Spec) { s.Base = "" }, "base", "required"},
		{"bad base", func(s *Spec) { s.Base = "Ubuntu:24.04" }, "base", "invalid image reference"},
		{"base with scheme", func(s *Spec) { s.Base = "https://example.com/x:1" }, "base", "invalid image reference"},
		{"base with blanks", func(s *Spec) { s.Base = " ubuntu" }, "base", "blanks"},
		{"base with variable", func(s *Spec) { s.Base = "ubuntu:$TAG" }, "base", "invalid image reference"},
		{"no packages", func(s *Spec) { s.Pip = []string{"", "# nothing"} }, "packages", "at least one"},
		{"credentials without user", func(s *Spec) { s.BaseCredentials = &Credentials{Password: "pw"} }, "base_credentials", "user name is required"},
		{"credentials with colon", func(s *Spec) { s.BaseCredentials = &Credentials{Username: "a:b", Password: "pw"} }, "base_credentials", "':'"},
		{"too many lines", func(s *Spec) { s.Pip = make([]string, MaxLines+1) }, "pip", "more than"},
		{"raw with packages", func(s *Spec) { s.Containerfile = "FROM scratch\n" }, "pip", "not allowed with a containerfile"},
		{"raw with base", func(s *Spec) { s.Pip = nil; s.Containerfile = "FROM scratch\n" }, "base", "not allowed with a containerfile"},
		{"raw with control character", func(s *Spec) {
			*s = Spec{Target: "team/app", Tag: "v1", Containerfile: "FROM scratch\nRUN a\x00b\n"}
		}, "containerfile", "line 2: contains a control character"},
		{"raw too large", func(s *Spec) {
			*s = Spec{Target: "team/app", Tag: "v1", Containerfile: strings.Repeat("#", MaxContainerfileSize+1)}
		}, "containerfile", "larger than"},
	}
	if err := valid().Validate(); err != nil {
		t.Fatalf("valid spec: %v", err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := valid()
			tt.change(s)
			v := validationError(t, s.Validate())
			msgs := strings.Join(v.Fields[tt.field], "; ")
			if !strings.Contains(msgs, tt.want) {
				t.Errorf("%s: %q, want %q (all: %v)", tt.field, msgs, tt.want, v.Fields)
			}
		})
	}
	raw := &Spec{Target: "team/app", Tag: "v1", Containerfile: "FROM scratch\r\nCOPY . /\tx\r\n"}
	if err := raw.Validate(); err != nil {
		t.Errorf("raw spec: %v", err)
	}
}

func TestCredentialsAreNeverShown(t *testing.T) {
	const secret = "hunter2-very-secret"
	c := Credentials{Username: "alice", Password: secret}
	s := pkgSpec(nil, nil, []string{"numpy"})
	s.BaseCredentials = &c

	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("x", "creds", c, "spec", s)
	slog.New(slog.NewTextHandler(&logged, nil)).Info("x", "creds", c)
	data, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	for _, out := range []string{
		fmt.Sprint(c), fmt.Sprintf("%v %+v %#v %s", c, c, c, c), fmt.Sprintf("%v %+v", s, s),
		logged.String(), string(data),
	} {
		if strings.Contains(out, secret) {
			t.Errorf("password shown in %q", out)
		}
	}
	if strings.Contains(string(data), "alice") || strings.Contains(string(data), "credentials") {
		t.Errorf("spec JSON holds credentials: %s", data)
	}
	if _, err := json.Marshal(c); !errors.Is(err, ErrSerializeCredentials) {
		t.Errorf("json.Marshal(Credentials) error = %v, want ErrSerializeCredentials", err)
	}
	// Validation messages never echo the password.
	bad := pkgSpec(nil, nil, []string{"numpy"})
	bad.BaseCredentials = &Credentials{Password: secret + "\n"}
	if err := bad.Validate(); err == nil || strings.Contains(err.Error(), secret) {
		t.Errorf("Validate() = %v", err)
	}
}

func TestSplitLines(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"a", []string{"a"}},
		{"a\n", []string{"a"}},
		{"a\r\nb\r\n", []string{"a", "b"}},
		{"a\n\nb", []string{"a", "", "b"}},
		{"a\rb", []string{"a\rb"}}, // a lone CR stays, and validation rejects it
	}
	for _, tt := range tests {
		if got := SplitLines(tt.in); fmt.Sprint(got) != fmt.Sprint(tt.want) || len(got) != len(tt.want) {
			t.Errorf("SplitLines(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestSpecDigest(t *testing.T) {
	base := func() *Spec {
		return &Spec{
			Target: "team/app", Tag: "v1", Base: "python:3.12",
			APT: []string{"curl"}, Conda: []string{"-c conda-forge::numpy==1.17*"}, Pip: []string{"requests"},
		}
	}
	d := base().SpecDigest()
	if len(d) != 64 || strings.Trim(d, "0123456789abcdef") != "" {
		t.Fatalf("SpecDigest() = %q, want 64 hex digits", d)
	}
	// The canonical form is part of the contract: unique tags of stored
	// builds must not change between versions.
	canonical := `{"v":1,"target":"team/app","tag":"v1","base":"docker.io/library/python:3.12",` +
		`"apt":["curl"],"conda":["-c conda-forge::numpy==1.17*"],"pip":["requests"],"containerfile":""}`
	if sum := sha256.Sum256([]byte(canonical)); d != hex.EncodeToString(sum[:]) {
		t.Errorf("SpecDigest() = %s, want the SHA-256 of %s", d, canonical)
	}
	if got := base().UniqueTag(); got != "v1-"+d[:8] {
		t.Errorf("UniqueTag() = %q, want v1-%s", got, d[:8])
	}

	same := map[string]func(*Spec){
		"credentials":       func(s *Spec) { s.BaseCredentials = &Credentials{Username: "u", Password: "p"} },
		"blanks":            func(s *Spec) { s.APT = []string{"  curl\t"} },
		"blank lines":       func(s *Spec) { s.Pip = []string{"", "requests", "   "} },
		"comments":          func(s *Spec) { s.Pip = []string{"# web", "requests  # http"} },
		"explicit base":     func(s *Spec) { s.Base = "docker.io/library/python:3.12" },
		"index.docker.io":   func(s *Spec) { s.Base = "index.docker.io/library/python:3.12" },
		"nil vs empty list": func(s *Spec) { s.APT = append(s.APT, []string{}...) },
	}
	for name, change := range same {
		s := base()
		change(s)
		if got := s.SpecDigest(); got != d {
			t.Errorf("%s changed the digest", name)
		}
	}
	different := map[string]func(*Spec){
		"target":        func(s *Spec) { s.Target = "team/app2" },
		"tag":           func(s *Spec) { s.Tag = "v2" },
		"base":          func(s *Spec) { s.Base = "python:3.13" },
		"apt":           func(s *Spec) { s.APT = []string{"wget"} },
		"conda":         func(s *Spec) { s.Conda = []string{"numpy"} },
		"pip":           func(s *Spec) { s.Pip = []string{"requests==2.0"} },
		"pip order":     func(s *Spec) { s.Pip = []string{"a", "b"} },
		"line moved":    func(s *Spec) { s.Pip = append(s.Pip, "curl"); s.APT = nil },
		"containerfile": func(s *Spec) { s.Containerfile = "FROM scratch\n" },
	}
	seen := map[string]string{d: "base"}
	for name, change := range different {
		s := base()
		change(s)
		got := s.SpecDigest()
		if prev, ok := seen[got]; ok {
			t.Errorf("%s: same digest as %s", name, prev)
		}
		seen[got] = name
	}
	a, b := base(), base()
	a.Pip, b.Pip = []string{"a", "b"}, []string{"b", "a"}
	if a.SpecDigest() == b.SpecDigest() {
		t.Error("the order of lines does not change the digest")
	}
}
