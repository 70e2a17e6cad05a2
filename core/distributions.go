package core

import (
	"context"
	"errors"
	"regexp"
	"strings"
)

// DistributionColumns are the list filters and orderings of distributions.
var DistributionColumns = Columns{"name": "name", "base_path": "base_path", "pulp_type": "type", "pulp_created": "created_at", "private": "private", "pulp_id": "id", "repository": "repository_id"}

// basePathRE is the OCI distribution spec's repository name grammar, so that
// every valid image name can be a base path.
var basePathRE = regexp.MustCompile(`^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$`)

// ValidateDistribution checks a distribution's fields.
func ValidateDistribution(d *Distribution) error {
	v := &ValidationError{}
	if err := ValidateName("name", d.Name); err != nil {
		v.Add("name", "%s", err.(*ValidationError).Fields["name"][0])
	}
	if len(d.BasePath) > 255 || !basePathRE.MatchString(d.BasePath) {
		v.Add("base_path", "must be lowercase path components of letters and digits separated by '.', '_', '-' and '/'")
	}
	if d.RepositoryID != nil && d.RepositoryVersionID != nil {
		v.Add("repository", "give either repository or repository_version, not both")
	}
	if d.Type == "" {
		v.Add("pulp_type", "required")
	}
	return v.Err()
}

// CreateDistribution validates and inserts a distribution.
func (s *Store) CreateDistribution(ctx context.Context, d *Distribution) error {
	d.BasePath = strings.Trim(d.BasePath, "/")
	if err := ValidateDistribution(d); err != nil {
		return err
	}
	if err := s.checkDistributionTargets(ctx, d); err != nil {
		return err
	}
	now := now()
	if d.ID == "" {
		d.ID = NewID()
	}
	d.CreatedAt, d.UpdatedAt = now, now
	if err := Translate(s.DB(ctx).Create(d).Error); err != nil {
		if errors.Is(err, ErrConflict) {
			return Conflict("a distribution named %q or with base_path %q already exists", d.Name, d.BasePath)
		}
		return err
	}
	return nil
}

// UpdateDistribution saves a changed distribution.
func (s *Store) UpdateDistribution(ctx context.Context, d *Distribution) error {
	d.BasePath = strings.Trim(d.BasePath, "/")
	if err := ValidateDistribution(d); err != nil {
		return err
	}
	if err := s.checkDistributionTargets(ctx, d); err != nil {
		return err
	}
	d.UpdatedAt = now()
	if err := Translate(s.DB(ctx).Save(d).Error); err != nil {
		if errors.Is(err, ErrConflict) {
			return Conflict("a distribution named %q or with base_path %q already exists", d.Name, d.BasePath)
		}
		return err
	}
	return nil
}

func (s *Store) checkDistributionTargets(ctx context.Context, d *Distribution) error {
	if d.RepositoryID != nil {
		if _, err := s.Repository(ctx, *d.RepositoryID); err != nil {
			return Invalid("repository", "no such repository")
		}
	}
	if d.RepositoryVersionID != nil {
		if _, err := s.VersionByID(ctx, *d.RepositoryVersionID); err != nil {
			return Invalid("repository_version", "no such repository version")
		}
	}
	return nil
}

// Distribution finds a distribution by ID.
func (s *Store) Distribution(ctx context.Context, id string) (*Distribution, error) {
	var d Distribution
	if err := first(s.DB(ctx), &d, "distribution", id, "id = ?", id); err != nil {
		return nil, err
	}
	return &d, nil
}

// DistributionByBasePath finds the distribution serving a base path.
func (s *Store) DistributionByBasePath(ctx context.Context, basePath string) (*Distribution, error) {
	var d Distribution
	if err := first(s.DB(ctx), &d, "distribution", basePath, "base_path = ?", basePath); err != nil {
		return nil, err
	}
	return &d, nil
}

// ListDistributions lists distributions.
func (s *Store) ListDistributions(ctx context.Context, q ListQuery) ([]Distribution, int64, error) {
	return list[Distribution](ctx, s.db, q, DistributionColumns, "base_path", nil)
}

// DeleteDistribution removes a distribution (its repository stays).
func (s *Store) DeleteDistribution(ctx context.Context, id string) error {
	res := s.DB(ctx).Exec("DELETE FROM distributions WHERE id = ?", id)
	if res.Error != nil {
		return Translate(res.Error)
	}
	if res.RowsAffected == 0 {
		return NotFound("distribution", id)
	}
	return nil
}

// ServedVersion resolves what a distribution serves: the pinned version, or
// the latest version of its repository. ErrNotFound when it serves nothing.
func (s *Store) ServedVersion(ctx context.Context, d *Distribution) (*Repository, *RepositoryVersion, error) {
	switch {
	case d.RepositoryVersionID != nil:
		v, err := s.VersionByID(ctx, *d.RepositoryVersionID)
		if err != nil {
			return nil, nil, err
		}
		r, err := s.Repository(ctx, v.RepositoryID)
		return r, v, err
	case d.RepositoryID != nil:
		r, err := s.Repository(ctx, *d.RepositoryID)
		if err != nil {
			return nil, nil, err
		}
		v, err := s.Version(ctx, r.ID, r.LatestVersion)
		return r, v, err
	}
	return nil, nil, NotFound("content of distribution", d.BasePath)
}
