package main_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/botbridge/botbridge/adapters/matrix/matrixtest"
	"github.com/botbridge/botbridge/bridge/bridgetest"
	"github.com/botbridge/botbridge/store/postgres/pgtest"
)

// mxPerson is a Matrix user with end-to-end encryption who records the
// messages she sees, decrypted.
type mxPerson struct {
	cli *mautrix.Client

	mu   sync.Mutex
	seen []*event.Event
}

// retrySyncer retries a failed /sync at once rather than after 10 s.
type retrySyncer struct{ *mautrix.DefaultSyncer }

func (retrySyncer) OnFailedSync(_ *mautrix.RespSync, err error) (time.Duration, error) {
	if errors.Is(err, mautrix.MUnknownToken) {
		return 0, err
	}
	return 100 * time.Millisecond, nil
}

func newMXPerson(t *testing.T, hs *matrixtest.Homeserver, localpart string) *mxPerson {
	t.Helper()
	var cli *mautrix.Client
	bridgetest.WaitFor(t, "a client for "+localpart, func() bool {
		var err error
		cli, err = hs.Client(t.Context(), localpart)
		return err == nil
	})
	syncer := retrySyncer{mautrix.NewDefaultSyncer()}
	cli.Syncer = syncer
	matrixtest.WithCrypto(t, cli)
	p := &mxPerson{cli: cli}
	syncer.OnEventType(event.EventMessage, func(_ context.Context, evt *event.Event) {
		p.mu.Lock()
		p.seen = append(p.seen, evt)
		p.mu.Unlock()
	})
	ctx, cancel := context.WithCancel(context.WithoutCancel(t.Context()))
	done := make(chan error, 1)
	go func() { done <- cli.SyncWithContext(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return p
}

// answers counts the messages of from in room with body.
func (p *mxPerson) answers(from id.UserID, room id.RoomID, body string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, evt := range p.seen {
		if evt.Sender == from && evt.RoomID == room && evt.Content.AsMessage().Body == body {
			n++
		}
	}
	return n
}

// say sends body to room, encrypted, trying again while Dendrite refuses.
func (p *mxPerson) say(t *testing.T, room id.RoomID, body string) {
	t.Helper()
	txn := mautrix.ReqSendEvent{TransactionID: p.cli.TxnID()}
	bridgetest.WaitFor(t, "the message "+body+" to be sent", func() bool {
		_, err := p.cli.SendMessageEvent(t.Context(), room, event.EventMessage,
			&event.MessageEventContent{MsgType: event.MsgText, Body: body}, txn)
		return err == nil
	})
}

// writeMatrixReplicaConfig writes the configuration of replicas on
// PostgreSQL that serve Matrix, with encryption, and returns its path.
func (w *world) writeMatrixReplicaConfig(dsn, homeserver string, bot id.UserID) string {
	w.t.Helper()
	body := fmt.Sprintf(`log:
  level: info
  format: json
store:
  driver: postgres
  dsn: %s
http:
  admin_addr: 127.0.0.1:0
bridge:
  drain_timeout: 2s
  lease_ttl: %s
  lease_renew: 2s
bots:
  - name: %s
    url: %s
    encryption_key: ${BOTBRIDGE_TEST_KEY}
routes:
  - bot: %s
    platform: matrix
matrix:
  homeserver_url: %s
  user_id: "%s"
  password: the bot's password
  encryption: true
  pickle_key: the replicas' pickle key
`, dsn, replicaLease, botName, w.em.URL(), botName, homeserver, bot)
	path := filepath.Join(w.dir, "matrix.yaml")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		w.t.Fatal(err)
	}
	return path
}

func TestMatrixSyncLeaderKilledOnPostgres(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	hs := matrixtest.StartT(t)
	botID, _, _, err := hs.Register(ctx, "replicabot", "the bot's password", false)
	if err != nil {
		t.Fatal(err)
	}
	pg := pgtest.Start(t)
	w := newWorld(t, worldOptions{})
	cfg := w.writeMatrixReplicaConfig(pg.DSN(t), hs.URL, botID)

	// a starts first and leads; b stands by, ready.
	a := w.start(cfg)
	a.mustBeReady(ctx)
	b := w.start(cfg)
	r, err := b.waitReady(ctx, isReady)
	if err != nil || r.Checks["adapter.matrix"] != "standby" {
		t.Fatalf("/readyz of the replica standing by: %d %v, %v; want 200 with adapter.matrix standby", r.Status, r.Checks, err)
	}

	alice := newMXPerson(t, hs, "alice")
	var room *mautrix.RespCreateRoom
	bridgetest.WaitFor(t, "the encrypted room to be created", func() bool {
		room, err = alice.cli.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "trusted_private_chat", IsDirect: true,
			Invite: []id.UserID{botID}, InitialState: []*event.Event{{Type: event.StateEncryption,
				Content: event.Content{Parsed: &event.EncryptionEventContent{Algorithm: id.AlgorithmMegolmV1}}}}})
		return err == nil
	})
	bridgetest.WaitFor(t, "the bot to join", func() bool {
		m, err := alice.cli.JoinedMembers(ctx, room.RoomID)
		return err == nil && len(m.Joined) == 2
	})
	answered := func(body string) {
		t.Helper()
		bridgetest.WaitFor(t, "the answer to "+body, func() bool { return alice.answers(botID, room.RoomID, body) > 0 })
	}
	alice.say(t, room.RoomID, "M1 before")
	answered("M1 before")

	// The leader dies; what alice says meanwhile waits in the homeserver
	// until b takes the sync loop over, within the lease time.
	a.kill()
	died := time.Now()
	alice.say(t, room.RoomID, "M2 leaderless")
	answered("M2 leaderless")
	t.Logf("answered %v after the leader died", time.Since(died).Round(time.Millisecond))
	if r, err := b.readyz(ctx); err != nil || r.Checks["adapter.matrix"] != "ok" {
		t.Errorf("/readyz of the new leader: %d %v, %v; want adapter.matrix ok", r.Status, r.Checks, err)
	}
	for i := range 3 {
		alice.say(t, room.RoomID, fmt.Sprintf("M%d after", i+3))
	}
	for i := range 3 {
		answered(fmt.Sprintf("M%d after", i+3))
	}
	b.stop()

	for _, body := range []string{"M1 before", "M2 leaderless", "M3 after", "M4 after", "M5 after"} {
		if n := alice.answers(botID, room.RoomID, body); n != 1 {
			t.Errorf("%q answered %d times, want once", body, n)
		}
		if n := w.bot.callsOf(body); n != 1 {
			t.Errorf("%q reached the bot %d times, want once", body, n)
		}
	}
	if took := w.logs.find(`"msg":"adapter starting"`, `"platform":"matrix"`); len(took) != 2 {
		t.Errorf("the Matrix adapter started %d times, want twice (a, then b):\n%s", len(took), strings.Join(took, "\n"))
	}
	if !slices.ContainsFunc(w.logs.find("end-to-end encryption ready"), func(l string) bool { return strings.HasPrefix(l, fmt.Sprintf("run %d:", b.run)) }) {
		t.Error("the new leader did not set up encryption")
	}
}
