package container

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/berth-dev/berth/core"
)

// maxTxAttempts bounds how often a write transaction is tried.
const maxTxAttempts = 6

// retry runs fn, a whole write transaction, again when it failed for a
// reason that a new attempt can cure: a serialization failure or deadlock
// (core.ErrConflict, e.g. two first pushes of one name racing on a unique
// key) or a busy database (core.ErrUnavailable, e.g. SQLite's busy timeout).
// The registry's own verdicts (manifest invalid, denied, …) are final.
func (p *Plugin) retry(ctx context.Context, op string, fn func() error) error {
	backoff := 5 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := fn()
		if err == nil || attempt == maxTxAttempts || !retryable(err) || ctx.Err() != nil {
			return err
		}
		p.log.Debug("retrying transaction", "op", op, "attempt", attempt, "err", err)
		wait := backoff + time.Duration(rand.Int64N(int64(backoff)))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		backoff *= 2
	}
}

func retryable(err error) bool {
	var re *regError
	if errors.As(err, &re) {
		return false
	}
	return errors.Is(err, core.ErrConflict) || errors.Is(err, core.ErrUnavailable)
}

// keyedLocks serializes work on one key (an upload session) within this
// process, waiting as long as the request's context allows.
type keyedLocks struct {
	mu    sync.Mutex
	locks map[string]*keyedLock
}

type keyedLock struct {
	ch   chan struct{}
	refs int
}

func newKeyedLocks() *keyedLocks { return &keyedLocks{locks: map[string]*keyedLock{}} }

// lock takes the lock of key; the returned function releases it.
func (k *keyedLocks) lock(ctx context.Context, key string) (func(), error) {
	k.mu.Lock()
	l := k.locks[key]
	if l == nil {
		l = &keyedLock{ch: make(chan struct{}, 1)}
		k.locks[key] = l
	}
	l.refs++
	k.mu.Unlock()
	release := func() {
		k.mu.Lock()
		if l.refs--; l.refs == 0 {
			delete(k.locks, key)
		}
		k.mu.Unlock()
	}
	select {
	case l.ch <- struct{}{}:
		return func() { <-l.ch; release() }, nil
	case <-ctx.Done():
		release()
		return nil, ctx.Err()
	}
}
