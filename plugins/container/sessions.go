package container

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/google/uuid"
	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/core"
	"github.com/berth-dev/berth/core/storage"
)

// Blob uploads. A session's bytes stream into blob storage (which hashes
// while it writes and can resume after a restart); the session row says
// which repository name it belongs to and when it started. Chunks of one
// session are serialized in this process by a per-session lock.
//
// (Clients send the chunks of one upload one after the other, so replicas
// behind a load balancer take turns on a session's data rather than
// writing it at once.)
//
// A completed blob is recorded as content (shared, stored once) and as
// pending for the repository name it was uploaded to: it is readable there
// at once, before any manifest references it, and a manifest push then takes
// it into a repository version. Pending records expire with the sessions.

// byteRange is an inclusive byte range from a Content-Range header.
type byteRange struct{ start, end int64 }

// startUpload opens an upload session of who for name and returns its id.
func (p *Plugin) startUpload(ctx context.Context, who Identity, name string) (string, error) {
	if err := p.checkPushable(ctx, name); err != nil {
		return "", err
	}
	id := uuid.NewString()
	u, err := p.blobs.NewUpload(ctx, id)
	if err != nil {
		return "", fmt.Errorf("start upload: %w", err)
	}
	if err := u.Close(); err != nil {
		return "", fmt.Errorf("start upload: %w", err)
	}
	if err := insertUpload(ctx, p.store, uploadRow{ID: id, Repository: name, OwnerID: who.UserID, StartedAt: time.Now().UTC()}); err != nil {
		_ = p.blobs.DeleteUpload(context.WithoutCancel(ctx), id)
		return "", err
	}
	return id, nil
}

// openSession locks session id of name and resumes its data. The returned
// function closes the handle (keeping the data) and releases the lock.
func (p *Plugin) openSession(ctx context.Context, name, id string) (storage.Upload, func(), error) {
	if !storage.ValidUploadID(id) {
		return nil, nil, errorf(ErrUploadUnknown, "upload %q is not known", truncate(id, 200))
	}
	unlock, err := p.sessions.lock(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	row, found, err := uploadByID(ctx, p.store, id)
	if err != nil {
		unlock()
		return nil, nil, err
	}
	if !found || row.Repository != name {
		unlock()
		return nil, nil, errorf(ErrUploadUnknown, "upload %s is not an upload session of %q", id, name)
	}
	if time.Since(row.StartedAt) > p.expiry {
		p.dropSession(ctx, id)
		unlock()
		return nil, nil, errorf(ErrUploadUnknown, "upload %s expired (sessions live %s)", id, p.expiry)
	}
	u, err := p.blobs.ResumeUpload(ctx, id)
	if errors.Is(err, storage.ErrUploadNotFound) {
		p.dropSession(ctx, id)
		unlock()
		return nil, nil, errorf(ErrUploadUnknown, "upload %s has no data any more", id)
	}
	if err != nil {
		unlock()
		return nil, nil, fmt.Errorf("resume upload %s: %w", id, err)
	}
	return u, func() {
		if err := u.Close(); err != nil {
			p.log.Warn("closing upload session", "id", id, "err", err)
		}
		unlock()
	}, nil
}

// dropSession removes a session's data and row, best effort.
func (p *Plugin) dropSession(ctx context.Context, id string) {
	ctx = context.WithoutCancel(ctx)
	if err := p.blobs.DeleteUpload(ctx, id); err != nil {
		p.log.Warn("removing upload data", "id", id, "err", err)
	}
	if err := deleteUploadRow(ctx, p.store, id); err != nil {
		p.log.Warn("removing upload session", "id", id, "err", err)
	}
}

// sessionOwner is the user ID recorded on session id of name, "" when it
// is anonymous or not such a session (the operation then fails on it).
func (p *Plugin) sessionOwner(ctx context.Context, name, id string) (string, error) {
	if !storage.ValidUploadID(id) {
		return "", nil
	}
	row, found, err := uploadByID(ctx, p.store, id)
	if err != nil || !found || row.Repository != name {
		return "", err
	}
	return row.OwnerID, nil
}

// uploadStatus returns how many bytes session id of name holds.
func (p *Plugin) uploadStatus(ctx context.Context, name, id string) (int64, error) {
	u, done, err := p.openSession(ctx, name, id)
	if err != nil {
		return 0, err
	}
	defer done()
	return u.Size(), nil
}

// appendUpload appends a chunk to session id and returns the new size. With
// a range (PATCH with Content-Range) the chunk must continue the data
// exactly; without one (a streamed PATCH) the whole body is appended.
func (p *Plugin) appendUpload(ctx context.Context, name, id string, rng *byteRange, length int64, body io.Reader) (int64, error) {
	u, done, err := p.openSession(ctx, name, id)
	if err != nil {
		return 0, err
	}
	defer done()
	err = writeChunk(u, rng, length, body)
	return u.Size(), err
}

// finishUpload appends a last chunk (if any) to session id, verifies the
// whole upload against d and stores it as a blob of name.
func (p *Plugin) finishUpload(ctx context.Context, name, id string, d digest.Digest, rng *byteRange, length int64, body io.Reader) (storage.Info, error) {
	u, done, err := p.openSession(ctx, name, id)
	if err != nil {
		return storage.Info{}, err
	}
	defer done()
	if rng != nil || length != 0 {
		if err := writeChunk(u, rng, length, body); err != nil {
			return storage.Info{}, err
		}
	}
	// The lease keeps orphan cleanup off the file from before it is
	// committed until its artifact is recorded (see core/orphans.go).
	lease, err := p.leaseBlob(ctx, d)
	if err != nil {
		return storage.Info{}, err
	}
	defer p.releaseLease(ctx, d, lease)
	info, err := u.Commit(ctx, d)
	switch {
	case errors.Is(err, storage.ErrDigestMismatch):
		return storage.Info{}, withDetail(ErrDigestInvalid, map[string]string{"digest": d.String()},
			"the uploaded content (%d bytes) does not hash to %s", u.Size(), d)
	case errors.Is(err, storage.ErrInvalidDigest):
		return storage.Info{}, errorf(ErrDigestInvalid, "digest %s is not accepted", d)
	case errors.Is(err, storage.ErrUploadNotFound):
		return storage.Info{}, errorf(ErrUploadUnknown, "upload %s vanished", id)
	case err != nil:
		return storage.Info{}, fmt.Errorf("commit upload %s: %w", id, err)
	}
	return info, p.recordBlob(ctx, name, d, info.Size, id, lease)
}

// cancelUpload removes session id of name and its data.
func (p *Plugin) cancelUpload(ctx context.Context, name, id string) error {
	u, done, err := p.openSession(ctx, name, id)
	if err != nil {
		return err
	}
	defer done()
	if err := u.Cancel(ctx); err != nil {
		return fmt.Errorf("cancel upload %s: %w", id, err)
	}
	return deleteUploadRow(ctx, p.store, id)
}

// putBlob stores a whole blob sent in one request (POST ?digest=).
func (p *Plugin) putBlob(ctx context.Context, name string, d digest.Digest, length int64, body io.Reader) (storage.Info, error) {
	if err := p.checkPushable(ctx, name); err != nil {
		return storage.Info{}, err
	}
	if _, err := ParseDigest(d.String()); err != nil {
		return storage.Info{}, err
	}
	lease, err := p.leaseBlob(ctx, d)
	if err != nil {
		return storage.Info{}, err
	}
	defer p.releaseLease(ctx, d, lease)
	src := &trackedReader{r: body}
	info, err := p.blobs.Put(ctx, d, length, src)
	switch {
	case src.err != nil:
		return storage.Info{}, errorf(ErrUploadInvalid, "reading the blob failed: %v", src.err)
	case errors.Is(err, storage.ErrDigestMismatch):
		return storage.Info{}, withDetail(ErrDigestInvalid, map[string]string{"digest": d.String()}, "the content does not hash to %s", d)
	case errors.Is(err, storage.ErrSizeMismatch):
		return storage.Info{}, errorf(ErrSizeInvalid, "the body is not Content-Length (%d) bytes long", length)
	case errors.Is(err, storage.ErrInvalidDigest):
		return storage.Info{}, errorf(ErrDigestInvalid, "digest %s is not accepted", d)
	case err != nil:
		return storage.Info{}, fmt.Errorf("store blob %s: %w", d, err)
	}
	return info, p.recordBlob(ctx, name, d, info.Size, "", lease)
}

// recordBlob records a stored blob as content, readable through name, and
// ends the upload session it came from (if any) and the lease that kept the
// file from orphan cleanup while it was stored, in one transaction.
func (p *Plugin) recordBlob(ctx context.Context, name string, d digest.Digest, size int64, uploadID string, lease *core.Lease) error {
	err := p.retry(ctx, "record blob", func() error {
		return p.store.Tx(ctx, func(tx *core.Store) error {
			if err := lease.ReleaseIn(ctx, tx); err != nil {
				return err
			}
			a, _, err := tx.GetOrCreateArtifact(ctx, d.String(), size)
			if err != nil {
				return err
			}
			c, created, err := tx.GetOrCreateContent(ctx, TypeBlob, d.String())
			if err != nil {
				return err
			}
			if created {
				if err := insertBlob(ctx, tx, c.ID, d, size); err != nil {
					return err
				}
				if err := tx.AttachArtifact(ctx, c.ID, d.String(), &a.ID); err != nil {
					return err
				}
			}
			if err := upsertPending(ctx, tx, name, d, c.ID); err != nil {
				return err
			}
			if uploadID != "" {
				return deleteUploadRow(ctx, tx, uploadID)
			}
			return nil
		})
	})
	if err == nil {
		lease.Committed()
	}
	return err
}

// mountBlob makes blob d, readable through another image the client may
// pull (canPull tells), readable through name without uploading it again.
// from names that image; when empty, any image holding the blob that the
// client may pull will do. It reports false (and the caller opens an
// upload session) when no such image exists.
func (p *Plugin) mountBlob(ctx context.Context, name, from string, d digest.Digest, canPull func(string) bool) (bool, error) {
	if err := p.checkPushable(ctx, name); err != nil {
		return false, err
	}
	var candidates []string
	if from != "" {
		if ValidateName(from) != nil {
			return false, nil
		}
		candidates = []string{from}
	} else {
		var err error
		if candidates, err = blobHolders(ctx, p.store, d, 20); err != nil {
			return false, err
		}
	}
	for _, src := range candidates {
		if src != name && !canPull(src) {
			continue
		}
		ok, err := p.blobVisible(ctx, src, d)
		if err != nil {
			return false, err
		}
		if !ok {
			continue
		}
		id, found, err := blobContentID(ctx, p.store, d)
		if err != nil || !found {
			return false, err
		}
		if _, err := p.blobs.Stat(ctx, d); err != nil {
			if errors.Is(err, storage.ErrNotFound) {
				p.log.Warn("blob recorded but missing from storage", "digest", d)
				return false, nil
			}
			return false, err
		}
		mounted := false
		err = p.retry(ctx, "mount blob", func() error {
			return p.store.Tx(ctx, func(tx *core.Store) error {
				// Locked, the blob's content (and so its artifact and file)
				// cannot go to orphan cleanup before the pending record
				// protects it; gone already, the client uploads it.
				live, err := tx.LockContent(ctx, id)
				if err != nil || len(live) == 0 {
					return err
				}
				mounted = true
				return upsertPending(ctx, tx, name, d, id)
			})
		})
		return mounted, err
	}
	return false, nil
}

// CleanupUploads removes upload sessions started before olderThan ago (rows
// and data, also data whose row is gone) and forgets pending blobs recorded
// before then. It returns how many sessions it removed. The periodic
// cleaner calls it with UploadExpiry().
func (p *Plugin) CleanupUploads(ctx context.Context, olderThan time.Duration) (int, error) {
	cutoff := time.Now().Add(-olderThan)
	removed := 0
	for {
		ids, err := uploadsBefore(ctx, p.store, cutoff, 500)
		if err != nil {
			return removed, err
		}
		for _, id := range ids {
			if err := p.blobs.DeleteUpload(ctx, id); err != nil {
				return removed, fmt.Errorf("remove upload %s: %w", id, err)
			}
			if err := deleteUploadRow(ctx, p.store, id); err != nil {
				return removed, err
			}
			removed++
		}
		if len(ids) < 500 {
			break
		}
	}
	err := p.blobs.ListUploads(ctx, func(id string, started time.Time, _ int64) error {
		if !started.Before(cutoff) {
			return nil
		}
		if _, found, err := uploadByID(ctx, p.store, id); err != nil || found {
			return err
		}
		if err := p.blobs.DeleteUpload(ctx, id); err != nil {
			return fmt.Errorf("remove upload %s: %w", id, err)
		}
		removed++
		return nil
	})
	if err != nil {
		return removed, err
	}
	n, err := deletePendingBefore(ctx, p.store, cutoff)
	if err != nil {
		return removed, err
	}
	p.log.Info("upload cleanup", "sessions_removed", removed, "pending_blobs_expired", n, "older_than", olderThan)
	return removed, nil
}

// writeChunk appends body to u. With a range, the chunk must start where
// the data ends and be exactly as long as the range (and Content-Length,
// when given); otherwise the whole body is appended.
func writeChunk(u storage.Upload, rng *byteRange, length int64, body io.Reader) error {
	want := length
	if rng != nil {
		if rng.start != u.Size() {
			return newRangeError(u.Size(), "the chunk starts at byte %d but the upload holds %d bytes", rng.start, u.Size())
		}
		want = rng.end - rng.start + 1
		if length >= 0 && length != want {
			return errorf(ErrSizeInvalid, "Content-Range announces %d bytes but Content-Length %d", want, length)
		}
		body = io.LimitReader(body, want)
	}
	src := &trackedReader{r: body}
	n, err := u.ReadFrom(src)
	switch {
	case src.err != nil:
		return errorf(ErrUploadInvalid, "reading the chunk failed after %d bytes: %v", n, src.err)
	case err != nil:
		return fmt.Errorf("write upload %s: %w", u.ID(), err)
	case want >= 0 && n != want:
		return errorf(ErrSizeInvalid, "the chunk has %d bytes, %d were announced", n, want)
	}
	return nil
}

// trackedReader remembers an error of the reader it wraps, so that a
// client's broken body is told apart from a storage failure.
type trackedReader struct {
	r   io.Reader
	err error
}

func (t *trackedReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if err != nil && err != io.EOF {
		t.err = err
	}
	return n, err
}
