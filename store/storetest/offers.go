package storetest

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/botbridge/botbridge/bridge"
	"github.com/botbridge/botbridge/chat"
)

func testOffers(t *testing.T, open Opener) {
	offer := func(e *env, conv int64, room bridge.RoomKey, msg string) bridge.Offer {
		return bridge.Offer{Room: room, Bot: "bot", Conversation: conv, MessageID: msg,
			Options: []chat.ChoiceOption{{Label: "Yes ☃", Value: "yes"}, {Label: "No", Value: "no"}},
			Expires: e.clk.Now().Add(time.Hour + 1500*time.Microsecond)}
	}

	t.Run("an offer stands in its room until it expires", func(t *testing.T) {
		e := newEnv(t, open)
		ctx := t.Context()
		it := e.mapConv(convKey("C1"), "ev1", "conv_1")
		o := offer(e, it.Conversation, roomKey("C1", "T1"), "1.1")
		e.putOffer(o)
		want := o
		want.Expires = o.Expires.Truncate(time.Millisecond)
		got, err := e.db.Offer(ctx, o.Room)
		if err != nil || !got.Expires.Equal(want.Expires) {
			t.Fatalf("Offer = %+v, %v; want %+v", got, err, want)
		}
		got.Expires = want.Expires
		if !reflect.DeepEqual(got, want) {
			t.Errorf("Offer\n got %+v\nwant %+v", got, want)
		}
		for _, room := range []bridge.RoomKey{roomKey("C1", ""), roomKey("C1", "T2"), roomKey("C2", "T1"),
			{Platform: bridge.PlatformMatrix, Room: "C1", Thread: "T1"}} {
			if got, err := e.db.Offer(ctx, room); !errors.Is(err, bridge.ErrNotFound) {
				t.Errorf("Offer(%s) = %+v, %v; want ErrNotFound", room, got, err)
			}
		}
		e.clk.Advance(time.Hour)
		if _, err := e.db.Offer(ctx, o.Room); err != nil {
			t.Errorf("an offer before its expiry: %v", err)
		}
		e.clk.Advance(time.Millisecond)
		if got, err := e.db.Offer(ctx, o.Room); !errors.Is(err, bridge.ErrNotFound) {
			t.Errorf("an offer at its expiry = %+v, %v; want ErrNotFound", got, err)
		}
	})

	t.Run("a new offer replaces the one before", func(t *testing.T) {
		e := newEnv(t, open)
		ctx := t.Context()
		a := e.mapConv(convKey("C1"), "ev1", "conv_1")
		b := e.mapConv(convKey("C2"), "ev2", "conv_2")
		e.putOffer(offer(e, a.Conversation, roomKey("C1", ""), "1.1"))
		second := offer(e, b.Conversation, roomKey("C1", ""), "2.2")
		second.Options = []chat.ChoiceOption{{Label: "Only", Value: "only"}}
		second.Bot = "other"
		e.putOffer(second)
		got, err := e.db.Offer(ctx, roomKey("C1", ""))
		second.Expires = second.Expires.Truncate(time.Millisecond)
		if err != nil || !reflect.DeepEqual(got, second) {
			t.Errorf("Offer\n got %+v, %v\nwant %+v", got, err, second)
		}
		if n := e.count("SELECT count(*) FROM offers"); n != 1 {
			t.Errorf("%d offers stored, want 1", n)
		}
	})

	t.Run("the answer to an offer closes it, once", func(t *testing.T) {
		e := newEnv(t, open)
		ctx := t.Context()
		key := convKey("C1")
		it := e.mapConv(key, "ev0", "conv_1")
		room := roomKey("C1", "T1")
		put := func() {
			t.Helper()
			e.putOffer(offer(e, it.Conversation, room, "1.1"))
		}
		standing := func() bool {
			t.Helper()
			_, err := e.db.Offer(ctx, room)
			if err != nil && !errors.Is(err, bridge.ErrNotFound) {
				t.Fatal(err)
			}
			return err == nil
		}
		answer := func(ev string, in bridge.RoomKey, msg string) bridge.Inbound {
			a := newInbound(ev, in, e.clk.Now())
			a.Action = &bridge.Action{Value: "yes", MessageID: msg}
			return a
		}
		put()
		for _, a := range []bridge.Inbound{
			answer("other-message", room, "9.9"),
			answer("other-thread", roomKey("C1", "T2"), "1.1"),
			answer("top-of-room", roomKey("C1", ""), "1.1"),
			newInbound("no-action", room, e.clk.Now()),
		} {
			e.enqueue(key, a)
			if !standing() {
				t.Fatalf("%s closed the offer", a.Key)
			}
		}
		closing := answer("answer", room, "1.1")
		e.enqueue(key, closing)
		if standing() {
			t.Fatal("the answer left the offer standing")
		}
		put()
		if _, created, err := e.db.EnqueueInbound(ctx, key, closing, bridge.RoomKey{}); err != nil || created {
			t.Fatalf("the answer again: created %v, %v; want a duplicate", created, err)
		}
		if !standing() {
			t.Error("a duplicate of the answer closed the new offer")
		}
	})

	t.Run("an offer is pending while its choice is posted", func(t *testing.T) {
		e := newEnv(t, open)
		ctx := t.Context()
		key := convKey("C1")
		it := e.mapConv(key, "ev1", "conv_1")
		room := roomKey("C1", "")
		pending := offer(e, it.Conversation, room, "")
		if err := e.db.PutOffer(ctx, pending); err != nil {
			t.Fatal(err)
		}
		if got, err := e.db.Offer(ctx, room); err != nil || got.MessageID != "" || len(got.Options) != 2 {
			t.Fatalf("pending offer = %+v, %v", got, err)
		}

		// An answer typed before the choice's message id is known closes
		// it, and the message id coming later changes nothing.
		in := newInbound("answer", room, e.clk.Now())
		in.Action = &bridge.Action{Value: "yes", Label: "Yes ☃"}
		e.enqueue(key, in)
		posted := pending
		posted.MessageID = "1.1"
		if err := e.db.PutOffer(ctx, posted); err != nil {
			t.Fatal(err)
		}
		if got, err := e.db.Offer(ctx, room); !errors.Is(err, bridge.ErrNotFound) {
			t.Errorf("offer = %+v, %v; want none: it was answered", got, err)
		}

		// Unanswered, it gets its message id.
		if err := e.db.PutOffer(ctx, pending); err != nil {
			t.Fatal(err)
		}
		posted.MessageID = "2.2"
		if err := e.db.PutOffer(ctx, posted); err != nil {
			t.Fatal(err)
		}
		if got, err := e.db.Offer(ctx, room); err != nil || got.MessageID != "2.2" {
			t.Errorf("offer = %+v, %v; want message 2.2", got, err)
		}

		// The message id of another conversation's choice, or of one
		// replaced meanwhile, is not taken.
		other := e.mapConv(convKey("C2"), "ev2", "conv_2")
		if err := e.db.PutOffer(ctx, offer(e, it.Conversation, room, "")); err != nil {
			t.Fatal(err)
		}
		if err := e.db.PutOffer(ctx, offer(e, other.Conversation, room, "3.3")); err != nil {
			t.Fatal(err)
		}
		if err := e.db.PutOffer(ctx, offer(e, it.Conversation, room, "4.4")); err != nil {
			t.Fatal(err)
		}
		if err := e.db.PutOffer(ctx, offer(e, it.Conversation, room, "5.5")); err != nil {
			t.Fatal(err)
		}
		if got, err := e.db.Offer(ctx, room); err != nil || got.MessageID != "4.4" {
			t.Errorf("offer = %+v, %v; want message 4.4, the first given while it was pending", got, err)
		}
		if n := e.count("SELECT count(*) FROM offers"); n != 1 {
			t.Errorf("%d offers stored, want 1", n)
		}
	})

	t.Run("an offer of an unknown conversation is not found", func(t *testing.T) {
		e := newEnv(t, open)
		if err := e.db.PutOffer(t.Context(), offer(e, 4242, roomKey("C1", ""), "")); !errors.Is(err, bridge.ErrNotFound) {
			t.Errorf("PutOffer: %v, want ErrNotFound", err)
		}
	})

	t.Run("prune removes expired offers only", func(t *testing.T) {
		e := newEnv(t, open)
		ctx := t.Context()
		it := e.mapConv(convKey("C1"), "ev1", "conv_1")
		e.putOffer(offer(e, it.Conversation, roomKey("C1", "old"), "1.1"))
		e.clk.Advance(time.Hour)
		e.putOffer(offer(e, it.Conversation, roomKey("C1", "new"), "2.2"))
		e.clk.Advance(time.Minute)
		if n, err := e.db.Prune(ctx, bridge.PruneBefore{}); err != nil || n != 1 {
			t.Errorf("Prune = %d, %v; want 1", n, err)
		}
		if n := e.count("SELECT count(*) FROM offers WHERE thread = 'new'"); n != 1 {
			t.Error("the standing offer was pruned")
		}
		if n := e.count("SELECT count(*) FROM offers"); n != 1 {
			t.Errorf("%d offers left, want 1", n)
		}
	})
}

func testIndicators(t *testing.T, open Opener) {
	e := newEnv(t, open)
	ctx := t.Context()
	t1 := bridge.ReplyTarget{Room: roomKey("C1", "T1"), MessageID: "1.1", UserID: "U1"}
	t2 := bridge.ReplyTarget{Room: roomKey("C1", "T1"), MessageID: "1.2", UserID: "U1"}
	t3 := bridge.ReplyTarget{Room: bridge.RoomKey{Platform: bridge.PlatformMatrix, Room: "!r:hs"}}
	set := func(tg bridge.ReplyTarget, on bool) {
		t.Helper()
		if err := e.db.SetIndicator(ctx, tg, on); err != nil {
			t.Fatalf("SetIndicator(%+v, %v): %v", tg, on, err)
		}
	}
	check := func(want ...bridge.ReplyTarget) {
		t.Helper()
		got, err := e.db.Indicators(ctx)
		if err != nil || len(got) != len(want) || (len(want) > 0 && !reflect.DeepEqual(got, want)) {
			t.Errorf("Indicators = %+v, %v; want %+v", got, err, want)
		}
	}
	check()
	set(t1, true)
	e.clk.Advance(time.Second)
	set(t2, true)
	e.clk.Advance(time.Second)
	set(t3, true)
	set(t1, true) // shown again: still one, still first
	check(t1, t2, t3)
	set(t2, false)
	check(t1, t3)
	set(t2, false) // taken down twice: no error
	set(bridge.ReplyTarget{Room: roomKey("C9", "")}, false)
	check(t1, t3)
	set(t1, false)
	set(t3, false)
	check()
}
