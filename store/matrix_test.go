package store_test

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/botbridge/botbridge/store"
)

// pendingRow is what MatrixPending gives of a row.
type pendingRow struct {
	id, event string
	since     time.Time
}

func matrixPending(t *testing.T, db *store.DB, account string) []pendingRow {
	t.Helper()
	var out []pendingRow
	err := db.MatrixPending(t.Context(), account, func(id, event string, since time.Time) error {
		out = append(out, pendingRow{id, event, since})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestMatrixPendingEvents(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bridge.db")
	db := openDB(t, path)
	ctx := t.Context()
	base := time.UnixMilli(1_700_000_000_000).UTC()
	add := func(account, event string, since time.Time) {
		t.Helper()
		if err := db.AddMatrixPending(ctx, account, "!room:x", event, "@ann:x", `{"event_id":"`+event+`"}`, since); err != nil {
			t.Fatal(err)
		}
	}
	add("@bot:x", "$2", base.Add(2*time.Second))
	add("@bot:x", "$1", base.Add(time.Second))
	add("@bot:x", "$3", base.Add(3*time.Second))
	add("@other:x", "$1", base)

	t.Run("each account's events come oldest first", func(t *testing.T) {
		want := []pendingRow{{"$1", `{"event_id":"$1"}`, base.Add(time.Second)}, {"$2", `{"event_id":"$2"}`, base.Add(2 * time.Second)}, {"$3", `{"event_id":"$3"}`, base.Add(3 * time.Second)}}
		if got := matrixPending(t, db, "@bot:x"); !slices.Equal(got, want) {
			t.Errorf("got %v, want %v", got, want)
		}
	})
	t.Run("adding an event again keeps the first", func(t *testing.T) {
		if err := db.AddMatrixPending(ctx, "@bot:x", "!room:x", "$1", "@ann:x", `{"changed":true}`, base.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if got := matrixPending(t, db, "@bot:x"); len(got) != 3 || got[0] != (pendingRow{"$1", `{"event_id":"$1"}`, base.Add(time.Second)}) {
			t.Errorf("got %v", got)
		}
	})
	t.Run("events are deleted one by one", func(t *testing.T) {
		for _, ev := range []string{"$2", "$2", "$missing"} {
			if err := db.DeleteMatrixPending(ctx, "@bot:x", ev); err != nil {
				t.Fatal(err)
			}
		}
		if got := matrixPending(t, db, "@bot:x"); len(got) != 2 || got[1].event != `{"event_id":"$3"}` {
			t.Errorf("got %v", got)
		}
		if got := matrixPending(t, db, "@other:x"); len(got) != 1 {
			t.Errorf("the other account's events: %v", got)
		}
	})
	t.Run("they survive a reopening", func(t *testing.T) {
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		db = openDB(t, path)
		if got := matrixPending(t, db, "@bot:x"); len(got) != 2 {
			t.Errorf("got %v after reopening", got)
		}
	})
	t.Run("lookups by account, room and sender use indexes", func(t *testing.T) {
		for _, q := range []string{
			"SELECT count(*) FROM matrix_pending WHERE account = '@bot:x' AND room = '!room:x'",
			"SELECT count(*) FROM matrix_pending WHERE account = '@bot:x' AND sender = '@ann:x'",
			"SELECT event FROM matrix_pending WHERE account = '@bot:x' ORDER BY since_ms",
		} {
			rows, err := mustSQL(t, db).QueryContext(ctx, "EXPLAIN QUERY PLAN "+q)
			if err != nil {
				t.Fatal(err)
			}
			var plan strings.Builder
			for rows.Next() {
				var id, parent, unused int
				var detail string
				if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
					t.Fatal(err)
				}
				plan.WriteString(detail + "; ")
			}
			rows.Close()
			if !strings.Contains(plan.String(), "INDEX") {
				t.Errorf("%s: plan %q uses no index", q, plan.String())
			}
		}
	})
}
