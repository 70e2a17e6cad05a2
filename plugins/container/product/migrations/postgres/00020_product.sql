-- +goose Up
-- The product views' own tables: readmes of execution environments and the
-- image catalog. (A migration set of its own: numbered apart from the
-- container plugin's.)

-- The readme of an execution environment (its distribution), markdown as
-- the user wrote it. Never synced from remotes.
CREATE TABLE product_readmes (
    distribution_id  TEXT PRIMARY KEY REFERENCES distributions(id) ON DELETE CASCADE,
    text             TEXT NOT NULL,
    updated_by       TEXT NOT NULL DEFAULT '',
    created_at       TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL
);

-- The image catalog: images users may pick, by display name.
CREATE TABLE product_catalog (
    id               TEXT PRIMARY KEY,
    name             TEXT NOT NULL UNIQUE,
    display_name     TEXT NOT NULL,
    description      TEXT NOT NULL DEFAULT '',
    type             TEXT NOT NULL CHECK (type IN ('cpu', 'gpu', 'universal')),
    url              TEXT NOT NULL DEFAULT '',
    gpu_url          TEXT NOT NULL DEFAULT '',
    pull_secret_enc  TEXT NOT NULL DEFAULT '',
    global           BOOLEAN NOT NULL DEFAULT FALSE,
    system           BOOLEAN NOT NULL DEFAULT FALSE,
    build_id         TEXT NOT NULL DEFAULT '',
    created_by       TEXT NOT NULL DEFAULT '',
    created_at       TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL
);

-- The groups that may use a catalog entry that is not global.
CREATE TABLE product_catalog_groups (
    entry_id  TEXT NOT NULL REFERENCES product_catalog(id) ON DELETE CASCADE,
    group_id  TEXT NOT NULL REFERENCES auth_groups(id) ON DELETE CASCADE,
    PRIMARY KEY (entry_id, group_id)
);
CREATE INDEX product_catalog_groups_group_idx ON product_catalog_groups (group_id);

-- +goose Down
DROP TABLE product_catalog_groups;
DROP TABLE product_catalog;
DROP TABLE product_readmes;
