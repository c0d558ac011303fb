package storetest

import (
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/botbridge/botbridge/bridge"
	"github.com/botbridge/botbridge/chat"
)

// sameItem reports how got differs from want: times must be the same instant
// with the same offset (their *time.Location may differ after JSON).
func sameItem(t *testing.T, got, want bridge.OutboxItem) {
	t.Helper()
	if !got.Inbound.Time.Equal(want.Inbound.Time) {
		t.Errorf("inbound time = %v, want %v", got.Inbound.Time, want.Inbound.Time)
	}
	_, gotOff := got.Inbound.Time.Zone()
	_, wantOff := want.Inbound.Time.Zone()
	if gotOff != wantOff {
		t.Errorf("inbound time offset = %d, want %d", gotOff, wantOff)
	}
	got.Inbound.Time, want.Inbound.Time = time.Time{}, time.Time{}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("item\n got %+v\nwant %+v", got, want)
	}
}

func testEnqueueInbound(t *testing.T, open Opener) {
	t.Run("first message creates the conversation, later ones reuse it", func(t *testing.T) {
		e := newEnv(t, open)
		db, clk := e.db, e.clk
		key := convKey("C1")
		first := e.enqueue(key, newInbound("ev1", key.Room, clk.Now()))
		c, err := db.Conversation(t.Context(), first.Conversation)
		if err != nil {
			t.Fatal(err)
		}
		want := bridge.Conversation{ID: first.Conversation, Key: key, ActiveAt: clk.Now()}
		if !reflect.DeepEqual(c, want) {
			t.Errorf("conversation\n got %+v\nwant %+v", c, want)
		}
		clk.Advance(time.Second)
		second := e.enqueue(key, newInbound("ev2", key.Room, clk.Now()))
		if second.Conversation != first.Conversation || second.ID <= first.ID {
			t.Errorf("second item %d in conversation %d; first %d in %d", second.ID, second.Conversation, first.ID, first.Conversation)
		}
		if n := e.count("SELECT count(*) FROM conversations"); n != 1 {
			t.Errorf("%d conversations, want 1", n)
		}
	})

	t.Run("keys differing in any part are different conversations", func(t *testing.T) {
		e := newEnv(t, open)
		db, clk := e.db, e.clk
		base := bridge.ConvKey{Bot: "bot", Scope: bridge.ScopeUser, Room: roomKey("C1", "T1"), User: "U1"}
		variants := []func(*bridge.ConvKey){
			func(*bridge.ConvKey) {},
			func(k *bridge.ConvKey) { k.Bot = "other" },
			func(k *bridge.ConvKey) { k.Scope = bridge.ScopeThread },
			func(k *bridge.ConvKey) { k.Room.Platform = bridge.PlatformMatrix },
			func(k *bridge.ConvKey) { k.Room.Room = "C2" },
			func(k *bridge.ConvKey) { k.Room.Thread = "" },
			func(k *bridge.ConvKey) { k.User = "" },
		}
		seen := map[int64]bool{}
		for i, change := range variants {
			key := base
			change(&key)
			it := e.enqueue(key, newInbound("ev"+strconv.Itoa(i), key.Room, clk.Now()))
			if seen[it.Conversation] {
				t.Errorf("variant %d (%s) shares conversation %d", i, key, it.Conversation)
			}
			seen[it.Conversation] = true
			c, err := db.Conversation(t.Context(), it.Conversation)
			if err != nil || c.Key != key {
				t.Errorf("conversation key = %+v, %v; want %+v", c.Key, err, key)
			}
		}
	})

	t.Run("duplicate event changes nothing", func(t *testing.T) {
		e := newEnv(t, open)
		db, clk := e.db, e.clk
		key := convKey("C1")
		first := e.enqueue(key, newInbound("ev1", key.Room, clk.Now()))
		clk.Advance(time.Minute)
		again := newInbound("ev1", key.Room, clk.Now())
		again.Text = "redelivered, different text"
		engage := roomKey("C1", "T9")
		got, created, err := db.EnqueueInbound(t.Context(), convKey("C2"), again, engage)
		if err != nil || created {
			t.Fatalf("created=%v, %v; want a duplicate", created, err)
		}
		sameItem(t, got, first)
		pending, err := db.PendingInbound(t.Context(), 0)
		if err != nil || len(pending) != 1 {
			t.Fatalf("pending = %d items, %v; want 1", len(pending), err)
		}
		sameItem(t, pending[0], first)
		if engaged, err := db.ThreadEngaged(t.Context(), "bot", engage); err != nil || engaged {
			t.Errorf("duplicate engaged its thread: %v, %v", engaged, err)
		}
		if n := e.count("SELECT count(*) FROM conversations"); n != 1 {
			t.Errorf("duplicate made a conversation: %d conversations", n)
		}
	})

	t.Run("same event key on another platform is another event", func(t *testing.T) {
		e := newEnv(t, open)
		clk := e.clk
		slack := e.enqueue(convKey("C1"), newInbound("ev1", roomKey("C1", ""), clk.Now()))
		mkey := bridge.ConvKey{Bot: "bot", Scope: bridge.ScopeRoom, Room: bridge.RoomKey{Platform: bridge.PlatformMatrix, Room: "!r:hs"}}
		matrix := e.enqueue(mkey, newInbound("ev1", mkey.Room, clk.Now()))
		if matrix.ID == slack.ID || matrix.Conversation == slack.Conversation {
			t.Errorf("matrix item %+v collides with slack item %+v", matrix, slack)
		}
	})

	t.Run("engage marks the thread for the bot", func(t *testing.T) {
		e := newEnv(t, open)
		db, clk := e.db, e.clk
		key := convKey("C1")
		thread := roomKey("C1", "1700000000.000100")
		if _, _, err := db.EnqueueInbound(t.Context(), key, newInbound("ev1", key.Room, clk.Now()), thread); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			bot    string
			thread bridge.RoomKey
			want   bool
		}{
			{"bot", thread, true},
			{"other", thread, false},
			{"bot", roomKey("C1", "1700000000.000200"), false},
			{"bot", roomKey("C2", thread.Thread), false},
			{"bot", bridge.RoomKey{Platform: bridge.PlatformMatrix, Room: "C1", Thread: thread.Thread}, false},
		} {
			if got, err := db.ThreadEngaged(t.Context(), tc.bot, tc.thread); err != nil || got != tc.want {
				t.Errorf("ThreadEngaged(%s, %s) = %v, %v; want %v", tc.bot, tc.thread, got, err, tc.want)
			}
		}
		// Engaging again is no error.
		if _, created, err := db.EnqueueInbound(t.Context(), key, newInbound("ev2", key.Room, clk.Now()), thread); err != nil || !created {
			t.Errorf("second engage: created=%v, %v", created, err)
		}
	})

	t.Run("empty engage marks nothing", func(t *testing.T) {
		e := newEnv(t, open)
		clk := e.clk
		key := convKey("C1")
		e.enqueue(key, newInbound("ev1", roomKey("C1", "T1"), clk.Now()))
		if n := e.count("SELECT count(*) FROM threads"); n != 0 {
			t.Errorf("%d threads engaged, want 0", n)
		}
	})

	t.Run("inbound round-trips exactly", func(t *testing.T) {
		e := newEnv(t, open)
		db, clk := e.db, e.clk
		key := bridge.ConvKey{Bot: "bot", Scope: bridge.ScopeThread, Room: roomKey("C1", "T1")}
		in := bridge.Inbound{
			Key:       "Ev0123",
			Room:      key.Room,
			RoomName:  "#général",
			MessageID: "1700000000.000100",
			Sender:    bridge.Sender{ID: "U1", Name: "Ada Lovelace", AvatarURL: "https://example.com/a.png", Bot: true},
			DM:        true,
			Mentioned: true,
			Text:      "**hi** \u2603 \x00 \"quoted\"\nline 2",
			Files: []bridge.File{
				{Name: "a.pdf", MIMEType: "application/pdf", Size: 1 << 40, Ref: "F1", Permalink: "https://slack/F1"},
				{Name: "b.png", Ref: "F2"},
			},
			Action: &bridge.Action{Value: "yes", Label: "Yes!", MessageID: "1700000000.000050"},
			Edited: true,
			Time:   time.Date(2026, 2, 28, 23, 59, 59, 123456789, time.FixedZone("X", -(3*3600+30*60))),
		}
		clk.Advance(1234567 * time.Microsecond) // not a whole millisecond
		got, created, err := db.EnqueueInbound(t.Context(), key, in, bridge.RoomKey{})
		if err != nil || !created {
			t.Fatal(created, err)
		}
		want := bridge.OutboxItem{ID: got.ID, Conversation: got.Conversation, Inbound: in, CreatedAt: clk.Now().Truncate(time.Millisecond)}
		sameItem(t, got, want)
		next, err := db.NextInbound(t.Context(), got.Conversation)
		if err != nil {
			t.Fatal(err)
		}
		sameItem(t, next, want)
		pending, err := db.PendingInbound(t.Context(), 0)
		if err != nil || len(pending) != 1 {
			t.Fatalf("pending = %v, %v", pending, err)
		}
		sameItem(t, pending[0], want)
	})

	t.Run("bad input is refused without a store error", func(t *testing.T) {
		e := newEnv(t, open)
		db, clk := e.db, e.clk
		for name, tc := range map[string]struct {
			key bridge.ConvKey
			in  bridge.Inbound
		}{
			"no event key":  {convKey("C1"), newInbound("", roomKey("C1", ""), clk.Now())},
			"invalid scope": {bridge.ConvKey{Bot: "bot", Scope: "channel", Room: roomKey("C1", "")}, newInbound("ev1", roomKey("C1", ""), clk.Now())},
		} {
			_, created, err := db.EnqueueInbound(t.Context(), tc.key, tc.in, bridge.RoomKey{})
			if err == nil || created || errors.Is(err, bridge.ErrStore) {
				t.Errorf("%s: created=%v, err=%v; want a plain error", name, created, err)
			}
		}
		if n := e.count("SELECT (SELECT count(*) FROM inbound) + (SELECT count(*) FROM conversations)"); n != 0 {
			t.Errorf("%d rows stored", n)
		}
	})
}

func testResetConversation(t *testing.T, open Opener) {
	t.Run("next message goes to the new generation, old ones stay", func(t *testing.T) {
		e := newEnv(t, open)
		db, clk := e.db, e.clk
		ctx := t.Context()
		key := convKey("C1")
		old := e.enqueue(key, newInbound("ev1", key.Room, clk.Now()))
		if err := db.SetConversationChatID(ctx, old.Conversation, "conv_old"); err != nil {
			t.Fatal(err)
		}
		clk.Advance(time.Minute)
		c, err := e.reset(key, "reset-1")
		if err != nil {
			t.Fatal(err)
		}
		want := bridge.Conversation{ID: c.ID, Key: key, Generation: 1, ActiveAt: clk.Now()}
		if !reflect.DeepEqual(c, want) || c.ID == old.Conversation {
			t.Errorf("reset\n got %+v\nwant %+v (old id %d)", c, want, old.Conversation)
		}
		if got, err := db.Conversation(ctx, c.ID); err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("stored reset conversation = %+v, %v", got, err)
		}
		next := e.enqueue(key, newInbound("ev2", key.Room, clk.Now()))
		if next.Conversation != c.ID {
			t.Errorf("message after reset went to conversation %d, want %d", next.Conversation, c.ID)
		}
		if it, err := db.NextInbound(ctx, old.Conversation); err != nil || it.ID != old.ID {
			t.Errorf("old conversation's next inbound = %d, %v; want %d", it.ID, err, old.ID)
		}
		if oc, err := db.Conversation(ctx, old.Conversation); err != nil || oc.ChatID != "conv_old" || oc.Generation != 0 {
			t.Errorf("old conversation = %+v, %v", oc, err)
		}

		again, err := e.reset(key, "reset-2")
		if err != nil || again.Generation != 2 {
			t.Errorf("second reset = %+v, %v; want generation 2", again, err)
		}
	})

	t.Run("reset of a new key starts generation 0", func(t *testing.T) {
		e := newEnv(t, open)
		clk := e.clk
		key := convKey("C1")
		c, err := e.reset(key, "reset-1")
		if err != nil || c.Generation != 0 {
			t.Fatalf("reset = %+v, %v", c, err)
		}
		if it := e.enqueue(key, newInbound("ev1", key.Room, clk.Now())); it.Conversation != c.ID {
			t.Errorf("message went to conversation %d, want %d", it.Conversation, c.ID)
		}
		if n := e.count("SELECT count(*) FROM conversations"); n != 1 {
			t.Errorf("%d conversations, want 1", n)
		}
	})

	t.Run("invalid scope is refused", func(t *testing.T) {
		e := newEnv(t, open)
		_ = e.db
		_, err := e.reset(bridge.ConvKey{Bot: "bot", Scope: "", Room: roomKey("C1", "")}, "reset-1")
		if err == nil || errors.Is(err, bridge.ErrStore) {
			t.Errorf("err = %v, want a plain error", err)
		}
	})

	t.Run("a reset event is handled once, and its notice is a delivery of the new conversation", func(t *testing.T) {
		e := newEnv(t, open)
		db, clk := e.db, e.clk
		ctx := t.Context()
		key := convKey("C1")
		in := newInbound("reset-1", key.Room, clk.Now())
		notice := bridge.Delivery{MessageID: "notice-reset-1", Bot: "bot", Payload: chat.Text{Text: "Started a new conversation."},
			Target: bridge.ReplyTarget{Room: key.Room, MessageID: "1.1", UserID: "U1"}, CreatedAt: clk.Now()}
		stored, created, err := db.ResetConversation(ctx, key, in, notice)
		if err != nil || !created || stored.Seq == 0 || stored.Conversation == 0 {
			t.Fatalf("reset = %+v, %v, %v; want a stored notice", stored, created, err)
		}
		if _, created, err := db.ResetConversation(ctx, key, in, notice); err != nil || created {
			t.Errorf("the same reset event again: created %v, %v; want a no-op", created, err)
		}
		if n := e.count("SELECT count(*) FROM conversations"); n != 1 {
			t.Errorf("%d conversations after the same reset twice, want 1", n)
		}
		ds, err := db.PendingDeliveries(ctx, 0)
		if err != nil || len(ds) != 1 || ds[0].MessageID != "notice-reset-1" || ds[0].Conversation != stored.Conversation ||
			ds[0].Target != notice.Target {
			t.Errorf("pending deliveries = %+v, %v; want the notice once", ds, err)
		}
		if _, created, err := db.EnqueueInbound(ctx, key, in, bridge.RoomKey{}); err != nil || created {
			t.Errorf("the reset event as a message: created %v, %v; want a duplicate", created, err)
		}
	})
}

func testOutbox(t *testing.T, open Opener) {
	t.Run("pending is oldest first and limited", func(t *testing.T) {
		e := newEnv(t, open)
		db, clk := e.db, e.clk
		var items []bridge.OutboxItem
		for i := range 5 {
			room := "C" + strconv.Itoa(i%2)
			items = append(items, e.enqueue(convKey(room), newInbound("ev"+strconv.Itoa(i), roomKey(room, ""), clk.Now())))
			clk.Advance(time.Second)
		}
		for _, tc := range []struct{ limit, want int }{{0, 5}, {-1, 5}, {2, 2}, {5, 5}, {9, 5}} {
			got, err := db.PendingInbound(t.Context(), tc.limit)
			if err != nil || len(got) != tc.want {
				t.Fatalf("PendingInbound(%d) = %d items, %v; want %d", tc.limit, len(got), err, tc.want)
			}
			for i := range got {
				sameItem(t, got[i], items[i])
			}
		}
	})

	t.Run("next is per conversation", func(t *testing.T) {
		e := newEnv(t, open)
		db, clk := e.db, e.clk
		ctx := t.Context()
		a1 := e.enqueue(convKey("A"), newInbound("a1", roomKey("A", ""), clk.Now()))
		b1 := e.enqueue(convKey("B"), newInbound("b1", roomKey("B", ""), clk.Now()))
		a2 := e.enqueue(convKey("A"), newInbound("a2", roomKey("A", ""), clk.Now()))
		for _, tc := range []struct {
			conv int64
			want int64
		}{{a1.Conversation, a1.ID}, {b1.Conversation, b1.ID}} {
			if got, err := db.NextInbound(ctx, tc.conv); err != nil || got.ID != tc.want {
				t.Errorf("NextInbound(%d) = %d, %v; want %d", tc.conv, got.ID, err, tc.want)
			}
		}
		if err := db.MarkInboundSent(ctx, a1.ID, 1, "m1", true, bridge.ReplyTarget{}); err != nil {
			t.Fatal(err)
		}
		if got, err := db.NextInbound(ctx, a1.Conversation); err != nil || got.ID != a2.ID {
			t.Errorf("after a1: NextInbound = %d, %v; want %d", got.ID, err, a2.ID)
		}
		if err := db.FailInbound(ctx, a2.ID, "refused"); err != nil {
			t.Fatal(err)
		}
		if _, err := db.NextInbound(ctx, a1.Conversation); !errors.Is(err, bridge.ErrNotFound) {
			t.Errorf("empty conversation: NextInbound err = %v, want ErrNotFound", err)
		}
		if _, err := db.NextInbound(ctx, 9999); !errors.Is(err, bridge.ErrNotFound) {
			t.Errorf("unknown conversation: NextInbound err = %v, want ErrNotFound", err)
		}
	})

	t.Run("partial send stays pending, done sets reply and activity", func(t *testing.T) {
		e := newEnv(t, open)
		db, clk := e.db, e.clk
		ctx := t.Context()
		key := convKey("C1")
		in := newInbound("ev1", key.Room, clk.Now())
		in.Files = []bridge.File{{Name: "a", Ref: "F1"}, {Name: "b", Ref: "F2"}}
		it := e.enqueue(key, in)
		before, err := db.Conversation(ctx, it.Conversation)
		if err != nil {
			t.Fatal(err)
		}
		reply := bridge.ReplyTarget{Room: roomKey("C1", "1700.1"), MessageID: "1700.2", UserID: "U1"}

		clk.Advance(time.Second)
		if err := db.MarkInboundSent(ctx, it.ID, 2, "msg2", false, reply); err != nil {
			t.Fatal(err)
		}
		next, err := db.NextInbound(ctx, it.Conversation)
		if err != nil || next.ID != it.ID || next.PartsSent != 2 {
			t.Fatalf("after partial send: next = %+v, %v; want item %d with 2 parts sent", next, err, it.ID)
		}
		if c, err := db.Conversation(ctx, it.Conversation); err != nil || !reflect.DeepEqual(c, before) {
			t.Errorf("partial send changed the conversation:\n got %+v\nwant %+v", c, before)
		}

		clk.Advance(time.Second)
		if err := db.MarkInboundSent(ctx, it.ID, 3, "msg3", true, reply); err != nil {
			t.Fatal(err)
		}
		if _, err := db.NextInbound(ctx, it.Conversation); !errors.Is(err, bridge.ErrNotFound) {
			t.Errorf("done item still next: %v", err)
		}
		if p, err := db.PendingInbound(ctx, 0); err != nil || len(p) != 0 {
			t.Errorf("pending after done = %v, %v", p, err)
		}
		c, err := db.Conversation(ctx, it.Conversation)
		if err != nil {
			t.Fatal(err)
		}
		if c.Reply != reply || !c.ActiveAt.Equal(clk.Now()) {
			t.Errorf("conversation reply %+v active %v; want %+v, %v", c.Reply, c.ActiveAt, reply, clk.Now())
		}
		var parts int
		var msg, state string
		if err := e.s.Row(ctx, "SELECT parts_sent, chat_message, state FROM inbound WHERE id = "+strconv.FormatInt(it.ID, 10), &parts, &msg, &state); err != nil {
			t.Fatal(err)
		}
		if parts != 3 || msg != "msg3" || state != "sent" {
			t.Errorf("stored parts %d, message %q, state %q", parts, msg, state)
		}
		if err := db.MarkInboundSent(ctx, it.ID, 3, "msg3", true, reply); !errors.Is(err, bridge.ErrNotFound) {
			t.Errorf("marking a done item: err = %v, want ErrNotFound", err)
		}
	})

	t.Run("failed item leaves the outbox with its reason", func(t *testing.T) {
		e := newEnv(t, open)
		db, clk := e.db, e.clk
		ctx := t.Context()
		it := e.enqueue(convKey("C1"), newInbound("ev1", roomKey("C1", ""), clk.Now()))
		if err := db.FailInbound(ctx, it.ID, "payload too large"); err != nil {
			t.Fatal(err)
		}
		if p, err := db.PendingInbound(ctx, 0); err != nil || len(p) != 0 {
			t.Errorf("pending after fail = %v, %v", p, err)
		}
		var reason, state string
		if err := e.s.Row(ctx, "SELECT error, state FROM inbound WHERE id = "+strconv.FormatInt(it.ID, 10), &reason, &state); err != nil {
			t.Fatal(err)
		}
		if reason != "payload too large" || state != "failed" {
			t.Errorf("stored reason %q, state %q", reason, state)
		}
		// A failed event is not taken again when the platform redelivers it.
		if _, created, err := db.EnqueueInbound(ctx, convKey("C1"), it.Inbound, bridge.RoomKey{}); err != nil || created {
			t.Errorf("redelivery of a failed event: created=%v, %v", created, err)
		}
		if err := db.FailInbound(ctx, it.ID, "again"); !errors.Is(err, bridge.ErrNotFound) {
			t.Errorf("failing a failed item: err = %v, want ErrNotFound", err)
		}
	})

	t.Run("unknown ids are not found", func(t *testing.T) {
		e := newEnv(t, open)
		db := e.db
		ctx := t.Context()
		for name, err := range map[string]error{
			"MarkInboundSent done":    db.MarkInboundSent(ctx, 42, 1, "m", true, bridge.ReplyTarget{}),
			"MarkInboundSent partial": db.MarkInboundSent(ctx, 42, 1, "m", false, bridge.ReplyTarget{}),
			"FailInbound":             db.FailInbound(ctx, 42, "x"),
		} {
			if !errors.Is(err, bridge.ErrNotFound) || errors.Is(err, bridge.ErrStore) {
				t.Errorf("%s: err = %v, want ErrNotFound", name, err)
			}
		}
		if _, err := db.NextInbound(ctx, 42); !errors.Is(err, bridge.ErrNotFound) {
			t.Errorf("NextInbound: err = %v, want ErrNotFound", err)
		}
	})
}

func testInboundForms(t *testing.T, open Opener) {
	t.Run("a row of the form before versions reads back", func(t *testing.T) {
		e := newEnv(t, open)
		key := convKey("C1")
		it := e.enqueue(key, newInbound("ev1", key.Room, e.clk.Now()))
		e.exec(`UPDATE inbound SET body = '{"key":"ev1","room":{"Platform":"slack","Room":"C1","Thread":"T1"},` +
			`"messageId":"1.2","sender":{"ID":"U1","Name":"Ada","Bot":true},"mentioned":true,"text":"old form",` +
			`"files":[{"name":"a.pdf","ref":"F1"}],"action":{"value":"yes","messageId":"1.1"},"time":"2026-03-01T12:00:00Z"}'` +
			` WHERE id = ` + strconv.FormatInt(it.ID, 10))
		got, err := e.db.NextInbound(t.Context(), it.Conversation)
		if err != nil {
			t.Fatal(err)
		}
		want := bridge.Inbound{
			Key: "ev1", Room: roomKey("C1", "T1"), MessageID: "1.2",
			Sender: bridge.Sender{ID: "U1", Name: "Ada", Bot: true}, Mentioned: true, Text: "old form",
			Files:  []bridge.File{{Name: "a.pdf", Ref: "F1"}},
			Action: &bridge.Action{Value: "yes", MessageID: "1.1"},
			Time:   time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC),
		}
		if !got.Inbound.Time.Equal(want.Time) {
			t.Errorf("time = %v, want %v", got.Inbound.Time, want.Time)
		}
		got.Inbound.Time = want.Time
		if !reflect.DeepEqual(got.Inbound, want) {
			t.Errorf("old form read as\n %+v\nwant %+v", got.Inbound, want)
		}
	})

	t.Run("a row of a newer form is a store error naming its version", func(t *testing.T) {
		e := newEnv(t, open)
		key := convKey("C1")
		it := e.enqueue(key, newInbound("ev1", key.Room, e.clk.Now()))
		e.exec(`UPDATE inbound SET body = '{"v":99,"key":"ev1","room":{"Platform":"slack","Room":"C1"},"sender":{"ID":"U1"},` +
			`"time":"2026-03-01T12:00:00Z"}' WHERE id = ` + strconv.FormatInt(it.ID, 10))
		_, err := e.db.NextInbound(t.Context(), it.Conversation)
		if !errors.Is(err, bridge.ErrStore) || !strings.Contains(err.Error(), "version 99") {
			t.Errorf("NextInbound: %v; want ErrStore naming version 99", err)
		}
		if _, err := e.db.PendingInbound(t.Context(), 0); !errors.Is(err, bridge.ErrStore) {
			t.Errorf("PendingInbound: %v; want ErrStore", err)
		}
	})

	t.Run("inbound that is not a message round-trips", func(t *testing.T) {
		e := newEnv(t, open)
		key := convKey("C1")
		command := newInbound("cmd", key.Room, e.clk.Now())
		command.Command = &bridge.Command{Name: "/ask", Reset: true, Ephemeral: true, Bot: "sales"}
		command.MessageID = ""
		event := newInbound("ev", key.Room, e.clk.Now())
		event.Text = ""
		event.Event = &bridge.Event{Name: bridge.EventContext, Text: "viewing #general", Data: map[string]string{"channelId": "C9"}}
		event.Team = "E1"
		reaction := newInbound("react", key.Room, e.clk.Now())
		reaction.Text = ""
		reaction.Reaction = &bridge.Reaction{Emoji: "+1", Removed: true, MessageID: "1700.5", ChatMessageID: "msg_1"}
		for _, in := range []bridge.Inbound{command, event, reaction} {
			it := e.enqueue(key, in)
			got, err := e.db.NextInbound(t.Context(), it.Conversation)
			if err != nil {
				t.Fatal(err)
			}
			sameItem(t, got, it)
			if !reflect.DeepEqual(got.Inbound, in) {
				t.Errorf("reads back as %+v, want %+v", got.Inbound, in)
			}
			if err := e.db.MarkInboundSent(t.Context(), got.ID, 1, "m", true, bridge.ReplyTarget{}); err != nil {
				t.Fatal(err)
			}
		}
	})
}
