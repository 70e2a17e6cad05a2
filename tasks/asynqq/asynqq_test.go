package asynqq_test

import (
	"context"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/berth-dev/berth/tasks"
	"github.com/berth-dev/berth/tasks/asynqq"
	"github.com/berth-dev/berth/tasks/internal/leakcheck"
	"github.com/berth-dev/berth/tasks/internal/redistest"
	"github.com/berth-dev/berth/tasks/queuetest"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

// newQueue returns a Redis queue in a key space of t's own.
func newQueue(t *testing.T) tasks.Queue {
	rc := redistest.Client(t)
	q, err := asynqq.New(rc,
		asynqq.WithPrefix(redistest.AsynqPrefix(t, rc)),
		asynqq.WithPollInterval(20*time.Millisecond),
		asynqq.WithShutdownTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func TestQueue(t *testing.T) { queuetest.Run(t, newQueue) }

// TestEnqueueReplacesArchivedMessage: asynq archives the message of a
// delivery whose consumer died (retries are off). It must not swallow later
// wake-ups of the same task.
func TestEnqueueReplacesArchivedMessage(t *testing.T) {
	rc := redistest.Client(t)
	q, err := asynqq.New(rc, asynqq.WithPrefix(redistest.AsynqPrefix(t, rc)), asynqq.WithPollInterval(20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := q.Enqueue(ctx, "default", "task-1"); err != nil {
		t.Fatal(err)
	}
	inspector := asynq.NewInspectorFromRedisClient(rc)
	if err := inspector.ArchiveTask(q.AsynqQueue("default"), "task-1"); err != nil {
		t.Fatal(err)
	}
	if err := q.Enqueue(ctx, "default", "task-1"); err != nil {
		t.Fatal(err)
	}
	info, err := inspector.GetTaskInfo(q.AsynqQueue("default"), "task-1")
	if err != nil || info.State != asynq.TaskStatePending {
		t.Fatalf("message after re-enqueue = %+v, %v; want pending", info, err)
	}
	// A pending wake-up absorbs duplicates.
	if err := q.Enqueue(ctx, "default", "task-1"); err != nil {
		t.Fatal(err)
	}
	if n, err := inspector.GetQueueInfo(q.AsynqQueue("default")); err != nil || n.Pending != 1 {
		t.Errorf("queue = %+v, %v; want 1 pending", n, err)
	}
}
