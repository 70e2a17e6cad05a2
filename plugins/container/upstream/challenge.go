package upstream

import "strings"

// authChallenge is one challenge of a WWW-Authenticate header.
type authChallenge struct {
	scheme string            // lower case: "basic", "bearer", …
	params map[string]string // keys lower case
}

// parseChallenges parses WWW-Authenticate values (RFC 7235): each holds one
// or more challenges, a scheme followed by comma-separated key=value
// parameters, values being tokens or quoted strings.
func parseChallenges(values []string) []authChallenge {
	var out []authChallenge
	for _, s := range values {
		for {
			s = strings.TrimLeft(s, " \t,")
			scheme, rest := cutToken(s)
			if scheme == "" {
				// Not a challenge (a token68's padding, garbage): skip to
				// the next comma.
				i := strings.IndexByte(s, ',')
				if i < 0 {
					break
				}
				s = s[i+1:]
				continue
			}
			ch := authChallenge{scheme: strings.ToLower(scheme), params: map[string]string{}}
			s = rest
			for {
				p := strings.TrimLeft(s, " \t")
				key, rest := cutToken(p)
				rest = strings.TrimLeft(rest, " \t")
				if key == "" || !strings.HasPrefix(rest, "=") {
					break // the next challenge's scheme, a token68, or the end
				}
				rest = strings.TrimLeft(rest[1:], " \t")
				var val string
				if strings.HasPrefix(rest, `"`) {
					val, rest = cutQuoted(rest)
				} else {
					val, rest = cutToken(rest)
				}
				ch.params[strings.ToLower(key)] = val
				s = strings.TrimLeft(rest, " \t")
				if !strings.HasPrefix(s, ",") {
					break
				}
				s = s[1:]
			}
			out = append(out, ch)
		}
	}
	return out
}

// cutToken splits s after its leading RFC 7230 token.
func cutToken(s string) (tok, rest string) {
	i := 0
	for i < len(s) && isTokenChar(s[i]) {
		i++
	}
	return s[:i], s[i:]
}

func isTokenChar(b byte) bool {
	switch {
	case 'a' <= b && b <= 'z', 'A' <= b && b <= 'Z', '0' <= b && b <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", b) >= 0
}

// cutQuoted splits s, which starts with a double quote, after its quoted
// string, unescaping backslash pairs.
func cutQuoted(s string) (val, rest string) {
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch s[i] {
		case '\\':
			if i+1 < len(s) {
				i++
				b.WriteByte(s[i])
			}
		case '"':
			return b.String(), s[i+1:]
		default:
			b.WriteByte(s[i])
		}
	}
	return b.String(), "" // unterminated: take the rest
}
