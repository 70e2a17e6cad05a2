-- Users, groups, API tokens and role bindings (package auth).
-- +goose Up
CREATE TABLE auth_users (
    id             TEXT PRIMARY KEY,
    username       TEXT NOT NULL,
    password_hash  TEXT NOT NULL DEFAULT '',
    first_name     TEXT NOT NULL DEFAULT '',
    last_name      TEXT NOT NULL DEFAULT '',
    email          TEXT NOT NULL DEFAULT '',
    is_superuser   BOOLEAN NOT NULL DEFAULT FALSE,
    is_active      BOOLEAN NOT NULL DEFAULT TRUE,
    created_at     DATETIME NOT NULL,
    updated_at     DATETIME NOT NULL
);
-- "Alice" and "alice" cannot both exist: one person, one name.
CREATE UNIQUE INDEX auth_users_username_idx ON auth_users (lower(username));

CREATE TABLE auth_groups (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  DATETIME NOT NULL,
    updated_at  DATETIME NOT NULL
);
CREATE UNIQUE INDEX auth_groups_name_idx ON auth_groups (lower(name));

CREATE TABLE auth_group_members (
    group_id    TEXT NOT NULL REFERENCES auth_groups(id) ON DELETE CASCADE,
    user_id     TEXT NOT NULL REFERENCES auth_users(id) ON DELETE CASCADE,
    created_at  DATETIME NOT NULL,
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX auth_group_members_user_idx ON auth_group_members (user_id);

-- API and registry login tokens: only a SHA-256 of the token is kept.
CREATE TABLE auth_tokens (
    id            TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL REFERENCES auth_users(id) ON DELETE CASCADE,
    name          TEXT NOT NULL DEFAULT '',
    kind          TEXT NOT NULL DEFAULT 'api' CHECK (kind IN ('api', 'registry')),
    prefix        TEXT NOT NULL,
    token_hash    TEXT NOT NULL UNIQUE,
    created_at    DATETIME NOT NULL,
    expires_at    DATETIME,
    last_used_at  DATETIME
);
CREATE INDEX auth_tokens_user_idx ON auth_tokens (user_id);

-- Who holds which role on which object ("namespace:<name>", or "*" for a
-- global role). subject is a user or group ID; permanent bindings (a
-- namespace creator's owner role) cannot be removed.
CREATE TABLE auth_role_bindings (
    subject_kind  TEXT NOT NULL CHECK (subject_kind IN ('user', 'group')),
    subject       TEXT NOT NULL,
    role          TEXT NOT NULL,
    object        TEXT NOT NULL,
    permanent     BOOLEAN NOT NULL DEFAULT FALSE,
    created_at    DATETIME NOT NULL,
    PRIMARY KEY (subject_kind, subject, role, object)
);
CREATE INDEX auth_role_bindings_object_idx ON auth_role_bindings (object);

-- One row: bumped in the same transaction as every change to users, groups,
-- memberships or bindings, so each process reloads its policy when it moves.
CREATE TABLE auth_policy (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    version  BIGINT NOT NULL
);
INSERT INTO auth_policy (id, version) VALUES (1, 1);

-- +goose Down
DROP TABLE auth_policy;
DROP TABLE auth_role_bindings;
DROP TABLE auth_tokens;
DROP TABLE auth_group_members;
DROP TABLE auth_groups;
DROP TABLE auth_users;
