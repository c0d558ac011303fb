package bridge_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/botbridge/botbridge/bridge"
	"github.com/botbridge/botbridge/bridge/bridgetest"
	"github.com/botbridge/botbridge/chat"
	"github.com/botbridge/botbridge/chat/chattest"
)

// reaction builds alice's reaction to the platform message id in room.
func reaction(room bridge.RoomKey, key, emoji, on string) bridge.Inbound {
	in := msg(room, "")
	in.Key = bridge.EventKey(key)
	in.MessageID = ""
	in.Reaction = &bridge.Reaction{Emoji: emoji, MessageID: on}
	return in
}

// sentMessages returns the messages people sent in the Botpress
// conversation, with their metadata.
func (r *rig) sentMessages(conv chat.ConversationID) []chat.Message {
	var out []chat.Message
	for _, m := range r.em.Messages(conv) {
		if m.UserID != r.em.BotUserID() {
			out = append(out, m)
		}
	}
	return out
}

func TestReactionReachesTheBotOnceInItsMessagesConversation(t *testing.T) {
	r := newRig(t, chattest.EchoBot())
	r.start()
	first := dm("hello")
	r.say(first)
	ps := r.waitPosts(1)
	r.waitIdle()
	convs := r.conversations()
	if len(convs) != 1 {
		t.Fatalf("%d conversations", len(convs))
	}
	var chatConv chat.ConversationID
	for _, c := range convs {
		chatConv = c
	}
	botMsg := r.em.Messages(chatConv)[1].ID

	t.Run("a reaction on the bot's message reaches the bot once, however often it is delivered", func(t *testing.T) {
		up := reaction(first.Room, "react-1", "+1", ps[0].ID)
		r.say(up)
		r.say(up) // the platform delivers it again
		r.waitPosts(2)
		r.waitIdle()
		sent := r.sentMessages(chatConv)
		if len(sent) != 2 {
			t.Fatalf("Botpress got %d messages from people, want the message and one reaction", len(sent))
		}
		m := sent[1]
		if got := bridgetest.Text(m.Payload); got != ":+1:" {
			t.Errorf("the reaction reached the bot as %q, want :+1:", got)
		}
		if m.Metadata["reaction"] != "+1" || m.Metadata["reactionTo"] != string(botMsg) || m.Metadata["reactionMessageId"] != ps[0].ID {
			t.Errorf("metadata %v; want the reaction and the bot message it is on (%s, %s)", m.Metadata, botMsg, ps[0].ID)
		}
		if k, _ := m.Metadata[bridge.MetaKey].(string); !strings.Contains(k, "react-1") {
			t.Errorf("metadata %s = %q, want the reaction's event key", bridge.MetaKey, k)
		}
	})
	t.Run("no thinking indicator waits for an answer to a reaction", func(t *testing.T) {
		for _, c := range r.ad().TypingCalls() {
			if c.On && c.Target.MessageID == ps[0].ID {
				t.Errorf("typing shown on the bot's own message for a reaction: %+v", c)
			}
		}
	})
	t.Run("a reaction on a message that is not the bot's is ignored", func(t *testing.T) {
		r.say(reaction(first.Room, "react-2", "+1", first.MessageID))
		r.say(reaction(first.Room, "react-3", "+1", "no-such-message"))
		r.waitIdle()
		if n := len(r.sentMessages(chatConv)); n != 2 {
			t.Errorf("Botpress got %d messages from people, want still 2", n)
		}
	})
	t.Run("after a reset, a reaction on an old message goes to the old conversation", func(t *testing.T) {
		r.say(dm("!reset"))
		r.waitPosts(3)
		r.say(dm("new start"))
		r.waitPosts(4)
		r.waitIdle()
		r.say(reaction(first.Room, "react-4", "-1", ps[0].ID))
		r.waitPosts(5)
		r.waitIdle()
		sent := r.sentMessages(chatConv)
		if len(sent) != 3 || bridgetest.Text(sent[2].Payload) != ":-1:" {
			t.Errorf("the old conversation got %q, want the 👎 last", texts2(sent))
		}
	})
	t.Run("a removed reaction says so", func(t *testing.T) {
		off := reaction(first.Room, "react-5", "-1", ps[0].ID)
		off.Reaction.Removed = true
		r.say(off)
		r.waitPosts(6)
		r.waitIdle()
		sent := r.sentMessages(chatConv)
		last := sent[len(sent)-1]
		if bridgetest.Text(last.Payload) != "(removed the reaction :-1:)" || last.Metadata["reactionRemoved"] != true {
			t.Errorf("removal reached the bot as %q %v", bridgetest.Text(last.Payload), last.Metadata)
		}
	})
}

func texts2(ms []chat.Message) []string {
	var out []string
	for _, m := range ms {
		out = append(out, bridgetest.Text(m.Payload))
	}
	return out
}

func TestNoticesAsChatAPIEvents(t *testing.T) {
	r := newRig(t, chattest.EchoBot())
	r.routes = []bridge.Route{{Bot: "bot", Welcome: true}}
	r.tweak = func(c *bridge.Config) { c.Bots[0].Notify = bridge.NotifyEvent }
	r.start()
	first := dm("hello")
	r.say(first)
	ps := r.waitPosts(1)
	r.waitIdle()
	var chatConv chat.ConversationID
	for _, c := range r.conversations() {
		chatConv = c
	}
	up := reaction(first.Room, "react-1", "+1", ps[0].ID)
	r.say(up)
	r.say(up)
	r.waitIdle()
	if n := len(r.sentMessages(chatConv)); n != 1 {
		t.Errorf("Botpress got %d messages from people; a reaction should be an event", n)
	}
	evs := r.em.Events(chatConv)
	if len(evs) != 1 {
		t.Fatalf("Botpress got %d events, want one", len(evs))
	}
	var p map[string]any
	if err := json.Unmarshal(evs[0].Payload, &p); err != nil {
		t.Fatal(err)
	}
	if p["type"] != "reaction" || p["reaction"] != "+1" || p["text"] != ":+1:" || !strings.Contains(p[bridge.MetaKey].(string), "react-1") {
		t.Errorf("event payload %v", p)
	}
	if n := len(r.ad().Posts()); n != 1 {
		t.Errorf("%d posts; the bot answers events only if it wants to", n)
	}
}

func TestCommandsAreAnsweredWhereTheRouteSays(t *testing.T) {
	room := bridge.RoomKey{Platform: bridge.PlatformSlack, Room: "C1"}
	command := func(name, text string) bridge.Inbound {
		in := msg(room, text)
		in.MessageID = "" // a command is not a message
		in.Command = &bridge.Command{Name: name}
		return in
	}
	for _, tc := range []struct {
		name      string
		replies   bridge.CommandReply
		ephemeral bool
	}{
		{"privately by default", "", true},
		{"in the channel when the route says so", bridge.CommandReplyChannel, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, chattest.EchoBot())
			r.routes = []bridge.Route{{Bot: "bot", CommandReplies: tc.replies}}
			r.start()
			r.say(command("/ask", "what is up")) // no mention: a command is addressed to the bot
			ps := r.waitPosts(1)
			out := ps[0].Out
			if bridgetest.Text(out.Payload) != "what is up" || out.Ephemeral != tc.ephemeral || out.ReplyToUser != "U_ALICE" || out.Room != room {
				t.Errorf("answer %q in %s ephemeral=%v to %q", bridgetest.Text(out.Payload), out.Room, out.Ephemeral, out.ReplyToUser)
			}
			r.waitIdle()
			for _, c := range r.conversations() {
				if m := r.sentMessages(c); len(m) != 1 || m[0].Metadata["command"] != "/ask" {
					t.Errorf("Botpress got %v", m)
				}
			}

			t.Run("a reset command starts a new conversation", func(t *testing.T) {
				reset := command("/reset", "")
				reset.Command.Reset = true
				r.say(reset)
				ps := r.waitPosts(2)
				if !strings.Contains(bridgetest.Text(ps[1].Payload()), "new conversation") || ps[1].Out.Ephemeral != tc.ephemeral {
					t.Errorf("reset answered %q ephemeral=%v", bridgetest.Text(ps[1].Payload()), ps[1].Out.Ephemeral)
				}
			})
			t.Run("a message after the command is answered as usual", func(t *testing.T) {
				in := msg(room, "plain")
				in.Mentioned = true
				r.say(in)
				ps := r.waitPosts(3)
				if ps[2].Out.Ephemeral {
					t.Error("an answer to a message was ephemeral")
				}
			})
		})
	}
}

func TestWelcomeOnlyWhereTheRouteWelcomes(t *testing.T) {
	quiet := bridge.RoomKey{Platform: bridge.PlatformSlack, Room: "C_QUIET"}
	hello := bridge.RoomKey{Platform: bridge.PlatformSlack, Room: "C_HELLO"}
	r := newRig(t, chattest.EchoBot())
	r.routes = []bridge.Route{{Bot: "bot", Rooms: []string{"C_HELLO"}, Welcome: true}, {Bot: "bot"}}
	r.start()
	joined := func(room bridge.RoomKey, key string) bridge.Inbound {
		in := msg(room, "")
		in.Key = bridge.EventKey(key)
		in.MessageID = ""
		in.Event = &bridge.Event{Name: bridge.EventJoined, Text: "joined the channel"}
		return in
	}
	r.say(joined(quiet, "join-1"))
	r.say(joined(hello, "join-2"))
	r.say(joined(hello, "join-2"))
	ps := r.waitPosts(1)
	r.waitIdle()
	if len(r.ad().Posts()) != 1 || ps[0].Out.Room != hello || bridgetest.Text(ps[0].Payload()) != "(joined the channel)" {
		t.Fatalf("posts %q; want one greeting at the top of %s", texts(r.ad().Posts()), hello)
	}
	for _, c := range r.conversations() {
		if m := r.sentMessages(c); len(m) != 1 || m[0].Metadata["event"] != bridge.EventJoined {
			t.Errorf("Botpress got %v", m)
		}
	}
}
