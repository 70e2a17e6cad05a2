package container

import (
	"context"

	"github.com/berth-dev/berth/api"
	"github.com/berth-dev/berth/core"
)

// The plugin's fields on the core's typed objects in the Pulp-shaped REST
// API (api.Extender). Every extension of the plugin is returned here.

var _ api.Extender = (*Plugin)(nil)

// APIExtension returns the plugin's extension of the core's objects of a
// type: container remotes carry upstream_name and tag filters, remote
// registries their use.
func (p *Plugin) APIExtension(kind, typ string) api.Extension {
	switch {
	case kind == "remote" && typ == TypeRemote:
		return remoteExtension{p}
	case kind == "remote" && typ == TypeRegistry:
		return registryExtension{p}
	case kind == "distribution" && typ == TypeDistribution:
		return distributionExtension{p} // rest_distributions.go
	}
	return nil
}

// remoteFields are a container remote's fields beyond the core's, as Pulp's
// container remote has them.
type remoteFields struct {
	UpstreamName string   `json:"upstream_name" api:"required" doc:"The repository's name on the remote registry (alpine becomes library/alpine on Docker Hub)."`
	IncludeTags  []string `json:"include_tags" doc:"Glob patterns (* ? [a-z]) of the tags to sync; null or empty: all tags."`
	ExcludeTags  []string `json:"exclude_tags" doc:"Glob patterns of tags not to sync, applied after include_tags."`
	Registry     *string  `json:"registry" api:"readonly" doc:"Href of the remote registry whose settings this remote copies (remote images), or null."`
}

type remoteExtension struct{ p *Plugin }

func (remoteExtension) NewFields() any { return &remoteFields{} }

func (x remoteExtension) Save(ctx context.Context, tx *core.Store, op api.SaveOp, obj any, fields any, given api.Fields) error {
	r := obj.(*core.Remote)
	f := fields.(*remoteFields)
	if err := checkConfig(tx, r, core.RemoteSecrets{}); err != nil {
		return err
	}
	row, found, err := remoteRowOf(ctx, tx, r.ID)
	if err != nil {
		return err
	}
	if !found {
		row = remoteRow{RemoteID: r.ID, IncludeTags: "[]", ExcludeTags: "[]"}
	}
	if op != api.Update || given.Has("upstream_name") {
		row.UpstreamName = f.UpstreamName
	}
	include, exclude := row.include(), row.exclude()
	if op != api.Update || given.Has("include_tags") {
		include = f.IncludeTags
	}
	if op != api.Update || given.Has("exclude_tags") {
		exclude = f.ExcludeTags
	}
	v := &core.ValidationError{}
	mergeValidation(v, validateUpstreamName(row.UpstreamName))
	mergeValidation(v, validateFilter(include, exclude))
	if err := v.Err(); err != nil {
		return err
	}
	row.IncludeTags, row.ExcludeTags = encodeList(include), encodeList(exclude)
	if !found {
		return insertRemoteRow(ctx, tx, row)
	}
	return updateRemoteRow(ctx, tx, row)
}

func (remoteExtension) Show(ctx context.Context, s *core.Store, ids []string) (map[string]any, error) {
	rows, err := remoteRows(ctx, s, ids)
	if err != nil {
		return nil, err
	}
	out := make(map[string]any, len(rows))
	for id, r := range rows {
		f := &remoteFields{UpstreamName: r.UpstreamName, IncludeTags: r.include(), ExcludeTags: r.exclude()}
		if r.RegistryID != nil {
			h := RegistryHref(*r.RegistryID)
			f.Registry = &h
		}
		out[id] = f
	}
	return out, nil
}

// registryFields are what a remote registry shows beyond the core's fields.
type registryFields struct {
	Images int `json:"images" api:"readonly" doc:"How many remote images use the registry."`
}

type registryExtension struct{ p *Plugin }

func (registryExtension) NewFields() any { return &registryFields{} }

// Save checks the settings and, for an update, gives the registry's remote
// images its new settings, in the core's transaction.
func (x registryExtension) Save(ctx context.Context, tx *core.Store, op api.SaveOp, obj any, _ any, _ api.Fields) error {
	return x.p.saveRegistry(ctx, tx, obj.(*core.Remote), op == api.Create)
}

func (registryExtension) Show(ctx context.Context, s *core.Store, ids []string) (map[string]any, error) {
	rows, err := registryRows(ctx, s, ids)
	if err != nil {
		return nil, err
	}
	out := make(map[string]any, len(rows))
	for id, r := range rows {
		out[id] = &registryFields{Images: r.Images}
	}
	return out, nil
}
