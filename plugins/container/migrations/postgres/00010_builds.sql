-- +goose Up
-- Custom image builds (plugins/container/builds): what a user asked to
-- build, the task building it, and what came of it. While the build runs,
-- its phase comes from the task's state; the task handler records the final
-- phase, digest and error here (see builds/store.go).
CREATE TABLE container_builds (
    id               TEXT PRIMARY KEY,
    target           TEXT NOT NULL,
    tag              TEXT NOT NULL,
    unique_tag       TEXT NOT NULL,
    spec_digest      TEXT NOT NULL,
    -- the spec as JSON, without credentials
    spec             TEXT NOT NULL,
    -- a base image in Berth itself: its name and tag or digest, no host
    own_base         TEXT NOT NULL DEFAULT '',
    -- the base image's pull credentials, sealed with the secret key
    base_secret      TEXT NOT NULL DEFAULT '',
    containerfile    TEXT NOT NULL DEFAULT '',
    has_context      BOOLEAN NOT NULL DEFAULT FALSE,
    previous_id      TEXT REFERENCES container_builds(id) ON DELETE SET NULL,
    task_id          TEXT REFERENCES tasks(id) ON DELETE SET NULL,
    created_by       TEXT NOT NULL DEFAULT '',
    created_by_name  TEXT NOT NULL DEFAULT '',
    phase            TEXT NOT NULL DEFAULT 'pending' CHECK (phase IN ('pending', 'succeeded', 'failed', 'cancelled')),
    digest           TEXT NOT NULL DEFAULT '',
    error            TEXT NOT NULL DEFAULT '',
    created_at       TIMESTAMPTZ NOT NULL,
    finished_at      TIMESTAMPTZ
);
CREATE INDEX container_builds_target_idx ON container_builds (target, tag, created_at);
CREATE INDEX container_builds_unique_tag_idx ON container_builds (target, unique_tag);
CREATE INDEX container_builds_created_idx ON container_builds (created_at);
CREATE INDEX container_builds_task_idx ON container_builds (task_id);
CREATE INDEX container_builds_previous_idx ON container_builds (previous_id) WHERE previous_id IS NOT NULL;

-- A build's log, one row per line, kept bounded: the lines of the first
-- MiB stay, and of the rest only the last MiBs (older rows are deleted as the
-- build goes on). pos is the number of log bytes before the line, so that
-- readers can tell what was left out.
CREATE TABLE container_build_logs (
    build_id  TEXT NOT NULL REFERENCES container_builds(id) ON DELETE CASCADE,
    seq       BIGINT NOT NULL,
    pos       BIGINT NOT NULL,
    line      TEXT NOT NULL,
    PRIMARY KEY (build_id, seq)
);

-- The uploaded build context (a tar archive) of a raw Containerfile build.
CREATE TABLE container_build_contexts (
    build_id  TEXT PRIMARY KEY REFERENCES container_builds(id) ON DELETE CASCADE,
    size      BIGINT NOT NULL,
    data      BYTEA NOT NULL
);

-- +goose Down
DROP TABLE container_build_contexts;
DROP TABLE container_build_logs;
DROP TABLE container_builds;
