package tasks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"runtime/debug"
	"sync"
	"time"

	"gorm.io/gorm"

	"github.com/berth-dev/berth/core"
)

// Causes of a handler's context cancellation; read them with
// context.Cause(ctx).
var (
	// ErrCanceled: the task was canceled (its row went to canceling).
	ErrCanceled = errors.New("task canceled")
	// ErrShutdown: the worker is shutting down and the grace period ended.
	ErrShutdown = errors.New("worker shutting down")
	// ErrTaskLost: the row says the task is no longer this worker's (the
	// sweeper declared the worker lost); its outcome is not recorded.
	ErrTaskLost = errors.New("task taken away from this worker")
)

// dbTimeout bounds each bookkeeping statement of a worker.
const dbTimeout = 30 * time.Second

// Worker runs tasks: it consumes wake-ups from a Queue, claims ready tasks
// against the database and runs their handlers, heartbeats, notices cancel
// requests and sweeps (see Sweeper). The same code serves `berth worker`
// over Redis and the embedded mode over a MemoryQueue.
type Worker struct {
	db    *gorm.DB
	queue Queue
	reg   *Registry
	cfg   *config
	log   *slog.Logger
	sweep *Sweeper

	slots map[string]chan struct{}

	mu       sync.Mutex
	started  bool
	stopping bool
	stopCh   chan struct{}
	giveUp   chan struct{} // closed when the shutdown stops waiting for handlers
	running  map[string]context.CancelCauseFunc
	inflight sync.WaitGroup // deliveries, including the tasks they run

	base context.Context // parent of the handlers' contexts; outlives Run's ctx
}

// NewWorker returns a worker running the handlers of reg for the tasks of
// g, woken through q. It uses the options WithName, WithQueue,
// WithHeartbeat, WithPollInterval, WithProgressInterval, WithShutdownGrace,
// WithLostAfter, WithSweepInterval, WithForgetAfter, WithMaxAttempts and
// WithLogger.
func NewWorker(g *gorm.DB, q Queue, reg *Registry, opts ...Option) (*Worker, error) {
	if g == nil || q == nil || reg == nil {
		return nil, fmt.Errorf("new worker: database, queue and registry are required")
	}
	c, err := newConfig(opts)
	if err != nil {
		return nil, fmt.Errorf("new worker: %w", err)
	}
	if c.lostAfter <= c.heartbeat {
		return nil, fmt.Errorf("new worker: lost-after %s must be longer than the heartbeat interval %s", c.lostAfter, c.heartbeat)
	}
	if c.name == "" {
		c.name = defaultWorkerName()
	}
	w := &Worker{
		db:      g,
		queue:   q,
		reg:     reg,
		cfg:     c,
		log:     c.log.With("worker", c.name),
		slots:   map[string]chan struct{}{},
		stopCh:  make(chan struct{}),
		giveUp:  make(chan struct{}),
		running: map[string]context.CancelCauseFunc{},
	}
	for name, n := range c.queues {
		w.slots[name] = make(chan struct{}, n)
	}
	if c.sweepEvery > 0 {
		w.sweep = &Sweeper{db: g, queue: q, cfg: c, log: w.log}
	}
	return w, nil
}

// Name is the worker's name, as recorded on its tasks and its row.
func (w *Worker) Name() string { return w.cfg.name }

// Run registers the worker and runs tasks until ctx is done, then stops
// gracefully: it takes no new task, lets running ones finish for the
// shutdown grace, cancels the rest (idempotent ones go back to waiting,
// others fail), and marks itself offline. It returns early with an error if
// registration or the queue fails. A Worker runs once.
func (w *Worker) Run(ctx context.Context) error {
	w.mu.Lock()
	if w.started {
		w.mu.Unlock()
		return fmt.Errorf("worker %s: already started", w.cfg.name)
	}
	w.started = true
	w.mu.Unlock()

	if err := w.register(ctx); err != nil {
		return err
	}
	w.base = context.WithoutCancel(ctx)
	w.log.InfoContext(ctx, "worker started", "queues", w.cfg.queues)

	loops, stopLoops := context.WithCancel(w.base)
	var lwg sync.WaitGroup
	lwg.Go(func() { w.heartbeatLoop(loops) })
	if w.sweep != nil {
		lwg.Go(func() { w.sweep.loop(loops) })
	}

	consumeCtx, stopConsume := context.WithCancel(ctx)
	consumed := make(chan error, 1)
	go func() { consumed <- w.queue.Consume(consumeCtx, w.cfg.queues, w.deliver) }()

	var err error
	select {
	case <-ctx.Done():
	case err = <-consumed:
		consumed <- err
		if err != nil {
			err = fmt.Errorf("worker %s: consume: %w", w.cfg.name, err)
		}
	}
	stopConsume()
	w.drain()
	<-consumed
	stopLoops()
	lwg.Wait()
	w.unregister()
	w.log.Info("worker stopped")
	return err
}

// register writes the worker's row (online). A live worker of the same
// name is a conflict; the leftovers of a dead one are taken over first.
func (w *Worker) register(ctx context.Context) error {
	err := w.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var prev WorkerInfo
		err := tx.Take(&prev, "name = ?", w.cfg.name).Error
		switch {
		case err == nil:
			if prev.Online && prev.LastHeartbeat.After(now().Add(-w.cfg.lostAfter)) {
				return core.Conflict("worker name %q is in use by a live worker", w.cfg.name)
			}
			a, err := abandon(ctx, tx, []string{w.cfg.name}, "restarted", w.cfg.maxAttempts)
			if err != nil {
				return err
			}
			if a != (abandoned{}) {
				w.log.WarnContext(ctx, "took over the tasks of a dead worker of the same name", "failed", a.Failed, "requeued", a.Requeued, "canceled", a.Canceled)
			}
		case !errors.Is(err, gorm.ErrRecordNotFound):
			return fmt.Errorf("read worker row: %w", core.Translate(err))
		}
		at := now()
		err = tx.Exec(`INSERT INTO workers (name, queues, online, started_at, last_heartbeat, stopped_at)
			VALUES (?, ?, TRUE, ?, ?, NULL)
			ON CONFLICT (name) DO UPDATE SET queues = excluded.queues, online = TRUE,
			started_at = excluded.started_at, last_heartbeat = excluded.last_heartbeat, stopped_at = NULL`,
			w.cfg.name, QueueConcurrency(w.cfg.queues), at, at).Error
		if err != nil {
			return fmt.Errorf("write worker row: %w", core.Translate(err))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("register worker %s: %w", w.cfg.name, err)
	}
	// Wake whatever is ready: tasks taken over above, and wake-ups lost
	// while no worker ran (always so for the in-process queue).
	ws, err := readyOn(ctx, w.db, nil, 1000)
	if err == nil {
		err = enqueueAll(ctx, w.queue, ws)
	}
	if err != nil {
		w.log.WarnContext(ctx, "could not wake ready tasks at start", "err", err)
	}
	return nil
}

// unregister marks the worker offline.
func (w *Worker) unregister() {
	ctx, cancel := context.WithTimeout(w.base, dbTimeout)
	defer cancel()
	at := now()
	err := w.db.WithContext(ctx).Exec(`UPDATE workers SET online = FALSE, stopped_at = ?, last_heartbeat = ? WHERE name = ?`,
		at, at, w.cfg.name).Error
	if err != nil {
		w.log.Warn("could not mark worker offline; the sweeper will", "err", err)
	}
}

// deliver handles one wake-up: claim the task if it is ready and run it.
// It returns when the task ended, so the queue counts it against the
// queue's concurrency for the whole run.
func (w *Worker) deliver(ctx context.Context, queue, id string) {
	w.mu.Lock()
	if w.stopping {
		w.mu.Unlock()
		w.handBack(queue, id)
		return
	}
	w.inflight.Add(1)
	w.mu.Unlock()
	defer w.inflight.Done()

	slot, ok := w.slots[queue]
	if !ok {
		w.log.Warn("wake-up for a queue this worker does not consume", "queue", queue, "task", id)
		return
	}
	// The queue already bounds deliveries per queue; this bound also holds
	// when a queue abandoned a long delivery.
	select {
	case slot <- struct{}{}:
	case <-w.stopCh:
		w.handBack(queue, id)
		return
	case <-ctx.Done():
		w.handBack(queue, id)
		return
	}
	defer func() { <-slot }()

	var h Handler
	t, err := claim(ctx, w.db, id, w.cfg.name, func(t *Task) bool {
		var ok bool
		h, ok = w.reg.Handler(t.Name)
		if !ok {
			w.log.Warn("no handler for task; leaving it for another worker", "task", t.ID, "name", t.Name)
		}
		return ok
	})
	switch {
	case errors.Is(err, errOffline):
		// Declared lost: the heartbeat loop registers again. Meanwhile the
		// wake-up goes back for another worker, after a pause so that this
		// one does not spin on it.
		w.log.Warn("wake-up handed back: this worker is marked offline", "task", id)
		select {
		case <-time.After(w.cfg.poll):
		case <-w.stopCh:
		}
		w.handBack(queue, id)
		return
	case err != nil:
		// Dropped: the row still says waiting, the sweeper wakes it again.
		w.log.Warn("could not claim task", "task", id, "err", err)
		return
	case t == nil:
		w.log.Debug("wake-up dropped: task not ready", "task", id)
		return
	}
	w.execute(t, h)
}

// handBack re-sends a wake-up the worker will not handle because it stops.
func (w *Worker) handBack(queue, id string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := w.queue.Enqueue(ctx, queue, id); err != nil {
		w.log.Debug("could not hand back wake-up; the sweeper will resend it", "task", id, "err", err)
	}
}

// execute runs a claimed task to its end and records the outcome.
func (w *Worker) execute(t *Task, h Handler) {
	ctx, cancel := context.WithCancelCause(w.base)
	defer cancel(nil)
	w.mu.Lock()
	w.running[t.ID] = cancel
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		delete(w.running, t.ID)
		w.mu.Unlock()
	}()

	log := w.log.With("task", t.ID, "name", t.Name)
	log.Info("task started", "attempt", t.Attempts)
	rep := newReporter(t.CreatedResources)

	stopFlush := make(chan struct{})
	flushed := make(chan struct{})
	go func() {
		defer close(flushed)
		tick := time.NewTicker(w.cfg.progress)
		defer tick.Stop()
		for {
			select {
			case <-stopFlush:
				return
			case <-tick.C:
				if progress, created, changed := rep.take(); changed {
					wctx, cancel := context.WithTimeout(w.base, dbTimeout)
					if err := saveProgress(wctx, w.db, t.ID, w.cfg.name, progress, created); err != nil {
						log.Warn("could not save progress", "err", err)
					}
					cancel()
				}
			}
		}
	}()

	type ended struct {
		result any
		err    error
	}
	done := make(chan ended, 1)
	go func() {
		result, err := call(ctx, h, t, rep)
		done <- ended{result, err}
	}()
	select {
	case e := <-done:
		close(stopFlush)
		<-flushed
		w.record(t, rep, e.result, e.err, context.Cause(ctx), log)
	case <-w.giveUp:
		// The handler ignored its cancelled context through the shutdown;
		// drain ends the task. Its goroutine is left behind.
		close(stopFlush)
		<-flushed
	}
}

// panicError is a handler panic turned into an error.
type panicError struct {
	value any
	stack []byte
}

func (p *panicError) Error() string { return fmt.Sprintf("panic: %v", p.value) }

// call runs the handler, turning a panic into an error.
func call(ctx context.Context, h Handler, t *Task, r *Reporter) (result any, err error) {
	defer func() {
		if v := recover(); v != nil {
			result, err = nil, &panicError{value: v, stack: debug.Stack()}
		}
	}()
	return h(ctx, t, r)
}

// record writes how the run ended and wakes the tasks it was blocking.
func (w *Worker) record(t *Task, rep *Reporter, result any, runErr, cause error, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(w.base, dbTimeout)
	defer cancel()
	if errors.Is(cause, ErrTaskLost) {
		log.Warn("task was taken away from this worker; its outcome is discarded", "err", runErr)
		return
	}
	o := outcome{}
	if runErr == nil {
		o.State = Completed
		if result != nil {
			b, err := json.Marshal(result)
			if err != nil {
				runErr = fmt.Errorf("encode result: %w", err)
			} else {
				o.Result = b
			}
		}
	}
	switch {
	case runErr == nil:
		rep.end(ProgressCompleted)
	case errors.Is(cause, ErrCanceled):
		o.State = Canceled
		rep.end(ProgressCanceled)
	case errors.Is(cause, ErrShutdown) && t.Idempotent && t.Attempts < w.cfg.maxAttempts:
		ok, err := requeue(ctx, w.db, t.ID, w.cfg.name)
		if err != nil {
			log.Error("could not requeue task; the sweeper will", "err", err)
			return
		}
		if ok {
			log.Info("task interrupted by shutdown, back to waiting", "err", runErr)
			if blocked, err := isBlocked(ctx, w.db, t.ID); err == nil && !blocked {
				w.handBack(t.Queue, t.ID)
			}
		}
		return
	default:
		o.State = Failed
		o.Error = &TaskError{Description: runErr.Error()}
		var p *panicError
		if errors.As(runErr, &p) {
			o.Error.Traceback = string(p.stack)
		}
		if errors.Is(cause, ErrShutdown) {
			o.Error.Description = fmt.Sprintf("worker %s shut down while the task was running: %s", w.cfg.name, runErr)
		}
		rep.end(ProgressFailed)
	}
	o.Progress, o.Created, _ = rep.take()
	var ok bool
	var err error
	for attempt := range 3 {
		if ok, err = finish(ctx, w.db, t.ID, w.cfg.name, o); err == nil {
			break
		}
		log.Warn("could not record task outcome", "attempt", attempt+1, "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
	switch {
	case err != nil:
		log.Error("task outcome lost; the sweeper will fail the task when this worker stops", "state", o.State, "err", err)
		return
	case !ok:
		log.Warn("task row changed under this worker; outcome discarded", "state", o.State)
		return
	}
	if o.State == Failed {
		log.Warn("task failed", "err", o.Error.Description)
	} else {
		log.Info("task ended", "state", o.State)
	}
	if err := wakeReady(ctx, w.db, w.queue, t.Resources()); err != nil {
		log.Warn("could not wake the next tasks; the sweeper will", "err", err)
	}
}

// drain stops taking tasks and waits for the running ones: for the grace
// period, then after cancelling them, as long again. Handlers that still
// have not returned are given up: their tasks are ended like those of a
// lost worker, and their late outcome is discarded.
func (w *Worker) drain() {
	w.mu.Lock()
	w.stopping = true
	close(w.stopCh)
	w.mu.Unlock()

	done := make(chan struct{})
	go func() { w.inflight.Wait(); close(done) }()
	wait := func() bool {
		t := time.NewTimer(w.cfg.grace)
		defer t.Stop()
		select {
		case <-done:
			return true
		case <-t.C:
			return false
		}
	}
	if wait() {
		return
	}
	w.log.Warn("shutdown grace ended; cancelling running tasks", "tasks", len(w.cancelAll(ErrShutdown)))
	if wait() {
		return
	}
	stuck := w.cancelAll(ErrTaskLost)
	close(w.giveUp)
	w.log.Error("task handlers did not stop; giving their tasks up", "tasks", stuck)
	ctx, cancel := context.WithTimeout(w.base, dbTimeout)
	defer cancel()
	err := w.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		_, err := abandon(ctx, tx, []string{w.cfg.name}, "shut down while its handler did not stop", w.cfg.maxAttempts)
		return err
	})
	if err != nil {
		w.log.Error("could not give up stuck tasks; the sweeper will", "err", err)
	}
}

// cancelAll cancels every running task with cause and returns their ids.
func (w *Worker) cancelAll(cause error) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	ids := make([]string, 0, len(w.running))
	for id, cancel := range w.running {
		cancel(cause)
		ids = append(ids, id)
	}
	return ids
}

// cancelTask cancels one running task with cause.
func (w *Worker) cancelTask(id string, cause error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if cancel, ok := w.running[id]; ok {
		cancel(cause)
	}
}

// heartbeatLoop writes the heartbeat every heartbeat interval and, every
// poll interval, reads the state of the running tasks to notice cancel
// requests and tasks taken away.
func (w *Worker) heartbeatLoop(ctx context.Context) {
	tick := time.NewTicker(w.cfg.poll)
	defer tick.Stop()
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if time.Since(last) >= w.cfg.heartbeat {
			last = time.Now()
			w.beat(ctx)
		}
		w.poll(ctx)
	}
}

// beat writes the heartbeat. If the row says the worker is offline, the
// sweeper declared it lost and took its tasks: the handlers are cancelled
// and the worker registers again.
func (w *Worker) beat(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, dbTimeout)
	defer cancel()
	res := w.db.WithContext(ctx).Exec(`UPDATE workers SET last_heartbeat = ? WHERE name = ? AND online`, now(), w.cfg.name)
	if res.Error != nil {
		if ctx.Err() == nil {
			w.log.Warn("heartbeat failed", "err", res.Error)
		}
		return
	}
	if res.RowsAffected == 1 {
		return
	}
	ids := w.cancelAll(ErrTaskLost)
	w.log.Error("this worker was declared lost (heartbeat too old); its tasks were taken away", "tasks", ids)
	if err := w.register(ctx); err != nil {
		w.log.Error("could not register again", "err", err)
	}
}

// poll cancels the handlers of tasks whose row went to canceling, or that
// are no longer this worker's.
func (w *Worker) poll(ctx context.Context) {
	w.mu.Lock()
	ids := make([]string, 0, len(w.running))
	for id := range maps.Keys(w.running) {
		ids = append(ids, id)
	}
	w.mu.Unlock()
	if len(ids) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, dbTimeout)
	defer cancel()
	var rows []struct {
		ID     string
		State  State
		Worker string
	}
	if err := w.db.WithContext(ctx).Raw(`SELECT id, state, worker FROM tasks WHERE id IN ?`, ids).Scan(&rows).Error; err != nil {
		if ctx.Err() == nil {
			w.log.Warn("could not poll running tasks", "err", err)
		}
		return
	}
	seen := make(map[string]bool, len(rows))
	for _, r := range rows {
		seen[r.ID] = true
		switch {
		case r.Worker != w.cfg.name || (r.State != Running && r.State != Canceling):
			w.cancelTask(r.ID, ErrTaskLost)
		case r.State == Canceling:
			w.cancelTask(r.ID, ErrCanceled)
		}
	}
	for _, id := range ids {
		if !seen[id] {
			w.cancelTask(id, ErrTaskLost)
		}
	}
}
