package core

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"slices"
	"time"

	"github.com/opencontainers/go-digest"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/berth-dev/berth/core/db"
	"github.com/berth-dev/berth/core/storage"
)

// Orphan cleanup removes content that no repository version holds, the
// artifacts no content references any more, and their files, so that
// deletions free storage. It must never remove what a repository version,
// a push in flight or an upload in progress still needs; this is how.
//
// Three kinds of things die, in this order, each only once nothing needs it:
// content rows, then artifact rows, then files.
//
//  1. Content. A cleanup selects candidates (in no repository version, not
//     touched within the protection time), then, per batch, in one
//     transaction: locks them (PostgreSQL: SELECT … FOR UPDATE SKIP LOCKED),
//     checks again with a fresh snapshot, asks every plugin's
//     ContentProtector which of them it still needs (pending blobs of
//     unfinished pushes, blobs a manifest references), and deletes the rest
//     (the plugins' detail rows go by ON DELETE CASCADE).
//     Every writer that makes content needed again takes a lock on its row
//     that conflicts with FOR UPDATE, before it depends on the row, until it
//     commits: GetOrCreateContent and LockContent take FOR KEY SHARE, and
//     adding content to a version inserts into repository_contents, whose
//     foreign key takes the same lock. So either the writer locked first –
//     the cleanup skips the row, or waits and then sees the writer's commit
//     (the new membership or pending record) in its re-check – or the
//     cleanup locked first, and the writer waits, then finds the row gone
//     (GetOrCreate* insert it anew; a version insert fails its foreign key
//     and the push is retried, then answers MANIFEST_BLOB_UNKNOWN, and the
//     client uploads again). On SQLite every write transaction is
//     serialized (BEGIN IMMEDIATE), which gives the same order.
//
//  2. Artifacts. The same pattern: locked, re-checked (no content_artifacts
//     row), deleted. content_artifacts' foreign key and GetOrCreateArtifact
//     lock the artifact rows that writers reuse.
//
//  3. Files. A file is removed only after its artifact row is gone
//     (committed), and only inside a critical section on its digest (a
//     PostgreSQL advisory transaction lock, exclusive; SQLite's write
//     transaction) that finds no artifact row and no live lease for the
//     digest. A writer of a file (an upload) first takes a lease on the
//     digest, in the same critical section (shared), then writes the file,
//     then records the artifact and drops the lease (in one transaction, or
//     the lease after it). So a file deletion either comes before the lease
//     – and the writer's write, after it, stores the file again – or after
//     it, and then sees the lease or the artifact row and leaves the file;
//     this holds for the file of an upload not recorded yet that a storage
//     walk comes across too. A committed artifact row therefore always has
//     its file.
//
// A cleanup killed at any point leaves no row without its file: rows are
// deleted before files, each step in its own transaction. It may leave
// files without rows; the next cleanup walks the storage and removes those
// (again in the digest's critical section).
//
// The protection time is a further margin, not the mechanism: content is
// also kept while COALESCE(touched_at, created_at) is recent, so that a
// client that saw a blob (HEAD) and pushes a manifest referencing it
// minutes later is not refused.

// ContentProtector is implemented by plugins that need content which no
// repository version holds: blobs uploaded for a push that has not sent its
// manifest yet, blobs a manifest references. Orphan cleanup asks it about
// every batch of candidates, in the cleanup's transaction, after the
// candidates are locked: what it sees then cannot change until the
// transaction ends.
type ContentProtector interface {
	// ProtectedContent returns those of ids the plugin still needs.
	ProtectedContent(ctx context.Context, tx *Store, ids []string) ([]string, error)
}

// LeaseTTL is how long an artifact lease protects a file: a writer whose
// lease is older died without dropping it.
const LeaseTTL = 24 * time.Hour

// blobLockNamespace is the first key of the PostgreSQL advisory locks on
// digests ("blob"), apart from the task system's.
const blobLockNamespace = 0x626c6f62

// digestKey is the second key of a digest's advisory lock. Two digests
// sharing a key only serialize more than needed.
func digestKey(d string) int32 {
	h := fnv.New32a()
	_, _ = h.Write([]byte(d))
	return int32(h.Sum32())
}

// lockDigest enters the critical section of digest d for the rest of the
// transaction tx: shared for writers taking a lease, exclusive for file
// deletion. On SQLite the write transaction is the critical section.
func (s *Store) lockDigest(ctx context.Context, d string, exclusive bool) error {
	if s.dialect != db.Postgres {
		return nil
	}
	fn := "pg_advisory_xact_lock_shared"
	if exclusive {
		fn = "pg_advisory_xact_lock"
	}
	return Translate(s.DB(ctx).Exec("SELECT "+fn+"(?, ?)", blobLockNamespace, digestKey(d)).Error)
}

// shareLock makes a query lock the rows it reads against orphan cleanup
// (FOR KEY SHARE, the lock foreign keys take) on PostgreSQL.
func (s *Store) shareLock(g *gorm.DB) *gorm.DB {
	if s.dialect == db.Postgres {
		return g.Clauses(clause.Locking{Strength: "KEY SHARE"})
	}
	return g
}

// Lease protects the file of one digest from orphan cleanup; see
// LeaseArtifact.
type Lease struct {
	store *Store
	id    string
	done  bool
}

// LeaseArtifact protects the stored file of digest from orphan cleanup
// while the caller writes it and records its artifact (GetOrCreateArtifact
// in a transaction that commits before Release, or that ends the lease
// itself with ReleaseIn). Call it before writing the file, outside any
// transaction: the lease must be committed first. A lease a writer never
// releases expires after LeaseTTL.
func (s *Store) LeaseArtifact(ctx context.Context, digest string) (*Lease, error) {
	if s.inTx {
		return nil, errors.New("lease artifact: must not run inside a transaction (the lease must be committed before the file is written)")
	}
	l := &Lease{store: s, id: NewID()}
	// One statement, so one transaction: on PostgreSQL it takes the
	// digest's lock shared and holds it until the lease is committed; on
	// SQLite the write is serialized with every file deletion's check.
	q := `INSERT INTO artifact_leases (id, digest, created_at) VALUES (?, ?, ?)`
	args := []any{l.id, digest, now()}
	if s.dialect == db.Postgres {
		q = `WITH locked AS (SELECT pg_advisory_xact_lock_shared(?, ?))
			INSERT INTO artifact_leases (id, digest, created_at) SELECT CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS TIMESTAMPTZ) FROM locked`
		args = append([]any{blobLockNamespace, digestKey(digest)}, args...)
	}
	if err := Translate(s.DB(ctx).Exec(q, args...).Error); err != nil {
		return nil, fmt.Errorf("lease artifact %s: %w", digest, err)
	}
	return l, nil
}

// ReleaseIn ends the lease in transaction tx, the one that records the
// artifact: the row appears and the lease goes at the same commit. Once
// tx committed, Release has nothing left to do.
func (l *Lease) ReleaseIn(ctx context.Context, tx *Store) error {
	return Translate(tx.DB(ctx).Exec(`DELETE FROM artifact_leases WHERE id = ?`, l.id).Error)
}

// Committed tells the lease that the transaction that released it with
// ReleaseIn committed.
func (l *Lease) Committed() { l.done = true }

// Release drops the lease. Call it after the artifact's row committed (or
// when the write failed); releasing twice is harmless.
func (l *Lease) Release(ctx context.Context) error {
	if l == nil || l.done {
		return nil
	}
	err := l.store.DB(ctx).Exec(`DELETE FROM artifact_leases WHERE id = ?`, l.id).Error
	if err == nil {
		l.done = true
	}
	return Translate(err)
}

// LockContent locks the content rows ids against orphan cleanup until the
// transaction ends (see GetOrCreateContent) and returns those that exist.
// A caller that found content outside the transaction and now records a
// reference to it in a table of its own calls it first.
func (s *Store) LockContent(ctx context.Context, ids ...string) ([]string, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	ids = slices.Sorted(slices.Values(ids))
	var found []string
	err := s.shareLock(s.DB(ctx).Table("contents").Where("id IN ?", ids)).Order("id").Pluck("id", &found).Error
	return found, Translate(err)
}

// TouchContent records that the content of type typ with naturalKey is of
// interest now (a client asked for it), so that orphan cleanup keeps it
// for the protection time even if no version holds it any more. It
// writes only when the last touch is older than a minute. It reports
// whether such content exists.
func (s *Store) TouchContent(ctx context.Context, typ, naturalKey string) (bool, error) {
	at := now()
	res := s.DB(ctx).Exec(`UPDATE contents SET touched_at = ? WHERE type = ? AND natural_key = ? AND (touched_at IS NULL OR touched_at < ?)`,
		at, typ, naturalKey, at.Add(-time.Minute))
	if res.Error != nil {
		return false, Translate(res.Error)
	}
	return res.RowsAffected > 0, nil
}

// CleanupOptions configure one orphan cleanup.
type CleanupOptions struct {
	// Protection keeps content and artifacts younger than this (and
	// content touched more recently). Zero removes every orphan at once.
	Protection time.Duration
	// Progress, when set, is told how far each stage got: "content",
	// "artifacts", "files". total is -1 when unknown.
	Progress func(stage string, done, total int64)
}

// CleanupReport says what an orphan cleanup removed.
type CleanupReport struct {
	// Content counts the content units removed, by type.
	Content map[string]int64 `json:"content"`
	// ContentRemoved is the number of content units removed.
	ContentRemoved int64 `json:"content_removed"`
	// ContentProtected counts orphan candidates a plugin still needed.
	ContentProtected int64 `json:"content_protected"`
	// ArtifactsRemoved is the number of artifact rows removed.
	ArtifactsRemoved int64 `json:"artifacts_removed"`
	// FilesRemoved is the number of files removed from blob storage,
	// StrayFiles those of them that no row pointed at (left by an
	// interrupted cleanup).
	FilesRemoved int64 `json:"files_removed"`
	StrayFiles   int64 `json:"stray_files_removed"`
	// BytesReclaimed is the size of the files removed.
	BytesReclaimed int64 `json:"bytes_reclaimed"`
	// ProtectionSeconds is the protection time the cleanup used.
	ProtectionSeconds int64 `json:"orphan_protection_seconds"`
}

// OrphanCleaner removes orphans from the database and blob storage. It is
// safe for concurrent use, though a cleanup should run as a task holding
// an exclusive resource so that cleanups do not repeat each other's work.
type OrphanCleaner struct {
	store      *Store
	blobs      storage.Driver
	protectors []ContentProtector
	log        *slog.Logger
	batch      int
	pause      time.Duration
}

// CleanerOption configures NewOrphanCleaner.
type CleanerOption func(*OrphanCleaner) error

// WithCleanerLogger sets the logger (default slog.Default()).
func WithCleanerLogger(l *slog.Logger) CleanerOption {
	return func(c *OrphanCleaner) error {
		if l == nil {
			return errors.New("nil logger")
		}
		c.log = l
		return nil
	}
}

// WithProtectors adds the content protectors of plugins. NewOrphanCleaner
// finds those of the registry's plugins by itself.
func WithProtectors(p ...ContentProtector) CleanerOption {
	return func(c *OrphanCleaner) error {
		c.protectors = append(c.protectors, p...)
		return nil
	}
}

// WithBatchSize sets how many candidates one transaction handles (default 500).
func WithBatchSize(n int) CleanerOption {
	return func(c *OrphanCleaner) error {
		if n < 1 || n > 10000 {
			return fmt.Errorf("batch size %d: want 1 to 10000", n)
		}
		c.batch = n
		return nil
	}
}

// WithFilePause makes the cleaner wait d after each file it removes. It
// exists for tests that interrupt a cleanup halfway (default 0).
func WithFilePause(d time.Duration) CleanerOption {
	return func(c *OrphanCleaner) error {
		if d < 0 {
			return fmt.Errorf("file pause %s: must not be negative", d)
		}
		c.pause = d
		return nil
	}
}

// NewOrphanCleaner returns a cleaner of store's orphans and their files in
// blobs, asking the ContentProtectors among reg's plugins (reg may be nil).
func NewOrphanCleaner(store *Store, blobs storage.Driver, reg *Registry, opts ...CleanerOption) (*OrphanCleaner, error) {
	if store == nil || blobs == nil {
		return nil, errors.New("orphan cleaner: store and blob storage are required")
	}
	c := &OrphanCleaner{store: store, blobs: blobs, log: slog.Default(), batch: 500}
	if reg != nil {
		c.protectors = Implementing[ContentProtector](reg)
	}
	for _, o := range opts {
		if err := o(c); err != nil {
			return nil, fmt.Errorf("orphan cleaner: %w", err)
		}
	}
	return c, nil
}

// Implementing returns the registered plugins that implement T.
func Implementing[T any](reg *Registry) []T {
	var out []T
	for _, p := range reg.Plugins() {
		if t, ok := p.(T); ok {
			out = append(out, t)
		}
	}
	return out
}

// Cleanup removes the orphans older than the protection time: content in
// no repository version that no plugin protects, artifacts no content
// references, and their files; then files no artifact row points at. It
// returns what it removed, also when it stops early with an error.
func (c *OrphanCleaner) Cleanup(ctx context.Context, o CleanupOptions) (*CleanupReport, error) {
	if o.Protection < 0 {
		return nil, Invalid("orphan_protection_time", "must not be negative")
	}
	progress := o.Progress
	if progress == nil {
		progress = func(string, int64, int64) {}
	}
	cutoff := now().Add(-o.Protection)
	rep := &CleanupReport{Content: map[string]int64{}, ProtectionSeconds: int64(o.Protection / time.Second)}
	s := c.store
	if err := Translate(s.DB(ctx).Exec(`DELETE FROM artifact_leases WHERE created_at < ?`, now().Add(-LeaseTTL)).Error); err != nil {
		return rep, fmt.Errorf("drop stale leases: %w", err)
	}
	if err := c.removeContent(ctx, cutoff, rep, progress); err != nil {
		return rep, err
	}
	digests, err := c.removeArtifacts(ctx, cutoff, rep, progress)
	if err != nil {
		return rep, err
	}
	var done int64
	total := int64(len(digests))
	progress("files", 0, total)
	for _, a := range digests {
		removed, err := c.removeFile(ctx, a.Digest)
		if err != nil {
			return rep, err
		}
		if removed {
			rep.FilesRemoved++
			rep.BytesReclaimed += a.Size
		}
		done++
		progress("files", done, total)
	}
	if err := c.removeStrays(ctx, cutoff, rep, func(n int64) { progress("files", done+n, -1) }); err != nil {
		return rep, err
	}
	c.log.InfoContext(ctx, "orphan cleanup", "content_removed", rep.ContentRemoved, "content_protected", rep.ContentProtected,
		"artifacts_removed", rep.ArtifactsRemoved, "files_removed", rep.FilesRemoved, "stray_files", rep.StrayFiles,
		"bytes_reclaimed", rep.BytesReclaimed, "protection", o.Protection)
	return rep, nil
}

// removeContent deletes orphan content, batch by batch.
func (c *OrphanCleaner) removeContent(ctx context.Context, cutoff time.Time, rep *CleanupReport, progress func(string, int64, int64)) error {
	s := c.store
	var done int64
	progress("content", 0, -1)
	after := ""
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		var cands []string
		err := s.DB(ctx).Raw(`SELECT c.id FROM contents c
			WHERE c.id > ? AND COALESCE(c.touched_at, c.created_at) < ?
			  AND NOT EXISTS (SELECT 1 FROM repository_contents rc WHERE rc.content_id = c.id)
			ORDER BY c.id LIMIT ?`, after, cutoff, c.batch).Scan(&cands).Error
		if err != nil {
			return fmt.Errorf("orphan content: %w", Translate(err))
		}
		if len(cands) == 0 {
			return nil
		}
		after = cands[len(cands)-1]
		var removed map[string]int64
		var protected int64
		err = s.Tx(ctx, func(tx *Store) error {
			removed, protected = nil, 0
			locked, err := tx.lockForDelete(ctx, "contents", cands)
			if err != nil || len(locked) == 0 {
				return err
			}
			// Checked again now that the rows are locked: a writer that
			// held them has committed, and this statement sees it.
			var rows []struct {
				ID   string
				Type string
			}
			err = tx.DB(ctx).Raw(`SELECT c.id AS id, c.type AS type FROM contents c
				WHERE c.id IN ? AND COALESCE(c.touched_at, c.created_at) < ?
				  AND NOT EXISTS (SELECT 1 FROM repository_contents rc WHERE rc.content_id = c.id)`, locked, cutoff).Scan(&rows).Error
			if err != nil {
				return Translate(err)
			}
			ids := make([]string, 0, len(rows))
			for _, r := range rows {
				ids = append(ids, r.ID)
			}
			keep := map[string]bool{}
			for _, p := range c.protectors {
				if len(ids) == 0 {
					break
				}
				kept, err := p.ProtectedContent(ctx, tx, ids)
				if err != nil {
					return fmt.Errorf("protected content: %w", err)
				}
				for _, id := range kept {
					keep[id] = true
				}
			}
			removed = map[string]int64{}
			var gone []string
			for _, r := range rows {
				if keep[r.ID] {
					protected++
					continue
				}
				gone = append(gone, r.ID)
				removed[r.Type]++
			}
			if len(gone) == 0 {
				return nil
			}
			return Translate(tx.DB(ctx).Exec(`DELETE FROM contents WHERE id IN ?`, gone).Error)
		})
		if err != nil {
			return fmt.Errorf("remove orphan content: %w", err)
		}
		rep.ContentProtected += protected
		for t, n := range removed {
			rep.Content[t] += n
			rep.ContentRemoved += n
			done += n
		}
		progress("content", done, -1)
	}
}

// artifactFile is an artifact whose row a cleanup deleted.
type artifactFile struct {
	Digest string
	Size   int64
}

// removeArtifacts deletes the rows of orphan artifacts and returns their
// files, which the caller removes once the rows are committed gone.
func (c *OrphanCleaner) removeArtifacts(ctx context.Context, cutoff time.Time, rep *CleanupReport, progress func(string, int64, int64)) ([]artifactFile, error) {
	s := c.store
	var out []artifactFile
	progress("artifacts", 0, -1)
	after := ""
	for {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		var cands []string
		err := s.DB(ctx).Raw(`SELECT a.id FROM artifacts a
			WHERE a.id > ? AND a.created_at < ?
			  AND NOT EXISTS (SELECT 1 FROM content_artifacts ca WHERE ca.artifact_id = a.id)
			ORDER BY a.id LIMIT ?`, after, cutoff, c.batch).Scan(&cands).Error
		if err != nil {
			return out, fmt.Errorf("orphan artifacts: %w", Translate(err))
		}
		if len(cands) == 0 {
			return out, nil
		}
		after = cands[len(cands)-1]
		var gone []artifactFile
		err = s.Tx(ctx, func(tx *Store) error {
			gone = nil
			locked, err := tx.lockForDelete(ctx, "artifacts", cands)
			if err != nil || len(locked) == 0 {
				return err
			}
			var rows []struct {
				ID     string
				Digest string
				Size   int64
			}
			// A digest a writer holds a lease on is about to be recorded
			// again: its row may as well stay.
			err = tx.DB(ctx).Raw(`SELECT a.id AS id, a.digest AS digest, a.size AS size FROM artifacts a
				WHERE a.id IN ? AND a.created_at < ?
				  AND NOT EXISTS (SELECT 1 FROM content_artifacts ca WHERE ca.artifact_id = a.id)
				  AND NOT EXISTS (SELECT 1 FROM artifact_leases l WHERE l.digest = a.digest AND l.created_at > ?)`,
				locked, cutoff, now().Add(-LeaseTTL)).Scan(&rows).Error
			if err != nil || len(rows) == 0 {
				return Translate(err)
			}
			ids := make([]string, len(rows))
			for i, r := range rows {
				ids[i] = r.ID
				gone = append(gone, artifactFile{Digest: r.Digest, Size: r.Size})
			}
			return Translate(tx.DB(ctx).Exec(`DELETE FROM artifacts WHERE id IN ?`, ids).Error)
		})
		if err != nil {
			return out, fmt.Errorf("remove orphan artifacts: %w", err)
		}
		rep.ArtifactsRemoved += int64(len(gone))
		out = append(out, gone...)
		progress("artifacts", rep.ArtifactsRemoved, -1)
	}
}

// lockForDelete locks the rows of table with the given IDs for deletion
// and returns those it locked. On PostgreSQL rows another transaction holds
// (a writer reusing them) are skipped, so a cleanup never waits on a push
// and cannot deadlock with one; the next cleanup looks at them again.
func (s *Store) lockForDelete(ctx context.Context, table string, ids []string) ([]string, error) {
	q := "SELECT id FROM " + table + " WHERE id IN ? ORDER BY id"
	if s.dialect == db.Postgres {
		q += " FOR UPDATE SKIP LOCKED"
	}
	var locked []string
	err := s.DB(ctx).Raw(q, ids).Scan(&locked).Error
	return locked, Translate(err)
}

// removeFile removes the file of digest d unless an artifact row or a live
// lease needs it, inside the digest's critical section (see the top of
// this file). It reports whether it removed a file.
func (c *OrphanCleaner) removeFile(ctx context.Context, d string) (bool, error) {
	dg, err := digest.Parse(d)
	if err != nil {
		c.log.WarnContext(ctx, "orphan cleanup: artifact with an unusable digest; its file is left", "digest", d, "err", err)
		return false, nil
	}
	removed := false
	err = c.store.Tx(ctx, func(tx *Store) error {
		removed = false
		if err := tx.lockDigest(ctx, d, true); err != nil {
			return err
		}
		var n int64
		err := tx.DB(ctx).Raw(`SELECT (SELECT COUNT(*) FROM artifacts WHERE digest = ?) +
			(SELECT COUNT(*) FROM artifact_leases WHERE digest = ? AND created_at > ?)`, d, d, now().Add(-LeaseTTL)).Scan(&n).Error
		if err != nil || n > 0 {
			return Translate(err)
		}
		err = c.blobs.Delete(ctx, dg)
		switch {
		case err == nil:
			removed = true
		case errors.Is(err, storage.ErrNotFound):
		default:
			return fmt.Errorf("delete file %s: %w", d, err)
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("remove file of %s: %w", d, err)
	}
	if removed && c.pause > 0 {
		select {
		case <-ctx.Done():
			return removed, ctx.Err()
		case <-time.After(c.pause):
		}
	}
	return removed, nil
}

// removeStrays walks blob storage for files older than cutoff that no
// artifact row points at (what an interrupted cleanup, or a writer that
// died between its write and its record, leaves) and removes them. The
// walk only reads; the files are removed after it, each in its digest's
// critical section, which checks again.
func (c *OrphanCleaner) removeStrays(ctx context.Context, cutoff time.Time, rep *CleanupReport, progress func(int64)) error {
	var batch, strays []storage.Info
	check := func() error {
		if len(batch) == 0 {
			return nil
		}
		ds := make([]string, len(batch))
		for i, in := range batch {
			ds[i] = in.Digest.String()
		}
		var known []string
		if err := c.store.DB(ctx).Raw(`SELECT digest FROM artifacts WHERE digest IN ?`, ds).Scan(&known).Error; err != nil {
			return fmt.Errorf("stray files: %w", Translate(err))
		}
		for _, in := range batch {
			if !slices.Contains(known, in.Digest.String()) {
				strays = append(strays, in)
			}
		}
		batch = batch[:0]
		return nil
	}
	err := c.blobs.Walk(ctx, func(in storage.Info) error {
		if !in.ModTime.Before(cutoff) {
			return nil
		}
		if batch = append(batch, in); len(batch) < c.batch {
			return nil
		}
		return check()
	})
	if err == nil {
		err = check()
	}
	if err != nil {
		return fmt.Errorf("walk blob storage: %w", err)
	}
	var n int64
	for _, in := range strays {
		removed, err := c.removeFile(ctx, in.Digest.String())
		if err != nil {
			return err
		}
		if removed {
			rep.StrayFiles++
			rep.FilesRemoved++
			rep.BytesReclaimed += in.Size
			n++
			progress(n)
		}
	}
	return nil
}
