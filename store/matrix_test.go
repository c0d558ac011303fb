package store_test

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestMatrixPendingEvents checks what is SQLite's own of the Matrix
// adapter's waiting events (the contract suite checks the methods): they
// survive a reopening of the file, and the adapter's lookups use indexes.
func TestMatrixPendingEvents(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bridge.db")
	db := openDB(t, path)
	ctx := t.Context()
	base := time.UnixMilli(1_700_000_000_000).UTC()
	for i, ev := range []string{"$1", "$2"} {
		if err := db.AddMatrixPending(ctx, "@bot:x", "!room:x", ev, "@ann:x", `{"event_id":"`+ev+`"}`, base.Add(time.Duration(i)*time.Second)); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("they survive a reopening", func(t *testing.T) {
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		db = openDB(t, path)
		var got []string
		err := db.MatrixPending(ctx, "@bot:x", func(id, _ string, since time.Time) error {
			got = append(got, id+"@"+since.Sub(base).String())
			return nil
		})
		if err != nil || strings.Join(got, ",") != "$1@0s,$2@1s" {
			t.Errorf("got %v, %v after reopening", got, err)
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
