package build

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// parseConda and its helpers implement the "Conda lines" grammar of the
// package documentation.

var (
	condaName    = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.+-]*$`)
	condaChannel = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*(?:/[A-Za-z0-9][A-Za-z0-9_.-]*)*$`)
	// condaConstraint is one version constraint: an optional operator and a
	// version pattern ("*" wildcards allowed).
	condaConstraint = regexp.MustCompile(`^(?:==|!=|<=|>=|~=|<|>|=)?[A-Za-z0-9_.*+!]+$`)
	condaBuild      = regexp.MustCompile(`^[A-Za-z0-9_.*+!]+$`)
	condaBuildNum   = regexp.MustCompile(`^(?:==|!=|<=|>=|<|>|=)?[0-9]+$`)
	condaHex        = regexp.MustCompile(`^[0-9a-fA-F]+$`)
)

// condaSubdirs are conda's platform subdirectories; a channel ending in one
// ("conda-forge/linux-64") restricts the package to it.
var condaSubdirs = map[string]bool{
	"noarch": true, "linux-32": true, "linux-64": true, "linux-aarch64": true,
	"linux-armv6l": true, "linux-armv7l": true, "linux-ppc64": true,
	"linux-ppc64le": true, "linux-riscv64": true, "linux-s390x": true,
	"osx-64": true, "osx-arm64": true, "win-32": true, "win-64": true,
	"win-arm64": true, "freebsd-64": true, "zos-z": true,
	"emscripten-wasm32": true, "wasi-wasm32": true,
}

// condaKeys are the bracket keys of a match spec; their values are checked
// by kind.
var condaKeys = map[string]string{
	"version": "version", "build": "build", "build_number": "build_number",
	"channel": "channel", "subdir": "subdir", "md5": "hex", "sha256": "hex",
	"license": "text", "license_family": "text", "fn": "text", "url": "text",
	"features": "text", "track_features": "text",
}

// condaTextChars are the characters besides letters and digits a free-form
// bracket value may hold.
const condaTextChars = " ._-+*!~=,:/@%"

// condaSpec is a parsed conda line: the spec passed to conda and the channel
// it names ("" for none).
type condaSpec struct {
	spec    string
	channel string
}

// checkConda checks one conda line.
func checkConda(line string) error {
	_, err := parseConda(line)
	return err
}

// parseConda parses one conda line.
func parseConda(line string) (condaSpec, error) {
	rest := line
	dashC := false
	if strings.HasPrefix(rest, "-") {
		after, ok := strings.CutPrefix(rest, "-c")
		if !ok || (after != "" && after[0] != ' ' && after[0] != '\t') {
			return condaSpec{}, errors.New("options are not allowed; only the channel form -c channel::package is")
		}
		rest = strings.TrimLeft(after, " \t")
		dashC = true
	}
	cs := condaSpec{spec: rest} // "channel::spec" stays whole
	if ch, spec, ok := strings.Cut(rest, "::"); ok {
		if strings.Contains(ch, "://") {
			return condaSpec{}, fmt.Errorf("invalid channel %q: channel URLs are not supported, use a channel name", ch)
		}
		if strings.Contains(ch, ":") {
			return condaSpec{}, fmt.Errorf("invalid channel %q: the channel:namespace:name form is not supported, write channel::name", ch)
		}
		if err := checkCondaChannel(ch); err != nil {
			return condaSpec{}, err
		}
		cs.channel = channelForFlag(ch)
		rest = spec
	} else if dashC {
		return condaSpec{}, errors.New("-c needs the form -c channel::package")
	}
	if err := checkMatchSpec(rest); err != nil {
		return condaSpec{}, err
	}
	return cs, nil
}

// checkCondaChannel checks a channel name (with optional "/label/…" parts
// and subdir).
func checkCondaChannel(ch string) error {
	if ch == "" {
		return errors.New("empty channel before '::'")
	}
	if !condaChannel.MatchString(ch) {
		return fmt.Errorf("invalid channel %q: letters, digits and _ . -, in parts separated by '/'", ch)
	}
	return nil
}

// channelForFlag is the channel to pass with -c: the channel without a
// trailing platform subdirectory.
func channelForFlag(ch string) string {
	if i := strings.LastIndexByte(ch, '/'); i >= 0 && condaSubdirs[ch[i+1:]] {
		return ch[:i]
	}
	return ch
}

// checkMatchSpec checks a match spec without its channel: a name, then a
// version and build ("=1.17=py39*", ">=1.17,<2", " 1.17 py39_0"), then
// optional "[key=value, …]".
func checkMatchSpec(spec string) error {
	i := 0
	for i < len(spec) && (isAlnum(spec[i]) || strings.IndexByte("_.+-", spec[i]) >= 0) {
		i++
	}
	name, rest := spec[:i], spec[i:]
	switch {
	case name == "":
		if spec == "" {
			return errors.New("missing package name")
		}
		return fmt.Errorf("expected a package name at %s", quoteLine(spec))
	case !condaName.MatchString(name):
		return fmt.Errorf("invalid package name %q", name)
	}
	if j := strings.IndexByte(rest, '['); j >= 0 {
		if !strings.HasSuffix(rest, "]") {
			return fmt.Errorf("unexpected text after the brackets in %s", quoteLine(rest[j:]))
		}
		if err := checkCondaBrackets(rest[j+1 : len(rest)-1]); err != nil {
			return err
		}
		rest = rest[:j]
	}
	return checkCondaVersionBuild(rest)
}

// checkCondaVersionBuild checks what follows the name: nothing, " version
// [build]", "=version[=build]" or "op version…".
func checkCondaVersionBuild(s string) error {
	switch {
	case s == "":
		return nil
	case s[0] == ' ' || s[0] == '\t':
		f := strings.Fields(s)
		if len(f) > 2 {
			return fmt.Errorf("unexpected %q: a match spec is name [version [build]]", strings.Join(f[2:], " "))
		}
		if err := checkCondaVersion(f[0]); err != nil {
			return err
		}
		if len(f) == 2 && !condaBuild.MatchString(f[1]) {
			return fmt.Errorf("invalid build string %q", f[1])
		}
		return nil
	case s[0] == '=' && !strings.HasPrefix(s, "=="):
		version, build, hasBuild := strings.Cut(s[1:], "=")
		if !condaConstraint.MatchString(version) || strings.ContainsAny(version[:1], "<>!~") {
			return fmt.Errorf("invalid version %q", version)
		}
		if hasBuild && !condaBuild.MatchString(build) {
			return fmt.Errorf("invalid build string %q", build)
		}
		return nil
	case strings.IndexByte("<>!~=", s[0]) >= 0:
		return checkCondaVersion(s)
	}
	return fmt.Errorf("unexpected %s after the package name", quoteLine(s))
}

// checkCondaVersion checks a version spec: constraints joined by ',' (and)
// and '|' (or).
func checkCondaVersion(v string) error {
	for _, alt := range strings.Split(v, "|") {
		for _, c := range strings.Split(alt, ",") {
			if !condaConstraint.MatchString(c) {
				if c == "" {
					return fmt.Errorf("invalid version %q: empty constraint", v)
				}
				return fmt.Errorf("invalid version %q: bad constraint %q", v, c)
			}
		}
	}
	return nil
}

// checkCondaBrackets checks "key=value, key='value'" inside brackets.
func checkCondaBrackets(s string) error {
	for s = strings.TrimSpace(s); s != ""; {
		key, after, ok := strings.Cut(s, "=")
		key = strings.TrimSpace(key)
		if !ok {
			return fmt.Errorf("expected key=value in the brackets, not %q", s)
		}
		kind, known := condaKeys[key]
		if !known {
			return fmt.Errorf("unknown match spec key %q", key)
		}
		after = strings.TrimLeft(after, " \t")
		var value string
		if after != "" && (after[0] == '\'' || after[0] == '"') {
			end := strings.IndexByte(after[1:], after[0])
			if end < 0 {
				return fmt.Errorf("unterminated quote in the value of %q", key)
			}
			value, s = after[1:1+end], strings.TrimLeft(after[2+end:], " \t")
		} else {
			end := strings.IndexByte(after, ',')
			if end < 0 {
				end = len(after)
			}
			value, s = strings.TrimSpace(after[:end]), after[end:]
		}
		if err := checkCondaValue(kind, value); err != nil {
			return fmt.Errorf("invalid %s %q: %w", key, value, err)
		}
		if s != "" {
			if s[0] != ',' {
				return fmt.Errorf("expected ',' between key=value pairs, not %q", s)
			}
			s = strings.TrimLeft(s[1:], " \t")
		}
	}
	return nil
}

// checkCondaValue checks a bracket value by the kind of its key.
func checkCondaValue(kind, v string) error {
	if v == "" {
		return errors.New("empty value")
	}
	switch kind {
	case "version":
		return checkCondaVersion(strings.ReplaceAll(v, " ", ""))
	case "build":
		if !condaBuild.MatchString(v) {
			return errors.New("letters, digits and _ . * + !")
		}
	case "build_number":
		if !condaBuildNum.MatchString(v) {
			return errors.New("a number, optionally after a comparison")
		}
	case "channel":
		return checkCondaChannel(v)
	case "subdir":
		if !condaSubdirs[v] {
			return errors.New("unknown platform subdirectory")
		}
	case "hex":
		if !condaHex.MatchString(v) {
			return errors.New("hexadecimal digits")
		}
	default:
		if !only(v, condaTextChars) {
			return fmt.Errorf("letters, digits and %q only (found %s)", condaTextChars, firstNotIn(v, condaTextChars))
		}
	}
	return nil
}
