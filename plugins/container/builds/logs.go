package builds

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/berth-dev/berth/core"
)

// Bounds of a stored build log, as build.HeadTail keeps one: the lines that
// start in the first LogHead bytes, and those of the last LogTail bytes.
// What lies between is deleted while the build runs; readers see where.
const (
	LogHead = 1 << 20
	LogTail = 4 << 20
)

// Log writing: lines go to the database in batches, at least every
// logFlushEvery while lines come, sooner when logBatch lines wait.
const (
	logFlushEvery = 250 * time.Millisecond
	logBatch      = 500
	// logMaxPending bounds the lines held while the database does not take
	// them; older ones are dropped (readers see a gap).
	logMaxPending = 20000
	// logPruneStep is how far the tail window moves before old lines are
	// deleted.
	logPruneStep = 256 << 10
	// logDBTimeout bounds each write of the log.
	logDBTimeout = 30 * time.Second
)

// logWriter is a build's log as the build writes it: an io.Writer taking
// one line per Write (as build.Runner writes), stored in container_build_logs
// in batches by a goroutine of its own. Close flushes what is left. It is
// safe for concurrent use.
type logWriter struct {
	store      *core.Store
	id         string
	log        *slog.Logger
	head, tail int64

	mu        sync.Mutex
	pending   []logLine
	seq       int64 // number of the next line
	pos       int64 // bytes written so far
	tailStart int64 // number of the first line after the head; -1 while in the head
	pruned    int64 // lines starting before this byte were deleted
	closed    bool

	flushMu sync.Mutex // one flush at a time
	kick    chan struct{}
	stop    chan struct{}
	done    chan struct{}
}

// newLogWriter opens the log of build id for writing, after the lines it
// already has.
func newLogWriter(ctx context.Context, s *core.Store, id string, log *slog.Logger, head, tail int64) (*logWriter, error) {
	last, end, err := logEnd(ctx, s, id)
	if err != nil {
		return nil, err
	}
	w := &logWriter{store: s, id: id, log: log, head: head, tail: tail, seq: last + 1, pos: end, tailStart: -1,
		kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	if end > head {
		w.tailStart = w.seq
	}
	go w.loop()
	return w, nil
}

// Write stores p, one or more lines (a last line without "\n" counts as one).
func (w *logWriter) Write(p []byte) (int, error) {
	text := strings.TrimSuffix(string(p), "\n")
	if !utf8.ValidString(text) {
		text = strings.ToValidUTF8(text, "\uFFFD")
	}
	text = strings.NewReplacer("\x00", "", "\r", "").Replace(text)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return 0, io.ErrClosedPipe
	}
	for _, line := range strings.Split(text, "\n") {
		if w.tailStart < 0 && w.pos >= w.head {
			w.tailStart = w.seq
		}
		w.pending = append(w.pending, logLine{Seq: w.seq, Pos: w.pos, Line: line})
		w.seq++
		w.pos += int64(len(line)) + 1
	}
	if n := len(w.pending) - logMaxPending; n > 0 {
		w.pending = append(w.pending[:0:0], w.pending[n:]...)
	}
	if len(w.pending) >= logBatch {
		select {
		case w.kick <- struct{}{}:
		default:
		}
	}
	return len(p), nil
}

// Printf writes one line of Berth's own.
func (w *logWriter) Printf(format string, args ...any) {
	_, _ = w.Write([]byte(fmt.Sprintf(format, args...)))
}

// Close stops the writer and stores the lines still pending.
func (w *logWriter) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	w.mu.Unlock()
	close(w.stop)
	<-w.done
	return w.flush(true)
}

func (w *logWriter) loop() {
	defer close(w.done)
	t := time.NewTicker(logFlushEvery)
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-t.C:
		case <-w.kick:
		}
		if err := w.flush(false); err != nil {
			w.log.Warn("could not store build log lines; will try again", "build", w.id, "err", err)
		}
	}
}

// flush stores the pending lines and deletes those that left the tail
// window: every logPruneStep bytes, and at the end (final). Lines that
// would be deleted at once are not stored at all.
func (w *logWriter) flush(final bool) error {
	w.flushMu.Lock()
	defer w.flushMu.Unlock()
	w.mu.Lock()
	lines := w.pending
	w.pending = nil
	tailStart, cut := w.tailStart, w.pos-w.tail
	prune := tailStart >= 0 && (cut > w.pruned+logPruneStep || final && cut > w.pruned)
	w.mu.Unlock()

	if tailStart >= 0 {
		kept := lines[:0:0]
		for _, l := range lines {
			if l.Seq < tailStart || l.Pos >= cut {
				kept = append(kept, l)
			}
		}
		lines = kept
	}
	ctx, cancel := context.WithTimeout(context.Background(), logDBTimeout)
	defer cancel()
	if err := insertLogLines(ctx, w.store, w.id, lines); err != nil {
		w.mu.Lock()
		w.pending = append(lines, w.pending...) // try again with the next flush
		w.mu.Unlock()
		return err
	}
	if prune {
		if err := pruneLog(ctx, w.store, w.id, tailStart, cut); err != nil {
			return err
		}
		w.mu.Lock()
		w.pruned = cut
		w.mu.Unlock()
	}
	return nil
}

// LogOptions select what Logs writes.
type LogOptions struct {
	// Follow keeps writing new lines until the build ends.
	Follow bool
	// Tail starts with the last Tail lines; 0 starts at the beginning.
	Tail int
}

// Log reading: a read fetches up to logPage lines; a follower looks for
// new lines every pollInterval.
const (
	logPage      = 1000
	pollInterval = 250 * time.Millisecond
)

// Logs writes the log of build b (as Get returned it) to w, one line per
// "\n", calling flush after each batch. A gap where lines were left out
// (the middle of a long log) shows as one line "[… N lines omitted …]".
// With Follow it goes on until the build has ended and every line is
// written, or ctx ends (which is not an error).
func (s *Service) Logs(ctx context.Context, b *Build, opt LogOptions, w io.Writer, flush func()) error {
	last := int64(-1)
	write := func(lines []logLine) error {
		var sb strings.Builder
		for _, l := range lines {
			if last >= 0 && l.Seq > last+1 {
				fmt.Fprintf(&sb, "[… %d lines omitted …]\n", l.Seq-last-1)
			}
			sb.WriteString(l.Line)
			sb.WriteByte('\n')
			last = l.Seq
		}
		if _, err := io.WriteString(w, sb.String()); err != nil {
			return err
		}
		if flush != nil {
			flush()
		}
		return nil
	}
	if opt.Tail > 0 {
		lines, err := logTail(ctx, s.store, b.ID, opt.Tail)
		if err != nil {
			return ignoreDone(ctx, err)
		}
		if len(lines) > 0 {
			last = lines[0].Seq - 1
		}
		if err := write(lines); err != nil {
			return ignoreDone(ctx, err)
		}
	}
	ended := b.Phase.Finished()
	for {
		lines, err := logAfter(ctx, s.store, b.ID, last, logPage)
		if err != nil {
			return ignoreDone(ctx, err)
		}
		if len(lines) > 0 {
			if err := write(lines); err != nil {
				return ignoreDone(ctx, err)
			}
			if len(lines) == logPage {
				continue
			}
		}
		if !opt.Follow || ended {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(pollInterval):
		}
		// The task records the phase after its last line: once the
		// phase is final, one more read gets every line.
		phase, err := buildPhase(ctx, s.store, b.ID)
		if err != nil {
			return ignoreDone(ctx, err)
		}
		ended = phase.Finished()
	}
}

// ignoreDone drops the errors of a request that ended.
func ignoreDone(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	return err
}
