package core

import (
	"context"
)

// Usage is how much blob storage a set of content takes: its distinct
// artifacts (stored files) and their bytes. Content kept in the database
// only (a manifest's bytes, say) is not counted.
type Usage struct {
	Artifacts int64 `json:"artifacts"`
	Bytes     int64 `json:"bytes"`
}

// usageOf sums the artifacts selected by the subquery "SELECT artifact_id …".
func (s *Store) usageOf(ctx context.Context, artifactIDs string, args ...any) (Usage, error) {
	var u Usage
	err := s.DB(ctx).Raw(`SELECT COUNT(*) AS artifacts, COALESCE(SUM(a.size), 0) AS bytes FROM artifacts a
		WHERE a.id IN (`+artifactIDs+`)`, args...).Scan(&u).Error
	return u, Translate(err)
}

// RepositoriesUsage is the storage the content of every version of the
// given repositories takes, each file counted once however many of them
// hold it.
func (s *Store) RepositoriesUsage(ctx context.Context, repoIDs []string) (Usage, error) {
	if len(repoIDs) == 0 {
		return Usage{}, nil
	}
	return s.usageOf(ctx, `SELECT ca.artifact_id FROM content_artifacts ca
		JOIN repository_contents rc ON rc.content_id = ca.content_id
		WHERE rc.repository_id IN ?`, repoIDs)
}

// ExclusiveUsage is the part of RepositoriesUsage(repoIDs) that no version
// of any other repository holds: what deleting the repositories and
// cleaning up orphans would reclaim.
func (s *Store) ExclusiveUsage(ctx context.Context, repoIDs []string) (Usage, error) {
	if len(repoIDs) == 0 {
		return Usage{}, nil
	}
	return s.usageOf(ctx, `SELECT ca.artifact_id FROM content_artifacts ca
		JOIN repository_contents rc ON rc.content_id = ca.content_id
		WHERE rc.repository_id IN ?
		  AND NOT EXISTS (SELECT 1 FROM content_artifacts ca2
		    JOIN repository_contents rc2 ON rc2.content_id = ca2.content_id
		    WHERE ca2.artifact_id = ca.artifact_id AND rc2.repository_id NOT IN ?)`, repoIDs, repoIDs)
}

// VersionUsage is the storage the content of one repository version takes.
func (s *Store) VersionUsage(ctx context.Context, repoID string, number int) (Usage, error) {
	return s.usageOf(ctx, `SELECT ca.artifact_id FROM content_artifacts ca
		JOIN repository_contents rc ON rc.content_id = ca.content_id
		WHERE `+InVersionSQL, repoID, number, number)
}

// StorageSummary is the storage of the whole installation.
type StorageSummary struct {
	// Total is every artifact.
	Total Usage `json:"total"`
	// Unreferenced is the artifacts no repository version holds: what an
	// orphan cleanup with no protection time would reclaim, but for what
	// plugins protect (blobs of pushes in progress).
	Unreferenced Usage `json:"unreferenced"`
	// OrphanContent counts content in no repository version.
	OrphanContent int64 `json:"orphan_content"`
}

// Summary reports the installation's storage.
func (s *Store) Summary(ctx context.Context) (*StorageSummary, error) {
	out := &StorageSummary{}
	var err error
	if out.Total, err = s.usageOf(ctx, `SELECT id FROM artifacts`); err != nil {
		return nil, err
	}
	if out.Unreferenced, err = s.usageOf(ctx, `SELECT x.id FROM artifacts x WHERE NOT EXISTS (
		SELECT 1 FROM content_artifacts ca JOIN repository_contents rc ON rc.content_id = ca.content_id
		WHERE ca.artifact_id = x.id)`); err != nil {
		return nil, err
	}
	err = s.DB(ctx).Raw(`SELECT COUNT(*) FROM contents c
		WHERE NOT EXISTS (SELECT 1 FROM repository_contents rc WHERE rc.content_id = c.id)`).Scan(&out.OrphanContent).Error
	return out, Translate(err)
}
