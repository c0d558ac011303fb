package store_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/botbridge/botbridge/bridge"
)

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
