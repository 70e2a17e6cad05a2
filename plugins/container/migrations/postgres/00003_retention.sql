-- +goose Up
-- Retention policies of container repositories (retention.go): run on
-- demand and by the periodic retention job.
CREATE TABLE container_retention_policies (
    repository_id             TEXT PRIMARY KEY REFERENCES repositories(id) ON DELETE CASCADE,
    keep_tags                 INTEGER,
    tag_pattern               TEXT NOT NULL DEFAULT '',
    untagged_older_than_days  INTEGER,
    updated_at                TIMESTAMPTZ NOT NULL
);

-- +goose Down
DROP TABLE container_retention_policies;
