package storetest

import (
	"errors"
	"slices"
	"testing"
	"time"
)

// pendingRow is what MatrixPending gives of a row.
type pendingRow struct {
	id, event string
	since     time.Time
}

func matrixPending(t *testing.T, db Store, account string) []pendingRow {
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

// testMatrixPending checks the Matrix adapter's part of the store: the
// encrypted events that wait for their keys, one row each.
func testMatrixPending(t *testing.T, open Opener) {
	e := newEnv(t, open)
	db := e.db
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
	add("@bot:x", "$3b", base.Add(3*time.Second)) // as old as $3, kept after it
	add("@other:x", "$1", base)
	row := func(id string, since time.Duration) pendingRow {
		return pendingRow{id, `{"event_id":"` + id + `"}`, base.Add(since)}
	}

	t.Run("each account's events come oldest first", func(t *testing.T) {
		want := []pendingRow{row("$1", time.Second), row("$2", 2*time.Second), row("$3", 3*time.Second), row("$3b", 3*time.Second)}
		if got := matrixPending(t, db, "@bot:x"); !slices.Equal(got, want) {
			t.Errorf("got %v, want %v", got, want)
		}
		if got := matrixPending(t, db, "@nobody:x"); len(got) != 0 {
			t.Errorf("an account without events: %v", got)
		}
	})
	t.Run("adding an event again keeps the first", func(t *testing.T) {
		if err := db.AddMatrixPending(ctx, "@bot:x", "!room:x", "$1", "@ann:x", `{"changed":true}`, base.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if got := matrixPending(t, db, "@bot:x"); len(got) != 4 || got[0] != row("$1", time.Second) {
			t.Errorf("got %v", got)
		}
	})
	t.Run("the first error of each ends the listing", func(t *testing.T) {
		stop := errors.New("stop")
		calls := 0
		err := db.MatrixPending(ctx, "@bot:x", func(string, string, time.Time) error { calls++; return stop })
		if !errors.Is(err, stop) || calls != 1 {
			t.Errorf("MatrixPending = %v after %d calls; want each's error after one", err, calls)
		}
	})
	t.Run("events are deleted one by one", func(t *testing.T) {
		for _, ev := range []string{"$2", "$2", "$missing"} {
			if err := db.DeleteMatrixPending(ctx, "@bot:x", ev); err != nil {
				t.Fatal(err)
			}
		}
		if got := matrixPending(t, db, "@bot:x"); len(got) != 3 || got[1] != row("$3", 3*time.Second) {
			t.Errorf("got %v", got)
		}
		if got := matrixPending(t, db, "@other:x"); len(got) != 1 {
			t.Errorf("the other account's events: %v", got)
		}
	})
	t.Run("another process sees them", func(t *testing.T) {
		if got := matrixPending(t, e.s.Another(t), "@bot:x"); len(got) != 3 {
			t.Errorf("got %v from another handle", got)
		}
	})
	t.Run("no account or event id is refused", func(t *testing.T) {
		for _, tc := range [][2]string{{"", "$9"}, {"@bot:x", ""}} {
			if err := db.AddMatrixPending(ctx, tc[0], "!room:x", tc[1], "@ann:x", "{}", base); err == nil {
				t.Errorf("AddMatrixPending(%q, %q) succeeded", tc[0], tc[1])
			}
		}
	})
}
