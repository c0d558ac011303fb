package main

import (
	"strings"
	"testing"
	"time"

	"github.com/botbridge/botbridge/bridge"
	"github.com/botbridge/botbridge/chat"
	"github.com/botbridge/botbridge/store/postgres"
	"github.com/botbridge/botbridge/store/postgres/pgtest"
)

func TestStatusSaysWhoHoldsWhatAndWhatWaits(t *testing.T) {
	t.Run("on SQLite", func(t *testing.T) { testStatus(t, openTestStore(t)) })
	t.Run("on PostgreSQL", func(t *testing.T) {
		db, err := postgres.Open(t.Context(), pgtest.Start(t).DSN(t))
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		testStatus(t, pgStore{db})
	})
}

func testStatus(t *testing.T, db Store) {
	ctx := t.Context()
	room := bridge.RoomKey{Platform: bridge.PlatformSlack, Room: "C1"}
	lease := bridge.LeaseOf(room)
	var others []string
	for _, name := range bridge.ShardLeases() {
		if name != lease {
			others = append(others, name)
		}
	}
	if _, err := db.TakeLeases(ctx, "a", append([]string{"replica:a", lease, bridge.MatrixLease}, others[:30]...), time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := db.TakeLeases(ctx, "b", append([]string{"replica:b"}, others[30:61]...), time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := db.TakeLeases(ctx, "gone", []string{others[61]}, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := db.ReleaseLeases(ctx, "gone", []string{others[61]}); err != nil {
		t.Fatal(err)
	}
	key := bridge.ConvKey{Bot: "bot", Scope: bridge.ScopeRoom, Room: room}
	it, _, err := db.EnqueueInbound(ctx, key, bridge.Inbound{Key: "e1", Room: room, Sender: bridge.Sender{ID: "U1"}, Text: "hi", Time: time.Now()}, bridge.RoomKey{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := db.AddDelivery(ctx, bridge.Delivery{MessageID: "m1", Conversation: it.Conversation, Bot: "bot",
		Target: bridge.ReplyTarget{Room: room}, Payload: chat.Text{Text: "hello"}, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if err := PrintStatus(ctx, db, &out); err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", out.String())
	for _, want := range []string{
		"replicas alive: 2",
		"a  31 of 64 shards, matrix.sync",
		"b  31 of 64 shards",
		"shards held by no one: 2: ",
		others[61] + " (given up by gone)",
		others[62] + " (never taken)",
		"waiting: 1 messages to send to Botpress, 1 replies to post",
		lease + " (held by a): 1 to send, the oldest stored",
		"1 to post, the oldest received",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("status lacks %q", want)
		}
	}
}
