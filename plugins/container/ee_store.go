package container

import (
	"context"
	"time"

	"gorm.io/gorm"

	"github.com/berth-dev/berth/core"
)

// The queries of the execution-environment views (ee_service.go): images
// as a product shows them, their top-level manifests and the tags a caller
// may pull (their history of tag and manifest changes is in activity.go).

// eeRow is an image (distribution) with its namespace and repository.
type eeRow struct {
	DistributionID string
	Name           string
	Namespace      string
	Private        bool
	RepositoryID   *string
	Description    *string
	RemoteID       *string
	LatestVersion  *int
	CreatedAt      time.Time
	DistUpdated    time.Time
	RepoUpdated    *time.Time
}

// eeColumns are the list filters and orderings of images.
var eeColumns = core.Columns{
	"name": "d.base_path", "namespace": "ns.name", "pulp_created": "d.created_at",
	"pulp_last_updated": "d.updated_at", "remote": "(r.remote_id IS NOT NULL)", "private": "d.private",
}

const eeSelect = `d.id AS distribution_id, d.base_path AS name, ns.name AS namespace, d.private AS private,
	r.id AS repository_id, r.description AS description, r.remote_id AS remote_id, r.latest_version AS latest_version,
	d.created_at AS created_at, d.updated_at AS dist_updated, r.updated_at AS repo_updated`

func eeBase(ctx context.Context, s *core.Store) *gorm.DB {
	return s.DB(ctx).Table("distributions d").
		Joins("JOIN container_distributions cd ON cd.distribution_id = d.id").
		Joins("JOIN container_namespaces ns ON ns.id = cd.namespace_id").
		Joins("LEFT JOIN repositories r ON r.id = d.repository_id").
		Where("d.type = ?", TypeDistribution)
}

// visibleTo restricts images to those v may see: public ones, and private
// ones of the namespaces v names (all of them when v.All).
func visibleTo(g *gorm.DB, v Visible) *gorm.DB {
	if v.All {
		return g
	}
	names := append([]string{""}, v.Namespaces...) // never empty: "IN ()" is not SQL everywhere
	return g.Where("(d.private = ? OR ns.name IN ?)", false, names)
}

// listEERows pages through the images v may see.
func listEERows(ctx context.Context, s *core.Store, q core.ListQuery, v Visible) ([]eeRow, int64, error) {
	filtered, paged, err := q.Apply(visibleTo(eeBase(ctx, s), v), eeColumns, "d.base_path")
	if err != nil {
		return nil, 0, err
	}
	var total int64
	if err := filtered.Count(&total).Error; err != nil {
		return nil, 0, core.Translate(err)
	}
	var rows []eeRow
	if err := paged.Select(eeSelect).Scan(&rows).Error; err != nil {
		return nil, 0, core.Translate(err)
	}
	return rows, total, nil
}

// eeRowByName loads one image by name.
func eeRowByName(ctx context.Context, s *core.Store, name string) (eeRow, bool, error) {
	var rows []eeRow
	if err := eeBase(ctx, s).Where("d.base_path = ?", name).Select(eeSelect).Scan(&rows).Error; err != nil {
		return eeRow{}, false, core.Translate(err)
	}
	if len(rows) == 0 {
		return eeRow{}, false, nil
	}
	return rows[0], true, nil
}

// latestTagOf is the tag a pull string shows: "latest" when the version
// has it, else the tag of the newest manifest (ties by name).
func latestTagOf(ctx context.Context, s *core.Store, repoID string, version int) (TagInfo, bool, error) {
	cond, args := inVersion(repoID, version)
	var rows []TagInfo
	err := s.DB(ctx).Raw(`SELECT t.name AS name, m.digest AS digest, m.media_type AS media_type FROM container_tags t
		JOIN repository_contents rc ON rc.content_id = t.content_id
		JOIN container_manifests m ON m.content_id = t.manifest_id
		WHERE `+cond+`
		ORDER BY CASE WHEN t.name = 'latest' THEN 0 ELSE 1 END, m.created_at DESC, t.name LIMIT 1`, args...).Scan(&rows).Error
	if err != nil || len(rows) == 0 {
		return TagInfo{}, false, core.Translate(err)
	}
	return rows[0], true, nil
}

// topManifestCondition selects the manifests of a version a person thinks
// of as images: those that are tagged, or that no index of the version
// lists (the platform manifests of a multi-arch index are shown inside it).
// Bind inVersion's arguments twice more.
const topManifestCondition = `(EXISTS (SELECT 1 FROM container_tags tt JOIN repository_contents trc ON trc.content_id = tt.content_id
		WHERE tt.manifest_id = m.content_id AND trc.repository_id = ? AND trc.version_added <= ? AND (trc.version_removed IS NULL OR trc.version_removed > ?))
	OR NOT EXISTS (SELECT 1 FROM container_manifest_refs pr JOIN repository_contents prc ON prc.content_id = pr.manifest_id
		WHERE pr.kind = 'manifest' AND pr.digest = m.digest AND prc.repository_id = ? AND prc.version_added <= ? AND (prc.version_removed IS NULL OR prc.version_removed > ?)))`

// topManifestRows pages through the images of a version, newest first,
// optionally only the one with a digest or a tag.
func topManifestRows(ctx context.Context, s *core.Store, repoID string, version, limit, offset int, dgst, tag string) ([]manifestInfoRow, int64, error) {
	cond, args := inVersion(repoID, version)
	from := ` FROM container_manifests m
		JOIN repository_contents rc ON rc.content_id = m.content_id
		WHERE ` + cond + ` AND ` + topManifestCondition
	args = append(append(args, repoID, version, version), repoID, version, version)
	if dgst != "" {
		from += ` AND m.digest = ?`
		args = append(args, dgst)
	}
	if tag != "" {
		from += ` AND EXISTS (SELECT 1 FROM container_tags ft JOIN repository_contents frc ON frc.content_id = ft.content_id
			WHERE ft.manifest_id = m.content_id AND ft.name = ? AND frc.repository_id = ? AND frc.version_added <= ? AND (frc.version_removed IS NULL OR frc.version_removed > ?))`
		args = append(args, tag, repoID, version, version)
	}
	var total int64
	if err := s.DB(ctx).Raw(`SELECT COUNT(*)`+from, args...).Scan(&total).Error; err != nil {
		return nil, 0, core.Translate(err)
	}
	var rows []manifestInfoRow
	err := s.DB(ctx).Raw(`SELECT m.content_id AS content_id, m.digest AS digest, m.media_type AS media_type, m.size AS size,
			m.is_index AS is_index, m.artifact_type AS artifact_type, m.config_digest AS config_digest, m.os AS os,
			m.architecture AS architecture, m.variant AS variant, m.labels AS labels, m.annotations AS annotations,
			CASE WHEN m.annotations = '' THEN m.data END AS data, m.created_at AS created_at`+from+
		` ORDER BY m.created_at DESC, m.digest LIMIT ? OFFSET ?`, append(args, limit, offset)...).Scan(&rows).Error
	return rows, total, core.Translate(err)
}

// refsOf maps each of the manifests to what it references, in order.
func refsOf(ctx context.Context, s *core.Store, manifestIDs []string) (map[string][]refRow, error) {
	out := map[string][]refRow{}
	if len(manifestIDs) == 0 {
		return out, nil
	}
	var rows []struct {
		ManifestID   string
		Position     int
		Kind         string
		Digest       string
		MediaType    string
		Size         int64
		OS           string
		Architecture string
		Variant      string
	}
	err := s.DB(ctx).Raw(`SELECT manifest_id, position, kind, digest, media_type, size, os, architecture, variant
		FROM container_manifest_refs WHERE manifest_id IN ? ORDER BY manifest_id, position`, manifestIDs).Scan(&rows).Error
	if err != nil {
		return nil, core.Translate(err)
	}
	for _, r := range rows {
		out[r.ManifestID] = append(out[r.ManifestID], refRow{Position: r.Position, Kind: r.Kind, Digest: r.Digest,
			MediaType: r.MediaType, Size: r.Size, OS: r.OS, Architecture: r.Architecture, Variant: r.Variant})
	}
	return out, nil
}

// imageRefRow is a tag of an image, for "name:tag" lists.
type imageRefRow struct {
	Name string
	Tag  string
}

// visibleImageRefs lists every tag of the latest versions of the images v
// may see, optionally of one image, by name then tag.
func visibleImageRefs(ctx context.Context, s *core.Store, v Visible, name string) ([]imageRefRow, error) {
	g := visibleTo(eeBase(ctx, s), v).
		Joins("JOIN repository_contents rc ON rc.repository_id = r.id AND rc.version_added <= r.latest_version AND (rc.version_removed IS NULL OR rc.version_removed > r.latest_version)").
		Joins("JOIN container_tags t ON t.content_id = rc.content_id")
	if name != "" {
		g = g.Where("d.base_path = ?", name)
	}
	var rows []imageRefRow
	err := g.Select("d.base_path AS name, t.name AS tag").Order("d.base_path").Order("t.name").Scan(&rows).Error
	return rows, core.Translate(err)
}
