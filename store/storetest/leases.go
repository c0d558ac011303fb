package storetest

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/botbridge/botbridge/bridge"
	"github.com/botbridge/botbridge/bridge/bridgetest"
	"github.com/botbridge/botbridge/chat"
)

// long is a lease that does not expire during a test.
const long = time.Hour

// take takes the leases named for owner and returns them by name.
func (e *env) take(db bridge.Store, owner string, ttl time.Duration, names ...string) map[string]bridge.Lease {
	e.tb.Helper()
	ls, err := db.TakeLeases(e.tb.Context(), owner, names, ttl)
	if err != nil {
		e.tb.Fatalf("take %v for %s: %v", names, owner, err)
	}
	out := map[string]bridge.Lease{}
	for _, l := range ls {
		if l.Owner != owner {
			e.tb.Errorf("lease %s taken for %s has owner %q", l.Name, owner, l.Owner)
		}
		out[l.Name] = l
	}
	return out
}

// fence returns ctx fenced by l.
func fence(ctx context.Context, l bridge.Lease) context.Context {
	return bridge.WithFence(ctx, bridge.Fence{Lease: l.Name, Token: l.Token})
}

// expire waits until owner's lease name, taken for a moment, has expired:
// until another owner can take it, which it returns.
func (e *env) expire(name, other string) bridge.Lease {
	e.tb.Helper()
	var got bridge.Lease
	bridgetest.WaitFor(e.tb, "lease "+name+" to expire", func() bool {
		l, ok := e.take(e.db, other, long, name)[name]
		got = l
		return ok
	})
	return got
}

// waitExpired waits until the lease named has expired by the store's clock.
func (e *env) waitExpired(name string) {
	e.tb.Helper()
	bridgetest.WaitFor(e.tb, "lease "+name+" to expire", func() bool {
		ls, now, err := e.db.Leases(e.tb.Context())
		if err != nil {
			e.tb.Fatal(err)
		}
		for _, l := range ls {
			if l.Name == name {
				return !l.Expires.After(now)
			}
		}
		return true
	})
}

// roomsOfTwoLeases returns two Slack rooms whose conversations have
// different leases.
func roomsOfTwoLeases() (string, string) {
	first := bridge.LeaseOf(roomKey("C1", ""))
	for i := 2; ; i++ {
		room := "C" + strconv.Itoa(i)
		if bridge.LeaseOf(roomKey(room, "")) != first {
			return "C1", room
		}
	}
}

func testLeases(t *testing.T, open Opener) {
	t.Run("a lease is taken once, renewed with its token, taken over with a new one when it expired", func(t *testing.T) {
		e := newEnv(t, open)
		ctx := t.Context()
		a := e.take(e.db, "a", long, "shard:1", "shard:2")
		if len(a) != 2 || a["shard:1"].Token <= 0 || a["shard:1"].Token == a["shard:2"].Token {
			t.Fatalf("first take = %+v; want both, with tokens of their own", a)
		}
		if b := e.take(e.db, "b", long, "shard:1", "shard:3"); len(b) != 1 || b["shard:3"].Token == 0 {
			t.Errorf("b took %+v; want shard:3 only, shard:1 is a's", b)
		}
		again := e.take(e.db, "a", long, "shard:1")
		if again["shard:1"].Token != a["shard:1"].Token || again["shard:1"].Expires.Before(a["shard:1"].Expires) {
			t.Errorf("renewal = %+v, first %+v; want the same token, an expiry no earlier", again["shard:1"], a["shard:1"])
		}

		short := e.take(e.db, "a", 50*time.Millisecond, "shard:9")["shard:9"]
		took := e.expire("shard:9", "b")
		if took.Token <= short.Token {
			t.Errorf("taken over with token %d after %d; want a new, higher one", took.Token, short.Token)
		}
		if back := e.take(e.db, "a", long, "shard:9"); len(back) != 0 {
			t.Errorf("a took back shard:9 from b: %+v", back)
		}

		ls, now, err := e.db.Leases(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if d := time.Since(now); d > time.Minute || d < -time.Minute {
			t.Errorf("the store's clock says %v, %v from this process's", now, d)
		}
		var got []string
		for _, l := range ls {
			got = append(got, l.Name+"="+l.Owner+"/"+strconv.FormatInt(l.Token, 10))
		}
		want := []string{
			"shard:1=a/" + strconv.FormatInt(a["shard:1"].Token, 10),
			"shard:2=a/" + strconv.FormatInt(a["shard:2"].Token, 10),
			"shard:3=b/" + strconv.FormatInt(e.take(e.db, "b", long, "shard:3")["shard:3"].Token, 10),
			"shard:9=b/" + strconv.FormatInt(took.Token, 10),
		}
		if !slices.Equal(got, want) {
			t.Errorf("Leases = %v, want %v", got, want)
		}
	})

	t.Run("an expired lease taken again by its owner gets a new token", func(t *testing.T) {
		e := newEnv(t, open)
		first := e.take(e.db, "a", 50*time.Millisecond, "shard:1")["shard:1"]
		e.waitExpired("shard:1")
		if again := e.take(e.db, "a", long, "shard:1")["shard:1"]; again.Token <= first.Token {
			t.Errorf("token %d after %d; want a new, higher one", again.Token, first.Token)
		}
	})

	t.Run("a released lease goes to another at once, with a new token", func(t *testing.T) {
		e := newEnv(t, open)
		ctx := t.Context()
		a := e.take(e.db, "a", long, "shard:1", "shard:2")
		if err := e.db.ReleaseLeases(ctx, "a", []string{"shard:1"}); err != nil {
			t.Fatal(err)
		}
		b := e.take(e.db, "b", long, "shard:1", "shard:2")
		if len(b) != 1 || b["shard:1"].Token == a["shard:1"].Token {
			t.Errorf("b took %+v after a released shard:1; want shard:1 with a new token, not shard:2", b)
		}
		if err := e.db.ReleaseLeases(ctx, "a", []string{"shard:1"}); err != nil {
			t.Fatal(err)
		}
		if c := e.take(e.db, "c", long, "shard:1"); len(c) != 0 {
			t.Errorf("a released b's lease: c took %+v", c)
		}
	})

	t.Run("tokens are never reused", func(t *testing.T) {
		e := newEnv(t, open)
		ctx := t.Context()
		seen := map[int64]bool{}
		var last int64
		for i := range 20 {
			names := []string{"shard:" + strconv.Itoa(i%3), "replica:r" + strconv.Itoa(i)}
			for _, l := range e.take(e.db, "o"+strconv.Itoa(i), long, names...) {
				if seen[l.Token] {
					t.Fatalf("token %d given twice", l.Token)
				}
				seen[l.Token] = true
				last = max(last, l.Token)
			}
			if err := e.db.ReleaseLeases(ctx, "o"+strconv.Itoa(i), names); err != nil {
				t.Fatal(err)
			}
		}
		// Prune forgets processes long gone, but not the highest token, and
		// tokens go on all the same.
		lastOne := e.take(e.db, "z", long, "replica:z")["replica:z"]
		if err := e.db.ReleaseLeases(ctx, "z", []string{"replica:z"}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.db.Prune(ctx, bridge.PruneBefore{Finished: time.Now().Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		if n := e.count(`SELECT count(*) FROM leases WHERE name LIKE 'replica:%'`); n != 1 {
			t.Errorf("%d presences of processes gone are left after Prune, want 1: the one of the highest token", n)
		}
		for _, l := range e.take(e.db, "p", long, "replica:r19", "shard:7") {
			if l.Token <= max(last, lastOne.Token) {
				t.Errorf("token %d after Prune, not above %d", l.Token, max(last, lastOne.Token))
			}
		}
	})

	t.Run("two processes taking the same leases at once take each once", func(t *testing.T) {
		e := newEnv(t, open)
		other := e.s.Another(t)
		names := bridge.ShardLeases()
		for round := range 5 {
			owners := []string{"a" + strconv.Itoa(round), "b" + strconv.Itoa(round)}
			var got [2]map[string]bridge.Lease
			// Leases that outlast the round: with a short one, the second
			// taker, waiting for the first one's transaction to commit (on
			// SQLite, polling for the file's lock), may rightly find it
			// expired and take it too.
			both(func() { got[0] = e.take(e.db, owners[0], long, names...) },
				func() { got[1] = e.take(other, owners[1], long, names...) })
			for _, n := range names {
				_, a := got[0][n]
				_, b := got[1][n]
				if a == b {
					t.Fatalf("round %d: lease %s taken by a: %v, by b: %v; want by one", round, n, a, b)
				}
			}
			e.exec(`UPDATE leases SET expires_ms = 0`) // free for the next round
		}
	})

	t.Run("conversations belong to the lease of their room, every generation, and move with it", func(t *testing.T) {
		e := newEnv(t, open)
		ctx := t.Context()
		key := convKey("C1")
		e.mapConv(key, "ev1", "conv_1")
		if _, err := e.reset(key, "reset-1"); err != nil {
			t.Fatal(err)
		}
		thread := bridge.ConvKey{Bot: "bot", Scope: bridge.ScopeThread, Room: roomKey("C1", "1700.1")}
		e.enqueue(thread, newInbound("ev2", thread.Room, e.clk.Now()))
		matrix := bridge.ConvKey{Bot: "bot", Scope: bridge.ScopeRoom, Room: bridge.RoomKey{Platform: bridge.PlatformMatrix, Room: "!r:hs"}}
		e.enqueue(matrix, newInbound("ev3", matrix.Room, e.clk.Now()))
		c1 := bridge.LeaseOf(roomKey("C1", ""))
		if n := e.count(`SELECT count(*) FROM conversations WHERE lease = ` + lit(c1)); n != 3 {
			t.Errorf("%d conversations of C1 have its lease %s, want 3", n, c1)
		}
		if n := e.count(`SELECT count(*) FROM conversations WHERE lease = ` + lit(bridge.MatrixLease)); n != 1 {
			t.Errorf("%d conversations have the Matrix lease, want 1", n)
		}
		_, to := roomsOfTwoLeases()
		if _, err := e.db.RenameRoom(ctx, bridge.PlatformSlack, "C1", to); err != nil {
			t.Fatal(err)
		}
		if n := e.count(`SELECT count(*) FROM conversations WHERE lease = ` + lit(bridge.LeaseOf(roomKey(to, "")))); n != 3 {
			t.Errorf("%d conversations have the lease of the room they moved to, want 3", n)
		}
	})

	t.Run("pending work and active conversations of some leases", func(t *testing.T) {
		e := newEnv(t, open)
		ctx := t.Context()
		r1, r2 := roomsOfTwoLeases()
		l1, l2 := bridge.LeaseOf(roomKey(r1, "")), bridge.LeaseOf(roomKey(r2, ""))
		a := e.mapConv(convKey(r1), "a1", "conv_a")
		b := e.mapConv(convKey(r2), "b1", "conv_b")
		a2 := e.enqueue(convKey(r1), newInbound("a2", roomKey(r1, ""), e.clk.Now()))
		ids := func(its []bridge.OutboxItem, err error) []int64 {
			t.Helper()
			if err != nil {
				t.Fatal(err)
			}
			var out []int64
			for _, it := range its {
				out = append(out, it.ID)
			}
			return out
		}
		if got := ids(e.db.PendingInboundIn(ctx, []string{l1}, 0, 0)); !slices.Equal(got, []int64{a.ID, a2.ID}) {
			t.Errorf("pending inbound of %s = %v, want %v", l1, got, []int64{a.ID, a2.ID})
		}
		if got := ids(e.db.PendingInboundIn(ctx, []string{l1}, a.ID, 0)); !slices.Equal(got, []int64{a2.ID}) {
			t.Errorf("pending inbound of %s after %d = %v, want [%d]", l1, a.ID, got, a2.ID)
		}
		if got := ids(e.db.PendingInboundIn(ctx, []string{l1, l2}, 0, 2)); !slices.Equal(got, []int64{a.ID, b.ID}) {
			t.Errorf("pending inbound of both, 2 = %v", got)
		}
		if got := ids(e.db.PendingInboundIn(ctx, nil, 0, 0)); len(got) != 0 {
			t.Errorf("pending inbound of no lease = %v", got)
		}

		da := e.addDelivery(newDelivery("msg_a", a.Conversation, e.clk.Now()))
		db := e.addDelivery(newDelivery("msg_b", b.Conversation, e.clk.Now()))
		seqs := func(ds []bridge.Delivery, err error) []int64 {
			t.Helper()
			if err != nil {
				t.Fatal(err)
			}
			var out []int64
			for _, d := range ds {
				out = append(out, d.Seq)
			}
			return out
		}
		if got := seqs(e.db.PendingDeliveriesIn(ctx, []string{l2}, 0, 0)); !slices.Equal(got, []int64{db.Seq}) {
			t.Errorf("pending deliveries of %s = %v, want [%d]", l2, got, db.Seq)
		}
		if got := seqs(e.db.PendingDeliveriesIn(ctx, []string{l1, l2}, da.Seq, 0)); !slices.Equal(got, []int64{db.Seq}) {
			t.Errorf("pending deliveries after %d = %v, want [%d]", da.Seq, got, db.Seq)
		}

		convs, err := e.db.ActiveConversationsIn(ctx, []string{l1}, e.clk.Now().Add(-time.Minute))
		if err != nil || len(convs) != 1 || convs[0].ID != a.Conversation {
			t.Errorf("active conversations of %s = %+v, %v; want conversation %d", l1, convs, err, a.Conversation)
		}
		// Long idle, but a reply waits: listed.
		convs, err = e.db.ActiveConversationsIn(ctx, []string{l2}, e.clk.Now().Add(time.Hour))
		if err != nil || len(convs) != 1 || convs[0].ID != b.Conversation {
			t.Errorf("conversations of %s with a reply waiting = %+v, %v; want conversation %d", l2, convs, err, b.Conversation)
		}
	})

	t.Run("a claim counts the attempts and waits behind an earlier delivery of the room", func(t *testing.T) {
		e := newEnv(t, open)
		ctx := t.Context()
		r1, r2 := roomsOfTwoLeases()
		a := e.mapConv(convKey(r1), "a1", "conv_a")
		b := e.mapConv(convKey(r2), "b1", "conv_b")
		e.addTo("msg_1", a.Conversation, roomKey(r1, "T1"))
		e.addTo("msg_2", a.Conversation, roomKey(r1, "T2")) // another thread of the room
		e.addTo("msg_3", b.Conversation, roomKey(r2, ""))
		claim := func(id chat.MessageID, want bridge.Claim) {
			t.Helper()
			if got, err := e.db.ClaimDelivery(ctx, id); err != nil || got != want {
				t.Errorf("claim %s = %+v, %v; want %+v", id, got, err, want)
			}
		}
		claim("msg_2", bridge.Claim{Behind: true})
		claim("msg_3", bridge.Claim{})
		claim("msg_1", bridge.Claim{})
		claim("msg_1", bridge.Claim{Attempts: 1})
		if err := e.db.MarkDelivered(ctx, "msg_1", bridge.Parts{"p1"}); err != nil {
			t.Fatal(err)
		}
		claim("msg_2", bridge.Claim{})
		if _, err := e.db.ClaimDelivery(ctx, "msg_1"); !errors.Is(err, bridge.ErrNotFound) {
			t.Errorf("claim of a posted delivery: %v, want ErrNotFound", err)
		}
		if _, err := e.db.ClaimDelivery(ctx, "msg_none"); !errors.Is(err, bridge.ErrNotFound) {
			t.Errorf("claim of no delivery: %v, want ErrNotFound", err)
		}
	})

	t.Run("a delivery stored under the fence of its lease is claimed as it is stored, when it can be", func(t *testing.T) {
		e := newEnv(t, open)
		ctx := t.Context()
		r1, r2 := roomsOfTwoLeases()
		a := e.mapConv(convKey(r1), "a1", "conv_a")
		b := e.mapConv(convKey(r2), "b1", "conv_b")
		l1 := bridge.LeaseOf(roomKey(r1, ""))
		held := fence(ctx, e.take(e.db, "a", long, l1)[l1])
		attempts := e.attempts
		add := func(ctx context.Context, id string, conv int64, room bridge.RoomKey, wantClaimed bool) {
			t.Helper()
			d := newDelivery(id, conv, e.clk.Now())
			d.Target.Room = room
			got, created, err := e.db.AddDelivery(ctx, d)
			if err != nil || !created {
				t.Fatalf("add %s: created %v, %v", id, created, err)
			}
			if got.Claimed != wantClaimed {
				t.Errorf("add %s: claimed %v, want %v", id, got.Claimed, wantClaimed)
			}
			if want := map[bool]int{true: 1}[wantClaimed]; attempts(id) != want {
				t.Errorf("attempts of %s = %d, want %d", id, attempts(id), want)
			}
		}
		// The first of its room, under the fence of its lease.
		add(held, "msg_1", a.Conversation, roomKey(r1, "T1"), e.s.ClaimsOnAdd)
		// Behind msg_1.
		add(held, "msg_2", a.Conversation, roomKey(r1, "T2"), false)
		// Without a fence; under a fence that does not hold.
		add(ctx, "msg_3", b.Conversation, roomKey(r2, ""), false)
		if err := e.db.MarkDelivered(ctx, "msg_3", bridge.Parts{"p3"}); err != nil {
			t.Fatal(err)
		}
		add(bridge.WithFence(ctx, bridge.Fence{Lease: bridge.LeaseOf(roomKey(r2, "")), Token: 1 << 40}), "msg_4", b.Conversation, roomKey(r2, ""), false)
		// Under the fence of another lease.
		add(held, "msg_5", b.Conversation, roomKey(r2, "T"), false)
		// Stored before: not claimed again.
		d := newDelivery("msg_1", a.Conversation, e.clk.Now())
		d.Target.Room = roomKey(r1, "T1")
		if got, created, err := e.db.AddDelivery(held, d); err != nil || created || got.Claimed {
			t.Errorf("add msg_1 again: created %v, claimed %v, %v", created, got.Claimed, err)
		}
		if got, want := attempts("msg_1"), map[bool]int{true: 1}[e.s.ClaimsOnAdd]; got != want {
			t.Errorf("attempts of msg_1 added again = %d, want %d", got, want)
		}
		// A claim after it counts the one made with the store.
		if c, err := e.db.ClaimDelivery(ctx, "msg_1"); err != nil || c.Attempts != attempts("msg_1")-1 {
			t.Errorf("claim msg_1 = %+v, %v; want %d attempts before", c, err, attempts("msg_1")-1)
		}
	})

	t.Run("a mark claims the delivery after it in the same transaction, as a claim would", func(t *testing.T) {
		e := newEnv(t, open)
		ctx := t.Context()
		r1, r2 := roomsOfTwoLeases()
		a := e.mapConv(convKey(r1), "a1", "conv_a")
		b := e.mapConv(convKey(r2), "b1", "conv_b")
		e.addTo("msg_1", a.Conversation, roomKey(r1, "T1"))
		e.addTo("msg_2", a.Conversation, roomKey(r1, "T2")) // another thread of the room
		e.addTo("msg_3", b.Conversation, roomKey(r2, ""))
		e.addTo("msg_4", a.Conversation, roomKey(r1, ""))
		e.addTo("msg_5", a.Conversation, roomKey(r1, ""))
		attempts := e.attempts
		markAndClaim := func(id, next chat.MessageID, want bridge.Claim, wantClaimed bool) {
			t.Helper()
			got, claimed, err := e.db.MarkDeliveredAndClaim(ctx, id, bridge.Parts{"p_" + string(id)}, next)
			if err != nil || got != want || claimed != wantClaimed {
				t.Errorf("mark %s and claim %s = %+v, %v, %v; want %+v, %v", id, next, got, claimed, err, want, wantClaimed)
			}
			if d, err := e.db.Delivery(ctx, id); err != nil || !slices.Equal(d.Posted, bridge.Parts{"p_" + string(id)}) {
				t.Errorf("%s after its mark: posted %v, %v", id, d.Posted, err)
			}
		}
		if _, err := e.db.ClaimDelivery(ctx, "msg_1"); err != nil {
			t.Fatal(err)
		}
		// msg_2 waited behind msg_1 only.
		markAndClaim("msg_1", "msg_2", bridge.Claim{}, true)
		if got := attempts("msg_2"); got != 1 {
			t.Errorf("attempts of msg_2 after the claim = %d, want 1", got)
		}
		// msg_5 waits behind msg_4 still: not claimed, the mark made.
		markAndClaim("msg_2", "msg_5", bridge.Claim{}, false)
		if got := attempts("msg_5"); got != 0 {
			t.Errorf("attempts of msg_5 claimed behind msg_4 = %d, want 0", got)
		}
		// Claimed before (by a process that stopped): the claim says so.
		e.exec(`UPDATE deliveries SET attempts = 2 WHERE message_id = 'msg_5'`)
		if c, err := e.db.ClaimDelivery(ctx, "msg_4"); err != nil || c != (bridge.Claim{}) {
			t.Fatalf("claim msg_4 = %+v, %v", c, err)
		}
		markAndClaim("msg_4", "msg_5", bridge.Claim{Attempts: 2}, true)
		if got := attempts("msg_5"); got != 3 {
			t.Errorf("attempts of msg_5 after its claim = %d, want 3", got)
		}
		// Nothing to claim: the mark is made all the same.
		markAndClaim("msg_3", "msg_none", bridge.Claim{}, false)
		// A mark of a delivery not pending: ErrNotFound, and no claim.
		e.addTo("msg_6", a.Conversation, roomKey(r1, ""))
		if _, claimed, err := e.db.MarkDeliveredAndClaim(ctx, "msg_1", bridge.Parts{"again"}, "msg_6"); !errors.Is(err, bridge.ErrNotFound) || claimed {
			t.Errorf("mark of a posted delivery: claimed %v, %v; want ErrNotFound", claimed, err)
		}
		if _, claimed, err := e.db.MarkDeliveredAndClaim(ctx, "msg_none", nil, "msg_6"); !errors.Is(err, bridge.ErrNotFound) || claimed {
			t.Errorf("mark of no delivery: claimed %v, %v; want ErrNotFound", claimed, err)
		}
		if got := attempts("msg_6"); got != 0 {
			t.Errorf("attempts of msg_6 after marks that failed = %d, want 0", got)
		}
		if d, err := e.db.Delivery(ctx, "msg_1"); err != nil || !slices.Equal(d.Posted, bridge.Parts{"p_msg_1"}) {
			t.Errorf("msg_1 marked again: posted %v, %v; want [p_msg_1]", d.Posted, err)
		}
	})

	t.Run("fenced writes are made only with the token of their lease", testFencedWrites(open))
}

func testFencedWrites(open Opener) func(t *testing.T) {
	return func(t *testing.T) {
		// Each write is tried with a token that never held the lease, with
		// the token of a lease taken over, with the token of a lease
		// expired, and then with the lease's own.
		type write struct {
			name string
			// prepare makes the records of the write, returns the write.
			prepare func(e *env) func(ctx context.Context) error
			// done checks what a write made.
			done func(e *env) bool
		}
		room := convKey("C1")
		writes := []write{{
			name: "MarkInboundSent",
			prepare: func(e *env) func(ctx context.Context) error {
				it := e.enqueue(room, newInbound("ev1", room.Room, e.clk.Now()))
				return func(ctx context.Context) error {
					return e.db.MarkInboundSent(ctx, it.ID, 1, "m1", true, bridge.ReplyTarget{Room: room.Room})
				}
			},
			done: func(e *env) bool { return e.count(`SELECT count(*) FROM inbound WHERE state = 'sent'`) == 1 },
		}, {
			name: "FailInbound",
			prepare: func(e *env) func(ctx context.Context) error {
				it := e.enqueue(room, newInbound("ev1", room.Room, e.clk.Now()))
				return func(ctx context.Context) error { return e.db.FailInbound(ctx, it.ID, "refused") }
			},
			done: func(e *env) bool { return e.count(`SELECT count(*) FROM inbound WHERE state = 'failed'`) == 1 },
		}, {
			name: "SetConversationChatID",
			prepare: func(e *env) func(ctx context.Context) error {
				it := e.enqueue(room, newInbound("ev1", room.Room, e.clk.Now()))
				return func(ctx context.Context) error { return e.db.SetConversationChatID(ctx, it.Conversation, "conv_1") }
			},
			done: func(e *env) bool { return e.count(`SELECT count(*) FROM conversations WHERE chat_id = 'conv_1'`) == 1 },
		}, {
			name: "AddParticipant",
			prepare: func(e *env) func(ctx context.Context) error {
				it := e.enqueue(room, newInbound("ev1", room.Room, e.clk.Now()))
				return func(ctx context.Context) error { return e.db.AddParticipant(ctx, it.Conversation, "u1") }
			},
			done: func(e *env) bool { return e.count(`SELECT count(*) FROM participants`) == 1 },
		}, {
			name: "MarkDelivered",
			prepare: func(e *env) func(ctx context.Context) error {
				it := e.mapConv(room, "ev1", "conv_1")
				e.addDelivery(newDelivery("msg_1", it.Conversation, e.clk.Now()))
				return func(ctx context.Context) error { return e.db.MarkDelivered(ctx, "msg_1", bridge.Parts{"p1"}) }
			},
			done: func(e *env) bool { return e.count(`SELECT count(*) FROM deliveries WHERE state = 'posted'`) == 1 },
		}, {
			name: "MarkDeliveredAndClaim",
			prepare: func(e *env) func(ctx context.Context) error {
				it := e.mapConv(room, "ev1", "conv_1")
				e.addDelivery(newDelivery("msg_1", it.Conversation, e.clk.Now()))
				e.addDelivery(newDelivery("msg_2", it.Conversation, e.clk.Now()))
				return func(ctx context.Context) error {
					_, claimed, err := e.db.MarkDeliveredAndClaim(ctx, "msg_1", bridge.Parts{"p1"}, "msg_2")
					if err == nil && !claimed {
						return errors.New("msg_2 not claimed")
					}
					return err
				}
			},
			done: func(e *env) bool {
				posted := e.count(`SELECT count(*) FROM deliveries WHERE state = 'posted'`)
				claimed := e.count(`SELECT count(*) FROM deliveries WHERE attempts > 0`)
				if posted != claimed {
					e.tb.Fatalf("%d posted, %d claimed: a mark and its claim are one write", posted, claimed)
				}
				return posted == 1
			},
		}, {
			name: "FailDelivery",
			prepare: func(e *env) func(ctx context.Context) error {
				it := e.mapConv(room, "ev1", "conv_1")
				e.addDelivery(newDelivery("msg_1", it.Conversation, e.clk.Now()))
				return func(ctx context.Context) error { return e.db.FailDelivery(ctx, "msg_1", "refused") }
			},
			done: func(e *env) bool { return e.count(`SELECT count(*) FROM deliveries WHERE state = 'failed'`) == 1 },
		}, {
			name: "ClaimDelivery",
			prepare: func(e *env) func(ctx context.Context) error {
				it := e.mapConv(room, "ev1", "conv_1")
				e.addDelivery(newDelivery("msg_1", it.Conversation, e.clk.Now()))
				return func(ctx context.Context) error { _, err := e.db.ClaimDelivery(ctx, "msg_1"); return err }
			},
			done: func(e *env) bool { return e.count(`SELECT attempts FROM deliveries`) == 1 },
		}, {
			name: "PutOffer",
			prepare: func(e *env) func(ctx context.Context) error {
				it := e.mapConv(room, "ev1", "conv_1")
				o := bridge.Offer{Room: roomKey("C1", "T"), Bot: "bot", Conversation: it.Conversation,
					Options: []chat.ChoiceOption{{Label: "Yes", Value: "yes"}}, Expires: e.clk.Now().Add(time.Hour)}
				return func(ctx context.Context) error { return e.db.PutOffer(ctx, o) }
			},
			done: func(e *env) bool { return e.count(`SELECT count(*) FROM offers`) == 1 },
		}, {
			name: "PutOffer of the message",
			prepare: func(e *env) func(ctx context.Context) error {
				it := e.mapConv(room, "ev1", "conv_1")
				o := bridge.Offer{Room: roomKey("C1", "T"), Bot: "bot", Conversation: it.Conversation,
					Options: []chat.ChoiceOption{{Label: "Yes", Value: "yes"}}, Expires: e.clk.Now().Add(time.Hour)}
				e.putOffer(o)
				o.MessageID = "p1"
				return func(ctx context.Context) error { return e.db.PutOffer(ctx, o) }
			},
			done: func(e *env) bool { return e.count(`SELECT count(*) FROM offers WHERE message_id = 'p1'`) == 1 },
		}, {
			name: "SetIndicator",
			prepare: func(e *env) func(ctx context.Context) error {
				return func(ctx context.Context) error {
					return e.db.SetIndicator(ctx, bridge.ReplyTarget{Room: roomKey("C1", "T"), MessageID: "m1"}, true)
				}
			},
			done: func(e *env) bool { return e.count(`SELECT count(*) FROM indicators`) == 1 },
		}, {
			name: "SetIndicator off",
			prepare: func(e *env) func(ctx context.Context) error {
				t := bridge.ReplyTarget{Room: roomKey("C1", "T"), MessageID: "m1"}
				if err := e.db.SetIndicator(e.tb.Context(), t, true); err != nil {
					e.tb.Fatal(err)
				}
				return func(ctx context.Context) error { return e.db.SetIndicator(ctx, t, false) }
			},
			done: func(e *env) bool { return e.count(`SELECT count(*) FROM indicators`) == 0 },
		}}
		lease := bridge.LeaseOf(room.Room)
		for _, w := range writes {
			t.Run(w.name, func(t *testing.T) {
				e := newEnv(t, open)
				ctx := t.Context()
				write := w.prepare(e)
				refused := func(ctx context.Context, what string) {
					t.Helper()
					if err := write(ctx); !errors.Is(err, bridge.ErrFenced) {
						t.Fatalf("%s: %v, want ErrFenced", what, err)
					}
					if w.done(e) {
						t.Fatalf("%s: refused, but written", what)
					}
				}
				refused(bridge.WithFence(ctx, bridge.Fence{Lease: lease, Token: 1 << 40}), "a token never given")
				refused(bridge.WithFence(ctx, bridge.Fence{Lease: lease, Token: 0}), "token 0")
				other := e.take(e.db, "b", long, "shard:other")["shard:other"]
				refused(fence(ctx, bridge.Lease{Name: lease, Token: other.Token}), "the token of another lease")

				expired := e.take(e.db, "a", 50*time.Millisecond, lease)[lease]
				e.waitExpired(lease)
				refused(fence(ctx, expired), "the token of the lease expired")
				current := e.expire(lease, "b")
				refused(fence(ctx, expired), "the token of the lease taken over")
				if err := write(fence(ctx, current)); err != nil {
					t.Fatalf("with the lease's token: %v", err)
				}
				if !w.done(e) {
					t.Fatal("with the lease's token: nothing written")
				}
			})
		}

		t.Run("SetCursor under the fence of its own lease", func(t *testing.T) {
			e := newEnv(t, open)
			ctx := t.Context()
			l := e.take(e.db, "a", long, bridge.MatrixLease)[bridge.MatrixLease]
			if err := e.db.SetCursor(fence(ctx, l), "matrix.next_batch", "s1"); err != nil {
				t.Fatal(err)
			}
			if err := e.db.ReleaseLeases(ctx, "a", []string{bridge.MatrixLease}); err != nil {
				t.Fatal(err)
			}
			if err := e.db.SetCursor(fence(ctx, l), "matrix.next_batch", "s2"); !errors.Is(err, bridge.ErrFenced) {
				t.Errorf("after the lease was released: %v, want ErrFenced", err)
			}
			if v, err := e.db.Cursor(ctx, "matrix.next_batch"); err != nil || v != "s1" {
				t.Errorf("cursor = %q, %v; want s1", v, err)
			}
		})

		t.Run("a fenced write of a record that does not exist is not found", func(t *testing.T) {
			e := newEnv(t, open)
			ctx := fence(t.Context(), e.take(e.db, "a", long, bridge.LeaseOf(room.Room))[bridge.LeaseOf(room.Room)])
			for name, err := range map[string]error{
				"MarkInboundSent": e.db.MarkInboundSent(ctx, 12345, 1, "m", true, bridge.ReplyTarget{}),
				"FailInbound":     e.db.FailInbound(ctx, 12345, "x"),
				"MarkDelivered":   e.db.MarkDelivered(ctx, "msg_none", nil),
				"FailDelivery":    e.db.FailDelivery(ctx, "msg_none", "x"),
				"SetChatID":       e.db.SetConversationChatID(ctx, 12345, "c"),
				"AddParticipant":  e.db.AddParticipant(ctx, 12345, "u"),
			} {
				if !errors.Is(err, bridge.ErrNotFound) {
					t.Errorf("%s: %v, want ErrNotFound", name, err)
				}
			}
		})
	}
}
