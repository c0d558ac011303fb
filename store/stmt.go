package store

import (
	"context"
	"database/sql"
	"errors"
	"sync"
)

// With modernc's SQLite, parsing and planning a small statement costs about
// as much as running it, so the store prepares each statement once per pool
// and keeps it.

// stmtCache holds the prepared statements of one pool, by query text.
type stmtCache struct {
	pool  *sql.DB
	stmts sync.Map // query → *sql.Stmt
}

// get returns the prepared statement of query, preparing it on first use.
// It takes a connection of the pool to prepare, so it must not be called
// while a write transaction holds the write pool's only connection.
func (c *stmtCache) get(ctx context.Context, query string) (*sql.Stmt, error) {
	if st, ok := c.stmts.Load(query); ok {
		return st.(*sql.Stmt), nil
	}
	st, err := c.pool.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	if prev, loaded := c.stmts.LoadOrStore(query, st); loaded {
		st.Close()
		return prev.(*sql.Stmt), nil
	}
	return st, nil
}

func (c *stmtCache) close() error {
	var errs []error
	c.stmts.Range(func(_, st any) bool {
		errs = append(errs, st.(*sql.Stmt).Close())
		return true
	})
	return errors.Join(errs...)
}

// txn is a write transaction. It runs the cached statements of the write
// pool; a statement not cached yet is prepared for this transaction only and
// cached once the transaction is over (see DB.tx).
type txn struct {
	ctx   context.Context
	tx    *sql.Tx
	stmts *stmtCache
	// missed collects the queries of the batch to cache after it.
	missed *[]string
}

func (t *txn) stmt(query string) (*sql.Stmt, error) {
	return t.stmtIn(t.ctx, query)
}

func (t *txn) stmtIn(ctx context.Context, query string) (*sql.Stmt, error) {
	if st, ok := t.stmts.stmts.Load(query); ok {
		return t.tx.StmtContext(ctx, st.(*sql.Stmt)), nil
	}
	*t.missed = append(*t.missed, query)
	return t.tx.PrepareContext(ctx, query)
}

// savepoint runs one of the statements of a batch's savepoints (see
// DB.commit) in ctx: prepared once and cached as the others, as parsing
// them each time costs as much as running them.
func (t *txn) savepoint(ctx context.Context, query string) error {
	st, err := t.stmtIn(ctx, query)
	if err != nil {
		return err
	}
	_, err = st.ExecContext(ctx)
	return err
}

func (t *txn) exec(query string, args ...any) (sql.Result, error) {
	st, err := t.stmt(query)
	if err != nil {
		return nil, err
	}
	return st.ExecContext(t.ctx, args...)
}

func (t *txn) queryRow(query string, args ...any) *sql.Row {
	st, err := t.stmt(query)
	if err != nil {
		return t.tx.QueryRowContext(t.ctx, query, args...) // fails again, but as a Row
	}
	return st.QueryRowContext(t.ctx, args...)
}
