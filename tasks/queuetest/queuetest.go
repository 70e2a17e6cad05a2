// Package queuetest is the test suite every tasks.Queue implementation
// passes: a backend's whole test is one call to Run.
package queuetest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/berth-dev/berth/tasks"
)

// Factory returns a new, empty queue isolated from every other test's
// (its own key space), cleaned up when t ends. Queues returned for the same
// t are distinct clients of distinct key spaces; Run asks once per subtest.
type Factory func(t *testing.T) tasks.Queue

// wait is how long the suite waits for something that should happen.
const wait = 10 * time.Second

// quiet is how long the suite watches for something that must not happen.
const quiet = 700 * time.Millisecond

// Run runs the suite against queues made by newQueue.
func Run(t *testing.T, newQueue Factory) {
	t.Run("DeliversEnqueuedBeforeAndAfterStart", func(t *testing.T) { testDelivers(t, newQueue(t)) })
	t.Run("ConcurrencyPerQueue", func(t *testing.T) { testConcurrency(t, newQueue(t)) })
	t.Run("QueuesAreSeparate", func(t *testing.T) { testSeparate(t, newQueue(t)) })
	t.Run("PendingDuplicatesDeliveredAtLeastOnce", func(t *testing.T) { testDuplicates(t, newQueue(t)) })
	t.Run("WakeDuringDeliveryIsDeliveredAgain", func(t *testing.T) { testRedeliver(t, newQueue(t)) })
	t.Run("NoRedeliveryOnItsOwn", func(t *testing.T) { testNoRedelivery(t, newQueue(t)) })
	t.Run("StopWaitsForDeliveries", func(t *testing.T) { testStop(t, newQueue(t)) })
	t.Run("TwoConsumersShareWork", func(t *testing.T) { testTwoConsumers(t, newQueue(t)) })
	t.Run("RejectsBadArguments", func(t *testing.T) { testBadArguments(t, newQueue(t)) })
}

// recorder counts deliveries.
type recorder struct {
	mu     sync.Mutex
	counts map[string]int
	queues map[string]string
	order  []string
	notify chan struct{}
}

func newRecorder() *recorder {
	return &recorder{counts: map[string]int{}, queues: map[string]string{}, notify: make(chan struct{}, 1000)}
}

func (r *recorder) add(queue, id string) {
	r.mu.Lock()
	r.counts[id]++
	r.queues[id] = queue
	r.order = append(r.order, id)
	r.mu.Unlock()
	select {
	case r.notify <- struct{}{}:
	default:
	}
}

func (r *recorder) count(id string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.counts[id]
}

func (r *recorder) queueOf(id string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.queues[id]
}

func (r *recorder) total() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.order)
}

// consume runs Consume in the background; the returned stop cancels it and
// waits for it to return (also at cleanup).
func consume(t *testing.T, q tasks.Queue, concurrency map[string]int, deliver tasks.Deliver) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- q.Consume(ctx, concurrency, deliver) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Consume: %v", err)
				}
			case <-time.After(wait):
				t.Errorf("Consume did not return %s after its context ended", wait)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func enqueue(t *testing.T, q tasks.Queue, queue string, ids ...string) {
	t.Helper()
	for _, id := range ids {
		if err := q.Enqueue(context.Background(), queue, id); err != nil {
			t.Fatalf("Enqueue(%s, %s): %v", queue, id, err)
		}
	}
}

// eventually waits until cond holds.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func testDelivers(t *testing.T, q tasks.Queue) {
	rec := newRecorder()
	enqueue(t, q, "default", "before-1", "before-2")
	consume(t, q, map[string]int{"default": 2}, func(_ context.Context, queue, id string) { rec.add(queue, id) })
	enqueue(t, q, "default", "after-1")
	for _, id := range []string{"before-1", "before-2", "after-1"} {
		eventually(t, "delivery of "+id, func() bool { return rec.count(id) > 0 })
		if got := rec.queueOf(id); got != "default" {
			t.Errorf("%s delivered on queue %q, want default", id, got)
		}
	}
}

func testConcurrency(t *testing.T, q tasks.Queue) {
	const n, limit = 6, 2
	var (
		mu            sync.Mutex
		inFlight, max int
	)
	release := make(chan struct{})
	rec := newRecorder()
	stop := consume(t, q, map[string]int{"work": limit}, func(_ context.Context, queue, id string) {
		mu.Lock()
		inFlight++
		if inFlight > max {
			max = inFlight
		}
		mu.Unlock()
		rec.add(queue, id)
		<-release
		mu.Lock()
		inFlight--
		mu.Unlock()
	})
	for i := range n {
		enqueue(t, q, "work", fmt.Sprintf("c-%d", i))
	}
	eventually(t, "two deliveries in flight", func() bool { return rec.total() >= limit })
	time.Sleep(quiet)
	if got := rec.total(); got != limit {
		t.Errorf("%d deliveries started while %d were blocked, want %d", got, limit, limit)
	}
	close(release)
	eventually(t, "every delivery", func() bool { return rec.total() >= n })
	stop()
	if max != limit {
		t.Errorf("max deliveries in flight = %d, want %d", max, limit)
	}
}

func testSeparate(t *testing.T, q tasks.Queue) {
	rec := newRecorder()
	block := make(chan struct{})
	defer close(block)
	consume(t, q, map[string]int{"a": 1, "b": 1}, func(_ context.Context, queue, id string) {
		rec.add(queue, id)
		if queue == "a" {
			<-block
		}
	})
	enqueue(t, q, "a", "a-1", "a-2")
	enqueue(t, q, "c", "c-1")
	eventually(t, "first delivery on a", func() bool { return rec.count("a-1") == 1 })
	enqueue(t, q, "b", "b-1")
	eventually(t, "delivery on b while a is busy", func() bool { return rec.count("b-1") == 1 })
	time.Sleep(quiet)
	if rec.count("a-2") != 0 {
		t.Error("a-2 delivered beyond queue a's concurrency")
	}
	if rec.count("c-1") != 0 {
		t.Error("c-1 delivered although queue c is not consumed")
	}
	if got := rec.queueOf("b-1"); got != "b" {
		t.Errorf("b-1 delivered on %q", got)
	}
}

func testDuplicates(t *testing.T, q tasks.Queue) {
	rec := newRecorder()
	enqueue(t, q, "default", "dup", "dup", "dup", "other")
	consume(t, q, map[string]int{"default": 1}, func(_ context.Context, queue, id string) { rec.add(queue, id) })
	eventually(t, "delivery of dup and other", func() bool { return rec.count("dup") > 0 && rec.count("other") > 0 })
	if n := rec.count("dup"); n > 3 {
		t.Errorf("dup delivered %d times for 3 wake-ups", n)
	}
}

func testRedeliver(t *testing.T, q tasks.Queue) {
	rec := newRecorder()
	inside := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	consume(t, q, map[string]int{"default": 1}, func(_ context.Context, queue, id string) {
		rec.add(queue, id)
		once.Do(func() {
			close(inside)
			<-release
		})
	})
	enqueue(t, q, "default", "x")
	select {
	case <-inside:
	case <-time.After(wait):
		t.Fatal("x not delivered")
	}
	// The delivery in progress may have judged x blocked already: a new
	// wake-up must not be merged with it.
	enqueue(t, q, "default", "x")
	close(release)
	eventually(t, "second delivery of x", func() bool { return rec.count("x") >= 2 })
}

func testNoRedelivery(t *testing.T, q tasks.Queue) {
	rec := newRecorder()
	consume(t, q, map[string]int{"default": 1}, func(_ context.Context, queue, id string) {
		rec.add(queue, id)
		if id == "slow" {
			time.Sleep(quiet)
		}
	})
	enqueue(t, q, "default", "once", "slow")
	eventually(t, "deliveries", func() bool { return rec.count("once") == 1 && rec.count("slow") == 1 })
	time.Sleep(2 * quiet)
	if n, m := rec.count("once"), rec.count("slow"); n != 1 || m != 1 {
		t.Errorf("delivered once=%d slow=%d times, want 1 each", n, m)
	}
}

func testStop(t *testing.T, q tasks.Queue) {
	started := make(chan struct{})
	var mu sync.Mutex
	var returned bool
	stop := consume(t, q, map[string]int{"default": 1}, func(_ context.Context, _, _ string) {
		close(started)
		time.Sleep(300 * time.Millisecond)
		mu.Lock()
		returned = true
		mu.Unlock()
	})
	enqueue(t, q, "default", "long")
	select {
	case <-started:
	case <-time.After(wait):
		t.Fatal("not delivered")
	}
	stop()
	mu.Lock()
	defer mu.Unlock()
	if !returned {
		t.Error("Consume returned before the delivery in progress")
	}
}

func testTwoConsumers(t *testing.T, q tasks.Queue) {
	const n = 30
	rec := newRecorder()
	deliver := func(_ context.Context, queue, id string) {
		rec.add(queue, id)
		time.Sleep(2 * time.Millisecond)
	}
	consume(t, q, map[string]int{"shared": 3}, deliver)
	consume(t, q, map[string]int{"shared": 3}, deliver)
	for i := range n {
		enqueue(t, q, "shared", fmt.Sprintf("s-%d", i))
	}
	eventually(t, "all deliveries", func() bool { return rec.total() >= n })
	time.Sleep(quiet)
	for i := range n {
		if c := rec.count(fmt.Sprintf("s-%d", i)); c != 1 {
			t.Errorf("s-%d delivered %d times, want 1", i, c)
		}
	}
}

func testBadArguments(t *testing.T, q tasks.Queue) {
	ctx := context.Background()
	noop := func(context.Context, string, string) {}
	for _, c := range []map[string]int{nil, {"default": 0}, {"Bad Name": 1}} {
		if err := q.Consume(ctx, c, noop); err == nil {
			t.Errorf("Consume(%v) = nil, want an error", c)
		}
	}
	if err := q.Enqueue(ctx, "Bad Name", "x"); err == nil {
		t.Error("Enqueue on an invalid queue name = nil, want an error")
	}
}
