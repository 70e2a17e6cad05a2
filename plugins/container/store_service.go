package container

import (
	"context"
	"time"

	"github.com/berth-dev/berth/core"
)

// Queries of the service API (service.go) for the REST layer.

// TagInfo is a tag of an image and the manifest it names.
type TagInfo struct {
	Name      string `json:"name"`
	Digest    string `json:"digest"`
	MediaType string `json:"media_type"`
}

// listTagInfos pages through the tags of a version, by name.
func listTagInfos(ctx context.Context, s *core.Store, repoID string, version, limit, offset int) ([]TagInfo, int64, error) {
	cond, args := inVersion(repoID, version)
	from := ` FROM container_tags t
		JOIN repository_contents rc ON rc.content_id = t.content_id
		JOIN container_manifests m ON m.content_id = t.manifest_id
		WHERE ` + cond
	var total int64
	if err := s.DB(ctx).Raw(`SELECT COUNT(*)`+from, args...).Scan(&total).Error; err != nil {
		return nil, 0, core.Translate(err)
	}
	out := []TagInfo{}
	err := s.DB(ctx).Raw(`SELECT t.name AS name, m.digest AS digest, m.media_type AS media_type`+from+
		` ORDER BY t.name LIMIT ? OFFSET ?`, append(args, limit, offset)...).Scan(&out).Error
	return out, total, core.Translate(err)
}

// manifestInfoRow is a manifest of a version as listed.
type manifestInfoRow struct {
	ContentID    string
	Digest       string
	MediaType    string
	Size         int64
	IsIndex      bool
	ArtifactType string
	ConfigDigest string
	OS           string
	Architecture string
	Variant      string
	Labels       string
	Annotations  string
	Data         []byte
	CreatedAt    time.Time
}

// listManifestRows pages through the manifests of a version, newest first.
func listManifestRows(ctx context.Context, s *core.Store, repoID string, version, limit, offset int, digest string) ([]manifestInfoRow, int64, error) {
	cond, args := inVersion(repoID, version)
	from := ` FROM container_manifests m
		JOIN repository_contents rc ON rc.content_id = m.content_id
		WHERE ` + cond
	if digest != "" {
		from += ` AND m.digest = ?`
		args = append(args, digest)
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

// tagsByManifest maps manifest content IDs to their tag names in a version.
func tagsByManifest(ctx context.Context, s *core.Store, repoID string, version int, manifestIDs []string) (map[string][]string, error) {
	out := map[string][]string{}
	if len(manifestIDs) == 0 {
		return out, nil
	}
	cond, args := inVersion(repoID, version)
	var rows []struct {
		ManifestID string
		Name       string
	}
	err := s.DB(ctx).Raw(`SELECT t.manifest_id AS manifest_id, t.name AS name FROM container_tags t
		JOIN repository_contents rc ON rc.content_id = t.content_id
		WHERE `+cond+` AND t.manifest_id IN ? ORDER BY t.name`, append(args, manifestIDs)...).Scan(&rows).Error
	if err != nil {
		return nil, core.Translate(err)
	}
	for _, r := range rows {
		out[r.ManifestID] = append(out[r.ManifestID], r.Name)
	}
	return out, nil
}

// manifestRefs lists what a manifest references, in order.
func manifestRefs(ctx context.Context, s *core.Store, manifestID string) ([]refRow, error) {
	var rows []refRow
	err := s.DB(ctx).Raw(`SELECT position, kind, digest, media_type, size, os, architecture, variant
		FROM container_manifest_refs WHERE manifest_id = ? ORDER BY position`, manifestID).Scan(&rows).Error
	return rows, core.Translate(err)
}
