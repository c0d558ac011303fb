package storetest

import (
	"strconv"
	"testing"
	"time"

	"github.com/botbridge/botbridge/bridge"
	"github.com/botbridge/botbridge/chat"
)

func testPrune(t *testing.T, open Opener) {
	t.Run("only finished rows older than the cutoff go", func(t *testing.T) { testPruneCutoff(t, open) })
	t.Run("what had no traffic for long goes, unless something is pending", func(t *testing.T) { testPruneIdle(t, open) })
	t.Run("more rows than one batch all go", func(t *testing.T) {
		e := newEnv(t, open)
		db, clk := e.db, e.clk
		ctx := t.Context()
		it := e.mapConv(convKey("C1"), "ev", "conv_1")
		const n = 2345 // more than two batches
		for i := range n {
			item := e.enqueue(convKey("C1"), newInbound("ev"+strconv.Itoa(i), roomKey("C1", ""), clk.Now()))
			if err := db.FailInbound(ctx, item.ID, "r"); err != nil {
				t.Fatal(err)
			}
			d := e.addDelivery(newDelivery("msg_"+strconv.Itoa(i), it.Conversation, clk.Now()))
			if err := db.MarkDelivered(ctx, d.MessageID, bridge.Parts{"p"}); err != nil {
				t.Fatal(err)
			}
		}
		clk.Advance(time.Second)
		if got, err := db.Prune(ctx, bridge.PruneBefore{Finished: clk.Now()}); err != nil || got != 2*n {
			t.Errorf("Prune = %d, %v; want %d", got, err, 2*n)
		}
		if left := e.count("SELECT (SELECT count(*) FROM inbound) + (SELECT count(*) FROM deliveries)"); left != 1 {
			t.Errorf("%d rows left, want the pending one", left)
		}
	})
}

func testPruneCutoff(t *testing.T, open Opener) {
	e := newEnv(t, open)
	db, clk := e.db, e.clk
	ctx := t.Context()
	key := convKey("C1")
	it := e.mapConv(key, "stale-pending", "conv_1") // stays pending
	staleDelivery := e.addDelivery(newDelivery("msg_stale", it.Conversation, clk.Now()))

	clk.Advance(time.Hour)
	t1 := clk.Now()
	sent := e.enqueue(key, newInbound("sent", key.Room, clk.Now()))
	posted := e.addDelivery(newDelivery("msg_posted", it.Conversation, clk.Now()))
	if err := db.MarkInboundSent(ctx, sent.ID, 1, "m", true, bridge.ReplyTarget{}); err != nil {
		t.Fatal(err)
	}
	if err := db.MarkDelivered(ctx, posted.MessageID, bridge.Parts{"p"}); err != nil {
		t.Fatal(err)
	}

	clk.Advance(time.Hour)
	t2 := clk.Now()
	failed := e.enqueue(key, newInbound("failed", key.Room, clk.Now()))
	gaveUp := e.addDelivery(newDelivery("msg_failed", it.Conversation, clk.Now()))
	if err := db.FailInbound(ctx, failed.ID, "r"); err != nil {
		t.Fatal(err)
	}
	if err := db.FailDelivery(ctx, gaveUp.MessageID, "r"); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Hour)

	exists := func(table, column, v string) bool {
		return e.count("SELECT count(*) FROM "+table+" WHERE "+column+" = "+lit(v)) == 1
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
	if !exists("inbound", "event_key", "stale-pending") || !exists("deliveries", "message_id", string(staleDelivery.MessageID)) {
		t.Error("pending rows were pruned")
	}
	if n := e.count("SELECT count(*) FROM conversations"); n != 1 {
		t.Errorf("%d conversations after prune, want 1", n)
	}
}

func testPruneIdle(t *testing.T, open Opener) {
	e := newEnv(t, open)
	db, clk := e.db, e.clk
	ctx := t.Context()
	user := func(platform bridge.Platform, id string, chatID chat.UserID) {
		if err := db.PutUser(ctx, bridge.User{Bot: "bot", Platform: platform, PlatformID: id, ChatID: chatID}); err != nil {
			t.Fatal(err)
		}
	}
	// Long ago: a conversation, its thread, its participant and user, all
	// finished; the bridge's own service user; an offer.
	old := e.enqueue(convKey("C_OLD"), newInbound("old", roomKey("C_OLD", ""), clk.Now()))
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
	recent := e.enqueue(convKey("C_NEW"), newInbound("new", roomKey("C_NEW", ""), clk.Now()))
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
