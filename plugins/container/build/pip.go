package build

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
)

// checkPip and the pep508 parser implement the "Pip lines" grammar of the
// package documentation.

// pep440 pieces, from PEP 440's appendix and the packaging library's
// specifier grammar.
const (
	pep440Release = `v?(?:[0-9]+!)?[0-9]+(?:\.[0-9]+)*`
	pep440Suffix  = `(?:[-_.]?(?:a|b|c|rc|alpha|beta|pre|preview)[-_.]?[0-9]*)?` + // pre-release
		`(?:-[0-9]+|[-_.]?(?:post|rev|r)[-_.]?[0-9]*)?` + // post-release
		`(?:[-_.]?dev[-_.]?[0-9]*)?` // development release
	pep440Local = `(?:\+[a-z0-9]+(?:[-_.][a-z0-9]+)*)?`
)

var (
	pep440Full       = regexp.MustCompile(`(?i)^` + pep440Release + pep440Suffix + pep440Local + `$`)
	pep440Public     = regexp.MustCompile(`(?i)^` + pep440Release + pep440Suffix + `$`)
	pep440Prefix     = regexp.MustCompile(`(?i)^` + pep440Release + `\.\*$`)
	pep440Compatible = regexp.MustCompile(`(?i)^v?(?:[0-9]+!)?[0-9]+(?:\.[0-9]+)+` + pep440Suffix + `$`)
)

// markerVariables are the environment marker variables of PEP 508, with the
// legacy dotted names pip still accepts.
var markerVariables = map[string]bool{
	"python_version":                 true,
	"python_full_version":            true,
	"os_name":                        true,
	"sys_platform":                   true,
	"platform_release":               true,
	"platform_system":                true,
	"platform_version":               true,
	"platform_machine":               true,
	"platform_python_implementation": true,
	"implementation_name":            true,
	"implementation_version":         true,
	"extra":                          true,
	"extras":                         true,
	"dependency_groups":              true,
	// Legacy names.
	"os.name":                        true,
	"sys.platform":                   true,
	"platform.version":               true,
	"platform.machine":               true,
	"platform.python_implementation": true,
	"python_implementation":          true,
}

// markerStringChars are the characters besides letters and digits that a
// marker string may hold here: PEP 508's set without $ ` \ ; & | < >.
const markerStringChars = " ._-+*!~=,:/#()@%^[]{}?"

// urlChars are the characters besides letters and digits a requirement URL
// may hold: enough for paths, "#sha256=…" fragments and "@ref" suffixes.
const urlChars = "-._~:/?#@%=+,!"

// checkPip checks one pip line.
func checkPip(line string) error {
	if strings.HasPrefix(line, "-") {
		return errors.New("pip options (-r, -e, -i, --index-url, …) are not allowed, only requirement specifiers (PEP 508)")
	}
	p := &pep508{s: line}
	return p.requirement()
}

// pep508 is a parser of one PEP 508 requirement.
type pep508 struct {
	s string
	i int
}

func (p *pep508) eof() bool    { return p.i >= len(p.s) }
func (p *pep508) rest() string { return p.s[p.i:] }

func (p *pep508) peek() byte {
	if p.eof() {
		return 0
	}
	return p.s[p.i]
}

// ws skips white space and reports whether there was some.
func (p *pep508) ws() bool {
	start := p.i
	for !p.eof() && (p.s[p.i] == ' ' || p.s[p.i] == '\t') {
		p.i++
	}
	return p.i > start
}

// take consumes the longest run of letters, digits and bytes of set.
func (p *pep508) take(set string) string {
	start := p.i
	for !p.eof() && (isAlnum(p.s[p.i]) || strings.IndexByte(set, p.s[p.i]) >= 0) {
		p.i++
	}
	return p.s[start:p.i]
}

// unexpected describes the text at the cursor.
func (p *pep508) unexpected(what string) error {
	if p.eof() {
		return fmt.Errorf("expected %s at the end", what)
	}
	return fmt.Errorf("expected %s at %s", what, quoteLine(p.rest()))
}

func (p *pep508) requirement() error {
	if strings.HasPrefix(p.s, "/") || strings.HasPrefix(p.s, ".") || strings.HasPrefix(p.s, "~") {
		return errors.New("local paths are not allowed, only requirement specifiers (PEP 508)")
	}
	name := p.take("._-")
	if strings.HasPrefix(p.rest(), "://") {
		return errors.New("a URL needs a name: write name @ URL")
	}
	if err := checkPyName(name, p); err != nil {
		return err
	}
	p.ws()
	if p.peek() == '[' {
		if err := p.extras(); err != nil {
			return err
		}
		p.ws()
	}
	if p.peek() == '@' {
		return p.urlRequirement()
	}
	if err := p.versionSpec(); err != nil {
		return err
	}
	p.ws()
	if p.peek() == ';' {
		p.i++
		return p.marker()
	}
	if !p.eof() {
		return fmt.Errorf("unexpected %s after the requirement", quoteLine(p.rest()))
	}
	return nil
}

// checkPyName checks a distribution name (or an extra): letters, digits and
// . _ -, starting and ending with a letter or digit.
func checkPyName(name string, p *pep508) error {
	switch {
	case name == "":
		return p.unexpected("a package name")
	case !isAlnum(name[0]) || !isAlnum(name[len(name)-1]):
		return fmt.Errorf("invalid name %q: it must start and end with a letter or digit", name)
	}
	return nil
}

// extras parses "[a, b]".
func (p *pep508) extras() error {
	p.i++ // '['
	p.ws()
	if p.peek() == ']' {
		p.i++
		return nil
	}
	for {
		if err := checkPyName(p.take("._-"), p); err != nil {
			return fmt.Errorf("in the extras: %w", err)
		}
		p.ws()
		switch p.peek() {
		case ',':
			p.i++
			p.ws()
		case ']':
			p.i++
			return nil
		default:
			return p.unexpected("',' or ']' in the extras")
		}
	}
}

// urlRequirement parses "@ URL [; marker]".
func (p *pep508) urlRequirement() error {
	p.i++ // '@'
	p.ws()
	start := p.i
	for !p.eof() && p.s[p.i] != ' ' && p.s[p.i] != '\t' {
		p.i++
	}
	if err := checkRequirementURL(p.s[start:p.i]); err != nil {
		return err
	}
	if p.eof() {
		return nil
	}
	p.ws()
	if p.peek() != ';' {
		return p.unexpected("';' and an environment marker after the URL")
	}
	p.i++
	return p.marker()
}

// checkRequirementURL checks the URL of a "name @ URL" requirement.
func checkRequirementURL(raw string) error {
	if raw == "" {
		return errors.New("missing URL after '@'")
	}
	if !only(raw, urlChars) {
		return fmt.Errorf("the URL may only hold letters, digits and %s (found %s)", urlChars, firstNotIn(raw, urlChars))
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("invalid URL: %w", err)
	}
	switch {
	case u.Scheme != "https" && u.Scheme != "git+https":
		return fmt.Errorf("URL scheme %q is not allowed: use https:// or git+https://", u.Scheme)
	case u.User != nil:
		return errors.New("the URL holds credentials, which would be stored in the image history")
	case u.Host == "":
		return errors.New("the URL has no host")
	}
	return nil
}

// versionOps are PEP 440's comparison operators, longest first.
var versionOps = []string{"===", "==", "!=", "<=", ">=", "~=", "<", ">"}

// op consumes a comparison operator, or returns "".
func (p *pep508) op() string {
	for _, op := range versionOps {
		if strings.HasPrefix(p.rest(), op) {
			p.i += len(op)
			return op
		}
	}
	return ""
}

// versionSpec parses an optional "op version, op version" list, possibly in
// parentheses.
func (p *pep508) versionSpec() error {
	paren := p.peek() == '('
	if paren {
		p.i++
		p.ws()
	}
	for n := 0; ; n++ {
		op := p.op()
		if op == "" {
			if n == 0 && !paren {
				if p.peek() == '=' {
					return errors.New("a single '=' is conda's syntax: pip wants '=='")
				}
				return nil
			}
			return p.unexpected("a version operator (==, !=, <=, >=, <, >, ~=, ===)")
		}
		p.ws()
		v := p.take("._*+!-")
		if err := checkPEP440(op, v); err != nil {
			return err
		}
		p.ws()
		if p.peek() != ',' {
			break
		}
		p.i++
		p.ws()
	}
	if paren {
		if p.peek() != ')' {
			return p.unexpected("')'")
		}
		p.i++
	}
	return nil
}

// checkPEP440 checks the version of one "op version" clause.
func checkPEP440(op, v string) error {
	ok := false
	switch op {
	case "":
		return nil
	case "===":
		ok = v != ""
	case "==", "!=":
		ok = pep440Full.MatchString(v) || pep440Prefix.MatchString(v)
	case "~=":
		ok = pep440Compatible.MatchString(v)
	default:
		ok = pep440Public.MatchString(v)
	}
	if ok {
		return nil
	}
	if v == "" {
		return fmt.Errorf("missing version after %q", op)
	}
	hint := ""
	switch {
	case strings.HasSuffix(v, "*") && op != "==" && op != "!=":
		hint = ": a wildcard is only allowed with == and !="
	case op == "~=":
		hint = ": ~= needs at least two release numbers (~=1.4)"
	case strings.Contains(v, "+") && op != "==" && op != "!=":
		hint = ": a local version (+…) is only allowed with == and !="
	}
	return fmt.Errorf("invalid version %q after %q (PEP 440)%s", v, op, hint)
}

// marker parses an environment marker up to the end of the line.
func (p *pep508) marker() error {
	toks, err := markerTokens(p.rest())
	if err != nil {
		return fmt.Errorf("invalid environment marker: %w", err)
	}
	if len(toks) == 0 {
		return errors.New("missing environment marker after ';'")
	}
	m := &markerParser{toks: toks}
	if err := m.or(); err != nil {
		return fmt.Errorf("invalid environment marker: %w", err)
	}
	if m.i < len(m.toks) {
		return fmt.Errorf("invalid environment marker: unexpected %q", m.toks[m.i].text)
	}
	p.i = len(p.s)
	return nil
}

// markerToken is one token of an environment marker.
type markerToken struct {
	kind byte // '(' ')' 's' (string) 'w' (word) 'o' (operator)
	text string
}

// markerTokens splits a marker into tokens.
func markerTokens(s string) ([]markerToken, error) {
	var toks []markerToken
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t':
			i++
		case c == '(' || c == ')':
			toks = append(toks, markerToken{kind: c, text: s[i : i+1]})
			i++
		case c == '"' || c == '\'':
			end := strings.IndexByte(s[i+1:], c)
			if end < 0 {
				return nil, fmt.Errorf("unterminated string %s", s[i:])
			}
			str := s[i+1 : i+1+end]
			if !only(str, markerStringChars) {
				return nil, fmt.Errorf("the string %q holds %s, which is not allowed in marker strings", str, firstNotIn(str, markerStringChars))
			}
			toks = append(toks, markerToken{kind: 's', text: str})
			i += end + 2
		case strings.IndexByte("<>=!~", c) >= 0:
			j := i
			for j < len(s) && strings.IndexByte("<>=!~", s[j]) >= 0 {
				j++
			}
			toks = append(toks, markerToken{kind: 'o', text: s[i:j]})
			i = j
		case isAlnum(c) || c == '_' || c == '.':
			j := i
			for j < len(s) && (isAlnum(s[j]) || s[j] == '_' || s[j] == '.') {
				j++
			}
			toks = append(toks, markerToken{kind: 'w', text: s[i:j]})
			i = j
		default:
			return nil, fmt.Errorf("unexpected %s", quoteLine(s[i:]))
		}
	}
	return toks, nil
}

// markerParser parses marker tokens with PEP 508's grammar:
//
//	or   = and ('or' and)*
//	and  = expr ('and' expr)*
//	expr = '(' or ')' | var op var
//	var  = variable | string
//	op   = version_cmp | 'in' | 'not' 'in'
type markerParser struct {
	toks []markerToken
	i    int
}

func (m *markerParser) peek() (markerToken, bool) {
	if m.i >= len(m.toks) {
		return markerToken{}, false
	}
	return m.toks[m.i], true
}

func (m *markerParser) word(w string) bool {
	if t, ok := m.peek(); ok && t.kind == 'w' && t.text == w {
		m.i++
		return true
	}
	return false
}

func (m *markerParser) or() error {
	if err := m.and(); err != nil {
		return err
	}
	for m.word("or") {
		if err := m.and(); err != nil {
			return err
		}
	}
	return nil
}

func (m *markerParser) and() error {
	if err := m.expr(); err != nil {
		return err
	}
	for m.word("and") {
		if err := m.expr(); err != nil {
			return err
		}
	}
	return nil
}

func (m *markerParser) expr() error {
	if t, ok := m.peek(); ok && t.kind == '(' {
		m.i++
		if err := m.or(); err != nil {
			return err
		}
		if t, ok := m.peek(); !ok || t.kind != ')' {
			return errors.New("missing ')'")
		}
		m.i++
		return nil
	}
	if err := m.variable(); err != nil {
		return err
	}
	if err := m.operator(); err != nil {
		return err
	}
	return m.variable()
}

func (m *markerParser) variable() error {
	t, ok := m.peek()
	switch {
	case !ok:
		return errors.New("expected a marker variable or a quoted string at the end")
	case t.kind == 's':
	case t.kind == 'w' && markerVariables[t.text]:
	case t.kind == 'w':
		return fmt.Errorf("unknown marker variable %q", t.text)
	default:
		return fmt.Errorf("expected a marker variable or a quoted string, not %q", t.text)
	}
	m.i++
	return nil
}

func (m *markerParser) operator() error {
	t, ok := m.peek()
	switch {
	case !ok:
		return errors.New("expected a comparison at the end")
	case t.kind == 'o':
		for _, op := range versionOps {
			if t.text == op {
				m.i++
				return nil
			}
		}
		return fmt.Errorf("unknown comparison %q", t.text)
	case m.word("in"):
		return nil
	case m.word("not"):
		if m.word("in") {
			return nil
		}
		return errors.New("expected 'in' after 'not'")
	}
	return fmt.Errorf("expected a comparison, not %q", t.text)
}
