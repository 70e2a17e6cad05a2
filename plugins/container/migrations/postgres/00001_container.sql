-- +goose Up
-- The container plugin's tables. Content rows (blobs, manifests, tags) extend
-- the core's contents table one-to-one; membership in repositories stays in
-- the core's repository_contents.

-- Namespaces group images (Galaxy's rules: the first path component of an
-- image name; an image without a slash is alone in its namespace).
CREATE TABLE container_namespaces (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    created_by  TEXT NOT NULL DEFAULT '',
    created_at  TIMESTAMPTZ NOT NULL
);

-- Which namespace a container distribution belongs to.
CREATE TABLE container_distributions (
    distribution_id  TEXT PRIMARY KEY REFERENCES distributions(id) ON DELETE CASCADE,
    namespace_id     TEXT NOT NULL REFERENCES container_namespaces(id) ON DELETE CASCADE
);
CREATE INDEX container_distributions_namespace_idx ON container_distributions (namespace_id);

-- container.blob: a layer or config, stored once in blob storage.
CREATE TABLE container_blobs (
    content_id  TEXT PRIMARY KEY REFERENCES contents(id) ON DELETE CASCADE,
    digest      TEXT NOT NULL UNIQUE,
    size        BIGINT NOT NULL
);

-- container.manifest: the exact bytes as pushed (data) and what the registry
-- and the catalog read from them.
CREATE TABLE container_manifests (
    content_id         TEXT PRIMARY KEY REFERENCES contents(id) ON DELETE CASCADE,
    digest             TEXT NOT NULL UNIQUE,
    media_type         TEXT NOT NULL,
    schema_version     INTEGER NOT NULL,
    size               BIGINT NOT NULL,
    is_index           BOOLEAN NOT NULL,
    artifact_type      TEXT NOT NULL DEFAULT '',
    config_digest      TEXT NOT NULL DEFAULT '',
    config_media_type  TEXT NOT NULL DEFAULT '',
    subject_digest     TEXT,
    annotations        TEXT NOT NULL DEFAULT '{}',
    os                 TEXT NOT NULL DEFAULT '',
    architecture       TEXT NOT NULL DEFAULT '',
    variant            TEXT NOT NULL DEFAULT '',
    labels             TEXT NOT NULL DEFAULT '{}',
    data               BYTEA NOT NULL,
    created_at         TIMESTAMPTZ NOT NULL
);
-- The referrers API looks manifests up by subject.
CREATE INDEX container_manifests_subject_idx ON container_manifests (subject_digest) WHERE subject_digest IS NOT NULL;

-- What a manifest references: its config and layers, or an index's children.
CREATE TABLE container_manifest_refs (
    manifest_id   TEXT NOT NULL REFERENCES container_manifests(content_id) ON DELETE CASCADE,
    position      INTEGER NOT NULL,
    kind          TEXT NOT NULL CHECK (kind IN ('config', 'layer', 'manifest')),
    digest        TEXT NOT NULL,
    media_type    TEXT NOT NULL DEFAULT '',
    size          BIGINT NOT NULL DEFAULT 0,
    os            TEXT NOT NULL DEFAULT '',
    architecture  TEXT NOT NULL DEFAULT '',
    variant       TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (manifest_id, position)
);
CREATE INDEX container_manifest_refs_digest_idx ON container_manifest_refs (digest);

-- container.tag: a name pointing at a manifest. Moving a tag replaces one tag
-- content by another in a new repository version.
-- Tag names compare byte by byte (COLLATE "C"), the lexical order the
-- distribution spec's tags/list pagination means, whatever the database's
-- locale.
CREATE TABLE container_tags (
    content_id   TEXT PRIMARY KEY REFERENCES contents(id) ON DELETE CASCADE,
    name         TEXT COLLATE "C" NOT NULL,
    manifest_id  TEXT NOT NULL REFERENCES container_manifests(content_id) ON DELETE CASCADE,
    UNIQUE (name, manifest_id)
);
CREATE INDEX container_tags_manifest_idx ON container_tags (manifest_id);

-- Upload sessions; their data lives in blob storage under the same id.
CREATE TABLE container_uploads (
    id          TEXT PRIMARY KEY,
    repository  TEXT NOT NULL,
    owner_id    TEXT NOT NULL DEFAULT '',
    started_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX container_uploads_started_idx ON container_uploads (started_at);

-- Blobs uploaded to (or mounted into) a repository name that no manifest of
-- its repository references yet: they are readable there until a manifest
-- push takes them into a version, or they expire.
CREATE TABLE container_pending_blobs (
    repository  TEXT NOT NULL,
    digest      TEXT NOT NULL,
    blob_id     TEXT NOT NULL REFERENCES container_blobs(content_id) ON DELETE CASCADE,
    created_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (repository, digest)
);
CREATE INDEX container_pending_blobs_digest_idx ON container_pending_blobs (digest);
CREATE INDEX container_pending_blobs_created_idx ON container_pending_blobs (created_at);

-- +goose Down
DROP TABLE container_pending_blobs;
DROP TABLE container_uploads;
DROP TABLE container_tags;
DROP TABLE container_manifest_refs;
DROP TABLE container_manifests;
DROP TABLE container_blobs;
DROP TABLE container_distributions;
DROP TABLE container_namespaces;
