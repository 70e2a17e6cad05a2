package builds

import (
	"context"
	"slices"
	"time"

	"github.com/berth-dev/berth/core"
	"github.com/berth-dev/berth/tasks"
)

// This file holds every SQL statement of the package. Each function takes
// the *core.Store to run on, the pool or a transaction; they work the same
// on PostgreSQL and SQLite.

// Phase is where a build is.
type Phase string

// The phases of a build.
const (
	PhasePending   Phase = "pending"
	PhaseRunning   Phase = "running"
	PhaseSucceeded Phase = "succeeded"
	PhaseFailed    Phase = "failed"
	PhaseCancelled Phase = "cancelled"
)

// Finished reports whether p is final.
func (p Phase) Finished() bool {
	return p == PhaseSucceeded || p == PhaseFailed || p == PhaseCancelled
}

// phaseSQL is a build's current phase. While its task waits or runs, the
// task's state says; once the task has ended, the phase the build recorded
// (just before), or, when it recorded none (its worker was lost, say), the
// task's final state. So a build is finished exactly when its task is.
const phaseSQL = `(CASE
	WHEN b.task_id IS NULL THEN b.phase
	WHEN t.state IS NULL THEN (CASE WHEN b.phase = 'pending' THEN 'failed' ELSE b.phase END)
	WHEN t.state = 'waiting' THEN 'pending'
	WHEN t.state IN ('running', 'canceling') THEN 'running'
	WHEN b.phase <> 'pending' THEN b.phase
	WHEN t.state = 'completed' THEN 'succeeded'
	WHEN t.state = 'canceled' THEN 'cancelled'
	ELSE 'failed' END)`

// fromSQL is what build reads select from.
const fromSQL = `container_builds b LEFT JOIN tasks t ON t.id = b.task_id`

// selectSQL are the columns of a Build.
const selectSQL = `b.id, b.target, b.tag, b.unique_tag, b.spec_digest, b.spec, b.own_base, b.base_secret,
	b.containerfile, b.has_context, b.previous_id, b.task_id, b.created_by, b.created_by_name,
	b.digest, b.error, b.created_at, b.finished_at,
	t.state AS task_state, t.error AS task_error, t.started_at AS started_at, t.finished_at AS task_finished_at,
	` + phaseSQL + ` AS phase`

// Build is a build as stored, with what its task says.
type Build struct {
	ID         string
	Target     string // the repository the image goes to, "namespace/name"
	Tag        string
	UniqueTag  string // "<tag>-<8 hex digits of the spec digest>"
	SpecDigest string
	Spec       string // build.Spec as JSON, without credentials
	// OwnBase is a base image in Berth itself ("ns/img:tag"), or "".
	OwnBase string
	// BaseSecret holds the base's pull credentials, sealed; "" for none.
	BaseSecret    string
	Containerfile string
	HasContext    bool
	PreviousID    *string
	TaskID        *string
	CreatedBy     string // user ID
	CreatedByName string
	Phase         Phase
	Digest        string
	// Error is why the build failed (or "cancelled").
	Error          string
	CreatedAt      time.Time
	FinishedAt     *time.Time
	StartedAt      *time.Time
	TaskState      *string
	TaskError      *tasks.TaskError
	TaskFinishedAt *time.Time
}

// normalize fills the derived fields from the task and makes times UTC.
func (b *Build) normalize() {
	if b.Error == "" && b.TaskError != nil && (b.Phase == PhaseFailed || b.Phase == PhaseCancelled) {
		b.Error = b.TaskError.Description
	}
	if b.FinishedAt == nil && b.Phase.Finished() {
		b.FinishedAt = b.TaskFinishedAt
	}
	b.CreatedAt = b.CreatedAt.UTC()
	b.FinishedAt = utc(b.FinishedAt)
	b.StartedAt = utc(b.StartedAt)
}

func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// now is the current time as both databases keep it.
func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

// insertBuild stores a new build and, in raw mode, its context: data, or a
// copy of the context of build contextFrom.
func insertBuild(ctx context.Context, s *core.Store, b *Build, data []byte, contextFrom string) error {
	return s.Tx(ctx, func(tx *core.Store) error {
		err := tx.DB(ctx).Exec(`INSERT INTO container_builds (id, target, tag, unique_tag, spec_digest, spec, own_base,
				base_secret, containerfile, has_context, previous_id, task_id, created_by, created_by_name, phase, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			b.ID, b.Target, b.Tag, b.UniqueTag, b.SpecDigest, b.Spec, b.OwnBase, b.BaseSecret, b.Containerfile,
			b.HasContext, b.PreviousID, b.TaskID, b.CreatedBy, b.CreatedByName, PhasePending, b.CreatedAt).Error
		if err != nil {
			return core.Translate(err)
		}
		switch {
		case data != nil:
			err = tx.DB(ctx).Exec(`INSERT INTO container_build_contexts (build_id, size, data) VALUES (?, ?, ?)`,
				b.ID, len(data), data).Error
		case contextFrom != "":
			err = tx.DB(ctx).Exec(`INSERT INTO container_build_contexts (build_id, size, data)
				SELECT ?, size, data FROM container_build_contexts WHERE build_id = ?`, b.ID, contextFrom).Error
		}
		return core.Translate(err)
	})
}

// setBuildTask records the task that builds b.
func setBuildTask(ctx context.Context, s *core.Store, id, taskID string) error {
	return core.Translate(s.DB(ctx).Exec(`UPDATE container_builds SET task_id = ? WHERE id = ?`, taskID, id).Error)
}

// deleteBuild removes a build (with its log and context).
func deleteBuild(ctx context.Context, s *core.Store, id string) error {
	return core.Translate(s.DB(ctx).Exec(`DELETE FROM container_builds WHERE id = ?`, id).Error)
}

// getBuild loads a build.
func getBuild(ctx context.Context, s *core.Store, id string) (*Build, error) {
	var out []Build
	if err := s.DB(ctx).Raw(`SELECT `+selectSQL+` FROM `+fromSQL+` WHERE b.id = ?`, id).Scan(&out).Error; err != nil {
		return nil, core.Translate(err)
	}
	if len(out) == 0 {
		return nil, core.NotFound("build", id)
	}
	out[0].normalize()
	return &out[0], nil
}

// buildColumns are the filters and orderings of a build list.
var buildColumns = core.Columns{
	"target":       "b.target",
	"tag":          "b.tag",
	"unique_tag":   "b.unique_tag",
	"phase":        phaseSQL,
	"created_by":   "b.created_by_name",
	"pulp_created": "b.created_at",
	"id":           "b.id",
}

// visibility limits a list to the builds of some targets and those a user
// created; All lifts the limit.
type visibility struct {
	All     bool
	Targets []string
	UserID  string
}

// listBuilds returns a page of the builds q selects among those v lets
// through, newest first by default, and how many there are in all.
func listBuilds(ctx context.Context, s *core.Store, q core.ListQuery, v visibility) ([]Build, int64, error) {
	g := s.DB(ctx).Table(fromSQL)
	if !v.All {
		// "" is no target: it keeps the IN list from being empty.
		targets := slices.Concat(v.Targets, []string{""})
		g = g.Where("(b.target IN ? OR b.created_by = ?)", targets, v.UserID)
	}
	filtered, paged, err := q.Apply(g, buildColumns, "b.created_at DESC, b.id")
	if err != nil {
		return nil, 0, err
	}
	var total int64
	if err := filtered.Count(&total).Error; err != nil {
		return nil, 0, core.Translate(err)
	}
	var out []Build
	if err := paged.Select(selectSQL).Scan(&out).Error; err != nil {
		return nil, 0, core.Translate(err)
	}
	for i := range out {
		out[i].normalize()
	}
	return out, total, nil
}

// buildTargets lists the targets that have builds.
func buildTargets(ctx context.Context, s *core.Store) ([]string, error) {
	var out []string
	err := s.DB(ctx).Raw(`SELECT DISTINCT target FROM container_builds`).Scan(&out).Error
	slices.Sort(out)
	return out, core.Translate(err)
}

// latestBuildFor returns the newest build that pushes target:tag (as its
// tag or its unique tag), if any.
func latestBuildFor(ctx context.Context, s *core.Store, target, tag string) (*Build, bool, error) {
	var out []Build
	err := s.DB(ctx).Raw(`SELECT `+selectSQL+` FROM `+fromSQL+`
		WHERE b.target = ? AND (b.tag = ? OR b.unique_tag = ?)
		ORDER BY b.created_at DESC, b.id LIMIT 1`, target, tag, tag).Scan(&out).Error
	if err != nil || len(out) == 0 {
		return nil, false, core.Translate(err)
	}
	out[0].normalize()
	return &out[0], true, nil
}

// setContainerfile records the Containerfile a build runs.
func setContainerfile(ctx context.Context, s *core.Store, id, text string) error {
	return core.Translate(s.DB(ctx).Exec(`UPDATE container_builds SET containerfile = ? WHERE id = ?`, text, id).Error)
}

// finishBuild records how a build ended, once: a build already finished
// keeps its outcome.
func finishBuild(ctx context.Context, s *core.Store, id string, phase Phase, digest, reason string) error {
	return core.Translate(s.DB(ctx).Exec(`UPDATE container_builds SET phase = ?, digest = ?, error = ?, finished_at = ?
		WHERE id = ? AND phase = 'pending'`, phase, digest, reason, now(), id).Error)
}

// buildContext returns the build context archive of a build.
func buildContext(ctx context.Context, s *core.Store, id string) ([]byte, error) {
	var out []struct{ Data []byte }
	if err := s.DB(ctx).Raw(`SELECT data FROM container_build_contexts WHERE build_id = ?`, id).Scan(&out).Error; err != nil {
		return nil, core.Translate(err)
	}
	if len(out) == 0 {
		return nil, core.NotFound("build context", id)
	}
	return out[0].Data, nil
}

// logLine is one line of a build log: its number, the log bytes before it
// and its text (without the line end).
type logLine struct {
	Seq  int64
	Pos  int64
	Line string
}

// insertLogLines appends lines to a build's log.
func insertLogLines(ctx context.Context, s *core.Store, id string, lines []logLine) error {
	const batch = 200
	for len(lines) > 0 {
		n := min(batch, len(lines))
		q := `INSERT INTO container_build_logs (build_id, seq, pos, line) VALUES `
		args := make([]any, 0, 4*n)
		for i, l := range lines[:n] {
			if i > 0 {
				q += ", "
			}
			q += "(?, ?, ?, ?)"
			args = append(args, id, l.Seq, l.Pos, l.Line)
		}
		if err := s.DB(ctx).Exec(q, args...).Error; err != nil {
			return core.Translate(err)
		}
		lines = lines[n:]
	}
	return nil
}

// pruneLog deletes the lines numbered from firstSeq on that start before
// byte pos: the middle of a long log.
func pruneLog(ctx context.Context, s *core.Store, id string, firstSeq, pos int64) error {
	return core.Translate(s.DB(ctx).Exec(`DELETE FROM container_build_logs WHERE build_id = ? AND seq >= ? AND pos < ?`,
		id, firstSeq, pos).Error)
}

// logAfter returns up to limit lines of a build's log after line afterSeq.
func logAfter(ctx context.Context, s *core.Store, id string, afterSeq int64, limit int) ([]logLine, error) {
	var out []logLine
	err := s.DB(ctx).Raw(`SELECT seq, pos, line FROM container_build_logs WHERE build_id = ? AND seq > ?
		ORDER BY seq LIMIT ?`, id, afterSeq, limit).Scan(&out).Error
	return out, core.Translate(err)
}

// logTail returns the last n lines of a build's log, in order.
func logTail(ctx context.Context, s *core.Store, id string, n int) ([]logLine, error) {
	var out []logLine
	err := s.DB(ctx).Raw(`SELECT seq, pos, line FROM container_build_logs WHERE build_id = ?
		ORDER BY seq DESC LIMIT ?`, id, n).Scan(&out).Error
	slices.Reverse(out)
	return out, core.Translate(err)
}

// logEnd returns the number and end position of a log's last line, or -1
// and 0 for an empty log.
func logEnd(ctx context.Context, s *core.Store, id string) (seq, end int64, err error) {
	lines, err := logTail(ctx, s, id, 1)
	if err != nil || len(lines) == 0 {
		return -1, 0, err
	}
	l := lines[0]
	return l.Seq, l.Pos + int64(len(l.Line)) + 1, nil
}

// buildPhase returns a build's current phase.
func buildPhase(ctx context.Context, s *core.Store, id string) (Phase, error) {
	var out []Phase
	if err := s.DB(ctx).Raw(`SELECT `+phaseSQL+` FROM `+fromSQL+` WHERE b.id = ?`, id).Scan(&out).Error; err != nil {
		return "", core.Translate(err)
	}
	if len(out) == 0 {
		return "", core.NotFound("build", id)
	}
	return out[0], nil
}
