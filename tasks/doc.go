// Package tasks runs Berth's long work (syncs, builds, deletions, cleanup) as
// tasks: a task is a database row that holds the truth about its state, and a
// Queue only delivers the hint "task X may be ready" to workers.
//
// The database decides:
//
//   - Dispatcher.Dispatch inserts the row (waiting, with its exclusive and
//     shared resources and a first-come-first-served sequence number) and
//     enqueues its id unless an earlier unfinished task holds a conflicting
//     resource; a blocked task is parked and woken when its blocker ends.
//   - A Worker receiving an id re-checks, in one transaction, that the task is
//     still waiting and unblocked, and claims it by compare-and-set on the
//     state. Otherwise it drops the message: duplicate and stale deliveries are
//     harmless. On PostgreSQL the check is serialized per resource with
//     advisory transaction locks; SQLite's write transaction already is.
//   - When a task ends, its worker wakes the next waiting tasks on the same
//     resources. Cancel is a state change the worker notices while polling.
//   - A Sweeper (one at a time) fails or re-queues the tasks of workers whose
//     heartbeat went stale and re-enqueues unblocked waiting tasks whose
//     message was lost, so nothing stays stuck whatever crashed.
//
// The Redis queue lives in tasks/asynqq; MemoryQueue serves the embedded mode
// (see Embedded). Both pass the shared suite in tasks/queuetest, and the
// worker code is the same for both.
package tasks
