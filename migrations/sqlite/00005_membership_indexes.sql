-- +goose Up
-- What a version added and removed is read through these indexes on every
-- push (the version's summary, the activity log, "did anything change").
-- With content_id in them they answer those reads alone; without it SQLite
-- preferred the primary key and read every row of the repository.
DROP INDEX repository_contents_added_idx;
DROP INDEX repository_contents_removed_idx;
CREATE INDEX repository_contents_added_idx ON repository_contents (repository_id, version_added, content_id);
CREATE INDEX repository_contents_removed_idx ON repository_contents (repository_id, version_removed, content_id);

-- +goose Down
DROP INDEX repository_contents_added_idx;
DROP INDEX repository_contents_removed_idx;
CREATE INDEX repository_contents_added_idx ON repository_contents (repository_id, version_added);
CREATE INDEX repository_contents_removed_idx ON repository_contents (repository_id, version_removed);
