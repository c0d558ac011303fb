package matrix_test

import (
	"slices"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/botbridge/botbridge/adapters/matrix"
	"github.com/botbridge/botbridge/bridge/bridgetest"
)

func TestKeycapNumber(t *testing.T) {
	cases := []struct {
		key  string
		n    int
		isOK bool
	}{
		{"1️⃣", 1, true},
		{"9️⃣", 9, true},
		{"3\u20e3", 3, true}, // without the variation selector
		{"🔟", 10, true},
		{"0️⃣", 0, false},
		{"#️⃣", 0, false},
		{"👍", 0, false},
		{"1", 0, false},
		{"", 0, false},
	}
	for _, c := range cases {
		if n, ok := matrix.KeycapNumber(c.key); n != c.n || ok != c.isOK {
			t.Errorf("KeycapNumber(%q) = %d, %v; want %d, %v", c.key, n, ok, c.n, c.isOK)
		}
	}
}

// react reacts to evt with key, encrypted in encrypted rooms as Element
// does (mautrix's client would send it in the clear).
func (p *person) react(room id.RoomID, evt id.EventID, key string) id.EventID {
	p.t.Helper()
	var c any = &event.ReactionEventContent{RelatesTo: *(&event.RelatesTo{}).SetAnnotation(evt, key)}
	typ := event.EventReaction
	if p.cli.Crypto == nil {
		// A client without crypto sends in the clear.
	} else if enc, err := p.cli.StateStore.IsEncrypted(p.t.Context(), room); err == nil && enc {
		if c, err = p.cli.Crypto.Encrypt(p.t.Context(), room, event.EventReaction, c); err != nil {
			p.t.Fatal(err)
		}
		typ = event.EventEncrypted
	}
	txn := mautrix.ReqSendEvent{TransactionID: p.cli.TxnID()}
	var sent id.EventID
	retryServer(p.t, p.hs, string(p.cli.UserID)+": react", func() error {
		resp, err := p.cli.SendMessageEvent(p.t.Context(), room, typ, c, txn)
		if err == nil {
			sent = resp.EventID
		}
		return err
	})
	return sent
}

// reactions matches the bot's reactions to evt.
func reactions(bot id.UserID, evt id.EventID) func(*event.Event) bool {
	return func(e *event.Event) bool {
		return e.Type == event.EventReaction && e.Sender == bot && e.Content.AsReaction().RelatesTo.GetAnnotationID() == evt
	}
}

func TestChoiceAnsweredByReactionOnce(t *testing.T) {
	for _, encrypted := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain room", true: "encrypted room"}[encrypted], func(t *testing.T) {
			r := newRig(t, shared, encrypted)
			r.start()
			alice := newPerson(t, shared, "alice", encrypted)
			room := dm(alice, r, encrypted)

			alice.say(room, "choice")
			choice := alice.wait("the choice", fromWith(r.acc.ID, room, "Which size?")).ID
			bridgetest.WaitFor(t, "the bot to offer a keycap per option", func() bool {
				return len(alice.seen(reactions(r.acc.ID, choice))) == 2
			})
			var keys []string
			for _, evt := range alice.seen(reactions(r.acc.ID, choice)) {
				keys = append(keys, evt.Content.AsReaction().RelatesTo.Key)
			}
			slices.Sort(keys)
			if want := []string{"1️⃣", "2️⃣"}; !slices.Equal(keys, want) {
				t.Errorf("the bot reacted %q, want %q", keys, want)
			}

			alice.react(room, choice, "2️⃣")
			alice.wait("the bot getting the second option's value", fromWith(r.acc.ID, room, "chose: l"))
			// The choice is answered once: another keycap, or another emoji,
			// reaches the bot as a reaction to its message, never as an
			// answer.
			alice.react(room, choice, "1️⃣")
			alice.react(room, choice, "👍")
			alice.say(room, "ping")
			alice.wait("the answer to a later message", fromWith(r.acc.ID, room, "echo: ping"))
			if got, want := r.bot.texts(), []string{"choice", "l", "1️⃣", "👍", "ping"}; !slices.Equal(got, want) {
				t.Errorf("the bot got %q, want %q", got, want)
			}
			r.bot.mu.Lock()
			got := slices.Clone(r.bot.got)
			r.bot.mu.Unlock()
			for _, m := range got[2:4] {
				if m.Metadata["reaction"] == nil || m.Metadata["action"] != nil {
					t.Errorf("a reaction after the answer reached the bot with metadata %v, want a reaction and no answer", m.Metadata)
				}
			}
		})
	}
}
func TestReactionOnTheBotsMessageReachesTheBot(t *testing.T) {
	r := newRig(t, shared, false)
	r.start()
	alice := newPerson(t, shared, "alice", false)
	room := dm(alice, r, false)
	asked := alice.say(room, "hello")
	reply := alice.wait("the bot's reply", fromWith(r.acc.ID, room, "echo: hello"))

	// A reaction to her own message first: the bot never gets it, and the
	// one to the bot's reply comes after it.
	if _, err := alice.cli.SendReaction(t.Context(), room, asked, "👎"); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.cli.SendReaction(t.Context(), room, reply.ID, "👍"); err != nil {
		t.Fatal(err)
	}
	alice.wait("the bot's answer to the reaction", fromWith(r.acc.ID, room, "echo: 👍"))
	got := r.bot.texts()
	if slices.Contains(got, "👎") || len(got) != 2 {
		t.Errorf("the bot got %q, want the message and the reaction to its reply", got)
	}
	r.bot.mu.Lock()
	md := r.bot.got[len(r.bot.got)-1].Metadata
	r.bot.mu.Unlock()
	if md["reaction"] != "👍" || md["reactionMessageId"] != string(reply.ID) {
		t.Errorf("metadata %v", md)
	}
}
