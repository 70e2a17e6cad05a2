package build

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// checkAPT and its helpers implement the "APT lines" grammar of the package
// documentation.

// aptChars are the characters besides letters and digits an APT line may
// hold.
const aptChars = "+.-_~:=/"

var (
	debName    = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]+$`)
	debArch    = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)
	debRelease = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9.+_~-]*$`)
)

// checkAPT checks one APT line.
func checkAPT(line string) error {
	if strings.HasPrefix(line, "-") {
		return errors.New("options are not allowed, only package names")
	}
	if !only(line, aptChars+" \t") {
		return fmt.Errorf("invalid character %s: a package is name, name=version or name/release", firstNotIn(line, aptChars+" \t"))
	}
	if strings.ContainsAny(line, " \t") {
		return errors.New("one package per line (found white space)")
	}
	name, version, hasVersion := strings.Cut(line, "=")
	name, release, hasRelease := strings.Cut(name, "/")
	if hasVersion && hasRelease || hasVersion && strings.Contains(version, "/") {
		return errors.New("give a version (name=version) or a release (name/release), not both")
	}
	name, arch, hasArch := strings.Cut(name, ":")
	if err := checkDebName(name); err != nil {
		return err
	}
	if hasArch && !debArch.MatchString(arch) {
		return fmt.Errorf("invalid architecture %q", arch)
	}
	switch {
	case hasVersion:
		if err := checkDebVersion(version); err != nil {
			return fmt.Errorf("invalid version %q: %w", version, err)
		}
	case hasRelease:
		if !debRelease.MatchString(release) {
			return fmt.Errorf("invalid release %q: letters, digits and . + _ ~ -, starting with a letter or digit", release)
		}
	}
	return nil
}

// checkDebName checks a Debian package name.
func checkDebName(name string) error {
	switch {
	case name == "":
		return errors.New("missing package name")
	case strings.ToLower(name) != name && debName.MatchString(strings.ToLower(name)):
		return fmt.Errorf("invalid package name %q: Debian package names are lower case", name)
	case !debName.MatchString(name):
		return fmt.Errorf("invalid package name %q: lower-case letters, digits and + - ., at least two characters, starting with a letter or digit", name)
	case strings.HasSuffix(name, "-"):
		return fmt.Errorf("invalid package name %q: a trailing '-' makes apt-get remove the package", name)
	}
	return nil
}

// checkDebVersion checks a version against Debian policy (5.6.12):
// [epoch:]upstream_version[-debian_revision], where the epoch is a number,
// the upstream version starts with a digit and holds letters, digits and
// . + ~ - (a '-' only when there is a revision), and the revision holds
// letters, digits and + . ~.
func checkDebVersion(v string) error {
	if v == "" {
		return errors.New("empty version")
	}
	rest := v
	if epoch, after, ok := strings.Cut(v, ":"); ok {
		if !allDigits(epoch) {
			return fmt.Errorf("the epoch %q must be a number", epoch)
		}
		rest = after
	}
	upstream := rest
	if i := strings.LastIndexByte(rest, '-'); i >= 0 {
		revision := rest[i+1:]
		upstream = rest[:i]
		if revision == "" || !only(revision, "+.~") {
			return fmt.Errorf("the revision %q may only hold letters, digits and + . ~", revision)
		}
	}
	switch {
	case upstream == "":
		return errors.New("empty upstream version")
	case !isDigit(upstream[0]):
		return fmt.Errorf("the upstream version %q must start with a digit", upstream)
	case !only(upstream, ".+~-"):
		return fmt.Errorf("the upstream version %q may only hold letters, digits and . + ~ - (found %s)", upstream, firstNotIn(upstream, ".+~-"))
	}
	return nil
}
