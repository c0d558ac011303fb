package storetest

import (
	"errors"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/botbridge/botbridge/bridge"
	"github.com/botbridge/botbridge/chat"
)

func testConversations(t *testing.T, open Opener) {
	t.Run("chat id maps both ways", func(t *testing.T) {
		e := newEnv(t, open)
		db, clk := e.db, e.clk
		ctx := t.Context()
		it := e.mapConv(convKey("C1"), "ev1", "conv_1")
		e.enqueue(convKey("C2"), newInbound("ev2", roomKey("C2", ""), clk.Now())) // unmapped
		c, err := db.ConversationByChatID(ctx, "bot", "conv_1")
		if err != nil || c.ID != it.Conversation || c.ChatID != "conv_1" {
			t.Errorf("ConversationByChatID = %+v, %v; want id %d", c, err, it.Conversation)
		}
		if got, err := db.Conversation(ctx, it.Conversation); err != nil || !reflect.DeepEqual(got, c) {
			t.Errorf("Conversation = %+v, %v; want %+v", got, err, c)
		}
		for name, q := range map[string]struct {
			bot string
			id  chat.ConversationID
		}{
			"other bot":      {"other", "conv_1"},
			"unknown id":     {"bot", "conv_2"},
			"empty id":       {"bot", ""}, // must not find an unmapped conversation
			"different case": {"bot", "CONV_1"},
		} {
			if c, err := db.ConversationByChatID(ctx, q.bot, q.id); !errors.Is(err, bridge.ErrNotFound) {
				t.Errorf("%s: ConversationByChatID = %+v, %v; want ErrNotFound", name, c, err)
			}
		}
	})

	t.Run("new chat id forgets participants", func(t *testing.T) {
		e := newEnv(t, open)
		db := e.db
		ctx := t.Context()
		it := e.mapConv(convKey("C1"), "ev1", "conv_1")
		if err := db.AddParticipant(ctx, it.Conversation, "user_1"); err != nil {
			t.Fatal(err)
		}
		if err := db.SetConversationChatID(ctx, it.Conversation, "conv_2"); err != nil {
			t.Fatal(err)
		}
		if ok, err := db.Participant(ctx, it.Conversation, "user_1"); err != nil || ok {
			t.Errorf("participant after new chat id: %v, %v", ok, err)
		}
		if _, err := db.ConversationByChatID(ctx, "bot", "conv_1"); !errors.Is(err, bridge.ErrNotFound) {
			t.Errorf("old chat id still maps: %v", err)
		}
		if err := db.SetConversationChatID(ctx, it.Conversation, ""); err != nil {
			t.Fatal(err)
		}
		if c, err := db.Conversation(ctx, it.Conversation); err != nil || c.ChatID != "" {
			t.Errorf("unmapped conversation = %+v, %v", c, err)
		}
	})

	t.Run("unknown conversation is not found", func(t *testing.T) {
		e := newEnv(t, open)
		db := e.db
		ctx := t.Context()
		if err := db.SetConversationChatID(ctx, 42, "conv_1"); !errors.Is(err, bridge.ErrNotFound) {
			t.Errorf("SetConversationChatID: %v", err)
		}
		if _, err := db.Conversation(ctx, 42); !errors.Is(err, bridge.ErrNotFound) {
			t.Errorf("Conversation: %v", err)
		}
	})

	t.Run("active conversations: recent or with pending deliveries", func(t *testing.T) {
		e := newEnv(t, open)
		db, clk := e.db, e.clk
		ctx := t.Context()
		start := clk.Now()
		old := e.mapConv(convKey("old"), "ev1", "conv_old")
		waiting := e.mapConv(convKey("waiting"), "ev2", "conv_waiting")
		d, _, err := db.AddDelivery(ctx, bridge.Delivery{
			MessageID: "msg_1", Conversation: waiting.Conversation, Bot: "bot",
			Target: bridge.ReplyTarget{Room: roomKey("waiting", "")}, Payload: chat.Text{Text: "hi"}, CreatedAt: start,
		})
		if err != nil {
			t.Fatal(err)
		}
		clk.Advance(time.Hour)
		recent := e.mapConv(convKey("recent"), "ev3", "conv_recent")
		if err := db.MarkInboundSent(ctx, recent.ID, 1, "m", true, bridge.ReplyTarget{}); err != nil {
			t.Fatal(err)
		}
		e.enqueue(convKey("unmapped"), newInbound("ev4", roomKey("unmapped", ""), clk.Now()))

		ids := func(since time.Time) []int64 {
			t.Helper()
			cs, err := db.ActiveConversations(ctx, since)
			if err != nil {
				t.Fatal(err)
			}
			var ids []int64
			for _, c := range cs {
				if c.ChatID == "" {
					t.Errorf("unmapped conversation %d listed", c.ID)
				}
				ids = append(ids, c.ID)
			}
			return ids
		}
		for _, tc := range []struct {
			name  string
			since time.Time
			want  []int64
		}{
			{"since start", start, []int64{old.Conversation, waiting.Conversation, recent.Conversation}},
			{"since half an hour", start.Add(30 * time.Minute), []int64{waiting.Conversation, recent.Conversation}},
			{"since exactly now", clk.Now(), []int64{waiting.Conversation, recent.Conversation}},
			{"since the future", clk.Now().Add(time.Hour), []int64{waiting.Conversation}},
		} {
			if got := ids(tc.since); !slices.Equal(got, tc.want) {
				t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
			}
		}
		if err := db.MarkDelivered(ctx, d.MessageID, bridge.Parts{"1700.1"}); err != nil {
			t.Fatal(err)
		}
		if got := ids(clk.Now().Add(time.Hour)); len(got) != 0 {
			t.Errorf("after delivery: %v, want none", got)
		}
	})
}

func testUsers(t *testing.T, open Opener) {
	user := bridge.User{
		Bot: "bot", Platform: bridge.PlatformSlack, PlatformID: "U1",
		ChatID: "user_1", Key: "eyJhbGciOiJIUzI1NiJ9.e30.sig", Name: "Ada", AvatarURL: "https://example.com/a.png",
	}

	t.Run("round trip and update", func(t *testing.T) {
		e := newEnv(t, open)
		db := e.db
		ctx := t.Context()
		if err := db.PutUser(ctx, user); err != nil {
			t.Fatal(err)
		}
		got, err := db.User(ctx, "bot", bridge.PlatformSlack, "U1")
		if err != nil || got != user {
			t.Errorf("User = %+v, %v; want %+v", got, err, user)
		}
		changed := user
		changed.ChatID, changed.Key, changed.Name, changed.AvatarURL = "user_2", "", "Ada L.", ""
		if err := db.PutUser(ctx, changed); err != nil {
			t.Fatal(err)
		}
		if got, err := db.User(ctx, "bot", bridge.PlatformSlack, "U1"); err != nil || got != changed {
			t.Errorf("after update: User = %+v, %v; want %+v", got, err, changed)
		}
		if n := e.count("SELECT count(*) FROM users"); n != 1 {
			t.Errorf("%d user rows, want 1", n)
		}
	})

	t.Run("lookups are per bot, platform and id", func(t *testing.T) {
		e := newEnv(t, open)
		db := e.db
		ctx := t.Context()
		if err := db.PutUser(ctx, user); err != nil {
			t.Fatal(err)
		}
		for _, q := range []struct {
			bot      string
			platform bridge.Platform
			id       string
		}{{"other", bridge.PlatformSlack, "U1"}, {"bot", bridge.PlatformMatrix, "U1"}, {"bot", bridge.PlatformSlack, "U2"}} {
			if u, err := db.User(ctx, q.bot, q.platform, q.id); !errors.Is(err, bridge.ErrNotFound) {
				t.Errorf("User(%v) = %+v, %v; want ErrNotFound", q, u, err)
			}
		}
	})

	t.Run("no chat id is refused", func(t *testing.T) {
		e := newEnv(t, open)
		db := e.db
		u := user
		u.ChatID = ""
		if err := db.PutUser(t.Context(), u); err == nil || errors.Is(err, bridge.ErrStore) {
			t.Errorf("err = %v, want a plain error", err)
		}
	})

	t.Run("delete removes the mapping and its participations", func(t *testing.T) {
		e := newEnv(t, open)
		db := e.db
		ctx := t.Context()
		if err := db.PutUser(ctx, user); err != nil {
			t.Fatal(err)
		}
		mine := e.mapConv(convKey("C1"), "ev1", "conv_1")
		otherKey := convKey("C1")
		otherKey.Bot = "other"
		theirs := e.mapConv(otherKey, "ev2", "conv_2") // another bot's user with the same chat id
		for _, c := range []int64{mine.Conversation, theirs.Conversation} {
			for _, u := range []chat.UserID{user.ChatID, "user_9"} {
				if err := db.AddParticipant(ctx, c, u); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := db.DeleteUser(ctx, "bot", bridge.PlatformSlack, "U1"); err != nil {
			t.Fatal(err)
		}
		if _, err := db.User(ctx, "bot", bridge.PlatformSlack, "U1"); !errors.Is(err, bridge.ErrNotFound) {
			t.Errorf("deleted user: %v", err)
		}
		for _, tc := range []struct {
			conv int64
			user chat.UserID
			want bool
		}{
			{mine.Conversation, user.ChatID, false},
			{mine.Conversation, "user_9", true},
			{theirs.Conversation, user.ChatID, true},
		} {
			if got, err := db.Participant(ctx, tc.conv, tc.user); err != nil || got != tc.want {
				t.Errorf("Participant(%d, %s) = %v, %v; want %v", tc.conv, tc.user, got, err, tc.want)
			}
		}
		if err := db.DeleteUser(ctx, "bot", bridge.PlatformSlack, "U1"); err != nil {
			t.Errorf("deleting a deleted user: %v", err)
		}
	})

	t.Run("participants are idempotent", func(t *testing.T) {
		e := newEnv(t, open)
		db := e.db
		ctx := t.Context()
		it := e.mapConv(convKey("C1"), "ev1", "conv_1")
		if ok, err := db.Participant(ctx, it.Conversation, "user_1"); err != nil || ok {
			t.Errorf("before add: %v, %v", ok, err)
		}
		for range 2 {
			if err := db.AddParticipant(ctx, it.Conversation, "user_1"); err != nil {
				t.Fatal(err)
			}
		}
		if ok, err := db.Participant(ctx, it.Conversation, "user_1"); err != nil || !ok {
			t.Errorf("after add: %v, %v", ok, err)
		}
		if err := db.AddParticipant(ctx, 4242, "user_1"); !errors.Is(err, bridge.ErrNotFound) {
			t.Errorf("participant of an unknown conversation: err = %v, want ErrNotFound", err)
		}
	})
}

func testCursors(t *testing.T, open Opener) {
	e := newEnv(t, open)
	db := e.db
	ctx := t.Context()
	if v, err := db.Cursor(ctx, "matrix.next_batch"); err != nil || v != "" {
		t.Errorf("unset cursor = %q, %v", v, err)
	}
	for _, v := range []string{"s1", "s2_long_token"} {
		if err := db.SetCursor(ctx, "matrix.next_batch", v); err != nil {
			t.Fatal(err)
		}
		if got, err := db.Cursor(ctx, "matrix.next_batch"); err != nil || got != v {
			t.Errorf("cursor = %q, %v; want %q", got, err, v)
		}
	}
	if v, err := db.Cursor(ctx, "other"); err != nil || v != "" {
		t.Errorf("other cursor = %q, %v", v, err)
	}
	if err := db.Ping(ctx); err != nil {
		t.Fatal(err)
	}
}
