package matrix_test

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"

	"maunium.net/go/mautrix/crypto/cryptohelper"
	"maunium.net/go/mautrix/crypto/olm"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/botbridge/botbridge/adapters/matrix"
	"github.com/botbridge/botbridge/bridge"
)

// logRecorder is a slog handler that keeps the messages logged and their
// "user" attribute, and passes everything on to next.
type logRecorder struct {
	next slog.Handler
	mu   *sync.Mutex
	got  *[]logLine
}

type logLine struct{ msg, user string }

func newLogRecorder(next slog.Handler) *logRecorder {
	return &logRecorder{next: next, mu: new(sync.Mutex), got: new([]logLine)}
}

func (h *logRecorder) Enabled(ctx context.Context, l slog.Level) bool { return true }

func (h *logRecorder) Handle(ctx context.Context, r slog.Record) error {
	line := logLine{msg: r.Message}
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "user" {
			line.user = a.Value.String()
		}
		return true
	})
	h.mu.Lock()
	*h.got = append(*h.got, line)
	h.mu.Unlock()
	return h.next.Handle(ctx, r)
}

func (h *logRecorder) WithAttrs(as []slog.Attr) slog.Handler {
	return &logRecorder{next: h.next.WithAttrs(as), mu: h.mu, got: h.got}
}

func (h *logRecorder) WithGroup(name string) slog.Handler {
	return &logRecorder{next: h.next.WithGroup(name), mu: h.mu, got: h.got}
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
