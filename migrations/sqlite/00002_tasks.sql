-- +goose Up
-- Tasks: the row is the truth about a task's state; Redis (or the in-process
-- queue) only carries "task X may be ready". See tasks/doc.go.
CREATE TABLE tasks (
    id                   TEXT PRIMARY KEY,
    -- first-come-first-served order for resource locks; the dispatcher
    -- assigns MAX(seq)+1 inside its (serialized) write transaction.
    seq                  INTEGER NOT NULL UNIQUE,
    name                 TEXT NOT NULL,
    state                TEXT NOT NULL CHECK (state IN ('waiting', 'running', 'completed', 'failed', 'canceling', 'canceled')),
    queue                TEXT NOT NULL DEFAULT 'default',
    args                 TEXT,
    exclusive_resources  TEXT NOT NULL DEFAULT '[]',
    shared_resources     TEXT NOT NULL DEFAULT '[]',
    worker               TEXT NOT NULL DEFAULT '',
    parent_id            TEXT REFERENCES tasks(id) ON DELETE SET NULL,
    idempotent           BOOLEAN NOT NULL DEFAULT FALSE,
    attempts             INTEGER NOT NULL DEFAULT 0,
    error                TEXT,
    progress_reports     TEXT NOT NULL DEFAULT '[]',
    created_resources    TEXT NOT NULL DEFAULT '[]',
    result               TEXT,
    created_at           DATETIME NOT NULL,
    updated_at           DATETIME NOT NULL,
    started_at           DATETIME,
    finished_at          DATETIME
);
-- the sweeper's and the worker's scans of waiting/running tasks, in seq order
CREATE INDEX tasks_state_idx ON tasks (state, seq);
CREATE INDEX tasks_created_idx ON tasks (created_at);
CREATE INDEX tasks_name_idx ON tasks (name, created_at);
CREATE INDEX tasks_worker_idx ON tasks (worker, state);
CREATE INDEX tasks_parent_idx ON tasks (parent_id) WHERE parent_id IS NOT NULL;

-- One row per resource a task reserves. active is true while the task is
-- unfinished (waiting, running, canceling), so the lock check reads only the
-- small partial index, however long the history.
CREATE TABLE task_resources (
    task_id    TEXT NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
    resource   TEXT NOT NULL,
    exclusive  BOOLEAN NOT NULL,
    seq        INTEGER NOT NULL,
    active     BOOLEAN NOT NULL DEFAULT TRUE,
    PRIMARY KEY (task_id, resource)
) WITHOUT ROWID;
CREATE INDEX task_resources_active_idx ON task_resources (resource, seq, task_id) WHERE active;
CREATE INDEX task_resources_resource_idx ON task_resources (resource);

CREATE TABLE workers (
    name            TEXT PRIMARY KEY,
    queues          TEXT NOT NULL DEFAULT '{}',
    online          BOOLEAN NOT NULL DEFAULT TRUE,
    started_at      DATETIME NOT NULL,
    last_heartbeat  DATETIME NOT NULL,
    stopped_at      DATETIME
);
CREATE INDEX workers_online_idx ON workers (online, last_heartbeat);

-- +goose Down
DROP TABLE workers;
DROP TABLE task_resources;
DROP TABLE tasks;
