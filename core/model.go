package core

import (
	"database/sql/driver"
	"encoding/json"
	"fmt"
	"time"
)

// Artifact is a stored file, addressed by its digest.
type Artifact struct {
	ID        string    `gorm:"primaryKey" json:"-"`
	Digest    string    `json:"digest"`
	Size      int64     `json:"size"`
	CreatedAt time.Time `json:"pulp_created"`
}

// Content is an immutable unit of repository content. Its plugin-specific
// fields live in the plugin's own table, keyed by the content ID. Content is
// unique by (Type, NaturalKey) and shared between repositories.
type Content struct {
	ID         string    `gorm:"primaryKey" json:"-"`
	Type       string    `json:"pulp_type"`
	NaturalKey string    `json:"natural_key"`
	CreatedAt  time.Time `json:"pulp_created"`
}

// ContentArtifact links content to the artifact holding one of its files. A
// nil ArtifactID means the file is known but not downloaded yet (on_demand).
type ContentArtifact struct {
	ContentID    string `gorm:"primaryKey"`
	RelativePath string `gorm:"primaryKey"`
	ArtifactID   *string
}

// Repository holds content in numbered, immutable versions.
type Repository struct {
	ID                 string    `gorm:"primaryKey" json:"-"`
	Type               string    `json:"pulp_type"`
	Name               string    `json:"name"`
	Description        string    `json:"description"`
	RetainRepoVersions *int      `json:"retain_repo_versions"`
	LatestVersion      int       `json:"latest_version"`
	RemoteID           *string   `json:"-"`
	CreatedAt          time.Time `json:"pulp_created"`
	UpdatedAt          time.Time `json:"pulp_last_updated"`
}

// RepositoryVersion is one immutable state of a repository.
type RepositoryVersion struct {
	ID             string         `gorm:"primaryKey" json:"-"`
	RepositoryID   string         `json:"-"`
	Number         int            `json:"number"`
	ContentSummary ContentSummary `json:"content_summary"`
	CreatedBy      string         `json:"created_by,omitempty"`
	CreatedAt      time.Time      `json:"pulp_created"`
}

// ContentSummary counts, per content type, what a version added, removed and holds.
type ContentSummary struct {
	Added   map[string]int `json:"added"`
	Removed map[string]int `json:"removed"`
	Present map[string]int `json:"present"`
}

// Value stores the summary as JSON.
func (c ContentSummary) Value() (driver.Value, error) {
	b, err := json.Marshal(c)
	return string(b), err
}

// Scan reads the summary from JSON.
func (c *ContentSummary) Scan(src any) error {
	var b []byte
	switch v := src.(type) {
	case string:
		b = []byte(v)
	case []byte:
		b = v
	case nil:
		*c = ContentSummary{}
		return nil
	default:
		return fmt.Errorf("content summary: cannot scan %T", src)
	}
	if err := json.Unmarshal(b, c); err != nil {
		return err
	}
	for _, m := range []*map[string]int{&c.Added, &c.Removed, &c.Present} {
		if *m == nil {
			*m = map[string]int{}
		}
	}
	return nil
}

// RepositoryContent records that content belongs to a repository from
// VersionAdded until (excluding) VersionRemoved.
type RepositoryContent struct {
	RepositoryID   string `gorm:"primaryKey"`
	ContentID      string `gorm:"primaryKey"`
	VersionAdded   int    `gorm:"primaryKey"`
	VersionRemoved *int
}

// Remote says where and how to fetch content. Secret fields are stored
// sealed (see core/secret) and never leave the server.
type Remote struct {
	ID                  string    `gorm:"primaryKey"`
	Type                string    `json:"pulp_type"`
	Name                string    `json:"name"`
	URL                 string    `json:"url"`
	Username            string    `json:"username"`
	PasswordEnc         string    `json:"-"`
	TLSValidation       bool      `gorm:"column:tls_validation" json:"tls_validation"`
	CACert              string    `gorm:"column:ca_cert" json:"ca_cert"`
	ClientCert          string    `json:"client_cert"`
	ClientKeyEnc        string    `json:"-"`
	ProxyURL            string    `gorm:"column:proxy_url" json:"proxy_url"`
	ProxyUsername       string    `json:"proxy_username"`
	ProxyPasswordEnc    string    `json:"-"`
	RateLimit           float64   `json:"rate_limit"`
	DownloadConcurrency int       `json:"download_concurrency"`
	Policy              string    `json:"policy"`
	CreatedAt           time.Time `json:"pulp_created"`
	UpdatedAt           time.Time `json:"pulp_last_updated"`
}

// Remote download policies.
const (
	PolicyImmediate = "immediate"
	PolicyOnDemand  = "on_demand"
)

// Distribution serves a repository's latest version, or a pinned version,
// at a base path.
type Distribution struct {
	ID                  string    `gorm:"primaryKey"`
	Type                string    `json:"pulp_type"`
	Name                string    `json:"name"`
	BasePath            string    `json:"base_path"`
	RepositoryID        *string   `json:"-"`
	RepositoryVersionID *string   `json:"-"`
	Private             bool      `json:"private"`
	CreatedAt           time.Time `json:"pulp_created"`
	UpdatedAt           time.Time `json:"pulp_last_updated"`
}
