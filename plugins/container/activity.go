package container

import (
	"context"
	"time"

	"github.com/berth-dev/berth/core"
)

// The activity of an image (its history of tag and manifest changes) is
// kept in container_activity, written by a core version hook in the
// transaction of every new version of a container repository. It does not
// depend on the versions themselves: retain_repo_versions may prune and
// fold them, the history stays until the repository is deleted (ON DELETE
// CASCADE).

// activityHook is the name of the plugin's version hook.
const activityHook = PluginName + ".activity"

// Activity actions.
const (
	actionTagAdded     = "tag_added"
	actionTagRemoved   = "tag_removed"
	actionImageAdded   = "image_added"
	actionImageRemoved = "image_removed"
)

// recordActivity writes what version v of repo changed in its tags and
// manifests: the membership rows the version added (version_added = N) or
// removed (version_removed = N). It runs before retention folds older
// versions into v, so those rows are v's own change.
func recordActivity(ctx context.Context, tx *core.Store, repo *core.Repository, v *core.RepositoryVersion) error {
	if repo.Type != TypeRepository {
		return nil
	}
	// The version row is there already (in this transaction): it gives the
	// time and the user. Migration 00011 backfills with the same SELECTs.
	const q = `INSERT INTO container_activity (repository_id, version, created_at, created_by, action, tag, digest)
		SELECT v.repository_id, v.number, v.created_at, v.created_by, '` + actionTagAdded + `', t.name, m.digest
		FROM repository_versions v
		JOIN repository_contents rc ON rc.repository_id = v.repository_id AND rc.version_added = v.number
		JOIN container_tags t ON t.content_id = rc.content_id
		JOIN container_manifests m ON m.content_id = t.manifest_id
		WHERE v.id = ?
		UNION ALL
		SELECT v.repository_id, v.number, v.created_at, v.created_by, '` + actionTagRemoved + `', t.name, m.digest
		FROM repository_versions v
		JOIN repository_contents rc ON rc.repository_id = v.repository_id AND rc.version_removed = v.number
		JOIN container_tags t ON t.content_id = rc.content_id
		JOIN container_manifests m ON m.content_id = t.manifest_id
		WHERE v.id = ?
		UNION ALL
		SELECT v.repository_id, v.number, v.created_at, v.created_by, '` + actionImageAdded + `', '', m.digest
		FROM repository_versions v
		JOIN repository_contents rc ON rc.repository_id = v.repository_id AND rc.version_added = v.number
		JOIN container_manifests m ON m.content_id = rc.content_id
		WHERE v.id = ?
		UNION ALL
		SELECT v.repository_id, v.number, v.created_at, v.created_by, '` + actionImageRemoved + `', '', m.digest
		FROM repository_versions v
		JOIN repository_contents rc ON rc.repository_id = v.repository_id AND rc.version_removed = v.number
		JOIN container_manifests m ON m.content_id = rc.content_id
		WHERE v.id = ?`
	args := []any{v.ID, v.ID, v.ID, v.ID}
	return core.Translate(tx.DB(ctx).Exec(q, args...).Error)
}

// activityRow is one change of container_activity.
type activityRow struct {
	Version   int
	CreatedAt time.Time
	CreatedBy string
	Action    string
	Tag       string
	Digest    string
}

// activityPage lists the changes of the versions of repoID that changed
// tags or manifests, newest version first, limit versions from offset, and
// how many such versions there are. Within a version manifests come first
// (by digest), then tags (by name).
func activityPage(ctx context.Context, s *core.Store, repoID string, limit, offset int) ([]activityRow, int64, error) {
	g := s.DB(ctx)
	var total int64
	if err := g.Raw(`SELECT COUNT(DISTINCT version) FROM container_activity WHERE repository_id = ?`, repoID).Scan(&total).Error; err != nil {
		return nil, 0, core.Translate(err)
	}
	var numbers []int
	if err := g.Raw(`SELECT DISTINCT version FROM container_activity WHERE repository_id = ? ORDER BY version DESC LIMIT ? OFFSET ?`,
		repoID, limit, offset).Scan(&numbers).Error; err != nil {
		return nil, 0, core.Translate(err)
	}
	if len(numbers) == 0 {
		return nil, total, nil
	}
	var rows []activityRow
	err := g.Raw(`SELECT version, created_at, created_by, action, tag, digest FROM container_activity
		WHERE repository_id = ? AND version IN ?
		ORDER BY version DESC, CASE WHEN action IN ('image_added', 'image_removed') THEN 0 ELSE 1 END, tag, digest, id`,
		repoID, numbers).Scan(&rows).Error
	return rows, total, core.Translate(err)
}
