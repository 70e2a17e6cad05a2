package core

import (
	"context"
	"errors"
	"time"
)

// ClaimSchedule tells whether the periodic job name is due, and if so
// claims this run of it: the job is due once every interval, and of the
// processes asking at about the same time (serve replicas) exactly one
// gets true. The first call only starts the clock: the first run is one
// interval later.
func (s *Store) ClaimSchedule(ctx context.Context, name string, every time.Duration) (bool, error) {
	if every <= 0 {
		return false, errors.New("claim schedule: the interval must be positive")
	}
	at := now()
	g := s.DB(ctx)
	if err := g.Exec(`INSERT INTO schedules (name, next_at) VALUES (?, ?) ON CONFLICT (name) DO NOTHING`, name, at.Add(every)).Error; err != nil {
		return false, Translate(err)
	}
	// Compare-and-set on next_at: whoever moves it runs the job.
	res := g.Exec(`UPDATE schedules SET next_at = ? WHERE name = ? AND next_at <= ?`, at.Add(every), name, at)
	if res.Error != nil {
		return false, Translate(res.Error)
	}
	return res.RowsAffected == 1, nil
}
