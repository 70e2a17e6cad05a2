package product

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-dev/berth/core"
	"github.com/berth-dev/berth/plugins/container"
)

// maxConfigRead bounds how much of an image config the layers view reads.
const maxConfigRead = 4 << 20

// ImageDetail is the layers view of one image: its layers and the history
// its config records (the commands that built it).
type ImageDetail struct {
	ImageView
	Layers []LayerView `json:"layers" doc:"The layers, bottom first (empty for an index)."`
	Config *ConfigView `json:"config" doc:"The image config; null for an index or a config the registry cannot read."`
}

// LayerView is one layer of an image.
type LayerView struct {
	Digest    string `json:"digest"`
	MediaType string `json:"media_type"`
	Size      int64  `json:"size"`
}

// ConfigView is what an image config says.
type ConfigView struct {
	Digest       string            `json:"digest"`
	Created      *time.Time        `json:"created"`
	OS           string            `json:"os"`
	Architecture string            `json:"architecture"`
	Env          []string          `json:"env"`
	Entrypoint   []string          `json:"entrypoint"`
	Cmd          []string          `json:"cmd"`
	WorkingDir   string            `json:"working_dir"`
	User         string            `json:"user"`
	Labels       map[string]string `json:"labels"`
	History      []HistoryView     `json:"history"`
}

// HistoryView is one step of an image's build history.
type HistoryView struct {
	Created    *time.Time `json:"created"`
	CreatedBy  string     `json:"created_by" doc:"The command of the step."`
	Comment    string     `json:"comment"`
	EmptyLayer bool       `json:"empty_layer" doc:"The step made no layer (ENV, CMD, …)."`
	// Layer is the digest of the layer the step made, when the steps and
	// layers line up.
	Layer string `json:"layer"`
}

// imageConfig is the part of an OCI/Docker image config the view reads.
type imageConfig struct {
	Created      *time.Time `json:"created"`
	OS           string     `json:"os"`
	Architecture string     `json:"architecture"`
	Config       struct {
		Env        []string          `json:"Env"`
		Entrypoint []string          `json:"Entrypoint"`
		Cmd        []string          `json:"Cmd"`
		WorkingDir string            `json:"WorkingDir"`
		User       string            `json:"User"`
		Labels     map[string]string `json:"Labels"`
	} `json:"config"`
	History []struct {
		Created    *time.Time `json:"created"`
		CreatedBy  string     `json:"created_by"`
		Comment    string     `json:"comment"`
		EmptyLayer bool       `json:"empty_layer"`
	} `json:"history"`
}

// imageDetail builds the layers view of the image d of name.
func (s *Service) imageDetail(ctx context.Context, name string, d digest.Digest) (*ImageDetail, error) {
	list, _, err := s.plugin.ListImageManifests(ctx, name, container.ImageFilter{Digest: d.String()}, container.ListOptions{Limit: 1})
	if err != nil {
		return nil, err
	}
	var view ImageView
	if len(list) == 1 {
		view = s.imageView(name, list[0])
	}
	m, err := s.plugin.GetManifest(ctx, name, d.String())
	if err != nil {
		return nil, err
	}
	if len(list) == 0 { // a platform image of an index: not listed by itself
		view = s.imageView(name, *m)
	}
	out := &ImageDetail{ImageView: view, Layers: []LayerView{}}
	if m.IsIndex {
		return out, nil
	}
	for _, r := range m.References {
		if r.Kind == "layer" {
			out.Layers = append(out.Layers, LayerView{Digest: r.Digest, MediaType: r.MediaType, Size: r.Size})
		}
	}
	if m.ConfigDigest == "" {
		return out, nil
	}
	cfg, err := s.readConfig(ctx, name, digest.Digest(m.ConfigDigest))
	if err != nil {
		return nil, err
	}
	if cfg == nil {
		return out, nil
	}
	cv := &ConfigView{
		Digest: m.ConfigDigest, Created: apiTimePtr(cfg.Created), OS: cfg.OS, Architecture: cfg.Architecture,
		Env: nonNil(cfg.Config.Env), Entrypoint: nonNil(cfg.Config.Entrypoint), Cmd: nonNil(cfg.Config.Cmd),
		WorkingDir: cfg.Config.WorkingDir, User: cfg.Config.User, Labels: cfg.Config.Labels, History: []HistoryView{},
	}
	if cv.Labels == nil {
		cv.Labels = map[string]string{}
	}
	layer := 0
	for _, h := range cfg.History {
		hv := HistoryView{Created: apiTimePtr(h.Created), CreatedBy: h.CreatedBy, Comment: h.Comment, EmptyLayer: h.EmptyLayer}
		if !h.EmptyLayer {
			if layer < len(out.Layers) {
				hv.Layer = out.Layers[layer].Digest
			}
			layer++
		}
		cv.History = append(cv.History, hv)
	}
	out.Config = cv
	return out, nil
}

// readConfig reads an image config through name; nil when it is missing
// or not a JSON image config.
func (s *Service) readConfig(ctx context.Context, name string, d digest.Digest) (*imageConfig, error) {
	f, _, err := s.plugin.OpenBlob(ctx, name, d)
	if errors.Is(err, core.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var cfg imageConfig
	if err := json.NewDecoder(io.LimitReader(f, maxConfigRead)).Decode(&cfg); err != nil {
		s.log.DebugContext(ctx, "image config is not readable JSON", "name", name, "digest", d, "err", err)
		return nil, nil
	}
	return &cfg, nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
