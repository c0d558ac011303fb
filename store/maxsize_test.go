package store_test

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/botbridge/botbridge/bridge"
	"github.com/botbridge/botbridge/store"
)

// fill enqueues messages with large texts until the store refuses one, and
// returns that error and how many went in.
func fill(t *testing.T, db *store.DB, key bridge.ConvKey) (int, error) {
	t.Helper()
	for i := range 10_000 {
		in := newInbound(fmt.Sprintf("fill-%d", i), key.Room, db.Now())
		in.Text = strings.Repeat("x", 4000)
		if _, _, err := db.EnqueueInbound(t.Context(), key, in, bridge.RoomKey{}); err != nil {
			return i, err
		}
	}
	t.Fatal("10,000 messages of 4 KB fit in a store capped at 1 MB")
	return 0, nil
}

func TestMaxSize(t *testing.T) {
	const mb = 1 << 20
	path := filepath.Join(t.TempDir(), "bridge.db")
	key := convKey("C1")

	db, err := store.Open(t.Context(), path, store.MaxSize(mb))
	if err != nil {
		t.Fatal(err)
	}
	n, err := fill(t, db, key)
	t.Run("a write past the cap fails as on a full disk", func(t *testing.T) {
		if n < 100 {
			t.Errorf("only %d messages of 4 KB went into 1 MB", n)
		}
		if !errors.Is(err, bridge.ErrStore) || !strings.Contains(err.Error(), "database or disk is full") ||
			!strings.Contains(err.Error(), "the disk is full") {
			t.Errorf("error %v; want bridge.ErrStore with SQLite's full error and the hint", err)
		}
		var size int64
		if err := mustSQL(t, db).QueryRowContext(t.Context(),
			"SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()").Scan(&size); err != nil {
			t.Fatal(err)
		}
		if size > mb {
			t.Errorf("the store grew to %d bytes past its cap of %d", size, mb)
		}
	})
	t.Run("Ping reports the full store", func(t *testing.T) {
		if err := db.Ping(t.Context()); err == nil || !strings.Contains(err.Error(), "full") {
			t.Errorf("Ping on a full store: %v; want an error saying it is full", err)
		}
	})
	t.Run("what is stored stays readable", func(t *testing.T) {
		items, err := db.PendingInbound(t.Context(), 0)
		if err != nil || len(items) != n {
			t.Errorf("%d pending items, %v; want %d", len(items), err, n)
		}
	})
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	t.Run("a cap below the store's size refuses to open", func(t *testing.T) {
		_, err := store.Open(t.Context(), path, store.MaxSize(mb/2))
		if !errors.Is(err, bridge.ErrStore) || !strings.Contains(err.Error(), "store.max_size_mb") {
			t.Errorf("open with half the cap: %v; want an error naming store.max_size_mb", err)
		}
	})
	t.Run("a larger cap lets writes in again", func(t *testing.T) {
		db := openDBWith(t, path, store.MaxSize(2*mb))
		if err := db.Ping(t.Context()); err != nil {
			t.Errorf("Ping with room again: %v", err)
		}
		m, err := fill(t, db, key)
		if m < 100 || !strings.Contains(fmt.Sprint(err), "database or disk is full") {
			t.Errorf("%d more messages before %v; want about as many as the first MB took", m, err)
		}
	})
	t.Run("no cap: the store grows", func(t *testing.T) {
		db := openDBWith(t, path)
		in := newInbound("after", key.Room, db.Now())
		in.Text = strings.Repeat("y", 100_000)
		if _, _, err := db.EnqueueInbound(t.Context(), key, in, bridge.RoomKey{}); err != nil {
			t.Errorf("enqueue without a cap: %v", err)
		}
	})
}

func openDBWith(t *testing.T, path string, opts ...store.Option) *store.DB {
	t.Helper()
	db, err := store.Open(t.Context(), path, opts...)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// TestFullStoreStaysFaultyUntilItsWritesSucceed checks that Ping keeps
// reporting a full disk while only updates in place succeed: a full store
// takes a lease's renewal but no new message.
func TestFullStoreStaysFaultyUntilItsWritesSucceed(t *testing.T) {
	const mb = 1 << 20
	path := filepath.Join(t.TempDir(), "bridge.db")
	key := convKey("C1")
	db := openDBWith(t, path, store.MaxSize(mb))
	now := time.Now()
	db.Now = func() time.Time { return now }
	// A lease to renew in place once the store is full.
	if _, err := db.TakeLeases(t.Context(), "r1", []string{"shard:0"}, time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := fill(t, db, key); err == nil {
		t.Fatal("the store never filled up")
	}
	full := func(t *testing.T, want bool) {
		t.Helper()
		err := db.Ping(t.Context())
		if got := err != nil && strings.Contains(err.Error(), "database or disk is full"); got != want {
			t.Errorf("Ping: %v; want SQLite's full error: %v", err, want)
		}
	}
	full(t, true)
	if _, err := db.TakeLeases(t.Context(), "r1", []string{"shard:0"}, time.Minute); err != nil {
		t.Fatalf("renew a lease in a full store: %v", err)
	}
	t.Run("an update in place proves nothing", func(t *testing.T) { full(t, true) })
	t.Run("neither does Ping's heartbeat, however long ago the fault began", func(t *testing.T) {
		now = now.Add(2 * time.Minute)
		full(t, true)
		full(t, true)
	})
	t.Run("a write of another kind clears it once the fault is a minute old", func(t *testing.T) {
		if _, err := db.TakeLeases(t.Context(), "r1", []string{"shard:0"}, time.Minute); err != nil {
			t.Fatal(err)
		}
		full(t, false)
	})
	t.Run("a write of the kind that failed clears it at once", func(t *testing.T) {
		if _, err := fill(t, db, key); err == nil {
			t.Fatal("the store has room again")
		}
		full(t, true)
		if _, err := db.TakeLeases(t.Context(), "r1", []string{"shard:0"}, time.Minute); err != nil {
			t.Fatal(err)
		}
		full(t, true)
		// A duplicate stores nothing and succeeds: the kind that failed.
		in := newInbound("fill-0", key.Room, db.Now())
		in.Text = strings.Repeat("x", 4000)
		if _, created, err := db.EnqueueInbound(t.Context(), key, in, bridge.RoomKey{}); err != nil || created {
			t.Fatalf("enqueue a duplicate: created %v, %v", created, err)
		}
		full(t, false)
	})
}
