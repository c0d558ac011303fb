package storetest

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
)

func testDeliveries(t *testing.T, open Opener) {
	t.Run("stored delivery reads back as returned", func(t *testing.T) {
		e := newEnv(t, open)
		db, clk := e.db, e.clk
		it := e.mapConv(convKey("C1"), "ev1", "conv_1")
		clk.Advance(1500 * time.Microsecond)
		d := newDelivery("msg_1", it.Conversation, clk.Now().Add(-time.Second))
		stored := e.addDelivery(d)
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
		e := newEnv(t, open)
		db, clk := e.db, e.clk
		it := e.mapConv(convKey("C1"), "ev1", "conv_1")
		first := e.addDelivery(newDelivery("msg_1", it.Conversation, clk.Now()))
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
		e := newEnv(t, open)
		db, clk := e.db, e.clk
		it := e.mapConv(convKey("C1"), "ev1", "conv_1")
		other := e.mapConv(convKey("C2"), "ev2", "conv_2")
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
			e.addDelivery(newDelivery("msg_"+strconv.Itoa(i), it.Conversation, tc.created))
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
		e := newEnv(t, open)
		db, clk := e.db, e.clk
		a := e.mapConv(convKey("A"), "ev1", "conv_a")
		b := e.mapConv(convKey("B"), "ev2", "conv_b")
		var want []bridge.Delivery
		for i := range 6 {
			conv := a.Conversation
			if i%2 == 1 {
				conv = b.Conversation
			}
			// Creation times run backwards: the order is the store's.
			want = append(want, e.addDelivery(newDelivery("msg_"+strconv.Itoa(i), conv, clk.Now().Add(-time.Duration(i)*time.Second))))
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
		e := newEnv(t, open)
		db, clk := e.db, e.clk
		ctx := t.Context()
		it := e.mapConv(convKey("C1"), "ev1", "conv_1")
		posted := e.addDelivery(newDelivery("msg_posted", it.Conversation, clk.Now()))
		failed := e.addDelivery(newDelivery("msg_failed", it.Conversation, clk.Now()))
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
		if err := e.s.Row(ctx, "SELECT error, state FROM deliveries WHERE message_id = "+lit(string(failed.MessageID)), &reason, &state); err != nil {
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
		e := newEnv(t, open)
		db, clk := e.db, e.clk
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
		e := newEnv(t, open)
		db, clk := e.db, e.clk
		it := e.mapConv(convKey("C1"), "ev1", "conv_1")
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

func testDeliveryPayloads(t *testing.T, open Opener) {
	e := newEnv(t, open)
	db, clk := e.db, e.clk
	it := e.mapConv(convKey("C1"), "ev1", "conv_1")
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
			e.addDelivery(d)
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

func testDeliveryTargets(t *testing.T, open Opener) {
	t.Run("a delivery without a room goes to the conversation's room, then its reply target", func(t *testing.T) {
		e := newEnv(t, open)
		ctx := t.Context()
		key := bridge.ConvKey{Bot: "bot", Scope: bridge.ScopeThread, Room: roomKey("C1", "T1")}
		it := e.enqueue(key, newInbound("ev1", key.Room, e.clk.Now()))
		check := func(name string, d bridge.Delivery, want bridge.ReplyTarget) {
			t.Helper()
			stored := e.addDelivery(d)
			if stored.Target != want {
				t.Errorf("%s: AddDelivery target = %+v, want %+v", name, stored.Target, want)
			}
			if got, err := e.db.Delivery(ctx, d.MessageID); err != nil || got.Target != want {
				t.Errorf("%s: stored target = %+v, %v; want %+v", name, got.Target, err, want)
			}
		}
		d := newDelivery("msg_1", it.Conversation, e.clk.Now())
		d.Target = bridge.ReplyTarget{}
		check("before any reply target", d, bridge.ReplyTarget{Room: key.Room})

		reply := bridge.ReplyTarget{Room: roomKey("C1", "T2"), MessageID: "1.5", UserID: "U7"}
		if err := e.db.MarkInboundSent(ctx, it.ID, 1, "m", true, reply); err != nil {
			t.Fatal(err)
		}
		d = newDelivery("msg_2", it.Conversation, e.clk.Now())
		d.Target = bridge.ReplyTarget{MessageID: "ignored", UserID: "ignored"} // no room: the conversation's target
		check("after a reply target", d, reply)

		own := bridge.ReplyTarget{Room: roomKey("C9", ""), MessageID: "9.9"}
		d = newDelivery("msg_3", it.Conversation, e.clk.Now())
		d.Target = own
		check("with a room of its own", d, own)
	})

	t.Run("a private reply target goes to the conversation's deliveries", func(t *testing.T) {
		e := newEnv(t, open)
		ctx := t.Context()
		it := e.mapConv(convKey("C1"), "cmd-1", "conv_1")
		private := bridge.ReplyTarget{Room: roomKey("C1", ""), UserID: "U1", Ephemeral: true}
		if err := e.db.MarkInboundSent(ctx, it.ID, 1, "m", true, private); err != nil {
			t.Fatal(err)
		}
		if c, err := e.db.Conversation(ctx, it.Conversation); err != nil || c.Reply != private {
			t.Errorf("conversation's reply target %+v, %v; want %+v", c.Reply, err, private)
		}
		d := newDelivery("msg_1", it.Conversation, e.clk.Now())
		d.Target = bridge.ReplyTarget{} // to the conversation's reply target
		if stored := e.addDelivery(d); stored.Target != private {
			t.Errorf("delivery target %+v, want %+v", stored.Target, private)
		}
		own := bridge.ReplyTarget{Room: roomKey("C1", "T1"), UserID: "U2", Ephemeral: true}
		d = newDelivery("msg_2", it.Conversation, e.clk.Now())
		d.Target = own
		if stored := e.addDelivery(d); stored.Target != own {
			t.Errorf("own private target %+v, want %+v", stored.Target, own)
		}
		pending, err := e.db.PendingDeliveries(ctx, 0)
		if err != nil || len(pending) != 2 || pending[0].Target != private || pending[1].Target != own {
			t.Errorf("pending %+v, %v", pending, err)
		}
		if got, err := e.db.Delivery(ctx, "msg_2"); err != nil || got.Target != own {
			t.Errorf("Delivery = %+v, %v", got.Target, err)
		}
		public := bridge.ReplyTarget{Room: roomKey("C1", ""), UserID: "U1"}
		if err := e.db.MarkInboundSent(ctx, e.enqueue(convKey("C1"), newInbound("ev2", roomKey("C1", ""), e.clk.Now())).ID, 1, "m", true, public); err != nil {
			t.Fatal(err)
		}
		if c, err := e.db.Conversation(ctx, it.Conversation); err != nil || c.Reply != public {
			t.Errorf("after a public message: reply target %+v, %v; want %+v", c.Reply, err, public)
		}
	})

	t.Run("the platform ids of posted parts read back", func(t *testing.T) {
		e := newEnv(t, open)
		ctx := t.Context()
		it := e.mapConv(convKey("C1"), "ev1", "conv_1")
		for i, parts := range []bridge.Parts{{"1700.1"}, {"1700.1", "", "1700.3"}, {"$ev,with,commas:hs"}} {
			d := e.addDelivery(newDelivery("msg_"+strconv.Itoa(i), it.Conversation, e.clk.Now()))
			if err := e.db.MarkDelivered(ctx, d.MessageID, parts); err != nil {
				t.Fatal(err)
			}
			if got, err := e.db.Delivery(ctx, d.MessageID); err != nil || !slices.Equal(got.Posted, parts) {
				t.Errorf("posted %q read back as %q, %v", parts, got.Posted, err)
			}
		}
	})

	t.Run("platform ids stored before parts were explicit read back", func(t *testing.T) {
		e := newEnv(t, open)
		ctx := t.Context()
		it := e.mapConv(convKey("C1"), "ev1", "conv_1")
		for i, tc := range []struct {
			stored string
			want   bridge.Parts
		}{{"1700.1", bridge.Parts{"1700.1"}}, {"1700.1,1700.2", bridge.Parts{"1700.1", "1700.2"}}} {
			d := e.addDelivery(newDelivery("old_"+strconv.Itoa(i), it.Conversation, e.clk.Now()))
			e.exec("UPDATE deliveries SET state = 'posted', platform_id = " + lit(tc.stored) + ", done_ms = 1 WHERE message_id = " + lit(string(d.MessageID)))
			if got, err := e.db.Delivery(ctx, d.MessageID); err != nil || !slices.Equal(got.Posted, tc.want) {
				t.Errorf("stored %q read back as %q, %v; want %q", tc.stored, got.Posted, err, tc.want)
			}
		}
	})
}
