package tasks

import (
	"context"
	"fmt"
	"regexp"
)

// Enqueuer sends wake-ups: "task taskID, on queue, may be ready". It never
// decides anything; a wake-up for a task that is not ready is dropped by the
// worker that receives it, so duplicates are harmless.
type Enqueuer interface {
	Enqueue(ctx context.Context, queue, taskID string) error
}

// Deliver handles one wake-up. It may block for as long as the task runs:
// the consumer counts a delivery against the queue's concurrency until
// Deliver returns. ctx is done when the consumer gives the delivery up (it
// need not be when the consumer stops: the worker has its own stop signal).
type Deliver func(ctx context.Context, queue, taskID string)

// Consumer receives wake-ups for a worker.
type Consumer interface {
	// Consume calls deliver for each wake-up of the queues named in
	// concurrency, with at most concurrency[queue] calls running at once per
	// queue, until ctx is done. It then stops receiving and returns once the
	// deliveries in progress have returned (an implementation may stop
	// waiting for them after its own shutdown timeout; a wake-up whose
	// delivery was abandoned may be delivered again). A wake-up is delivered
	// at least once; a consumer must never re-deliver one on its own because
	// a delivery took long.
	Consume(ctx context.Context, concurrency map[string]int, deliver Deliver) error
}

// Queue carries wake-ups from dispatchers to workers. Implementations:
// MemoryQueue (embedded mode) and asynqq.Queue (Redis); both pass the suite
// in tasks/queuetest.
//
// A wake-up enqueued while an identical one is still pending may be merged
// with it; one enqueued while the same task id is being delivered must be
// delivered again (the worker may already have looked at the row and found
// the task blocked).
type Queue interface {
	Enqueuer
	Consumer
}

var queuePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// ValidQueueName reports whether name may name a queue: lower-case letters,
// digits, '-' and '_', at most 63 characters.
func ValidQueueName(name string) bool { return queuePattern.MatchString(name) }

// CheckConcurrency validates the argument of Consume; Queue implementations
// call it first.
func CheckConcurrency(concurrency map[string]int) error {
	if len(concurrency) == 0 {
		return fmt.Errorf("consume: no queues")
	}
	for q, n := range concurrency {
		if !ValidQueueName(q) {
			return fmt.Errorf("consume: invalid queue name %q", q)
		}
		if n < 1 {
			return fmt.Errorf("consume: queue %q: concurrency %d, want at least 1", q, n)
		}
	}
	return nil
}
