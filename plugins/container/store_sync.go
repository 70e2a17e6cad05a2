package container

import (
	"context"
	"slices"

	"github.com/berth-dev/berth/core"
)

// The SQL of syncs (sync.go) and on_demand pulls (ondemand.go).

// versionTags maps the tags of a version to the digests of their manifests.
func versionTags(ctx context.Context, s *core.Store, repoID string, version int) (map[string]string, error) {
	cond, args := inVersion(repoID, version)
	var rows []struct {
		Name   string
		Digest string
	}
	err := s.DB(ctx).Raw(`SELECT t.name AS name, m.digest AS digest FROM container_tags t
		JOIN repository_contents rc ON rc.content_id = t.content_id
		JOIN container_manifests m ON m.content_id = t.manifest_id
		WHERE `+cond, args...).Scan(&rows).Error
	if err != nil {
		return nil, core.Translate(err)
	}
	out := make(map[string]string, len(rows))
	for _, r := range rows {
		out[r.Name] = r.Digest
	}
	return out, nil
}

// versionManifests is the set of manifest digests of a version.
func versionManifests(ctx context.Context, s *core.Store, repoID string, version int) (map[string]bool, error) {
	cond, args := inVersion(repoID, version)
	var digests []string
	err := s.DB(ctx).Raw(`SELECT m.digest FROM container_manifests m
		JOIN repository_contents rc ON rc.content_id = m.content_id
		WHERE `+cond, args...).Scan(&digests).Error
	if err != nil {
		return nil, core.Translate(err)
	}
	out := make(map[string]bool, len(digests))
	for _, d := range digests {
		out[d] = true
	}
	return out, nil
}

// knownManifests loads the bytes of the manifests among digests that the
// registry stores already (in any repository).
func knownManifests(ctx context.Context, s *core.Store, digests []string) (map[string]manifestData, error) {
	out := map[string]manifestData{}
	for chunk := range slices.Chunk(digests, 500) {
		var rows []struct {
			Digest    string
			MediaType string
			Data      []byte
		}
		if err := s.DB(ctx).Raw(`SELECT digest, media_type, data FROM container_manifests WHERE digest IN ?`, chunk).Scan(&rows).Error; err != nil {
			return nil, core.Translate(err)
		}
		for _, r := range rows {
			out[r.Digest] = manifestData{MediaType: r.MediaType, Data: r.Data}
		}
	}
	return out, nil
}

// blobState is what the database knows of a blob: its content and whether
// its file was downloaded (an artifact is attached).
type blobState struct {
	ContentID  string
	Size       int64
	Downloaded bool
}

// blobStates looks up blobs by digest.
func blobStates(ctx context.Context, s *core.Store, digests []string) (map[string]blobState, error) {
	out := map[string]blobState{}
	for chunk := range slices.Chunk(digests, 500) {
		var rows []struct {
			Digest     string
			ContentID  string
			Size       int64
			ArtifactID *string
		}
		err := s.DB(ctx).Raw(`SELECT b.digest AS digest, b.content_id AS content_id, b.size AS size, ca.artifact_id AS artifact_id
			FROM container_blobs b LEFT JOIN content_artifacts ca ON ca.content_id = b.content_id
			WHERE b.digest IN ?`, chunk).Scan(&rows).Error
		if err != nil {
			return nil, core.Translate(err)
		}
		for _, r := range rows {
			st := out[r.Digest]
			st.ContentID, st.Size = r.ContentID, r.Size
			st.Downloaded = st.Downloaded || r.ArtifactID != nil
			out[r.Digest] = st
		}
	}
	return out, nil
}

// blobRef is a blob to fetch.
type blobRef struct {
	Digest string
	Size   int64
	Config bool // an image config (fetched even by on_demand syncs)
}

// lazyVersionBlobs lists the blobs of a version whose file was never
// downloaded (an on_demand sync recorded them).
func lazyVersionBlobs(ctx context.Context, s *core.Store, repoID string, version int) ([]blobRef, error) {
	cond, args := inVersion(repoID, version)
	var rows []blobRef
	err := s.DB(ctx).Raw(`SELECT b.digest AS digest, b.size AS size FROM container_blobs b
		JOIN repository_contents rc ON rc.content_id = b.content_id
		WHERE `+cond+` AND NOT EXISTS (
		  SELECT 1 FROM content_artifacts ca WHERE ca.content_id = b.content_id AND ca.artifact_id IS NOT NULL)`, args...).Scan(&rows).Error
	return rows, core.Translate(err)
}

// recordSyncedBlob records blob d as content (once) and either attaches its
// artifact (downloaded) or notes the file as not yet downloaded together
// with where to fetch it (remoteID, upstreamName), in one transaction.
func recordSyncedBlob(ctx context.Context, s *core.Store, d string, size int64, downloaded bool, remoteID, upstreamName string) error {
	return s.Tx(ctx, func(tx *core.Store) error {
		c, created, err := tx.GetOrCreateContent(ctx, TypeBlob, d)
		if err != nil {
			return err
		}
		if created {
			if err := core.Translate(tx.DB(ctx).Exec(`INSERT INTO container_blobs (content_id, digest, size) VALUES (?, ?, ?)
				ON CONFLICT DO NOTHING`, c.ID, d, size).Error); err != nil {
				return err
			}
		}
		if downloaded {
			a, _, err := tx.GetOrCreateArtifact(ctx, d, size)
			if err != nil {
				return err
			}
			return tx.AttachArtifact(ctx, c.ID, d, &a.ID)
		}
		if err := tx.AttachArtifact(ctx, c.ID, d, nil); err != nil {
			return err
		}
		return core.Translate(tx.DB(ctx).Exec(`INSERT INTO container_blob_sources (blob_id, remote_id, upstream_name) VALUES (?, ?, ?)
			ON CONFLICT (blob_id, remote_id) DO UPDATE SET upstream_name = excluded.upstream_name`, c.ID, remoteID, upstreamName).Error)
	})
}

// manifestIDs maps manifest digests to content IDs.
func manifestIDs(ctx context.Context, s *core.Store, digests []string) (map[string]string, error) {
	out := map[string]string{}
	for chunk := range slices.Chunk(digests, 500) {
		var rows []struct {
			Digest    string
			ContentID string
		}
		if err := s.DB(ctx).Raw(`SELECT digest, content_id FROM container_manifests WHERE digest IN ?`, chunk).Scan(&rows).Error; err != nil {
			return nil, core.Translate(err)
		}
		for _, r := range rows {
			out[r.Digest] = r.ContentID
		}
	}
	return out, nil
}

// closureRef is one reference of a manifest, as the closure walks them.
type closureRef struct {
	ManifestID string
	Kind       string
	Digest     string
	MediaType  string
}

// manifestClosure finds everything the manifests roots (content IDs)
// reference, transitively: the content IDs of the manifests (roots
// included) and of the blobs. Blobs the database does not know are listed
// in missing with the manifest referencing them (foreign layers may be
// missing).
func manifestClosure(ctx context.Context, s *core.Store, roots []string) (manifests, blobs map[string]bool, missing []closureRef, err error) {
	manifests, blobs = map[string]bool{}, map[string]bool{}
	next := slices.Clone(roots)
	for _, id := range roots {
		manifests[id] = true
	}
	for len(next) > 0 {
		var refs []closureRef
		for chunk := range slices.Chunk(next, 500) {
			var part []closureRef
			if err := s.DB(ctx).Raw(`SELECT manifest_id, kind, digest, media_type FROM container_manifest_refs WHERE manifest_id IN ?`, chunk).
				Scan(&part).Error; err != nil {
				return nil, nil, nil, core.Translate(err)
			}
			refs = append(refs, part...)
		}
		next = nil
		var childDigests, blobDigests []string
		for _, r := range refs {
			if r.Kind == "manifest" {
				childDigests = append(childDigests, r.Digest)
			} else {
				blobDigests = append(blobDigests, r.Digest)
			}
		}
		children, err := manifestIDs(ctx, s, childDigests)
		if err != nil {
			return nil, nil, nil, err
		}
		states, err := blobStates(ctx, s, blobDigests)
		if err != nil {
			return nil, nil, nil, err
		}
		for _, r := range refs {
			switch {
			case r.Kind == "manifest":
				id, ok := children[r.Digest]
				if !ok {
					missing = append(missing, r)
				} else if !manifests[id] {
					manifests[id] = true
					next = append(next, id)
				}
			default:
				if st, ok := states[r.Digest]; ok {
					blobs[st.ContentID] = true
				} else {
					missing = append(missing, r)
				}
			}
		}
	}
	return manifests, blobs, missing, nil
}

// blobSource is where to fetch a blob recorded without its file.
type blobSource struct {
	ContentID    string
	Size         int64
	RemoteID     string
	UpstreamName string
}

// blobSources lists the sources of blob d, those of remoteID first.
func blobSources(ctx context.Context, s *core.Store, d, remoteID string) ([]blobSource, error) {
	var rows []blobSource
	err := s.DB(ctx).Raw(`SELECT b.content_id AS content_id, b.size AS size, src.remote_id AS remote_id, src.upstream_name AS upstream_name
		FROM container_blobs b JOIN container_blob_sources src ON src.blob_id = b.content_id
		WHERE b.digest = ? ORDER BY CASE WHEN src.remote_id = ? THEN 0 ELSE 1 END, src.remote_id`, d, remoteID).Scan(&rows).Error
	return rows, core.Translate(err)
}

// repositoryRemote is the remote a repository syncs from ("" if none).
func repositoryRemote(ctx context.Context, s *core.Store, repoID string) (string, error) {
	var ids []*string
	err := s.DB(ctx).Raw(`SELECT remote_id FROM repositories WHERE id = ?`, repoID).Scan(&ids).Error
	if err != nil || len(ids) == 0 || ids[0] == nil {
		return "", core.Translate(err)
	}
	return *ids[0], nil
}

// attachDownloaded records that the file of blob content contentID is now
// stored (an on_demand blob was fetched).
func attachDownloaded(ctx context.Context, s *core.Store, contentID, d string, size int64) error {
	return s.Tx(ctx, func(tx *core.Store) error {
		a, _, err := tx.GetOrCreateArtifact(ctx, d, size)
		if err != nil {
			return err
		}
		return tx.AttachArtifact(ctx, contentID, d, &a.ID)
	})
}
