-- +goose Up
CREATE TABLE artifacts (
    id          TEXT PRIMARY KEY,
    digest      TEXT NOT NULL UNIQUE,
    size        INTEGER NOT NULL,
    created_at  DATETIME NOT NULL
);

CREATE TABLE contents (
    id           TEXT PRIMARY KEY,
    type         TEXT NOT NULL,
    natural_key  TEXT NOT NULL,
    created_at   DATETIME NOT NULL,
    UNIQUE (type, natural_key)
);
CREATE INDEX contents_created_idx ON contents (created_at);

CREATE TABLE content_artifacts (
    content_id     TEXT NOT NULL REFERENCES contents(id) ON DELETE CASCADE,
    relative_path  TEXT NOT NULL,
    artifact_id    TEXT REFERENCES artifacts(id),
    PRIMARY KEY (content_id, relative_path)
);
CREATE INDEX content_artifacts_artifact_idx ON content_artifacts (artifact_id);

CREATE TABLE remotes (
    id                    TEXT PRIMARY KEY,
    type                  TEXT NOT NULL,
    name                  TEXT NOT NULL UNIQUE,
    url                   TEXT NOT NULL,
    username              TEXT NOT NULL DEFAULT '',
    password_enc          TEXT NOT NULL DEFAULT '',
    tls_validation        BOOLEAN NOT NULL DEFAULT TRUE,
    ca_cert               TEXT NOT NULL DEFAULT '',
    client_cert           TEXT NOT NULL DEFAULT '',
    client_key_enc        TEXT NOT NULL DEFAULT '',
    proxy_url             TEXT NOT NULL DEFAULT '',
    proxy_username        TEXT NOT NULL DEFAULT '',
    proxy_password_enc    TEXT NOT NULL DEFAULT '',
    rate_limit            REAL NOT NULL DEFAULT 0,
    download_concurrency  INTEGER NOT NULL DEFAULT 4,
    policy                TEXT NOT NULL DEFAULT 'immediate',
    created_at            DATETIME NOT NULL,
    updated_at            DATETIME NOT NULL
);

CREATE TABLE repositories (
    id                    TEXT PRIMARY KEY,
    type                  TEXT NOT NULL,
    name                  TEXT NOT NULL UNIQUE,
    description           TEXT NOT NULL DEFAULT '',
    retain_repo_versions  INTEGER,
    latest_version        INTEGER NOT NULL DEFAULT 0,
    remote_id             TEXT REFERENCES remotes(id) ON DELETE SET NULL,
    created_at            DATETIME NOT NULL,
    updated_at            DATETIME NOT NULL
);

CREATE TABLE repository_versions (
    id               TEXT PRIMARY KEY,
    repository_id    TEXT NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    number           INTEGER NOT NULL,
    content_summary  TEXT NOT NULL DEFAULT '{}',
    created_by       TEXT NOT NULL DEFAULT '',
    created_at       DATETIME NOT NULL,
    UNIQUE (repository_id, number)
);

CREATE TABLE repository_contents (
    repository_id    TEXT NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    content_id       TEXT NOT NULL REFERENCES contents(id),
    version_added    INTEGER NOT NULL,
    version_removed  INTEGER,
    PRIMARY KEY (repository_id, content_id, version_added)
);
CREATE INDEX repository_contents_added_idx ON repository_contents (repository_id, version_added);
CREATE INDEX repository_contents_removed_idx ON repository_contents (repository_id, version_removed);
CREATE INDEX repository_contents_content_idx ON repository_contents (content_id);

CREATE TABLE distributions (
    id                     TEXT PRIMARY KEY,
    type                   TEXT NOT NULL,
    name                   TEXT NOT NULL UNIQUE,
    base_path              TEXT NOT NULL UNIQUE,
    repository_id          TEXT REFERENCES repositories(id) ON DELETE SET NULL,
    repository_version_id  TEXT REFERENCES repository_versions(id) ON DELETE SET NULL,
    private                BOOLEAN NOT NULL DEFAULT FALSE,
    created_at             DATETIME NOT NULL,
    updated_at             DATETIME NOT NULL
);

-- +goose Down
DROP TABLE distributions;
DROP TABLE repository_contents;
DROP TABLE repository_versions;
DROP TABLE repositories;
DROP TABLE remotes;
DROP TABLE content_artifacts;
DROP TABLE contents;
DROP TABLE artifacts;
