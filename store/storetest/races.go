package storetest

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/botbridge/botbridge/bridge"
	"github.com/botbridge/botbridge/chat"
)

// raceRounds is how many times each race runs.
const raceRounds = 25

// both runs a and b at once, as near the same moment as a start signal
// makes them, and waits for both.
func both(a, b func()) {
	start := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { <-start; a() })
	wg.Go(func() { <-start; b() })
	close(start)
	wg.Wait()
}

// testRaces races two handles on one store (two replicas) on the same
// records: the store's keys must make one of them win and show the other
// what the winner stored, without an error.
func testRaces(t *testing.T, open Opener) {
	t.Run("the same event from two processes is stored once", func(t *testing.T) {
		e := newEnv(t, open)
		ctx := t.Context()
		other := e.s.Another(t)
		for i := range raceRounds {
			n := strconv.Itoa(i)
			// Every other round the two see the event under different keys
			// (a routing change between them): the loser must leave no
			// conversation and engage no thread of its own.
			keyA, keyB := convKey("S"+n), convKey("S"+n)
			if i%2 == 1 {
				keyA, keyB = convKey("A"+n), convKey("B"+n)
			}
			type result struct {
				it      bridge.OutboxItem
				created bool
				err     error
			}
			var a, b result
			in := newInbound("ev"+n, keyA.Room, e.clk.Now())
			both(func() {
				a.it, a.created, a.err = e.db.EnqueueInbound(ctx, keyA, in, roomKey(keyA.Room.Room, "T"))
			}, func() {
				b.it, b.created, b.err = other.EnqueueInbound(ctx, keyB, in, roomKey(keyB.Room.Room, "T"))
			})
			if a.err != nil || b.err != nil {
				t.Fatalf("round %d: errors %v and %v", i, a.err, b.err)
			}
			if a.created == b.created || a.it.ID != b.it.ID || a.it.Conversation != b.it.Conversation {
				t.Fatalf("round %d: created %v and %v, items %d/%d and %d/%d; want one stored and the same item seen by both",
					i, a.created, b.created, a.it.ID, a.it.Conversation, b.it.ID, b.it.Conversation)
			}
		}
		for query, want := range map[string]int{
			"SELECT count(*) FROM inbound":       raceRounds,
			"SELECT count(*) FROM conversations": raceRounds,
			"SELECT count(*) FROM threads":       raceRounds,
		} {
			if got := e.count(query); got != want {
				t.Errorf("%s = %d, want %d", query, got, want)
			}
		}
	})

	t.Run("the same reset from two processes resets once", func(t *testing.T) {
		e := newEnv(t, open)
		ctx := t.Context()
		other := e.s.Another(t)
		key := convKey("C1")
		e.enqueue(key, newInbound("first", key.Room, e.clk.Now()))
		for i := range raceRounds {
			ev := "reset-" + strconv.Itoa(i)
			in := newInbound(ev, key.Room, e.clk.Now())
			notice := bridge.Delivery{MessageID: chat.MessageID("notice-" + ev), Bot: "bot", Payload: chat.Text{Text: "reset"}, CreatedAt: e.clk.Now()}
			var createdA, createdB bool
			var errA, errB error
			both(func() {
				_, createdA, errA = e.db.ResetConversation(ctx, key, in, notice)
			}, func() {
				_, createdB, errB = other.ResetConversation(ctx, key, in, notice)
			})
			if errA != nil || errB != nil || createdA == createdB {
				t.Fatalf("round %d: created %v, %v; errors %v, %v; want one reset and no error", i, createdA, createdB, errA, errB)
			}
		}
		for query, want := range map[string]int{
			"SELECT count(*) FROM conversations":                   raceRounds + 1,
			"SELECT count(DISTINCT generation) FROM conversations": raceRounds + 1,
			"SELECT max(generation) FROM conversations":            raceRounds,
			"SELECT count(*) FROM deliveries":                      raceRounds,
			"SELECT count(*) FROM inbound":                         raceRounds + 1,
		} {
			if got := e.count(query); got != want {
				t.Errorf("%s = %d, want %d", query, got, want)
			}
		}
	})

	t.Run("resets and messages at once each land in one generation", func(t *testing.T) {
		e := newEnv(t, open)
		ctx := t.Context()
		dbs := []bridge.Store{e.db, e.s.Another(t)}
		key := convKey("C1")
		const resets, messages = 6, 24
		start := make(chan struct{})
		var wg sync.WaitGroup
		errs := make(chan error, resets+messages)
		for i := range resets + messages {
			db := dbs[i%2]
			wg.Go(func() {
				<-start
				ev := "ev" + strconv.Itoa(i)
				in := newInbound(ev, key.Room, e.clk.Now())
				var created bool
				var err error
				if i < resets {
					notice := bridge.Delivery{MessageID: chat.MessageID("notice-" + ev), Bot: "bot", Payload: chat.Text{Text: "reset"}}
					_, created, err = db.ResetConversation(ctx, key, in, notice)
				} else {
					_, created, err = db.EnqueueInbound(ctx, key, in, bridge.RoomKey{})
				}
				if err == nil && !created {
					err = errors.New("not created")
				}
				if err != nil {
					errs <- fmt.Errorf("%s: %w", ev, err)
				}
			})
		}
		close(start)
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		// The first message or reset made generation 0; each reset one more,
		// unless it made generation 0 itself.
		gens := e.count("SELECT count(*) FROM conversations")
		if gens != resets && gens != resets+1 {
			t.Errorf("%d conversations, want %d or %d", gens, resets, resets+1)
		}
		for query, want := range map[string]int{
			"SELECT count(DISTINCT generation) FROM conversations":                                  gens,
			"SELECT max(generation) FROM conversations":                                             gens - 1,
			"SELECT count(*) FROM inbound":                                                          resets + messages,
			"SELECT count(*) FROM inbound WHERE conversation NOT IN (SELECT id FROM conversations)": 0,
		} {
			if got := e.count(query); got != want {
				t.Errorf("%s = %d, want %d", query, got, want)
			}
		}
	})

	t.Run("the same delivery from two processes is stored once", func(t *testing.T) {
		e := newEnv(t, open)
		ctx := t.Context()
		other := e.s.Another(t)
		it := e.mapConv(convKey("C1"), "ev1", "conv_1")
		t0 := e.clk.Now()
		for i := range raceRounds {
			d := newDelivery("msg_"+strconv.Itoa(i), it.Conversation, t0.Add(time.Duration(i)*time.Second))
			if i%2 == 1 {
				d.Target = bridge.ReplyTarget{} // the default target, looked up by both
			}
			var a, b bridge.Delivery
			var createdA, createdB bool
			var errA, errB error
			both(func() {
				a, createdA, errA = e.db.AddDelivery(ctx, d)
			}, func() {
				b, createdB, errB = other.AddDelivery(ctx, d)
			})
			if errA != nil || errB != nil || createdA == createdB || a.Seq != b.Seq || a.Target != b.Target {
				t.Fatalf("round %d: created %v, %v; errors %v, %v; seq %d, %d; want one stored, seen by both",
					i, createdA, createdB, errA, errB, a.Seq, b.Seq)
			}
		}
		if ds, err := e.db.PendingDeliveries(ctx, 0); err != nil || len(ds) != raceRounds {
			t.Errorf("pending = %d, %v; want %d", len(ds), err, raceRounds)
		}
		want := t0.Add((raceRounds - 1) * time.Second)
		if c, err := e.db.Conversation(ctx, it.Conversation); err != nil || !c.Cursor.Equal(want) {
			t.Errorf("cursor = %v, %v; want %v", c.Cursor, err, want)
		}
	})

	t.Run("deliveries of one conversation at once keep the newest cursor", func(t *testing.T) {
		e := newEnv(t, open)
		ctx := t.Context()
		dbs := []bridge.Store{e.db, e.s.Another(t)}
		it := e.mapConv(convKey("C1"), "ev1", "conv_1")
		t0 := e.clk.Now()
		const n = 32
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				<-start
				// Creation times out of order: the newest is n/2.
				created := t0.Add(time.Duration(n/2-(i-n/2)*(i-n/2)) * time.Second)
				if _, _, err := dbs[i%2].AddDelivery(ctx, newDelivery("msg_"+strconv.Itoa(i), it.Conversation, created)); err != nil {
					t.Error(err)
				}
			})
		}
		close(start)
		wg.Wait()
		want := t0.Add(n / 2 * time.Second)
		if c, err := e.db.Conversation(ctx, it.Conversation); err != nil || !c.Cursor.Equal(want) {
			t.Errorf("cursor = %v, %v; want %v", c.Cursor, err, want)
		}
	})

	t.Run("two processes finishing one record: one wins, the other finds it finished", func(t *testing.T) {
		e := newEnv(t, open)
		ctx := t.Context()
		other := e.s.Another(t)
		key := convKey("C1")
		for i := range raceRounds {
			n := strconv.Itoa(i)
			it := e.enqueue(key, newInbound("ev"+n, key.Room, e.clk.Now()))
			var errA, errB error
			both(func() {
				errA = e.db.MarkInboundSent(ctx, it.ID, 1, "m", true, bridge.ReplyTarget{})
			}, func() {
				if i%2 == 0 {
					errB = other.MarkInboundSent(ctx, it.ID, 1, "m", true, bridge.ReplyTarget{})
				} else {
					errB = other.FailInbound(ctx, it.ID, "refused")
				}
			})
			if !oneWins(errA, errB) {
				t.Fatalf("inbound round %d: %v and %v; want one nil and one ErrNotFound", i, errA, errB)
			}
			wantState := "sent"
			if errA != nil && i%2 == 1 {
				wantState = "failed"
			}
			var state string
			if err := e.s.Row(ctx, "SELECT state FROM inbound WHERE id = "+strconv.FormatInt(it.ID, 10), &state); err != nil || state != wantState {
				t.Errorf("inbound round %d: state %q, %v; want the winner's %q", i, state, err, wantState)
			}

			d := e.addDelivery(newDelivery("msg_"+n, it.Conversation, e.clk.Now()))
			both(func() {
				errA = e.db.MarkDelivered(ctx, d.MessageID, bridge.Parts{"p" + n})
			}, func() {
				errB = other.FailDelivery(ctx, d.MessageID, "gone")
			})
			if !oneWins(errA, errB) {
				t.Fatalf("delivery round %d: %v and %v; want one nil and one ErrNotFound", i, errA, errB)
			}
			wantState = "posted"
			if errA != nil {
				wantState = "failed"
			}
			if err := e.s.Row(ctx, "SELECT state FROM deliveries WHERE message_id = "+lit(string(d.MessageID)), &state); err != nil || state != wantState {
				t.Errorf("delivery round %d: state %q, %v; want the winner's %q", i, state, err, wantState)
			}
		}
	})

	t.Run("the same upserts from two processes are no errors", func(t *testing.T) {
		e := newEnv(t, open)
		ctx := t.Context()
		other := e.s.Another(t)
		it := e.mapConv(convKey("C1"), "ev1", "conv_1")
		for i := range raceRounds {
			n := strconv.Itoa(i)
			u := bridge.User{Bot: "bot", Platform: bridge.PlatformSlack, PlatformID: "U" + n, ChatID: chat.UserID("user_" + n)}
			ind := bridge.ReplyTarget{Room: roomKey("C1", "T"+n)}
			o := bridge.Offer{Room: roomKey("C1", "T"+n), Bot: "bot", Conversation: it.Conversation, MessageID: n,
				Options: []chat.ChoiceOption{{Label: "a", Value: "a"}}, Expires: e.clk.Now().Add(time.Hour)}
			for name, f := range map[string]func(bridge.Store) error{
				"PutUser":        func(db bridge.Store) error { return db.PutUser(ctx, u) },
				"AddParticipant": func(db bridge.Store) error { return db.AddParticipant(ctx, it.Conversation, u.ChatID) },
				"SetCursor":      func(db bridge.Store) error { return db.SetCursor(ctx, "c"+n, n) },
				"SetIndicator":   func(db bridge.Store) error { return db.SetIndicator(ctx, ind, true) },
				"PutOffer": func(db bridge.Store) error {
					pending := o
					pending.MessageID = ""
					if err := db.PutOffer(ctx, pending); err != nil {
						return err
					}
					return db.PutOffer(ctx, o)
				},
				"DeleteUser": func(db bridge.Store) error {
					return db.DeleteUser(ctx, "bot", bridge.PlatformSlack, "gone"+n)
				},
			} {
				var errA, errB error
				both(func() { errA = f(e.db) }, func() { errB = f(other) })
				if errA != nil || errB != nil {
					t.Errorf("%s round %d: %v, %v", name, i, errA, errB)
				}
			}
		}
		for query, want := range map[string]int{
			"SELECT count(*) FROM users":                        raceRounds,
			"SELECT count(*) FROM participants":                 raceRounds,
			"SELECT count(*) FROM cursors WHERE name LIKE 'c%'": raceRounds,
			"SELECT count(*) FROM indicators":                   raceRounds,
			"SELECT count(*) FROM offers":                       raceRounds,
		} {
			if got := e.count(query); got != want {
				t.Errorf("%s = %d, want %d", query, got, want)
			}
		}
	})
}

// oneWins reports whether exactly one of a and b is nil and the other
// ErrNotFound.
func oneWins(a, b error) bool {
	return (a == nil && errors.Is(b, bridge.ErrNotFound)) || (b == nil && errors.Is(a, bridge.ErrNotFound))
}

// work runs the life of n messages of worker w on db: enqueue (with a
// duplicate that every worker also enqueues), a partial and a final send,
// a delivery and its post, and the reads the bridge makes in between. It
// reports how many shared events it created.
func work(ctx context.Context, db bridge.Store, now func() time.Time, w, n int) (sharedCreated int, err error) {
	for i := range n {
		room := "C" + strconv.Itoa((w+i)%5)
		key := convKey(room)
		thread := roomKey(room, "T"+strconv.Itoa(i%3))
		it, _, err := db.EnqueueInbound(ctx, key, newInbound(fmt.Sprintf("ev-%d-%d", w, i), key.Room, now()), thread)
		if err != nil {
			return 0, err
		}
		_, created, err := db.EnqueueInbound(ctx, key, newInbound("shared-"+strconv.Itoa(i), key.Room, now()), bridge.RoomKey{})
		if err != nil {
			return 0, err
		}
		if created {
			sharedCreated++
		}
		if _, err := db.PendingInbound(ctx, 10); err != nil {
			return 0, err
		}
		if _, err := db.NextInbound(ctx, it.Conversation); err != nil {
			return 0, fmt.Errorf("next inbound of %d: %w", it.Conversation, err)
		}
		if _, err := db.ThreadEngaged(ctx, "bot", thread); err != nil {
			return 0, err
		}
		if err := db.AddParticipant(ctx, it.Conversation, chat.UserID("user_"+strconv.Itoa(w))); err != nil {
			return 0, err
		}
		if err := db.MarkInboundSent(ctx, it.ID, 1, "m1", false, bridge.ReplyTarget{}); err != nil {
			return 0, err
		}
		reply := bridge.ReplyTarget{Room: thread, MessageID: it.Inbound.MessageID, UserID: "U1"}
		if err := db.MarkInboundSent(ctx, it.ID, 2, "m2", true, reply); err != nil {
			return 0, err
		}
		id := chat.MessageID(fmt.Sprintf("msg-%d-%d", w, i))
		if _, _, err := db.AddDelivery(ctx, newDelivery(string(id), it.Conversation, now())); err != nil {
			return 0, err
		}
		if _, err := db.PendingDeliveries(ctx, 10); err != nil {
			return 0, err
		}
		if err := db.MarkDelivered(ctx, id, bridge.Parts{"p"}); err != nil {
			return 0, err
		}
		if err := db.SetCursor(ctx, "worker."+strconv.Itoa(w), strconv.Itoa(i)); err != nil {
			return 0, err
		}
	}
	return sharedCreated, nil
}

func testConcurrency(t *testing.T, open Opener) {
	const workers, perWorker = 16, 30
	for _, tc := range []struct {
		name    string
		handles int
	}{{"one handle", 1}, {"two handles", 2}} {
		handles := tc.handles
		t.Run(tc.name+": every write lands", func(t *testing.T) {
			e := newEnv(t, open)
			dbs := []bridge.Store{e.db}
			for len(dbs) < handles {
				dbs = append(dbs, e.s.Another(t))
			}
			var (
				wg     sync.WaitGroup
				shared atomic.Int64
			)
			for w := range workers {
				wg.Go(func() {
					n, err := work(t.Context(), dbs[w%handles], e.clk.Now, w, perWorker)
					if err != nil {
						t.Errorf("worker %d: %v", w, err)
					}
					shared.Add(int64(n))
				})
			}
			wg.Wait()

			if shared.Load() != perWorker {
				t.Errorf("%d shared events created, want %d (one per key)", shared.Load(), perWorker)
			}
			for query, want := range map[string]int{
				"SELECT count(*) FROM inbound":                                                   workers*perWorker + perWorker,
				"SELECT count(*) FROM inbound WHERE state = 'sent'":                              workers * perWorker,
				"SELECT count(*) FROM deliveries WHERE state = 'posted'":                         workers * perWorker,
				"SELECT count(*) FROM conversations":                                             5,
				"SELECT count(*) FROM threads":                                                   15,
				"SELECT count(*) FROM cursors WHERE value = '" + strconv.Itoa(perWorker-1) + "'": workers,
				"SELECT count(DISTINCT chat_user) FROM participants":                             workers,
			} {
				if got := e.count(query); got != want {
					t.Errorf("%s = %d, want %d", query, got, want)
				}
			}
		})
	}
}

// testFailures checks the errors of a store that cannot do what it is
// asked.
func testFailures(t *testing.T, open Opener) {
	t.Run("a closed store fails with ErrStore", func(t *testing.T) {
		e := newEnv(t, open)
		ctx := t.Context()
		// Use statements first, so that the closed store has them ready.
		it := e.enqueue(convKey("C1"), newInbound("ev1", roomKey("C1", ""), e.clk.Now()))
		if _, err := e.db.NextInbound(ctx, it.Conversation); err != nil {
			t.Fatal(err)
		}
		if err := e.s.Close(); err != nil {
			t.Fatal(err)
		}
		if err := e.s.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
		_, _, err := e.db.EnqueueInbound(ctx, convKey("C1"), newInbound("ev2", roomKey("C1", ""), e.clk.Now()), bridge.RoomKey{})
		if !errors.Is(err, bridge.ErrStore) {
			t.Errorf("EnqueueInbound on a closed store: %v, want ErrStore", err)
		}
		if _, err := e.db.NextInbound(ctx, it.Conversation); !errors.Is(err, bridge.ErrStore) {
			t.Errorf("NextInbound on a closed store: %v, want ErrStore", err)
		}
		if err := e.db.Ping(ctx); !errors.Is(err, bridge.ErrStore) {
			t.Errorf("Ping on a closed store: %v, want ErrStore", err)
		}
	})

	t.Run("a cancelled context stores nothing and is no store failure", func(t *testing.T) {
		e := newEnv(t, open)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		_, _, err := e.db.EnqueueInbound(ctx, convKey("C1"), newInbound("ev1", roomKey("C1", ""), e.clk.Now()), bridge.RoomKey{})
		if !errors.Is(err, context.Canceled) || errors.Is(err, bridge.ErrStore) {
			t.Errorf("EnqueueInbound: %v, want context.Canceled and no store failure", err)
		}
		if _, err := e.db.PendingInbound(ctx, 0); !errors.Is(err, context.Canceled) {
			t.Errorf("PendingInbound: %v, want context.Canceled", err)
		}
		if err := e.db.MarkDelivered(ctx, "msg_1", nil); !errors.Is(err, context.Canceled) || errors.Is(err, bridge.ErrStore) {
			t.Errorf("MarkDelivered: %v, want context.Canceled and no store failure", err)
		}
		if n := e.count("SELECT count(*) FROM inbound"); n != 0 {
			t.Errorf("%d rows stored", n)
		}
	})
}
