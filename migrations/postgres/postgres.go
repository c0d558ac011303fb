// Package postgres holds the SQL files that build botbridge's store on
// PostgreSQL (package store/postgres). They are numbered as the SQLite files
// in migrations/ and mean the same, file by file: the same tables and
// columns, in PostgreSQL's types, so that a store moves from one to the
// other row by row (botbridge migrate-store). Released files are never
// edited: a change to the schema is a new file in both directories.
package postgres

import "embed"

// FS holds the migration files.
//
//go:embed *.sql
var FS embed.FS
