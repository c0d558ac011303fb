package postgres

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/botbridge/botbridge/bridge"
)

// sqlConns is the size of the pool SQL returns.
const sqlConns = 4

// SQL returns a database/sql pool of its own on the store's database,
// through pgx's driver, for components that keep their own tables there
// (mautrix's room state cache and crypto store): a few connections apart
// from the bridge's pool, so that a long transaction of theirs cannot keep
// the bridge waiting. Close closes it too.
func (db *DB) SQL() (*sql.DB, error) {
	db.sqlOnce.Do(func() {
		cfg := db.pool.Config()
		cfg.MaxConns = sqlConns
		pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
		if err != nil {
			db.sqlErr = fmt.Errorf("%w: open a pool for the Matrix adapter's tables: %v", bridge.ErrStore, err)
			return
		}
		db.sqlPool, db.sqlDB = pool, stdlib.OpenDBFromPool(pool)
	})
	return db.sqlDB, db.sqlErr
}
