package build

import (
	"fmt"
	"strings"
	"sync"
	"testing"
)

func TestHeadTailKeepsEverythingThatFits(t *testing.T) {
	h := NewHeadTail(10, 10)
	fmt.Fprint(h, "abc\n")
	fmt.Fprint(h, "def\n")
	if got := h.String(); got != "abc\ndef\n" || h.Truncated() || h.Written() != 8 {
		t.Errorf("String() = %q, Truncated() = %v, Written() = %d", got, h.Truncated(), h.Written())
	}
	fmt.Fprint(h, "0123456789\n") // head fills, the rest goes to the tail
	if got := h.String(); got != "abc\ndef\n0123456789\n" || h.Truncated() {
		t.Errorf("String() = %q, Truncated() = %v", got, h.Truncated())
	}
}

func TestHeadTailCutsAtLines(t *testing.T) {
	h := NewHeadTail(12, 12)
	for i := range 100 {
		fmt.Fprintf(h, "line %02d\n", i) // 8 bytes each
	}
	if !h.Truncated() || h.Written() != 800 {
		t.Fatalf("Truncated() = %v, Written() = %d", h.Truncated(), h.Written())
	}
	// head "line 00\nline" → "line 00\n"; tail "e 98\nline 99\n" → "line 99\n".
	want := "line 00\n[… 784 bytes omitted …]\nline 99\n"
	if got := h.String(); got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

func TestHeadTailWithoutLineEnds(t *testing.T) {
	h := NewHeadTail(4, 4)
	h.Write([]byte(strings.Repeat("x", 20) + "END!"))
	if got := h.String(); got != "xxxx\n[… 16 bytes omitted …]\nEND!" {
		t.Errorf("String() = %q", got)
	}
	// A write larger than the tail keeps its end.
	h.Write([]byte(strings.Repeat("y", 100) + "last"))
	if got := h.String(); !strings.HasSuffix(got, "\nlast") || !strings.HasPrefix(got, "xxxx\n") {
		t.Errorf("String() = %q", got)
	}
}

func TestHeadTailRingWraps(t *testing.T) {
	for _, chunk := range []int{1, 3, 7, 10, 11, 25} {
		h := NewHeadTail(0, 10)
		var all strings.Builder
		for i := range 57 {
			s := strings.Repeat(string(rune('a'+i%26)), chunk)
			all.WriteString(s)
			h.Write([]byte(s))
		}
		full := all.String()
		want := fmt.Sprintf("[… %d bytes omitted …]\n%s", len(full)-10, full[len(full)-10:])
		if got := h.String(); got != want {
			t.Errorf("chunk %d: String() = %q, want %q", chunk, got, want)
		}
	}
	if got := NewHeadTail(-1, -1); got.String() != "" {
		t.Errorf("empty HeadTail = %q", got.String())
	}
}

func TestHeadTailConcurrent(t *testing.T) {
	h := NewHeadTail(1<<10, 1<<10)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 1000 {
				fmt.Fprintf(h, "goroutine %d line %d\n", g, i)
			}
		})
	}
	wg.Wait()
	if h.Written() < int64(8*1000*len("goroutine 0 line 0\n")) {
		t.Errorf("Written() = %d", h.Written())
	}
	if n := len(h.Bytes()); n > 2<<10+64 {
		t.Errorf("kept %d bytes, want at most about 2 KiB", n)
	}
}

func TestLineFunc(t *testing.T) {
	var lines []string
	w := LineFunc(func(l string) { lines = append(lines, l) })
	fmt.Fprint(w, "one\n")
	fmt.Fprint(w, "two\nthree\n")
	fmt.Fprint(w, "partial")
	if got := strings.Join(lines, "|"); got != "one|two|three|partial" {
		t.Errorf("lines = %q", got)
	}
}

func TestLineSinkSanitizes(t *testing.T) {
	var got []string
	s := &lineSink{w: LineFunc(func(l string) { got = append(got, l) })}
	s.line([]byte("progress\r"))
	s.line([]byte("bad \xff utf-8 \x00 nul"))
	s.printf("$ %s", "buildah")
	want := []string{"progress", "bad \uFFFD utf-8  nul", "$ buildah"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("lines = %q, want %q", got, want)
	}
	var nilSink *lineSink
	nilSink.line([]byte("ignored")) // no writer: no panic
}
