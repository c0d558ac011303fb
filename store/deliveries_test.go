package store_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/botbridge/botbridge/bridge"
	"github.com/botbridge/botbridge/chat"
	"github.com/botbridge/botbridge/store"
)

func newDelivery(id string, conv int64, created time.Time) bridge.Delivery {
	return bridge.Delivery{
		MessageID:    chat.MessageID(id),
		Conversation: conv,
		Bot:          "bot",
		Target:       bridge.ReplyTarget{Room: roomKey("C1", "1700.1"), MessageID: "1700.2", UserID: "U1"},
		Payload:      chat.Text{Text: "answer " + id},
		CreatedAt:    created,
	}
}

func addDelivery(t *testing.T, db *store.DB, d bridge.Delivery) bridge.Delivery {
	t.Helper()
	stored, created, err := db.AddDelivery(t.Context(), d)
	if err != nil || !created {
		t.Fatalf("add delivery %s: created=%v, %v", d.MessageID, created, err)
	}
	return stored
}

func TestDeliveries(t *testing.T) {
	t.Run("stored delivery reads back as returned", func(t *testing.T) {
		db, clk := newDB(t)
		it := mapConv(t, db, convKey("C1"), "ev1", "conv_1")
		clk.Advance(1500 * time.Microsecond)
		d := newDelivery("msg_1", it.Conversation, clk.Now().Add(-time.Second))
		stored := addDelivery(t, db, d)
		want := d
		want.Seq = stored.Seq
		want.CreatedAt = d.CreatedAt.Truncate(time.Millisecond)
		want.ReceivedAt = clk.Now().Truncate(time.Millisecond)
		if stored.Seq <= 0 || !reflect.DeepEqual(stored, want) {
			t.Errorf("AddDelivery\n got %+v\nwant %+v", stored, want)
		}
		if got, err := db.Delivery(t.Context(), "msg_1"); err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("Delivery\n got %+v, %v\nwant %+v", got, err, want)
		}
	})

	t.Run("duplicate returns the stored delivery", func(t *testing.T) {
		db, clk := newDB(t)
		it := mapConv(t, db, convKey("C1"), "ev1", "conv_1")
		first := addDelivery(t, db, newDelivery("msg_1", it.Conversation, clk.Now()))
		clk.Advance(time.Minute)
		again := newDelivery("msg_1", it.Conversation, clk.Now())
		again.Payload = chat.Text{Text: "changed"}
		got, created, err := db.AddDelivery(t.Context(), again)
		if err != nil || created || !reflect.DeepEqual(got, first) {
			t.Errorf("duplicate: created=%v, %v\n got %+v\nwant %+v", created, err, got, first)
		}
		if c, err := db.Conversation(t.Context(), it.Conversation); err != nil || !c.Cursor.Equal(first.CreatedAt) {
			t.Errorf("duplicate moved the cursor to %v, %v", c.Cursor, err)
		}
		if ds, err := db.PendingDeliveries(t.Context(), 0); err != nil || len(ds) != 1 {
			t.Errorf("pending = %d, %v; want 1", len(ds), err)
		}
	})

	t.Run("cursor follows the newest creation time, never back", func(t *testing.T) {
		db, clk := newDB(t)
		it := mapConv(t, db, convKey("C1"), "ev1", "conv_1")
		other := mapConv(t, db, convKey("C2"), "ev2", "conv_2")
		t0 := clk.Now()
		for i, tc := range []struct {
			created time.Time
			want    time.Time
		}{
			{t0.Add(5 * time.Second), t0.Add(5 * time.Second)},
			{t0.Add(2 * time.Second), t0.Add(5 * time.Second)},
			{t0.Add(9 * time.Second), t0.Add(9 * time.Second)},
			{t0.Add(9 * time.Second), t0.Add(9 * time.Second)},
		} {
			clk.Advance(time.Second)
			addDelivery(t, db, newDelivery("msg_"+strconv.Itoa(i), it.Conversation, tc.created))
			c, err := db.Conversation(t.Context(), it.Conversation)
			if err != nil {
				t.Fatal(err)
			}
			if !c.Cursor.Equal(tc.want) || !c.ActiveAt.Equal(clk.Now()) {
				t.Errorf("after delivery %d: cursor %v, active %v; want %v, %v", i, c.Cursor, c.ActiveAt, tc.want, clk.Now())
			}
		}
		if c, err := db.Conversation(t.Context(), other.Conversation); err != nil || !c.Cursor.IsZero() {
			t.Errorf("other conversation's cursor = %v, %v", c.Cursor, err)
		}
	})

	t.Run("pending in seq order, limited", func(t *testing.T) {
		db, clk := newDB(t)
		a := mapConv(t, db, convKey("A"), "ev1", "conv_a")
		b := mapConv(t, db, convKey("B"), "ev2", "conv_b")
		var want []bridge.Delivery
		for i := range 6 {
			conv := a.Conversation
			if i%2 == 1 {
				conv = b.Conversation
			}
			// Creation times run backwards: the order is the store's.
			want = append(want, addDelivery(t, db, newDelivery("msg_"+strconv.Itoa(i), conv, clk.Now().Add(-time.Duration(i)*time.Second))))
		}
		if err := db.MarkDelivered(t.Context(), want[1].MessageID, bridge.Parts{"p1"}); err != nil {
			t.Fatal(err)
		}
		if err := db.FailDelivery(t.Context(), want[3].MessageID, "room gone"); err != nil {
			t.Fatal(err)
		}
		want = []bridge.Delivery{want[0], want[2], want[4], want[5]}
		for _, tc := range []struct{ limit, n int }{{0, 4}, {-1, 4}, {2, 2}, {10, 4}} {
			got, err := db.PendingDeliveries(t.Context(), tc.limit)
			if err != nil || !reflect.DeepEqual(got, want[:tc.n]) {
				t.Errorf("PendingDeliveries(%d) = %v, %v; want %v", tc.limit, got, err, want[:tc.n])
			}
		}
	})

	t.Run("posting and failing", func(t *testing.T) {
		db, clk := newDB(t)
		ctx := t.Context()
		it := mapConv(t, db, convKey("C1"), "ev1", "conv_1")
		posted := addDelivery(t, db, newDelivery("msg_posted", it.Conversation, clk.Now()))
		failed := addDelivery(t, db, newDelivery("msg_failed", it.Conversation, clk.Now()))
		if got, err := db.Delivery(ctx, posted.MessageID); err != nil || got.Posted != nil {
			t.Errorf("before the post: %+v, %v", got, err)
		}
		if err := db.MarkDelivered(ctx, posted.MessageID, bridge.Parts{"1700.9"}); err != nil {
			t.Fatal(err)
		}
		if got, err := db.Delivery(ctx, posted.MessageID); err != nil || !slices.Equal(got.Posted, bridge.Parts{"1700.9"}) {
			t.Errorf("posted delivery = %+v, %v", got, err)
		}
		if err := db.FailDelivery(ctx, failed.MessageID, "channel_not_found"); err != nil {
			t.Fatal(err)
		}
		var reason, state string
		if err := mustSQL(t, db).QueryRowContext(ctx, "SELECT error, state FROM deliveries WHERE message_id = ?", failed.MessageID).Scan(&reason, &state); err != nil {
			t.Fatal(err)
		}
		if reason != "channel_not_found" || state != "failed" {
			t.Errorf("failed delivery: reason %q, state %q", reason, state)
		}
		if ds, err := db.PendingDeliveries(ctx, 0); err != nil || len(ds) != 0 {
			t.Errorf("pending = %v, %v; want none", ds, err)
		}
		// Finished deliveries take no more changes.
		for _, id := range []chat.MessageID{posted.MessageID, failed.MessageID} {
			for name, err := range map[string]error{
				"MarkDelivered": db.MarkDelivered(ctx, id, bridge.Parts{"other"}),
				"FailDelivery":  db.FailDelivery(ctx, id, "other"),
			} {
				if !errors.Is(err, bridge.ErrNotFound) {
					t.Errorf("%s(%s): err = %v, want ErrNotFound", name, id, err)
				}
			}
		}
		if got, err := db.Delivery(ctx, posted.MessageID); err != nil || !slices.Equal(got.Posted, bridge.Parts{"1700.9"}) {
			t.Errorf("posted delivery changed: %+v, %v", got, err)
		}
	})

	t.Run("unknown ids are not found", func(t *testing.T) {
		db, clk := newDB(t)
		ctx := t.Context()
		if _, err := db.Delivery(ctx, "msg_x"); !errors.Is(err, bridge.ErrNotFound) {
			t.Errorf("Delivery: %v", err)
		}
		for name, err := range map[string]error{
			"MarkDelivered": db.MarkDelivered(ctx, "msg_x", bridge.Parts{"p"}),
			"FailDelivery":  db.FailDelivery(ctx, "msg_x", "r"),
		} {
			if !errors.Is(err, bridge.ErrNotFound) {
				t.Errorf("%s: err = %v, want ErrNotFound", name, err)
			}
		}
		_, created, err := db.AddDelivery(ctx, newDelivery("msg_1", 4242, clk.Now()))
		if !errors.Is(err, bridge.ErrNotFound) || created {
			t.Errorf("delivery to an unknown conversation: created=%v, err = %v; want ErrNotFound", created, err)
		}
	})

	t.Run("bad input is refused without a store error", func(t *testing.T) {
		db, clk := newDB(t)
		it := mapConv(t, db, convKey("C1"), "ev1", "conv_1")
		noID := newDelivery("", it.Conversation, clk.Now())
		noPayload := newDelivery("msg_1", it.Conversation, clk.Now())
		noPayload.Payload = nil
		for name, d := range map[string]bridge.Delivery{"no message id": noID, "no payload": noPayload} {
			if _, created, err := db.AddDelivery(t.Context(), d); err == nil || created || errors.Is(err, bridge.ErrStore) {
				t.Errorf("%s: created=%v, err=%v; want a plain error", name, created, err)
			}
		}
	})
}

func TestDeliveryPayloads(t *testing.T) {
	db, clk := newDB(t)
	it := mapConv(t, db, convKey("C1"), "ev1", "conv_1")
	for i, tc := range []struct {
		name    string
		payload chat.Payload
		want    chat.Payload
	}{
		{name: "text", payload: chat.Text{Text: "hi ☃"}},
		{name: "markdown", payload: chat.Markdown{Markdown: "**b**"}},
		{name: "card", payload: chat.Card{Title: "T", ImageURL: "https://x/i.png", Actions: []chat.CardAction{{Action: chat.ActionURL, Label: "Go", Value: "https://x"}}}},
		{name: "choice", payload: chat.Choice{Text: "Pick", Options: []chat.ChoiceOption{{Label: "A", Value: "a"}, {Label: "B", Value: "b"}}}},
		{name: "bloc", payload: chat.Bloc{Items: []chat.Payload{chat.Text{Text: "a"}, chat.Image{ImageURL: "https://x/i.png"}}}},
		{name: "location", payload: chat.Location{Latitude: 45.5017, Longitude: -73.5673, Title: "MTL"}},
		{
			name:    "unknown type",
			payload: chat.RawPayload{Type: "x-poll", JSON: json.RawMessage(`{"type":"x-poll","question":"Q?","options":[1,2]}`)},
		},
		{
			name:    "raw payload built by hand",
			payload: chat.RawPayload{Type: "x-ping"},
			want:    chat.RawPayload{Type: "x-ping", JSON: json.RawMessage(`{"type":"x-ping"}`)},
		},
	} {
		t.Run(tc.name+" round-trips", func(t *testing.T) {
			d := newDelivery("msg_"+strconv.Itoa(i), it.Conversation, clk.Now())
			d.Payload = tc.payload
			addDelivery(t, db, d)
			got, err := db.Delivery(t.Context(), d.MessageID)
			if err != nil {
				t.Fatal(err)
			}
			want := tc.want
			if want == nil {
				want = tc.payload
			}
			if !reflect.DeepEqual(got.Payload, want) {
				t.Errorf("payload = %#v, want %#v", got.Payload, want)
			}
		})
	}
}

func TestPrune(t *testing.T) {
	t.Run("only finished rows older than the cutoff go", testPruneCutoff)
	t.Run("more rows than one batch all go", func(t *testing.T) {
		db, clk := newDB(t)
		ctx := t.Context()
		it := mapConv(t, db, convKey("C1"), "ev", "conv_1")
		const n = 2345 // more than two batches
		for i := range n {
			item := enqueue(t, db, convKey("C1"), newInbound("ev"+strconv.Itoa(i), roomKey("C1", ""), clk.Now()))
			if err := db.FailInbound(ctx, item.ID, "r"); err != nil {
				t.Fatal(err)
			}
			d := addDelivery(t, db, newDelivery("msg_"+strconv.Itoa(i), it.Conversation, clk.Now()))
			if err := db.MarkDelivered(ctx, d.MessageID, bridge.Parts{"p"}); err != nil {
				t.Fatal(err)
			}
		}
		clk.Advance(time.Second)
		if got, err := db.Prune(ctx, bridge.PruneBefore{Finished: clk.Now()}); err != nil || got != 2*n {
			t.Errorf("Prune = %d, %v; want %d", got, err, 2*n)
		}
		if left := count(t, db, "SELECT (SELECT count(*) FROM inbound) + (SELECT count(*) FROM deliveries)"); left != 1 {
			t.Errorf("%d rows left, want the pending one", left)
		}
	})
}

func testPruneCutoff(t *testing.T) {
	db, clk := newDB(t)
	ctx := t.Context()
	key := convKey("C1")
	it := mapConv(t, db, key, "stale-pending", "conv_1") // stays pending
	staleDelivery := addDelivery(t, db, newDelivery("msg_stale", it.Conversation, clk.Now()))

	clk.Advance(time.Hour)
	t1 := clk.Now()
	sent := enqueue(t, db, key, newInbound("sent", key.Room, clk.Now()))
	posted := addDelivery(t, db, newDelivery("msg_posted", it.Conversation, clk.Now()))
	if err := db.MarkInboundSent(ctx, sent.ID, 1, "m", true, bridge.ReplyTarget{}); err != nil {
		t.Fatal(err)
	}
	if err := db.MarkDelivered(ctx, posted.MessageID, bridge.Parts{"p"}); err != nil {
		t.Fatal(err)
	}

	clk.Advance(time.Hour)
	t2 := clk.Now()
	failed := enqueue(t, db, key, newInbound("failed", key.Room, clk.Now()))
	gaveUp := addDelivery(t, db, newDelivery("msg_failed", it.Conversation, clk.Now()))
	if err := db.FailInbound(ctx, failed.ID, "r"); err != nil {
		t.Fatal(err)
	}
	if err := db.FailDelivery(ctx, gaveUp.MessageID, "r"); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Hour)

	exists := func(table, column string, v any) bool {
		return count(t, db, "SELECT count(*) FROM "+table+" WHERE "+column+" = ?", v) == 1
	}
	for _, step := range []struct {
		before time.Time
		want   int64
		gone   []string
	}{
		{t1, 0, nil}, // finished exactly at t1 is not before t1
		{t1.Add(time.Millisecond), 2, []string{"sent", "msg_posted"}},
		{t2.Add(time.Minute), 2, []string{"failed", "msg_failed"}},
		{clk.Now().Add(24 * time.Hour), 0, nil},
	} {
		n, err := db.Prune(ctx, bridge.PruneBefore{Finished: step.before})
		if err != nil || n != step.want {
			t.Errorf("Prune(%v) = %d, %v; want %d", step.before, n, err, step.want)
		}
		for _, g := range step.gone {
			if exists("inbound", "event_key", g) || exists("deliveries", "message_id", g) {
				t.Errorf("%s not pruned", g)
			}
		}
	}
	if !exists("inbound", "event_key", "stale-pending") || !exists("deliveries", "message_id", staleDelivery.MessageID) {
		t.Error("pending rows were pruned")
	}
	if n := count(t, db, "SELECT count(*) FROM conversations"); n != 1 {
		t.Errorf("%d conversations after prune, want 1", n)
	}
}
