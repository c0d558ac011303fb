package store_test

import (
	"database/sql"
	"errors"
	"io/fs"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/botbridge/botbridge/bridge"
	"github.com/botbridge/botbridge/migrations"
)

func TestPosts(t *testing.T) {
	t.Run("every part of a posted delivery finds it, in its room only", func(t *testing.T) {
		db, clk := newDB(t)
		it := mapConv(t, db, convKey("C1"), "ev1", "conv_1")
		d := addDelivery(t, db, newDelivery("msg_1", it.Conversation, clk.Now()))
		if _, err := db.Post(t.Context(), roomKey("C1", ""), "1700.5"); !errors.Is(err, bridge.ErrNotFound) {
			t.Errorf("before it is posted: %v, want ErrNotFound", err)
		}
		if err := db.MarkDelivered(t.Context(), d.MessageID, bridge.Parts{"1700.5", "", "1700.6"}); err != nil {
			t.Fatal(err)
		}
		for _, part := range []string{"1700.5", "1700.6"} {
			p, err := db.Post(t.Context(), roomKey("C1", ""), part)
			want := bridge.Post{MessageID: "msg_1", Conversation: it.Conversation, Bot: "bot", Target: d.Target}
			if err != nil || !reflect.DeepEqual(p, want) {
				t.Errorf("Post(%s) = %+v, %v; want %+v", part, p, err, want)
			}
		}
		for _, miss := range []struct{ room, id string }{{"C2", "1700.5"}, {"C1", ""}, {"C1", "1700.7"}} {
			if _, err := db.Post(t.Context(), roomKey(miss.room, ""), miss.id); !errors.Is(err, bridge.ErrNotFound) {
				t.Errorf("Post(%s, %q): %v, want ErrNotFound", miss.room, miss.id, err)
			}
		}
	})
	t.Run("a failed delivery has no post", func(t *testing.T) {
		db, clk := newDB(t)
		it := mapConv(t, db, convKey("C1"), "ev1", "conv_1")
		d := addDelivery(t, db, newDelivery("msg_1", it.Conversation, clk.Now()))
		if err := db.FailDelivery(t.Context(), d.MessageID, "refused"); err != nil {
			t.Fatal(err)
		}
		if n := count(t, db, "SELECT count(*) FROM posts"); n != 0 {
			t.Errorf("%d posts", n)
		}
	})
	t.Run("posts go with their pruned delivery", func(t *testing.T) {
		db, clk := newDB(t)
		it := mapConv(t, db, convKey("C1"), "ev1", "conv_1")
		d := addDelivery(t, db, newDelivery("msg_1", it.Conversation, clk.Now()))
		if err := db.MarkDelivered(t.Context(), d.MessageID, bridge.Parts{"1700.5"}); err != nil {
			t.Fatal(err)
		}
		clk.Advance(time.Hour)
		if _, err := db.Prune(t.Context(), bridge.PruneBefore{Finished: clk.Now()}); err != nil {
			t.Fatal(err)
		}
		if n := count(t, db, "SELECT count(*) FROM posts"); n != 0 {
			t.Errorf("%d posts left after the prune", n)
		}
	})
	t.Run("replies posted before the migration are found", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "old.db")
		old, err := sql.Open("sqlite", "file:"+path)
		if err != nil {
			t.Fatal(err)
		}
		files, _ := fs.Glob(migrations.FS, "*.sql")
		slices.Sort(files)
		for _, f := range files {
			if f >= "0004" {
				break
			}
			body, _ := fs.ReadFile(migrations.FS, f)
			if _, err := old.Exec(string(body)); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
		}
		if _, err := old.Exec(`PRAGMA user_version = 3;
			INSERT INTO conversations (id, bot, scope, platform, room, active_ms, created_ms) VALUES (7, 'bot', 'room', 'slack', 'C1', 1, 1);
			INSERT INTO deliveries (message_id, conversation, bot, platform, room, payload, state, platform_id, created_ms, received_ms)
				VALUES ('msg_old', 7, 'bot', 'slack', 'C1', '{"type":"text","text":"hi"}', 'posted', '["1600.1","1600.2"]', 1, 1),
				       -- the form before parts were explicit, which the migration must get past
				       ('msg_legacy', 7, 'bot', 'slack', 'C1', '{"type":"text","text":"hi"}', 'posted', '1500.1', 1, 1);`); err != nil {
			t.Fatal(err)
		}
		old.Close()
		db := openDB(t, path)
		for _, part := range []string{"1600.1", "1600.2"} {
			if p, err := db.Post(t.Context(), roomKey("C1", ""), part); err != nil || p.MessageID != "msg_old" || p.Conversation != 7 {
				t.Errorf("Post(%s) = %+v, %v", part, p, err)
			}
		}
	})
}

func TestEnqueueInboundTo(t *testing.T) {
	db, clk := newDB(t)
	key := convKey("C1")
	first := enqueue(t, db, key, newInbound("ev1", key.Room, clk.Now()))
	if _, err := reset(t, db, key, "reset-1"); err != nil {
		t.Fatal(err)
	}
	in := newInbound("react-1", key.Room, clk.Now())
	in.Text = ""
	in.Reaction = &bridge.Reaction{Emoji: "+1", MessageID: "1700.5", ChatMessageID: "msg_1"}
	in.Team = "T1"

	it, created, err := db.EnqueueInboundTo(t.Context(), first.Conversation, in)
	if err != nil || !created || it.Conversation != first.Conversation {
		t.Fatalf("EnqueueInboundTo = %+v, %v, %v; want it in the first generation's conversation", it, created, err)
	}
	again, created, err := db.EnqueueInboundTo(t.Context(), first.Conversation, in)
	if err != nil || created || again.ID != it.ID {
		t.Errorf("again: %+v, created=%v, %v; want the stored item", again, created, err)
	}
	next, err := db.NextInbound(t.Context(), first.Conversation)
	if err != nil {
		t.Fatal(err)
	}
	if next.ID != first.ID {
		t.Fatalf("next inbound %d, want the first message %d", next.ID, first.ID)
	}
	if err := db.MarkInboundSent(t.Context(), first.ID, 1, "m", true, bridge.ReplyTarget{}); err != nil {
		t.Fatal(err)
	}
	next, err = db.NextInbound(t.Context(), first.Conversation)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(next.Inbound, in) {
		t.Errorf("stored reaction reads back as %+v, want %+v", next.Inbound, in)
	}
	if _, _, err := db.EnqueueInboundTo(t.Context(), 999, newInbound("react-2", key.Room, clk.Now())); !errors.Is(err, bridge.ErrNotFound) {
		t.Errorf("to a conversation that is gone: %v, want ErrNotFound", err)
	}
}

func TestInboundThatIsNotAMessageRoundTrips(t *testing.T) {
	db, clk := newDB(t)
	key := convKey("C1")
	for _, in := range []bridge.Inbound{
		func() bridge.Inbound {
			in := newInbound("cmd", key.Room, clk.Now())
			in.Command = &bridge.Command{Name: "/ask", Reset: true, Ephemeral: true, Bot: "sales"}
			in.MessageID = ""
			return in
		}(),
		func() bridge.Inbound {
			in := newInbound("ev", key.Room, clk.Now())
			in.Text = ""
			in.Event = &bridge.Event{Name: bridge.EventContext, Text: "viewing #general", Data: map[string]string{"channelId": "C9"}}
			in.Team = "E1"
			return in
		}(),
	} {
		it := enqueue(t, db, key, in)
		got, err := db.NextInbound(t.Context(), it.Conversation)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got.Inbound, in) {
			t.Errorf("reads back as %+v, want %+v", got.Inbound, in)
		}
		if err := db.MarkInboundSent(t.Context(), got.ID, 1, "m", true, bridge.ReplyTarget{}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestEphemeralReplyTargets(t *testing.T) {
	db, clk := newDB(t)
	it := mapConv(t, db, convKey("C1"), "cmd-1", "conv_1")
	private := bridge.ReplyTarget{Room: roomKey("C1", ""), UserID: "U1", Ephemeral: true}
	if err := db.MarkInboundSent(t.Context(), it.ID, 1, "m", true, private); err != nil {
		t.Fatal(err)
	}
	c, err := db.Conversation(t.Context(), it.Conversation)
	if err != nil || c.Reply != private {
		t.Errorf("conversation's reply target %+v, %v; want %+v", c.Reply, err, private)
	}
	d := newDelivery("msg_1", it.Conversation, clk.Now())
	d.Target = bridge.ReplyTarget{} // to the conversation's reply target
	stored := addDelivery(t, db, d)
	if stored.Target != private {
		t.Errorf("delivery target %+v, want %+v", stored.Target, private)
	}
	pending, err := db.PendingDeliveries(t.Context(), 0)
	if err != nil || len(pending) != 1 || pending[0].Target != private {
		t.Errorf("pending %+v, %v", pending, err)
	}
}
