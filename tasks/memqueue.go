package tasks

import (
	"context"
	"fmt"
	"sync"
)

// MemoryQueue is the in-process Queue of the embedded mode: wake-ups live in
// memory and go to the consumers of the same process. Wake-ups are lost when
// the process exits, which is harmless: the rows are the truth, and the
// sweeper re-enqueues waiting tasks at start and periodically.
//
// A wake-up for a task id that is already pending on its queue is merged with
// it. Several workers may consume the same MemoryQueue; each wake-up goes to
// one of them.
type MemoryQueue struct {
	mu     sync.Mutex
	queues map[string]*memLine
}

// memLine is one named queue: pending ids in FIFO order, without duplicates.
type memLine struct {
	pending []string
	queued  map[string]bool
	// wake is closed (and replaced) whenever an id is added, waking every
	// waiting consumer goroutine.
	wake chan struct{}
}

// NewMemoryQueue returns an empty in-process queue.
func NewMemoryQueue() *MemoryQueue { return &MemoryQueue{queues: map[string]*memLine{}} }

func (q *MemoryQueue) line(name string) *memLine {
	l, ok := q.queues[name]
	if !ok {
		l = &memLine{queued: map[string]bool{}, wake: make(chan struct{})}
		q.queues[name] = l
	}
	return l
}

// Enqueue adds a wake-up for taskID to the named queue.
func (q *MemoryQueue) Enqueue(ctx context.Context, queue, taskID string) error {
	if !ValidQueueName(queue) {
		return fmt.Errorf("enqueue %s: invalid queue name %q", taskID, queue)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("enqueue %s: %w", taskID, err)
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	l := q.line(queue)
	if l.queued[taskID] {
		return nil
	}
	l.queued[taskID] = true
	l.pending = append(l.pending, taskID)
	close(l.wake)
	l.wake = make(chan struct{})
	return nil
}

// Pending counts the wake-ups waiting on a queue.
func (q *MemoryQueue) Pending(queue string) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	if l, ok := q.queues[queue]; ok {
		return len(l.pending)
	}
	return 0
}

// next waits for a wake-up on the named queue; ok is false once ctx ended
// (even if wake-ups are pending: a stopping consumer takes no more).
func (q *MemoryQueue) next(ctx context.Context, queue string) (id string, ok bool) {
	for {
		if ctx.Err() != nil {
			return "", false
		}
		q.mu.Lock()
		l := q.line(queue)
		if len(l.pending) > 0 {
			id = l.pending[0]
			l.pending[0] = ""
			l.pending = l.pending[1:]
			delete(l.queued, id)
			q.mu.Unlock()
			return id, true
		}
		wake := l.wake
		q.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return "", false
		}
	}
}

// Consume delivers wake-ups until ctx is done, then waits for the
// deliveries in progress.
func (q *MemoryQueue) Consume(ctx context.Context, concurrency map[string]int, deliver Deliver) error {
	if err := CheckConcurrency(concurrency); err != nil {
		return err
	}
	var wg sync.WaitGroup
	for name, n := range concurrency {
		for range n {
			wg.Go(func() {
				for {
					id, ok := q.next(ctx, name)
					if !ok {
						return
					}
					deliver(ctx, name, id)
				}
			})
		}
	}
	wg.Wait()
	return nil
}
