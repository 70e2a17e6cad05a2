package core

import (
	"context"
	"fmt"
	"sort"

	"gorm.io/gorm"
)

func emptySummary() ContentSummary {
	return ContentSummary{Added: map[string]int{}, Removed: map[string]int{}, Present: map[string]int{}}
}

// InVersionSQL is the condition "rc is in version ?" for a join on
// repository_contents aliased rc; bind the repository ID and the number twice.
const InVersionSQL = "rc.repository_id = ? AND rc.version_added <= ? AND (rc.version_removed IS NULL OR rc.version_removed > ?)"

// VersionBuilder stages the changes of one new repository version inside the
// transaction that NewVersion opened. The repository row is locked for the
// whole transaction, so versions of one repository are made one at a time and
// each sees the one before it complete.
type VersionBuilder struct {
	tx     *Store
	repo   *Repository
	number int
}

// Store is the transaction the version is made in (for plugin tables too).
func (b *VersionBuilder) Store() *Store { return b.tx }

// Repository is the (locked) repository.
func (b *VersionBuilder) Repository() *Repository { return b.repo }

// Base is the number of the version the change starts from (the latest).
func (b *VersionBuilder) Base() int { return b.number - 1 }

// Number is the number the new version will have.
func (b *VersionBuilder) Number() int { return b.number }

// Add puts content into the new version; content already present is left alone.
func (b *VersionBuilder) Add(ctx context.Context, contentIDs ...string) error {
	g := b.tx.DB(ctx)
	for _, id := range contentIDs {
		// Removed earlier in this same change? Then adding undoes the removal.
		res := g.Exec("UPDATE repository_contents SET version_removed = NULL WHERE repository_id = ? AND content_id = ? AND version_removed = ?", b.repo.ID, id, b.number)
		if res.Error != nil {
			return Translate(res.Error)
		}
		if res.RowsAffected > 0 {
			continue
		}
		res = g.Exec(`INSERT INTO repository_contents (repository_id, content_id, version_added)
			SELECT ?, ?, ? WHERE NOT EXISTS (
			  SELECT 1 FROM repository_contents WHERE repository_id = ? AND content_id = ? AND version_removed IS NULL)`,
			b.repo.ID, id, b.number, b.repo.ID, id)
		if res.Error != nil {
			return Translate(res.Error)
		}
	}
	return nil
}

// changed reports whether the staged change differs from the base version.
func (b *VersionBuilder) changed(ctx context.Context) (bool, error) {
	// Two index seeks; "added = ? OR removed = ?" in one WHERE reads every
	// row of the repository on SQLite.
	var changed bool
	err := b.tx.DB(ctx).Raw(`SELECT EXISTS (SELECT 1 FROM repository_contents WHERE repository_id = ? AND version_added = ?)
		OR EXISTS (SELECT 1 FROM repository_contents WHERE repository_id = ? AND version_removed = ?)`,
		b.repo.ID, b.number, b.repo.ID, b.number).Scan(&changed).Error
	return changed, Translate(err)
}

// Remove takes content out of the new version; absent content is ignored.
func (b *VersionBuilder) Remove(ctx context.Context, contentIDs ...string) error {
	g := b.tx.DB(ctx)
	for _, id := range contentIDs {
		// Added in this same change? Then removing simply drops the row.
		res := g.Exec("DELETE FROM repository_contents WHERE repository_id = ? AND content_id = ? AND version_added = ?", b.repo.ID, id, b.number)
		if res.Error != nil {
			return Translate(res.Error)
		}
		if res.RowsAffected > 0 {
			continue
		}
		if err := g.Exec("UPDATE repository_contents SET version_removed = ? WHERE repository_id = ? AND content_id = ? AND version_removed IS NULL", b.number, b.repo.ID, id).Error; err != nil {
			return Translate(err)
		}
	}
	return nil
}

// Present lists the IDs of content of type typ (all types if empty) in the
// version being built, with this change's additions and removals applied.
func (b *VersionBuilder) Present(ctx context.Context, typ string) ([]string, error) {
	return b.tx.contentIDs(ctx, b.repo.ID, b.number, typ)
}

var errNoChange = fmt.Errorf("no change")

// NewVersion makes a new version of a repository from the changes fn stages,
// in one transaction. When fn changes nothing, no version is made and the
// latest one is returned with created=false. The store's version hooks
// (OnNewVersion) run in the transaction once the version is made, and
// retention runs after them.
func (s *Store) NewVersion(ctx context.Context, repoID, createdBy string, fn func(b *VersionBuilder) error) (v *RepositoryVersion, created bool, err error) {
	err = s.Tx(ctx, func(tx *Store) error {
		repo, err := tx.lockRepository(ctx, repoID)
		if err != nil {
			return err
		}
		b := &VersionBuilder{tx: tx, repo: repo, number: repo.LatestVersion + 1}
		if err := fn(b); err != nil {
			return err
		}
		changed, err := b.changed(ctx)
		if err != nil {
			return err
		}
		if !changed {
			// Nothing new: leave no trace (rows touched and undone are rolled back).
			v, err = tx.Version(ctx, repoID, repo.LatestVersion)
			if err != nil {
				return err
			}
			return errNoChange
		}
		prev, err := tx.Version(ctx, repoID, repo.LatestVersion)
		if err != nil {
			return err
		}
		sum, err := tx.changeSummary(ctx, repoID, b.number)
		if err != nil {
			return err
		}
		sum.Present = map[string]int{}
		for t, n := range prev.ContentSummary.Present {
			sum.Present[t] = n
		}
		for t, n := range sum.Added {
			sum.Present[t] += n
		}
		for t, n := range sum.Removed {
			if sum.Present[t] -= n; sum.Present[t] <= 0 {
				delete(sum.Present, t)
			}
		}
		now := now()
		v = &RepositoryVersion{ID: NewID(), RepositoryID: repoID, Number: b.number, ContentSummary: sum, CreatedBy: createdBy, CreatedAt: now}
		if err := tx.DB(ctx).Create(v).Error; err != nil {
			return Translate(err)
		}
		repo.LatestVersion = b.number
		repo.UpdatedAt = now
		if err := tx.DB(ctx).Model(&Repository{}).Where("id = ?", repoID).
			Updates(map[string]any{"latest_version": b.number, "updated_at": now}).Error; err != nil {
			return Translate(err)
		}
		if err := tx.runVersionHooks(ctx, repo, v); err != nil {
			return err
		}
		created = true
		return tx.applyRetention(ctx, repo)
	})
	if err == errNoChange {
		return v, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return v, created, nil
}

// changeSummary counts what version number added and removed, by type.
func (s *Store) changeSummary(ctx context.Context, repoID string, number int) (ContentSummary, error) {
	sum := emptySummary()
	type row struct {
		Type string
		N    int
	}
	for _, part := range []struct {
		col string
		dst map[string]int
	}{{"version_added", sum.Added}, {"version_removed", sum.Removed}} {
		var rows []row
		err := s.DB(ctx).Raw("SELECT c.type AS type, COUNT(*) AS n FROM repository_contents rc JOIN contents c ON c.id = rc.content_id WHERE rc.repository_id = ? AND rc."+part.col+" = ? GROUP BY c.type", repoID, number).Scan(&rows).Error
		if err != nil {
			return sum, Translate(err)
		}
		for _, r := range rows {
			part.dst[r.Type] = r.N
		}
	}
	return sum, nil
}

// contentIDs lists content IDs in a version, optionally of one type.
func (s *Store) contentIDs(ctx context.Context, repoID string, number int, typ string) ([]string, error) {
	q := s.DB(ctx).Table("repository_contents rc").Select("rc.content_id").Where(InVersionSQL, repoID, number, number)
	if typ != "" {
		q = q.Joins("JOIN contents c ON c.id = rc.content_id").Where("c.type = ?", typ)
	}
	var ids []string
	err := q.Order("rc.content_id").Pluck("rc.content_id", &ids).Error
	return ids, Translate(err)
}

// VersionContentIDs lists the IDs of content of type typ ("" for all) in a version.
func (s *Store) VersionContentIDs(ctx context.Context, repoID string, number int, typ string) ([]string, error) {
	if _, err := s.Version(ctx, repoID, number); err != nil {
		return nil, err
	}
	return s.contentIDs(ctx, repoID, number, typ)
}

// Version finds one version of a repository.
func (s *Store) Version(ctx context.Context, repoID string, number int) (*RepositoryVersion, error) {
	var v RepositoryVersion
	if err := first(s.DB(ctx), &v, "repository version", fmt.Sprint(number), "repository_id = ? AND number = ?", repoID, number); err != nil {
		return nil, err
	}
	return &v, nil
}

// VersionByID finds a version by ID.
func (s *Store) VersionByID(ctx context.Context, id string) (*RepositoryVersion, error) {
	var v RepositoryVersion
	if err := first(s.DB(ctx), &v, "repository version", id, "id = ?", id); err != nil {
		return nil, err
	}
	return &v, nil
}

// VersionColumns are the list filters and orderings of versions.
var VersionColumns = Columns{"number": "number", "pulp_created": "created_at"}

// ListVersions lists a repository's versions, newest first by default.
func (s *Store) ListVersions(ctx context.Context, repoID string, q ListQuery) ([]RepositoryVersion, int64, error) {
	if _, err := s.Repository(ctx, repoID); err != nil {
		return nil, 0, err
	}
	return list[RepositoryVersion](ctx, s.db, q, VersionColumns, "number DESC", func(g *gorm.DB) *gorm.DB {
		return g.Where("repository_id = ?", repoID)
	})
}

// DeleteVersion removes a version; its changes fold into the next version,
// so every remaining version keeps exactly the content it had. The latest
// version and versions a distribution serves cannot be deleted.
func (s *Store) DeleteVersion(ctx context.Context, repoID string, number int) error {
	return s.Tx(ctx, func(tx *Store) error {
		repo, err := tx.lockRepository(ctx, repoID)
		if err != nil {
			return err
		}
		return tx.deleteVersion(ctx, repo, number)
	})
}

func (s *Store) deleteVersion(ctx context.Context, repo *Repository, number int) error {
	v, err := s.Version(ctx, repo.ID, number)
	if err != nil {
		return err
	}
	if number == repo.LatestVersion {
		return Conflict("version %d is the latest version of repository %q and cannot be deleted", number, repo.Name)
	}
	var pinned int64
	if err := s.DB(ctx).Model(&Distribution{}).Where("repository_version_id = ?", v.ID).Count(&pinned).Error; err != nil {
		return Translate(err)
	}
	if pinned > 0 {
		return Conflict("version %d of repository %q is served by a distribution", number, repo.Name)
	}
	var next int
	if err := s.DB(ctx).Model(&RepositoryVersion{}).Select("MIN(number)").Where("repository_id = ? AND number > ?", repo.ID, number).Scan(&next).Error; err != nil {
		return Translate(err)
	}
	var prev *int
	if err := s.DB(ctx).Model(&RepositoryVersion{}).Select("MAX(number)").Where("repository_id = ? AND number < ?", repo.ID, number).Scan(&prev).Error; err != nil {
		return Translate(err)
	}
	g := s.DB(ctx)
	rid, m := repo.ID, next
	p := -1
	if prev != nil {
		p = *prev
	}
	// A membership row [added, removed) says which version numbers hold the
	// content; deleting a version changes what no other version holds, so
	// the rows stay as they are — except those that no surviving version
	// falls in any more: added after p and removed by m. Rewriting rows to
	// the next version's number instead would make every push to a
	// repository that keeps one version cost the size of the repository.
	if err := g.Exec("DELETE FROM repository_contents WHERE repository_id = ? AND version_removed IS NOT NULL AND version_removed <= ? AND version_added > ?", rid, m, p).Error; err != nil {
		return Translate(err)
	}
	if err := g.Delete(&RepositoryVersion{}, "id = ?", v.ID).Error; err != nil {
		return Translate(err)
	}
	// What m holds is unchanged; what it added and removed is now relative
	// to p. With no earlier version left, m added everything it holds.
	mv, err := s.Version(ctx, rid, m)
	if err != nil {
		return err
	}
	sum := emptySummary()
	sum.Present = mv.ContentSummary.Present
	if prev == nil {
		for t, c := range sum.Present {
			sum.Added[t] = c
		}
	} else if sum, err = s.rangeSummary(ctx, rid, p, m, sum.Present); err != nil {
		return err
	}
	return Translate(g.Model(&RepositoryVersion{}).Where("repository_id = ? AND number = ?", rid, m).Update("content_summary", sum).Error)
}

// rangeSummary counts, by type, the content version m holds that version p
// did not (added) and the content p held that m does not (removed) — the
// changes of m once the versions between were deleted — with m's present
// counts. Only rows that changed after p are looked at.
func (s *Store) rangeSummary(ctx context.Context, repoID string, p, m int, present map[string]int) (ContentSummary, error) {
	sum := emptySummary()
	sum.Present = present
	type row struct {
		Type string
		N    int
	}
	const at = "o.repository_id = rc.repository_id AND o.content_id = rc.content_id AND o.version_added <= ? AND (o.version_removed IS NULL OR o.version_removed > ?)"
	for _, part := range []struct {
		where string
		args  []any
		dst   map[string]int
	}{
		// In m, added after p, and not in p.
		{"rc.version_added > ? AND rc.version_added <= ? AND (rc.version_removed IS NULL OR rc.version_removed > ?) AND NOT EXISTS (SELECT 1 FROM repository_contents o WHERE " + at + ")",
			[]any{p, m, m, p, p}, sum.Added},
		// In p, removed after p up to m, and not in m.
		{"rc.version_added <= ? AND rc.version_removed > ? AND rc.version_removed <= ? AND NOT EXISTS (SELECT 1 FROM repository_contents o WHERE " + at + ")",
			[]any{p, p, m, m, m}, sum.Removed},
	} {
		var rows []row
		args := append([]any{repoID}, part.args...)
		err := s.DB(ctx).Raw("SELECT c.type AS type, COUNT(*) AS n FROM repository_contents rc JOIN contents c ON c.id = rc.content_id WHERE rc.repository_id = ? AND "+part.where+" GROUP BY c.type", args...).Scan(&rows).Error
		if err != nil {
			return sum, Translate(err)
		}
		for _, r := range rows {
			part.dst[r.Type] = r.N
		}
	}
	return sum, nil
}

// applyRetention deletes the oldest versions beyond the repository's
// retain_repo_versions, skipping versions a distribution serves.
func (s *Store) applyRetention(ctx context.Context, repo *Repository) error {
	if repo.RetainRepoVersions == nil {
		return nil
	}
	var numbers []int
	if err := s.DB(ctx).Model(&RepositoryVersion{}).Where("repository_id = ?", repo.ID).Order("number DESC").Pluck("number", &numbers).Error; err != nil {
		return Translate(err)
	}
	if len(numbers) <= *repo.RetainRepoVersions {
		return nil
	}
	old := numbers[*repo.RetainRepoVersions:]
	sort.Ints(old)
	for _, n := range old {
		if err := s.deleteVersion(ctx, repo, n); err != nil && !isConflict(err) {
			return err
		}
	}
	return nil
}
