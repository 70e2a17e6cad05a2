package tasks

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"gorm.io/gorm"
)

// Embedded runs task workers inside the `berth serve` process, for the
// default installation without Redis: n Workers — the same code as `berth
// worker` — over one in-process MemoryQueue, and a Dispatcher that feeds it.
// The first worker sweeps; the others do not.
type Embedded struct {
	queue      *MemoryQueue
	dispatcher *Dispatcher
	workers    []*Worker
}

// NewEmbedded prepares n in-process workers (n ≥ 1) running the handlers of
// reg. The options configure the workers and the dispatcher (WithQueue sets
// each worker's queues and concurrency; WithName, if given, prefixes the
// workers' names). The dispatcher refuses names reg does not know.
func NewEmbedded(g *gorm.DB, reg *Registry, n int, opts ...Option) (*Embedded, error) {
	if n < 1 {
		return nil, fmt.Errorf("new embedded workers: n = %d, want at least 1", n)
	}
	if reg == nil {
		return nil, fmt.Errorf("new embedded workers: registry is required")
	}
	c, err := newConfig(opts)
	if err != nil {
		return nil, fmt.Errorf("new embedded workers: %w", err)
	}
	prefix := c.name
	if prefix == "" {
		prefix = defaultWorkerName()
	}
	e := &Embedded{queue: NewMemoryQueue()}
	e.dispatcher, err = NewDispatcher(g, e.queue, append(opts[:len(opts):len(opts)], WithNames(reg))...)
	if err != nil {
		return nil, err
	}
	for i := range n {
		wopts := append(opts[:len(opts):len(opts)], WithName(fmt.Sprintf("%s-%d", prefix, i+1)))
		if i > 0 {
			wopts = append(wopts, WithSweepInterval(0))
		}
		w, err := NewWorker(g, e.queue, reg, wopts...)
		if err != nil {
			return nil, err
		}
		e.workers = append(e.workers, w)
	}
	return e, nil
}

// Queue is the in-process queue (for Cancel, or another Dispatcher).
func (e *Embedded) Queue() *MemoryQueue { return e.queue }

// Dispatcher dispatches tasks to the embedded workers.
func (e *Embedded) Dispatcher() *Dispatcher { return e.dispatcher }

// Workers are the embedded workers.
func (e *Embedded) Workers() []*Worker { return e.workers }

// Run runs the workers until ctx is done and they stopped gracefully. If a
// worker fails to start, the others are stopped and the errors returned.
func (e *Embedded) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for _, w := range e.workers {
		wg.Go(func() {
			if err := w.Run(ctx); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
				cancel()
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}
