-- +goose Up
-- The history of an execution environment's tags and images (activity.go):
-- one row per tag or manifest a repository version added or removed, with
-- when and by whom, written in the transaction that made the version (a
-- core version hook). Rows outlive the versions they describe, so that
-- retain_repo_versions pruning and folding old versions loses no history;
-- they go with the repository. tag is '' for a manifest; digest is the
-- manifest's (for a tag: the manifest it names). A moved tag is a
-- tag_removed and a tag_added row of the same version.
CREATE TABLE container_activity (
    id             INTEGER PRIMARY KEY,
    repository_id  TEXT NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    version        INTEGER NOT NULL,
    created_at     DATETIME NOT NULL,
    created_by     TEXT NOT NULL DEFAULT '',
    action         TEXT NOT NULL CHECK (action IN ('tag_added', 'tag_removed', 'image_added', 'image_removed')),
    tag            TEXT NOT NULL DEFAULT '',
    digest         TEXT NOT NULL
);
CREATE INDEX container_activity_version_idx ON container_activity (repository_id, version);

-- The history the versions kept so far still hold (what retention folded
-- away before this table existed is gone).
INSERT INTO container_activity (repository_id, version, created_at, created_by, action, tag, digest)
SELECT v.repository_id, v.number, v.created_at, v.created_by, 'tag_added', t.name, m.digest
FROM repository_versions v
JOIN repository_contents rc ON rc.repository_id = v.repository_id AND rc.version_added = v.number
JOIN container_tags t ON t.content_id = rc.content_id
JOIN container_manifests m ON m.content_id = t.manifest_id
WHERE v.number > 0
UNION ALL
SELECT v.repository_id, v.number, v.created_at, v.created_by, 'tag_removed', t.name, m.digest
FROM repository_versions v
JOIN repository_contents rc ON rc.repository_id = v.repository_id AND rc.version_removed = v.number
JOIN container_tags t ON t.content_id = rc.content_id
JOIN container_manifests m ON m.content_id = t.manifest_id
WHERE v.number > 0
UNION ALL
SELECT v.repository_id, v.number, v.created_at, v.created_by, 'image_added', '', m.digest
FROM repository_versions v
JOIN repository_contents rc ON rc.repository_id = v.repository_id AND rc.version_added = v.number
JOIN container_manifests m ON m.content_id = rc.content_id
WHERE v.number > 0
UNION ALL
SELECT v.repository_id, v.number, v.created_at, v.created_by, 'image_removed', '', m.digest
FROM repository_versions v
JOIN repository_contents rc ON rc.repository_id = v.repository_id AND rc.version_removed = v.number
JOIN container_manifests m ON m.content_id = rc.content_id
WHERE v.number > 0;

-- +goose Down
DROP TABLE container_activity;
