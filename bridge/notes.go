package bridge

import (
	"context"
	"log/slog"
	"time"

	"github.com/botbridge/botbridge/bridge/logging"
)

// notes carries the engine's notes to the other processes sharing its
// store (Notifier): an inbound message or a delivery it stored for a lease
// another process holds, so that that one takes it up at once rather than
// at its next poll. Publishing never blocks the path that stored the work:
// a note that does not fit the queue is dropped, and the poll finds its
// work. On a store no other process shares there is nothing to tell.
type notes struct {
	store   Notifier // nil: nobody to tell
	log     *slog.Logger
	limiter logging.Limiter
	queue   chan Note
}

// notesQueue bounds the notes waiting to be published.
const notesQueue = 1024

func newNotes(st Store, log *slog.Logger) *notes {
	n := &notes{log: log}
	if nt, ok := st.(Notifier); ok {
		n.store = nt
		n.queue = make(chan Note, notesQueue)
	}
	return n
}

// publish queues a note; it never blocks.
func (n *notes) publish(note Note) {
	if n == nil || n.store == nil {
		return
	}
	select {
	case n.queue <- note:
	default:
	}
}

// run publishes the queued notes until ctx ends.
func (n *notes) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case note := <-n.queue:
			pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err := n.store.Publish(pctx, note)
			cancel()
			if err != nil && ctx.Err() == nil {
				n.limiter.Warn(n.log, "publish", "tell the other replicas of work stored for them; they find it at their next poll", LogErr, err)
			}
		}
	}
}
