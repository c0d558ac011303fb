package bridge_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/botbridge/botbridge/bridge"
	"github.com/botbridge/botbridge/bridge/bridgetest"
	"github.com/botbridge/botbridge/chat/chattest"
	"github.com/botbridge/botbridge/store/postgres"
	"github.com/botbridge/botbridge/store/postgres/pgtest"
)

// pg is the PostgreSQL server of the tests of several replicas.
var pg pgtest.Server

func TestMain(m *testing.M) {
	code := m.Run()
	if err := pg.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		code = max(code, 1)
	}
	os.Exit(code)
}

// The tests of several replicas run engines in one test process, each on a
// store handle of its own on one PostgreSQL database, as processes would:
// they share nothing but the store, the Chat API emulator, and the
// platform, where every replica posts into one list of posts (a shared
// bridgetest.Adapter, which each replica's replicaAdapter wraps).

// cluster is replicas on one store and one platform.
type cluster struct {
	t        *testing.T
	bp       *bridgetest.Botpress
	dsn      string
	platform *bridgetest.Adapter
	// raw is a pool on the store for what the replicas do not show.
	raw   *pgxpool.Pool
	tweak func(*bridge.Config)
	// hookSecret, when set, makes the bot's messages come by webhook.
	hookSecret string

	mu     sync.Mutex
	byPost map[string]string // post id → the replica that posted it
}

func newCluster(t *testing.T, bot chattest.Bot) *cluster {
	t.Helper()
	c := &cluster{t: t, bp: bridgetest.StartBotpress(t, bot), dsn: pg.DSN(t), byPost: map[string]string{}}
	c.platform = bridgetest.NewAdapter(bridge.PlatformSlack)
	c.platform.Recover = true
	raw, err := pgxpool.New(t.Context(), c.dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(raw.Close)
	c.raw = raw
	return c
}

// hookFront is a load balancer in front of the replicas' webhook handlers.
type hookFront struct {
	*httptest.Server
	count atomic.Int64
}

// newHookFront serves each webhook with the handler next returns.
func newHookFront(t *testing.T, next func() http.Handler) *hookFront {
	hf := &hookFront{}
	hf.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		hf.count.Add(1)
		next().ServeHTTP(w, req)
	}))
	t.Cleanup(hf.Close)
	return hf
}

// replica is one engine of a cluster.
type replica struct {
	name string
	c    *cluster
	db   *postgres.DB
	ad   *replicaAdapter
	eng  *bridge.Engine
	stop func()
}

// replicaAdapter is one replica's connection to the shared platform: its
// own handler, the platform's posts.
type replicaAdapter struct {
	*bridgetest.Adapter
	r *replica

	mu      sync.Mutex
	handler bridge.Handler
	ready   chan struct{}
	// gate, when set, holds every Send until it is closed or the send's
	// context ends.
	gate chan struct{}
}

func (a *replicaAdapter) Run(ctx context.Context, h bridge.Handler) error {
	a.mu.Lock()
	a.handler = h
	close(a.ready)
	a.mu.Unlock()
	<-ctx.Done()
	return nil
}

func (a *replicaAdapter) Send(ctx context.Context, out bridge.Outbound) (bridge.Parts, error) {
	a.mu.Lock()
	gate := a.gate
	a.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	parts, err := a.Adapter.Send(ctx, out)
	if err == nil {
		a.r.c.mu.Lock()
		a.r.c.byPost[parts.First()] = a.r.name
		a.r.c.mu.Unlock()
	}
	return parts, err
}

// say hands in to the replica as its platform connection would.
func (a *replicaAdapter) say(t *testing.T, in bridge.Inbound) {
	t.Helper()
	select {
	case <-a.ready:
	case <-time.After(10 * time.Second):
		t.Fatalf("replica %s never ran its adapter", a.r.name)
	}
	a.mu.Lock()
	h := a.handler
	a.mu.Unlock()
	if in.Room.Platform == "" {
		in.Room.Platform = bridge.PlatformSlack
	}
	if err := h.HandleInbound(t.Context(), in); err != nil {
		t.Fatalf("replica %s: say %q: %v", a.r.name, in.Text, err)
	}
}

// start runs a replica named name; wrap, when set, wraps its store.
func (c *cluster) start(name string, wrap func(bridge.Store) bridge.Store) *replica {
	c.t.Helper()
	db, err := postgres.Open(c.t.Context(), c.dsn)
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { db.Close() })
	r := &replica{name: name, c: c, db: db}
	r.ad = &replicaAdapter{Adapter: c.platform, r: r, ready: make(chan struct{})}
	var st bridge.Store = db
	if wrap != nil {
		st = wrap(db)
	}
	bot := c.bp.Bot("bot")
	bot.WebhookSecret = c.hookSecret
	cfg := bridgetest.Config(c.t, st, []bridge.BotSpec{bot}, r.ad)
	cfg.Router = bridgetest.Router(c.t, []bridge.Route{{Bot: "bot", Answer: bridge.AnswerAll, Scope: bridge.ScopeRoom}}, bot)
	cfg.Logger = testLogger(c.t).With("replica", name)
	cfg.Replica = name
	cfg.LeaseTTL, cfg.LeaseRenew, cfg.PollInterval = 2*time.Second, 300*time.Millisecond, 200*time.Millisecond
	if c.tweak != nil {
		c.tweak(&cfg)
	}
	r.eng, r.stop = bridgetest.RunEngine(c.t, cfg)
	return r
}

// holds returns the leases the replica holds.
func (r *replica) holds() []string {
	var out []string
	for _, l := range r.eng.Leases().Held {
		out = append(out, l.Name)
	}
	return out
}

// waitShared waits until the replicas between them hold every shard, each
// some: the work is shared.
func waitShared(t *testing.T, rs ...*replica) {
	t.Helper()
	bridgetest.WaitFor(t, "the replicas to share the shards", func() bool {
		n := 0
		for _, r := range rs {
			h := len(r.holds())
			if h == 0 {
				return false
			}
			n += h
		}
		return n == bridge.Shards
	})
}

// roomMsg is message seq of room, from the room's person.
func roomMsg(room string, seq int) bridge.Inbound {
	in := msg(bridge.RoomKey{Platform: bridge.PlatformSlack, Room: room}, fmt.Sprintf("%s %03d", room, seq))
	in.Sender = bridge.Sender{ID: "U" + room, Name: "Person of " + room}
	return in
}

// waitAnswered waits until the platform has n posts.
func (c *cluster) waitAnswered(n int) []bridgetest.Post {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(c.t.Context(), 30*time.Second)
	defer cancel()
	ps, err := c.platform.WaitPosts(ctx, n)
	if err != nil {
		c.t.Fatalf("%d posts of %d: %v", len(ps), n, err)
	}
	return ps
}

// checkOnceInOrder checks that every room's posts are the echoes of its
// messages, each once, in order, and returns which replicas posted in each
// room.
func (c *cluster) checkOnceInOrder(said map[string][]string) map[string][]string {
	c.t.Helper()
	got := map[string][]string{}
	posters := map[string][]string{}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range c.platform.Posts() {
		room := p.Out.Room.Room
		got[room] = append(got[room], bridgetest.Text(p.Payload()))
		if r := c.byPost[p.ID]; !slices.Contains(posters[room], r) {
			posters[room] = append(posters[room], r)
		}
	}
	for room, want := range said {
		if !slices.Equal(got[room], want) {
			c.t.Errorf("room %s: posted %q, want %q", room, got[room], want)
		}
	}
	return posters
}

func TestReplicasShareTheRoomsAndAnswerEachMessageOnceInOrder(t *testing.T) {
	c := newCluster(t, chattest.EchoBot())
	a := c.start("a", nil)
	b := c.start("b", nil)
	waitShared(t, a, b)

	// People talk in 20 rooms; each message reaches a replica at random
	// (as Slack spreads events over the app's connections), which stores
	// it before the next is said.
	said := map[string][]string{}
	for seq := range 5 {
		for i := range 20 {
			room := fmt.Sprintf("R%02d", i)
			in := roomMsg(room, seq)
			[]*replica{a, b}[(seq+i)%2].ad.say(t, in)
			said[room] = append(said[room], in.Text)
		}
	}
	c.waitAnswered(100)
	for _, r := range []*replica{a, b} {
		if err := r.eng.WaitIdle(t.Context(), 200*time.Millisecond); err != nil {
			t.Fatal(err)
		}
	}
	posters := c.checkOnceInOrder(said)
	count := map[string]int{}
	for room, rs := range posters {
		if len(rs) != 1 {
			t.Errorf("room %s: posted by %v, want by one replica", room, rs)
		}
		want := "a"
		if slices.Contains(b.holds(), bridge.LeaseOf(bridge.RoomKey{Platform: bridge.PlatformSlack, Room: room})) {
			want = "b"
		}
		if rs[0] != want {
			t.Errorf("room %s: posted by %s, but %s holds its lease", room, rs[0], want)
		}
		count[rs[0]]++
	}
	if count["a"] == 0 || count["b"] == 0 {
		t.Errorf("rooms per replica: %v; want the work shared", count)
	}
	t.Logf("rooms per replica: %v; shards a %d, b %d", count, len(a.holds()), len(b.holds()))
}

func TestReplicasTakeReplyWebhooksAnyOfThemGets(t *testing.T) {
	c := newCluster(t, chattest.EchoBot())
	c.hookSecret = "hook-s3cret"
	a := c.start("a", nil)
	b := c.start("b", nil)
	waitShared(t, a, b)
	// A load balancer in front of the replicas: the webhooks go to each in
	// turn, whatever the room.
	var turn atomic.Int64
	hooks := newHookFront(t, func() http.Handler {
		return []*replica{a, b}[turn.Add(1)%2].eng.WebhookHandler()
	})
	if err := c.bp.Server.SetWebhook(hooks.URL+bridge.WebhookPath+"bot", "hook-s3cret"); err != nil {
		t.Fatal(err)
	}

	said := map[string][]string{}
	for seq := range 4 {
		for i := range 10 {
			room := fmt.Sprintf("W%02d", i)
			in := roomMsg(room, seq)
			[]*replica{a, b}[i%2].ad.say(t, in)
			said[room] = append(said[room], in.Text)
		}
	}
	c.waitAnswered(40)
	// A post shows on the platform before its Send returns and names the
	// replica that made it: wait for the sends to return.
	for _, r := range []*replica{a, b} {
		if err := r.eng.WaitIdle(t.Context(), 200*time.Millisecond); err != nil {
			t.Fatal(err)
		}
	}
	posters := c.checkOnceInOrder(said)
	for room, rs := range posters {
		if len(rs) != 1 {
			t.Errorf("room %s: posted by %v, want by one replica", room, rs)
		}
	}
	if n := hooks.count.Load(); n < 80 {
		t.Errorf("%d webhooks reached the replicas, want every message and answer's (80)", n)
	}
}

// stopReleasing is a store whose ReleaseLeases does nothing, as a process
// that dies leaves its leases.
type stopReleasing struct{ bridge.Store }

func (stopReleasing) ReleaseLeases(context.Context, string, []string) error { return nil }

func TestAReplicaThatDiesHasItsRoomsTakenOverWithinTheLeaseTime(t *testing.T) {
	c := newCluster(t, chattest.EchoBot())
	a := c.start("a", func(s bridge.Store) bridge.Store { return stopReleasing{s} })
	b := c.start("b", nil)
	waitShared(t, a, b)
	rooms := []string{}
	for i := 0; len(rooms) < 3; i++ {
		room := fmt.Sprintf("D%02d", i)
		if slices.Contains(a.holds(), bridge.LeaseOf(bridge.RoomKey{Platform: bridge.PlatformSlack, Room: room})) {
			rooms = append(rooms, room)
		}
	}
	said := map[string][]string{}
	for _, room := range rooms {
		in := roomMsg(room, 0)
		a.ad.say(t, in)
		said[room] = append(said[room], in.Text)
	}
	c.waitAnswered(len(rooms))
	a.stop() // dies: its leases stay until they expire
	died := time.Now()
	for _, room := range rooms {
		in := roomMsg(room, 1)
		b.ad.say(t, in) // b stores it; the room is a's until its lease expires
		said[room] = append(said[room], in.Text)
	}
	c.waitAnswered(2 * len(rooms))
	took := time.Since(died)
	c.checkOnceInOrder(said)
	if took > 2*time.Second+time.Second {
		t.Errorf("the dead replica's rooms were answered %v after it died; want within the lease time (2s) and a poll", took)
	}
	t.Logf("answered %v after the replica died", took.Round(time.Millisecond))
}

// stallingStore makes a replica's leases impossible to renew while stalled
// is set, as a process that stopped or lost its network.
type stallingStore struct {
	bridge.Store
	stalled atomic.Bool
}

func (s *stallingStore) TakeLeases(ctx context.Context, owner string, names []string, ttl time.Duration) ([]bridge.Lease, error) {
	if s.stalled.Load() {
		return nil, fmt.Errorf("stalled: %w", bridge.ErrStore)
	}
	return s.Store.TakeLeases(ctx, owner, names, ttl)
}

func (s *stallingStore) Leases(ctx context.Context) ([]bridge.Lease, time.Time, error) {
	if s.stalled.Load() {
		return nil, time.Time{}, fmt.Errorf("stalled: %w", bridge.ErrStore)
	}
	return s.Store.Leases(ctx)
}

func TestAReplicaPastItsLeasePostsNothingAndTheNextPostsOnce(t *testing.T) {
	c := newCluster(t, chattest.EchoBot())
	var sa *stallingStore
	a := c.start("a", func(s bridge.Store) bridge.Store { sa = &stallingStore{Store: s}; return sa })
	b := c.start("b", nil)
	waitShared(t, a, b)
	room := ""
	for i := 0; room == ""; i++ {
		r := fmt.Sprintf("S%02d", i)
		if slices.Contains(a.holds(), bridge.LeaseOf(bridge.RoomKey{Platform: bridge.PlatformSlack, Room: r})) {
			room = r
		}
	}
	// a's posts hang (a slow platform, or a process about to stall) while
	// it loses its leases.
	gate := make(chan struct{})
	a.ad.mu.Lock()
	a.ad.gate = gate
	a.ad.mu.Unlock()
	in := roomMsg(room, 0)
	a.ad.say(t, in)
	bridgetest.WaitFor(t, "a to claim the reply", func() bool {
		var n int
		if err := c.raw.QueryRow(t.Context(), `SELECT count(*) FROM deliveries WHERE attempts > 0`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n == 1
	})
	sa.stalled.Store(true)
	bridgetest.WaitFor(t, "b to take a's room over", func() bool {
		return slices.Contains(b.holds(), bridge.LeaseOf(in.Room))
	})
	ps := c.waitAnswered(1)
	close(gate) // too late for a: its post's context ended with its lease
	sa.stalled.Store(false)
	bridgetest.WaitFor(t, "a to come back", func() bool { return len(a.holds()) > 0 })
	if err := a.eng.WaitIdle(t.Context(), 300*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if got := c.platform.Posts(); len(got) != 1 {
		t.Errorf("%d posts, want 1: %q", len(got), texts(got))
	}
	c.mu.Lock()
	by := c.byPost[ps[0].ID]
	c.mu.Unlock()
	if by != "b" {
		t.Errorf("posted by %s, want b, which took the room over", by)
	}
	c.checkOnceInOrder(map[string][]string{room: {in.Text}})
}

func TestAFencedReplicaStopsWorkOnTheLease(t *testing.T) {
	c := newCluster(t, chattest.EchoBot())
	a := c.start("a", nil)
	bridgetest.WaitFor(t, "a to hold every shard", func() bool { return len(a.holds()) == bridge.Shards })
	in := roomMsg("F1", 0)
	lease := bridge.LeaseOf(in.Room)
	// Another process takes a's lease behind its back (as after a's stall):
	// a's next fenced write fails, and a drops the lease.
	if _, err := c.raw.Exec(t.Context(), `UPDATE leases SET owner = 'x', token = nextval('lease_tokens'),
		expires_ms = expires_ms + 60000 WHERE name = $1`, lease); err != nil {
		t.Fatal(err)
	}
	a.ad.say(t, in)
	bridgetest.WaitFor(t, "a to drop the lease", func() bool { return !slices.Contains(a.holds(), lease) })
	if n := len(c.platform.Posts()); n != 0 {
		t.Errorf("%d posts by a replica fenced off", n)
	}
	if n := len(a.holds()); n != bridge.Shards-1 {
		t.Errorf("a holds %d leases; want its others (%d)", n, bridge.Shards-1)
	}
}
