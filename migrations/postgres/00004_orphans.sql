-- +goose Up
-- Orphan cleanup (core/orphans.go).

-- When content last showed interest (a client asked for a blob it may be
-- about to reference): orphan cleanup leaves content alone for the
-- protection time after COALESCE(touched_at, created_at).
ALTER TABLE contents ADD COLUMN touched_at TIMESTAMPTZ;

-- A lease protects the stored file of a digest from orphan cleanup while a
-- writer stores the file and records its artifact. Leases older than a day
-- are stale (their writer died) and ignored.
CREATE TABLE artifact_leases (
    id          TEXT PRIMARY KEY,
    digest      TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX artifact_leases_digest_idx ON artifact_leases (digest);

-- Periodic jobs: the replica that moves next_at forward runs the job.
CREATE TABLE schedules (
    name     TEXT PRIMARY KEY,
    next_at  TIMESTAMPTZ NOT NULL
);

-- +goose Down
DROP TABLE schedules;
DROP TABLE artifact_leases;
ALTER TABLE contents DROP COLUMN touched_at;
