package store_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/botbridge/botbridge/bridge"
	"github.com/botbridge/botbridge/chat"
	"github.com/botbridge/botbridge/store"
)

// work runs the life of n messages of worker w on db: enqueue (with a
// duplicate that every worker also enqueues), a partial and a final send,
// a delivery with an attempt and a post, and the reads the bridge makes in
// between. It reports how many shared events it created.
func work(ctx context.Context, db *store.DB, w, n int) (sharedCreated int, err error) {
	for i := range n {
		room := "C" + strconv.Itoa((w+i)%5)
		key := convKey(room)
		thread := roomKey(room, "T"+strconv.Itoa(i%3))
		it, _, err := db.EnqueueInbound(ctx, key, newInbound(fmt.Sprintf("ev-%d-%d", w, i), key.Room, db.Now()), thread)
		if err != nil {
			return 0, err
		}
		_, created, err := db.EnqueueInbound(ctx, key, newInbound("shared-"+strconv.Itoa(i), key.Room, db.Now()), bridge.RoomKey{})
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
		if _, _, err := db.AddDelivery(ctx, newDelivery(string(id), it.Conversation, db.Now())); err != nil {
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

func TestConcurrency(t *testing.T) {
	const workers, perWorker = 16, 30
	for _, tc := range []struct {
		name    string
		handles int
	}{{"one handle", 1}, {"two handles on one file", 2}} {
		handles := tc.handles
		t.Run(tc.name+": every write lands, none busy", func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "bridge.db")
			clk := newClock()
			var dbs []*store.DB
			for range handles {
				db := openDB(t, path)
				db.Now = clk.Now
				dbs = append(dbs, db)
			}
			var (
				wg     sync.WaitGroup
				shared atomic.Int64
			)
			for w := range workers {
				wg.Go(func() {
					n, err := work(t.Context(), dbs[w%handles], w, perWorker)
					if err != nil {
						t.Errorf("worker %d: %v", w, err)
					}
					shared.Add(int64(n))
				})
			}
			wg.Wait()

			db := dbs[0]
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
				if got := count(t, db, query); got != want {
					t.Errorf("%s = %d, want %d", query, got, want)
				}
			}
		})
	}
}

// TestGroupCommitKeepsFailuresApart runs writes that succeed beside writes
// that fail, at once, so that they share commits: every successful write
// lands, every failed one changes nothing, and each caller gets its own
// answer.
func TestGroupCommitKeepsFailuresApart(t *testing.T) {
	db, _ := newDB(t)
	ctx := t.Context()
	key := convKey("C1")
	const n = 200
	var wg sync.WaitGroup
	var okErrs, failErrs atomic.Int64
	for i := range n {
		wg.Go(func() {
			if _, _, err := db.EnqueueInbound(ctx, key, newInbound(fmt.Sprintf("good-%d", i), key.Room, db.Now()), bridge.RoomKey{}); err != nil {
				okErrs.Add(1)
			}
		})
		wg.Go(func() {
			// An unknown id: the transaction fails inside, after nothing.
			if err := db.FailInbound(ctx, int64(1_000_000+i), "x"); !errors.Is(err, bridge.ErrNotFound) {
				failErrs.Add(1)
			}
		})
		wg.Go(func() {
			// A cancelled caller: its write must not run, nor spoil others.
			cctx, cancel := context.WithCancel(ctx)
			cancel()
			if _, _, err := db.EnqueueInbound(cctx, key, newInbound(fmt.Sprintf("cancelled-%d", i), key.Room, db.Now()), bridge.RoomKey{}); !errors.Is(err, context.Canceled) {
				failErrs.Add(1)
			}
		})
	}
	wg.Wait()
	if okErrs.Load() != 0 || failErrs.Load() != 0 {
		t.Errorf("%d good writes failed, %d bad writes did not fail as they should", okErrs.Load(), failErrs.Load())
	}
	items, err := db.PendingInbound(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != n {
		t.Errorf("%d items stored, want the %d good ones", len(items), n)
	}
	for _, it := range items {
		if !strings.HasPrefix(string(it.Inbound.Key), "good-") {
			t.Errorf("stored %s", it.Inbound.Key)
		}
	}
}
