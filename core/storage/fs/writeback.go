package fs

import "os"

// writebackChunk is how much newly written data makes the driver ask the
// kernel to start writing it out.
const writebackChunk = 8 << 20

// writeback starts the disk writes of a file's new data while the file is
// still being written, so that the fsync that makes a blob durable finds
// little left to do: on Linux it saves most of the fsync's wait for a large
// blob. Elsewhere it does nothing.
type writeback struct {
	f       *os.File
	started int64 // the data before this offset was handed to the kernel
	end     int64 // the end of the data written so far
}

func newWriteback(f *os.File, offset int64) *writeback {
	return &writeback{f: f, started: offset, end: offset}
}

// wrote records n more bytes written at the end of the file.
func (w *writeback) wrote(n int) {
	w.end += int64(n)
	if w.end-w.started >= writebackChunk {
		startWriteback(w.f, w.started, w.end-w.started)
		w.started = w.end
	}
}

// Write makes writeback an io.Writer for io.MultiWriter: it writes p to the
// file.
func (w *writeback) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.wrote(n)
	return n, err
}
