package build

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"sync"
	"unicode/utf8"
)

// HeadTail is an io.Writer that keeps a bounded build log: the first head
// bytes and the last tail bytes written, and counts what it leaves out in
// between. It is safe for concurrent use. Where it cuts, it cuts at line
// ends when there is one nearby, so the kept text is whole lines.
type HeadTail struct {
	mu      sync.Mutex
	headMax int
	tailMax int
	head    []byte
	ring    []byte // the last bytes written after head filled: a ring of tailMax bytes
	pos     int    // where the next byte goes in ring
	full    bool   // ring has wrapped
	total   int64
}

// NewHeadTail returns a HeadTail keeping the first head and the last tail
// bytes (negative values count as 0).
func NewHeadTail(head, tail int) *HeadTail {
	return &HeadTail{headMax: max(head, 0), tailMax: max(tail, 0)}
}

// Write keeps what fits and never fails.
func (h *HeadTail) Write(p []byte) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := len(p)
	h.total += int64(n)
	if room := h.headMax - len(h.head); room > 0 {
		k := min(room, len(p))
		h.head = append(h.head, p[:k]...)
		p = p[k:]
	}
	if len(p) == 0 || h.tailMax == 0 {
		return n, nil
	}
	if h.ring == nil {
		h.ring = make([]byte, h.tailMax)
	}
	if len(p) >= h.tailMax {
		copy(h.ring, p[len(p)-h.tailMax:])
		h.pos, h.full = 0, true
		return n, nil
	}
	k := copy(h.ring[h.pos:], p)
	if k < len(p) {
		h.pos = copy(h.ring, p[k:])
		h.full = true
	} else if h.pos += k; h.pos == h.tailMax {
		h.pos, h.full = 0, true
	}
	return n, nil
}

// tail returns the ring's bytes in order.
func (h *HeadTail) tail() []byte {
	if !h.full {
		return h.ring[:h.pos]
	}
	return append(append([]byte(nil), h.ring[h.pos:]...), h.ring[:h.pos]...)
}

// Written returns the number of bytes written so far.
func (h *HeadTail) Written() int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.total
}

// Truncated reports whether some bytes were left out.
func (h *HeadTail) Truncated() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	kept := len(h.head) + h.pos
	if h.full {
		kept = len(h.head) + h.tailMax
	}
	return h.total > int64(kept)
}

// Bytes returns the kept log. When bytes were left out, a line
// "[… N bytes omitted …]" stands for them; the head then ends and the tail
// starts at a line boundary when they contain one (the partial lines count
// as omitted).
func (h *HeadTail) Bytes() []byte {
	h.mu.Lock()
	defer h.mu.Unlock()
	head, tail := h.head, h.tail()
	omitted := h.total - int64(len(head)+len(tail))
	if omitted == 0 {
		return append(append([]byte(nil), head...), tail...)
	}
	if i := bytes.LastIndexByte(head, '\n'); i >= 0 {
		omitted += int64(len(head) - (i + 1))
		head = head[:i+1]
	}
	if i := bytes.IndexByte(tail, '\n'); i >= 0 && i+1 < len(tail) {
		omitted += int64(i + 1)
		tail = tail[i+1:]
	}
	var b bytes.Buffer
	b.Write(head)
	if len(head) > 0 && head[len(head)-1] != '\n' {
		b.WriteByte('\n')
	}
	fmt.Fprintf(&b, "[… %d bytes omitted …]\n", omitted)
	b.Write(tail)
	return b.Bytes()
}

// String returns Bytes as a string.
func (h *HeadTail) String() string { return string(h.Bytes()) }

// LineFunc adapts a function that takes log lines to the io.Writer
// [Runner.Run] writes to. Run writes exactly one line, ending in "\n", per
// Write; LineFunc calls f once per line, without the line end (a last piece
// without "\n" is passed as a line of its own).
type LineFunc func(line string)

// Write calls f for each line of p.
func (f LineFunc) Write(p []byte) (int, error) {
	for s := string(p); s != ""; {
		line, rest, _ := strings.Cut(s, "\n")
		f(line)
		s = rest
	}
	return len(p), nil
}

// lineSink writes whole lines to the caller's writer, one Write per line, from
// any goroutine. A failing writer does not fail the build: the first error is
// kept and later lines are dropped.
type lineSink struct {
	mu  sync.Mutex
	w   io.Writer
	err error
}

// line writes one line, made printable for logs and databases: invalid UTF-8
// becomes U+FFFD, NUL bytes and carriage returns are dropped.
func (s *lineSink) line(b []byte) {
	if s == nil || s.w == nil {
		return
	}
	text := string(b)
	if !utf8.ValidString(text) {
		text = strings.ToValidUTF8(text, "\uFFFD")
	}
	text = strings.NewReplacer("\x00", "", "\r", "").Replace(text)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return
	}
	if _, err := io.WriteString(s.w, text+"\n"); err != nil {
		s.err = err
	}
}

// printf writes one line of the runner's own.
func (s *lineSink) printf(format string, args ...any) {
	s.line(fmt.Appendf(nil, format, args...))
}
