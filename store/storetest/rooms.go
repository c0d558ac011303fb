package storetest

import (
	"strconv"
	"testing"
	"time"

	"github.com/botbridge/botbridge/bridge"
	"github.com/botbridge/botbridge/chat"
)

// testRenameRoom checks RenameRoom: after a Matrix room upgrade, the talk
// goes on in the new room with the same conversations.
func testRenameRoom(t *testing.T, open Opener) {
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
		e := newEnv(t, open)
		db, ctx := e.db, t.Context()
		room := e.mapConv(key("!old", ""), "ev1", "conv_room")
		ann := e.mapConv(key("!old", "@ann"), "ev2", "conv_ann")
		// The bot answered in the old room: its reply target is there.
		reply := bridge.ReplyTarget{Room: matrixRoom("!old"), MessageID: "$ev1", UserID: "@ann"}
		if err := db.MarkInboundSent(ctx, room.ID, 1, "msg_in", true, reply); err != nil {
			t.Fatal(err)
		}
		other := e.mapConv(key("!other", ""), "ev3", "conv_other")

		moved, err := db.RenameRoom(ctx, bridge.PlatformMatrix, "!old", "!new")
		if err != nil || moved != 2 {
			t.Fatalf("RenameRoom = %d, %v; want 2 moved", moved, err)
		}
		for _, c := range []struct {
			key  bridge.ConvKey
			want int64
		}{{key("!new", ""), room.Conversation}, {key("!new", "@ann"), ann.Conversation}, {key("!other", ""), other.Conversation}} {
			in := newInbound("next-"+c.key.String(), c.key.Room, e.clk.Now())
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
		if c, err := db.ConversationByChatID(ctx, "bot", "conv_ann"); err != nil || c.ID != ann.Conversation || c.Key != key("!new", "@ann") {
			t.Errorf("by chat id: %+v, %v; want conversation %d in the new room", c, err, ann.Conversation)
		}
	})

	t.Run("every generation moves, and the next reset follows them", func(t *testing.T) {
		e := newEnv(t, open)
		db, ctx := e.db, t.Context()
		first := e.mapConv(key("!old", ""), "ev1", "conv_1")
		second, err := e.reset(key("!old", ""), "reset-1")
		if err != nil {
			t.Fatal(err)
		}
		if moved, err := db.RenameRoom(ctx, bridge.PlatformMatrix, "!old", "!new"); err != nil || moved != 2 {
			t.Fatalf("RenameRoom = %d, %v; want both generations", moved, err)
		}
		if it := e.enqueue(key("!new", ""), newInbound("ev2", matrixRoom("!new"), e.clk.Now())); it.Conversation != second.ID {
			t.Errorf("a message in the new room went to %d, want the newest generation %d", it.Conversation, second.ID)
		}
		third, err := e.reset(key("!new", ""), "reset-2")
		if err != nil || third.Generation != 2 {
			t.Errorf("a reset in the new room: %+v, %v; want generation 2", third, err)
		}
		if c, err := db.Conversation(ctx, first.Conversation); err != nil || c.Key != key("!new", "") || c.Generation != 0 {
			t.Errorf("the first generation: %+v, %v", c, err)
		}
	})

	t.Run("the standing choice and unposted replies move, posted ones stay", func(t *testing.T) {
		e := newEnv(t, open)
		db, ctx := e.db, t.Context()
		it := e.mapConv(key("!old", ""), "ev1", "conv_1")
		e.putOffer(bridge.Offer{Room: matrixRoom("!old"), Bot: "bot", Conversation: it.Conversation, MessageID: "$choice",
			Options: []chat.ChoiceOption{{Label: "Small", Value: "s"}}, Expires: e.clk.Now().Add(time.Hour)})
		target := bridge.ReplyTarget{Room: bridge.RoomKey{Platform: bridge.PlatformMatrix, Room: "!old", Thread: "$root"}, MessageID: "$ev1", UserID: "@ann"}
		posted := newDelivery("msg_posted", it.Conversation, e.clk.Now())
		posted.Target = target
		e.addDelivery(posted)
		if err := db.MarkDelivered(ctx, "msg_posted", bridge.Parts{"$p"}); err != nil {
			t.Fatal(err)
		}
		pending := newDelivery("msg_pending", it.Conversation, e.clk.Now())
		pending.Target = target
		e.addDelivery(pending)

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
		if p, err := db.Post(ctx, matrixRoom("!old"), "$p"); err != nil || p.MessageID != "msg_posted" {
			t.Errorf("the posted reply's part in the old room: %+v, %v", p, err)
		}
	})

	t.Run("the new room's own records win", func(t *testing.T) {
		e := newEnv(t, open)
		db, ctx := e.db, t.Context()
		old := e.mapConv(key("!old", ""), "ev1", "conv_old")
		now := e.mapConv(key("!new", ""), "ev2", "conv_new")
		oldOnly := e.mapConv(key("!old", "@ann"), "ev3", "conv_ann")
		for _, o := range []bridge.Offer{
			{Room: matrixRoom("!old"), Bot: "bot", Conversation: old.Conversation, MessageID: "$old",
				Options: []chat.ChoiceOption{{Label: "a", Value: "a"}}, Expires: e.clk.Now().Add(time.Hour)},
			{Room: matrixRoom("!new"), Bot: "bot", Conversation: now.Conversation, MessageID: "$new",
				Options: []chat.ChoiceOption{{Label: "b", Value: "b"}}, Expires: e.clk.Now().Add(time.Hour)},
		} {
			e.putOffer(o)
		}
		moved, err := db.RenameRoom(ctx, bridge.PlatformMatrix, "!old", "!new")
		if err != nil || moved != 1 {
			t.Fatalf("RenameRoom = %d, %v; want 1 moved (the one without a twin in the new room)", moved, err)
		}
		for _, c := range []struct {
			id   int64
			room string
		}{{old.Conversation, "!old"}, {now.Conversation, "!new"}, {oldOnly.Conversation, "!new"}} {
			if conv, err := db.Conversation(ctx, c.id); err != nil || conv.Key.Room.Room != c.room {
				t.Errorf("conversation %d in %q, %v; want %q", c.id, conv.Key.Room.Room, err, c.room)
			}
		}
		for room, want := range map[string]string{"!old": "$old", "!new": "$new"} {
			if o, err := db.Offer(ctx, matrixRoom(room)); err != nil || o.MessageID != want {
				t.Errorf("offer in %s: %+v, %v; want %s", room, o, err, want)
			}
		}
	})

	t.Run("a second rename and other platforms move nothing", func(t *testing.T) {
		e := newEnv(t, open)
		db, ctx := e.db, t.Context()
		slack := e.mapConv(bridge.ConvKey{Bot: "bot", Scope: bridge.ScopeRoom, Room: roomKey("!old", "")}, "ev1", "conv_slack")
		e.mapConv(key("!old", ""), "ev2", "conv_1")
		if moved, err := db.RenameRoom(ctx, bridge.PlatformMatrix, "!old", "!new"); err != nil || moved != 1 {
			t.Fatalf("first RenameRoom = %d, %v; want 1", moved, err)
		}
		if moved, err := db.RenameRoom(ctx, bridge.PlatformMatrix, "!old", "!new"); err != nil || moved != 0 {
			t.Errorf("second RenameRoom = %d, %v; want 0", moved, err)
		}
		if moved, err := db.RenameRoom(ctx, bridge.PlatformMatrix, "!new", "!new"); err != nil || moved != 0 {
			t.Errorf("RenameRoom to itself = %d, %v; want 0", moved, err)
		}
		if conv, err := db.Conversation(ctx, slack.Conversation); err != nil || conv.Key.Room.Room != "!old" {
			t.Errorf("the Slack conversation is in %q, %v; want it left in !old", conv.Key.Room.Room, err)
		}
		for _, args := range [][3]string{{"", "!old", "!new"}, {"matrix", "", "!new"}, {"matrix", "!old", ""}} {
			if _, err := db.RenameRoom(ctx, bridge.Platform(args[0]), args[1], args[2]); err == nil {
				t.Errorf("RenameRoom%q: no error", args)
			}
		}
	})

	t.Run("the same rename from two processes moves each record once", func(t *testing.T) {
		e := newEnv(t, open)
		ctx := t.Context()
		other := e.s.Another(t)
		for i := range raceRounds {
			from, to := "!old"+strconv.Itoa(i), "!new"+strconv.Itoa(i)
			e.mapConv(key(from, ""), "a"+strconv.Itoa(i), chat.ConversationID("conv_a"+strconv.Itoa(i)))
			e.mapConv(key(from, "@ann"), "b"+strconv.Itoa(i), chat.ConversationID("conv_b"+strconv.Itoa(i)))
			var movedA, movedB int
			var errA, errB error
			both(func() {
				movedA, errA = e.db.RenameRoom(ctx, bridge.PlatformMatrix, from, to)
			}, func() {
				movedB, errB = other.RenameRoom(ctx, bridge.PlatformMatrix, from, to)
			})
			if errA != nil || errB != nil || movedA+movedB != 2 {
				t.Fatalf("round %d: moved %d and %d, errors %v and %v; want 2 in all and no error", i, movedA, movedB, errA, errB)
			}
		}
		if n := e.count("SELECT count(*) FROM conversations WHERE room LIKE '!new%'"); n != 2*raceRounds {
			t.Errorf("%d conversations in the new rooms, want %d", n, 2*raceRounds)
		}
	})
}
