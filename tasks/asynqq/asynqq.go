// Package asynqq is the Redis task queue of Berth, built on asynq. It
// carries only wake-ups ("task X may be ready"): every decision is made by
// the workers against the task rows (see package tasks).
//
// asynq never retries, times out or archives a Berth task on its own here:
// messages have MaxRetry(0), the handler always reports success, and a task
// runs under a context of the worker's, not asynq's. Wake-ups carry the
// task id as their asynq task ID, so a wake-up for a task that is already
// pending is merged with it; one sent while the same task is being
// delivered is sent again under a distinct ID, because the delivery in
// progress may already have found the task blocked.
package asynqq

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/berth-dev/berth/core"
	"github.com/berth-dev/berth/tasks"
)

// taskType is the asynq type name of wake-ups.
const taskType = "berth:wake"

// longTimeout stands for "no timeout": asynq imposes 30 minutes when none
// is given. It only bounds how long asynq keeps a delivery's message active;
// the task itself is not affected when it passes.
const longTimeout = 7 * 24 * time.Hour

// Defaults of the options.
const (
	DefaultPrefix          = "berth"
	DefaultPollInterval    = 500 * time.Millisecond
	DefaultShutdownTimeout = 3 * time.Second
)

// Queue is a tasks.Queue over Redis.
type Queue struct {
	rc        redis.UniversalClient
	ownsRC    bool
	client    *asynq.Client
	inspector *asynq.Inspector
	prefix    string
	poll      time.Duration
	shutdown  time.Duration
	log       *slog.Logger
}

var _ tasks.Queue = (*Queue)(nil)

// Option configures a Queue.
type Option func(*Queue) error

// WithPrefix sets the namespace of the queue names in Redis (DefaultPrefix):
// Berth queue "default" is asynq queue "<prefix>:default". Deployments (or
// tests) sharing one Redis use distinct prefixes.
func WithPrefix(p string) Option {
	return func(q *Queue) error {
		if p == "" {
			return errors.New("WithPrefix: empty")
		}
		q.prefix = p
		return nil
	}
}

// WithPollInterval sets how often an idle consumer looks for wake-ups
// (DefaultPollInterval): asynq polls rather than blocks.
func WithPollInterval(d time.Duration) Option {
	return func(q *Queue) error {
		if d <= 0 {
			return fmt.Errorf("WithPollInterval: %s, want a positive duration", d)
		}
		q.poll = d
		return nil
	}
}

// WithShutdownTimeout sets how long a stopping consumer waits for the
// deliveries in progress (DefaultShutdownTimeout) before returning; their
// messages are then put back (the workers still finish their tasks).
func WithShutdownTimeout(d time.Duration) Option {
	return func(q *Queue) error {
		if d <= 0 {
			return fmt.Errorf("WithShutdownTimeout: %s, want a positive duration", d)
		}
		q.shutdown = d
		return nil
	}
}

// WithLogger sets the logger (default slog.Default()); asynq's own messages
// go to it too, one level lower.
func WithLogger(l *slog.Logger) Option {
	return func(q *Queue) error {
		if l == nil {
			return errors.New("WithLogger: nil")
		}
		q.log = l
		return nil
	}
}

// New returns a queue over an open Redis client, which the caller keeps
// and closes after the queue.
func New(rc redis.UniversalClient, opts ...Option) (*Queue, error) {
	if rc == nil {
		return nil, errors.New("new redis queue: nil client")
	}
	q := &Queue{
		rc:       rc,
		prefix:   DefaultPrefix,
		poll:     DefaultPollInterval,
		shutdown: DefaultShutdownTimeout,
		log:      slog.Default(),
	}
	for _, o := range opts {
		if err := o(q); err != nil {
			return nil, fmt.Errorf("new redis queue: %w", err)
		}
	}
	q.client = asynq.NewClientFromRedisClient(rc)
	q.inspector = asynq.NewInspectorFromRedisClient(rc)
	return q, nil
}

// Open connects to the Redis server at url ("redis://[:password@]host:port/db"
// or "rediss://…") and returns a queue that owns the connection. An
// unreachable server is core.ErrUnavailable.
func Open(ctx context.Context, url string, opts ...Option) (*Queue, error) {
	ro, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("redis URL: %w", err)
	}
	rc := redis.NewClient(ro)
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := rc.Ping(pctx).Err(); err != nil {
		_ = rc.Close()
		return nil, fmt.Errorf("redis at %s does not answer: %v: %w", ro.Addr, err, core.ErrUnavailable)
	}
	q, err := New(rc, opts...)
	if err != nil {
		_ = rc.Close()
		return nil, err
	}
	q.ownsRC = true
	return q, nil
}

// Close releases the queue, and the Redis connection if Open made it.
// Stop consumers first.
func (q *Queue) Close() error {
	if q.ownsRC {
		return q.rc.Close()
	}
	return nil
}

// AsynqQueue is the asynq queue name of a Berth queue.
func (q *Queue) AsynqQueue(queue string) string { return q.prefix + ":" + queue }

type payload struct {
	TaskID string `json:"task_id"`
}

// Enqueue sends a wake-up for taskID on queue.
func (q *Queue) Enqueue(ctx context.Context, queue, taskID string) error {
	if !tasks.ValidQueueName(queue) {
		return fmt.Errorf("enqueue %s: invalid queue name %q", taskID, queue)
	}
	body, err := json.Marshal(payload{TaskID: taskID})
	if err != nil {
		return fmt.Errorf("enqueue %s: %w", taskID, err)
	}
	aq := q.AsynqQueue(queue)
	for range 3 {
		err := q.send(ctx, aq, taskID, body)
		if !errors.Is(err, asynq.ErrTaskIDConflict) {
			return err
		}
		// A message with this id exists; what it is decides.
		info, err := q.inspector.GetTaskInfo(aq, taskID)
		switch {
		case errors.Is(err, asynq.ErrTaskNotFound), errors.Is(err, asynq.ErrQueueNotFound):
			continue // gone meanwhile: send again
		case err != nil:
			return fmt.Errorf("enqueue %s: inspect existing message: %v: %w", taskID, err, core.ErrUnavailable)
		}
		switch info.State {
		case asynq.TaskStatePending, asynq.TaskStateScheduled, asynq.TaskStateRetry, asynq.TaskStateAggregating:
			return nil // not yet delivered: it will see the row as it is now
		case asynq.TaskStateArchived, asynq.TaskStateCompleted:
			// Left behind by a consumer that died mid-delivery (asynq
			// archives orphaned messages when retries are off).
			if err := q.inspector.DeleteTask(aq, taskID); err != nil && !errors.Is(err, asynq.ErrTaskNotFound) {
				return fmt.Errorf("enqueue %s: remove stale message: %v: %w", taskID, err, core.ErrUnavailable)
			}
			continue
		default: // active: being delivered, maybe already judged blocked
			return q.send(ctx, aq, taskID+"~"+randomSuffix(), body)
		}
	}
	return q.send(ctx, aq, taskID+"~"+randomSuffix(), body)
}

func (q *Queue) send(ctx context.Context, aq, id string, body []byte) error {
	_, err := q.client.EnqueueContext(ctx, asynq.NewTask(taskType, body),
		asynq.Queue(aq), asynq.TaskID(id), asynq.MaxRetry(0), asynq.Retention(0), asynq.Timeout(longTimeout))
	switch {
	case err == nil:
		return nil
	case errors.Is(err, asynq.ErrTaskIDConflict):
		return err
	default:
		return fmt.Errorf("enqueue %s on %s: %v: %w", id, aq, err, core.ErrUnavailable)
	}
}

func randomSuffix() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Consume runs one asynq server per queue (asynq's concurrency is per
// server), each with the queue's concurrency, until ctx is done.
func (q *Queue) Consume(ctx context.Context, concurrency map[string]int, deliver tasks.Deliver) error {
	if err := tasks.CheckConcurrency(concurrency); err != nil {
		return err
	}
	var servers []*asynq.Server
	stopAll := func() {
		for _, s := range servers {
			s.Stop()
		}
		var wg sync.WaitGroup
		for _, s := range servers {
			wg.Go(s.Shutdown)
		}
		wg.Wait()
	}
	for name, n := range concurrency {
		srv := asynq.NewServerFromRedisClient(q.rc, asynq.Config{
			Concurrency:       n,
			Queues:            map[string]int{q.AsynqQueue(name): 1},
			TaskCheckInterval: q.poll,
			ShutdownTimeout:   q.shutdown,
			Logger:            asynqLogger{q.log},
			LogLevel:          asynq.WarnLevel,
			// Never used (handlers always succeed); set so a change in asynq
			// defaults could not schedule retries.
			RetryDelayFunc: func(int, error, *asynq.Task) time.Duration { return 0 },
		})
		handler := asynq.HandlerFunc(func(hctx context.Context, t *asynq.Task) error {
			var p payload
			if err := json.Unmarshal(t.Payload(), &p); err != nil || p.TaskID == "" {
				q.log.Warn("dropping malformed wake-up", "queue", name, "err", err)
				return nil
			}
			deliver(hctx, name, p.TaskID)
			return nil
		})
		if err := srv.Start(handler); err != nil {
			stopAll()
			return fmt.Errorf("consume %s: %v: %w", name, err, core.ErrUnavailable)
		}
		servers = append(servers, srv)
	}
	<-ctx.Done()
	stopAll()
	return nil
}

// asynqLogger sends asynq's log lines to slog, one level lower than asynq
// says (its Info lines are routine).
type asynqLogger struct{ l *slog.Logger }

func (a asynqLogger) Debug(args ...any) {}
func (a asynqLogger) Info(args ...any)  { a.l.Debug("asynq: " + fmt.Sprint(args...)) }
func (a asynqLogger) Warn(args ...any)  { a.l.Info("asynq: " + fmt.Sprint(args...)) }
func (a asynqLogger) Error(args ...any) { a.l.Warn("asynq: " + fmt.Sprint(args...)) }
func (a asynqLogger) Fatal(args ...any) { a.l.Error("asynq: " + fmt.Sprint(args...)) }
