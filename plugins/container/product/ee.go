package product

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"time"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/core"
	"github.com/berth-dev/berth/plugins/container"
)

// The execution-environment views: what the handlers of ee_routes.go show.

// EEView is an execution environment.
type EEView struct {
	Href         string    `json:"href" api:"readonly"`
	Name         string    `json:"name" doc:"The image name, as pulled: [namespace/]name."`
	Namespace    string    `json:"namespace"`
	Description  string    `json:"description"`
	Private      bool      `json:"private" doc:"Pulls need a role on the namespace."`
	Repository   *string   `json:"repository" doc:"Href of the repository (Pulp API)."`
	Distribution string    `json:"distribution" doc:"Href of the distribution (Pulp API)."`
	Pull         *PullView `json:"pull" doc:"How to pull the latest tag; null when the image has no tag."`
	// Remote is set for a mirrored (remote) execution environment.
	Remote    *RemoteView `json:"remote" doc:"The remote a mirrored execution environment syncs from; null for a local one."`
	CreatedAt time.Time   `json:"created_at"`
	UpdatedAt time.Time   `json:"updated_at"`
}

// EEDetail is an execution environment with its links.
type EEDetail struct {
	EEView
	// UseInController links into each configured controller with the
	// latest tag's pull string prefilled.
	UseInController []ControllerLink `json:"use_in_controller"`
	Links           EELinks          `json:"links"`
}

// EELinks are the addresses of an execution environment's parts.
type EELinks struct {
	Readme   string `json:"readme"`
	Images   string `json:"images"`
	Tags     string `json:"tags"`
	Activity string `json:"activity"`
}

// PullView says how to pull an image.
type PullView struct {
	Tag      string `json:"tag"`
	Digest   string `json:"digest"`
	ByTag    string `json:"by_tag" doc:"host/name:tag"`
	ByDigest string `json:"by_digest" doc:"host/name@sha256:…"`
}

// RemoteView is the remote of a mirrored execution environment.
type RemoteView struct {
	Href         string    `json:"href" doc:"Href of the remote (Pulp API)."`
	Name         string    `json:"name"`
	URL          string    `json:"url"`
	UpstreamName string    `json:"upstream_name"`
	LastSync     *SyncInfo `json:"last_sync" doc:"The newest sync; null when never synced (or syncs are not known to this server)."`
}

// ControllerLink opens a controller's "add execution environment" form with
// the image prefilled.
type ControllerLink struct {
	Controller string `json:"controller"`
	URL        string `json:"url"`
	Image      string `json:"image"`
}

// eeView renders an execution environment.
func (s *Service) eeView(ctx context.Context, ee *container.ExecutionEnvironment) (EEView, error) {
	v := EEView{
		Href: eeHref(ee.Name), Name: ee.Name, Namespace: ee.Namespace, Description: ee.Description, Private: ee.Private,
		Distribution: api.DistributionHref(container.TypeDistribution, ee.DistributionID),
		CreatedAt:    apiTime(ee.CreatedAt), UpdatedAt: apiTime(ee.UpdatedAt),
	}
	if ee.RepositoryID != "" {
		h := api.RepositoryHref(container.TypeRepository, ee.RepositoryID)
		v.Repository = &h
	}
	tag, found, err := s.plugin.LatestTag(ctx, ee.Name)
	if err != nil {
		return v, err
	}
	if found {
		pv := s.pull(ee.Name, tag.Name, tag.Digest)
		v.Pull = &pv
	}
	if ee.RemoteID != "" {
		rv, err := s.remoteView(ctx, ee)
		if err != nil {
			return v, err
		}
		v.Remote = rv
	}
	return v, nil
}

func (s *Service) remoteView(ctx context.Context, ee *container.ExecutionEnvironment) (*RemoteView, error) {
	r, err := s.store.Remote(ctx, ee.RemoteID)
	if errors.Is(err, core.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	rv := &RemoteView{Href: api.RemoteHref(r.Type, r.ID), Name: r.Name, URL: r.URL}
	if s.syncs != nil {
		if rv.UpstreamName, err = s.syncs.UpstreamName(ctx, r.ID); err != nil {
			return nil, err
		}
		if ee.RepositoryID != "" {
			if rv.LastSync, err = s.syncs.LastSync(ctx, ee.RepositoryID); err != nil {
				return nil, err
			}
		}
	}
	return rv, nil
}

// pull is how to pull name by tag and by digest.
func (s *Service) pull(name, tag, digest string) PullView {
	pv := PullView{Tag: tag, Digest: digest, ByDigest: s.pullName(name) + "@" + digest}
	if tag != "" {
		pv.ByTag = s.pullName(name) + ":" + tag
	}
	return pv
}

// controllerLinks links each controller's form to add an execution
// environment, with image prefilled (as ansible-hub-ui's "Use in
// Controller" does).
func (s *Service) controllerLinks(image string) []ControllerLink {
	out := make([]ControllerLink, 0, len(s.controllers))
	for _, c := range s.controllers {
		out = append(out, ControllerLink{
			Controller: c, Image: image,
			URL: strings.TrimRight(c, "/") + "/#/execution_environments/add?image=" + url.QueryEscape(image),
		})
	}
	return out
}

// ImageView is an image of an execution environment: a manifest of its
// latest version that is tagged or that no index lists.
type ImageView struct {
	Href         string         `json:"href" doc:"The image's layers view."`
	Digest       string         `json:"digest"`
	MediaType    string         `json:"media_type"`
	Size         int64          `json:"size"`
	IsIndex      bool           `json:"is_index" doc:"A multi-arch index: its platform images are listed in platforms."`
	Tags         []string       `json:"tags"`
	OS           string         `json:"os"`
	Architecture string         `json:"architecture"`
	Variant      string         `json:"variant"`
	CreatedAt    time.Time      `json:"created_at" doc:"When the registry first stored the manifest."`
	Pull         string         `json:"pull" doc:"host/name@digest"`
	Platforms    []PlatformView `json:"platforms" doc:"The platform images of a multi-arch index (empty otherwise)."`
}

// PlatformView is one platform image of a multi-arch index.
type PlatformView struct {
	Href         string `json:"href" doc:"The platform image's layers view."`
	Digest       string `json:"digest"`
	MediaType    string `json:"media_type"`
	Size         int64  `json:"size"`
	OS           string `json:"os"`
	Architecture string `json:"architecture"`
	Variant      string `json:"variant"`
}

func (s *Service) imageView(name string, m container.ManifestInfo) ImageView {
	v := ImageView{
		Href: eeContentHref(name, "images", m.Digest), Digest: m.Digest, MediaType: m.MediaType, Size: m.Size,
		IsIndex: m.IsIndex, Tags: m.Tags, OS: m.OS, Architecture: m.Architecture, Variant: m.Variant,
		CreatedAt: apiTime(m.CreatedAt), Pull: s.pullName(name) + "@" + m.Digest, Platforms: []PlatformView{},
	}
	if v.Tags == nil {
		v.Tags = []string{}
	}
	for _, r := range m.References {
		if r.Kind != "manifest" {
			continue
		}
		v.Platforms = append(v.Platforms, PlatformView{
			Href: eeContentHref(name, "images", r.Digest), Digest: r.Digest, MediaType: r.MediaType, Size: r.Size,
			OS: r.OS, Architecture: r.Architecture, Variant: r.Variant,
		})
	}
	return v
}

// ActivityView is what one repository version changed.
type ActivityView struct {
	Version   int          `json:"version"`
	CreatedAt time.Time    `json:"created_at"`
	CreatedBy string       `json:"created_by" doc:"Who made the change (empty for anonymous or system changes)."`
	Added     []ChangeView `json:"added"`
	Removed   []ChangeView `json:"removed"`
}

// ChangeView is a tag or manifest added or removed.
type ChangeView struct {
	Kind   string `json:"kind" enum:"tag,manifest"`
	Tag    string `json:"tag" doc:"The tag (empty for a manifest)."`
	Digest string `json:"digest"`
	Href   string `json:"href" doc:"The image's layers view."`
}

func activityView(name string, a container.VersionActivity) ActivityView {
	conv := func(cs []container.Change) []ChangeView {
		out := make([]ChangeView, len(cs))
		for i, c := range cs {
			out[i] = ChangeView{Kind: c.Kind, Tag: c.Tag, Digest: c.Digest, Href: eeContentHref(name, "images", c.Digest)}
		}
		return out
	}
	return ActivityView{Version: a.Number, CreatedAt: apiTime(a.CreatedAt), CreatedBy: a.CreatedBy, Added: conv(a.Added), Removed: conv(a.Removed)}
}
