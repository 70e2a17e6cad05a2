package build

import (
	"bytes"
	"math/rand/v2"
	"os/exec"
	"testing"
)

func TestShellQuote(t *testing.T) {
	tests := map[string]string{
		"":                   "''",
		"abc":                "abc",
		"/var/lib/x-1.2_3":   "/var/lib/x-1.2_3",
		"user@host:5000/a+b": "user@host:5000/a+b",
		"a b":                "'a b'",
		"it's":               `'it'\''s'`,
		"'":                  `''\'''`,
		"$(id)":              "'$(id)'",
		"`id`":               "'`id`'",
		"a=b":                "'a=b'",
		"A_1=b":              "'A_1=b'",
		"--layers=false":     "--layers=false",
		"1a=b":               "1a=b",
		"=":                  "=",
		"a=b c":              "'a=b c'",
		"~":                  "'~'",
		"*":                  "'*'",
		"a\nb":               "'a\nb'",
		`\`:                  `'\'`,
	}
	for in, want := range tests {
		if got := ShellQuote(in); got != want {
			t.Errorf("ShellQuote(%q) = %s, want %s", in, got, want)
		}
	}
	if got := ShellJoin([]string{"buildah", "--authfile", "/w d/auth.json", ""}); got != "buildah --authfile '/w d/auth.json' ''" {
		t.Errorf("ShellJoin() = %s", got)
	}
}

// TestShellQuoteRoundTrip hands quoted adversarial and random strings to a
// real sh and checks that each comes back byte for byte as one argument.
func TestShellQuoteRoundTrip(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	words := []string{
		"", " ", "'", "''", `"`, `\`, `\'`, "'\\''", "$", "$(touch /tmp/pwned)", "`touch /tmp/pwned`",
		"${IFS}", "$IFS$9", "a;b", "a&&b", "a|b", "a>b", "<a", "*", "?", "[a-z]", "~", "~root", "#x",
		"a\nb", "\n", "\t", "a=b", "--x=$(id)", "=", "x==y", "!", "!!", "{a,b}", "a b  c", "-n", "--", "%s", "\\n", "é", "\xff\xfe", "\x01\x7f",
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 500 {
		b := make([]byte, rng.IntN(40))
		for i := range b {
			b[i] = byte(1 + rng.IntN(255)) // any byte but NUL
		}
		words = append(words, string(b))
	}
	// One shell prints every argument it receives, NUL-terminated.
	script := `for a in "$@"; do printf '%s\0' "$a"; done`
	quoted := ShellJoin(words)
	out, err := exec.Command(sh, "-c", `eval "set -- $1"; `+script, "sh", quoted).Output()
	if err != nil {
		t.Fatalf("sh: %v", err)
	}
	got := bytes.Split(bytes.TrimSuffix(out, []byte{0}), []byte{0})
	if len(got) != len(words) {
		t.Fatalf("sh saw %d arguments, want %d", len(got), len(words))
	}
	for i, w := range words {
		if string(got[i]) != w {
			t.Errorf("argument %d: sh saw %q, want %q (quoted %s)", i, got[i], w, ShellQuote(w))
		}
	}
	// And each word alone, as sh -c 'printf %s "$1"' would see it.
	for _, w := range words[:40] {
		out, err := exec.Command(sh, "-c", "printf %s "+ShellQuote(w)).Output()
		if err != nil || string(out) != w {
			t.Errorf("sh -c printf %%s %s = %q, %v; want %q", ShellQuote(w), out, err, w)
		}
	}
}
