package container

import (
	"context"
	"time"

	"github.com/berth-dev/berth/core"
)

// uploadRow is an upload session. Its data (and so its offset) lives in
// blob storage under the same id; the row only says whose it is and when it
// started, so a chunk costs no row update.
type uploadRow struct {
	ID         string
	Repository string
	OwnerID    string // user ID of who started it ("" anonymous)
	StartedAt  time.Time
}

func insertUpload(ctx context.Context, s *core.Store, u uploadRow) error {
	return core.Translate(s.DB(ctx).Exec(`INSERT INTO container_uploads (id, repository, owner_id, started_at) VALUES (?, ?, ?, ?)`,
		u.ID, u.Repository, u.OwnerID, u.StartedAt.UTC()).Error)
}

func uploadByID(ctx context.Context, s *core.Store, id string) (uploadRow, bool, error) {
	var rows []uploadRow
	err := s.DB(ctx).Raw(`SELECT id, repository, owner_id, started_at FROM container_uploads WHERE id = ?`, id).Scan(&rows).Error
	if err != nil || len(rows) == 0 {
		return uploadRow{}, false, core.Translate(err)
	}
	return rows[0], true, nil
}

func deleteUploadRow(ctx context.Context, s *core.Store, id string) error {
	return core.Translate(s.DB(ctx).Exec(`DELETE FROM container_uploads WHERE id = ?`, id).Error)
}

// uploadsBefore lists up to limit sessions started before cutoff.
func uploadsBefore(ctx context.Context, s *core.Store, cutoff time.Time, limit int) ([]string, error) {
	var ids []string
	err := s.DB(ctx).Raw(`SELECT id FROM container_uploads WHERE started_at < ? ORDER BY started_at LIMIT ?`, cutoff.UTC(), limit).Scan(&ids).Error
	return ids, core.Translate(err)
}
