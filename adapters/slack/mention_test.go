package slack_test

import (
	"context"
	"testing"

	"github.com/botbridge/botbridge/adapters/slack/slacktest"
	"github.com/botbridge/botbridge/bridge"
)

// Slack delivers a message that mentions the bot twice, as a message event
// and as an app_mention event; the bridge keeps one of them by its event
// key, so both must give the same key (and the same message).
func TestMentionEventsShareTheKeyOfTheirMessage(t *testing.T) {
	fake := newFake(t, slacktest.Options{})
	got := make(chan bridge.Inbound, 16)
	a := newAdapter(t, fake, nil)
	run(t, a, bridge.HandlerFunc(func(_ context.Context, in bridge.Inbound) error {
		got <- in
		return nil
	}))
	mention := "<@" + fake.Options().BotUserID + "> !reset"
	// both sends the two events and returns the two inbounds.
	both := func(t *testing.T, events ...slacktest.EventCallback) []bridge.Inbound {
		t.Helper()
		var out []bridge.Inbound
		for _, ev := range events {
			if _, err := fake.SendEvent(waitCtx(t), slacktest.EventsAPI, ev); err != nil {
				t.Fatal(err)
			}
			select {
			case in := <-got:
				out = append(out, in)
			case <-waitCtx(t).Done():
				t.Fatalf("no inbound for the %d. event", len(out)+1)
			}
		}
		return out
	}
	same := func(t *testing.T, ins []bridge.Inbound, edited bool) {
		t.Helper()
		m, am := ins[0], ins[1]
		if m.Key == "" || m.Key != am.Key {
			t.Errorf("keys %q (message) and %q (app_mention), want one", m.Key, am.Key)
		}
		if m.Text != "!reset" || am.Text != "!reset" || !m.Mentioned || !am.Mentioned || m.Room != am.Room {
			t.Errorf("inbounds differ: %+v and %+v", m, am)
		}
		if m.Edited != edited || am.Edited != edited {
			t.Errorf("edited %v and %v, want %v", m.Edited, am.Edited, edited)
		}
	}
	t.Run("at the top level of a channel", func(t *testing.T) {
		m := fake.AddMessage(slacktest.Message{Channel: general, User: alice, Text: mention})
		same(t, both(t, fake.MessageEvent(m), fake.AppMentionEvent(m)), false)
	})
	t.Run("in a thread", func(t *testing.T) {
		root := fake.AddMessage(slacktest.Message{Channel: general, User: alice, Text: "question"})
		m := fake.AddMessage(slacktest.Message{Channel: general, User: alice, ThreadTS: root.TS, Text: mention})
		ins := both(t, fake.AppMentionEvent(m), fake.MessageEvent(m))
		same(t, []bridge.Inbound{ins[1], ins[0]}, false)
		if ins[0].Room.Thread != root.TS {
			t.Errorf("room %v, want the thread", ins[0].Room)
		}
	})
	t.Run("an edit that adds the mention", func(t *testing.T) {
		// Slack sends app_mention again, with "edited", beside
		// message_changed.
		m := fake.AddMessage(slacktest.Message{Channel: general, User: alice, Text: "!reset"})
		prev, cur, err := fake.EditMessage(general, m.TS, mention)
		if err != nil {
			t.Fatal(err)
		}
		same(t, both(t, fake.MessageChangedEvent(prev, cur), fake.AppMentionEvent(cur)), true)
	})
}
