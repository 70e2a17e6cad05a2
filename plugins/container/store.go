package container

import (
	"context"
	"slices"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/core"
	"github.com/berth-dev/berth/core/db"
)

// This file and the other store_*.go files hold every SQL statement of the
// plugin. Each function takes the *core.Store to run on, which is either
// the pool or a transaction (see core.Store.Tx); they work the same on
// PostgreSQL and SQLite.

// inVersion is core.InVersionSQL with its three arguments.
func inVersion(repoID string, version int) (string, []any) {
	return core.InVersionSQL, []any{repoID, version, version}
}

// served says which repository version an image name reads from.
type served struct {
	RepoID  string
	Version int
	// Pinned: the distribution serves a fixed version; pushes are refused.
	Pinned bool
	// Private: the distribution is private (pulls need a role).
	Private bool
}

// servedByName resolves the container distribution whose base path is name.
// found is false when there is none or it serves nothing.
func servedByName(ctx context.Context, s *core.Store, name string) (served, bool, error) {
	var rows []struct {
		RepositoryID       *string
		LatestVersion      *int
		PinnedRepositoryID *string
		PinnedNumber       *int
		Private            bool
	}
	err := s.DB(ctx).Raw(`SELECT d.repository_id AS repository_id, r.latest_version AS latest_version, d.private AS private,
			pv.repository_id AS pinned_repository_id, pv.number AS pinned_number
		FROM distributions d
		LEFT JOIN repositories r ON r.id = d.repository_id
		LEFT JOIN repository_versions pv ON pv.id = d.repository_version_id
		WHERE d.base_path = ? AND d.type = ?`, name, TypeDistribution).Scan(&rows).Error
	if err != nil || len(rows) == 0 {
		return served{}, false, core.Translate(err)
	}
	r := rows[0]
	switch {
	case r.PinnedRepositoryID != nil && r.PinnedNumber != nil:
		return served{RepoID: *r.PinnedRepositoryID, Version: *r.PinnedNumber, Pinned: true, Private: r.Private}, true, nil
	case r.RepositoryID != nil && r.LatestVersion != nil:
		return served{RepoID: *r.RepositoryID, Version: *r.LatestVersion, Private: r.Private}, true, nil
	}
	return served{}, false, nil
}

// manifestRef identifies a manifest found in a version; found=false caches
// a miss.
type manifestRef struct {
	ContentID string
	Digest    digest.Digest
	MediaType string
	Size      int64
	found     bool
}

// manifestData is a manifest's media type and exact bytes.
type manifestData struct {
	MediaType string
	Data      []byte
}

// manifestInVersion finds the manifest a tag or digest names in a version,
// with its bytes (one round trip for a cold GET).
func manifestInVersion(ctx context.Context, s *core.Store, repoID string, version int, ref reference) (manifestRef, []byte, error) {
	cond, args := inVersion(repoID, version)
	var q string
	if ref.digest != "" {
		q = `SELECT m.content_id AS content_id, m.digest AS digest, m.media_type AS media_type, m.size AS size, m.data AS data
			FROM container_manifests m
			JOIN repository_contents rc ON rc.content_id = m.content_id
			WHERE m.digest = ? AND ` + cond
		args = append([]any{ref.digest.String()}, args...)
	} else {
		// Driven by the tag name (indexed), checking membership per candidate.
		q = `SELECT m.content_id AS content_id, m.digest AS digest, m.media_type AS media_type, m.size AS size, m.data AS data
			FROM container_tags t
			JOIN container_manifests m ON m.content_id = t.manifest_id
			WHERE t.name = ? AND EXISTS (SELECT 1 FROM repository_contents rc WHERE rc.content_id = t.content_id AND ` + cond + `)`
		args = append([]any{ref.tag}, args...)
	}
	var rows []struct {
		ContentID string
		Digest    string
		MediaType string
		Size      int64
		Data      []byte
	}
	if err := s.DB(ctx).Raw(q, args...).Scan(&rows).Error; err != nil {
		return manifestRef{}, nil, core.Translate(err)
	}
	if len(rows) == 0 {
		return manifestRef{}, nil, nil
	}
	r := rows[0]
	return manifestRef{ContentID: r.ContentID, Digest: digest.Digest(r.Digest), MediaType: r.MediaType, Size: r.Size, found: true}, r.Data, nil
}

// manifestBytes loads a manifest's bytes by digest.
func manifestBytes(ctx context.Context, s *core.Store, d digest.Digest) (manifestData, bool, error) {
	var rows []manifestData
	err := s.DB(ctx).Raw(`SELECT media_type, data FROM container_manifests WHERE digest = ?`, d.String()).Scan(&rows).Error
	if err != nil || len(rows) == 0 {
		return manifestData{}, false, core.Translate(err)
	}
	return rows[0], true, nil
}

// blobInVersion reports whether blob d is content of a version.
func blobInVersion(ctx context.Context, s *core.Store, repoID string, version int, d digest.Digest) (bool, error) {
	cond, args := inVersion(repoID, version)
	var n int64
	err := s.DB(ctx).Raw(`SELECT COUNT(*) FROM container_blobs b
		JOIN repository_contents rc ON rc.content_id = b.content_id
		WHERE b.digest = ? AND `+cond, append([]any{d.String()}, args...)...).Scan(&n).Error
	return n > 0, core.Translate(err)
}

// pendingBlob reports whether blob d was uploaded to or mounted into name
// and is not (yet) taken into a version or expired.
func pendingBlob(ctx context.Context, s *core.Store, name string, d digest.Digest) (bool, error) {
	var n int64
	err := s.DB(ctx).Raw(`SELECT COUNT(*) FROM container_pending_blobs WHERE repository = ? AND digest = ?`, name, d.String()).Scan(&n).Error
	return n > 0, core.Translate(err)
}

// visibleBlobs returns, of the given digests, those readable through name:
// in the version of repoID, or pending for name. It maps digest → content ID.
func visibleBlobs(ctx context.Context, s *core.Store, name, repoID string, version int, digests []string) (map[string]string, error) {
	out := map[string]string{}
	if len(digests) == 0 {
		return out, nil
	}
	cond, args := inVersion(repoID, version)
	var rows []struct {
		Digest    string
		ContentID string
	}
	q := `SELECT b.digest AS digest, b.content_id AS content_id FROM container_blobs b
		WHERE b.digest IN ? AND (
		  EXISTS (SELECT 1 FROM repository_contents rc WHERE rc.content_id = b.content_id AND ` + cond + `)
		  OR EXISTS (SELECT 1 FROM container_pending_blobs pb WHERE pb.repository = ? AND pb.digest = b.digest))`
	all := append(append([]any{digests}, args...), name)
	if err := s.DB(ctx).Raw(q, all...).Scan(&rows).Error; err != nil {
		return nil, core.Translate(err)
	}
	for _, r := range rows {
		out[r.Digest] = r.ContentID
	}
	return out, nil
}

// manifestsInVersion returns, of the given digests, the manifests in a
// version, mapped digest → content ID.
func manifestsInVersion(ctx context.Context, s *core.Store, repoID string, version int, digests []string) (map[string]string, error) {
	out := map[string]string{}
	if len(digests) == 0 {
		return out, nil
	}
	cond, args := inVersion(repoID, version)
	var rows []struct {
		Digest    string
		ContentID string
	}
	err := s.DB(ctx).Raw(`SELECT m.digest AS digest, m.content_id AS content_id FROM container_manifests m
		JOIN repository_contents rc ON rc.content_id = m.content_id
		WHERE m.digest IN ? AND `+cond, append([]any{digests}, args...)...).Scan(&rows).Error
	if err != nil {
		return nil, core.Translate(err)
	}
	for _, r := range rows {
		out[r.Digest] = r.ContentID
	}
	return out, nil
}

// insertBlob adds the container row of a blob content.
func insertBlob(ctx context.Context, s *core.Store, contentID string, d digest.Digest, size int64) error {
	return core.Translate(s.DB(ctx).Exec(`INSERT INTO container_blobs (content_id, digest, size) VALUES (?, ?, ?)
		ON CONFLICT DO NOTHING`, contentID, d.String(), size).Error)
}

// blobContentID finds the content of blob d.
func blobContentID(ctx context.Context, s *core.Store, d digest.Digest) (string, bool, error) {
	var ids []string
	err := s.DB(ctx).Raw(`SELECT content_id FROM container_blobs WHERE digest = ?`, d.String()).Scan(&ids).Error
	if err != nil || len(ids) == 0 {
		return "", false, core.Translate(err)
	}
	return ids[0], true, nil
}

// upsertPending records that blob d is readable through name from now on.
func upsertPending(ctx context.Context, s *core.Store, name string, d digest.Digest, blobID string) error {
	return core.Translate(s.DB(ctx).Exec(`INSERT INTO container_pending_blobs (repository, digest, blob_id, created_at)
		VALUES (?, ?, ?, ?)
		ON CONFLICT (repository, digest) DO UPDATE SET created_at = excluded.created_at`,
		name, d.String(), blobID, time.Now().UTC()).Error)
}

// deletePending forgets pending blobs of name.
func deletePending(ctx context.Context, s *core.Store, name string, digests []string) (int64, error) {
	if len(digests) == 0 {
		return 0, nil
	}
	res := s.DB(ctx).Exec(`DELETE FROM container_pending_blobs WHERE repository = ? AND digest IN ?`, name, digests)
	return res.RowsAffected, core.Translate(res.Error)
}

// deletePendingBefore forgets pending blobs recorded before cutoff.
func deletePendingBefore(ctx context.Context, s *core.Store, cutoff time.Time) (int64, error) {
	res := s.DB(ctx).Exec(`DELETE FROM container_pending_blobs WHERE created_at < ?`, cutoff.UTC())
	return res.RowsAffected, core.Translate(res.Error)
}

// blobHolders names up to limit image names through which blob d is
// readable: pending there, or in the version their distribution serves.
func blobHolders(ctx context.Context, s *core.Store, d digest.Digest, limit int) ([]string, error) {
	var names []string
	if err := s.DB(ctx).Raw(`SELECT repository FROM container_pending_blobs WHERE digest = ? ORDER BY repository LIMIT ?`,
		d.String(), limit).Scan(&names).Error; err != nil {
		return nil, core.Translate(err)
	}
	var more []string
	err := s.DB(ctx).Raw(`SELECT d.base_path FROM container_blobs b
		JOIN repository_contents rc ON rc.content_id = b.content_id
		JOIN repositories r ON r.id = rc.repository_id
		JOIN distributions d ON d.repository_id = r.id AND d.type = ?
		WHERE b.digest = ? AND rc.version_added <= r.latest_version
		  AND (rc.version_removed IS NULL OR rc.version_removed > r.latest_version)
		ORDER BY d.base_path LIMIT ?`, TypeDistribution, d.String(), limit).Scan(&more).Error
	return append(names, more...), core.Translate(err)
}

// manifestRow is a container_manifests row.
type manifestRow struct {
	ContentID       string
	Digest          string
	MediaType       string
	SchemaVersion   int
	Size            int64
	IsIndex         bool
	ArtifactType    string
	ConfigDigest    string
	ConfigMediaType string
	SubjectDigest   *string
	Annotations     string
	OS              string
	Architecture    string
	Variant         string
	Labels          string
	Data            []byte
	CreatedAt       time.Time
}

// refRow is a container_manifest_refs row.
type refRow struct {
	Position     int
	Kind         string
	Digest       string
	MediaType    string
	Size         int64
	OS           string
	Architecture string
	Variant      string
}

// insertManifest adds the container rows of a manifest content.
func insertManifest(ctx context.Context, s *core.Store, m manifestRow, refs []refRow) error {
	g := s.DB(ctx)
	err := g.Exec(`INSERT INTO container_manifests (content_id, digest, media_type, schema_version, size, is_index,
			artifact_type, config_digest, config_media_type, subject_digest, annotations, os, architecture, variant,
			labels, data, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		m.ContentID, m.Digest, m.MediaType, m.SchemaVersion, m.Size, m.IsIndex,
		m.ArtifactType, m.ConfigDigest, m.ConfigMediaType, m.SubjectDigest, m.Annotations, m.OS, m.Architecture, m.Variant,
		m.Labels, m.Data, m.CreatedAt).Error
	if err != nil {
		return core.Translate(err)
	}
	for _, r := range refs {
		if err := g.Exec(`INSERT INTO container_manifest_refs (manifest_id, position, kind, digest, media_type, size, os, architecture, variant)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			m.ContentID, r.Position, r.Kind, r.Digest, r.MediaType, r.Size, r.OS, r.Architecture, r.Variant).Error; err != nil {
			return core.Translate(err)
		}
	}
	return nil
}

// insertTag adds the container row of a tag content.
func insertTag(ctx context.Context, s *core.Store, contentID, name, manifestID string) error {
	return core.Translate(s.DB(ctx).Exec(`INSERT INTO container_tags (content_id, name, manifest_id) VALUES (?, ?, ?)
		ON CONFLICT DO NOTHING`, contentID, name, manifestID).Error)
}

// tagContentIDs lists the tag contents named tag in a version (at most one
// when the registry made the version, but a repository filled otherwise may
// hold more).
func tagContentIDs(ctx context.Context, s *core.Store, repoID string, version int, tag string) ([]string, error) {
	cond, args := inVersion(repoID, version)
	var ids []string
	err := s.DB(ctx).Raw(`SELECT t.content_id FROM container_tags t
		WHERE t.name = ? AND EXISTS (SELECT 1 FROM repository_contents rc WHERE rc.content_id = t.content_id AND `+cond+`)`,
		append([]any{tag}, args...)...).Scan(&ids).Error
	return ids, core.Translate(err)
}

// tagContentsByName maps each of the tag names to its tag contents in a
// version, in one query per thousand names.
func tagContentsByName(ctx context.Context, s *core.Store, repoID string, version int, names []string) (map[string][]string, error) {
	out := map[string][]string{}
	cond, args := inVersion(repoID, version)
	for chunk := range slices.Chunk(names, 1000) {
		var rows []struct {
			Name      string
			ContentID string
		}
		err := s.DB(ctx).Raw(`SELECT t.name AS name, t.content_id AS content_id FROM container_tags t
			WHERE t.name IN ? AND EXISTS (SELECT 1 FROM repository_contents rc WHERE rc.content_id = t.content_id AND `+cond+`)`,
			append([]any{chunk}, args...)...).Scan(&rows).Error
		if err != nil {
			return nil, core.Translate(err)
		}
		for _, r := range rows {
			out[r.Name] = append(out[r.Name], r.ContentID)
		}
	}
	return out, nil
}

// tagsOfManifest lists the tag contents in a version that point at a manifest.
func tagsOfManifest(ctx context.Context, s *core.Store, repoID string, version int, manifestID string) ([]string, error) {
	cond, args := inVersion(repoID, version)
	var ids []string
	err := s.DB(ctx).Raw(`SELECT t.content_id FROM container_tags t
		WHERE t.manifest_id = ? AND EXISTS (SELECT 1 FROM repository_contents rc WHERE rc.content_id = t.content_id AND `+cond+`)`,
		append([]any{manifestID}, args...)...).Scan(&ids).Error
	return ids, core.Translate(err)
}

// tagNames lists up to limit tag names of a version after last, in byte
// order: one query, driven by the version's membership rows and sorted with
// a bounded top-n by the database.
func tagNames(ctx context.Context, s *core.Store, repoID string, version int, last string, limit int) ([]string, error) {
	cond, args := inVersion(repoID, version)
	names := []string{}
	err := s.DB(ctx).Raw(`SELECT t.name FROM container_tags t
		JOIN repository_contents rc ON rc.content_id = t.content_id
		WHERE `+cond+` AND t.name > ?
		ORDER BY t.name LIMIT ?`, append(args, last, limit)...).Scan(&names).Error
	return names, core.Translate(err)
}

// referrerRow describes a manifest whose subject is the digest asked for.
// Data is only loaded when the annotations were too large to copy.
type referrerRow struct {
	Digest       string
	MediaType    string
	Size         int64
	ArtifactType string
	Annotations  string
	Data         []byte
}

// referrers lists the manifests of a version whose subject is subject,
// optionally only those of one artifact type.
func referrers(ctx context.Context, s *core.Store, repoID string, version int, subject digest.Digest, artifactType string) ([]referrerRow, error) {
	cond, args := inVersion(repoID, version)
	q := `SELECT m.digest AS digest, m.media_type AS media_type, m.size AS size, m.artifact_type AS artifact_type,
			m.annotations AS annotations, CASE WHEN m.annotations = '' THEN m.data END AS data
		FROM container_manifests m
		JOIN repository_contents rc ON rc.content_id = m.content_id
		WHERE m.subject_digest = ? AND ` + cond
	all := append([]any{subject.String()}, args...)
	if artifactType != "" {
		q += ` AND m.artifact_type = ?`
		all = append(all, artifactType)
	}
	var rows []referrerRow
	err := s.DB(ctx).Raw(q+` ORDER BY m.digest`, all...).Scan(&rows).Error
	return rows, core.Translate(err)
}

// catalogNames lists up to limit container distribution base paths after
// last, in byte order.
func catalogNames(ctx context.Context, s *core.Store, last string, limit int) ([]string, error) {
	col := "base_path"
	if s.Dialect() == db.Postgres {
		col = `base_path COLLATE "C"`
	}
	names := []string{}
	err := s.DB(ctx).Raw(`SELECT base_path FROM distributions WHERE type = ? AND `+col+` > ?
		ORDER BY `+col+` LIMIT ?`, TypeDistribution, last, limit).Scan(&names).Error
	return names, core.Translate(err)
}
