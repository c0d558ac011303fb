package matrix_test

import (
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"maunium.net/go/mautrix/crypto"
	"maunium.net/go/mautrix/crypto/cryptohelper"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/botbridge/botbridge/adapters/matrix"
	"github.com/botbridge/botbridge/bridge"
	"github.com/botbridge/botbridge/bridge/bridgetest"
	"github.com/botbridge/botbridge/store"
)

// sealer sends a person's messages in a room encrypted with a session the
// bot does not have, as a client whose key share is late does, until share.
type sealer struct {
	p    *person
	room id.RoomID
	mach *crypto.OlmMachine
	sess *crypto.OutboundGroupSession
	// key is the session's key from its first message on.
	key string
}

func newSealer(p *person, room id.RoomID) *sealer {
	p.t.Helper()
	mach := p.cli.Crypto.(*cryptohelper.CryptoHelper).Machine()
	sess, err := crypto.NewOutboundGroupSession(room, &event.EncryptionEventContent{Algorithm: id.AlgorithmMegolmV1}, nil)
	if err != nil {
		p.t.Fatal(err)
	}
	// Marked shared, so that the person's client does not share it.
	sess.Shared = true
	return &sealer{p: p, room: room, mach: mach, sess: sess, key: sess.Internal.Key()}
}

// say sends text encrypted with the sealer's session.
func (s *sealer) say(text string) id.EventID {
	t := s.p.t
	t.Helper()
	// The client drops a room's session when its members change; the
	// sealer's goes back then.
	stored, err := s.mach.CryptoStore.GetOutboundGroupSession(t.Context(), s.room)
	if err != nil {
		t.Fatal(err)
	}
	if stored == nil || stored.ID() != s.sess.ID() {
		if err := s.mach.CryptoStore.AddOutboundGroupSession(t.Context(), s.sess); err != nil {
			t.Fatal(err)
		}
	}
	enc, err := s.mach.EncryptMegolmEvent(t.Context(), s.room, event.EventMessage, &event.MessageEventContent{MsgType: event.MsgText, Body: text})
	if err != nil {
		t.Fatal(err)
	}
	// Encrypting moved the session's ratchet on, in the store.
	if s.sess, err = s.mach.CryptoStore.GetOutboundGroupSession(t.Context(), s.room); err != nil || s.sess == nil {
		t.Fatalf("the sealer's session after encrypting: %v, %v", s.sess, err)
	}
	var sent id.EventID
	retryServer(t, s.p.hs, "send a sealed message", func() error {
		resp, err := s.p.cli.SendMessageEvent(t.Context(), s.room, event.EventEncrypted, enc)
		if err == nil {
			sent = resp.EventID
		}
		return err
	})
	return sent
}

// share sends the session's key to every device of user.
func (s *sealer) share(user id.UserID) {
	t := s.p.t
	t.Helper()
	devices, err := s.mach.FetchKeys(t.Context(), []id.UserID{user}, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(devices[user]) == 0 {
		t.Fatalf("%s has no device with keys", user)
	}
	for _, dev := range devices[user] {
		err := s.mach.SendEncryptedToDevice(t.Context(), dev, event.ToDeviceRoomKey, event.Content{Parsed: &event.RoomKeyEventContent{
			Algorithm: id.AlgorithmMegolmV1, RoomID: s.room, SessionID: s.sess.ID(), SessionKey: s.key,
		}})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// waiting returns the events the store keeps for the account to wait for
// their keys, by sender.
func waiting(t *testing.T, st *store.DB, account id.UserID) map[id.UserID][]id.EventID {
	t.Helper()
	out := make(map[id.UserID][]id.EventID)
	err := st.MatrixPending(t.Context(), string(account), func(eventID, raw string, since time.Time) error {
		var evt event.Event
		if err := json.Unmarshal([]byte(raw), &evt); err != nil {
			return err
		}
		if evt.ID != id.EventID(eventID) {
			t.Errorf("row of %s holds the event %s", eventID, evt.ID)
		}
		out[evt.Sender] = append(out[evt.Sender], evt.ID)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func total(m map[id.UserID][]id.EventID) int {
	n := 0
	for _, evs := range m {
		n += len(evs)
	}
	return n
}

// encryptedAdapter runs an adapter with encryption for acc on a new store,
// with opts changed by tweak.
func encryptedAdapter(t *testing.T, acc account, tweak func(*matrix.Config)) (*matrix.Adapter, *store.DB) {
	t.Helper()
	st, db := openStore(t, filepath.Join(t.TempDir(), "bridge.db"))
	opts := options(t, shared, acc, st, db)
	opts.PickleKey = "a pickle key for the test"
	tweak(&opts)
	a, err := matrix.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	runAdapter(t, a, recorder{make(chan bridge.Inbound, 10)})
	waitReady(t, a)
	return a, st
}

func TestEncryptedMessageWaitsForItsKeysAcrossARestart(t *testing.T) {
	r := newRig(t, shared, true)
	r.start()
	dave := newPerson(t, shared, "dave", true)
	room := dm(dave, r, true)
	seal := newSealer(dave, room)
	sealed := seal.say("sealed")
	bridgetest.WaitFor(t, "the adapter to count the message undecryptable", func() bool { return r.ad.Stats().Undecryptable == 1 })
	bridgetest.WaitFor(t, "the message to be kept", func() bool { return total(waiting(t, r.st, r.acc.ID)) == 1 })
	r.stop()

	t.Run("the message waits in a row of its own", func(t *testing.T) {
		st, _ := openStore(t, r.path)
		if got := waiting(t, st, r.acc.ID); len(got[dave.cli.UserID]) != 1 || got[dave.cli.UserID][0] != sealed {
			t.Errorf("the store keeps %v, want %s of %s", got, sealed, dave.cli.UserID)
		}
		st.Close()
	})
	r.start()
	seal.share(r.acc.ID)
	dave.wait("the reply once the keys arrived", fromWith(r.acc.ID, room, "echo: sealed"))
	// The restarted adapter may see the message come again, if it stopped
	// before it saved its sync position; it decrypts it once all the same.
	if got := r.ad.Stats(); got.DecryptedLate != 1 || got.Lost != 0 {
		t.Errorf("stats %+v, want 1 decrypted late and none lost", got)
	}
	bridgetest.WaitFor(t, "the message to be forgotten", func() bool { return total(waiting(t, r.st, r.acc.ID)) == 0 })
}

func TestOldListOfWaitingMessagesBecomesRows(t *testing.T) {
	r := newRig(t, shared, true)
	r.start()
	dave := newPerson(t, shared, "dave", true)
	room := dm(dave, r, true)
	seal := newSealer(dave, room)
	seal.say("sealed long ago")
	bridgetest.WaitFor(t, "the message to be kept", func() bool { return total(waiting(t, r.st, r.acc.ID)) == 1 })
	r.stop()

	// Turn the row into the single cursor an older botbridge kept.
	st, _ := openStore(t, r.path)
	var old []map[string]any
	var eventID string
	if err := st.MatrixPending(t.Context(), string(r.acc.ID), func(id, raw string, since time.Time) error {
		eventID = id
		old = append(old, map[string]any{"event": json.RawMessage(raw), "since": since, "requested": true})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	list, err := json.Marshal(old)
	if err != nil {
		t.Fatal(err)
	}
	cursor := "matrix." + string(r.acc.ID) + ".undecrypted"
	if err := st.SetCursor(t.Context(), cursor, string(list)); err != nil {
		t.Fatal(err)
	}
	if err := st.DeleteMatrixPending(t.Context(), string(r.acc.ID), eventID); err != nil {
		t.Fatal(err)
	}
	st.Close()

	r.start()
	if got := waiting(t, r.st, r.acc.ID); len(got[dave.cli.UserID]) != 1 || got[dave.cli.UserID][0] != id.EventID(eventID) {
		t.Errorf("after the start the store keeps %v, want %s", got, eventID)
	}
	if v, err := r.st.Cursor(t.Context(), cursor); err != nil || v != "" {
		t.Errorf("the old cursor holds %q, %v; want it cleared", v, err)
	}
	seal.share(r.acc.ID)
	dave.wait("the reply once the keys arrived", fromWith(r.acc.ID, room, "echo: sealed long ago"))
}

func TestStrangersUndecryptableMessagesAreNotKept(t *testing.T) {
	acc := newAccount(t, shared, "bot")
	dave := newPerson(t, shared, "dave", true)
	erin := newPerson(t, shared, "erin", true)
	a, st := encryptedAdapter(t, acc, func(o *matrix.Config) {
		o.Admit = func(in bridge.Inbound) bool { return in.Sender.ID == string(dave.cli.UserID) }
	})
	room := dave.createRoom(true, false, acc.ID, erin.cli.UserID)
	erin.join(room)
	dave.wait("the bot joining", joined(acc.ID, room))
	dave.wait("erin joining", joined(erin.cli.UserID, room))

	newSealer(erin, room).say("let me in")
	kept := newSealer(dave, room).say("I am allowed")
	bridgetest.WaitFor(t, "the allowed person's message to be kept", func() bool { return len(waiting(t, st, acc.ID)[dave.cli.UserID]) == 1 })
	// The two messages may come in separate syncs: wait until both were seen.
	bridgetest.WaitFor(t, "both messages to be handled", func() bool { return a.Stats().Undecryptable == 2 })
	if got := waiting(t, st, acc.ID); len(got[erin.cli.UserID]) != 0 || len(got[dave.cli.UserID]) != 1 || got[dave.cli.UserID][0] != kept {
		t.Errorf("the store keeps %v, want only %s of %s", got, kept, dave.cli.UserID)
	}
	if got, want := a.Stats(), (matrix.Stats{Undecryptable: 2, Refused: 1}); got != want {
		t.Errorf("stats %+v, want %+v", got, want)
	}
}

func TestWaitingMessagesAreCapped(t *testing.T) {
	acc := newAccount(t, shared, "bot")
	dave := newPerson(t, shared, "dave", true)
	erin := newPerson(t, shared, "erin", true)
	a, st := encryptedAdapter(t, acc, func(o *matrix.Config) {
		o.MaxPendingPerSender, o.MaxPendingPerRoom = 2, 3
	})
	room := dave.createRoom(true, false, acc.ID, erin.cli.UserID)
	erin.join(room)
	dave.wait("the bot joining", joined(acc.ID, room))
	dave.wait("erin joining", joined(erin.cli.UserID, room))

	daveSeal, erinSeal := newSealer(dave, room), newSealer(erin, room)
	for _, text := range []string{"one", "two", "three"} {
		daveSeal.say("dave " + text)
	}
	bridgetest.WaitFor(t, "dave's messages to be handled", func() bool { return a.Stats().Undecryptable == 3 })
	for _, text := range []string{"one", "two"} {
		erinSeal.say("erin " + text)
	}
	bridgetest.WaitFor(t, "erin's messages to be handled", func() bool { return a.Stats().Undecryptable == 5 })

	got := waiting(t, st, acc.ID)
	t.Run("a sender gets no more than its cap", func(t *testing.T) {
		if n := len(got[dave.cli.UserID]); n != 2 {
			t.Errorf("%d of dave's messages wait, want 2", n)
		}
	})
	t.Run("a room gets no more than its cap", func(t *testing.T) {
		if n := total(got); n != 3 {
			t.Errorf("%d messages of the room wait, want 3", n)
		}
	})
	if got, want := a.Stats(), (matrix.Stats{Undecryptable: 5, Lost: 2, Capped: 2}); got != want {
		t.Errorf("stats %+v, want %+v", got, want)
	}
}
