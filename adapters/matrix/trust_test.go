package matrix_test

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/crypto/cryptohelper"
	"maunium.net/go/mautrix/crypto/olm"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/botbridge/botbridge/adapters/matrix"
	"github.com/botbridge/botbridge/bridge"
	"github.com/botbridge/botbridge/bridge/bridgetest"
)

// logRecorder is a slog handler that keeps the messages logged and their
// attributes, and passes everything on to next.
type logRecorder struct {
	next  slog.Handler
	mu    *sync.Mutex
	got   *[]logLine
	attrs []slog.Attr
}

type logLine struct {
	msg, user string
	attrs     map[string]string
}

func newLogRecorder(next slog.Handler) *logRecorder {
	return &logRecorder{next: next, mu: new(sync.Mutex), got: new([]logLine)}
}

func (h *logRecorder) Enabled(ctx context.Context, l slog.Level) bool { return true }

func (h *logRecorder) Handle(ctx context.Context, r slog.Record) error {
	line := logLine{msg: r.Message, attrs: make(map[string]string)}
	add := func(a slog.Attr) bool {
		line.attrs[a.Key] = a.Value.String()
		if a.Key == "user" {
			line.user = a.Value.String()
		}
		return true
	}
	for _, a := range h.attrs {
		add(a)
	}
	r.Attrs(add)
	h.mu.Lock()
	*h.got = append(*h.got, line)
	h.mu.Unlock()
	return h.next.Handle(ctx, r)
}

func (h *logRecorder) WithAttrs(as []slog.Attr) slog.Handler {
	return &logRecorder{next: h.next.WithAttrs(as), mu: h.mu, got: h.got, attrs: append(slices.Clip(h.attrs), as...)}
}

func (h *logRecorder) WithGroup(name string) slog.Handler {
	return &logRecorder{next: h.next.WithGroup(name), mu: h.mu, got: h.got, attrs: h.attrs}
}

// lines returns the lines logged so far whose message contains text.
func (h *logRecorder) lines(text string) []logLine {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []logLine
	for _, l := range *h.got {
		if strings.Contains(l.msg, text) {
			out = append(out, l)
		}
	}
	return out
}

// count returns how many lines of user contain text.
func (h *logRecorder) count(user id.UserID, text string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, l := range *h.got {
		if l.user == string(user) && strings.Contains(l.msg, text) {
			n++
		}
	}
	return n
}

func TestSenderTrustIsCountedAndDoubtfulSendersLogged(t *testing.T) {
	acc := newAccount(t, shared, "bot")
	dave := newPerson(t, shared, "dave", true)
	erin := newPerson(t, shared, "erin", true)
	logs := newLogRecorder(testLogger(t).Handler())
	var mu sync.Mutex
	var states []string
	rec := recorder{make(chan bridge.Inbound, 10)}
	st, db := openStore(t, t.TempDir()+"/bridge.db")
	opts := options(t, shared, acc, st, db)
	opts.PickleKey = "a pickle key for the test"
	opts.Logger = slog.New(logs)
	opts.OnSenderTrust = func(state string) {
		mu.Lock()
		states = append(states, state)
		mu.Unlock()
	}
	a, err := matrix.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	runAdapter(t, a, rec)
	waitReady(t, a)

	room := dave.createRoom(true, false, acc.ID, erin.cli.UserID)
	erin.join(room)
	dave.wait("the bot joining", joined(acc.ID, room))
	dave.wait("erin joining", joined(erin.cli.UserID, room))
	mach := dave.cli.Crypto.(*cryptohelper.CryptoHelper).Machine()
	devices, err := mach.FetchKeys(t.Context(), []id.UserID{acc.ID}, true)
	if err != nil || len(devices[acc.ID]) == 0 {
		t.Fatalf("the bot's devices: %v, %v", devices, err)
	}

	// dave's own client shares its keys as usual.
	dave.say(room, "an ordinary message")
	// A session whose key reaches the bot forwarded, as if through another
	// of dave's devices.
	forwarded := newSealer(dave, room)
	inbound, err := olm.NewInboundGroupSession([]byte(forwarded.key))
	if err != nil {
		t.Fatal(err)
	}
	exported, err := inbound.Export(0)
	if err != nil {
		t.Fatal(err)
	}
	for _, dev := range devices[acc.ID] {
		err := mach.SendEncryptedToDevice(t.Context(), dev, event.ToDeviceForwardedRoomKey, event.Content{Parsed: &event.ForwardedRoomKeyEventContent{
			RoomKeyEventContent: event.RoomKeyEventContent{Algorithm: id.AlgorithmMegolmV1, RoomID: room,
				SessionID: forwarded.sess.ID(), SessionKey: string(exported)},
			SenderKey:          mach.OwnIdentity().IdentityKey,
			SenderClaimedKey:   mach.OwnIdentity().SigningKey,
			ForwardingKeyChain: []string{"another device's key, which the bot does not know"},
		}})
		if err != nil {
			t.Fatal(err)
		}
	}
	forwarded.say("forwarded one")
	forwarded.say("forwarded two")
	// erin sends what dave's session encrypted: the bot's keys for it are
	// from dave's device, which erin does not have.
	borrowed := newSealer(dave, room)
	borrowed.share(acc.ID)
	borrowed.p = erin
	borrowed.say("not really from erin")

	want := []string{"an ordinary message", "forwarded one", "forwarded two", "not really from erin"}
	var got []string
	for len(got) < len(want) {
		got = append(got, rec.next(t).Text)
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("the bridge got %q, want %q", got, want)
	}

	mu.Lock()
	slices.Sort(states)
	mu.Unlock()
	t.Run("every decrypted message is counted by trust", func(t *testing.T) {
		if want := []string{"forwarded", "forwarded", "unknown-device", "unverified"}; !slices.Equal(states, want) {
			t.Errorf("trust states %q, want %q", states, want)
		}
	})
	t.Run("forwarded keys are logged once per device", func(t *testing.T) {
		if n := logs.count(dave.cli.UserID, "forwarded by another device"); n != 1 {
			t.Errorf("%d lines about dave's forwarded keys, want 1", n)
		}
	})
	t.Run("a device the sender does not have is logged", func(t *testing.T) {
		if n := logs.count(erin.cli.UserID, "a device the sender does not have"); n != 1 {
			t.Errorf("%d lines about erin's unknown device, want 1", n)
		}
	})
	t.Run("trusted enough senders are not logged", func(t *testing.T) {
		if n := logs.count(dave.cli.UserID, "cannot trust"); n != 1 {
			t.Errorf("%d lines about dave's trust, want 1 (the forwarded keys)", n)
		}
	})
}

func TestTrustPolicyReadsTheSendersItAcceptsAndTellsTheOthers(t *testing.T) {
	// dave's device is not cross-signed; erin cross-signed hers; fay
	// cross-signed hers and, where the policy asks for it, verified the bot
	// by SAS, which makes the bot verify her device in turn.
	dave := newPerson(t, shared, "dave", true)
	erin := newVerifier(t, shared, "erin")
	fay := newVerifier(t, shared, "fay")
	cases := []struct {
		policy        matrix.Trust
		read, refused []*person
	}{
		{matrix.TrustAny, []*person{dave, erin.person, fay.person}, nil},
		{matrix.TrustCrossSigned, []*person{erin.person, fay.person}, []*person{dave}},
		{matrix.TrustVerified, []*person{fay.person}, []*person{dave, erin.person}},
	}
	for _, c := range cases {
		t.Run(string(c.policy), func(t *testing.T) {
			acc := newAccount(t, shared, "bot")
			logs := newLogRecorder(testLogger(t).Handler())
			rec := recorder{make(chan bridge.Inbound, 20)}
			st, db := openStore(t, t.TempDir()+"/bridge.db")
			opts := options(t, shared, acc, st, db)
			opts.PickleKey = "a pickle key for the test"
			opts.Trust = c.policy
			opts.Logger = slog.New(logs)
			a, err := matrix.New(opts)
			if err != nil {
				t.Fatal(err)
			}
			runAdapter(t, a, rec)
			waitReady(t, a)

			room := dave.createRoom(true, false, acc.ID, erin.cli.UserID, fay.cli.UserID)
			erin.join(room)
			fay.join(room)
			for _, u := range []id.UserID{acc.ID, erin.cli.UserID, fay.cli.UserID} {
				dave.wait("everyone joining", joined(u, room))
			}
			if c.policy == matrix.TrustVerified {
				// In the room, as Element verifies another person; fay's
				// client shares its room key with the members it knows of.
				fay.wait("the bot in the room", joined(acc.ID, room))
				fay.verify(acc.ID, room, logs)
			}
			said := make(map[id.UserID][]id.EventID)
			for _, p := range []*person{dave, erin.person, fay.person} {
				said[p.cli.UserID] = append(said[p.cli.UserID], p.say(room, "hello from "+p.cli.UserID.Localpart(), acc.ID))
			}
			var got []string
			for range c.read {
				got = append(got, rec.next(t).Text)
			}
			bridgetest.WaitFor(t, "the refusals to be counted", func() bool { return a.Stats().Untrusted == int64(len(c.refused)) })
			for _, p := range c.refused {
				notice := p.wait("the notice of the refusal", func(evt *event.Event) bool {
					return from(acc.ID, room)(evt) && evt.Content.AsMessage().RelatesTo.GetReplyTo() == said[p.cli.UserID][0]
				}).Content.AsMessage()
				if notice.MsgType != event.MsgNotice || !strings.Contains(notice.Body, "I did not read your message") {
					t.Errorf("notice to %s: %s %q", p.cli.UserID, notice.MsgType, notice.Body)
				}
			}

			// Refused senders write again: no second notice. An accepted
			// message after them shows that the bot got that far.
			for _, p := range c.refused {
				said[p.cli.UserID] = append(said[p.cli.UserID], p.say(room, "again from "+p.cli.UserID.Localpart(), acc.ID))
			}
			fay.say(room, "the last word", acc.ID)
			for got[len(got)-1] != "the last word" {
				got = append(got, rec.next(t).Text)
			}
			slices.Sort(got)
			var want []string
			for _, p := range c.read {
				want = append(want, "hello from "+p.cli.UserID.Localpart())
			}
			want = append(want, "the last word")
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("the bridge got %q, want %q", got, want)
			}
			if n := a.Stats().Untrusted; n != int64(2*len(c.refused)) {
				t.Errorf("%d messages refused, want %d", n, 2*len(c.refused))
			}
			msgs, err := dave.cli.Messages(t.Context(), room, "", "", mautrix.DirectionBackward, nil, 100)
			if err != nil {
				t.Fatal(err)
			}
			// The notices are the bot's replies; their relation is outside
			// the ciphertext. (Its verification events relate otherwise.)
			notices := 0
			for _, evt := range msgs.Chunk {
				rel, _ := evt.Content.Raw["m.relates_to"].(map[string]any)
				if _, reply := rel["m.in_reply_to"]; reply && evt.Sender == acc.ID && evt.Type == event.EventEncrypted {
					notices++
				}
			}
			if notices != len(c.refused) {
				t.Errorf("the bot posted %d notices, want one per refused sender (%d)", notices, len(c.refused))
			}
		})
	}
}
