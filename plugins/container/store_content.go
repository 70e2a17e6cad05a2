package container

import (
	"context"
	"time"

	"github.com/berth-dev/berth/core"
)

// The SQL of the REST API's content lists (rest_content.go).

// contentRow is a container content unit as listed: the fields of its kind.
type contentRow struct {
	ID            string
	CreatedAt     time.Time
	Digest        string
	Size          int64
	Name          string
	ManifestID    string
	MediaType     string
	SchemaVersion int
	IsIndex       bool
	ArtifactType  string
	SubjectDigest *string
}

// contentTables are, per kind, the tables, list columns and selected
// fields of the content lists.
var contentTables = map[string]struct {
	from   string
	joins  []string
	cols   core.Columns
	fields string
}{
	"blobs": {
		from: "container_blobs b", joins: []string{"JOIN contents c ON c.id = b.content_id"},
		cols:   core.Columns{"digest": "b.digest", "pulp_id": "c.id", "pulp_created": "c.created_at"},
		fields: "c.id AS id, c.created_at AS created_at, b.digest AS digest, b.size AS size",
	},
	"manifests": {
		from: "container_manifests m", joins: []string{"JOIN contents c ON c.id = m.content_id"},
		cols: core.Columns{"digest": "m.digest", "pulp_id": "c.id", "pulp_created": "c.created_at", "media_type": "m.media_type"},
		fields: `c.id AS id, c.created_at AS created_at, m.digest AS digest, m.media_type AS media_type,
			m.schema_version AS schema_version, m.is_index AS is_index, m.artifact_type AS artifact_type, m.subject_digest AS subject_digest`,
	},
	"tags": {
		from:   "container_tags t",
		joins:  []string{"JOIN contents c ON c.id = t.content_id", "JOIN container_manifests m ON m.content_id = t.manifest_id"},
		cols:   core.Columns{"name": "t.name", "digest": "m.digest", "pulp_id": "c.id", "pulp_created": "c.created_at"},
		fields: "c.id AS id, c.created_at AS created_at, t.name AS name, t.manifest_id AS manifest_id, m.digest AS digest",
	},
}

// listContentRows pages through the container content of one kind, of
// one repository version when vf is set.
func listContentRows(ctx context.Context, s *core.Store, kind string, vf *versionFilter, q core.ListQuery) ([]contentRow, int64, error) {
	t := contentTables[kind]
	base := s.DB(ctx).Table(t.from)
	for _, j := range t.joins {
		base = base.Joins(j)
	}
	if vf != nil {
		base = base.Where("EXISTS (SELECT 1 FROM repository_contents rc WHERE rc.content_id = c.id AND "+core.InVersionSQL+")",
			vf.repoID, vf.number, vf.number)
	}
	filtered, paged, err := q.Apply(base, t.cols, "c.created_at")
	if err != nil {
		return nil, 0, err
	}
	var total int64
	if err := filtered.Count(&total).Error; err != nil {
		return nil, 0, core.Translate(err)
	}
	var rows []contentRow
	if err := paged.Select(t.fields).Scan(&rows).Error; err != nil {
		return nil, 0, core.Translate(err)
	}
	return rows, total, nil
}

// refContent is what a manifest references, as content.
type refContent struct {
	ManifestID string
	Kind       string
	ContentID  string
}

// manifestRefHrefs maps manifests to the content their references name
// (those the registry knows), in order.
func manifestRefHrefs(ctx context.Context, s *core.Store, manifestIDs []string) (map[string][]refContent, error) {
	out := map[string][]refContent{}
	if len(manifestIDs) == 0 {
		return out, nil
	}
	var rows []refContent
	err := s.DB(ctx).Raw(`SELECT r.manifest_id AS manifest_id, r.kind AS kind, COALESCE(b.content_id, m2.content_id) AS content_id
		FROM container_manifest_refs r
		LEFT JOIN container_blobs b ON b.digest = r.digest AND r.kind <> 'manifest'
		LEFT JOIN container_manifests m2 ON m2.digest = r.digest AND r.kind = 'manifest'
		WHERE r.manifest_id IN ? AND COALESCE(b.content_id, m2.content_id) IS NOT NULL
		ORDER BY r.manifest_id, r.position`, manifestIDs).Scan(&rows).Error
	if err != nil {
		return nil, core.Translate(err)
	}
	for _, r := range rows {
		out[r.ManifestID] = append(out[r.ManifestID], r)
	}
	return out, nil
}

// contentInVisibleRepository reports whether content is in some version of
// a repository whose image v may see (public, or of a namespace v names).
func contentInVisibleRepository(ctx context.Context, s *core.Store, contentID string, v Visible) (bool, error) {
	names := append([]string{""}, v.Namespaces...)
	var n int64
	err := s.DB(ctx).Raw(`SELECT COUNT(*) FROM repository_contents rc
		JOIN distributions d ON d.repository_id = rc.repository_id
		JOIN container_distributions cd ON cd.distribution_id = d.id
		JOIN container_namespaces ns ON ns.id = cd.namespace_id
		WHERE rc.content_id = ? AND (d.private = ? OR ns.name IN ?)`, contentID, false, names).Scan(&n).Error
	return n > 0, core.Translate(err)
}

// repositoryPrivate reports whether a private distribution serves the
// repository.
func repositoryPrivate(ctx context.Context, s *core.Store, repoID string) (bool, error) {
	var n int64
	err := s.DB(ctx).Raw(`SELECT COUNT(*) FROM distributions WHERE repository_id = ? AND private = ?`, repoID, true).Scan(&n).Error
	return n > 0, core.Translate(err)
}
