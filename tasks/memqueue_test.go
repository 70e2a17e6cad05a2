package tasks_test

import (
	"testing"

	"github.com/berth-dev/berth/tasks"
	"github.com/berth-dev/berth/tasks/queuetest"
)

func TestMemoryQueue(t *testing.T) {
	t.Parallel()
	queuetest.Run(t, func(*testing.T) tasks.Queue { return tasks.NewMemoryQueue() })
}
