-- +goose Up
-- Remote registries and remote images. A remote registry is a core remote
-- of type container.registry; each remote image has a core remote of type
-- container.container of its own (URL and credentials copied from its
-- registry, as Galaxy NG does) syncing one repository. These tables hold
-- what the core's remotes table does not.

CREATE TABLE container_registries (
    remote_id       TEXT PRIMARY KEY REFERENCES remotes(id) ON DELETE CASCADE,
    -- the last registry-wide sync (a task id; tasks may be pruned, so no FK)
    last_sync_task  TEXT
);

CREATE TABLE container_remotes (
    remote_id       TEXT PRIMARY KEY REFERENCES remotes(id) ON DELETE CASCADE,
    -- the name on the remote registry, as given ("alpine"; mapped to
    -- "library/alpine" for Docker Hub at sync time)
    upstream_name   TEXT NOT NULL,
    include_tags    TEXT NOT NULL DEFAULT '[]',
    exclude_tags    TEXT NOT NULL DEFAULT '[]',
    registry_id     TEXT REFERENCES remotes(id) ON DELETE SET NULL,
    -- the repository a remote image syncs into (NULL for remotes made
    -- through the Pulp API, which name the repository at each sync)
    repository_id   TEXT REFERENCES repositories(id) ON DELETE SET NULL,
    last_sync_task  TEXT
);
CREATE INDEX container_remotes_registry_idx ON container_remotes (registry_id);
CREATE UNIQUE INDEX container_remotes_repository_idx ON container_remotes (repository_id);

-- Where to fetch the blobs an on_demand sync recorded without their file:
-- the remote and the repository name on its registry.
CREATE TABLE container_blob_sources (
    blob_id        TEXT NOT NULL REFERENCES container_blobs(content_id) ON DELETE CASCADE,
    remote_id      TEXT NOT NULL REFERENCES remotes(id) ON DELETE CASCADE,
    upstream_name  TEXT NOT NULL,
    PRIMARY KEY (blob_id, remote_id)
);
CREATE INDEX container_blob_sources_remote_idx ON container_blob_sources (remote_id);

-- +goose Down
DROP TABLE container_blob_sources;
DROP TABLE container_remotes;
DROP TABLE container_registries;
