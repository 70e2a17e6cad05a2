package container

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/berth-dev/berth/core"
	"github.com/berth-dev/berth/tasks"
)

// The SQL of remote registries and remote images (remotes.go) and of the
// tasks they record.

// remoteRow is a container_remotes row: what a container remote has beyond
// the core's remote.
type remoteRow struct {
	RemoteID     string
	UpstreamName string
	IncludeTags  string // JSON list
	ExcludeTags  string // JSON list
	RegistryID   *string
	RepositoryID *string
	LastSyncTask *string
}

func (r remoteRow) include() []string { return decodeList(r.IncludeTags) }
func (r remoteRow) exclude() []string { return decodeList(r.ExcludeTags) }

func encodeList(l []string) string {
	if len(l) == 0 {
		return "[]"
	}
	b, err := json.Marshal(l)
	if err != nil {
		return "[]"
	}
	return string(b)
}

func decodeList(s string) []string {
	out := []string{}
	if s != "" {
		_ = json.Unmarshal([]byte(s), &out)
	}
	return out
}

const remoteRowColumns = `remote_id, upstream_name, include_tags, exclude_tags, registry_id, repository_id, last_sync_task`

func insertRemoteRow(ctx context.Context, s *core.Store, r remoteRow) error {
	return core.Translate(s.DB(ctx).Exec(`INSERT INTO container_remotes (`+remoteRowColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		r.RemoteID, r.UpstreamName, r.IncludeTags, r.ExcludeTags, r.RegistryID, r.RepositoryID, r.LastSyncTask).Error)
}

// updateRemoteRow saves the settings of a row (not its last sync).
func updateRemoteRow(ctx context.Context, s *core.Store, r remoteRow) error {
	return core.Translate(s.DB(ctx).Exec(`UPDATE container_remotes SET upstream_name = ?, include_tags = ?, exclude_tags = ?,
		registry_id = ?, repository_id = ? WHERE remote_id = ?`,
		r.UpstreamName, r.IncludeTags, r.ExcludeTags, r.RegistryID, r.RepositoryID, r.RemoteID).Error)
}

// remoteRows loads the rows of the given remotes, keyed by remote ID.
func remoteRows(ctx context.Context, s *core.Store, ids []string) (map[string]remoteRow, error) {
	out := map[string]remoteRow{}
	if len(ids) == 0 {
		return out, nil
	}
	var rows []remoteRow
	if err := s.DB(ctx).Raw(`SELECT `+remoteRowColumns+` FROM container_remotes WHERE remote_id IN ?`, ids).Scan(&rows).Error; err != nil {
		return nil, core.Translate(err)
	}
	for _, r := range rows {
		out[r.RemoteID] = r
	}
	return out, nil
}

// remoteRowOf loads one row.
func remoteRowOf(ctx context.Context, s *core.Store, id string) (remoteRow, bool, error) {
	rows, err := remoteRows(ctx, s, []string{id})
	if err != nil {
		return remoteRow{}, false, err
	}
	r, ok := rows[id]
	return r, ok, nil
}

// remoteOfRepository finds the remote image syncing into a repository.
func remoteOfRepository(ctx context.Context, s *core.Store, repoID string) (remoteRow, bool, error) {
	var rows []remoteRow
	if err := s.DB(ctx).Raw(`SELECT `+remoteRowColumns+` FROM container_remotes WHERE repository_id = ?`, repoID).Scan(&rows).Error; err != nil {
		return remoteRow{}, false, core.Translate(err)
	}
	if len(rows) == 0 {
		return remoteRow{}, false, nil
	}
	return rows[0], true, nil
}

func setRemoteLastSync(ctx context.Context, s *core.Store, remoteID, taskID string) error {
	return core.Translate(s.DB(ctx).Exec(`UPDATE container_remotes SET last_sync_task = ? WHERE remote_id = ?`, taskID, remoteID).Error)
}

// registryRow is a container_registries row with the number of remote
// images using the registry.
type registryRow struct {
	RemoteID     string
	LastSyncTask *string
	Images       int
}

func insertRegistryRow(ctx context.Context, s *core.Store, remoteID string) error {
	return core.Translate(s.DB(ctx).Exec(`INSERT INTO container_registries (remote_id) VALUES (?) ON CONFLICT DO NOTHING`, remoteID).Error)
}

func setRegistryLastSync(ctx context.Context, s *core.Store, remoteID, taskID string) error {
	return core.Translate(s.DB(ctx).Exec(`UPDATE container_registries SET last_sync_task = ? WHERE remote_id = ?`, taskID, remoteID).Error)
}

// registryRows loads the rows of the given registries, keyed by remote ID.
func registryRows(ctx context.Context, s *core.Store, ids []string) (map[string]registryRow, error) {
	out := map[string]registryRow{}
	if len(ids) == 0 {
		return out, nil
	}
	var rows []registryRow
	err := s.DB(ctx).Raw(`SELECT g.remote_id AS remote_id, g.last_sync_task AS last_sync_task,
			(SELECT COUNT(*) FROM container_remotes cr WHERE cr.registry_id = g.remote_id AND cr.repository_id IS NOT NULL) AS images
		FROM container_registries g WHERE g.remote_id IN ?`, ids).Scan(&rows).Error
	if err != nil {
		return nil, core.Translate(err)
	}
	for _, r := range rows {
		out[r.RemoteID] = r
	}
	return out, nil
}

// registryImages lists the remote images (remote IDs) of a registry, by name.
func registryImages(ctx context.Context, s *core.Store, registryID string) ([]string, error) {
	var ids []string
	err := s.DB(ctx).Raw(`SELECT cr.remote_id FROM container_remotes cr JOIN remotes r ON r.id = cr.remote_id
		WHERE cr.registry_id = ? AND cr.repository_id IS NOT NULL ORDER BY r.name`, registryID).Scan(&ids).Error
	return ids, core.Translate(err)
}

// copyRegistrySettings gives every remote linked to the registry reg its
// URL, credentials (sealed as they are) and download settings.
func copyRegistrySettings(ctx context.Context, s *core.Store, reg *core.Remote) error {
	return core.Translate(s.DB(ctx).Exec(`UPDATE remotes SET url = ?, username = ?, password_enc = ?, tls_validation = ?,
			ca_cert = ?, client_cert = ?, client_key_enc = ?, proxy_url = ?, proxy_username = ?, proxy_password_enc = ?,
			rate_limit = ?, download_concurrency = ?, policy = ?, updated_at = ?
		WHERE id IN (SELECT remote_id FROM container_remotes WHERE registry_id = ?)`,
		reg.URL, reg.Username, reg.PasswordEnc, reg.TLSValidation, reg.CACert, reg.ClientCert, reg.ClientKeyEnc,
		reg.ProxyURL, reg.ProxyUsername, reg.ProxyPasswordEnc, reg.RateLimit, reg.DownloadConcurrency, reg.Policy,
		time.Now().UTC().Truncate(time.Microsecond), reg.ID).Error)
}

// remotesByID loads core remotes, keyed by ID.
func remotesByID(ctx context.Context, s *core.Store, ids []string) (map[string]core.Remote, error) {
	out := map[string]core.Remote{}
	if len(ids) == 0 {
		return out, nil
	}
	var rows []core.Remote
	if err := s.DB(ctx).Where("id IN ?", ids).Find(&rows).Error; err != nil {
		return nil, core.Translate(err)
	}
	for _, r := range rows {
		out[r.ID] = r
	}
	return out, nil
}

// repositoriesByID loads repositories, keyed by ID.
func repositoriesByID(ctx context.Context, s *core.Store, ids []string) (map[string]core.Repository, error) {
	out := map[string]core.Repository{}
	if len(ids) == 0 {
		return out, nil
	}
	var rows []core.Repository
	if err := s.DB(ctx).Where("id IN ?", ids).Find(&rows).Error; err != nil {
		return nil, core.Translate(err)
	}
	for _, r := range rows {
		out[r.ID] = r
	}
	return out, nil
}

// remoteImageColumns are the list filters and orderings of remote images.
var remoteImageColumns = core.Columns{
	"name": "r.name", "upstream_name": "cr.upstream_name", "registry": "cr.registry_id",
	"pulp_created": "r.created_at", "pulp_last_updated": "r.updated_at", "pulp_id": "r.id",
}

// listRemoteImageIDs pages through the remote images (remotes syncing a
// repository of their own).
func listRemoteImageIDs(ctx context.Context, s *core.Store, q core.ListQuery) ([]string, int64, error) {
	base := s.DB(ctx).Table("container_remotes cr").
		Joins("JOIN remotes r ON r.id = cr.remote_id").
		Where("cr.repository_id IS NOT NULL AND r.type = ?", TypeRemote)
	filtered, paged, err := q.Apply(base, remoteImageColumns, "r.name")
	if err != nil {
		return nil, 0, err
	}
	var total int64
	if err := filtered.Count(&total).Error; err != nil {
		return nil, 0, core.Translate(err)
	}
	var ids []string
	if err := paged.Select("r.id").Pluck("r.id", &ids).Error; err != nil {
		return nil, 0, core.Translate(err)
	}
	return ids, total, nil
}

// distributionsOfRepository lists the base paths of the container
// distributions serving a repository's latest version.
func distributionsOfRepository(ctx context.Context, s *core.Store, repoID string) ([]core.Distribution, error) {
	var out []core.Distribution
	err := s.DB(ctx).Where("repository_id = ? AND type = ?", repoID, TypeDistribution).Order("base_path").Find(&out).Error
	return out, core.Translate(err)
}

// tasksByID loads task rows, keyed by ID. Tasks are the task system's
// records; reading them here saves a query per listed object.
func tasksByID(ctx context.Context, s *core.Store, ids []string) (map[string]tasks.Task, error) {
	out := map[string]tasks.Task{}
	if len(ids) == 0 {
		return out, nil
	}
	var rows []tasks.Task
	if err := s.DB(ctx).Where("id IN ?", ids).Find(&rows).Error; err != nil {
		return nil, core.Translate(err)
	}
	for _, t := range rows {
		out[t.ID] = t
	}
	return out, nil
}

// childTaskStates counts the child tasks of each parent by state, and
// finds the latest time one of them finished.
func childTaskStates(ctx context.Context, s *core.Store, parents []string) (map[string]map[tasks.State]int, map[string]time.Time, error) {
	counts := map[string]map[tasks.State]int{}
	last := map[string]time.Time{}
	if len(parents) == 0 {
		return counts, last, nil
	}
	var rows []tasks.Task
	if err := s.DB(ctx).Select("id", "parent_id", "state", "finished_at").Where("parent_id IN ?", parents).Find(&rows).Error; err != nil {
		return nil, nil, core.Translate(err)
	}
	for _, t := range rows {
		parent := *t.ParentID
		if counts[parent] == nil {
			counts[parent] = map[tasks.State]int{}
		}
		counts[parent][t.State]++
		if t.FinishedAt != nil && t.FinishedAt.After(last[parent]) {
			last[parent] = *t.FinishedAt
		}
	}
	return counts, last, nil
}

// deleteImageObjects removes a remote image's distributions, repository
// and remote, in transaction s.
func deleteImageObjects(ctx context.Context, s *core.Store, remoteID, repoID string) error {
	g := s.DB(ctx)
	if repoID != "" {
		if err := g.Exec(`DELETE FROM distributions WHERE repository_id = ? AND type = ?`, repoID, TypeDistribution).Error; err != nil {
			return core.Translate(err)
		}
		if err := s.DeleteRepository(ctx, repoID); err != nil && !isNotFound(err) {
			return err
		}
	}
	// Deleting the repository may have taken its remote along.
	if err := s.DeleteRemote(ctx, remoteID); err != nil && !isNotFound(err) {
		return err
	}
	return nil
}

func isNotFound(err error) bool { return errors.Is(err, core.ErrNotFound) }
