package upstream

import (
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
)

// ErrInvalidPattern is a tag pattern path.Match cannot use.
var ErrInvalidPattern = errors.New("invalid tag pattern")

// Filter selects tags to sync with glob patterns over whole tags: '*' is
// any run of characters ('.' and '-' included: tags have no '/'), '?' is
// one character, '[a-z]' is a class, '[!0-9]' or '[^0-9]' its complement
// (fnmatch's and Go's spelling), '\' escapes. "1.*"
// matches "1.2" and "1.2.3-rc1"; "*-rc*" matches "2.0-rc1"; "latest" only
// "latest". A tag is selected when Include is empty or one of its patterns
// matches, and no Exclude pattern matches.
type Filter struct {
	Include, Exclude []string
}

// Validate checks every pattern; the error names the bad ones and matches
// ErrInvalidPattern.
func (f Filter) Validate() error {
	var errs []error
	for _, list := range []struct {
		field    string
		patterns []string
	}{{"include", f.Include}, {"exclude", f.Exclude}} {
		for _, p := range list.patterns {
			if p == "" {
				errs = append(errs, fmt.Errorf("%w: %s: empty pattern", ErrInvalidPattern, list.field))
				continue
			}
			if _, err := path.Match(goPattern(p), ""); err != nil {
				errs = append(errs, fmt.Errorf("%w: %s: %q: unbalanced '[' or a trailing '\\'", ErrInvalidPattern, list.field, p))
			}
		}
	}
	return errors.Join(errs...)
}

// Match reports whether the filter selects tag. Invalid patterns match
// nothing: Validate the filter first.
func (f Filter) Match(tag string) bool {
	return (len(f.Include) == 0 || matchAny(f.Include, tag)) && !matchAny(f.Exclude, tag)
}

// Apply returns the selected tags, sorted, without duplicates.
func (f Filter) Apply(tags []string) []string {
	out := make([]string, 0, len(tags))
	for _, t := range tags {
		if f.Match(t) {
			out = append(out, t)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func matchAny(patterns []string, tag string) bool {
	for _, p := range patterns {
		if ok, err := path.Match(goPattern(p), tag); err == nil && ok {
			return true
		}
	}
	return false
}

// goPattern spells fnmatch's negated class "[!…]" as path.Match's "[^…]".
func goPattern(p string) string {
	if !strings.Contains(p, "[!") {
		return p
	}
	b := []byte(p)
	inClass := false
	for i := 0; i < len(b); i++ {
		switch {
		case b[i] == '\\':
			i++ // skip the escaped byte
		case !inClass && b[i] == '[':
			inClass = true
			if i+1 < len(b) && b[i+1] == '!' {
				b[i+1] = '^'
				i++
			}
		case inClass && b[i] == ']':
			inClass = false
		}
	}
	return string(b)
}
