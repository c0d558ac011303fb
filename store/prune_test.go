package store_test

import (
	"testing"
	"time"

	"github.com/botbridge/botbridge/bridge"
	"github.com/botbridge/botbridge/chat"
)

func TestPruneForgetsWhatHadNoTrafficForLong(t *testing.T) {
	db, clk := newDB(t)
	ctx := t.Context()
	user := func(platform bridge.Platform, id string, chatID chat.UserID) {
		if err := db.PutUser(ctx, bridge.User{Bot: "bot", Platform: platform, PlatformID: id, ChatID: chatID}); err != nil {
			t.Fatal(err)
		}
	}
	// Long ago: a conversation, its thread, its participant and user, all
	// finished; the bridge's own service user; an offer.
	old := enqueue(t, db, convKey("C_OLD"), newInbound("old", roomKey("C_OLD", ""), clk.Now()))
	if err := db.MarkInboundSent(ctx, old.ID, 1, "m1", true, bridge.ReplyTarget{}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := db.EnqueueInbound(ctx, convKey("C_OLD"), newInbound("old-thread", roomKey("C_OLD", "1.1"), clk.Now()), roomKey("C_OLD", "1.1")); err != nil {
		t.Fatal(err)
	}
	next, err := db.NextInbound(ctx, old.Conversation)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.FailInbound(ctx, next.ID, "r"); err != nil {
		t.Fatal(err)
	}
	user(bridge.PlatformSlack, "U_OLD", "slack-U_OLD")
	if err := db.AddParticipant(ctx, old.Conversation, "slack-U_OLD"); err != nil {
		t.Fatal(err)
	}
	user("botbridge", "service", "botbridge")
	user(bridge.PlatformSlack, "U_GONE", "slack-U_GONE") // takes part in nothing
	if err := db.PutOffer(ctx, bridge.Offer{Room: roomKey("C_OLD", ""), Bot: "bot", Conversation: old.Conversation,
		Options: []chat.ChoiceOption{{Label: "a", Value: "a"}}, Expires: clk.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}

	clk.Advance(100 * 24 * time.Hour)
	// Lately: a conversation with traffic, and one idle but with a message
	// still pending.
	recent := enqueue(t, db, convKey("C_NEW"), newInbound("new", roomKey("C_NEW", ""), clk.Now()))
	user(bridge.PlatformSlack, "U_NEW", "slack-U_NEW")
	if err := db.AddParticipant(ctx, recent.Conversation, "slack-U_NEW"); err != nil {
		t.Fatal(err)
	}

	n, err := db.Prune(ctx, bridge.PruneBefore{Finished: clk.Now().Add(-7 * 24 * time.Hour), Idle: clk.Now().Add(-90 * 24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	// 2 inbound, 1 offer, 1 conversation (its participant by cascade), 1
	// thread, 2 users.
	if n != 7 {
		t.Errorf("Prune removed %d rows, want 7", n)
	}
	if _, err := db.Conversation(ctx, old.Conversation); err == nil {
		t.Error("the idle conversation is still there")
	}
	if engaged, err := db.ThreadEngaged(ctx, "bot", roomKey("C_OLD", "1.1")); err != nil || engaged {
		t.Errorf("the idle thread is engaged: %v, %v", engaged, err)
	}
	for _, u := range []struct {
		platform bridge.Platform
		id       string
		kept     bool
	}{{bridge.PlatformSlack, "U_OLD", false}, {bridge.PlatformSlack, "U_GONE", false}, {"botbridge", "service", true}, {bridge.PlatformSlack, "U_NEW", true}} {
		_, err := db.User(ctx, "bot", u.platform, u.id)
		if (err == nil) != u.kept {
			t.Errorf("user %s: %v; kept should be %v", u.id, err, u.kept)
		}
	}
	if _, err := db.Conversation(ctx, recent.Conversation); err != nil {
		t.Errorf("the recent conversation went: %v", err)
	}

	// A conversation idle for long with a message pending stays.
	clk.Advance(100 * 24 * time.Hour)
	if _, err := db.Prune(ctx, bridge.PruneBefore{Finished: clk.Now().Add(-7 * 24 * time.Hour), Idle: clk.Now().Add(-90 * 24 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Conversation(ctx, recent.Conversation); err != nil {
		t.Errorf("an idle conversation with a pending message went: %v", err)
	}
	if _, err := db.User(ctx, "bot", bridge.PlatformSlack, "U_NEW"); err != nil {
		t.Errorf("a participant of a kept conversation went: %v", err)
	}
}
