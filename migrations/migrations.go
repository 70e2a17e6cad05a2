// Package migrations embeds the core schema, one goose SQL set per dialect.
package migrations

import (
	"embed"

	"github.com/berth-dev/berth/core/db"
)

//go:embed postgres/*.sql sqlite/*.sql
var files embed.FS

// Core is the core's migration set (repositories, content, remotes,
// distributions, tasks, users).
var Core = db.MigrationSet{Name: "core", FS: files}
