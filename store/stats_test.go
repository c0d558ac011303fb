package store_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/botbridge/botbridge/bridge"
	"github.com/botbridge/botbridge/chat"
)

func TestStatsCountPendingWork(t *testing.T) {
	db := openDB(t, filepath.Join(t.TempDir(), "stats.db"))
	ctx := t.Context()
	if s, err := db.Stats(ctx); err != nil || s.PendingInbound != 0 || !s.OldestInbound.IsZero() {
		t.Fatalf("empty store stats = %+v, %v", s, err)
	}
	key := bridge.ConvKey{Bot: "b", Scope: bridge.ScopeUser, Room: bridge.RoomKey{Platform: bridge.PlatformSlack, Room: "D1"}, User: "U1"}
	first := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	db.Now = func() time.Time { return first }
	it, _, err := db.EnqueueInbound(ctx, key, bridge.Inbound{Key: "e1", Room: key.Room, Time: first}, bridge.RoomKey{})
	if err != nil {
		t.Fatal(err)
	}
	db.Now = func() time.Time { return first.Add(time.Minute) }
	if _, _, err := db.EnqueueInbound(ctx, key, bridge.Inbound{Key: "e2", Room: key.Room, Time: first}, bridge.RoomKey{}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := db.AddDelivery(ctx, bridge.Delivery{MessageID: "m1", Conversation: it.Conversation, Payload: chat.Text{Text: "x"},
		Target: bridge.ReplyTarget{Room: key.Room}}); err != nil {
		t.Fatal(err)
	}
	s, err := db.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if s.PendingInbound != 2 || !s.OldestInbound.Equal(first) || s.PendingDeliveries != 1 || s.OldestDelivery.IsZero() {
		t.Errorf("stats = %+v", s)
	}
}
