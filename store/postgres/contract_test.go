package postgres_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/botbridge/botbridge/store/postgres"
	"github.com/botbridge/botbridge/store/postgres/pgtest"
	"github.com/botbridge/botbridge/store/storetest"
)

// pg is the PostgreSQL server of this package's tests.
var pg pgtest.Server

func TestMain(m *testing.M) {
	code := m.Run()
	if err := pg.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		code = max(code, 1)
	}
	os.Exit(code)
}

// open opens the store on dsn, closed when tb ends.
func open(tb testing.TB, dsn string) *postgres.DB {
	tb.Helper()
	db, err := postgres.Open(tb.Context(), dsn)
	if err != nil {
		tb.Fatalf("open: %v", err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

// rawPool returns a pool on dsn for what the store does not show.
func rawPool(tb testing.TB, dsn string) *pgxpool.Pool {
	tb.Helper()
	pool, err := pgxpool.New(tb.Context(), dsn)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(pool.Close)
	return pool
}

// openSubject opens a store on a new database for the contract suite.
func openSubject(tb testing.TB, now func() time.Time) storetest.Subject {
	tb.Helper()
	dsn := pg.DSN(tb)
	db := open(tb, dsn)
	db.Now = now
	raw := rawPool(tb, dsn)
	return storetest.Subject{
		Store: db,
		Row: func(ctx context.Context, query string, dest ...any) error {
			return raw.QueryRow(ctx, query).Scan(dest...)
		},
		Exec: func(ctx context.Context, query string) error {
			_, err := raw.Exec(ctx, query)
			return err
		},
		Another: func(tb testing.TB) storetest.Store {
			other := open(tb, dsn)
			other.Now = now
			return other
		},
		Close: db.Close,
	}
}

func TestContract(t *testing.T) {
	storetest.Run(t, openSubject)
}
