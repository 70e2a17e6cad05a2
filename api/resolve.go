package api

import (
	"context"
	"errors"
	"strings"

	"github.com/berth-dev/berth/core"
)

// Kinds of core.Registry types.
const (
	kindRepository   = "repository"
	kindRemote       = "remote"
	kindDistribution = "distribution"
)

// pluginOf is the plugin part of a type name ("container" of
// "container.container").
func pluginOf(typ string) string {
	p, _, _ := strings.Cut(typ, ".")
	return p
}

// hrefError is the validation error of a body field holding a bad href.
func hrefError(field, msg string) error { return core.Invalid(field, "%s", msg) }

// notFoundAs turns "the object does not exist" into a validation error of
// field; other errors (the database failing) pass through.
func notFoundAs(err error, field string) error {
	if errors.Is(err, core.ErrNotFound) {
		return hrefError(field, msgDoesNotExist)
	}
	return err
}

// repositoryFromHref finds the repository a body field names. plugin, when
// not empty, is the plugin the repository must belong to.
func (s *Server) repositoryFromHref(ctx context.Context, field, href, plugin string) (*core.Repository, error) {
	ref, err := ParseHref(href)
	if err != nil || ref.Collection != Repositories || ref.IsVersion() || !s.registry.Known(kindRepository, ref.Type) {
		return nil, hrefError(field, msgNoURLMatch)
	}
	repo, err := s.store.Repository(ctx, ref.ID)
	if err != nil {
		return nil, notFoundAs(err, field)
	}
	if repo.Type != ref.Type || (plugin != "" && pluginOf(repo.Type) != plugin) {
		return nil, hrefError(field, msgDoesNotExist)
	}
	return repo, nil
}

// versionFromHref finds the repository version a body field names.
func (s *Server) versionFromHref(ctx context.Context, field, href, plugin string) (*core.Repository, *core.RepositoryVersion, error) {
	ref, err := ParseHref(href)
	if err != nil || ref.Collection != Repositories || !ref.IsVersion() || !s.registry.Known(kindRepository, ref.Type) {
		return nil, nil, hrefError(field, msgNoURLMatch)
	}
	repo, err := s.store.Repository(ctx, ref.ID)
	if err != nil {
		return nil, nil, notFoundAs(err, field)
	}
	if repo.Type != ref.Type || (plugin != "" && pluginOf(repo.Type) != plugin) {
		return nil, nil, hrefError(field, msgDoesNotExist)
	}
	v, err := s.store.Version(ctx, repo.ID, ref.Version)
	if err != nil {
		return nil, nil, notFoundAs(err, field)
	}
	return repo, v, nil
}

// remoteFromHref finds the remote a body field names.
func (s *Server) remoteFromHref(ctx context.Context, field, href, plugin string) (*core.Remote, error) {
	ref, err := ParseHref(href)
	if err != nil || ref.Collection != Remotes || ref.IsVersion() || !s.registry.Known(kindRemote, ref.Type) {
		return nil, hrefError(field, msgNoURLMatch)
	}
	r, err := s.store.Remote(ctx, ref.ID)
	if err != nil {
		return nil, notFoundAs(err, field)
	}
	if r.Type != ref.Type || (plugin != "" && pluginOf(r.Type) != plugin) {
		return nil, hrefError(field, msgDoesNotExist)
	}
	return r, nil
}

// hrefResolver returns a list filter's resolver of hrefs of a collection
// to IDs (checking only the form: a filter on an object that does not
// exist simply selects nothing).
func hrefResolver(collection string) func(context.Context, string) (any, error) {
	return func(_ context.Context, v string) (any, error) {
		ref, err := ParseHref(v)
		if err != nil {
			return nil, err
		}
		if ref.Collection != collection || ref.IsVersion() || ref.Type == "" {
			return nil, core.Invalid(collection, "%s", msgNoURLMatch)
		}
		return ref.ID, nil
	}
}

// repositoryTypes maps repository IDs to their types, in one query.
func (s *Server) repositoryTypes(ctx context.Context, ids []string) (map[string]string, error) {
	out := map[string]string{}
	ids = uniq(ids)
	if len(ids) == 0 {
		return out, nil
	}
	list, _, err := s.store.ListRepositories(ctx, core.ListQuery{Limit: core.MaxLimit, Filters: []core.Filter{{Field: "pulp_id", Op: "in", Value: ids}}})
	if err != nil {
		return nil, err
	}
	for _, r := range list {
		out[r.ID] = r.Type
	}
	return out, nil
}

// remoteTypes maps remote IDs to their types, in one query.
func (s *Server) remoteTypes(ctx context.Context, ids []string) (map[string]string, error) {
	out := map[string]string{}
	ids = uniq(ids)
	if len(ids) == 0 {
		return out, nil
	}
	list, _, err := s.store.ListRemotes(ctx, core.ListQuery{Limit: core.MaxLimit, Filters: []core.Filter{{Field: "pulp_id", Op: "in", Value: ids}}})
	if err != nil {
		return nil, err
	}
	for _, r := range list {
		out[r.ID] = r.Type
	}
	return out, nil
}

func uniq(in []string) []string {
	seen := make(map[string]bool, len(in))
	out := make([]string, 0, len(in))
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}
