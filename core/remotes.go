package core

import (
	"context"
	"errors"
	"net/url"
)

// RemoteColumns are the list filters and orderings of remotes.
var RemoteColumns = Columns{"name": "name", "pulp_type": "type", "url": "url", "pulp_created": "created_at", "pulp_last_updated": "updated_at", "pulp_id": "id"}

// RemoteSecrets are the write-only credential fields of a remote, given in
// plain text by the client and stored sealed. A nil field is left unchanged;
// an empty string clears it.
type RemoteSecrets struct {
	Password      *string
	ClientKey     *string
	ProxyPassword *string
}

// ValidateRemote checks a remote's plain fields.
func ValidateRemote(r *Remote) error {
	v := &ValidationError{}
	if err := ValidateName("name", r.Name); err != nil {
		v.Add("name", "%s", err.(*ValidationError).Fields["name"][0])
	}
	if u, err := url.Parse(r.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		v.Add("url", "must be an http:// or https:// URL with a host")
	} else if u.User != nil {
		v.Add("url", "must not contain credentials; use username and password")
	}
	if r.ProxyURL != "" {
		if u, err := url.Parse(r.ProxyURL); err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
			v.Add("proxy_url", "must be an http:// or https:// URL")
		}
	}
	if r.RateLimit < 0 {
		v.Add("rate_limit", "must not be negative (0 means no limit)")
	}
	if r.DownloadConcurrency < 1 || r.DownloadConcurrency > 64 {
		v.Add("download_concurrency", "must be between 1 and 64")
	}
	if r.Policy != PolicyImmediate && r.Policy != PolicyOnDemand {
		v.Add("policy", "must be %q or %q", PolicyImmediate, PolicyOnDemand)
	}
	if r.Type == "" {
		v.Add("pulp_type", "required")
	}
	return v.Err()
}

func (s *Store) sealSecrets(r *Remote, sec RemoteSecrets) error {
	for _, f := range []struct {
		in  *string
		out *string
	}{{sec.Password, &r.PasswordEnc}, {sec.ClientKey, &r.ClientKeyEnc}, {sec.ProxyPassword, &r.ProxyPasswordEnc}} {
		if f.in == nil {
			continue
		}
		if *f.in != "" && s.secrets == nil {
			return errors.New("no secret key configured to seal credentials")
		}
		if *f.in == "" {
			*f.out = ""
			continue
		}
		sealed, err := s.secrets.Seal(*f.in)
		if err != nil {
			return err
		}
		*f.out = sealed
	}
	return nil
}

// CreateRemote validates and inserts a remote, sealing its secrets.
func (s *Store) CreateRemote(ctx context.Context, r *Remote, sec RemoteSecrets) error {
	if r.Policy == "" {
		r.Policy = PolicyImmediate
	}
	if r.DownloadConcurrency == 0 {
		r.DownloadConcurrency = 4
	}
	if err := ValidateRemote(r); err != nil {
		return err
	}
	if err := s.sealSecrets(r, sec); err != nil {
		return err
	}
	now := now()
	if r.ID == "" {
		r.ID = NewID()
	}
	r.CreatedAt, r.UpdatedAt = now, now
	if err := Translate(s.DB(ctx).Create(r).Error); err != nil {
		if errors.Is(err, ErrConflict) {
			return Conflict("remote %q already exists", r.Name)
		}
		return err
	}
	return nil
}

// UpdateRemote saves changed plain fields (validated) and secrets.
func (s *Store) UpdateRemote(ctx context.Context, r *Remote, sec RemoteSecrets) error {
	if err := ValidateRemote(r); err != nil {
		return err
	}
	if err := s.sealSecrets(r, sec); err != nil {
		return err
	}
	r.UpdatedAt = now()
	if err := Translate(s.DB(ctx).Save(r).Error); err != nil {
		if errors.Is(err, ErrConflict) {
			return Conflict("remote %q already exists", r.Name)
		}
		return err
	}
	return nil
}

// Remote finds a remote by ID.
func (s *Store) Remote(ctx context.Context, id string) (*Remote, error) {
	var r Remote
	if err := first(s.DB(ctx), &r, "remote", id, "id = ?", id); err != nil {
		return nil, err
	}
	return &r, nil
}

// ListRemotes lists remotes.
func (s *Store) ListRemotes(ctx context.Context, q ListQuery) ([]Remote, int64, error) {
	return list[Remote](ctx, s.db, q, RemoteColumns, "name", nil)
}

// DeleteRemote removes a remote; repositories that used it keep their content.
func (s *Store) DeleteRemote(ctx context.Context, id string) error {
	return s.Tx(ctx, func(tx *Store) error {
		if _, err := tx.Remote(ctx, id); err != nil {
			return err
		}
		if err := tx.DB(ctx).Exec("UPDATE repositories SET remote_id = NULL WHERE remote_id = ?", id).Error; err != nil {
			return Translate(err)
		}
		return Translate(tx.DB(ctx).Exec("DELETE FROM remotes WHERE id = ?", id).Error)
	})
}

// RemoteCredentials are a remote's secrets opened for use by a download.
// They are never serialized.
type RemoteCredentials struct {
	Password, ClientKey, ProxyPassword string
}

// OpenCredentials unseals a remote's secrets for a download.
func (s *Store) OpenCredentials(r *Remote) (RemoteCredentials, error) {
	var c RemoteCredentials
	if s.secrets == nil {
		if r.PasswordEnc == "" && r.ClientKeyEnc == "" && r.ProxyPasswordEnc == "" {
			return c, nil
		}
		return c, errors.New("no secret key configured to open credentials")
	}
	var err error
	if c.Password, err = s.secrets.Open(r.PasswordEnc); err != nil {
		return c, err
	}
	if c.ClientKey, err = s.secrets.Open(r.ClientKeyEnc); err != nil {
		return c, err
	}
	c.ProxyPassword, err = s.secrets.Open(r.ProxyPasswordEnc)
	return c, err
}
