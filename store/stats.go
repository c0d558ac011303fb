package store

import (
	"context"
	"time"
)

// Stats is how much work waits in the store.
type Stats struct {
	// PendingInbound counts messages not yet sent to Botpress, and
	// OldestInbound is when the oldest of them was stored (zero if none).
	PendingInbound int
	OldestInbound  time.Time
	// PendingDeliveries counts bot messages not yet posted, and
	// OldestDelivery is when the oldest of them was received.
	PendingDeliveries int
	OldestDelivery    time.Time
}

// Stats counts the work waiting in the outbox and the deliveries. It reads
// only the partial indexes of pending rows and their rows.
func (db *DB) Stats(ctx context.Context) (Stats, error) {
	var (
		s           Stats
		inMS, outMS *int64
	)
	if err := db.queryRow(ctx, `SELECT count(*), min(created_ms) FROM inbound WHERE state = 'pending'`).
		Scan(&s.PendingInbound, &inMS); err != nil {
		return s, wrap("stats", err)
	}
	if err := db.queryRow(ctx, `SELECT count(*), min(received_ms) FROM deliveries WHERE state = 'pending'`).
		Scan(&s.PendingDeliveries, &outMS); err != nil {
		return s, wrap("stats", err)
	}
	if inMS != nil {
		s.OldestInbound = fromMS(*inMS)
	}
	if outMS != nil {
		s.OldestDelivery = fromMS(*outMS)
	}
	return s, nil
}
