package matrix_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/botbridge/botbridge/adapters/matrix"
	"github.com/botbridge/botbridge/adapters/matrix/matrixtest"
	"github.com/botbridge/botbridge/bridge"
	"github.com/botbridge/botbridge/bridge/bridgetest"
	"github.com/botbridge/botbridge/store"
)

// waitTimeout bounds every wait for something to happen on the homeserver.
const waitTimeout = 30 * time.Second

// shared is the homeserver of the tests that do not restart it; each test
// makes users and rooms of its own on it.
var shared *matrixtest.Homeserver

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "matrix-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	shared, err = matrixtest.Start(context.Background(), dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	if err := shared.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		code = max(code, 1)
	}
	if code != 0 {
		fmt.Fprintf(os.Stderr, "--- last lines of dendrite.log:\n%s\n", shared.LogTail(60))
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

var userSeq atomic.Int64

// localpart returns a localpart unique on the shared homeserver.
func localpart(prefix string) string {
	return fmt.Sprintf("%s%d", prefix, userSeq.Add(1))
}

// account is a bot account: its id and password, and a token of its own
// for tests that log in with one.
type account struct {
	ID       id.UserID
	Password string
	Token    string
}

func newAccount(t *testing.T, hs *matrixtest.Homeserver, prefix string) account {
	t.Helper()
	password := "password of " + prefix
	name := localpart(prefix)
	cli := registerAndLogIn(t, hs, name, password)
	return account{ID: cli.UserID, Password: password, Token: cli.AccessToken}
}

// registerAndLogIn makes a user and returns a client logged in as it.
// Localparts are unique on the tests' homeserver, so a taken one was made
// by an attempt the homeserver reported as failed; and a refused login of
// a user just made means the homeserver needs healing.
func registerAndLogIn(t *testing.T, hs *matrixtest.Homeserver, localpart, password string) *mautrix.Client {
	t.Helper()
	cli, err := mautrix.NewClient(hs.URL, "", "")
	if err != nil {
		t.Fatal(err)
	}
	cli.Client = &http.Client{}
	for attempt := 1; ; attempt++ {
		retryServer(t, hs, "register "+localpart, func() error {
			_, _, _, err := hs.Register(t.Context(), localpart, password, false)
			if errors.Is(err, mautrix.MUserInUse) {
				return nil
			}
			return err
		})
		var err error
		retryServer(t, hs, "log in as "+localpart, func() error {
			_, err = cli.Login(t.Context(), &mautrix.ReqLogin{
				Type:             mautrix.AuthTypePassword,
				Identifier:       mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: localpart},
				Password:         password,
				StoreCredentials: true,
			})
			if errors.Is(err, mautrix.MForbidden) {
				return nil // handled below
			}
			return err
		})
		if err == nil {
			return cli
		}
		if attempt == 3 {
			t.Fatalf("log in as %s: %v", localpart, err)
		}
		heal(t, hs, fmt.Sprintf("log in as %s just made: %v", localpart, err))
	}
}

// Dendrite built without cgo keeps its state in SQLite, where concurrent
// writers of its own sometimes collide ("database is locked (517)" in its
// log). It then answers 500, or misreports a fresh token as unknown, or
// stops passing events on, or exits, until it restarts. That is not what
// these tests are about, so the helpers below restart the homeserver when
// they meet it; the bridge and the people's clients ride through restarts
// (which TestHomeserverRestartAndRateLimits checks on purpose).

// heal restarts hs after it misbehaved as above.
func heal(t *testing.T, hs *matrixtest.Homeserver, why string) {
	t.Helper()
	t.Logf("%s; restarting the homeserver", why)
	// A homeserver that exited by itself is started by the next call; one
	// that crashed may crash again while starting (Dendrite v0.15.2 can
	// race its own start-up when it replays what it had not finished).
	var err error
	for range 4 {
		if err = hs.Restart(t.Context()); err == nil {
			return
		}
		t.Logf("restart: %v", err)
	}
	t.Fatal(err)
}

// retryServer runs fn until it succeeds, waiting out rate limits and
// healing the homeserver when it fails as above. Other errors fail the
// test.
func retryServer(t *testing.T, hs *matrixtest.Homeserver, what string, fn func() error) {
	t.Helper()
	var err error
	for attempt := 1; attempt <= 4; attempt++ {
		if err = fn(); err == nil {
			return
		}
		var he mautrix.HTTPError
		switch {
		case errors.As(err, &he) && he.IsStatus(http.StatusTooManyRequests):
			attempt-- // the homeserver's rate limit, not a failure
			select {
			case <-time.After(200 * time.Millisecond):
			case <-t.Context().Done():
				t.Fatalf("%s: %v", what, err)
			}
		case errors.Is(err, mautrix.MUnknownToken),
			errors.As(err, &he) && he.Response != nil && he.Response.StatusCode >= 500,
			// No answer at all: Dendrite exited (it panics on a locked
			// database in its roomserver) or is exiting.
			errors.As(err, &he) && he.Response == nil && t.Context().Err() == nil:
			heal(t, hs, fmt.Sprintf("%s: %v", what, err))
		default:
			t.Fatalf("%s: %v", what, err)
		}
	}
	t.Fatalf("%s: %v", what, err)
}

// testLogger sends the logs to the test's log.
func testLogger(t testing.TB) *slog.Logger { return bridgetest.Logger(t) }

// openStore opens a bridge store at path and closes it when the test ends.
func openStore(t *testing.T, path string) (*store.DB, *sql.DB) {
	t.Helper()
	st, err := store.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	db, err := st.SQL()
	if err != nil {
		t.Fatal(err)
	}
	return st, db
}

// options returns adapter options for a test: fast retries, the test's log.
func options(t *testing.T, hs *matrixtest.Homeserver, acc account, st *store.DB, db *sql.DB) matrix.Config {
	return matrix.Config{
		HomeserverURL:   hs.URL,
		UserID:          acc.ID,
		Password:        acc.Password,
		Store:           st,
		DB:              db,
		RetryMin:        20 * time.Millisecond,
		RetryMax:        500 * time.Millisecond,
		DownloadTimeout: 5 * time.Second,
		// The tests' media server is on loopback.
		AllowPrivateURLs: true,
		Logger:           testLogger(t),
		RecoveryKeyOut:   testWriter{t},
	}
}

// testWriter writes to the test's log.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// runAdapter runs a until the test ends and checks that Run returns nil.
func runAdapter(t *testing.T, a *matrix.Adapter, h bridge.Handler) { bridgetest.RunAdapter(t, a, h) }

// person is a Matrix user driven by a test through a real client, with a
// sync loop that records what it sees.
type person struct {
	t   *testing.T
	hs  *matrixtest.Homeserver
	cli *mautrix.Client

	mu      sync.Mutex
	events  []*event.Event
	changed chan struct{}
}

// fastRetrySyncer retries a failed /sync after 100ms instead of mautrix's
// 10s, so a person rides through a homeserver restart quickly.
type fastRetrySyncer struct{ *mautrix.DefaultSyncer }

func (fastRetrySyncer) OnFailedSync(_ *mautrix.RespSync, err error) (time.Duration, error) {
	if errors.Is(err, mautrix.MUnknownToken) {
		return 0, err
	}
	return 100 * time.Millisecond, nil
}

// newPerson registers a user, gives it end-to-end encryption when asked,
// and starts its sync loop.
func newPerson(t *testing.T, hs *matrixtest.Homeserver, prefix string, encrypted bool) *person {
	t.Helper()
	return newPersonAs(t, hs, localpart(prefix), encrypted)
}

// newPersonAs is newPerson with the exact localpart given. setup, if
// given, runs after the client has its crypto and before its sync starts,
// when it may still add handlers to the syncer.
func newPersonAs(t *testing.T, hs *matrixtest.Homeserver, localpart string, encrypted bool, setup ...func(*mautrix.Client)) *person {
	t.Helper()
	cli := registerAndLogIn(t, hs, localpart, "password of "+localpart)
	syncer := fastRetrySyncer{mautrix.NewDefaultSyncer()}
	cli.Syncer = syncer
	p := &person{t: t, hs: hs, cli: cli, changed: make(chan struct{})}
	if encrypted {
		matrixtest.WithCrypto(t, cli)
	}
	for _, fn := range setup {
		fn(cli)
	}
	record := func(ctx context.Context, evt *event.Event) {
		p.mu.Lock()
		p.events = append(p.events, evt)
		close(p.changed)
		p.changed = make(chan struct{})
		p.mu.Unlock()
	}
	for _, typ := range []event.Type{event.EventMessage, event.EventReaction, event.StateMember, event.EphemeralEventTyping, event.EphemeralEventReceipt} {
		syncer.OnEventType(typ, record)
	}
	startSync(t, hs, cli)
	return p
}

// startSync runs cli's sync loop until the test ends; it returns after the
// first /sync response. The sync filter is made first, through
// retryServer: mautrix's loop gives up at once when making it fails, which
// it does when Dendrite's database is locked (see heal).
func startSync(t *testing.T, hs *matrixtest.Homeserver, cli *mautrix.Client) {
	t.Helper()
	retryServer(t, hs, string(cli.UserID)+": make the sync filter", func() error {
		resp, err := cli.CreateFilter(t.Context(), cli.Syncer.GetFilterJSON(cli.UserID))
		if err != nil {
			return err
		}
		return cli.Store.SaveFilterID(t.Context(), cli.UserID, resp.FilterID)
	})
	first := make(chan struct{})
	var once sync.Once
	cli.Syncer.(mautrix.ExtensibleSyncer).OnSync(func(context.Context, *mautrix.RespSync, string) bool {
		once.Do(func() { close(first) })
		return true
	})
	ctx, cancel := context.WithCancel(context.WithoutCancel(t.Context()))
	done := make(chan error, 1)
	go func() { done <- cli.SyncWithContext(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	select {
	case <-first:
	case err := <-done:
		done <- err
		t.Fatalf("%s: sync ended before its first response: %v", cli.UserID, err)
	case <-time.After(waitTimeout):
		t.Fatalf("%s: no /sync response within %s", cli.UserID, waitTimeout)
	}
}

// wait returns the first event the person saw, or sees within waitTimeout,
// for which match holds; it fails the test otherwise. Halfway through it
// heals the homeserver, in case Dendrite stopped passing events on.
func (p *person) wait(what string, match func(*event.Event) bool) *event.Event {
	p.t.Helper()
	timer := time.NewTimer(waitTimeout)
	defer timer.Stop()
	healTimer := time.NewTimer(waitTimeout / 2)
	defer healTimer.Stop()
	for {
		p.mu.Lock()
		events, ch := slices.Clone(p.events), p.changed
		p.mu.Unlock()
		// match runs without the lock: it may look at what was seen.
		if i := slices.IndexFunc(events, match); i >= 0 {
			return events[i]
		}
		select {
		case <-ch:
		case <-healTimer.C:
			heal(p.t, p.hs, fmt.Sprintf("%s has not seen %s within %s", p.cli.UserID, what, waitTimeout/2))
		case <-timer.C:
			p.t.Fatalf("%s did not see %s within %s", p.cli.UserID, what, waitTimeout)
		}
	}
}

// seen returns the events the person saw so far for which match holds.
func (p *person) seen(match func(*event.Event) bool) []*event.Event {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []*event.Event
	for _, evt := range p.events {
		if match(evt) {
			out = append(out, evt)
		}
	}
	return out
}

// from matches messages of user in room.
func from(user id.UserID, room id.RoomID) func(*event.Event) bool {
	return func(evt *event.Event) bool {
		return evt.Type == event.EventMessage && evt.Sender == user && evt.RoomID == room
	}
}

// fromWith matches messages of user in room whose body contains text.
func fromWith(user id.UserID, room id.RoomID, text string) func(*event.Event) bool {
	return func(evt *event.Event) bool {
		return from(user, room)(evt) && strings.Contains(evt.Content.AsMessage().Body, text)
	}
}

// joined matches user's join of room.
func joined(user id.UserID, room id.RoomID) func(*event.Event) bool {
	return func(evt *event.Event) bool {
		return evt.Type == event.StateMember && evt.RoomID == room && evt.GetStateKey() == string(user) &&
			evt.Content.AsMember().Membership == event.MembershipJoin
	}
}

// createRoom makes a room of the person's and invites the others.
func (p *person) createRoom(encrypted, direct bool, invite ...id.UserID) id.RoomID {
	p.t.Helper()
	req := &mautrix.ReqCreateRoom{Preset: "private_chat", Invite: invite, IsDirect: direct}
	if encrypted {
		stateKey := ""
		req.InitialState = []*event.Event{{
			Type:     event.StateEncryption,
			StateKey: &stateKey,
			Content:  event.Content{Parsed: &event.EncryptionEventContent{Algorithm: id.AlgorithmMegolmV1}},
		}}
	}
	return p.create(req)
}

// create makes a room as req says.
func (p *person) create(req *mautrix.ReqCreateRoom) id.RoomID {
	p.t.Helper()
	var room id.RoomID
	retryServer(p.t, p.hs, "create room", func() error {
		resp, err := p.cli.CreateRoom(p.t.Context(), req)
		if err == nil {
			room = resp.RoomID
		}
		return err
	})
	return room
}

// say posts text, with m.mentions of the users given and pills for them.
func (p *person) say(room id.RoomID, text string, mention ...id.UserID) id.EventID {
	p.t.Helper()
	c := &event.MessageEventContent{MsgType: event.MsgText, Body: text, Mentions: &event.Mentions{}}
	for _, u := range mention {
		c.Mentions.Add(u)
	}
	return p.send(room, c)
}

func (p *person) send(room id.RoomID, c *event.MessageEventContent) id.EventID {
	p.t.Helper()
	// One transaction id for all attempts, so that a retry never posts
	// twice. The homeserver forgets transaction ids when it restarts: a
	// retry first looks for the event an attempt that failed may have
	// stored (the sender's own events carry their transaction id).
	txn := mautrix.ReqSendEvent{TransactionID: p.cli.TxnID()}
	var sent id.EventID
	tried := false
	retryServer(p.t, p.hs, string(p.cli.UserID)+": send", func() error {
		if tried {
			msgs, err := p.cli.Messages(p.t.Context(), room, "", "", mautrix.DirectionBackward, nil, 50)
			if err != nil {
				return err
			}
			for _, ev := range msgs.Chunk {
				if ev.Sender == p.cli.UserID && ev.Unsigned.TransactionID == txn.TransactionID {
					sent = ev.ID
					return nil
				}
			}
		}
		tried = true
		resp, err := p.cli.SendMessageEvent(p.t.Context(), room, event.EventMessage, c, txn)
		if err == nil {
			sent = resp.EventID
		}
		return err
	})
	return sent
}

// join makes the person join room.
func (p *person) join(room id.RoomID) {
	p.t.Helper()
	retryServer(p.t, p.hs, string(p.cli.UserID)+": join", func() error {
		_, err := p.cli.JoinRoomByID(p.t.Context(), room)
		return err
	})
}
