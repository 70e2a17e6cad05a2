package tasks

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"time"
)

// Option configures a Dispatcher, Worker, Sweeper or Embedded. Each
// constructor uses the options that concern it and ignores the others, so
// one list can configure a whole process.
type Option func(*config) error

type config struct {
	name        string         // worker name (prefix for Embedded)
	queues      map[string]int // queue → concurrency
	names       Names          // dispatchable task names; nil: any
	log         *slog.Logger
	heartbeat   time.Duration // worker row update interval
	poll        time.Duration // running tasks' state poll (cancel latency)
	progress    time.Duration // progress flush interval
	grace       time.Duration // shutdown grace
	lostAfter   time.Duration // heartbeat age that makes a worker lost
	sweepEvery  time.Duration // 0: the worker does not sweep
	forgetAfter time.Duration // offline worker rows are deleted after this
	maxAttempts int           // runs of an idempotent task whose workers get lost
}

// Defaults of the options.
const (
	DefaultHeartbeat        = 5 * time.Second
	DefaultPollInterval     = time.Second
	DefaultProgressInterval = 500 * time.Millisecond
	DefaultShutdownGrace    = 30 * time.Second
	DefaultLostAfter        = 30 * time.Second
	DefaultSweepInterval    = 15 * time.Second
	DefaultForgetAfter      = 24 * time.Hour
	DefaultMaxAttempts      = 3
)

func newConfig(opts []Option) (*config, error) {
	c := &config{
		log:         slog.Default(),
		heartbeat:   DefaultHeartbeat,
		poll:        DefaultPollInterval,
		progress:    DefaultProgressInterval,
		grace:       DefaultShutdownGrace,
		lostAfter:   DefaultLostAfter,
		sweepEvery:  DefaultSweepInterval,
		forgetAfter: DefaultForgetAfter,
		maxAttempts: DefaultMaxAttempts,
	}
	for _, o := range opts {
		if err := o(c); err != nil {
			return nil, err
		}
	}
	if len(c.queues) == 0 {
		c.queues = map[string]int{DefaultQueue: 1}
	}
	return c, nil
}

func positive(what string, d time.Duration, set func()) error {
	if d <= 0 {
		return fmt.Errorf("%s: %s, want a positive duration", what, d)
	}
	set()
	return nil
}

// WithName names a worker (default "<hostname>-<pid>-<random>"). The name
// must be unique among live workers; a worker started under the name of a
// dead one first takes over (fails or re-queues) the tasks left running.
// With Embedded, the name is a prefix.
func WithName(name string) Option {
	return func(c *config) error {
		if name == "" || len(name) > 200 {
			return fmt.Errorf("WithName: want 1 to 200 characters")
		}
		c.name = name
		return nil
	}
}

// WithQueue makes a worker consume queue, running at most concurrency of
// its tasks at once. Repeat it for several queues. Without it a worker
// consumes DefaultQueue with concurrency 1.
func WithQueue(queue string, concurrency int) Option {
	return func(c *config) error {
		if !ValidQueueName(queue) {
			return fmt.Errorf("WithQueue: invalid queue name %q", queue)
		}
		if concurrency < 1 {
			return fmt.Errorf("WithQueue %s: concurrency %d, want at least 1", queue, concurrency)
		}
		if c.queues == nil {
			c.queues = map[string]int{}
		}
		c.queues[queue] = concurrency
		return nil
	}
}

// WithNames makes a Dispatcher refuse task names that names does not know
// (pass the process's *Registry). Without it any well-formed name is taken.
func WithNames(names Names) Option {
	return func(c *config) error {
		if names == nil {
			return fmt.Errorf("WithNames: nil")
		}
		c.names = names
		return nil
	}
}

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		if l == nil {
			return fmt.Errorf("WithLogger: nil")
		}
		c.log = l
		return nil
	}
}

// WithHeartbeat sets how often a worker writes its heartbeat
// (DefaultHeartbeat).
func WithHeartbeat(d time.Duration) Option {
	return func(c *config) error { return positive("WithHeartbeat", d, func() { c.heartbeat = d }) }
}

// WithPollInterval sets how often a worker reads the state of its running
// tasks to notice cancel requests (DefaultPollInterval): the cancel latency.
func WithPollInterval(d time.Duration) Option {
	return func(c *config) error { return positive("WithPollInterval", d, func() { c.poll = d }) }
}

// WithProgressInterval sets how often at most a running task's progress is
// written to its row (DefaultProgressInterval).
func WithProgressInterval(d time.Duration) Option {
	return func(c *config) error { return positive("WithProgressInterval", d, func() { c.progress = d }) }
}

// WithShutdownGrace sets how long a stopping worker lets running tasks
// finish before cancelling them (DefaultShutdownGrace); it then waits as
// long again for the handlers to return.
func WithShutdownGrace(d time.Duration) Option {
	return func(c *config) error { return positive("WithShutdownGrace", d, func() { c.grace = d }) }
}

// WithLostAfter sets how old a heartbeat may get before the sweeper
// declares its worker lost (DefaultLostAfter). Keep it several heartbeats
// long.
func WithLostAfter(d time.Duration) Option {
	return func(c *config) error { return positive("WithLostAfter", d, func() { c.lostAfter = d }) }
}

// WithSweepInterval sets how often a worker (or a Sweeper's Run) sweeps
// (DefaultSweepInterval). Zero turns a worker's own sweeping off: another
// process must then run a Sweeper.
func WithSweepInterval(d time.Duration) Option {
	return func(c *config) error {
		if d < 0 {
			return fmt.Errorf("WithSweepInterval: %s, want zero or more", d)
		}
		c.sweepEvery = d
		return nil
	}
}

// WithForgetAfter sets how long the rows of offline workers are kept
// (DefaultForgetAfter).
func WithForgetAfter(d time.Duration) Option {
	return func(c *config) error { return positive("WithForgetAfter", d, func() { c.forgetAfter = d }) }
}

// WithMaxAttempts caps how many times an idempotent task is run when its
// workers keep getting lost (DefaultMaxAttempts); then it fails.
func WithMaxAttempts(n int) Option {
	return func(c *config) error {
		if n < 1 {
			return fmt.Errorf("WithMaxAttempts: %d, want at least 1", n)
		}
		c.maxAttempts = n
		return nil
	}
}

// defaultWorkerName is "<hostname>-<pid>-<random>": unique per process
// start, so a restarted worker never mistakes its predecessor's tasks for
// its own.
func defaultWorkerName() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "worker"
	}
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b))
}
