package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/botbridge/botbridge/bridge"
	"github.com/botbridge/botbridge/chat"
)

// The SQLite store is one process's, which holds every lease; the leases
// work as on a shared store all the same (see bridge/lease.go), so that the
// code path is one.

// leasesVersion is the migration that adds the leases.
const leasesVersion = 6

// nowMS is SQLite's clock in milliseconds, the clock leases expire by.
const nowMS = `CAST(unixepoch('subsec') * 1000 AS INTEGER)`

// backfillLeases gives the conversations made before the leases theirs:
// bridge.LeaseOf their platform and room, which SQL cannot compute.
func backfillLeases(ctx context.Context, tx *sql.Tx) error {
	rows, err := tx.QueryContext(ctx, `SELECT DISTINCT platform, room FROM conversations WHERE lease = ''`)
	if err != nil {
		return err
	}
	var rooms []bridge.RoomKey
	for rows.Next() {
		var r bridge.RoomKey
		var platform string
		if err := rows.Scan(&platform, &r.Room); err != nil {
			rows.Close()
			return err
		}
		r.Platform = bridge.Platform(platform)
		rooms = append(rooms, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, r := range rooms {
		if _, err := tx.ExecContext(ctx, `UPDATE conversations SET lease = ? WHERE platform = ? AND room = ? AND lease = ''`,
			bridge.LeaseOf(r), string(r.Platform), r.Room); err != nil {
			return err
		}
	}
	return nil
}

// TakeLeases implements bridge.Store.
func (db *DB) TakeLeases(ctx context.Context, owner string, names []string, ttl time.Duration) ([]bridge.Lease, error) {
	if owner == "" {
		return nil, errors.New("take leases: no owner")
	}
	names = slices.Compact(slices.Sorted(slices.Values(names)))
	var out []bridge.Lease
	err := db.tx(ctx, "take leases", func(t *txn) error {
		out = out[:0]
		var now, last int64
		if err := t.queryRow(`SELECT `+nowMS+`, coalesce(max(token), 0) FROM leases`).Scan(&now, &last); err != nil {
			return err
		}
		expires := now + ttl.Milliseconds()
		for _, name := range names {
			var (
				held          string
				token, expiry int64
			)
			err := t.queryRow(`SELECT owner, token, expires_ms FROM leases WHERE name = ?`, name).Scan(&held, &token, &expiry)
			switch {
			case errors.Is(err, sql.ErrNoRows):
				last++
				token = last
				_, err = t.exec(`INSERT INTO leases (name, owner, token, expires_ms) VALUES (?, ?, ?, ?)`, name, owner, token, expires)
			case err != nil:
			case held == owner && expiry > now:
				_, err = t.exec(`UPDATE leases SET expires_ms = ? WHERE name = ?`, expires, name)
			case expiry <= now:
				last++
				token = last
				_, err = t.exec(`UPDATE leases SET owner = ?, token = ?, expires_ms = ? WHERE name = ?`, owner, token, expires, name)
			default:
				continue // another's
			}
			if err != nil {
				return err
			}
			out = append(out, bridge.Lease{Name: name, Owner: owner, Token: token, Expires: fromMS(expires)})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ReleaseLeases implements bridge.Store. A released lease keeps its row
// (and its token, the highest perhaps), expired.
func (db *DB) ReleaseLeases(ctx context.Context, owner string, names []string) error {
	return db.tx(ctx, "release leases", func(t *txn) error {
		for _, name := range names {
			if _, err := t.exec(`UPDATE leases SET expires_ms = 0 WHERE name = ? AND owner = ?`, name, owner); err != nil {
				return err
			}
		}
		return nil
	})
}

// Leases implements bridge.Store.
func (db *DB) Leases(ctx context.Context) ([]bridge.Lease, time.Time, error) {
	var now int64
	if err := db.queryRow(ctx, `SELECT `+nowMS).Scan(&now); err != nil {
		return nil, time.Time{}, wrap("leases", err)
	}
	rows, err := db.query(ctx, `SELECT name, owner, token, expires_ms FROM leases ORDER BY name`)
	if err != nil {
		return nil, time.Time{}, wrap("leases", err)
	}
	defer rows.Close()
	var out []bridge.Lease
	for rows.Next() {
		var (
			l       bridge.Lease
			expires int64
		)
		if err := rows.Scan(&l.Name, &l.Owner, &l.Token, &expires); err != nil {
			return nil, time.Time{}, wrap("leases", err)
		}
		l.Expires = fromMS(expires)
		out = append(out, l)
	}
	if err := rows.Err(); err != nil {
		return nil, time.Time{}, wrap("leases", err)
	}
	return out, fromMS(now), nil
}

// fenced checks, in t, the fence of t's context, if any: target is a query
// of one row and column, the name of the lease of what t writes, with args.
// It fails with bridge.ErrFenced when the fence's token does not hold that
// lease now, and with sql.ErrNoRows when target finds nothing.
func fenced(t *txn, target string, args ...any) error {
	f, ok := bridge.FenceFrom(t.ctx)
	if !ok {
		return nil
	}
	var (
		lease sql.NullString
		held  bool
	)
	err := t.queryRow(`SELECT l, EXISTS (SELECT 1 FROM leases WHERE name = l AND token = ? AND expires_ms > `+nowMS+`)
		FROM (SELECT (`+target+`) AS l)`, append([]any{f.Token}, args...)...).Scan(&lease, &held)
	switch {
	case err != nil:
		return err
	case !lease.Valid:
		return sql.ErrNoRows
	case !held:
		return fmt.Errorf("lease %s is not held with token %d: %w", lease.String, f.Token, bridge.ErrFenced)
	}
	return nil
}

// fencedWrite is a write statement whose WHERE ends with the check of the
// fence, if ctx carries one, in the statement itself: one statement where
// fenced and then the write would be two. When it changes no row, fenced
// tells why (not found, or fenced off), which is rare.
type fencedWrite struct {
	plain, fenced string
}

// fenceable returns the fencedWrite of query, whose WHERE ends with
// "$fence" (the fence's token is the last argument): lease is an SQL
// expression of the name of the lease of the row written.
func fenceable(query, lease string) fencedWrite {
	return fencedWrite{
		plain: strings.Replace(query, "$fence", "", 1),
		fenced: strings.Replace(query, "$fence", `AND EXISTS (SELECT 1 FROM leases WHERE name = (`+lease+`)
			AND token = ? AND expires_ms > `+nowMS+`)`, 1),
	}
}

// in returns the statement for t's context and its arguments: args, and
// the fence's token when t's context carries a fence.
func (w fencedWrite) in(t *txn, args ...any) (string, []any) {
	f, ok := bridge.FenceFrom(t.ctx)
	if !ok {
		return w.plain, args
	}
	return w.fenced, append(args, f.Token)
}

// The leases of the row an UPDATE of inbound or deliveries writes, for
// fenceable.
const (
	inboundRowLease  = `SELECT lease FROM conversations WHERE id = inbound.conversation`
	deliveryRowLease = `SELECT lease FROM conversations WHERE id = deliveries.conversation`
)

// The targets of fenced: the lease of an inbound message, of a delivery,
// of a conversation, and a lease named.
const (
	inboundLease      = `SELECT c.lease FROM inbound i JOIN conversations c ON c.id = i.conversation WHERE i.id = ?`
	deliveryLease     = `SELECT c.lease FROM deliveries d JOIN conversations c ON c.id = d.conversation WHERE d.message_id = ?`
	conversationLease = `SELECT lease FROM conversations WHERE id = ?`
	namedLease        = `SELECT ?`
)

// claimSQL claims a delivery in one statement when it is pending, no
// earlier delivery of its room waits, and the fence (if any) holds; it
// returns the attempts before the claim.
var claimSQL = fenceable(`UPDATE deliveries SET attempts = attempts + 1 WHERE message_id = ? AND state = 'pending'
	AND NOT EXISTS (SELECT 1 FROM deliveries e WHERE e.platform = deliveries.platform AND e.room = deliveries.room
		AND e.state = 'pending' AND e.seq < deliveries.seq)
	$fence RETURNING attempts - 1`, deliveryRowLease)

// claimIn claims delivery id in t with claimSQL and returns the attempts
// before the claim; claimed is false when it claimed nothing.
func claimIn(t *txn, id chat.MessageID) (attempts int, claimed bool, err error) {
	q, args := claimSQL.in(t, string(id))
	switch err := t.queryRow(q, args...).Scan(&attempts); {
	case errors.Is(err, sql.ErrNoRows):
		return 0, false, nil
	case err != nil:
		return 0, false, err
	}
	return attempts, true, nil
}

// ClaimDelivery implements bridge.Store. The usual claim is one statement;
// when it claims nothing, the delivery is read step by step to tell why.
func (db *DB) ClaimDelivery(ctx context.Context, id chat.MessageID) (bridge.Claim, error) {
	var c bridge.Claim
	err := db.tx(ctx, "claim delivery", func(t *txn) error {
		c = bridge.Claim{}
		attempts, claimed, err := claimIn(t, id)
		if err != nil || claimed {
			c.Attempts = attempts
			return err
		}
		// Nothing claimed: the delivery is not pending, is fenced off, or
		// waits behind another; the claim in steps says which.
		var (
			seq            int64
			platform, room string
		)
		err = t.queryRow(`SELECT seq, platform, room, attempts FROM deliveries WHERE message_id = ? AND state = 'pending'`,
			string(id)).Scan(&seq, &platform, &room, &c.Attempts)
		if err != nil {
			return err
		}
		if err := fenced(t, deliveryLease, string(id)); err != nil {
			return err
		}
		if err := t.queryRow(`SELECT EXISTS (SELECT 1 FROM deliveries WHERE platform = ? AND room = ? AND state = 'pending' AND seq < ?)`,
			platform, room, seq).Scan(&c.Behind); err != nil || c.Behind {
			return err
		}
		_, err = t.exec(`UPDATE deliveries SET attempts = attempts + 1 WHERE message_id = ?`, string(id))
		return err
	})
	if err != nil {
		return bridge.Claim{}, err
	}
	return c, nil
}

// leaseList is the argument of "IN (SELECT value FROM json_each(?))" for
// a list of lease names.
func leaseList(leases []string) string {
	if leases == nil {
		leases = []string{}
	}
	b, _ := json.Marshal(leases)
	return string(b)
}

// PendingInboundIn implements bridge.Store.
func (db *DB) PendingInboundIn(ctx context.Context, leases []string, after int64, limit int) ([]bridge.OutboxItem, error) {
	if limit <= 0 {
		limit = -1
	}
	rows, err := db.query(ctx, `SELECT id, conversation, body, parts_sent, created_ms FROM inbound INDEXED BY inbound_pending
		WHERE state = 'pending' AND id > ?
		AND (SELECT lease FROM conversations WHERE id = inbound.conversation) IN (SELECT value FROM json_each(?))
		ORDER BY id LIMIT ?`, after, leaseList(leases), limit)
	if err != nil {
		return nil, wrap("pending inbound", err)
	}
	defer rows.Close()
	var out []bridge.OutboxItem
	for rows.Next() {
		it, err := scanOutboxItem(rows)
		if err != nil {
			return nil, wrap("pending inbound", err)
		}
		out = append(out, it)
	}
	return out, wrap("pending inbound", rows.Err())
}

// PendingDeliveriesIn implements bridge.Store.
func (db *DB) PendingDeliveriesIn(ctx context.Context, leases []string, after int64, limit int) ([]bridge.Delivery, error) {
	if limit <= 0 {
		limit = -1
	}
	rows, err := db.query(ctx, `SELECT `+deliveryColumns+` FROM deliveries WHERE state = 'pending' AND seq > ?
		AND (SELECT lease FROM conversations WHERE id = deliveries.conversation) IN (SELECT value FROM json_each(?))
		ORDER BY seq LIMIT ?`, after, leaseList(leases), limit)
	if err != nil {
		return nil, wrap("pending deliveries", err)
	}
	defer rows.Close()
	var out []bridge.Delivery
	for rows.Next() {
		d, err := scanDelivery(rows)
		if err != nil {
			return nil, wrap("pending deliveries", err)
		}
		out = append(out, d)
	}
	return out, wrap("pending deliveries", rows.Err())
}

// ActiveConversationsIn implements bridge.Store.
func (db *DB) ActiveConversationsIn(ctx context.Context, leases []string, since time.Time) ([]bridge.Conversation, error) {
	list := leaseList(leases)
	rows, err := db.query(ctx, `SELECT `+convColumns+` FROM conversations INDEXED BY conversations_active
		WHERE chat_id <> '' AND active_ms >= ? AND lease IN (SELECT value FROM json_each(?))
		UNION
		SELECT `+convColumns+` FROM conversations
		WHERE chat_id <> '' AND id IN (SELECT conversation FROM deliveries WHERE state = 'pending')
		AND lease IN (SELECT value FROM json_each(?))
		ORDER BY id`, ms(since), list, list)
	if err != nil {
		return nil, wrap("active conversations", err)
	}
	defer rows.Close()
	var out []bridge.Conversation
	for rows.Next() {
		c, err := scanConversation(rows)
		if err != nil {
			return nil, wrap("active conversations", err)
		}
		out = append(out, c)
	}
	return out, wrap("active conversations", rows.Err())
}
