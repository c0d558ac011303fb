package main

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/botbridge/botbridge/adapters/matrix"
	"github.com/botbridge/botbridge/adapters/slack"
	"github.com/botbridge/botbridge/bridge"
	"github.com/botbridge/botbridge/store"
	"github.com/botbridge/botbridge/store/postgres"
)

// Store drivers, the values of store.driver.
const (
	DriverSQLite   = "sqlite"
	DriverPostgres = "postgres"
)

// Store is the store the service runs on, of either driver: the bridge's
// store, the adapters' parts of it, plus what the service reads of it
// itself.
type Store interface {
	bridge.Store
	// Store is what the Matrix adapter keeps: its undecryptable events,
	// and the rooms it follows to their upgrades.
	matrix.Store
	// Installs keeps the Slack workspaces installed through OAuth.
	slack.Installs
	// Stats counts the work waiting in the store, for /metrics.
	Stats(ctx context.Context) (store.Stats, error)
	// SQL returns a database/sql pool on the store, for components with
	// tables of their own in it (the Matrix adapter's crypto store).
	SQL() (*sql.DB, error)
	// Close closes the store.
	Close() error
}

// OpenStore opens the store cfg chooses (store.driver), applying the
// migrations it lacks.
func OpenStore(ctx context.Context, cfg StoreConfig) (Store, error) {
	switch cfg.Driver {
	case "", DriverSQLite:
		opts := []store.Option{store.MaxSize(int64(cfg.MaxSizeMB) << 20)}
		if cfg.Sync == "normal" {
			opts = append(opts, store.SyncNormal())
		}
		db, err := store.Open(ctx, cfg.Path, opts...)
		if err != nil {
			return nil, err
		}
		return db, nil
	case DriverPostgres:
		db, err := postgres.Open(ctx, cfg.DSN)
		if err != nil {
			return nil, err
		}
		return pgStore{db}, nil
	}
	return nil, fmt.Errorf("store.driver: %q is not %s or %s", cfg.Driver, DriverSQLite, DriverPostgres)
}

// pgStore is the PostgreSQL store as the service sees it.
type pgStore struct{ *postgres.DB }

// Stats implements Store.
func (s pgStore) Stats(ctx context.Context) (store.Stats, error) {
	st, err := s.DB.Stats(ctx)
	return store.Stats(st), err
}
