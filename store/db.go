// Package store keeps botbridge's state in one SQLite file through
// modernc.org/sqlite (no cgo): conversation and user mappings, the inbound
// outbox, deliveries and platform cursors. It implements bridge.Store.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/botbridge/botbridge/bridge"
	"github.com/botbridge/botbridge/migrations"
)

// DB is botbridge's store on one SQLite file. Writes go through one
// connection, so they never wait on each other inside SQLite; reads use a
// small pool and see every committed write (WAL).
type DB struct {
	// Now is the clock; it defaults to time.Now.
	Now func() time.Time

	path string
	abs  string
	// maxPages is the MaxSize cap in pages; 0 for none.
	maxPages int64
	// normal is SyncNormal.
	normal bool
	write  *sql.DB
	read   *sql.DB

	otherOnce sync.Once
	other     *sql.DB
	otherErr  error
	// Statements are prepared once per pool and kept.
	writeStmts, readStmts stmtCache

	// writes carries write transactions to the writer goroutine, which
	// commits those that wait together (group commit); stop ends it and
	// writerDone says it ended.
	writes     chan *writeReq
	stop       chan struct{}
	stopOnce   sync.Once
	writerDone chan struct{}

	// fault is the last write that failed for a cause of the disk or file
	// (full, I/O error, read-only, damaged), until a write shows the disk
	// takes writes again (noteWrite). Ping reports it: an update in place
	// can still succeed on a full disk.
	fault atomic.Pointer[writeFault]
	// faultOps are the kinds of write (their op) that failed since fault
	// was set; only the writer goroutine uses it.
	faultOps map[string]bool
}

type writeFault struct {
	err error
	// since is when the first of the failures since the last clear
	// happened; at is the last's.
	since, at time.Time
}

// faultHold is how long a fault of the disk stands against the success of
// writes of another kind than those that failed.
const faultHold = time.Minute

var _ bridge.Store = (*DB)(nil)

// BusyTimeout is how long a statement waits for a lock held by another
// process (a backup, the sqlite3 shell) before it fails.
const BusyTimeout = 10 * time.Second

// Option tunes Open.
type Option func(*options)

type options struct {
	maxBytes int64
	normal   bool
}

// SyncNormal makes commits durable across a killed process but not across
// a power loss or an OS crash (SQLite's synchronous=NORMAL): faster, for
// operators whose disks or needs allow it. The default (FULL) syncs every
// commit.
func SyncNormal() Option {
	return func(o *options) { o.normal = true }
}

// MaxSize caps the size of the database at about maxBytes (whole pages): a
// write that would grow it further fails with SQLITE_FULL, as on a full
// disk, and the store keeps working for everything else. Zero or less is no
// cap. The cap holds for the connections of this DB only; it is not stored
// in the file.
func MaxSize(maxBytes int64) Option {
	return func(o *options) { o.maxBytes = maxBytes }
}

// Open opens (creating it if needed) the store at path and applies the
// migrations it lacks. It fails with an error wrapping bridge.ErrStore that
// says what to do when the directory is missing, the file is not a SQLite
// database, the file or its directory cannot be written, the store was
// written by a newer botbridge, or it is larger than a MaxSize cap.
func Open(ctx context.Context, path string, opts ...Option) (*DB, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if path == "" {
		return nil, fmt.Errorf("open store: %w: no path given: set store.path", bridge.ErrStore)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w: %v", path, bridge.ErrStore, err)
	}
	if err := prepareFile(abs); err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	var maxPages int64
	if o.maxBytes > 0 {
		if maxPages, err = pageLimit(ctx, abs, o.maxBytes); err != nil {
			return nil, fmt.Errorf("open store %s: %w", path, err)
		}
	}
	db := &DB{Now: time.Now, path: path, abs: abs, maxPages: maxPages, normal: o.normal}
	if db.write, err = openPool(abs, 1, maxPages, o.normal); err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	if db.read, err = openPool(abs, readConns, maxPages, o.normal); err != nil {
		db.write.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	db.writeStmts.pool, db.readStmts.pool = db.write, db.read
	if err := db.migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	db.writes = make(chan *writeReq, maxBatch)
	db.stop = make(chan struct{})
	db.writerDone = make(chan struct{})
	go db.writer()
	return db, nil
}

// readConns is the size of the read pool: enough for the workers' lookups to
// run beside each other, few enough that each keeps a warm page cache.
const readConns = 4

// prepareFile gives clear errors for the usual mistakes before SQLite gives
// cryptic ones, and creates a new store readable by its owner only, as it
// holds user keys (SQLite gives the -wal and -shm files the same mode). It
// never opens an existing store: closing any descriptor of a file drops every
// POSIX lock this process holds on it, SQLite's included; SQLite itself says
// when an existing file is not a database or cannot be written.
func prepareFile(path string) error {
	dir := filepath.Dir(path)
	switch fi, err := os.Stat(dir); {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%w: directory %s does not exist: create it or fix store.path", bridge.ErrStore, dir)
	case err != nil:
		return fmt.Errorf("%w: %v: check store.path and its permissions", bridge.ErrStore, err)
	case !fi.IsDir():
		return fmt.Errorf("%w: %s is not a directory: fix store.path", bridge.ErrStore, dir)
	}
	switch fi, err := os.Stat(path); {
	case err == nil && fi.IsDir():
		return fmt.Errorf("%w: %s is a directory: store.path must name a file", bridge.ErrStore, path)
	case err == nil:
		return nil
	case !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%w: %v: check store.path and its permissions", bridge.ErrStore, err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return nil // another process made it first
	}
	if err != nil {
		return fmt.Errorf("%w: cannot create the store file: %v: botbridge needs write access to %s", bridge.ErrStore, err, dir)
	}
	return f.Close()
}

// uriPath escapes the characters that SQLite's URI filenames give a meaning.
var uriPath = strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23")

// pageLimit turns a size cap into pages of the file's page size (SQLite's
// default for a new file). It refuses a cap below the store's current size,
// which SQLite would silently raise.
func pageLimit(ctx context.Context, path string, maxBytes int64) (int64, error) {
	probe, err := openPool(path, 1, 0, false)
	if err != nil {
		return 0, err
	}
	defer probe.Close()
	var size, count int64
	if err := probe.QueryRowContext(ctx, "PRAGMA page_size").Scan(&size); err != nil {
		return 0, wrap("read page size", err)
	}
	if err := probe.QueryRowContext(ctx, "PRAGMA page_count").Scan(&count); err != nil {
		return 0, wrap("read page count", err)
	}
	pages := maxBytes / size
	if pages < count {
		return 0, fmt.Errorf("%w: the store is %d bytes, more than its size cap of %d bytes: raise store.max_size_mb", bridge.ErrStore, count*size, maxBytes)
	}
	return pages, nil
}

// openPool returns a pool of at most conns connections to the file at the
// absolute path, capped at maxPages pages when positive; connections are
// made, and fail, on first use.
func openPool(path string, conns int, maxPages int64, normal bool) (*sql.DB, error) {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout("+strconv.Itoa(int(BusyTimeout/time.Millisecond))+")")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "foreign_keys(1)")
	// FULL syncs the WAL at every commit, so that a commit survives a power
	// loss or an OS crash (given a disk that honours fsync), not only a
	// killed process as with NORMAL: the bridge acknowledges a platform's
	// event once its commit returns, and the platform will not send it
	// again. Group commit shares one fsync among the writes that wait
	// together, which keeps the cost down (see the README's performance).
	sync := "FULL"
	if normal {
		sync = "NORMAL"
	}
	q.Add("_pragma", "synchronous("+sync+")")
	// A burst can grow the WAL far past its usual size; keep the file at
	// most 64 MiB once a checkpoint has emptied it.
	q.Add("_pragma", "journal_size_limit(67108864)")
	if maxPages > 0 {
		// max_page_count is a setting of each connection, not of the file.
		q.Add("_pragma", "max_page_count("+strconv.FormatInt(maxPages, 10)+")")
	}
	q.Set("_txlock", "immediate")
	pool, err := sql.Open("sqlite", "file:"+uriPath.Replace(path)+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("%w: %v", bridge.ErrStore, err)
	}
	pool.SetMaxOpenConns(conns)
	pool.SetMaxIdleConns(conns)
	pool.SetConnMaxIdleTime(0)
	pool.SetConnMaxLifetime(0)
	return pool, nil
}

// Path returns the file the store was opened on.
func (db *DB) Path() string { return db.path }

// SQL returns a connection pool of its own on the store's file, for
// components that keep their own tables there (mautrix's crypto store). It
// is separate from the bridge's pools so that a long transaction of theirs
// cannot hold the bridge's single write connection; SQLite's locking (with
// BusyTimeout) orders the writes of both. Close closes it too.
func (db *DB) SQL() (*sql.DB, error) {
	db.otherOnce.Do(func() {
		db.other, db.otherErr = openPool(db.abs, otherConns, db.maxPages, db.normal)
	})
	return db.other, db.otherErr
}

// otherConns is the size of the pool SQL returns.
const otherConns = 2

// Close closes the database.
func (db *DB) Close() error {
	if db.stop != nil {
		db.stopOnce.Do(func() { close(db.stop) })
		<-db.writerDone
	}
	errs := []error{db.readStmts.close(), db.writeStmts.close()}
	if db.other != nil {
		errs = append(errs, db.other.Close())
	}
	if db.read != nil {
		errs = append(errs, db.read.Close())
	}
	if db.write != nil {
		errs = append(errs, db.write.Close())
	}
	return errors.Join(errs...)
}

// Ping checks that the store can be read and written: it reads the schema
// version and writes a heartbeat cursor.
//
// It also fails while the last write the bridge attempted failed for a cause
// of the disk (full, I/O error, read-only) and none succeeded since, and
// when the store has reached its MaxSize cap.
func (db *DB) Ping(ctx context.Context) error {
	var v int
	if err := db.read.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return wrap("ping", err)
	}
	if f := db.fault.Load(); f != nil {
		return fmt.Errorf("the last write failed %s ago and none succeeded since: %w",
			db.Now().Sub(f.at).Round(time.Second), f.err)
	}
	if db.maxPages > 0 {
		var pages int64
		if err := db.read.QueryRowContext(ctx, "PRAGMA page_count").Scan(&pages); err != nil {
			return wrap("ping", err)
		}
		if pages >= db.maxPages {
			return fmt.Errorf("ping: %w: the store reached its size cap (store.max_size_mb); raise it, or free space with a shorter bridge.retention", bridge.ErrStore)
		}
	}
	return db.tx(ctx, "ping", func(t *txn) error {
		_, err := t.exec(setCursorSQL, "store.heartbeat", strconv.FormatInt(db.Now().UnixMilli(), 10), ms(db.Now()))
		return err
	})
}

// migrate applies the migration files the database has not seen yet, in one
// transaction together with the new user_version. The transaction begins
// IMMEDIATE, so two processes starting on one file do not both migrate it;
// it writes user_version even when nothing is new, so that a store that
// cannot be written fails here rather than at the first message.
func (db *DB) migrate(ctx context.Context) error {
	entries, err := fs.ReadDir(migrations.FS, ".")
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	type step struct {
		version int
		name    string
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
			return fmt.Errorf("migrate: file %s is not named NNNN_what.sql", name)
		}
		steps = append(steps, step{v, name})
	}
	slices.SortFunc(steps, func(a, b step) int { return a.version - b.version })
	for i, s := range steps {
		if s.version != i+1 {
			return fmt.Errorf("migrate: migration %d is missing before %s", i+1, s.name)
		}
	}

	return db.tx(ctx, "migrate", func(t *txn) error {
		var current int
		if err := t.tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&current); err != nil {
			return wrap("migrate: read schema version", err)
		}
		if current > len(steps) {
			return fmt.Errorf("migrate: %w: the store has schema version %d but this botbridge knows only %d: it was used by a newer botbridge; run that version or restore a backup",
				bridge.ErrStore, current, len(steps))
		}
		for _, s := range steps[current:] {
			body, err := fs.ReadFile(migrations.FS, s.name)
			if err != nil {
				return fmt.Errorf("migrate: %w", err)
			}
			if _, err := t.tx.ExecContext(ctx, string(body)); err != nil {
				return wrap("migrate: apply "+s.name, err)
			}
			if s.version == leasesVersion {
				if err := backfillLeases(ctx, t.tx); err != nil {
					return wrap("migrate: "+s.name+": the leases of the conversations", err)
				}
			}
		}
		_, err := t.tx.ExecContext(ctx, "PRAGMA user_version = "+strconv.Itoa(len(steps)))
		return wrap("migrate: set schema version", err)
	})
}

// SchemaVersion returns the number of migrations applied.
func (db *DB) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	if err := db.read.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return 0, wrap("schema version", err)
	}
	return v, nil
}

// wrap turns a driver error into an error that names the operation and wraps
// bridge.ErrNotFound, bridge.ErrConflict or bridge.ErrStore, with a hint
// where SQLite's own message does not say what to do.
func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, bridge.ErrFenced) {
		return fmt.Errorf("%s: %w", op, err)
	}
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%s: %w", op, bridge.ErrNotFound)
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		if se.Code() == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY {
			return fmt.Errorf("%s: %w: it refers to a record that does not exist", op, bridge.ErrNotFound)
		}
		hint := ""
		switch se.Code() & 0xff {
		case sqlite3.SQLITE_CONSTRAINT:
			return fmt.Errorf("%s: %w: %v", op, bridge.ErrConflict, err)
		case sqlite3.SQLITE_READONLY:
			hint = ": the store file or its directory is read-only; botbridge needs write access to both (for the -wal and -shm files)"
		case sqlite3.SQLITE_FULL:
			hint = ": the disk is full; free space, nothing was acknowledged that was not stored"
		case sqlite3.SQLITE_IOERR:
			hint = ": disk I/O error; check the disk and the file system"
		case sqlite3.SQLITE_CORRUPT:
			hint = ": the store file is damaged; restore a backup"
		case sqlite3.SQLITE_NOTADB:
			hint = ": the file is not a SQLite database, or is damaged; point store.path at a new file or at botbridge's own store, or restore a backup"
		case sqlite3.SQLITE_CANTOPEN:
			hint = ": cannot open the store file; check the path and permissions"
		case sqlite3.SQLITE_BUSY:
			hint = ": the store is locked by another process; is a second botbridge running on the same file?"
		}
		return fmt.Errorf("%s: %w: %w%s", op, bridge.ErrStore, err, hint)
	}
	return fmt.Errorf("%s: %w: %v", op, bridge.ErrStore, err)
}

func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v).UTC()
}

// writeReq is a write transaction waiting for the writer.
type writeReq struct {
	ctx  context.Context
	op   string
	fn   func(*txn) error
	done chan error
}

// maxBatch bounds how many write transactions commit together.
const maxBatch = 64

// tx runs fn in a write transaction. Transactions that wait at the same time
// are committed together, each in a savepoint of its own, so that SQLite's
// cost of a commit is paid once for all of them; an error in one rolls back
// that one only. It blocks until the commit and returns fn's error or the
// commit's.
func (db *DB) tx(ctx context.Context, op string, fn func(*txn) error) error {
	if db.writes == nil { // during Open
		return db.commit([]*writeReq{{ctx: ctx, op: op, fn: fn, done: make(chan error, 1)}}, false)
	}
	req := &writeReq{ctx: ctx, op: op, fn: fn, done: make(chan error, 1)}
	select {
	case db.writes <- req:
	case <-ctx.Done():
		return fmt.Errorf("%s: %w", op, ctx.Err())
	case <-db.stop:
		return fmt.Errorf("%s: %w: the store is closed", op, bridge.ErrStore)
	}
	select {
	case err := <-req.done:
		return err
	case <-db.writerDone:
		select {
		case err := <-req.done:
			return err
		default:
			return fmt.Errorf("%s: %w: the store is closed", op, bridge.ErrStore)
		}
	}
}

// writer commits the write transactions that come in, in batches of those
// waiting, until Close; it finishes the ones already queued.
func (db *DB) writer() {
	defer close(db.writerDone)
	for {
		var first *writeReq
		select {
		case first = <-db.writes:
		case <-db.stop:
			for {
				select {
				case r := <-db.writes:
					db.commit([]*writeReq{r}, true)
				default:
					return
				}
			}
		}
		batch := []*writeReq{first}
	more:
		for len(batch) < maxBatch {
			select {
			case r := <-db.writes:
				batch = append(batch, r)
			default:
				break more
			}
		}
		db.commit(batch, true)
	}
}

// commit runs a batch of write transactions in one SQLite transaction and
// answers each; reply sends the answers on their done channels, else the
// only request's error is returned.
func (db *DB) commit(batch []*writeReq, reply bool) error {
	errs := make([]error, len(batch))
	live := 0
	for i, r := range batch {
		if err := r.ctx.Err(); err != nil {
			errs[i] = fmt.Errorf("%s: %w", r.op, err)
			continue
		}
		live++
	}
	var missed []string
	if live > 0 {
		savepoints := live > 1
		// The transaction belongs to no single request: one giving up must
		// not roll back the others.
		tx, err := db.write.BeginTx(context.WithoutCancel(batch[0].ctx), nil)
		if err != nil {
			for i := range batch {
				if errs[i] == nil {
					errs[i] = err
				}
			}
		} else {
			failed := 0
			for i, r := range batch {
				if errs[i] != nil {
					continue
				}
				t := &txn{ctx: r.ctx, tx: tx, stmts: &db.writeStmts, missed: &missed}
				if savepoints {
					if err := t.savepoint(t.ctx, "SAVEPOINT w"); err != nil {
						errs[i] = err
						failed++
						continue
					}
				}
				errs[i] = r.fn(t)
				if errs[i] != nil {
					failed++
					if savepoints {
						// Undo this one only; on failure, the whole batch goes.
						if err := t.savepoint(context.WithoutCancel(t.ctx), "ROLLBACK TO w"); err != nil {
							errs[i] = errors.Join(errs[i], err)
							savepoints = false
							break
						}
					}
				}
				if savepoints {
					if err := t.savepoint(context.WithoutCancel(t.ctx), "RELEASE w"); err != nil {
						errs[i] = errors.Join(errs[i], err)
						savepoints = false
						break
					}
				}
			}
			switch {
			case !savepoints && failed > 0:
				// A lone transaction failed, or a savepoint could not be
				// undone: nothing of the batch is kept.
				tx.Rollback()
				for i := range batch {
					if errs[i] == nil {
						errs[i] = errors.New("rolled back with a failed transaction of its batch")
					}
				}
			default:
				if err := tx.Commit(); err != nil {
					for i := range batch {
						if errs[i] == nil {
							errs[i] = fmt.Errorf("commit: %w", err)
						}
					}
				}
			}
		}
	}
	// Now that the transaction let go of the write connection, the pool can
	// prepare what the transaction had to prepare for itself.
	for _, q := range missed {
		db.writeStmts.get(context.WithoutCancel(batch[0].ctx), q) // on failure, the next transaction tries again
	}
	for i, r := range batch {
		err := errs[i]
		if err != nil && !errors.Is(err, bridge.ErrStore) && !errors.Is(err, bridge.ErrNotFound) &&
			!errors.Is(err, bridge.ErrConflict) && !errors.Is(err, bridge.ErrFenced) &&
			!errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
			err = wrap(r.op, err)
		}
		db.noteWrite(r.op, err)
		errs[i] = err
		if reply {
			r.done <- err
		}
	}
	return errs[0]
}

// noteWrite keeps the fault state of the disk for Ping. A write that
// failed for a cause of the disk or file sets it. A write of a kind that
// failed since then clears it when it succeeds, as does any write once the
// fault is faultHold old, except Ping's own heartbeat: the success of
// another kind proves little, as a full disk takes an update in place (a
// lease's renewal, the heartbeat) but no new row. It runs on the writer
// goroutine only.
func (db *DB) noteWrite(op string, err error) {
	if err == nil {
		f := db.fault.Load()
		if f != nil && (db.faultOps[op] || op != "ping" && db.Now().Sub(f.since) >= faultHold) {
			db.fault.Store(nil)
			clear(db.faultOps)
		}
		return
	}
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return
	}
	switch se.Code() & 0xff {
	case sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CORRUPT,
		sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CANTOPEN:
		now := db.Now()
		since := now
		if f := db.fault.Load(); f != nil {
			since = f.since
		}
		if db.faultOps == nil {
			db.faultOps = make(map[string]bool)
		}
		db.faultOps[op] = true
		db.fault.Store(&writeFault{err: err, since: since, at: now})
	}
}

// queryRow runs a read on the read pool.
func (db *DB) queryRow(ctx context.Context, query string, args ...any) *sql.Row {
	st, err := db.readStmts.get(ctx, query)
	if err != nil {
		return db.read.QueryRowContext(ctx, query, args...) // fails again, but as a Row
	}
	return st.QueryRowContext(ctx, args...)
}

// query runs a read on the read pool.
func (db *DB) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	st, err := db.readStmts.get(ctx, query)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}
