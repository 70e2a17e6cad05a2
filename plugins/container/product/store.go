package product

import (
	"context"
	"time"

	"github.com/berth-dev/berth/core"
)

// Every SQL statement of the package. Each function takes the *core.Store
// to run on (the pool or a transaction); they work the same on PostgreSQL
// and SQLite.

// readme is a product_readmes row.
type readme struct {
	DistributionID string
	Text           string
	UpdatedBy      string
	CreatedAt      time.Time
	UpdatedAt      time.Time
}

// readmeOf loads the readme of a distribution; found is false when it has none.
func readmeOf(ctx context.Context, s *core.Store, distributionID string) (readme, bool, error) {
	var rows []readme
	err := s.DB(ctx).Raw(`SELECT distribution_id, text, updated_by, created_at, updated_at FROM product_readmes
		WHERE distribution_id = ?`, distributionID).Scan(&rows).Error
	if err != nil || len(rows) == 0 {
		return readme{}, false, core.Translate(err)
	}
	return rows[0], true, nil
}

// saveReadme inserts or replaces the readme of a distribution.
func saveReadme(ctx context.Context, s *core.Store, r readme) error {
	return core.Translate(s.DB(ctx).Exec(`INSERT INTO product_readmes (distribution_id, text, updated_by, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (distribution_id) DO UPDATE SET text = excluded.text, updated_by = excluded.updated_by, updated_at = excluded.updated_at`,
		r.DistributionID, r.Text, r.UpdatedBy, r.CreatedAt, r.UpdatedAt).Error)
}

// entryRow is a product_catalog row.
type entryRow struct {
	ID            string
	Name          string
	DisplayName   string
	Description   string
	Type          string
	URL           string
	GPUURL        string `gorm:"column:gpu_url"`
	PullSecretEnc string
	Global        bool
	System        bool
	BuildID       string
	CreatedBy     string
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

// catalogColumns are the list filters and orderings of the catalog.
var catalogColumns = core.Columns{
	"name": "c.name", "display_name": "c.display_name", "type": "c.type", "system": "c.system",
	"global": "c.global", "pulp_created": "c.created_at", "created_at": "c.created_at",
}

const entryColumns = `c.id, c.name, c.display_name, c.description, c.type, c.url, c.gpu_url, c.pull_secret_enc,
	c.global, c.system, c.build_id, c.created_by, c.created_at, c.updated_at`

// listEntries pages through the catalog entries: all of them (all), or the
// global ones and those of the groups named by ID.
func listEntries(ctx context.Context, s *core.Store, q core.ListQuery, all bool, groupIDs []string) ([]entryRow, int64, error) {
	base := s.DB(ctx).Table("product_catalog c")
	if !all {
		ids := append([]string{""}, groupIDs...) // never empty: "IN ()" is not SQL everywhere
		base = base.Where("(c.global = ? OR EXISTS (SELECT 1 FROM product_catalog_groups g WHERE g.entry_id = c.id AND g.group_id IN ?))", true, ids)
	}
	filtered, paged, err := q.Apply(base, catalogColumns, "c.display_name")
	if err != nil {
		return nil, 0, err
	}
	var total int64
	if err := filtered.Count(&total).Error; err != nil {
		return nil, 0, core.Translate(err)
	}
	var rows []entryRow
	if err := paged.Select(entryColumns).Scan(&rows).Error; err != nil {
		return nil, 0, core.Translate(err)
	}
	return rows, total, nil
}

// entryByName loads one catalog entry by its image name.
func entryByName(ctx context.Context, s *core.Store, name string) (entryRow, bool, error) {
	var rows []entryRow
	err := s.DB(ctx).Table("product_catalog c").Select(entryColumns).Where("c.name = ?", name).Scan(&rows).Error
	if err != nil || len(rows) == 0 {
		return entryRow{}, false, core.Translate(err)
	}
	return rows[0], true, nil
}

// entryNamesLike lists the entry names that are base or start with base+"-".
func entryNamesLike(ctx context.Context, s *core.Store, base string) ([]string, error) {
	var names []string
	err := s.DB(ctx).Raw(`SELECT name FROM product_catalog WHERE name = ? OR name LIKE ? ESCAPE '\'`,
		base, escapeLike(base)+"-%").Scan(&names).Error
	return names, core.Translate(err)
}

// insertEntry adds a catalog entry and its groups.
func insertEntry(ctx context.Context, s *core.Store, e entryRow, groupIDs []string) error {
	err := s.DB(ctx).Exec(`INSERT INTO product_catalog (id, name, display_name, description, type, url, gpu_url, pull_secret_enc,
			global, system, build_id, created_by, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		e.ID, e.Name, e.DisplayName, e.Description, e.Type, e.URL, e.GPUURL, e.PullSecretEnc,
		e.Global, e.System, e.BuildID, e.CreatedBy, e.CreatedAt, e.UpdatedAt).Error
	if err != nil {
		return core.Translate(err)
	}
	return setEntryGroups(ctx, s, e.ID, groupIDs)
}

// updateEntry saves the changeable fields of an entry and replaces its groups.
func updateEntry(ctx context.Context, s *core.Store, e entryRow, groupIDs []string) error {
	err := s.DB(ctx).Exec(`UPDATE product_catalog SET display_name = ?, description = ?, type = ?, url = ?, gpu_url = ?,
			pull_secret_enc = ?, global = ?, system = ?, build_id = ?, updated_at = ? WHERE id = ?`,
		e.DisplayName, e.Description, e.Type, e.URL, e.GPUURL, e.PullSecretEnc, e.Global, e.System, e.BuildID, e.UpdatedAt, e.ID).Error
	if err != nil {
		return core.Translate(err)
	}
	if err := s.DB(ctx).Exec(`DELETE FROM product_catalog_groups WHERE entry_id = ?`, e.ID).Error; err != nil {
		return core.Translate(err)
	}
	return setEntryGroups(ctx, s, e.ID, groupIDs)
}

func setEntryGroups(ctx context.Context, s *core.Store, entryID string, groupIDs []string) error {
	for _, g := range groupIDs {
		if err := s.DB(ctx).Exec(`INSERT INTO product_catalog_groups (entry_id, group_id) VALUES (?, ?) ON CONFLICT DO NOTHING`,
			entryID, g).Error; err != nil {
			return core.Translate(err)
		}
	}
	return nil
}

// deleteEntry removes a catalog entry (its groups go with it).
func deleteEntry(ctx context.Context, s *core.Store, id string) (bool, error) {
	res := s.DB(ctx).Exec(`DELETE FROM product_catalog WHERE id = ?`, id)
	return res.RowsAffected > 0, core.Translate(res.Error)
}

// entryGroups maps entry IDs to their group IDs and names, sorted by name.
func entryGroups(ctx context.Context, s *core.Store, entryIDs []string) (map[string][]groupRef, error) {
	out := map[string][]groupRef{}
	if len(entryIDs) == 0 {
		return out, nil
	}
	var rows []struct {
		EntryID   string
		GroupID   string
		GroupName string
	}
	err := s.DB(ctx).Raw(`SELECT g.entry_id AS entry_id, a.id AS group_id, a.name AS group_name FROM product_catalog_groups g
		JOIN auth_groups a ON a.id = g.group_id WHERE g.entry_id IN ? ORDER BY a.name`, entryIDs).Scan(&rows).Error
	if err != nil {
		return nil, core.Translate(err)
	}
	for _, r := range rows {
		out[r.EntryID] = append(out[r.EntryID], groupRef{ID: r.GroupID, Name: r.GroupName})
	}
	return out, nil
}

// groupRef is a group as catalog entries name it.
type groupRef struct {
	ID   string
	Name string
}

func escapeLike(s string) string {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\', '%', '_':
			out = append(out, '\\')
		}
		out = append(out, s[i])
	}
	return string(out)
}
