package core

import (
	"context"
	"errors"
	"regexp"
)

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._/-]{0,254}$`)

// ValidateName checks a resource name (repositories, remotes, distributions).
func ValidateName(field, name string) error {
	if !nameRE.MatchString(name) {
		return Invalid(field, "must be 1-255 characters of letters, digits, '.', '_', '-' or '/', starting with a letter or digit")
	}
	return nil
}

// RepositoryColumns are the list filters and orderings of repositories.
var RepositoryColumns = Columns{
	"name": "name", "pulp_type": "type", "pulp_created": "created_at",
	"pulp_last_updated": "updated_at", "latest_version": "latest_version", "pulp_id": "id",
}

// CreateRepository inserts a repository and its empty version 0.
func (s *Store) CreateRepository(ctx context.Context, r *Repository) error {
	if err := ValidateName("name", r.Name); err != nil {
		return err
	}
	if r.Type == "" {
		return Invalid("pulp_type", "required")
	}
	if r.RetainRepoVersions != nil && *r.RetainRepoVersions < 1 {
		return Invalid("retain_repo_versions", "must be at least 1 (or null to keep every version)")
	}
	if r.RemoteID != nil {
		if _, err := s.Remote(ctx, *r.RemoteID); err != nil {
			return Invalid("remote", "no such remote")
		}
	}
	now := now()
	if r.ID == "" {
		r.ID = NewID()
	}
	r.CreatedAt, r.UpdatedAt, r.LatestVersion = now, now, 0
	return s.Tx(ctx, func(tx *Store) error {
		if err := tx.DB(ctx).Create(r).Error; err != nil {
			err = Translate(err)
			if isConflict(err) {
				return Conflict("repository %q already exists", r.Name)
			}
			return err
		}
		v := &RepositoryVersion{ID: NewID(), RepositoryID: r.ID, Number: 0, CreatedAt: now, ContentSummary: emptySummary()}
		return Translate(tx.DB(ctx).Create(v).Error)
	})
}

// Repository finds a repository by ID.
func (s *Store) Repository(ctx context.Context, id string) (*Repository, error) {
	var r Repository
	if err := first(s.DB(ctx), &r, "repository", id, "id = ?", id); err != nil {
		return nil, err
	}
	return &r, nil
}

// RepositoryByName finds a repository by name.
func (s *Store) RepositoryByName(ctx context.Context, name string) (*Repository, error) {
	var r Repository
	if err := first(s.DB(ctx), &r, "repository", name, "name = ?", name); err != nil {
		return nil, err
	}
	return &r, nil
}

// ListRepositories lists repositories.
func (s *Store) ListRepositories(ctx context.Context, q ListQuery) ([]Repository, int64, error) {
	return list[Repository](ctx, s.db, q, RepositoryColumns, "name", nil)
}

// RepositoryUpdate holds the fields a client may change; nil means unchanged.
type RepositoryUpdate struct {
	Description        *string
	RetainRepoVersions **int
	RemoteID           **string
}

// UpdateRepository changes a repository's settings. Lowering
// retain_repo_versions prunes old versions at once.
func (s *Store) UpdateRepository(ctx context.Context, id string, u RepositoryUpdate) (*Repository, error) {
	var out *Repository
	err := s.Tx(ctx, func(tx *Store) error {
		r, err := tx.lockRepository(ctx, id)
		if err != nil {
			return err
		}
		if u.Description != nil {
			r.Description = *u.Description
		}
		if u.RetainRepoVersions != nil {
			if *u.RetainRepoVersions != nil && **u.RetainRepoVersions < 1 {
				return Invalid("retain_repo_versions", "must be at least 1 (or null to keep every version)")
			}
			r.RetainRepoVersions = *u.RetainRepoVersions
		}
		if u.RemoteID != nil {
			if *u.RemoteID != nil {
				if _, err := tx.Remote(ctx, **u.RemoteID); err != nil {
					return Invalid("remote", "no such remote")
				}
			}
			r.RemoteID = *u.RemoteID
		}
		r.UpdatedAt = now()
		if err := tx.DB(ctx).Save(r).Error; err != nil {
			return Translate(err)
		}
		if err := tx.applyRetention(ctx, r); err != nil {
			return err
		}
		out = r
		return nil
	})
	return out, err
}

// DeleteRepository removes a repository with all its versions. Its content
// stays (it may be shared) until orphan cleanup finds it unused.
func (s *Store) DeleteRepository(ctx context.Context, id string) error {
	return s.Tx(ctx, func(tx *Store) error {
		if _, err := tx.lockRepository(ctx, id); err != nil {
			return err
		}
		g := tx.DB(ctx)
		if err := g.Exec("UPDATE distributions SET repository_version_id = NULL WHERE repository_version_id IN (SELECT id FROM repository_versions WHERE repository_id = ?)", id).Error; err != nil {
			return Translate(err)
		}
		if err := g.Exec("UPDATE distributions SET repository_id = NULL WHERE repository_id = ?", id).Error; err != nil {
			return Translate(err)
		}
		for _, stmt := range []string{
			"DELETE FROM repository_contents WHERE repository_id = ?",
			"DELETE FROM repository_versions WHERE repository_id = ?",
			"DELETE FROM repositories WHERE id = ?",
		} {
			if err := g.Exec(stmt, id).Error; err != nil {
				return Translate(err)
			}
		}
		return nil
	})
}

// lockRepository loads a repository for update: the row lock serializes
// every writer of that repository's versions.
func (s *Store) lockRepository(ctx context.Context, id string) (*Repository, error) {
	var r Repository
	if err := first(s.lockRow(s.DB(ctx)), &r, "repository", id, "id = ?", id); err != nil {
		return nil, err
	}
	return &r, nil
}

func isConflict(err error) bool { return err != nil && errors.Is(err, ErrConflict) }
