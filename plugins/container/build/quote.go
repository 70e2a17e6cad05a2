package build

import (
	"regexp"
	"strings"
)

// assignmentName is what a shell takes for a variable name before '='.
var assignmentName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// shellSafe are the bytes that need no quoting in a POSIX shell word.
const shellSafe = "-_./:@%+,"

// ShellQuote quotes s as one word for a POSIX shell (sh -c), so that the
// shell passes exactly the bytes of s as one argument. Words made only of
// letters, digits and -_./:@%+, (and '=' unless the word reads as a
// NAME=value assignment) stay as they are; anything else is put in
// single quotes, inside which a shell interprets nothing, and each single
// quote of s is closed, escaped and reopened:
//
//	it's   →  'it'\''s'
//	(empty) →  ''
//
// A NUL byte cannot be passed in an argument at all; s must not contain one.
//
// The runner uses it to echo the buildah commands it runs into the build
// log, so that they can be copied into a shell; builds themselves never pass
// package lines through a shell.
func ShellQuote(s string) string {
	if s != "" && only(s, shellSafe) {
		return s
	}
	// '=' is safe too, unless the word would read as an assignment
	// (NAME=value) in the command position.
	if before, _, ok := strings.Cut(s, "="); ok && only(s, shellSafe+"=") && !assignmentName.MatchString(before) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// ShellJoin quotes each argument with [ShellQuote] and joins them with
// spaces: a command line for a POSIX shell.
func ShellJoin(args []string) string {
	quoted := make([]string, len(args))
	for i, a := range args {
		quoted[i] = ShellQuote(a)
	}
	return strings.Join(quoted, " ")
}
