package container

import (
	"context"
	"strings"
	"time"

	"gorm.io/gorm/clause"

	"github.com/berth-dev/berth/core"
	"github.com/berth-dev/berth/core/db"
)

// Namespace groups container images; permissions will be granted on it.
type Namespace struct {
	ID        string    `json:"-"`
	Name      string    `json:"name"`
	CreatedBy string    `json:"created_by"`
	CreatedAt time.Time `json:"pulp_created"`
	// Images counts the container distributions in the namespace (filled
	// by ListNamespaces and GetNamespace).
	Images int `json:"images" gorm:"-"`
}

// getOrCreateNamespace returns the namespace called name, locked for the
// transaction, inserting it with createdBy when new (created tells).
// Concurrent callers get the same row.
func getOrCreateNamespace(ctx context.Context, s *core.Store, name, createdBy string) (ns *Namespace, created bool, err error) {
	res := s.DB(ctx).Exec(`INSERT INTO container_namespaces (id, name, created_by, created_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (name) DO NOTHING`, core.NewID(), name, createdBy, time.Now().UTC())
	if res.Error != nil {
		return nil, false, core.Translate(res.Error)
	}
	ns, found, err := namespaceByName(ctx, s, name, true)
	if err != nil {
		return nil, false, err
	}
	if !found {
		return nil, false, core.Conflict("namespace %q vanished while being created", name)
	}
	return ns, res.RowsAffected == 1, nil
}

// namespaceByName loads a namespace; forUpdate locks its row until the
// transaction ends (PostgreSQL; SQLite write transactions are serialized
// already), which serializes the creation of images in one namespace.
func namespaceByName(ctx context.Context, s *core.Store, name string, forUpdate bool) (*Namespace, bool, error) {
	g := s.DB(ctx).Table("container_namespaces").Where("name = ?", name)
	if forUpdate && s.Dialect() == db.Postgres {
		g = g.Clauses(clause.Locking{Strength: "UPDATE"})
	}
	var rows []Namespace
	if err := g.Find(&rows).Error; err != nil {
		return nil, false, core.Translate(err)
	}
	if len(rows) == 0 {
		return nil, false, nil
	}
	return &rows[0], true, nil
}

// distributionByBasePath loads the distribution at a base path, of any type.
func distributionByBasePath(ctx context.Context, s *core.Store, basePath string) (*core.Distribution, bool, error) {
	var rows []core.Distribution
	if err := s.DB(ctx).Where("base_path = ?", basePath).Find(&rows).Error; err != nil {
		return nil, false, core.Translate(err)
	}
	if len(rows) == 0 {
		return nil, false, nil
	}
	return &rows[0], true, nil
}

// overlappingBasePath finds a distribution (of any type) whose base path is
// a path prefix of name or has name as a path prefix: "a" and "a/b" cannot
// both be images.
func overlappingBasePath(ctx context.Context, s *core.Store, name string) (string, bool, error) {
	var ancestors []string
	for i := range len(name) {
		if name[i] == '/' {
			ancestors = append(ancestors, name[:i])
		}
	}
	q := s.DB(ctx).Table("distributions").Select("base_path").
		Where("base_path LIKE ? ESCAPE '\\'", escapeLike(name)+"/%")
	if len(ancestors) > 0 {
		q = q.Or("base_path IN ?", ancestors)
	}
	var paths []string
	if err := q.Order("base_path").Limit(1).Scan(&paths).Error; err != nil {
		return "", false, core.Translate(err)
	}
	if len(paths) == 0 {
		return "", false, nil
	}
	return paths[0], true, nil
}

// linkDistribution records the namespace of a container distribution.
func linkDistribution(ctx context.Context, s *core.Store, distributionID, namespaceID string) error {
	return core.Translate(s.DB(ctx).Exec(`INSERT INTO container_distributions (distribution_id, namespace_id) VALUES (?, ?)
		ON CONFLICT (distribution_id) DO NOTHING`, distributionID, namespaceID).Error)
}

// namespaceColumns are the list filters and orderings of namespaces.
var namespaceColumns = core.Columns{"name": "name", "created_by": "created_by", "pulp_created": "created_at"}

// listNamespaces lists namespaces with their image counts.
func listNamespaces(ctx context.Context, s *core.Store, q core.ListQuery) ([]Namespace, int64, error) {
	filtered, paged, err := q.Apply(s.DB(ctx).Table("container_namespaces"), namespaceColumns, "name")
	if err != nil {
		return nil, 0, err
	}
	var total int64
	if err := filtered.Count(&total).Error; err != nil {
		return nil, 0, core.Translate(err)
	}
	var out []Namespace
	if err := paged.Find(&out).Error; err != nil {
		return nil, 0, core.Translate(err)
	}
	if err := countImages(ctx, s, out); err != nil {
		return nil, 0, err
	}
	return out, total, nil
}

// countImages fills Images of each namespace.
func countImages(ctx context.Context, s *core.Store, nss []Namespace) error {
	if len(nss) == 0 {
		return nil
	}
	ids := make([]string, len(nss))
	for i, ns := range nss {
		ids[i] = ns.ID
	}
	var rows []struct {
		NamespaceID string
		N           int
	}
	err := s.DB(ctx).Raw(`SELECT namespace_id, COUNT(*) AS n FROM container_distributions
		WHERE namespace_id IN ? GROUP BY namespace_id`, ids).Scan(&rows).Error
	if err != nil {
		return core.Translate(err)
	}
	counts := map[string]int{}
	for _, r := range rows {
		counts[r.NamespaceID] = r.N
	}
	for i := range nss {
		nss[i].Images = counts[nss[i].ID]
	}
	return nil
}

// Image is a container image as the catalog lists it: a distribution of
// the plugin and the repository it serves.
type Image struct {
	Name          string    `json:"name"`
	Namespace     string    `json:"namespace"`
	RepositoryID  string    `json:"-"`
	LatestVersion int       `json:"latest_version"`
	CreatedAt     time.Time `json:"pulp_created"`
	UpdatedAt     time.Time `json:"pulp_last_updated"`
}

// imageColumns are the list filters and orderings of images.
var imageColumns = core.Columns{"name": "d.base_path", "namespace": "ns.name", "pulp_created": "d.created_at", "pulp_last_updated": "r.updated_at"}

// listImages lists the container images, optionally of one namespace.
func listImages(ctx context.Context, s *core.Store, q core.ListQuery) ([]Image, int64, error) {
	base := s.DB(ctx).Table("distributions d").
		Joins("JOIN container_distributions cd ON cd.distribution_id = d.id").
		Joins("JOIN container_namespaces ns ON ns.id = cd.namespace_id").
		Joins("LEFT JOIN repositories r ON r.id = d.repository_id").
		Where("d.type = ?", TypeDistribution)
	filtered, paged, err := q.Apply(base, imageColumns, "d.base_path")
	if err != nil {
		return nil, 0, err
	}
	var total int64
	if err := filtered.Count(&total).Error; err != nil {
		return nil, 0, core.Translate(err)
	}
	var rows []struct {
		Name          string
		Namespace     string
		RepositoryID  *string
		LatestVersion *int
		CreatedAt     time.Time
		DistUpdated   time.Time
		RepoUpdated   *time.Time
	}
	err = paged.Select(`d.base_path AS name, ns.name AS namespace, r.id AS repository_id, r.latest_version AS latest_version,
		d.created_at AS created_at, d.updated_at AS dist_updated, r.updated_at AS repo_updated`).Scan(&rows).Error
	if err != nil {
		return nil, 0, core.Translate(err)
	}
	out := make([]Image, 0, len(rows))
	for _, r := range rows {
		img := Image{Name: r.Name, Namespace: r.Namespace, CreatedAt: r.CreatedAt, UpdatedAt: r.DistUpdated}
		if r.RepositoryID != nil {
			img.RepositoryID = *r.RepositoryID
		}
		if r.LatestVersion != nil {
			img.LatestVersion = *r.LatestVersion
		}
		if r.RepoUpdated != nil && r.RepoUpdated.After(img.UpdatedAt) {
			img.UpdatedAt = *r.RepoUpdated
		}
		out = append(out, img)
	}
	return out, total, nil
}

func escapeLike(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}
