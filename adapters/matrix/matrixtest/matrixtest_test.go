package matrixtest_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/botbridge/botbridge/adapters/matrix/matrixtest"
)

// waitTimeout bounds every wait for an event to arrive through /sync.
const waitTimeout = 30 * time.Second

// fastRetrySyncer retries a failed /sync after 100ms instead of mautrix's
// 10s, so a client rides through a homeserver restart quickly.
type fastRetrySyncer struct{ *mautrix.DefaultSyncer }

func (fastRetrySyncer) OnFailedSync(_ *mautrix.RespSync, err error) (time.Duration, error) {
	if errors.Is(err, mautrix.MUnknownToken) {
		return 0, err
	}
	return 100 * time.Millisecond, nil
}

// newClient registers localpart and returns its client with a fastRetrySyncer.
func newClient(t *testing.T, hs *matrixtest.Homeserver, localpart string) *mautrix.Client {
	t.Helper()
	cli, err := hs.Client(t.Context(), localpart)
	if err != nil {
		t.Fatal(err)
	}
	cli.Syncer = fastRetrySyncer{mautrix.NewDefaultSyncer()}
	return cli
}

// messages returns a channel of the m.room.message events cli's sync loop
// delivers, decrypted ones included. Call it before startSync.
func messages(t *testing.T, cli *mautrix.Client) <-chan *event.Event {
	ch := make(chan *event.Event, 64)
	cli.Syncer.(mautrix.ExtensibleSyncer).OnEventType(event.EventMessage, func(ctx context.Context, evt *event.Event) {
		select {
		case ch <- evt:
		case <-t.Context().Done():
		}
	})
	return ch
}

// startSync runs cli's sync loop until the test ends and reports how it
// ended. It returns after the first /sync response: mautrix does not retry the
// filter upload that precedes it, so a restart before then would end the loop.
func startSync(t *testing.T, cli *mautrix.Client) {
	t.Helper()
	first := make(chan struct{})
	var once sync.Once
	cli.Syncer.(mautrix.ExtensibleSyncer).OnSync(func(context.Context, *mautrix.RespSync, string) bool {
		once.Do(func() { close(first) })
		return true
	})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- cli.SyncWithContext(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("%s: sync: %v", cli.UserID, err)
		}
	})
	timer := time.NewTimer(waitTimeout)
	defer timer.Stop()
	select {
	case <-first:
	case err := <-done:
		done <- err // for the cleanup
		t.Fatalf("%s: sync ended before its first response: %v", cli.UserID, err)
	case <-timer.C:
		t.Fatalf("%s: no /sync response within %s", cli.UserID, waitTimeout)
	}
}

// waitFor returns the first event from ch with the given id.
func waitFor(t *testing.T, ch <-chan *event.Event, eventID id.EventID) *event.Event {
	t.Helper()
	return waitForAll(t, ch, eventID)[eventID]
}

// waitForAll reads ch until it has seen events with all the given ids, in
// any order, and returns them by id.
func waitForAll(t *testing.T, ch <-chan *event.Event, eventIDs ...id.EventID) map[id.EventID]*event.Event {
	t.Helper()
	got := make(map[id.EventID]*event.Event)
	timer := time.NewTimer(waitTimeout)
	defer timer.Stop()
	for len(got) < len(eventIDs) {
		select {
		case evt := <-ch:
			if slices.Contains(eventIDs, evt.ID) {
				got[evt.ID] = evt
			}
		case <-timer.C:
			for _, eventID := range eventIDs {
				if got[eventID] == nil {
					t.Errorf("event %s not received within %s", eventID, waitTimeout)
				}
			}
			t.FailNow()
		}
	}
	return got
}

// createRoom makes a private room of owner's with guest joined.
func createRoom(t *testing.T, owner, guest *mautrix.Client, initialState ...*event.Event) id.RoomID {
	t.Helper()
	resp, err := owner.CreateRoom(t.Context(), &mautrix.ReqCreateRoom{
		Preset:       "private_chat",
		Invite:       []id.UserID{guest.UserID},
		InitialState: initialState,
	})
	if err != nil {
		t.Fatalf("create room: %v", err)
	}
	if _, err := guest.JoinRoomByID(t.Context(), resp.RoomID); err != nil {
		t.Fatalf("join room: %v", err)
	}
	return resp.RoomID
}

func TestMessageReachesOtherUser(t *testing.T) {
	t.Parallel()
	hs := matrixtest.StartT(t)
	ctx := t.Context()
	alice, bob := newClient(t, hs, "alice"), newClient(t, hs, "bob")
	if want := id.NewUserID("alice", hs.ServerName); alice.UserID != want {
		t.Errorf("user id = %s, want %s", alice.UserID, want)
	}
	bobMessages := messages(t, bob)
	room := createRoom(t, alice, bob)
	startSync(t, bob)

	sent, err := alice.SendText(ctx, room, "hello bob")
	if err != nil {
		t.Fatal(err)
	}
	got := waitFor(t, bobMessages, sent.EventID)
	if got.Sender != alice.UserID || got.RoomID != room || got.Content.AsMessage().Body != "hello bob" {
		t.Errorf("bob got %s in %s from %s: %q", got.ID, got.RoomID, got.Sender, got.Content.AsMessage().Body)
	}
}

func TestEncryptedMessagesBothWays(t *testing.T) {
	t.Parallel()
	hs := matrixtest.StartT(t)
	ctx := t.Context()
	carol, dave := newClient(t, hs, "carol"), newClient(t, hs, "dave")
	matrixtest.WithCrypto(t, carol)
	matrixtest.WithCrypto(t, dave)
	carolMessages, daveMessages := messages(t, carol), messages(t, dave)
	stateKey := ""
	room := createRoom(t, carol, dave, &event.Event{
		Type:     event.StateEncryption,
		StateKey: &stateKey,
		Content:  event.Content{Parsed: &event.EncryptionEventContent{Algorithm: id.AlgorithmMegolmV1}},
	})
	startSync(t, carol)
	startSync(t, dave)

	// The crypto helper encrypts on send because the room is encrypted.
	sent, err := carol.SendText(ctx, room, "for dave only")
	if err != nil {
		t.Fatal(err)
	}
	got := waitFor(t, daveMessages, sent.EventID)
	if got.Mautrix.EventSource&event.SourceDecrypted == 0 || got.Content.AsMessage().Body != "for dave only" {
		t.Errorf("dave got %q, decrypted: %v", got.Content.AsMessage().Body, got.Mautrix.EventSource&event.SourceDecrypted != 0)
	}

	// dave knows the room is encrypted from the sync that brought carol's message.
	reply, err := dave.SendText(ctx, room, "for carol only")
	if err != nil {
		t.Fatal(err)
	}
	got = waitFor(t, carolMessages, reply.EventID)
	if got.Mautrix.EventSource&event.SourceDecrypted == 0 || got.Content.AsMessage().Body != "for carol only" {
		t.Errorf("carol got %q, decrypted: %v", got.Content.AsMessage().Body, got.Mautrix.EventSource&event.SourceDecrypted != 0)
	}

	for _, eventID := range []id.EventID{sent.EventID, reply.EventID} {
		stored, err := carol.GetEvent(ctx, room, eventID)
		if err != nil {
			t.Fatal(err)
		}
		if stored.Type != event.EventEncrypted {
			t.Errorf("homeserver stores %s as %s, want %s", eventID, stored.Type, event.EventEncrypted)
		}
	}
}

func TestRestartKeepsUsersRoomsAndSync(t *testing.T) {
	t.Parallel()
	hs := matrixtest.StartT(t)
	ctx := t.Context()
	const password = "erin's long password"
	erinID, erinToken, _, err := hs.Register(ctx, "erin", password, false)
	if err != nil {
		t.Fatal(err)
	}
	erin, err := mautrix.NewClient(hs.URL, erinID, erinToken)
	if err != nil {
		t.Fatal(err)
	}
	frank := newClient(t, hs, "frank")
	frankMessages := messages(t, frank)
	room := createRoom(t, erin, frank)
	// frank's sync loop runs through the restart, as a bridge's would.
	startSync(t, frank)
	before, err := erin.SendText(ctx, room, "before restart")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, frankMessages, before.EventID)

	url := hs.URL
	if err := hs.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if hs.URL != url {
		t.Errorf("URL changed from %s to %s", url, hs.URL)
	}

	t.Run("access token still valid", func(t *testing.T) {
		who, err := erin.Whoami(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if who.UserID != erinID {
			t.Errorf("whoami = %s, want %s", who.UserID, erinID)
		}
	})
	t.Run("password still valid", func(t *testing.T) {
		cli, err := mautrix.NewClient(hs.URL, "", "")
		if err != nil {
			t.Fatal(err)
		}
		resp, err := cli.Login(ctx, &mautrix.ReqLogin{
			Type:       mautrix.AuthTypePassword,
			Identifier: mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: "erin"},
			Password:   password,
		})
		if err != nil {
			t.Fatal(err)
		}
		if resp.UserID != erinID {
			t.Errorf("logged in as %s, want %s", resp.UserID, erinID)
		}
	})
	t.Run("room and history kept", func(t *testing.T) {
		joined, err := frank.JoinedRooms(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(joined.JoinedRooms, room) {
			t.Errorf("frank's rooms %v lack %s", joined.JoinedRooms, room)
		}
		history, err := frank.Messages(ctx, room, "", "", mautrix.DirectionBackward, nil, 50)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(history.Chunk, func(e *event.Event) bool { return e.ID == before.EventID }) {
			t.Errorf("history lacks %s", before.EventID)
		}
	})
	t.Run("sync resumes", func(t *testing.T) {
		after, err := erin.SendText(ctx, room, "after restart")
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, frankMessages, after.EventID)
	})
}

func TestKillThenRestartKeepsSentEvents(t *testing.T) {
	t.Parallel()
	hs := matrixtest.StartT(t)
	ctx := t.Context()
	gina, hal := newClient(t, hs, "gina"), newClient(t, hs, "hal")
	halMessages := messages(t, hal)
	room := createRoom(t, gina, hal)
	startSync(t, hal)

	// Several sends make it likely that some are still on their way from the
	// roomserver to the sync API when the process dies.
	var sent []id.EventID
	for i := range 5 {
		resp, err := gina.SendText(ctx, room, fmt.Sprintf("just before the crash %d", i))
		if err != nil {
			t.Fatal(err)
		}
		sent = append(sent, resp.EventID)
	}
	if err := hs.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := hs.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	waitForAll(t, halMessages, sent...)
	after, err := gina.SendText(ctx, room, "after the crash")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, halMessages, after.EventID)
}

func TestRegisterRefusesTakenLocalpart(t *testing.T) {
	t.Parallel()
	hs := matrixtest.StartT(t)
	if _, _, _, err := hs.Register(t.Context(), "ivan", "first password", true); err != nil {
		t.Fatal(err)
	}
	_, _, _, err := hs.Register(t.Context(), "ivan", "second password", false)
	if !errors.Is(err, mautrix.MUserInUse) {
		t.Errorf("second register: err = %v, want M_USER_IN_USE", err)
	}
}

// BenchmarkStart measures a first start in an empty directory (key and config
// generation, WAL set-up, Dendrite's schema creation) and the stop.
func BenchmarkStart(b *testing.B) {
	if _, err := matrixtest.Binaries(b.Context()); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		hs, err := matrixtest.Start(b.Context(), b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		if err := hs.Stop(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRestart measures a stop and start on an existing directory.
func BenchmarkRestart(b *testing.B) {
	hs := matrixtest.StartT(b)
	for b.Loop() {
		if err := hs.Restart(b.Context()); err != nil {
			b.Fatal(err)
		}
	}
}

// TestPortIsPickedBelowTheEphemeralRange checks where Dendrite's port comes
// from: below the range the kernel hands out to listeners on port 0 and to
// the local ends of connections, which could take it before Dendrite binds
// it, or during a Restart.
func TestPortIsPickedBelowTheEphemeralRange(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the ephemeral range is read from Linux's /proc")
	}
	low := matrixtest.EphemeralLow()
	if low <= matrixtest.MinPort+1000 {
		t.Fatalf("the ephemeral range starts at %d: nothing to pick below it, and the harness falls back to port 0", low)
	}
	for range 20 {
		addr, err := matrixtest.FreeLoopbackAddr()
		if err != nil {
			t.Fatal(err)
		}
		_, p, _ := net.SplitHostPort(addr)
		port, _ := strconv.Atoi(p)
		if port < matrixtest.MinPort || port >= low {
			t.Fatalf("picked %s, want a port in [%d, %d)", addr, matrixtest.MinPort, low)
		}
	}
}

// TestStartTriesAnotherPortWhenItsPortIsTaken hands Start a port another
// process listens on: Dendrite cannot bind it and exits, and Start must
// start it again on another port. A Restart keeps its port, and says so
// when the port is taken.
func TestStartTriesAnotherPortWhenItsPortIsTaken(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	restore := matrixtest.PickAddrs(taken.Addr().String())
	hs := matrixtest.StartT(t)
	restore()
	if hs.URL == "http://"+taken.Addr().String() {
		t.Fatalf("Dendrite runs at %s, the taken port", hs.URL)
	}
	if _, err := hs.Client(t.Context(), "after-a-taken-port"); err != nil {
		t.Fatalf("the homeserver started on another port does not work: %v", err)
	}

	if err := hs.Stop(); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", strings.TrimPrefix(hs.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	err = hs.Restart(t.Context())
	l.Close()
	if !errors.Is(err, matrixtest.ErrPortTaken) {
		t.Fatalf("restart on a taken port: %v, want an error saying the port was taken", err)
	}
	if err := hs.Restart(t.Context()); err != nil {
		t.Fatalf("restart once the port is free: %v", err)
	}
}
