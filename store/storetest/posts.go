package storetest

import (
	"errors"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/botbridge/botbridge/bridge"
)

// testPosts checks Post: the posted parts of a bot message lead back to its
// delivery, so that a reaction to it finds its conversation.
func testPosts(t *testing.T, open Opener) {
	t.Run("every part of a posted delivery finds it, in its room only", func(t *testing.T) {
		e := newEnv(t, open)
		ctx := t.Context()
		it := e.mapConv(convKey("C1"), "ev1", "conv_1")
		d := newDelivery("msg_1", it.Conversation, e.clk.Now())
		d.Target = bridge.ReplyTarget{Room: roomKey("C1", ""), MessageID: "1700.2", UserID: "U1"}
		d = e.addDelivery(d)
		if _, err := e.db.Post(ctx, roomKey("C1", ""), "1700.5"); !errors.Is(err, bridge.ErrNotFound) {
			t.Errorf("before it is posted: %v, want ErrNotFound", err)
		}
		if err := e.db.MarkDelivered(ctx, d.MessageID, bridge.Parts{"1700.5", "", "1700.6"}); err != nil {
			t.Fatal(err)
		}
		want := bridge.Post{MessageID: "msg_1", Conversation: it.Conversation, Bot: "bot", Target: d.Target}
		for _, part := range []string{"1700.5", "1700.6"} {
			if p, err := e.db.Post(ctx, roomKey("C1", ""), part); err != nil || !reflect.DeepEqual(p, want) {
				t.Errorf("Post(%s) = %+v, %v; want %+v", part, p, err, want)
			}
			// A thread is part of its room: a reaction in a thread names the
			// room and the message.
			if p, err := e.db.Post(ctx, roomKey("C1", "1700.1"), part); err != nil || !reflect.DeepEqual(p, want) {
				t.Errorf("Post(%s) named with a thread = %+v, %v; want %+v", part, p, err, want)
			}
		}
		for _, miss := range []struct {
			room bridge.RoomKey
			id   string
		}{
			{roomKey("C2", ""), "1700.5"},
			{roomKey("C1", ""), ""},
			{roomKey("C1", ""), "1700.7"},
			{bridge.RoomKey{Platform: bridge.PlatformMatrix, Room: "C1"}, "1700.5"},
		} {
			if _, err := e.db.Post(ctx, miss.room, miss.id); !errors.Is(err, bridge.ErrNotFound) {
				t.Errorf("Post(%s, %q): %v, want ErrNotFound", miss.room, miss.id, err)
			}
		}
	})

	t.Run("a private reply reads back as private", func(t *testing.T) {
		e := newEnv(t, open)
		it := e.mapConv(convKey("C1"), "ev1", "conv_1")
		d := newDelivery("msg_1", it.Conversation, e.clk.Now())
		d.Target = bridge.ReplyTarget{Room: roomKey("C1", ""), UserID: "U1", Ephemeral: true}
		d = e.addDelivery(d)
		if err := e.db.MarkDelivered(t.Context(), d.MessageID, bridge.Parts{"1700.5"}); err != nil {
			t.Fatal(err)
		}
		if p, err := e.db.Post(t.Context(), roomKey("C1", ""), "1700.5"); err != nil || p.Target != d.Target {
			t.Errorf("Post = %+v, %v; want target %+v", p, err, d.Target)
		}
	})

	t.Run("a failed delivery has no post", func(t *testing.T) {
		e := newEnv(t, open)
		it := e.mapConv(convKey("C1"), "ev1", "conv_1")
		d := e.addDelivery(newDelivery("msg_1", it.Conversation, e.clk.Now()))
		if err := e.db.FailDelivery(t.Context(), d.MessageID, "refused"); err != nil {
			t.Fatal(err)
		}
		if n := e.count("SELECT count(*) FROM posts"); n != 0 {
			t.Errorf("%d posts", n)
		}
	})

	t.Run("a part posted again by a later delivery finds the later one", func(t *testing.T) {
		e := newEnv(t, open)
		ctx := t.Context()
		it := e.mapConv(convKey("C1"), "ev1", "conv_1")
		for i := range 2 {
			d := e.addDelivery(newDelivery("msg_"+strconv.Itoa(i), it.Conversation, e.clk.Now()))
			if err := e.db.MarkDelivered(ctx, d.MessageID, bridge.Parts{"1700.5"}); err != nil {
				t.Fatal(err)
			}
		}
		if p, err := e.db.Post(ctx, roomKey("C1", ""), "1700.5"); err != nil || p.MessageID != "msg_1" {
			t.Errorf("Post = %+v, %v; want msg_1", p, err)
		}
	})

	t.Run("a delivery whose parts repeat an id is posted", func(t *testing.T) {
		e := newEnv(t, open)
		it := e.mapConv(convKey("C1"), "ev1", "conv_1")
		d := e.addDelivery(newDelivery("msg_1", it.Conversation, e.clk.Now()))
		if err := e.db.MarkDelivered(t.Context(), d.MessageID, bridge.Parts{"1700.5", "1700.5"}); err != nil {
			t.Fatal(err)
		}
		if p, err := e.db.Post(t.Context(), roomKey("C1", ""), "1700.5"); err != nil || p.MessageID != "msg_1" {
			t.Errorf("Post = %+v, %v; want msg_1", p, err)
		}
	})

	t.Run("posts go with their pruned delivery", func(t *testing.T) {
		e := newEnv(t, open)
		it := e.mapConv(convKey("C1"), "ev1", "conv_1")
		d := e.addDelivery(newDelivery("msg_1", it.Conversation, e.clk.Now()))
		if err := e.db.MarkDelivered(t.Context(), d.MessageID, bridge.Parts{"1700.5"}); err != nil {
			t.Fatal(err)
		}
		e.clk.Advance(time.Hour)
		if _, err := e.db.Prune(t.Context(), bridge.PruneBefore{Finished: e.clk.Now()}); err != nil {
			t.Fatal(err)
		}
		if n := e.count("SELECT count(*) FROM posts"); n != 0 {
			t.Errorf("%d posts left after the prune", n)
		}
		if _, err := e.db.Post(t.Context(), roomKey("C1", ""), "1700.5"); !errors.Is(err, bridge.ErrNotFound) {
			t.Errorf("Post after the prune: %v, want ErrNotFound", err)
		}
	})
}

// testEnqueueInboundTo checks EnqueueInboundTo: inbound stored under a
// conversation record of the caller's choice (a reaction goes to the
// conversation of the message it is on, even after a reset).
func testEnqueueInboundTo(t *testing.T, open Opener) {
	reaction := func(key string, room bridge.RoomKey, at time.Time) bridge.Inbound {
		in := newInbound(key, room, at)
		in.Text = ""
		in.Reaction = &bridge.Reaction{Emoji: "+1", MessageID: "1700.5", ChatMessageID: "msg_1"}
		in.Team = "T1"
		return in
	}

	t.Run("it goes to the conversation named, once, after that conversation's messages", func(t *testing.T) {
		e := newEnv(t, open)
		ctx := t.Context()
		key := convKey("C1")
		first := e.enqueue(key, newInbound("ev1", key.Room, e.clk.Now()))
		if _, err := e.reset(key, "reset-1"); err != nil {
			t.Fatal(err)
		}
		e.clk.Advance(time.Second)
		in := reaction("react-1", key.Room, e.clk.Now())
		it, created, err := e.db.EnqueueInboundTo(ctx, first.Conversation, in)
		if err != nil || !created || it.Conversation != first.Conversation || it.ID <= first.ID {
			t.Fatalf("EnqueueInboundTo = %+v, %v, %v; want a new item in the first generation's conversation", it, created, err)
		}
		sameItem(t, it, bridge.OutboxItem{ID: it.ID, Conversation: first.Conversation, Inbound: in, CreatedAt: e.clk.Now()})

		e.clk.Advance(time.Second)
		again, created, err := e.db.EnqueueInboundTo(ctx, first.Conversation, reaction("react-1", key.Room, e.clk.Now()))
		if err != nil || created {
			t.Errorf("again: created=%v, %v; want a duplicate", created, err)
		}
		sameItem(t, again, it)
		if _, created, err := e.db.EnqueueInbound(ctx, key, in, bridge.RoomKey{}); err != nil || created {
			t.Errorf("the same event by EnqueueInbound: created=%v, %v; want a duplicate", created, err)
		}

		if next, err := e.db.NextInbound(ctx, first.Conversation); err != nil || next.ID != first.ID {
			t.Fatalf("next inbound %d, %v; want the first message %d", next.ID, err, first.ID)
		}
		if err := e.db.MarkInboundSent(ctx, first.ID, 1, "m", true, bridge.ReplyTarget{}); err != nil {
			t.Fatal(err)
		}
		next, err := e.db.NextInbound(ctx, first.Conversation)
		if err != nil {
			t.Fatal(err)
		}
		sameItem(t, next, it)
	})

	t.Run("a conversation that is gone is not found, and nothing is stored", func(t *testing.T) {
		e := newEnv(t, open)
		in := reaction("react-2", roomKey("C1", ""), e.clk.Now())
		if _, _, err := e.db.EnqueueInboundTo(t.Context(), 999, in); !errors.Is(err, bridge.ErrNotFound) {
			t.Errorf("to a conversation that is gone: %v, want ErrNotFound", err)
		}
		if n := e.count("SELECT count(*) FROM inbound"); n != 0 {
			t.Errorf("%d inbound rows stored", n)
		}
	})

	t.Run("no event key is refused without a store error", func(t *testing.T) {
		e := newEnv(t, open)
		it := e.enqueue(convKey("C1"), newInbound("ev1", roomKey("C1", ""), e.clk.Now()))
		_, created, err := e.db.EnqueueInboundTo(t.Context(), it.Conversation, reaction("", roomKey("C1", ""), e.clk.Now()))
		if err == nil || created || errors.Is(err, bridge.ErrStore) {
			t.Errorf("created=%v, err=%v; want a plain error", created, err)
		}
	})

	t.Run("the same event from two processes is stored once", func(t *testing.T) {
		e := newEnv(t, open)
		ctx := t.Context()
		other := e.s.Another(t)
		it := e.enqueue(convKey("C1"), newInbound("ev1", roomKey("C1", ""), e.clk.Now()))
		for i := range raceRounds {
			in := reaction("react-"+strconv.Itoa(i), roomKey("C1", ""), e.clk.Now())
			var a, b bridge.OutboxItem
			var createdA, createdB bool
			var errA, errB error
			both(func() {
				a, createdA, errA = e.db.EnqueueInboundTo(ctx, it.Conversation, in)
			}, func() {
				b, createdB, errB = other.EnqueueInboundTo(ctx, it.Conversation, in)
			})
			if errA != nil || errB != nil || createdA == createdB || a.ID != b.ID {
				t.Fatalf("round %d: created %v and %v, items %d and %d, errors %v and %v; want one stored, seen by both",
					i, createdA, createdB, a.ID, b.ID, errA, errB)
			}
		}
		if n := e.count("SELECT count(*) FROM inbound"); n != raceRounds+1 {
			t.Errorf("%d inbound rows, want %d", n, raceRounds+1)
		}
	})
}
