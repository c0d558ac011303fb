package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/botbridge/botbridge/bridge"
	"github.com/botbridge/botbridge/chat"
)

// The processes sharing the store share its work through leases (see
// bridge/lease.go): their expiry is by the server's clock, which every
// process shares, and their tokens come from the sequence lease_tokens.

// leasesVersion is the migration that adds the leases.
const leasesVersion = 6

// nowSQL is the server's clock in milliseconds, the clock leases expire by.
// clock_timestamp, not now(): a transaction's start may be long past.
const nowSQL = `(extract(epoch FROM clock_timestamp()) * 1000)::bigint`

// backfillLeases gives the conversations made before the leases theirs:
// bridge.LeaseOf their platform and room, which SQL cannot compute.
func backfillLeases(ctx context.Context, tx pgx.Tx) error {
	rows, err := tx.Query(ctx, `SELECT DISTINCT platform, room FROM conversations WHERE lease = ''`)
	if err != nil {
		return err
	}
	rooms, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (bridge.RoomKey, error) {
		var r bridge.RoomKey
		var platform string
		err := row.Scan(&platform, &r.Room)
		r.Platform = bridge.Platform(platform)
		return r, err
	})
	if err != nil {
		return err
	}
	for _, r := range rooms {
		if _, err := tx.Exec(ctx, `UPDATE conversations SET lease = $1 WHERE platform = $2 AND room = $3 AND lease = ''`,
			bridge.LeaseOf(r), string(r.Platform), r.Room); err != nil {
			return err
		}
	}
	return nil
}

func scanLease(row pgx.Row) (bridge.Lease, error) {
	var (
		l       bridge.Lease
		expires int64
	)
	err := row.Scan(&l.Name, &l.Owner, &l.Token, &expires)
	l.Expires = fromMS(expires)
	return l, err
}

// TakeLeases implements bridge.Store, in one statement. A lease another
// process takes at the same moment makes the statement wait for it, and
// then skip the lease; the names are taken in order, so that two processes
// taking overlapping sets cannot deadlock.
func (db *DB) TakeLeases(ctx context.Context, owner string, names []string, ttl time.Duration) ([]bridge.Lease, error) {
	if owner == "" {
		return nil, errors.New("take leases: no owner")
	}
	names = slices.Compact(slices.Sorted(slices.Values(names)))
	if len(names) == 0 {
		return nil, nil
	}
	return queryRows(ctx, db, "take leases", scanLease, `WITH now AS (SELECT `+nowSQL+` AS ms)
		INSERT INTO leases (name, owner, token, expires_ms)
		SELECT n, $1, nextval('lease_tokens'), now.ms + $3 FROM unnest($2::text[]) WITH ORDINALITY AS u(n, i), now ORDER BY i
		ON CONFLICT (name) DO UPDATE SET
			owner = excluded.owner,
			token = CASE WHEN leases.owner = excluded.owner AND leases.expires_ms > (SELECT ms FROM now)
				THEN leases.token ELSE excluded.token END,
			expires_ms = excluded.expires_ms
		WHERE leases.owner = excluded.owner OR leases.expires_ms <= (SELECT ms FROM now)
		RETURNING name, owner, token, expires_ms`, owner, names, ttl.Milliseconds())
}

// ReleaseLeases implements bridge.Store.
func (db *DB) ReleaseLeases(ctx context.Context, owner string, names []string) error {
	_, err := db.exec(ctx, "release leases", `UPDATE leases SET expires_ms = 0 WHERE owner = $1 AND name = ANY($2)`, owner, names)
	return err
}

// Leases implements bridge.Store.
func (db *DB) Leases(ctx context.Context) ([]bridge.Lease, time.Time, error) {
	now, err := queryRow(ctx, db, "leases", scanOne[int64], `SELECT `+nowSQL)
	if err != nil {
		return nil, time.Time{}, err
	}
	ls, err := queryRows(ctx, db, "leases", scanLease, `SELECT name, owner, token, expires_ms FROM leases ORDER BY name`)
	if err != nil {
		return nil, time.Time{}, err
	}
	return ls, fromMS(now), nil
}

// fenceCTE returns the common table expressions "target", the lease of
// what a statement writes (target: a query of at most one row, with a
// column lease), and "fence", one row whose column held is true when the
// statement's token (parameter $n; NULL when the write has no fence) holds
// that lease now. The statement writes only where (SELECT held FROM
// fence), and reports held and whether target found the lease
// (fenceResult).
//
// The lease's row is locked FOR SHARE: a process that takes the lease over
// waits for the write to commit, and a write after a takeover sees the new
// token.
func fenceCTE(target string, n int) string {
	return fmt.Sprintf(`target AS (%[1]s), fence AS (
		SELECT $%[2]d::bigint IS NULL OR EXISTS (SELECT 1 FROM leases l, target
			WHERE l.name = target.lease AND l.token = $%[2]d AND l.expires_ms > %[3]s FOR SHARE OF l) AS held)`,
		target, n, nowSQL)
}

// fenceColumns are the columns a fenced statement reports, first:
// whether the fence held, and whether target found the lease.
const fenceColumns = `(SELECT held FROM fence), EXISTS (SELECT 1 FROM target WHERE lease IS NOT NULL)`

// The targets of fenceCTE: the lease of an inbound message ($1), of a
// delivery ($1), of a conversation ($1), and a lease named ($1).
const (
	inboundLease      = `SELECT c.lease FROM inbound i JOIN conversations c ON c.id = i.conversation WHERE i.id = $1`
	deliveryLease     = `SELECT c.lease FROM deliveries d JOIN conversations c ON c.id = d.conversation WHERE d.message_id = $1`
	conversationLease = `SELECT lease FROM conversations WHERE id = $1`
	namedLease        = `SELECT $1::text AS lease`
)

// token returns the argument of a fenced statement's token: the fence's,
// or NULL.
func token(ctx context.Context) any {
	if f, ok := bridge.FenceFrom(ctx); ok {
		return f.Token
	}
	return nil
}

// fenceResult turns what a fenced statement reported into its error: not
// found, fenced off, or nil.
func fenceResult(op string, held, found bool) error {
	switch {
	case !found:
		return fmt.Errorf("%s: %w", op, bridge.ErrNotFound)
	case !held:
		return fmt.Errorf("%s: %w", op, bridge.ErrFenced)
	}
	return nil
}

// scanFenced scans the fence columns and a count.
func scanFenced(row pgx.Row) (fenced, error) {
	var f fenced
	err := row.Scan(&f.held, &f.found, &f.n)
	return f, err
}

type fenced struct {
	held, found bool
	n           int64
}

// ClaimDelivery implements bridge.Store, in one statement.
func (db *DB) ClaimDelivery(ctx context.Context, id chat.MessageID) (bridge.Claim, error) {
	type claim struct {
		fenced
		pending, behind bool
		attempts        int
	}
	c, err := queryRow(ctx, db, "claim delivery", func(row pgx.Row) (claim, error) {
		var c claim
		err := row.Scan(&c.held, &c.found, &c.pending, &c.behind, &c.attempts)
		return c, err
	}, `WITH `+fenceCTE(deliveryLease, 2)+`, d AS (
			SELECT seq, platform, room, attempts FROM deliveries WHERE message_id = $1 AND state = 'pending'
		), behind AS (
			SELECT EXISTS (SELECT 1 FROM deliveries e, d WHERE e.platform = d.platform AND e.room = d.room
				AND e.state = 'pending' AND e.seq < d.seq) AS yes
		), claimed AS (
			UPDATE deliveries SET attempts = attempts + 1 WHERE message_id = $1 AND state = 'pending'
			AND (SELECT held FROM fence) AND NOT (SELECT yes FROM behind)
		)
		SELECT `+fenceColumns+`, EXISTS (SELECT 1 FROM d), (SELECT yes FROM behind), coalesce((SELECT attempts FROM d), 0)`,
		string(id), token(ctx))
	if err != nil {
		return bridge.Claim{}, err
	}
	if !c.pending {
		return bridge.Claim{}, fmt.Errorf("claim delivery: no pending delivery %s: %w", id, bridge.ErrNotFound)
	}
	if err := fenceResult("claim delivery "+string(id), c.held, c.found); err != nil {
		return bridge.Claim{}, err
	}
	return bridge.Claim{Attempts: c.attempts, Behind: c.behind}, nil
}

// PendingInboundIn implements bridge.Store.
func (db *DB) PendingInboundIn(ctx context.Context, leases []string, after int64, limit int) ([]bridge.OutboxItem, error) {
	return queryRows(ctx, db, "pending inbound", scanOutboxItem, `SELECT id, conversation, body, parts_sent, created_ms
		FROM inbound WHERE state = 'pending' AND id > $1
		AND (SELECT lease FROM conversations WHERE id = inbound.conversation) = ANY($2)
		ORDER BY id LIMIT $3`, after, nonNil(leases), limitArg(limit))
}

// PendingDeliveriesIn implements bridge.Store.
func (db *DB) PendingDeliveriesIn(ctx context.Context, leases []string, after int64, limit int) ([]bridge.Delivery, error) {
	return queryRows(ctx, db, "pending deliveries", scanDelivery, `SELECT `+deliveryColumns+` FROM deliveries
		WHERE state = 'pending' AND seq > $1
		AND (SELECT lease FROM conversations WHERE id = deliveries.conversation) = ANY($2)
		ORDER BY seq LIMIT $3`, after, nonNil(leases), limitArg(limit))
}

// ActiveConversationsIn implements bridge.Store.
func (db *DB) ActiveConversationsIn(ctx context.Context, leases []string, since time.Time) ([]bridge.Conversation, error) {
	return queryRows(ctx, db, "active conversations", scanConversation, `SELECT `+convColumns+` FROM conversations
		WHERE chat_id <> '' AND active_ms >= $1 AND lease = ANY($2)
		UNION
		SELECT `+convColumns+` FROM conversations
		WHERE chat_id <> '' AND id IN (SELECT conversation FROM deliveries WHERE state = 'pending') AND lease = ANY($2)
		ORDER BY id`, ms(since), nonNil(leases))
}

// nonNil returns names, an empty list for nil (which pgx sends as NULL).
func nonNil(names []string) []string {
	if names == nil {
		return []string{}
	}
	return names
}
