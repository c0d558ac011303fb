// Package migrations holds the SQL files that build botbridge's store,
// numbered NNNN_what.sql and applied in order. Released files are never
// edited: a change to the schema is a new file.
package migrations

import "embed"

// FS holds the migration files.
//
//go:embed *.sql
var FS embed.FS
