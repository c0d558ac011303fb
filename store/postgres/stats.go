package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// Stats is how much work waits in the store; it has the fields of
// store.Stats, so that one converts to the other.
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

// Stats counts the work waiting in the outbox and the deliveries, in one
// statement that reads the partial indexes of pending rows.
func (db *DB) Stats(ctx context.Context) (Stats, error) {
	scan := func(row pgx.Row) (Stats, error) {
		var (
			s           Stats
			inMS, outMS *int64
		)
		if err := row.Scan(&s.PendingInbound, &inMS, &s.PendingDeliveries, &outMS); err != nil {
			return s, err
		}
		if inMS != nil {
			s.OldestInbound = fromMS(*inMS)
		}
		if outMS != nil {
			s.OldestDelivery = fromMS(*outMS)
		}
		return s, nil
	}
	return queryRow(ctx, db, "stats", scan, `SELECT
		(SELECT count(*) FROM inbound WHERE state = 'pending'),
		(SELECT min(created_ms) FROM inbound WHERE state = 'pending'),
		(SELECT count(*) FROM deliveries WHERE state = 'pending'),
		(SELECT min(received_ms) FROM deliveries WHERE state = 'pending')`)
}
