package slack_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/botbridge/botbridge/adapters/slack/slacktest"
	"github.com/botbridge/botbridge/bridge"
	"github.com/botbridge/botbridge/chat"
	"github.com/botbridge/botbridge/chat/chattest"
)

// sentToBot returns what people sent the bot in every Botpress conversation
// of the rig's emulator em, oldest first.
func (r *rig) sentToBot(t *testing.T, em *chattest.Server) []chat.Message {
	t.Helper()
	convs, err := r.db.ActiveConversations(t.Context(), time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	var out []chat.Message
	for _, c := range convs {
		for _, m := range em.Messages(c.ChatID) {
			if m.UserID != em.BotUserID() {
				out = append(out, m)
			}
		}
	}
	return out
}

func TestReactions(t *testing.T) {
	r := newRig(t, whoBot(), rigOptions{})
	root := r.say(t, alice, general, "", r.mention()+" how do I reset my password?")
	reply := r.waitReplies(t, general, root.TS, 1)[0]
	r.idle(t)

	t.Run("a reaction on the bot's reply reaches the bot once, in the reply's thread", func(t *testing.T) {
		ev, err := r.fake.React(bob, general, reply.TS, "+1")
		if err != nil {
			t.Fatal(err)
		}
		// Slack delivers it again when the ack is late.
		for _, env := range []slacktest.Envelope{
			{Type: slacktest.EventsAPI, Payload: ev},
			{Type: slacktest.EventsAPI, Payload: ev, RetryAttempt: 1, RetryReason: "timeout"},
		} {
			id, err := r.fake.Send(waitCtx(t), env)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := r.fake.WaitAck(waitCtx(t), id); err != nil {
				t.Fatal(err)
			}
		}
		got := r.waitReplies(t, general, root.TS, 2)
		if want := ":+1: (from Bob Builder in #general)"; got[1].Text != want {
			t.Errorf("the bot answered %q, want %q", got[1].Text, want)
		}
		r.idle(t)
		sent := r.sentToBot(t, r.em)
		if len(sent) != 2 {
			t.Fatalf("Botpress got %d messages, want the question and one reaction", len(sent))
		}
		if md := sent[1].Metadata; md["reaction"] != "+1" || md["reactionMessageId"] != reply.TS || md["reactionTo"] == nil {
			t.Errorf("metadata of the reaction %v", md)
		}
	})
	t.Run("a removed reaction reaches the bot too", func(t *testing.T) {
		ev, err := r.fake.Unreact(bob, general, reply.TS, "+1")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.fake.SendEvent(waitCtx(t), slacktest.EventsAPI, ev); err != nil {
			t.Fatal(err)
		}
		got := r.waitReplies(t, general, root.TS, 3)
		if want := "(removed the reaction :+1:) (from Bob Builder in #general)"; got[2].Text != want {
			t.Errorf("the bot answered %q, want %q", got[2].Text, want)
		}
	})
	t.Run("reactions on people's messages are ignored", func(t *testing.T) {
		r.idle(t)
		before := len(r.sentToBot(t, r.em))
		ev, err := r.fake.React(bob, general, root.TS, "eyes")
		if err != nil {
			t.Fatal(err)
		}
		id, err := r.fake.SendEvent(waitCtx(t), slacktest.EventsAPI, ev)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.fake.WaitAck(waitCtx(t), id); err != nil {
			t.Fatal(err)
		}
		r.idle(t)
		if n := len(r.sentToBot(t, r.em)); n != before {
			t.Errorf("Botpress got %d messages, want still %d", n, before)
		}
	})
}

func TestReactionsAsChatAPIEvents(t *testing.T) {
	r := newRig(t, whoBot(), rigOptions{tweak: func(b *bridge.BotSpec) { b.Notify = bridge.NotifyEvent }})
	r.say(t, alice, dm, "", "hello")
	reply := r.waitReplies(t, dm, "", 1)[0]
	r.idle(t)
	ev, err := r.fake.React(alice, dm, reply.TS, "-1")
	if err != nil {
		t.Fatal(err)
	}
	id, err := r.fake.SendEvent(waitCtx(t), slacktest.EventsAPI, ev)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.fake.WaitAck(waitCtx(t), id); err != nil { // stored
		t.Fatal(err)
	}
	r.idle(t) // and sent
	convs, err := r.db.ActiveConversations(t.Context(), time.Time{})
	if err != nil || len(convs) != 1 {
		t.Fatalf("conversations %v, %v", convs, err)
	}
	evs := r.em.Events(convs[0].ChatID)
	if len(evs) != 1 {
		t.Fatalf("Botpress got %d events, want the reaction", len(evs))
	}
	var p map[string]any
	if err := json.Unmarshal(evs[0].Payload, &p); err != nil {
		t.Fatal(err)
	}
	if p["type"] != "reaction" || p["reaction"] != "-1" || p["reactionMessageId"] != reply.TS || p["userId"] != alice {
		t.Errorf("event %v", p)
	}
	if n := len(r.sentToBot(t, r.em)); n != 1 {
		t.Errorf("Botpress got %d messages; the reaction is an event, not a message", n)
	}
}
