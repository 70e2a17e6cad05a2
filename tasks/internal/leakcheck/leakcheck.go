// Package leakcheck fails a test binary whose tests leave goroutines of the
// task system (or of asynq) running.
package leakcheck

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// watched are the code paths whose goroutines must all have ended.
var watched = []string{"berth-dev/berth/tasks.", "berth-dev/berth/tasks/", "hibiken/asynq"}

// Main runs the tests, then checks for leftover goroutines.
func Main(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if leaks := wait(5 * time.Second); leaks != "" {
			fmt.Fprintf(os.Stderr, "goroutines leaked by the tests:\n%s\n", leaks)
			code = 1
		}
	}
	os.Exit(code)
}

// wait returns the stacks of watched goroutines still running after d.
func wait(d time.Duration) string {
	deadline := time.Now().Add(d)
	for {
		leaks := find()
		if leaks == "" || time.Now().After(deadline) {
			return leaks
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func find() string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "leakcheck.find") || strings.Contains(g, "testing.(*M).Run") {
			continue
		}
		for _, w := range watched {
			if strings.Contains(g, w) {
				out = append(out, g)
				break
			}
		}
	}
	return strings.Join(out, "\n\n")
}
