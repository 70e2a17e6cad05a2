package container

import (
	"context"
	"time"

	"github.com/berth-dev/berth/core"
	"github.com/berth-dev/berth/core/db"
)

// The queries of visibility: which namespaces and images a caller may see.
// A private image (its distribution is private) is seen only by those who
// hold a role on its namespace; a namespace is seen by everyone when it
// holds a public image, else only by its role holders.

// hasPublicImage is the SQL condition "namespace ns holds a public image".
const hasPublicImage = `EXISTS (SELECT 1 FROM container_distributions cd JOIN distributions d ON d.id = cd.distribution_id
	WHERE cd.namespace_id = ns.id AND d.private = ?)`

// namespaceRow is a namespace with whether it holds a public image.
type namespaceRow struct {
	Namespace
	Public bool
}

// visibleNamespaceColumns are the list filters and orderings of namespaces
// (qualified: the visibility condition joins distributions, which have a
// name too).
var visibleNamespaceColumns = core.Columns{"name": "ns.name", "created_by": "ns.created_by", "pulp_created": "ns.created_at"}

const namespaceRowColumns = "ns.id, ns.name, ns.created_by, ns.created_at, " + hasPublicImage + " AS public"

// listVisibleNamespaces lists the namespaces v sees (those with a public
// image, and those v names, or all), with their image counts.
func listVisibleNamespaces(ctx context.Context, s *core.Store, q core.ListQuery, v Visible) ([]namespaceRow, int64, error) {
	base := s.DB(ctx).Table("container_namespaces ns")
	if !v.All {
		names := append([]string{""}, v.Namespaces...) // never empty: "IN ()" is not SQL everywhere
		base = base.Where("(ns.name IN ? OR "+hasPublicImage+")", names, false)
	}
	filtered, paged, err := q.Apply(base, visibleNamespaceColumns, "ns.name")
	if err != nil {
		return nil, 0, err
	}
	var total int64
	if err := filtered.Count(&total).Error; err != nil {
		return nil, 0, core.Translate(err)
	}
	var rows []namespaceRow
	if err := paged.Select(namespaceRowColumns, false).Scan(&rows).Error; err != nil {
		return nil, 0, core.Translate(err)
	}
	if err := countRowImages(ctx, s, rows); err != nil {
		return nil, 0, err
	}
	return rows, total, nil
}

// namespaceRowBy loads one namespace by ID, or by name when id is "".
func namespaceRowBy(ctx context.Context, s *core.Store, id, name string) (*namespaceRow, bool, error) {
	g := s.DB(ctx).Table("container_namespaces ns").Select(namespaceRowColumns, false)
	if id != "" {
		g = g.Where("ns.id = ?", id)
	} else {
		g = g.Where("ns.name = ?", name)
	}
	var rows []namespaceRow
	if err := g.Scan(&rows).Error; err != nil {
		return nil, false, core.Translate(err)
	}
	if len(rows) == 0 {
		return nil, false, nil
	}
	if err := countRowImages(ctx, s, rows); err != nil {
		return nil, false, err
	}
	return &rows[0], true, nil
}

func countRowImages(ctx context.Context, s *core.Store, rows []namespaceRow) error {
	nss := make([]Namespace, len(rows))
	for i := range rows {
		nss[i] = rows[i].Namespace
	}
	if err := countImages(ctx, s, nss); err != nil {
		return err
	}
	for i := range rows {
		rows[i].Images = nss[i].Images
	}
	return nil
}

// insertNamespace creates a namespace; created is false when one of that
// name exists already.
func insertNamespace(ctx context.Context, s *core.Store, name, createdBy string) (created bool, err error) {
	res := s.DB(ctx).Exec(`INSERT INTO container_namespaces (id, name, created_by, created_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (name) DO NOTHING`, core.NewID(), name, createdBy, time.Now().UTC())
	if res.Error != nil {
		return false, core.Translate(res.Error)
	}
	return res.RowsAffected == 1, nil
}

// linkedNamespace is the namespace ID a container distribution is linked
// to, if any.
func linkedNamespace(ctx context.Context, s *core.Store, distributionID string) (string, bool, error) {
	var ids []string
	err := s.DB(ctx).Raw(`SELECT namespace_id FROM container_distributions WHERE distribution_id = ?`, distributionID).Scan(&ids).Error
	if err != nil {
		return "", false, core.Translate(err)
	}
	if len(ids) == 0 {
		return "", false, nil
	}
	return ids[0], true, nil
}

// distributionNamespaces maps container distribution IDs to the IDs of
// their namespaces.
func distributionNamespaces(ctx context.Context, s *core.Store, distributionIDs []string) (map[string]string, error) {
	out := map[string]string{}
	if len(distributionIDs) == 0 {
		return out, nil
	}
	var rows []struct {
		DistributionID string
		NamespaceID    string
	}
	err := s.DB(ctx).Raw(`SELECT distribution_id, namespace_id FROM container_distributions WHERE distribution_id IN ?`,
		distributionIDs).Scan(&rows).Error
	if err != nil {
		return nil, core.Translate(err)
	}
	for _, r := range rows {
		out[r.DistributionID] = r.NamespaceID
	}
	return out, nil
}

// catalogEntry is an image name of the catalog and whether it is private.
type catalogEntry struct {
	BasePath string
	Private  bool
}

// catalogEntries lists up to limit container distribution base paths after
// last, in byte order, with their privacy.
func catalogEntries(ctx context.Context, s *core.Store, last string, limit int) ([]catalogEntry, error) {
	col := "base_path"
	if s.Dialect() == db.Postgres {
		col = `base_path COLLATE "C"`
	}
	var rows []catalogEntry
	err := s.DB(ctx).Raw(`SELECT base_path, private FROM distributions WHERE type = ? AND `+col+` > ?
		ORDER BY `+col+` LIMIT ?`, TypeDistribution, last, limit).Scan(&rows).Error
	return rows, core.Translate(err)
}
