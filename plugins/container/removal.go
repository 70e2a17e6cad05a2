package container

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"time"

	"github.com/berth-dev/berth/core"
)

// Removal plans: what leaves a repository version when the client removes
// some of its content, so that what stays stays whole. The rules (Pulp's
// recursive removal of container content):
//
//   - removing a tag removes only the tag;
//   - removing a manifest removes every tag naming it and the manifests
//     whose subject it is (signatures, SBOMs);
//   - removing an index removes the manifests it lists, unless a tag or
//     another index that stays names them;
//   - the blobs of removed manifests go, unless a manifest that stays
//     references them; a blob removed by name stays while a manifest that
//     stays references it;
//   - a manifest an index that stays lists is never removed: it is kept,
//     with its tags, and the plan says why.
//
// A plan is computed from a snapshot of the version in memory, in the
// transaction that makes the new version (or, for a dry run, from the
// latest version), so a dry run and the real run of the same request on an
// unchanged repository agree.

// snapshot is the container content of one repository version.
type snapshot struct {
	tags      map[string]*snapTag      // content ID → tag
	manifests map[string]*snapManifest // content ID → manifest
	blobs     map[string]*snapBlob     // content ID → blob

	manifestByDigest map[string]string // digest → content ID
	blobByDigest     map[string]string
	tagsOf           map[string][]string // manifest ID → tag IDs
	listedBy         map[string][]string // manifest ID → IDs of the indexes listing it
	referrers        map[string][]string // manifest ID → IDs of manifests whose subject it is
	usersOf          map[string][]string // blob ID → IDs of manifests referencing it
}

type snapTag struct {
	ID, Name, ManifestID string
	Created              time.Time
}

type snapManifest struct {
	ID, Digest string
	IsIndex    bool
	Subject    string // digest, "" if none
	Created    time.Time
	Children   []string // digests of listed manifests (indexes)
	Blobs      []string // digests of config and layers (images)
}

type snapBlob struct {
	ID, Digest string
	Size       int64
	Created    time.Time
}

// index builds the snapshot's lookup maps.
func (s *snapshot) index() {
	s.manifestByDigest = map[string]string{}
	s.blobByDigest = map[string]string{}
	s.tagsOf = map[string][]string{}
	s.listedBy = map[string][]string{}
	s.referrers = map[string][]string{}
	s.usersOf = map[string][]string{}
	for id, m := range s.manifests {
		s.manifestByDigest[m.Digest] = id
	}
	for id, b := range s.blobs {
		s.blobByDigest[b.Digest] = id
	}
	for id, t := range s.tags {
		s.tagsOf[t.ManifestID] = append(s.tagsOf[t.ManifestID], id)
	}
	for id, m := range s.manifests {
		for _, c := range m.Children {
			if cid, ok := s.manifestByDigest[c]; ok {
				s.listedBy[cid] = append(s.listedBy[cid], id)
			}
		}
		if sid, ok := s.manifestByDigest[m.Subject]; ok && m.Subject != "" {
			s.referrers[sid] = append(s.referrers[sid], id)
		}
		for _, b := range m.Blobs {
			if bid, ok := s.blobByDigest[b]; ok {
				s.usersOf[bid] = append(s.usersOf[bid], id)
			}
		}
	}
}

// removal is a request to remove content, in the snapshot's terms.
type removal struct {
	tags      map[string]bool // tag IDs removed alone
	manifests map[string]bool // manifest IDs removed with their tags
	blobs     map[string]bool // blob IDs
	// protectReferrers keeps a manifest whose subject stays (retention:
	// an old signature of a kept image is not "untagged garbage").
	protectReferrers bool
}

func newRemoval() *removal {
	return &removal{tags: map[string]bool{}, manifests: map[string]bool{}, blobs: map[string]bool{}}
}

// plan is what a removal takes out of the version.
type plan struct {
	tags, manifests, blobs map[string]bool
	// kept are manifests and blobs asked for that stay, with the reason.
	kept map[string]string
}

// plan computes the closure of r over the snapshot (see the rules above).
func (s *snapshot) plan(r *removal) *plan {
	pinned := map[string]string{}
	for {
		p := s.closure(r, pinned)
		grew := false
		for id := range p.manifests {
			for _, idx := range s.listedBy[id] {
				if !p.manifests[idx] {
					pinned[id] = fmt.Sprintf("listed by index %s, which stays", s.manifests[idx].Digest)
					grew = true
					break
				}
			}
			if pinned[id] != "" {
				continue
			}
			if r.protectReferrers {
				if sid, ok := s.manifestByDigest[s.manifests[id].Subject]; ok && s.manifests[id].Subject != "" && !p.manifests[sid] {
					pinned[id] = fmt.Sprintf("refers to %s, which stays", s.manifests[sid].Digest)
					grew = true
				}
			}
		}
		if !grew {
			for id, why := range pinned {
				if r.manifests[id] {
					p.kept[id] = why
				}
			}
			return p
		}
	}
}

// closure removes the requested manifests (but the pinned ones) with their
// tags, referrers and unneeded children, then their unneeded blobs.
func (s *snapshot) closure(r *removal, pinned map[string]string) *plan {
	p := &plan{tags: map[string]bool{}, manifests: map[string]bool{}, blobs: map[string]bool{}, kept: map[string]string{}}
	for id := range r.tags {
		p.tags[id] = true
	}
	var queue []string
	add := func(id string) {
		if _, pin := pinned[id]; pin || p.manifests[id] {
			return
		}
		p.manifests[id] = true
		queue = append(queue, id)
	}
	for id := range r.manifests {
		add(id)
	}
	for changed := true; changed; {
		changed = false
		for len(queue) > 0 {
			id := queue[0]
			queue = queue[1:]
			changed = true
			for _, t := range s.tagsOf[id] {
				p.tags[t] = true
			}
			for _, ref := range s.referrers[id] {
				add(ref)
			}
		}
		// Children of removed indexes, once nothing that stays names them.
		for id := range p.manifests {
			m := s.manifests[id]
			if !m.IsIndex {
				continue
			}
			for _, c := range m.Children {
				cid, ok := s.manifestByDigest[c]
				if !ok || p.manifests[cid] || s.namedByRemaining(cid, p) {
					continue
				}
				add(cid)
			}
		}
		if len(queue) > 0 {
			changed = true
		}
	}
	// Blobs: of removed manifests, and asked for; unless a manifest that
	// stays references them.
	cand := map[string]bool{}
	for id := range r.blobs {
		cand[id] = true
	}
	for id := range p.manifests {
		for _, d := range s.manifests[id].Blobs {
			if bid, ok := s.blobByDigest[d]; ok {
				cand[bid] = true
			}
		}
	}
	for bid := range cand {
		var user string
		for _, m := range s.usersOf[bid] {
			if !p.manifests[m] {
				user = m
				break
			}
		}
		if user == "" {
			p.blobs[bid] = true
		} else if r.blobs[bid] {
			p.kept[bid] = fmt.Sprintf("referenced by manifest %s, which stays", s.manifests[user].Digest)
		}
	}
	return p
}

// namedByRemaining reports whether a tag or an index that stays in p names
// manifest id.
func (s *snapshot) namedByRemaining(id string, p *plan) bool {
	for _, t := range s.tagsOf[id] {
		if !p.tags[t] {
			return true
		}
	}
	for _, idx := range s.listedBy[id] {
		if !p.manifests[idx] {
			return true
		}
	}
	return false
}

// ids lists the content IDs a plan removes.
func (p *plan) ids() []string {
	out := make([]string, 0, len(p.tags)+len(p.manifests)+len(p.blobs))
	for _, m := range []map[string]bool{p.tags, p.manifests, p.blobs} {
		for id := range m {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

// RemovedTag is a tag a removal took out, with the manifest it named.
type RemovedTag struct {
	Name   string `json:"name"`
	Digest string `json:"digest"`
}

// KeptContent is content a request asked to remove that stayed.
type KeptContent struct {
	Digest string `json:"digest"`
	Reason string `json:"reason"`
}

// RemovalReport says what a removal (or a retention run) took out of a
// repository, or would have for a dry run.
type RemovalReport struct {
	// Repository is the repository's name.
	Repository string `json:"repository"`
	// DryRun: nothing was changed; the lists say what would go.
	DryRun bool `json:"dry_run"`
	// Version is the number of the version made, or of the latest version
	// when nothing changed (Created false).
	Version int  `json:"version"`
	Created bool `json:"created"`
	// Tags, Manifests and Blobs are what left (would leave) the version,
	// sorted; Bytes is the size of those blobs.
	Tags      []RemovedTag  `json:"tags"`
	Manifests []string      `json:"manifests"`
	Blobs     []string      `json:"blobs"`
	Bytes     int64         `json:"bytes"`
	Kept      []KeptContent `json:"kept"`

	repoID string
}

// report renders a plan.
func (s *snapshot) report(p *plan) *RemovalReport {
	r := &RemovalReport{Tags: []RemovedTag{}, Manifests: []string{}, Blobs: []string{}, Kept: []KeptContent{}}
	for id := range p.tags {
		t := s.tags[id]
		d := ""
		if m, ok := s.manifests[t.ManifestID]; ok {
			d = m.Digest
		}
		r.Tags = append(r.Tags, RemovedTag{Name: t.Name, Digest: d})
	}
	sort.Slice(r.Tags, func(i, j int) bool {
		if r.Tags[i].Name != r.Tags[j].Name {
			return r.Tags[i].Name < r.Tags[j].Name
		}
		return r.Tags[i].Digest < r.Tags[j].Digest
	})
	for id := range p.manifests {
		r.Manifests = append(r.Manifests, s.manifests[id].Digest)
	}
	slices.Sort(r.Manifests)
	for id := range p.blobs {
		r.Blobs = append(r.Blobs, s.blobs[id].Digest)
		r.Bytes += s.blobs[id].Size
	}
	slices.Sort(r.Blobs)
	for id, why := range p.kept {
		d := ""
		if m, ok := s.manifests[id]; ok {
			d = m.Digest
		} else if b, ok := s.blobs[id]; ok {
			d = b.Digest
		}
		r.Kept = append(r.Kept, KeptContent{Digest: d, Reason: why})
	}
	sort.Slice(r.Kept, func(i, j int) bool { return r.Kept[i].Digest < r.Kept[j].Digest })
	return r
}

// RetentionPolicy says which images of a repository to keep. Tags matching
// TagPattern beyond the newest KeepTags are removed (the tags only); then,
// when UntaggedOlderThanDays is set, manifests that no tag names, no index
// that stays lists and whose subject (if any) is gone, pushed more than
// that many days ago, are removed with their blobs, and so are blobs no
// manifest references that old. A manifest a tag or an index still
// references is never removed.
type RetentionPolicy struct {
	// KeepTags is how many of the matching tags to keep, newest first
	// (by when the tag was pushed); nil keeps every tag.
	KeepTags *int `json:"keep_tags" doc:"How many of the tags matching tag_pattern to keep, newest first; null keeps every tag."`
	// TagPattern is a regular expression a whole tag must match to count;
	// empty matches every tag.
	TagPattern string `json:"tag_pattern" doc:"Regular expression a whole tag must match to be subject to keep_tags; empty matches all tags."`
	// UntaggedOlderThanDays removes untagged manifests pushed that many
	// days ago or earlier (0: every untagged manifest); nil keeps them.
	UntaggedOlderThanDays *int `json:"untagged_older_than_days" doc:"Remove manifests that nothing names (no tag, no index that stays) pushed at least this many days ago, with their blobs; null keeps them."`
}

// Validate checks the policy; errors name the fields.
func (rp *RetentionPolicy) Validate() error {
	v := &core.ValidationError{}
	if rp.KeepTags != nil && *rp.KeepTags < 0 {
		v.Add("keep_tags", "must not be negative")
	}
	if rp.UntaggedOlderThanDays != nil && *rp.UntaggedOlderThanDays < 0 {
		v.Add("untagged_older_than_days", "must not be negative")
	}
	if rp.TagPattern != "" {
		if len(rp.TagPattern) > 1000 {
			v.Add("tag_pattern", "must be at most 1000 characters")
		} else if _, err := regexp.Compile(rp.TagPattern); err != nil {
			v.Add("tag_pattern", "not a regular expression: %v", err)
		}
	}
	if rp.KeepTags == nil && rp.UntaggedOlderThanDays == nil {
		v.Add("non_field_errors", "give keep_tags, untagged_older_than_days or both")
	}
	return v.Err()
}

// retention turns the policy into a removal over the snapshot, as of now.
func (s *snapshot) retention(rp RetentionPolicy, now time.Time) *removal {
	r := newRemoval()
	r.protectReferrers = true
	if rp.KeepTags != nil {
		re := regexp.MustCompile(`^(?:` + rp.TagPattern + `)$`) // validated
		var match []*snapTag
		for _, t := range s.tags {
			if re.MatchString(t.Name) {
				match = append(match, t)
			}
		}
		sort.Slice(match, func(i, j int) bool {
			if !match[i].Created.Equal(match[j].Created) {
				return match[i].Created.After(match[j].Created)
			}
			return match[i].Name > match[j].Name
		})
		for i, t := range match {
			if i >= *rp.KeepTags {
				r.tags[t.ID] = true
			}
		}
	}
	if rp.UntaggedOlderThanDays != nil {
		cutoff := now.Add(-time.Duration(*rp.UntaggedOlderThanDays) * 24 * time.Hour)
		for id, m := range s.manifests {
			if m.Created.After(cutoff) {
				continue
			}
			tagged := false
			for _, t := range s.tagsOf[id] {
				if !r.tags[t] {
					tagged = true
					break
				}
			}
			if !tagged {
				r.manifests[id] = true
			}
		}
		for id, b := range s.blobs {
			if len(s.usersOf[id]) == 0 && !b.Created.After(cutoff) {
				r.blobs[id] = true
			}
		}
	}
	return r
}
