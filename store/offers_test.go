package store_test

import (
	"errors"
	"testing"
	"time"

	"github.com/botbridge/botbridge/bridge"
	"github.com/botbridge/botbridge/chat"
)

func TestOffersArePendingWhileTheChoiceIsPosted(t *testing.T) {
	db, clk := newDB(t)
	ctx := t.Context()
	it := mapConv(t, db, convKey("C1"), "ev1", "conv_1")
	room := roomKey("C1", "")
	offer := bridge.Offer{Room: room, Bot: "bot", Conversation: it.Conversation,
		Options: []chat.ChoiceOption{{Label: "Small", Value: "s"}}, Expires: clk.Now().Add(time.Hour)}
	if err := db.PutOffer(ctx, offer); err != nil {
		t.Fatal(err)
	}
	if got, err := db.Offer(ctx, room); err != nil || got.MessageID != "" || len(got.Options) != 1 {
		t.Fatalf("pending offer = %+v, %v", got, err)
	}
	t.Run("an answer to the pending offer closes it, and its message id comes too late", func(t *testing.T) {
		in := newInbound("answer", room, clk.Now())
		in.Action = &bridge.Action{Value: "s", Label: "Small"}
		enqueue(t, db, convKey("C1"), in)
		posted := offer
		posted.MessageID = "1.1"
		if err := db.PutOffer(ctx, posted); err != nil {
			t.Fatal(err)
		}
		if got, err := db.Offer(ctx, room); !errors.Is(err, bridge.ErrNotFound) {
			t.Errorf("offer = %+v, %v; want none: it was answered", got, err)
		}
	})
	t.Run("a posted offer gets its message id", func(t *testing.T) {
		if err := db.PutOffer(ctx, offer); err != nil {
			t.Fatal(err)
		}
		posted := offer
		posted.MessageID = "2.2"
		if err := db.PutOffer(ctx, posted); err != nil {
			t.Fatal(err)
		}
		if got, err := db.Offer(ctx, room); err != nil || got.MessageID != "2.2" {
			t.Errorf("offer = %+v, %v; want message 2.2", got, err)
		}
	})
}
