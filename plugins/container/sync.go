package container

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sync/errgroup"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/core"
	"github.com/berth-dev/berth/core/storage"
	"github.com/berth-dev/berth/plugins/container/upstream"
	"github.com/berth-dev/berth/tasks"
)

// Syncs mirror a repository of a remote registry into a repository of
// Berth, as the task container.sync.
//
// A sync lists the upstream tags and keeps those the remote's filter
// selects; asks each tag's digest with a HEAD (a tag whose manifest is in
// the latest version costs nothing more); fetches the manifests it does not
// have (every child of an index too; manifests Berth stores for another
// repository are not fetched again); fetches the config and layer blobs that
// are not stored yet (an on_demand remote only records where to fetch the
// layers, and blob GETs through /v2/ fetch them later, see ondemand.go);
// and then makes one repository version holding exactly the selected tags,
// their manifests and blobs (a mirror: tags gone upstream leave, and with
// them what only they referenced). Nothing enters a version before that one
// transaction, so a failed or canceled sync leaves the previous version as
// it was, and a sync that finds nothing new makes no version.
//
// Requests go through the remote's upstream client: its rate limit holds
// for all the syncs of a registry in the process (one set of limiters per
// process), Retry-After answers pause them all, failed requests are retried
// with backoff and dropped blob downloads resume. Blobs are verified against
// their digests twice: while read (upstream.VerifyingReader) and by the
// storage driver before it keeps them.

// Task names of syncs.
const (
	// TaskSync syncs one repository from one container remote; args
	// SyncArgs; holds the repository exclusively and the remote shared.
	TaskSync = "container.sync"
	// TaskSyncRegistry marks a registry-wide sync: the REST API dispatches
	// one TaskSync per remote image of the registry as its children.
	TaskSyncRegistry = "container.sync_registry"
)

// SyncArgs are the arguments of TaskSync.
type SyncArgs struct {
	RemoteID     string `json:"remote_id"`
	RepositoryID string `json:"repository_id"`
	// Mirror: the new version holds exactly the upstream's selected tags.
	// Otherwise tags are only added or moved, never removed.
	Mirror bool `json:"mirror"`
}

// SyncRegistryArgs are the arguments of TaskSyncRegistry.
type SyncRegistryArgs struct {
	RegistryID string `json:"registry_id"`
	Images     int    `json:"remote_images"`
}

// SyncResult is what a sync task returns.
type SyncResult struct {
	// Version is the repository's latest version after the sync; Created
	// says whether the sync made it.
	Version             int          `json:"version"`
	Created             bool         `json:"created"`
	Tags                int          `json:"tags"`
	ManifestsDownloaded int          `json:"manifests_downloaded"`
	BlobsDownloaded     int          `json:"blobs_downloaded"`
	BytesDownloaded     int64        `json:"bytes_downloaded"`
	BlobsOnDemand       int          `json:"blobs_on_demand"`
	Skipped             []SkippedTag `json:"skipped_tags,omitempty"`
}

// SkippedTag is a selected upstream tag the sync could not take.
type SkippedTag struct {
	Tag    string `json:"tag"`
	Reason string `json:"reason"`
}

// SyncSpec is the task spec syncing args.RepositoryID from args.RemoteID,
// filed also under the resources (hrefs) in shared, such as the remote
// image's and the registry's, so that the task list filtered by them is the
// sync history.
func SyncSpec(args SyncArgs, parentID string, shared ...string) tasks.Spec {
	return tasks.Spec{
		Name:       TaskSync,
		Args:       args,
		Exclusive:  []string{api.RepositoryResource(args.RepositoryID)},
		Shared:     append([]string{api.RemoteResource(args.RemoteID)}, shared...),
		ParentID:   parentID,
		Idempotent: true,
	}
}

// SyncTasks is the tasks.HandlerProvider of syncs.
type SyncTasks struct{ p *Plugin }

// SyncTasks returns the provider of the sync task handlers.
func (p *Plugin) SyncTasks() SyncTasks { return SyncTasks{p} }

// TaskHandlers maps the sync task names to their handlers.
func (s SyncTasks) TaskHandlers() map[string]tasks.Handler {
	return map[string]tasks.Handler{
		TaskSync:         s.p.syncTask,
		TaskSyncRegistry: s.p.syncRegistryTask,
	}
}

func (p *Plugin) syncRegistryTask(_ context.Context, t *tasks.Task, r *tasks.Reporter) (any, error) {
	var a SyncRegistryArgs
	if err := t.DecodeArgs(&a); err != nil {
		return nil, err
	}
	r.Progress("sync.dispatching", fmt.Sprintf("Syncing %d remote images in child tasks", a.Images)).
		SetTotal(int64(a.Images)).SetDone(int64(a.Images)).Done()
	return map[string]int{"remote_images": a.Images}, nil
}

func (p *Plugin) syncTask(ctx context.Context, t *tasks.Task, r *tasks.Reporter) (any, error) {
	var a SyncArgs
	if err := t.DecodeArgs(&a); err != nil {
		return nil, err
	}
	if a.RemoteID == "" || a.RepositoryID == "" {
		return nil, errors.New("sync: the task's arguments need remote_id and repository_id")
	}
	res, err := p.Sync(ctx, a, r, p.log.With("task", t.ID))
	if err != nil {
		return nil, err
	}
	return res, nil
}

// syncer is one run of a sync.
type syncer struct {
	p        *Plugin
	args     SyncArgs
	remote   *core.Remote
	repo     *core.Repository
	up       string // the repository's name on the registry
	filter   upstream.Filter
	onDemand bool
	client   *upstream.Client
	rep      *tasks.Reporter
	log      *slog.Logger

	mu  sync.Mutex
	res SyncResult
}

// syncManifest is a manifest a sync needs and the repository lacks.
type syncManifest struct {
	digest    string
	mediaType string
	raw       []byte
	m         *manifest
	known     bool   // stored already (for another repository): not fetched
	bad       string // why it cannot be synced ("" if it can)
}

// Sync runs a sync in the calling goroutine (the task handler's body),
// reporting progress to r.
func (p *Plugin) Sync(ctx context.Context, a SyncArgs, r *tasks.Reporter, log *slog.Logger) (*SyncResult, error) {
	remote, err := p.store.Remote(ctx, a.RemoteID)
	if err != nil {
		return nil, fmt.Errorf("sync: %w", err)
	}
	row, found, err := remoteRowOf(ctx, p.store, remote.ID)
	if err != nil {
		return nil, err
	}
	if !found || remote.Type != TypeRemote {
		return nil, fmt.Errorf("sync: remote %q is not a container remote with an upstream name", remote.Name)
	}
	repo, err := p.store.Repository(ctx, a.RepositoryID)
	if err != nil {
		return nil, fmt.Errorf("sync: %w", err)
	}
	if repo.Type != TypeRepository {
		return nil, fmt.Errorf("sync: repository %q is a %s repository, not a container one", repo.Name, repo.Type)
	}
	s := &syncer{
		p: p, args: a, remote: remote, repo: repo,
		up:       upstream.UpstreamName(remote.URL, row.UpstreamName),
		filter:   upstream.Filter{Include: row.include(), Exclude: row.exclude()},
		onDemand: remote.Policy == core.PolicyOnDemand,
		rep:      r,
		log:      log.With("repository", repo.Name, "remote", remote.Name),
	}
	if err := s.filter.Validate(); err != nil {
		return nil, fmt.Errorf("sync: the remote's tag filter: %w", err)
	}
	if s.client, err = p.remotes.client(ctx, p.store, remote.ID, p.log); err != nil {
		return nil, fmt.Errorf("sync: %w", err)
	}
	s.log.InfoContext(ctx, "sync started", "upstream", s.up, "policy", remote.Policy, "mirror", a.Mirror)
	if err := s.run(ctx); err != nil {
		s.log.InfoContext(ctx, "sync ended without a new version", "err", err)
		return nil, err
	}
	s.log.InfoContext(ctx, "sync done", "version", s.res.Version, "created", s.res.Created, "tags", s.res.Tags,
		"manifests", s.res.ManifestsDownloaded, "blobs", s.res.BlobsDownloaded, "bytes", s.res.BytesDownloaded)
	return &s.res, nil
}

func (s *syncer) run(ctx context.Context) error {
	base := s.repo.LatestVersion
	st := s.p.store

	// 1. Tags.
	pt := s.rep.Progress("sync.listing_tags", "Listing tags")
	all, err := s.client.Tags(ctx, s.up)
	if err != nil {
		pt.Fail()
		return fmt.Errorf("list the tags of %s: %w", s.up, err)
	}
	selected := s.filter.Apply(all)
	pt.SetTotal(int64(len(all))).SetDone(int64(len(all))).SetSuffix(fmt.Sprintf("%d selected", len(selected))).Done()

	current, err := versionTags(ctx, st, s.repo.ID, base)
	if err != nil {
		return err
	}
	have, err := versionManifests(ctx, st, s.repo.ID, base)
	if err != nil {
		return err
	}

	// 2. What each tag names now: HEAD only.
	resolved, err := s.resolveTags(ctx, selected)
	if err != nil {
		return err
	}

	// 3. The manifests the version lacks, children of indexes included.
	var need []string
	for _, d := range resolved {
		if !have[d] {
			need = append(need, d)
		}
	}
	fetched, err := s.fetchManifests(ctx, need, have)
	if err != nil {
		return err
	}
	usable := map[string]string{} // tag → digest
	for _, tag := range slices.Sorted(maps.Keys(resolved)) {
		d := resolved[tag]
		if why := badClosure(d, fetched, have); why != "" {
			s.res.Skipped = append(s.res.Skipped, SkippedTag{Tag: tag, Reason: why})
			s.log.WarnContext(ctx, "tag skipped", "tag", tag, "digest", d, "reason", why)
			continue
		}
		usable[tag] = d
	}

	// 4. Blobs.
	if err := s.fetchBlobs(ctx, fetched, base); err != nil {
		return err
	}

	// 5. One new version.
	pa := s.rep.Progress("sync.associating_content", "Associating content")
	rows := map[string]struct {
		row  manifestRow
		refs []refRow
	}{}
	for d, sm := range fetched {
		if sm.bad != "" || sm.known {
			continue
		}
		row, refs := s.p.describe(ctx, sm.m, digest.Digest(d), sm.raw)
		rows[d] = struct {
			row  manifestRow
			refs []refRow
		}{row, refs}
	}
	var v *core.RepositoryVersion
	var created bool
	err = s.p.retry(ctx, "sync", func() error {
		var err error
		v, created, err = st.NewVersion(ctx, s.repo.ID, "sync", func(b *core.VersionBuilder) error {
			for d, r := range rows {
				tx := b.Store()
				c, isNew, err := tx.GetOrCreateContent(ctx, TypeManifest, d)
				if err != nil {
					return err
				}
				if isNew {
					row := r.row
					row.ContentID = c.ID
					if err := insertManifest(ctx, tx, row, r.refs); err != nil {
						return err
					}
				}
			}
			return s.stage(ctx, b, usable, current)
		})
		return err
	})
	if err != nil {
		pa.Fail()
		return err
	}
	pa.Done()
	for _, d := range s.servedBy(ctx) {
		s.p.caches.invalidate(d)
	}
	s.res.Version, s.res.Created, s.res.Tags = v.Number, created, len(usable)
	if created {
		s.rep.Created(api.VersionHref(TypeRepository, s.repo.ID, v.Number))
	}
	return nil
}

// servedBy lists the image names served from the repository.
func (s *syncer) servedBy(ctx context.Context) []string {
	ds, err := distributionsOfRepository(ctx, s.p.store, s.repo.ID)
	if err != nil {
		return nil
	}
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.BasePath
	}
	return out
}

// resolveTags asks the digest of every tag with a HEAD request. Tags that
// vanished since the list are left out.
func (s *syncer) resolveTags(ctx context.Context, tags []string) (map[string]string, error) {
	p := s.rep.Progress("sync.checking_tags", "Checking tags").SetTotal(int64(len(tags)))
	out := map[string]string{}
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(s.client.Concurrency())
	for _, tag := range tags {
		g.Go(func() error {
			d, _, _, err := s.client.HeadManifest(gctx, s.up, tag)
			switch {
			case errors.Is(err, upstream.ErrNotFound):
				s.log.InfoContext(gctx, "tag vanished upstream during the sync", "tag", tag)
			case err != nil:
				return fmt.Errorf("check tag %s: %w", tag, err)
			default:
				mu.Lock()
				out[tag] = d.String()
				mu.Unlock()
			}
			p.Increment(1)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		p.Fail()
		return nil, err
	}
	p.Done()
	return out, nil
}

// fetchManifests gets the manifests of need and, level by level, the
// children of the indexes among them that the version lacks: from the
// database when Berth stores them already, else from the registry by
// digest (verified).
func (s *syncer) fetchManifests(ctx context.Context, need []string, have map[string]bool) (map[string]*syncManifest, error) {
	p := s.rep.Progress("sync.downloading_manifests", "Downloading manifests")
	out := map[string]*syncManifest{}
	level := slices.Compact(slices.Sorted(slices.Values(need)))
	total := int64(0)
	for len(level) > 0 {
		total += int64(len(level))
		p.SetTotal(total)
		known, err := knownManifests(ctx, s.p.store, level)
		if err != nil {
			return nil, err
		}
		var mu sync.Mutex
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(s.client.Concurrency())
		for _, d := range level {
			sm := &syncManifest{digest: d}
			out[d] = sm
			if md, ok := known[d]; ok {
				sm.raw, sm.mediaType, sm.known = md.Data, md.MediaType, true
				sm.m, _ = parseManifest(md.MediaType, md.Data)
				p.Increment(1)
				continue
			}
			g.Go(func() error {
				raw, mt, _, err := s.client.Manifest(gctx, s.up, d)
				switch {
				case errors.Is(err, upstream.ErrNotFound):
					sm.bad = fmt.Sprintf("manifest %s is not on the registry", d)
				case err != nil:
					return fmt.Errorf("get manifest %s: %w", d, err)
				case !isManifestType(mt):
					sm.bad = fmt.Sprintf("manifest %s is of type %q, which Berth does not store", d, mt)
				default:
					m, perr := parseManifest(mt, raw)
					if perr != nil {
						sm.bad = fmt.Sprintf("manifest %s: %v", d, perr)
					} else {
						sm.raw, sm.mediaType, sm.m = raw, mt, m
						mu.Lock()
						s.res.ManifestsDownloaded++
						mu.Unlock()
					}
				}
				p.Increment(1)
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			p.Fail()
			return nil, err
		}
		var next []string
		for _, d := range level {
			sm := out[d]
			if sm.m == nil || !sm.m.isIndex() {
				continue
			}
			for _, c := range sm.m.Manifests {
				if !have[c.Digest] && out[c.Digest] == nil && !slices.Contains(next, c.Digest) {
					next = append(next, c.Digest)
				}
			}
		}
		slices.Sort(next)
		level = next
	}
	p.Done()
	return out, nil
}

// badClosure says why the manifest d cannot be synced: it, or a child of
// it, could not be fetched or parsed. "" when it can.
func badClosure(d string, fetched map[string]*syncManifest, have map[string]bool) string {
	if have[d] {
		return ""
	}
	sm := fetched[d]
	switch {
	case sm == nil:
		return fmt.Sprintf("manifest %s was not fetched", d)
	case sm.bad != "":
		return sm.bad
	case sm.m == nil:
		return fmt.Sprintf("manifest %s cannot be read", d)
	}
	if sm.m.isIndex() {
		for _, c := range sm.m.Manifests {
			if why := badClosure(c.Digest, fetched, have); why != "" {
				return why
			}
		}
	}
	return ""
}

// isForeignType reports whether a layer of this media type may be missing
// from the registry (a non-distributable layer).
func isForeignType(mediaType string) bool {
	return mediaType == mediaTypeDockerForeignLayer ||
		strings.HasPrefix(mediaType, "application/vnd.oci.image.layer.nondistributable.")
}

// fetchBlobs downloads (or, for layers of an on_demand remote, records
// without downloading) the blobs of the fetched manifests that Berth does
// not store. An immediate remote also downloads what earlier on_demand
// syncs left undownloaded in the base version.
func (s *syncer) fetchBlobs(ctx context.Context, fetched map[string]*syncManifest, base int) error {
	want := map[string]blobRef{}
	for _, sm := range fetched {
		if sm.bad != "" || sm.m == nil || sm.m.isIndex() {
			continue
		}
		if c := sm.m.Config; c != nil {
			want[c.Digest] = blobRef{Digest: c.Digest, Size: c.Size, Config: true}
		}
		for _, l := range sm.m.Layers {
			if isForeign(l) {
				continue
			}
			if _, dup := want[l.Digest]; !dup {
				want[l.Digest] = blobRef{Digest: l.Digest, Size: l.Size}
			}
		}
	}
	if !s.onDemand {
		lazy, err := lazyVersionBlobs(ctx, s.p.store, s.repo.ID, base)
		if err != nil {
			return err
		}
		for _, b := range lazy {
			want[b.Digest] = b
		}
	}
	states, err := blobStates(ctx, s.p.store, slices.Collect(maps.Keys(want)))
	if err != nil {
		return err
	}
	var download []blobRef
	var bytes int64
	for _, d := range slices.Sorted(maps.Keys(want)) {
		b := want[d]
		if st, ok := states[d]; ok && st.Downloaded {
			if _, err := s.p.blobs.Stat(ctx, digest.Digest(d)); err == nil {
				continue // stored already, for this or another repository
			} else if !errors.Is(err, storage.ErrNotFound) {
				return err
			}
		}
		if s.onDemand && !b.Config {
			if err := recordSyncedBlob(ctx, s.p.store, d, b.Size, false, s.remote.ID, s.up); err != nil {
				return err
			}
			s.res.BlobsOnDemand++
			continue
		}
		download = append(download, b)
		bytes += b.Size
	}
	pb := s.rep.Progress("sync.downloading_blobs", "Downloading blobs").SetTotal(int64(len(download)))
	pbytes := s.rep.Progress("sync.downloading_bytes", "Downloading bytes").SetTotal(bytes).SetSuffix("bytes")
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(s.client.Concurrency())
	for _, b := range download {
		g.Go(func() error {
			if err := s.downloadBlob(gctx, b, pbytes); err != nil {
				return err
			}
			pb.Increment(1)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		pb.Fail()
		pbytes.Fail()
		return err
	}
	pb.Done()
	pbytes.Done()
	return nil
}

// downloadBlob streams one blob from the registry into storage, verified,
// and records it.
func (s *syncer) downloadBlob(ctx context.Context, b blobRef, progress *tasks.Progress) error {
	d := digest.Digest(b.Digest)
	rc, _, err := s.client.Blob(ctx, s.up, d)
	if err != nil {
		return fmt.Errorf("get blob %s: %w", d, err)
	}
	defer rc.Close()
	vr, err := upstream.VerifyingReader(rc, d, b.Size)
	if err != nil {
		return err
	}
	// The file is written and its artifact recorded under a lease, so an
	// orphan cleanup running meanwhile cannot remove the file in between.
	var info storage.Info
	err = s.p.WithBlobLease(ctx, d, func() error {
		var err error
		info, err = s.p.blobs.Put(ctx, d, b.Size, &countingReader{r: vr, p: progress})
		if err != nil {
			return fmt.Errorf("store blob %s: %w", d, err)
		}
		return recordSyncedBlob(ctx, s.p.store, b.Digest, info.Size, true, "", "")
	})
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.res.BlobsDownloaded++
	s.res.BytesDownloaded += info.Size
	s.mu.Unlock()
	return nil
}

// countingReader reports the bytes read through it.
type countingReader struct {
	r io.Reader
	p *tasks.Progress
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	if n > 0 {
		c.p.Increment(int64(n))
	}
	return n, err
}

// stage makes the version b builds hold the tags usable (tag → manifest
// digest) with their manifests and blobs: exactly those (mirror), or in
// addition to what it holds, moving the tags of the same names (current
// maps the base version's tags to their digests).
func (s *syncer) stage(ctx context.Context, b *core.VersionBuilder, usable, current map[string]string) error {
	tx := b.Store()
	digests := slices.Compact(slices.Sorted(maps.Values(usable)))
	ids, err := manifestIDs(ctx, tx, digests)
	if err != nil {
		return err
	}
	roots := make([]string, 0, len(ids))
	for _, d := range digests {
		id, ok := ids[d]
		if !ok {
			return fmt.Errorf("sync: manifest %s is not stored", d)
		}
		roots = append(roots, id)
	}
	mIDs, bIDs, missing, err := manifestClosure(ctx, tx, roots)
	if err != nil {
		return err
	}
	for _, m := range missing {
		if m.Kind == "layer" && isForeignType(m.MediaType) {
			continue
		}
		return fmt.Errorf("sync: %s %s referenced by a manifest is not stored", m.Kind, m.Digest)
	}
	desired := map[string]bool{}
	for id := range mIDs {
		desired[id] = true
	}
	for id := range bIDs {
		desired[id] = true
	}
	names := slices.Sorted(maps.Keys(usable))
	for _, tag := range names {
		d := usable[tag]
		tc, isNew, err := tx.GetOrCreateContent(ctx, TypeTag, tag+"@"+d)
		if err != nil {
			return err
		}
		if isNew {
			if err := insertTag(ctx, tx, tc.ID, tag, ids[d]); err != nil {
				return err
			}
		}
		desired[tc.ID] = true
	}
	present, err := b.Present(ctx, "")
	if err != nil {
		return err
	}
	isPresent := make(map[string]bool, len(present))
	for _, id := range present {
		isPresent[id] = true
	}
	var remove []string
	if s.args.Mirror {
		for _, id := range present {
			if !desired[id] {
				remove = append(remove, id)
			}
		}
	} else {
		moved := map[string]bool{}
		for _, tag := range names {
			if d, ok := current[tag]; ok && d != usable[tag] {
				moved[tag] = true
			}
		}
		byName, err := tagContentsByName(ctx, tx, s.repo.ID, b.Number(), slices.Sorted(maps.Keys(moved)))
		if err != nil {
			return err
		}
		for _, list := range byName {
			for _, id := range list {
				if !desired[id] {
					remove = append(remove, id)
				}
			}
		}
	}
	if err := b.Remove(ctx, remove...); err != nil {
		return err
	}
	var add []string
	for id := range desired {
		if !isPresent[id] {
			add = append(add, id)
		}
	}
	slices.Sort(add)
	return b.Add(ctx, add...)
}
