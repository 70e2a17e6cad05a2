package container

import (
	"context"
	"time"

	"gorm.io/gorm/clause"

	"github.com/berth-dev/berth/core"
	"github.com/berth-dev/berth/core/db"
)

// The SQL of deletions, orphan protection, retention policies and storage
// accounting.

// loadSnapshot reads the container content of a repository version.
func loadSnapshot(ctx context.Context, s *core.Store, repoID string, version int) (*snapshot, error) {
	cond, args := inVersion(repoID, version)
	g := s.DB(ctx)
	snap := &snapshot{tags: map[string]*snapTag{}, manifests: map[string]*snapManifest{}, blobs: map[string]*snapBlob{}}

	var tags []struct {
		ID, Name, ManifestID string
		CreatedAt            time.Time
	}
	if err := g.Raw(`SELECT t.content_id AS id, t.name AS name, t.manifest_id AS manifest_id, c.created_at AS created_at
		FROM container_tags t JOIN contents c ON c.id = t.content_id
		WHERE EXISTS (SELECT 1 FROM repository_contents rc WHERE rc.content_id = t.content_id AND `+cond+`)`, args...).Scan(&tags).Error; err != nil {
		return nil, core.Translate(err)
	}
	for _, t := range tags {
		snap.tags[t.ID] = &snapTag{ID: t.ID, Name: t.Name, ManifestID: t.ManifestID, Created: t.CreatedAt}
	}

	var manifests []struct {
		ContentID     string
		Digest        string
		IsIndex       bool
		SubjectDigest *string
		CreatedAt     time.Time
	}
	if err := g.Raw(`SELECT m.content_id AS content_id, m.digest AS digest, m.is_index AS is_index,
			m.subject_digest AS subject_digest, m.created_at AS created_at
		FROM container_manifests m JOIN repository_contents rc ON rc.content_id = m.content_id
		WHERE `+cond, args...).Scan(&manifests).Error; err != nil {
		return nil, core.Translate(err)
	}
	for _, m := range manifests {
		sm := &snapManifest{ID: m.ContentID, Digest: m.Digest, IsIndex: m.IsIndex, Created: m.CreatedAt}
		if m.SubjectDigest != nil {
			sm.Subject = *m.SubjectDigest
		}
		snap.manifests[m.ContentID] = sm
	}

	var refs []struct {
		ManifestID, Kind, Digest string
	}
	if err := g.Raw(`SELECT r.manifest_id AS manifest_id, r.kind AS kind, r.digest AS digest
		FROM container_manifest_refs r JOIN repository_contents rc ON rc.content_id = r.manifest_id
		WHERE `+cond+` ORDER BY r.manifest_id, r.position`, args...).Scan(&refs).Error; err != nil {
		return nil, core.Translate(err)
	}
	for _, r := range refs {
		m := snap.manifests[r.ManifestID]
		if m == nil {
			continue
		}
		if r.Kind == "manifest" {
			m.Children = append(m.Children, r.Digest)
		} else {
			m.Blobs = append(m.Blobs, r.Digest)
		}
	}

	var blobs []struct {
		ContentID string
		Digest    string
		Size      int64
		CreatedAt time.Time
	}
	if err := g.Raw(`SELECT b.content_id AS content_id, b.digest AS digest, b.size AS size, c.created_at AS created_at
		FROM container_blobs b JOIN contents c ON c.id = b.content_id
		JOIN repository_contents rc ON rc.content_id = b.content_id
		WHERE `+cond, args...).Scan(&blobs).Error; err != nil {
		return nil, core.Translate(err)
	}
	for _, b := range blobs {
		snap.blobs[b.ContentID] = &snapBlob{ID: b.ContentID, Digest: b.Digest, Size: b.Size, Created: b.CreatedAt}
	}
	snap.index()
	return snap, nil
}

// protectedContent returns those of ids that the registry still needs
// though no version holds them (see Plugin.ProtectedContent).
func protectedContent(ctx context.Context, s *core.Store, ids []string) ([]string, error) {
	var out []string
	err := s.DB(ctx).Raw(`SELECT b.content_id FROM container_blobs b
		WHERE b.content_id IN ? AND (
		  EXISTS (SELECT 1 FROM container_pending_blobs pb WHERE pb.digest = b.digest)
		  OR EXISTS (SELECT 1 FROM container_manifest_refs r
		    JOIN repository_contents rc ON rc.content_id = r.manifest_id
		    WHERE r.digest = b.digest AND r.kind <> 'manifest')
		  OR EXISTS (SELECT 1 FROM container_manifest_refs r
		    JOIN container_manifests cm ON cm.content_id = r.manifest_id
		    JOIN container_manifest_refs ir ON ir.digest = cm.digest AND ir.kind = 'manifest'
		    JOIN repository_contents rc ON rc.content_id = ir.manifest_id
		    WHERE r.digest = b.digest AND r.kind <> 'manifest'))
		UNION
		SELECT m.content_id FROM container_manifests m
		WHERE m.content_id IN ? AND (
		  EXISTS (SELECT 1 FROM container_manifest_refs r
		    JOIN repository_contents rc ON rc.content_id = r.manifest_id
		    WHERE r.digest = m.digest AND r.kind = 'manifest')
		  OR EXISTS (SELECT 1 FROM container_tags t
		    JOIN repository_contents rc ON rc.content_id = t.content_id
		    WHERE t.manifest_id = m.content_id))`, ids, ids).Scan(&out).Error
	return out, core.Translate(err)
}

// deleteRepositoryDistributions deletes the container distributions that
// serve repository repoID (its latest version or one of its versions) and
// returns their base paths.
func deleteRepositoryDistributions(ctx context.Context, s *core.Store, repoID string) ([]string, error) {
	var rows []struct {
		ID       string
		BasePath string
	}
	err := s.DB(ctx).Raw(`SELECT id, base_path FROM distributions
		WHERE type = ? AND (repository_id = ? OR repository_version_id IN (SELECT id FROM repository_versions WHERE repository_id = ?))`,
		TypeDistribution, repoID, repoID).Scan(&rows).Error
	if err != nil || len(rows) == 0 {
		return nil, core.Translate(err)
	}
	ids := make([]string, len(rows))
	names := make([]string, len(rows))
	for i, r := range rows {
		ids[i], names[i] = r.ID, r.BasePath
	}
	return names, core.Translate(s.DB(ctx).Exec(`DELETE FROM distributions WHERE id IN ?`, ids).Error)
}

// repositoryRemotes lists the remote images' remotes that sync into
// repository repoID.
func repositoryRemotes(ctx context.Context, s *core.Store, repoID string) ([]string, error) {
	var ids []string
	err := s.DB(ctx).Raw(`SELECT remote_id FROM container_remotes WHERE repository_id = ?`, repoID).Scan(&ids).Error
	return ids, core.Translate(err)
}

// deleteContainerRemote deletes remote id if it is a remote image's remote
// (container.container) that no other repository syncs into.
func deleteContainerRemote(ctx context.Context, s *core.Store, id string) error {
	var n int64
	err := s.DB(ctx).Raw(`SELECT COUNT(*) FROM remotes r WHERE r.id = ? AND r.type = ?`, id, TypeRemote).Scan(&n).Error
	if err != nil || n == 0 {
		return core.Translate(err)
	}
	return s.DeleteRemote(ctx, id)
}

// namespaceImage is a distribution of a namespace and the repository it
// serves (nil for one pinned to a version or serving nothing).
type namespaceImage struct {
	DistributionID string
	BasePath       string
	RepositoryID   *string
}

// lockNamespace loads a namespace by ID, locked for the transaction (on
// PostgreSQL; SQLite's write transaction is serialized anyway).
func lockNamespace(ctx context.Context, s *core.Store, id string) (*Namespace, bool, error) {
	g := s.DB(ctx).Table("container_namespaces").Where("id = ?", id)
	if s.Dialect() == db.Postgres {
		g = g.Clauses(clause.Locking{Strength: "UPDATE"})
	}
	var rows []Namespace
	if err := g.Find(&rows).Error; err != nil {
		return nil, false, core.Translate(err)
	}
	if len(rows) == 0 {
		return nil, false, nil
	}
	return &rows[0], true, nil
}

// namespaceImages lists the distributions of a namespace, by base path.
func namespaceImages(ctx context.Context, s *core.Store, nsID string) ([]namespaceImage, error) {
	var out []namespaceImage
	err := s.DB(ctx).Raw(`SELECT d.id AS distribution_id, d.base_path AS base_path, d.repository_id AS repository_id
		FROM container_distributions cd JOIN distributions d ON d.id = cd.distribution_id
		WHERE cd.namespace_id = ? ORDER BY d.base_path`, nsID).Scan(&out).Error
	return out, core.Translate(err)
}

// deleteNamespaceRow deletes an (empty) namespace.
func deleteNamespaceRow(ctx context.Context, s *core.Store, id string) error {
	return core.Translate(s.DB(ctx).Exec(`DELETE FROM container_namespaces WHERE id = ?`, id).Error)
}

// retentionRow is a stored retention policy of a repository.
type retentionRow struct {
	RepositoryID          string
	KeepTags              *int
	TagPattern            string
	UntaggedOlderThanDays *int
	UpdatedAt             time.Time
}

func (r retentionRow) policy() RetentionPolicy {
	return RetentionPolicy{KeepTags: r.KeepTags, TagPattern: r.TagPattern, UntaggedOlderThanDays: r.UntaggedOlderThanDays}
}

// saveRetention stores (replaces) the retention policy of a repository.
func saveRetention(ctx context.Context, s *core.Store, repoID string, p RetentionPolicy) error {
	return core.Translate(s.DB(ctx).Exec(`INSERT INTO container_retention_policies
			(repository_id, keep_tags, tag_pattern, untagged_older_than_days, updated_at)
		VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (repository_id) DO UPDATE SET keep_tags = excluded.keep_tags, tag_pattern = excluded.tag_pattern,
			untagged_older_than_days = excluded.untagged_older_than_days, updated_at = excluded.updated_at`,
		repoID, p.KeepTags, p.TagPattern, p.UntaggedOlderThanDays, time.Now().UTC()).Error)
}

// retentionOf loads the stored policy of a repository.
func retentionOf(ctx context.Context, s *core.Store, repoID string) (*retentionRow, bool, error) {
	var rows []retentionRow
	err := s.DB(ctx).Raw(`SELECT repository_id, keep_tags, tag_pattern, untagged_older_than_days, updated_at
		FROM container_retention_policies WHERE repository_id = ?`, repoID).Scan(&rows).Error
	if err != nil || len(rows) == 0 {
		return nil, false, core.Translate(err)
	}
	return &rows[0], true, nil
}

// deleteRetention removes the stored policy of a repository.
func deleteRetention(ctx context.Context, s *core.Store, repoID string) (bool, error) {
	res := s.DB(ctx).Exec(`DELETE FROM container_retention_policies WHERE repository_id = ?`, repoID)
	return res.RowsAffected > 0, core.Translate(res.Error)
}

// retentionRepositories lists the repositories with a stored policy.
func retentionRepositories(ctx context.Context, s *core.Store) ([]string, error) {
	var ids []string
	err := s.DB(ctx).Raw(`SELECT repository_id FROM container_retention_policies ORDER BY repository_id`).Scan(&ids).Error
	return ids, core.Translate(err)
}

// namespaceRepositories lists the repositories the images of a namespace
// serve.
func namespaceRepositories(ctx context.Context, s *core.Store, nsID string) ([]imageRepository, error) {
	var out []imageRepository
	err := s.DB(ctx).Raw(`SELECT d.base_path AS name, r.id AS repository_id FROM container_distributions cd
		JOIN distributions d ON d.id = cd.distribution_id
		JOIN repositories r ON r.id = d.repository_id
		WHERE cd.namespace_id = ? ORDER BY d.base_path`, nsID).Scan(&out).Error
	return out, core.Translate(err)
}

// imageRepository is an image name and the repository it serves.
type imageRepository struct {
	Name         string
	RepositoryID string
}

// namespaceUsageRow is the storage of one namespace.
type namespaceUsageRow struct {
	NamespaceID string
	Artifacts   int64
	Bytes       int64
}

// namespacesUsage sums, per namespace, the distinct blob files of every
// version of its repositories.
func namespacesUsage(ctx context.Context, s *core.Store) (map[string]core.Usage, error) {
	var rows []namespaceUsageRow
	err := s.DB(ctx).Raw(`SELECT x.namespace_id AS namespace_id, COUNT(*) AS artifacts, COALESCE(SUM(x.size), 0) AS bytes FROM (
			SELECT DISTINCT cd.namespace_id AS namespace_id, a.id AS id, a.size AS size
			FROM container_distributions cd
			JOIN distributions d ON d.id = cd.distribution_id
			JOIN repository_contents rc ON rc.repository_id = d.repository_id
			JOIN content_artifacts ca ON ca.content_id = rc.content_id
			JOIN artifacts a ON a.id = ca.artifact_id) x
		GROUP BY x.namespace_id`).Scan(&rows).Error
	if err != nil {
		return nil, core.Translate(err)
	}
	out := make(map[string]core.Usage, len(rows))
	for _, r := range rows {
		out[r.NamespaceID] = core.Usage{Artifacts: r.Artifacts, Bytes: r.Bytes}
	}
	return out, nil
}

// namespaceOfRepository finds the namespace of the container
// distribution serving repoID, "" when none does.
func namespaceOfRepository(ctx context.Context, s *core.Store, repoID string) (string, error) {
	var names []string
	err := s.DB(ctx).Raw(`SELECT ns.name FROM container_namespaces ns
		JOIN container_distributions cd ON cd.namespace_id = ns.id
		JOIN distributions d ON d.id = cd.distribution_id
		WHERE d.repository_id = ? ORDER BY ns.name LIMIT 1`, repoID).Scan(&names).Error
	if err != nil || len(names) == 0 {
		return "", core.Translate(err)
	}
	return names[0], nil
}
