package store_test

import (
	"context"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/botbridge/botbridge/store/storetest"
)

// openSubject opens a new store in a temporary directory for the contract
// suite.
func openSubject(tb testing.TB, now func() time.Time) storetest.Subject {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "bridge.db")
	db := openDB(tb, path)
	db.Now = now
	return storetest.Subject{
		Store: db,
		Row: func(ctx context.Context, query string, dest ...any) error {
			return mustSQL(tb, db).QueryRowContext(ctx, query).Scan(dest...)
		},
		Exec: func(ctx context.Context, query string) error {
			_, err := mustSQL(tb, db).ExecContext(ctx, query)
			return err
		},
		Another: func(tb testing.TB) storetest.Store {
			other := openDB(tb, path)
			other.Now = now
			return other
		},
		Close:       db.Close,
		ClaimsOnAdd: true,
	}
}

func TestContract(t *testing.T) {
	storetest.Run(t, openSubject)
}

func TestPingWritesAHeartbeat(t *testing.T) {
	db, clk := newDB(t)
	if err := db.Ping(t.Context()); err != nil {
		t.Fatal(err)
	}
	if v, err := db.Cursor(t.Context(), "store.heartbeat"); err != nil || v != strconv.FormatInt(clk.Now().UnixMilli(), 10) {
		t.Errorf("heartbeat = %q, %v", v, err)
	}
}
