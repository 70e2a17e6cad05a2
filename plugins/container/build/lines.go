package build

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/berth-dev/berth/core"
)

// Limits of the package lists of a spec.
const (
	// MaxLines bounds the lines of one package list (blank and comment lines
	// included).
	MaxLines = 1000
	// MaxLineLength bounds one line, in bytes.
	MaxLineLength = 1024
	// maxLineMessages bounds the messages recorded for one list; further bad
	// lines are counted in a last message, never dropped silently.
	maxLineMessages = 50
)

// SplitLines splits the text of a text box into lines, one package per line,
// as [Spec] wants them. It accepts "\n" and "\r\n" line ends; a final line
// end does not make an extra line.
func SplitLines(text string) []string {
	if text == "" {
		return nil
	}
	text = strings.TrimSuffix(strings.ReplaceAll(text, "\r\n", "\n"), "\n")
	return strings.Split(text, "\n")
}

// trailingComment is pip's rule for comments in requirement files: a '#' at
// the start of a line or after white space starts a comment. A '#' inside a
// word (a URL fragment such as "#sha256=…") does not.
var trailingComment = regexp.MustCompile(`(^|[ \t]+)#.*$`)

// cleanLine returns a line without the blanks around it and without its
// trailing comment; ok is false for blank and comment-only lines.
func cleanLine(raw string) (line string, ok bool) {
	line = strings.Trim(trailingComment.ReplaceAllString(raw, ""), " \t")
	return line, line != ""
}

// cleanLines returns the meaningful lines of a list, cleaned.
func cleanLines(lines []string) []string {
	var out []string
	for _, raw := range lines {
		if line, ok := cleanLine(raw); ok {
			out = append(out, line)
		}
	}
	return out
}

// checkRaw rejects what no line of any list may hold: control characters
// (tab aside), characters outside ASCII, and excessive length. It runs on the
// line as typed, before comments are removed, so that nothing hides in one.
func checkRaw(raw string) error {
	if len(raw) > MaxLineLength {
		return fmt.Errorf("longer than %d characters", MaxLineLength)
	}
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch {
		case c == '\t':
		case c < 0x20 || c == 0x7f:
			return fmt.Errorf("contains the control character %U at column %d (one package per line)", rune(c), i+1)
		case c >= 0x80:
			return fmt.Errorf("contains a character outside ASCII at column %d", i+1)
		}
	}
	return nil
}

// checkLines checks every line of a list with check and records each bad
// line under field as "line N: "text": why". Blank lines and comment lines
// (starting with '#') are skipped.
func checkLines(v *core.ValidationError, field string, lines []string, check func(line string) error) {
	if len(lines) > MaxLines {
		v.Add(field, "has %d lines, more than %d", len(lines), MaxLines)
		return
	}
	bad := 0
	for i, raw := range lines {
		err := checkRaw(raw)
		if err == nil {
			line, ok := cleanLine(raw)
			if !ok {
				continue
			}
			err = check(line)
		}
		if err == nil {
			continue
		}
		bad++
		if bad <= maxLineMessages {
			v.Add(field, "line %d: %s: %v", i+1, quoteLine(raw), err)
		}
	}
	if bad > maxLineMessages {
		v.Add(field, "and %d more invalid lines", bad-maxLineMessages)
	}
}

// quoteLine quotes a line for a message, shortened if long.
func quoteLine(s string) string {
	const max = 80
	if len(s) > max {
		return fmt.Sprintf("%q…", s[:max])
	}
	return fmt.Sprintf("%q", s)
}

// isAlnum reports whether c is an ASCII letter or digit.
func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// isDigit reports whether c is an ASCII digit.
func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// allDigits reports whether s is a non-empty run of ASCII digits.
func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return s != ""
}

// only reports whether every byte of s is in set or alphanumeric.
func only(s, set string) bool {
	for i := 0; i < len(s); i++ {
		if !isAlnum(s[i]) && strings.IndexByte(set, s[i]) < 0 {
			return false
		}
	}
	return true
}

// firstNotIn returns the first byte of s that is neither alphanumeric nor in
// set, as a quoted string for messages.
func firstNotIn(s, set string) string {
	for i := 0; i < len(s); i++ {
		if !isAlnum(s[i]) && strings.IndexByte(set, s[i]) < 0 {
			return fmt.Sprintf("%q", s[i:i+1])
		}
	}
	return ""
}
