package core

import (
	"context"
	"errors"

	"gorm.io/gorm/clause"
)

// GetOrCreateArtifact records a stored file by digest; an existing row is
// returned as it is. created tells whether this call inserted it.
//
// Inside a transaction the row returned is locked against orphan cleanup
// (PostgreSQL: FOR KEY SHARE; SQLite's write transaction serializes
// anyway) until the transaction ends, so that the caller may reference it.
// A row that orphan cleanup removes between the insert and the lock is
// inserted anew.
func (s *Store) GetOrCreateArtifact(ctx context.Context, digest string, size int64) (*Artifact, bool, error) {
	for attempt := 1; ; attempt++ {
		a := &Artifact{ID: NewID(), Digest: digest, Size: size, CreatedAt: now()}
		res := s.DB(ctx).Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "digest"}}, DoNothing: true}).Create(a)
		if res.Error != nil {
			return nil, false, Translate(res.Error)
		}
		if res.RowsAffected == 1 {
			return a, true, nil
		}
		var got Artifact
		err := first(s.shareLock(s.DB(ctx)), &got, "artifact", digest, "digest = ?", digest)
		if err == nil {
			return &got, false, nil
		}
		if !errors.Is(err, ErrNotFound) || attempt == maxReuseAttempts {
			return nil, false, err
		}
	}
}

// maxReuseAttempts bounds how often GetOrCreate* insert again a row that
// orphan cleanup removed under them.
const maxReuseAttempts = 3

// ArtifactByDigest finds an artifact.
func (s *Store) ArtifactByDigest(ctx context.Context, digest string) (*Artifact, error) {
	var a Artifact
	if err := first(s.DB(ctx), &a, "artifact", digest, "digest = ?", digest); err != nil {
		return nil, err
	}
	return &a, nil
}

// GetOrCreateContent returns the content of type typ with naturalKey,
// inserting it when new. Concurrent callers get the same row. Inside a
// transaction the row returned is locked against orphan cleanup until the
// transaction ends, as GetOrCreateArtifact's.
func (s *Store) GetOrCreateContent(ctx context.Context, typ, naturalKey string) (*Content, bool, error) {
	for attempt := 1; ; attempt++ {
		c := &Content{ID: NewID(), Type: typ, NaturalKey: naturalKey, CreatedAt: now()}
		res := s.DB(ctx).Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "type"}, {Name: "natural_key"}}, DoNothing: true}).Create(c)
		if res.Error != nil {
			return nil, false, Translate(res.Error)
		}
		if res.RowsAffected == 1 {
			return c, true, nil
		}
		var got Content
		err := first(s.shareLock(s.DB(ctx)), &got, typ, naturalKey, "type = ? AND natural_key = ?", typ, naturalKey)
		if err == nil {
			return &got, false, nil
		}
		if !errors.Is(err, ErrNotFound) || attempt == maxReuseAttempts {
			return nil, false, err
		}
	}
}

// ContentByKey finds content by its type and natural key.
func (s *Store) ContentByKey(ctx context.Context, typ, naturalKey string) (*Content, error) {
	var c Content
	if err := first(s.DB(ctx), &c, typ, naturalKey, "type = ? AND natural_key = ?", typ, naturalKey); err != nil {
		return nil, err
	}
	return &c, nil
}

// ContentByID finds content by ID.
func (s *Store) ContentByID(ctx context.Context, id string) (*Content, error) {
	var c Content
	if err := first(s.DB(ctx), &c, "content", id, "id = ?", id); err != nil {
		return nil, err
	}
	return &c, nil
}

// AttachArtifact links content to the artifact of one of its files (or
// records the file as not yet downloaded when artifactID is nil). An existing
// link with no artifact is filled in; an existing artifact is kept.
func (s *Store) AttachArtifact(ctx context.Context, contentID, relativePath string, artifactID *string) error {
	ca := &ContentArtifact{ContentID: contentID, RelativePath: relativePath, ArtifactID: artifactID}
	g := s.DB(ctx)
	if artifactID != nil {
		if err := g.Model(&ContentArtifact{}).
			Where("content_id = ? AND relative_path = ? AND artifact_id IS NULL", contentID, relativePath).
			Update("artifact_id", *artifactID).Error; err != nil {
			return Translate(err)
		}
	}
	return Translate(g.Clauses(clause.OnConflict{DoNothing: true}).Create(ca).Error)
}

// ContentArtifacts lists the files of a content unit.
func (s *Store) ContentArtifacts(ctx context.Context, contentID string) ([]ContentArtifact, error) {
	var out []ContentArtifact
	err := s.DB(ctx).Where("content_id = ?", contentID).Order("relative_path").Find(&out).Error
	return out, Translate(err)
}
