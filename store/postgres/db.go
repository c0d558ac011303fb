// Package postgres keeps botbridge's state in PostgreSQL through
// github.com/jackc/pgx/v5, for several botbridge processes sharing one
// store. It implements bridge.Store with the tables and the meaning of the
// SQLite store (package store), and is tested by the same contract suite
// (store/storetest).
//
// Every method is one statement or one transaction, and is correct with
// other processes calling the same methods at the same time: the unique
// keys decide which of two processes stores an event, a reset or a bot
// message, and the other sees what the winner stored.
package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/botbridge/botbridge/bridge"
	pgmigrations "github.com/botbridge/botbridge/migrations/postgres"
)

// DB is botbridge's store on a PostgreSQL database.
type DB struct {
	// Now is the clock; it defaults to time.Now.
	Now func() time.Time

	pool *pgxpool.Pool
	// where names the server and database for errors, without the
	// password.
	where string

	// sqlOnce makes the pool SQL returns, on first use.
	sqlOnce sync.Once
	sqlPool *pgxpool.Pool
	sqlDB   *sql.DB
	sqlErr  error
}

var _ bridge.Store = (*DB)(nil)

// DefaultMaxConns is the size of the connection pool when the DSN does not
// set pool_max_conns: enough for the bridge's workers to write beside each
// other, few enough for several replicas to share a server's
// max_connections (100 by default).
const DefaultMaxConns = 16

// Open connects to the database of dsn (a PostgreSQL connection string, URL
// or keyword/value form; pgx's pool_* settings apply) and applies the
// migrations it lacks, under a lock that lets one process at a time
// migrate. It fails with an error wrapping bridge.ErrStore that says what to
// check when the server cannot be reached, refuses the user, has no such
// database, is read-only, or holds a schema of a newer botbridge.
func Open(ctx context.Context, dsn string) (*DB, error) {
	if dsn == "" {
		return nil, fmt.Errorf("open store: %w: no connection string given: set store.dsn", bridge.ErrStore)
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgx leaves the password out of its message.
		return nil, fmt.Errorf("open store: %w: store.dsn: %v", bridge.ErrStore, err)
	}
	if !strings.Contains(dsn, "pool_max_conns") {
		cfg.MaxConns = DefaultMaxConns
	}
	db := &DB{Now: time.Now, where: fmt.Sprintf("postgres %s:%d/%s", cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database)}
	if db.pool, err = pgxpool.NewWithConfig(ctx, cfg); err != nil {
		return nil, fmt.Errorf("open store %s: %w", db.where, wrap("connect", err))
	}
	if err := db.migrate(ctx); err != nil {
		db.pool.Close()
		return nil, fmt.Errorf("open store %s: %w", db.where, err)
	}
	return db, nil
}

// Close closes the connections, those of SQL's pool included; calls after
// it fail with ErrStore.
func (db *DB) Close() error {
	var err error
	if db.sqlDB != nil {
		err = db.sqlDB.Close()
		db.sqlPool.Close()
	}
	db.pool.Close()
	return err
}

// String names the server and database, without credentials.
func (db *DB) String() string { return db.where }

// Ping checks that the store can be read and written: it writes a heartbeat
// cursor.
func (db *DB) Ping(ctx context.Context) error {
	now := db.Now()
	_, err := db.exec(ctx, "ping", setCursorSQL, "store.heartbeat", strconv.FormatInt(now.UnixMilli(), 10), ms(now))
	return err
}

// migrateLock is the key of the session-level advisory lock held while
// migrating ("botbridge" in the bytes of an int64): processes starting at
// once migrate one after the other, and the later ones find nothing to do.
const migrateLock int64 = 0x626f746272696467

// migrate applies the migration files the database has not seen yet, in one
// transaction that records them in schema_version, holding migrateLock.
func (db *DB) migrate(ctx context.Context) error {
	steps, err := migrationSteps()
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	conn, err := db.pool.Acquire(ctx)
	if err != nil {
		return wrap("migrate: connect", err)
	}
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", migrateLock); err != nil {
		conn.Release()
		return wrap("migrate: lock", err)
	}
	defer func() {
		// A connection that still holds the lock must not go back to the
		// pool: closing it releases the lock.
		if _, err := conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", migrateLock); err != nil {
			conn.Hijack().Close(context.WithoutCancel(ctx))
			return
		}
		conn.Release()
	}()
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		var exists bool
		if err := tx.QueryRow(ctx, "SELECT to_regclass('schema_version') IS NOT NULL").Scan(&exists); err != nil {
			return wrap("migrate: read schema version", err)
		}
		if !exists {
			// Made here, not by a migration, so that the first migration is
			// recorded like the others.
			if _, err := tx.Exec(ctx, `CREATE TABLE schema_version (
				version    INTEGER PRIMARY KEY,
				name       TEXT    NOT NULL,
				applied_ms BIGINT  NOT NULL)`); err != nil {
				return wrap("migrate: create schema_version", err)
			}
		}
		// FOR UPDATE fails on a read-only server or without the right to
		// write botbridge's tables: here, rather than at the first message.
		var current int
		err := tx.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM (SELECT version FROM schema_version FOR UPDATE) v").Scan(&current)
		if err != nil {
			return wrap("migrate: read schema version", err)
		}
		if current > len(steps) {
			return fmt.Errorf("migrate: %w: the store has schema version %d but this botbridge knows only %d: it was used by a newer botbridge; run that version or restore a backup",
				bridge.ErrStore, current, len(steps))
		}
		for _, s := range steps[current:] {
			body, err := fs.ReadFile(pgmigrations.FS, s.name)
			if err != nil {
				return fmt.Errorf("migrate: %w", err)
			}
			if _, err := tx.Exec(ctx, string(body)); err != nil {
				return wrap("migrate: apply "+s.name, err)
			}
			if s.version == leasesVersion {
				if err := backfillLeases(ctx, tx); err != nil {
					return wrap("migrate: "+s.name+": the leases of the conversations", err)
				}
			}
			if _, err := tx.Exec(ctx, "INSERT INTO schema_version (version, name, applied_ms) VALUES ($1, $2, $3)",
				s.version, s.name, ms(db.Now())); err != nil {
				return wrap("migrate: record "+s.name, err)
			}
		}
		return nil
	})
	if err != nil && !isWrapped(err) {
		err = wrap("migrate", err)
	}
	return err
}

type step struct {
	version int
	name    string
}

// migrationSteps lists the migration files in order, checking that none is
// missing.
func migrationSteps() ([]step, error) {
	entries, err := fs.ReadDir(pgmigrations.FS, ".")
	if err != nil {
		return nil, err
	}
	var steps []step
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".sql") {
			continue
		}
		n, _, ok := strings.Cut(name, "_")
		v, err := strconv.Atoi(n)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("file %s is not named NNNN_what.sql", name)
		}
		steps = append(steps, step{v, name})
	}
	slices.SortFunc(steps, func(a, b step) int { return a.version - b.version })
	for i, s := range steps {
		if s.version != i+1 {
			return nil, fmt.Errorf("migration %d is missing before %s", i+1, s.name)
		}
	}
	return steps, nil
}

// SchemaVersion returns the number of migrations applied.
func (db *DB) SchemaVersion(ctx context.Context) (int, error) {
	return queryRow(ctx, db, "schema version", scanOne[int], "SELECT coalesce(max(version), 0) FROM schema_version")
}

// maxTries bounds the runs of a transaction that fails for a cause a second
// run clears.
const maxTries = 5

// run runs fn until it succeeds, fails for good, or has run maxTries times.
// It runs it again when PostgreSQL ended it for a conflict with another
// transaction (a serialization failure or a deadlock) or when again says
// so. It returns fn's last error, wrapped.
func (db *DB) run(ctx context.Context, op string, again func(error) bool, fn func(context.Context) error) error {
	for try := 1; ; try++ {
		err := fn(ctx)
		if err == nil {
			return nil
		}
		if try < maxTries && ctx.Err() == nil && (transient(err) || (again != nil && again(err))) {
			continue
		}
		return wrap(op, err)
	}
}

// exec runs a statement, again after a transient failure (see run).
func (db *DB) exec(ctx context.Context, op, query string, args ...any) (pgconn.CommandTag, error) {
	var tag pgconn.CommandTag
	err := db.run(ctx, op, nil, func(ctx context.Context) error {
		var err error
		tag, err = db.pool.Exec(ctx, query, args...)
		return err
	})
	return tag, err
}

// queryRow runs a query of one row and returns what scan makes of it,
// again after a transient failure; no row is ErrNotFound.
func queryRow[T any](ctx context.Context, db *DB, op string, scan func(pgx.Row) (T, error), query string, args ...any) (T, error) {
	var v T
	err := db.run(ctx, op, nil, func(ctx context.Context) error {
		var err error
		v, err = scan(db.pool.QueryRow(ctx, query, args...))
		return err
	})
	return v, err
}

// queryRows runs a query and returns what scan makes of each row, running
// it again from the start after a transient failure.
func queryRows[T any](ctx context.Context, db *DB, op string, scan func(pgx.Row) (T, error), query string, args ...any) ([]T, error) {
	var out []T
	err := db.run(ctx, op, nil, func(ctx context.Context) error {
		out = nil
		rows, err := db.pool.Query(ctx, query, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			v, err := scan(rows)
			if err != nil {
				return err
			}
			out = append(out, v)
		}
		return rows.Err()
	})
	return out, err
}

// scanOne scans a row of one column.
func scanOne[T any](row pgx.Row) (T, error) {
	var v T
	err := row.Scan(&v)
	return v, err
}

// transient reports whether err ended a transaction that did not commit,
// for a cause a new run on another connection does not meet: a conflict
// with another transaction, a pooled connection the server closed (it
// restarted), or a failure before anything was sent.
func transient(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "40001", "40P01", // serialization failure, deadlock
			"57P01", "57P02": // the server ended the session: admin or crash shutdown
			return true
		}
		return false
	}
	return pgconn.SafeToRetry(err)
}

// missingReference reports whether err is a foreign key's refusal: a
// record referred to was deleted by another process (Prune) meanwhile.
func missingReference(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23503"
}

// isWrapped reports whether err already wraps one of the bridge's
// sentinels or a context's error.
func isWrapped(err error) bool {
	return errors.Is(err, bridge.ErrStore) || errors.Is(err, bridge.ErrNotFound) || errors.Is(err, bridge.ErrConflict) ||
		errors.Is(err, bridge.ErrFenced) ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// wrap turns a driver error into an error that names the operation and wraps
// bridge.ErrNotFound, bridge.ErrConflict or bridge.ErrStore, with a hint
// that says what to check where PostgreSQL's own message does not.
func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	if isWrapped(err) {
		return fmt.Errorf("%s: %w", op, err)
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("%s: %w", op, bridge.ErrNotFound)
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "23503": // foreign_key_violation
			return fmt.Errorf("%s: %w: it refers to a record that does not exist", op, bridge.ErrNotFound)
		case "23505", "23514", "23502": // unique, check, not null
			return fmt.Errorf("%s: %w: %v", op, bridge.ErrConflict, err)
		}
		return fmt.Errorf("%s: %w: %w%s", op, bridge.ErrStore, err, serverHint(pe.Code))
	}
	return fmt.Errorf("%s: %w: %w%s", op, bridge.ErrStore, err, connHint(err))
}

// serverHint says what to do about an error PostgreSQL reported.
func serverHint(code string) string {
	switch {
	case code == "28P01" || code == "28000":
		return ": PostgreSQL refused the user: check the user and password of store.dsn (give the password through ${VAR})"
	case code == "3D000":
		return ": the database does not exist: create it (createdb -O USER NAME) or fix the database of store.dsn"
	case code == "42501":
		return ": the user of store.dsn lacks a privilege: make it the owner of the database, or grant it botbridge's tables"
	case code == "25006":
		return ": the server is read-only (a standby?): point store.dsn at the primary, e.g. with target_session_attrs=read-write"
	case code == "53100":
		return ": PostgreSQL's disk is full: free space; nothing was acknowledged that was not stored"
	case code == "53300":
		return ": PostgreSQL has no connection left: raise its max_connections, or lower pool_max_conns in store.dsn (it counts for each replica)"
	case code == "53200":
		return ": PostgreSQL is out of memory"
	case code == "57P01" || code == "57P02" || code == "57P03":
		return ": PostgreSQL is shutting down or starting; botbridge tries again"
	case code == "40001" || code == "40P01":
		return ": the transaction kept conflicting with others; botbridge tries again"
	case code == "42P01" || code == "42703":
		return ": botbridge's tables are not as it made them: were they changed by hand? restore a backup"
	case code == "22021" || code == "22P05":
		return ": a text the database's encoding cannot hold"
	case strings.HasPrefix(code, "XX"):
		return ": PostgreSQL reports an internal error or damaged data: check its log; restore a backup if data is damaged"
	case strings.HasPrefix(code, "08"):
		return ": the connection to PostgreSQL failed: check that it runs and the host and port of store.dsn"
	}
	return ""
}

// connHint says what to do about an error of the connection to the server.
func connHint(err error) string {
	var dnsErr *net.DNSError
	var netErr net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return ": connection refused: check that PostgreSQL runs and listens at the host and port of store.dsn"
	case errors.As(err, &dnsErr):
		return ": the host of store.dsn does not resolve: check it"
	case errors.As(err, &netErr) && netErr.Timeout():
		return ": PostgreSQL did not answer in time: check the network and the host of store.dsn"
	case strings.Contains(err.Error(), "closed pool"):
		return ": the store is closed"
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		return ": cannot connect: check store.dsn and that PostgreSQL runs"
	}
	return ""
}

// ms returns t in milliseconds since the epoch; 0 for the zero time.
func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

// fromMS is the inverse of ms.
func fromMS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v).UTC()
}

// Storable returns s as a PostgreSQL text can hold it: with U+FFFD in place
// of NUL bytes and invalid UTF-8, which SQLite stores as they are. The store
// applies it to texts kept for people (failure reasons, display names), not
// to keys.
func Storable(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	return strings.ReplaceAll(s, "\x00", "\uFFFD")
}
