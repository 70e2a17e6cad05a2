package container

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/core"
	"github.com/berth-dev/berth/core/storage"
)

// maxConfigSize bounds how much of a config blob the registry reads to learn
// an image's platform and labels.
const maxConfigSize = 4 << 20

// PushResult tells what a manifest push stored.
type PushResult struct {
	// Digest is the manifest's digest.
	Digest digest.Digest
	// Subject is the digest of the manifest's subject, "" if it has none.
	Subject digest.Digest
	// Tags are the tags now pointing at the manifest.
	Tags []string
	// Version is the repository version holding the manifest; Created
	// says whether the push made it (pushing what is there already does not).
	Version int
	Created bool
}

// PutManifest stores a manifest under the image name, tagged with tags (none
// for a push by digest), in one new repository version: the manifest, the
// blobs it references and the tags are added and tags that pointed elsewhere
// are removed, in one transaction. want is the digest the client pushed the
// manifest by ("" for a push by tag); the body must hash to it. The first
// push of a name creates its namespace, repository and distribution.
func (p *Plugin) PutManifest(ctx context.Context, who Identity, name, contentType string, body []byte, want digest.Digest, tags []string) (*PushResult, error) {
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	for _, t := range tags {
		if err := ValidateTag(t); err != nil {
			return nil, err
		}
	}
	if len(body) > MaxManifestSize {
		return nil, errorf(ErrManifestTooLarge, "manifest is %d bytes; the limit is %d", len(body), MaxManifestSize)
	}
	if want != "" {
		if _, err := ParseDigest(want.String()); err != nil {
			return nil, err
		}
	}
	d := digestOf(body, want)
	if want != "" && d != want {
		return nil, withDetail(ErrDigestInvalid, map[string]string{"digest": want.String()},
			"the manifest hashes to %s, not to the digest %s it was pushed by", d, want)
	}
	m, err := parseManifest(contentType, body)
	if err != nil {
		return nil, err
	}
	row, refs := p.describe(ctx, m, d, body)
	tags = slices.Compact(slices.Sorted(slices.Values(tags)))

	res := &PushResult{Digest: d, Tags: tags}
	if m.Subject != nil {
		res.Subject = digest.Digest(m.Subject.Digest)
	}
	var newNS string
	err = p.retry(ctx, "push manifest", func() error {
		return p.store.Tx(ctx, func(tx *core.Store) error {
			repo, ns, err := p.ensureImage(ctx, tx, name, who)
			if err != nil {
				return err
			}
			newNS = ns
			v, created, err := tx.NewVersion(ctx, repo.ID, who.name(), func(b *core.VersionBuilder) error {
				return p.stageManifest(ctx, b, name, m, row, refs, tags)
			})
			if err != nil {
				return err
			}
			res.Version, res.Created = v.Number, created
			return nil
		})
	})
	p.caches.invalidate(name)
	if err != nil {
		return nil, err
	}
	p.namespaceCreated(ctx, newNS, who)
	p.log.Info("manifest pushed", "name", name, "digest", d, "tags", tags, "version", res.Version, "new_version", res.Created, "user", who.name())
	return res, nil
}

// stageManifest adds a manifest, its blobs and its tags to the version b
// builds, after checking that everything it references is there.
func (p *Plugin) stageManifest(ctx context.Context, b *core.VersionBuilder, name string, m *manifest, row manifestRow, refs []refRow, tags []string) error {
	tx, repoID, at := b.Store(), b.Repository().ID, b.Number()

	// Blobs: config and layers must be readable through name (in the
	// repository or uploaded to it); foreign layers may live elsewhere.
	var need, optional []string
	if !m.isIndex() {
		need = append(need, m.Config.Digest)
		for _, l := range m.Layers {
			if isForeign(l) {
				optional = append(optional, l.Digest)
			} else {
				need = append(need, l.Digest)
			}
		}
	}
	need = slices.Compact(slices.Sorted(slices.Values(need)))
	found, err := visibleBlobs(ctx, tx, name, repoID, at, append(slices.Clone(need), optional...))
	if err != nil {
		return err
	}
	for _, d := range need {
		if _, ok := found[d]; !ok {
			return withDetail(ErrManifestBlobUnknown, map[string]string{"digest": d},
				"blob %s referenced by the manifest is not in repository %q; push it first", d, name)
		}
	}
	// Children of an index must be manifests of the repository.
	if m.isIndex() {
		var children []string
		for _, c := range m.Manifests {
			children = append(children, c.Digest)
		}
		children = slices.Compact(slices.Sorted(slices.Values(children)))
		have, err := manifestsInVersion(ctx, tx, repoID, at, children)
		if err != nil {
			return err
		}
		for _, c := range children {
			if _, ok := have[c]; !ok {
				return withDetail(ErrManifestBlobUnknown, map[string]string{"digest": c},
					"manifest %s listed by the index is not in repository %q; push it first", c, name)
			}
		}
	}

	mc, created, err := tx.GetOrCreateContent(ctx, TypeManifest, row.Digest)
	if err != nil {
		return err
	}
	if created {
		row.ContentID = mc.ID
		if err := insertManifest(ctx, tx, row, refs); err != nil {
			return err
		}
	}
	add := []string{mc.ID}
	digests := make([]string, 0, len(found))
	for d, id := range found {
		add = append(add, id)
		digests = append(digests, d)
	}
	slices.Sort(add)
	if err := b.Add(ctx, slices.Compact(add)...); err != nil {
		return err
	}

	current, err := tagContentsByName(ctx, tx, repoID, at, tags)
	if err != nil {
		return err
	}
	for _, tag := range tags {
		tc, created, err := tx.GetOrCreateContent(ctx, TypeTag, tag+"@"+row.Digest)
		if err != nil {
			return err
		}
		if created {
			if err := insertTag(ctx, tx, tc.ID, tag, mc.ID); err != nil {
				return err
			}
		}
		// A tag that named another manifest moves: its old content leaves.
		old := slices.DeleteFunc(current[tag], func(id string) bool { return id == tc.ID })
		if err := b.Remove(ctx, old...); err != nil {
			return err
		}
		if err := b.Add(ctx, tc.ID); err != nil {
			return err
		}
	}
	// The blobs are in the version now; they need no pending record.
	_, err = deletePending(ctx, tx, name, digests)
	return err
}

// describe makes the manifest's rows: what the catalog and the referrers
// API read, and the exact bytes.
func (p *Plugin) describe(ctx context.Context, m *manifest, d digest.Digest, body []byte) (manifestRow, []refRow) {
	row := manifestRow{
		Digest: d.String(), MediaType: m.MediaType, SchemaVersion: m.SchemaVersion, Size: m.Size,
		IsIndex: m.isIndex(), ArtifactType: m.effectiveArtifactType(), Annotations: annotationsCopy(m.Annotations),
		Labels: "{}", Data: body, CreatedAt: time.Now().UTC(),
	}
	if m.Subject != nil {
		s := m.Subject.Digest
		row.SubjectDigest = &s
	}
	var refs []refRow
	if m.isIndex() {
		for i, c := range m.Manifests {
			r := refRow{Position: i, Kind: "manifest", Digest: c.Digest, MediaType: c.MediaType, Size: c.Size}
			if c.Platform != nil {
				r.OS, r.Architecture, r.Variant = c.Platform.OS, c.Platform.Architecture, c.Platform.Variant
			}
			refs = append(refs, r)
		}
		return row, refs
	}
	row.ConfigDigest, row.ConfigMediaType = m.Config.Digest, m.Config.MediaType
	refs = append(refs, refRow{Position: 0, Kind: "config", Digest: m.Config.Digest, MediaType: m.Config.MediaType, Size: m.Config.Size})
	for i, l := range m.Layers {
		refs = append(refs, refRow{Position: i + 1, Kind: "layer", Digest: l.Digest, MediaType: l.MediaType, Size: l.Size})
	}
	if cfg, ok := p.readConfig(ctx, m.Config); ok {
		row.OS, row.Architecture, row.Variant = cfg.OS, cfg.Architecture, cfg.Variant
		row.Labels = jsonMap(cfg.Config.Labels)
	}
	return row, refs
}

// readConfig reads an image config blob for its platform and labels. It is
// best effort: a config that is missing, large or not JSON is skipped (the
// push then fails on the missing blob, or succeeds without the details).
func (p *Plugin) readConfig(ctx context.Context, cfg *descriptor) (imageConfig, bool) {
	var out imageConfig
	if !isImageConfigType(cfg.MediaType) || cfg.Size > maxConfigSize {
		return out, false
	}
	f, _, err := p.blobs.Open(ctx, digest.Digest(cfg.Digest))
	if err != nil {
		if !errors.Is(err, storage.ErrNotFound) {
			p.log.Warn("cannot read image config", "digest", cfg.Digest, "err", err)
		}
		return out, false
	}
	defer f.Close()
	if err := json.NewDecoder(io.LimitReader(f, maxConfigSize)).Decode(&out); err != nil {
		p.log.Debug("image config is not readable JSON", "digest", cfg.Digest, "err", err)
		return imageConfig{}, false
	}
	return out, true
}

// maxAnnotationsCopy bounds the copy of a manifest's annotations kept beside
// its bytes. Larger annotations (the spec allows manifests of megabytes) are
// stored as "" and read from the manifest itself when needed.
const maxAnnotationsCopy = 64 << 10

func annotationsCopy(m map[string]string) string {
	s := jsonMap(m)
	if len(s) > maxAnnotationsCopy {
		return ""
	}
	return s
}

func jsonMap(m map[string]string) string {
	if len(m) == 0 {
		return "{}"
	}
	b, err := json.Marshal(m)
	if err != nil {
		return "{}"
	}
	return string(b)
}
