package store_test

import (
	"testing"
	"time"

	"github.com/botbridge/botbridge/bridge"
	"github.com/botbridge/botbridge/chat"
)

func TestRenameRoom(t *testing.T) {
	matrixRoom := func(room string) bridge.RoomKey {
		return bridge.RoomKey{Platform: bridge.PlatformMatrix, Room: room}
	}
	key := func(room, user string) bridge.ConvKey {
		k := bridge.ConvKey{Bot: "bot", Scope: bridge.ScopeRoom, Room: matrixRoom(room)}
		if user != "" {
			k.Scope, k.User = bridge.ScopeUser, user
		}
		return k
	}

	t.Run("the room's conversations go on in the new room", func(t *testing.T) {
		db, clk := newDB(t)
		ctx := t.Context()
		room := mapConv(t, db, key("!old", ""), "ev1", "conv_room")
		ann := mapConv(t, db, key("!old", "@ann"), "ev2", "conv_ann")
		// The bot answered in the old room: its reply target is there.
		reply := bridge.ReplyTarget{Room: matrixRoom("!old"), MessageID: "$ev1", UserID: "@ann"}
		if err := db.MarkInboundSent(ctx, room.ID, 1, "msg_in", true, reply); err != nil {
			t.Fatal(err)
		}
		other := mapConv(t, db, key("!other", ""), "ev3", "conv_other")

		moved, err := db.RenameRoom(ctx, bridge.PlatformMatrix, "!old", "!new")
		if err != nil || moved != 2 {
			t.Fatalf("RenameRoom = %d, %v; want 2 moved", moved, err)
		}
		for _, c := range []struct {
			key  bridge.ConvKey
			want int64
		}{{key("!new", ""), room.Conversation}, {key("!new", "@ann"), ann.Conversation}, {key("!other", ""), other.Conversation}} {
			in := newInbound("next-"+c.key.String(), c.key.Room, clk.Now())
			it, created, err := db.EnqueueInbound(ctx, c.key, in, bridge.RoomKey{})
			if err != nil || !created || it.Conversation != c.want {
				t.Errorf("%s: conversation %d (created %v, %v), want %d", c.key, it.Conversation, created, err, c.want)
			}
		}
		conv, err := db.Conversation(ctx, room.Conversation)
		if err != nil {
			t.Fatal(err)
		}
		if conv.ChatID != "conv_room" || conv.Reply.Room != matrixRoom("!new") || conv.Reply.MessageID != "" || conv.Reply.UserID != "@ann" {
			t.Errorf("moved conversation %+v: want chat id conv_room, replies to the new room, no message there", conv)
		}
	})

	t.Run("the standing choice and unposted replies move, posted ones stay", func(t *testing.T) {
		db, clk := newDB(t)
		ctx := t.Context()
		it := mapConv(t, db, key("!old", ""), "ev1", "conv_1")
		offer := bridge.Offer{Room: matrixRoom("!old"), Bot: "bot", Conversation: it.Conversation, MessageID: "$choice",
			Options: []chat.ChoiceOption{{Label: "Small", Value: "s"}}, Expires: clk.Now().Add(time.Hour)}
		if err := db.PutOffer(ctx, offer); err != nil {
			t.Fatal(err)
		}
		target := bridge.ReplyTarget{Room: bridge.RoomKey{Platform: bridge.PlatformMatrix, Room: "!old", Thread: "$root"}, MessageID: "$ev1", UserID: "@ann"}
		posted := newDelivery("msg_posted", it.Conversation, clk.Now())
		posted.Target = target
		addDelivery(t, db, posted)
		if err := db.MarkDelivered(ctx, "msg_posted", bridge.Parts{"$p"}); err != nil {
			t.Fatal(err)
		}
		pending := newDelivery("msg_pending", it.Conversation, clk.Now())
		pending.Target = target
		addDelivery(t, db, pending)

		if _, err := db.RenameRoom(ctx, bridge.PlatformMatrix, "!old", "!new"); err != nil {
			t.Fatal(err)
		}
		if o, err := db.Offer(ctx, matrixRoom("!new")); err != nil || o.MessageID != "$choice" {
			t.Errorf("offer in the new room: %+v, %v", o, err)
		}
		if d, err := db.Delivery(ctx, "msg_pending"); err != nil || d.Target.Room != matrixRoom("!new") || d.Target.MessageID != "" || d.Target.UserID != "@ann" {
			t.Errorf("pending reply %+v, %v: want it in the new room, out of the old thread, mentioning @ann", d.Target, err)
		}
		if d, err := db.Delivery(ctx, "msg_posted"); err != nil || d.Target != target {
			t.Errorf("posted reply %+v, %v: want it left as it was", d.Target, err)
		}
	})

	t.Run("the new room's own records win", func(t *testing.T) {
		db, _ := newDB(t)
		ctx := t.Context()
		old := mapConv(t, db, key("!old", ""), "ev1", "conv_old")
		now := mapConv(t, db, key("!new", ""), "ev2", "conv_new")
		moved, err := db.RenameRoom(ctx, bridge.PlatformMatrix, "!old", "!new")
		if err != nil || moved != 0 {
			t.Fatalf("RenameRoom = %d, %v; want 0 moved", moved, err)
		}
		for _, c := range []struct {
			id   int64
			room string
		}{{old.Conversation, "!old"}, {now.Conversation, "!new"}} {
			if conv, err := db.Conversation(ctx, c.id); err != nil || conv.Key.Room.Room != c.room {
				t.Errorf("conversation %d in %q, %v; want %q", c.id, conv.Key.Room.Room, err, c.room)
			}
		}
	})

	t.Run("a second rename and other platforms move nothing", func(t *testing.T) {
		db, _ := newDB(t)
		ctx := t.Context()
		slack := mapConv(t, db, bridge.ConvKey{Bot: "bot", Scope: bridge.ScopeRoom, Room: roomKey("!old", "")}, "ev1", "conv_slack")
		mapConv(t, db, key("!old", ""), "ev2", "conv_1")
		if moved, err := db.RenameRoom(ctx, bridge.PlatformMatrix, "!old", "!new"); err != nil || moved != 1 {
			t.Fatalf("first RenameRoom = %d, %v; want 1", moved, err)
		}
		if moved, err := db.RenameRoom(ctx, bridge.PlatformMatrix, "!old", "!new"); err != nil || moved != 0 {
			t.Errorf("second RenameRoom = %d, %v; want 0", moved, err)
		}
		if conv, err := db.Conversation(ctx, slack.Conversation); err != nil || conv.Key.Room.Room != "!old" {
			t.Errorf("the Slack conversation is in %q, %v; want it left in !old", conv.Key.Room.Room, err)
		}
		if _, err := db.RenameRoom(ctx, bridge.PlatformMatrix, "", "!new"); err == nil {
			t.Error("RenameRoom without the old room: no error")
		}
	})
}
