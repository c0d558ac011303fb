package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/botbridge/botbridge/bridge"
	"github.com/botbridge/botbridge/chat"
	"github.com/botbridge/botbridge/store/internal/form"
)

const deliveryColumns = `seq, message_id, conversation, bot, platform, room, thread, reply_message, reply_user,
	payload, platform_id, created_ms, received_ms, ephemeral`

func scanDelivery(row pgx.Row) (bridge.Delivery, error) {
	var (
		d                     bridge.Delivery
		msgID, platform       string
		payload, posted       string
		createdMS, receivedMS int64
	)
	err := row.Scan(&d.Seq, &msgID, &d.Conversation, &d.Bot, &platform, &d.Target.Room.Room, &d.Target.Room.Thread,
		&d.Target.MessageID, &d.Target.UserID, &payload, &posted, &createdMS, &receivedMS, &d.Target.Ephemeral)
	if err != nil {
		return d, err
	}
	d.MessageID = chat.MessageID(msgID)
	d.Target.Room.Platform = bridge.Platform(platform)
	d.CreatedAt = fromMS(createdMS)
	d.ReceivedAt = fromMS(receivedMS)
	if d.Posted, err = form.DecodeParts(posted); err != nil {
		return d, fmt.Errorf("delivery %s: %w: stored platform ids do not decode: %v", msgID, bridge.ErrStore, err)
	}
	if d.Payload, err = chat.DecodePayload([]byte(payload)); err != nil {
		return d, fmt.Errorf("delivery %s: %w: stored payload does not decode: %v", msgID, bridge.ErrStore, err)
	}
	return d, nil
}

// addDeliverySQL stores a delivery ($1 message id, $2 conversation) and
// moves its conversation's cursor, in one statement. Without a target room
// ($5 empty), it goes to the conversation's reply target, else its room. It
// returns no row when the message was stored before (by this process or
// another at the same moment: ON CONFLICT waits for it) or the
// conversation does not exist.
const addDeliverySQL = `WITH conv AS (
	SELECT id, platform, room, thread, reply_room, reply_thread, reply_message, reply_user, reply_ephemeral
	FROM conversations WHERE id = $2
), stored AS (
	INSERT INTO deliveries (message_id, conversation, bot, platform, room, thread, reply_message, reply_user,
		payload, created_ms, received_ms, ephemeral)
	SELECT $1, conv.id, $3,
		CASE WHEN $5::text <> '' THEN $4 ELSE conv.platform END,
		CASE WHEN $5::text <> '' THEN $5 WHEN conv.reply_room <> '' THEN conv.reply_room ELSE conv.room END,
		CASE WHEN $5::text <> '' THEN $6 WHEN conv.reply_room <> '' THEN conv.reply_thread ELSE conv.thread END,
		CASE WHEN $5::text <> '' THEN $7 ELSE conv.reply_message END,
		CASE WHEN $5::text <> '' THEN $8 ELSE conv.reply_user END,
		$9, $10, $11,
		CASE WHEN $5::text <> '' THEN $12 ELSE conv.reply_ephemeral END
	FROM conv
	ON CONFLICT (message_id) DO NOTHING
	RETURNING seq, conversation, platform, room, thread, reply_message, reply_user, ephemeral
), moved AS (
	UPDATE conversations SET cursor_ms = greatest(cursor_ms, $10), active_ms = $11
	WHERE id IN (SELECT conversation FROM stored)
)
SELECT seq, platform, room, thread, reply_message, reply_user, ephemeral FROM stored`

// AddDelivery implements bridge.Store. Of two processes storing the same
// message at once, one stores it and the other returns what it stored. It
// claims nothing: two transactions storing replies of one room at once
// would each find no earlier one pending, and both claim.
func (db *DB) AddDelivery(ctx context.Context, d bridge.Delivery) (bridge.Delivery, bool, error) {
	if d.MessageID == "" || d.Payload == nil {
		return d, false, errors.New("add delivery: message id and payload are required")
	}
	payload, err := json.Marshal(d.Payload)
	if err != nil {
		return d, false, fmt.Errorf("add delivery %s: %w", d.MessageID, err)
	}
	if d.ReceivedAt.IsZero() {
		d.ReceivedAt = db.Now()
	}
	// The store keeps milliseconds; the caller gets what a read returns.
	d.CreatedAt, d.ReceivedAt = fromMS(ms(d.CreatedAt)), fromMS(ms(d.ReceivedAt))
	t := d.Target
	if t.Room.Room == "" {
		t = bridge.ReplyTarget{}
	}
	created := false
	err = db.run(ctx, "add delivery", nil, func(ctx context.Context) error {
		var platform string
		out := d
		err := db.pool.QueryRow(ctx, addDeliverySQL, string(d.MessageID), d.Conversation, d.Bot,
			string(t.Room.Platform), t.Room.Room, t.Room.Thread, t.MessageID, t.UserID,
			string(payload), ms(d.CreatedAt), ms(d.ReceivedAt), t.Ephemeral).
			Scan(&out.Seq, &platform, &out.Target.Room.Room, &out.Target.Room.Thread, &out.Target.MessageID, &out.Target.UserID,
				&out.Target.Ephemeral)
		if err == nil {
			out.Target.Room.Platform = bridge.Platform(platform)
			d, created = out, true
			return nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		stored, err := scanDelivery(db.pool.QueryRow(ctx, `SELECT `+deliveryColumns+` FROM deliveries WHERE message_id = $1`, string(d.MessageID)))
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("conversation %d: %w", d.Conversation, bridge.ErrNotFound)
		}
		if err == nil {
			d = stored
		}
		return err
	})
	if err != nil {
		return d, false, err
	}
	return d, created, nil
}

// insertDelivery stores a new delivery in tx (the notice of a reset) and
// returns it as a read would.
func (db *DB) insertDelivery(ctx context.Context, tx pgx.Tx, d bridge.Delivery) (bridge.Delivery, error) {
	payload, err := json.Marshal(d.Payload)
	if err != nil {
		return d, fmt.Errorf("delivery %s: %w", d.MessageID, err)
	}
	if d.ReceivedAt.IsZero() {
		d.ReceivedAt = db.Now()
	}
	d.CreatedAt, d.ReceivedAt = fromMS(ms(d.CreatedAt)), fromMS(ms(d.ReceivedAt))
	dt := d.Target
	err = tx.QueryRow(ctx, `INSERT INTO deliveries (message_id, conversation, bot, platform, room, thread,
		reply_message, reply_user, payload, created_ms, received_ms, ephemeral)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING seq`,
		string(d.MessageID), d.Conversation, d.Bot, string(dt.Room.Platform), dt.Room.Room, dt.Room.Thread,
		dt.MessageID, dt.UserID, string(payload), ms(d.CreatedAt), ms(d.ReceivedAt), dt.Ephemeral).Scan(&d.Seq)
	return d, err
}

// PendingDeliveries implements bridge.Store.
func (db *DB) PendingDeliveries(ctx context.Context, limit int) ([]bridge.Delivery, error) {
	return queryRows(ctx, db, "pending deliveries", scanDelivery, `SELECT `+deliveryColumns+` FROM deliveries
		WHERE state = 'pending' ORDER BY seq LIMIT $1`, limitArg(limit))
}

// Delivery implements bridge.Store.
func (db *DB) Delivery(ctx context.Context, id chat.MessageID) (bridge.Delivery, error) {
	return queryRow(ctx, db, "delivery "+string(id), scanDelivery,
		`SELECT `+deliveryColumns+` FROM deliveries WHERE message_id = $1`, string(id))
}

// MarkDelivered implements bridge.Store.
func (db *DB) MarkDelivered(ctx context.Context, id chat.MessageID, posted bridge.Parts) error {
	return db.finishDelivery(ctx, "mark delivered", markDeliveredSQL, id, form.EncodeParts(posted))
}

// markDeliveredSQL records delivery $1 posted, with its platform ids ($2)
// and the time ($3), under the CTE fence.
const markDeliveredSQL = `UPDATE deliveries SET state = 'posted', platform_id = $2, done_ms = $3
	WHERE message_id = $1 AND state = 'pending' AND (SELECT held FROM fence) RETURNING 1`

// MarkDeliveredAndClaim implements bridge.Store, in one statement: the
// claim of next sees the delivery marked as still pending (one snapshot),
// so its wait behind an earlier delivery leaves that one out, and it claims
// only under the fence of the mark, next being of the same lease.
func (db *DB) MarkDeliveredAndClaim(ctx context.Context, id chat.MessageID, posted bridge.Parts, next chat.MessageID) (bridge.Claim, bool, error) {
	const op = "mark delivered"
	type result struct {
		fenced
		claimed  bool
		attempts int
	}
	r, err := queryRow(ctx, db, op, func(row pgx.Row) (result, error) {
		var r result
		err := row.Scan(&r.held, &r.found, &r.n, &r.claimed, &r.attempts)
		return r, err
	}, `WITH `+fenceCTE(deliveryLease, 5)+`, done AS (`+markDeliveredSQL+`), claimed AS (
			UPDATE deliveries SET attempts = attempts + 1 WHERE message_id = $4 AND state = 'pending'
			AND EXISTS (SELECT 1 FROM done)
			AND (SELECT lease FROM conversations WHERE id = deliveries.conversation) = (SELECT lease FROM target)
			AND NOT EXISTS (SELECT 1 FROM deliveries e WHERE e.platform = deliveries.platform AND e.room = deliveries.room
				AND e.state = 'pending' AND e.seq < deliveries.seq AND e.message_id <> $1)
			RETURNING attempts - 1 AS before
		)
		SELECT `+fenceColumns+`, (SELECT count(*) FROM done), EXISTS (SELECT 1 FROM claimed),
			coalesce((SELECT before FROM claimed), 0)`,
		string(id), form.EncodeParts(posted), ms(db.Now()), string(next), token(ctx))
	if err == nil {
		err = finished(op, id, r.fenced)
	}
	if err != nil {
		return bridge.Claim{}, false, err
	}
	return bridge.Claim{Attempts: r.attempts}, r.claimed, nil
}

// FailDelivery implements bridge.Store.
func (db *DB) FailDelivery(ctx context.Context, id chat.MessageID, reason string) error {
	return db.finishDelivery(ctx, "fail delivery", `UPDATE deliveries SET state = 'failed', error = $2, done_ms = $3
		WHERE message_id = $1 AND state = 'pending' AND (SELECT held FROM fence) RETURNING 1`, id, Storable(reason))
}

// finishDelivery runs update (which refers to the CTE fence) on the pending
// delivery id, with arg and the time, fenced; of two processes finishing it
// at once, one succeeds and the other finds it finished.
func (db *DB) finishDelivery(ctx context.Context, op, update string, id chat.MessageID, arg string) error {
	f, err := queryRow(ctx, db, op, scanFenced, `WITH `+fenceCTE(deliveryLease, 4)+`, done AS (`+update+`)
		SELECT `+fenceColumns+`, (SELECT count(*) FROM done)`, string(id), arg, ms(db.Now()), token(ctx))
	if err != nil {
		return err
	}
	return finished(op, id, f)
}

// finished tells what the fenced record of delivery id reported: nil when
// it changed the delivery, else why not (not found, fenced off, not
// pending).
func finished(op string, id chat.MessageID, f fenced) error {
	if !f.found {
		return fmt.Errorf("%s: no delivery %s: %w", op, id, bridge.ErrNotFound)
	}
	if err := fenceResult(op+" "+string(id), f.held, f.found); err != nil {
		return err
	}
	if f.n == 0 {
		return fmt.Errorf("%s: no pending delivery %s: %w", op, id, bridge.ErrNotFound)
	}
	return nil
}

// pruneBatch bounds the rows one statement of Prune deletes, so that a
// large prune holds no locks for long.
const pruneBatch = 1000

// Prune implements bridge.Store. It deletes in statements of at most
// pruneBatch rows: finished messages, expired offers, then (with
// before.Idle) idle conversations and what only they used. A conversation
// that another process is adding a message to is skipped (SKIP LOCKED), and
// one that gets a message while it is being deleted is kept (the foreign
// key refuses; the batch runs again).
func (db *DB) Prune(ctx context.Context, before bridge.PruneBefore) (int64, error) {
	now := ms(db.Now())
	type step struct {
		name, query string
		args        []any
	}
	steps := []step{
		{"inbound", `DELETE FROM inbound WHERE id IN
			(SELECT id FROM inbound WHERE state <> 'pending' AND done_ms < $1 LIMIT $2)`, []any{ms(before.Finished)}},
		{"deliveries", `DELETE FROM deliveries WHERE seq IN
			(SELECT seq FROM deliveries WHERE state <> 'pending' AND done_ms < $1 LIMIT $2)`, []any{ms(before.Finished)}},
		{"offers", `DELETE FROM offers WHERE (platform, room, thread) IN
			(SELECT platform, room, thread FROM offers WHERE expires_ms <= $1 LIMIT $2)`, []any{now}},
		// The presence of processes gone since then (tokens come from a
		// sequence; the SQLite store keeps the highest token's row, and so
		// does this one).
		{"leases", `DELETE FROM leases WHERE name IN
			(SELECT name FROM leases WHERE name LIKE 'replica:%' AND expires_ms < $1
			AND token < (SELECT max(token) FROM leases) LIMIT $2)`, []any{ms(before.Finished)}},
	}
	if !before.Idle.IsZero() {
		idle := ms(before.Idle)
		steps = append(steps,
			step{"conversations", `DELETE FROM conversations WHERE id IN
				(SELECT id FROM conversations c WHERE active_ms < $1
				AND NOT EXISTS (SELECT 1 FROM inbound WHERE conversation = c.id)
				AND NOT EXISTS (SELECT 1 FROM deliveries WHERE conversation = c.id)
				LIMIT $2 FOR UPDATE SKIP LOCKED)`, []any{idle}},
			step{"threads", `DELETE FROM threads WHERE (bot, platform, room, thread) IN
				(SELECT bot, platform, room, thread FROM threads t WHERE created_ms < $1
				AND NOT EXISTS (SELECT 1 FROM conversations WHERE bot = t.bot AND platform = t.platform
					AND room = t.room AND active_ms >= $1) LIMIT $2)`, []any{idle}},
			step{"users", `DELETE FROM users WHERE (bot, platform, platform_id) IN
				(SELECT bot, platform, platform_id FROM users u WHERE updated_ms < $1 AND platform <> 'botbridge'
				AND NOT EXISTS (SELECT 1 FROM participants WHERE chat_user = u.chat_id) LIMIT $2)`, []any{idle}},
		)
	}
	var total int64
	for _, s := range steps {
		for {
			var n int64
			err := db.run(ctx, "prune "+s.name, missingReference, func(ctx context.Context) error {
				tag, err := db.pool.Exec(ctx, s.query, append(s.args, pruneBatch)...)
				n = tag.RowsAffected()
				return err
			})
			total += n
			if err != nil {
				return total, err
			}
			if n < pruneBatch {
				break
			}
		}
	}
	return total, nil
}
