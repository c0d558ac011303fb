package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/botbridge/botbridge/bridge"
	"github.com/botbridge/botbridge/chat"
	"github.com/botbridge/botbridge/store/internal/form"
)

const deliveryColumns = `seq, message_id, conversation, bot, platform, room, thread, reply_message, reply_user,
	payload, platform_id, created_ms, received_ms, ephemeral`

func scanDelivery(s scanner) (bridge.Delivery, error) {
	var (
		d                     bridge.Delivery
		msgID, platform       string
		payload               []byte
		posted                string
		createdMS, receivedMS int64
	)
	err := s.Scan(&d.Seq, &msgID, &d.Conversation, &d.Bot, &platform, &d.Target.Room.Room, &d.Target.Room.Thread,
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
	if d.Payload, err = chat.DecodePayload(payload); err != nil {
		return d, fmt.Errorf("delivery %s: %w: stored payload does not decode: %v", msgID, bridge.ErrStore, err)
	}
	return d, nil
}

// AddDelivery implements bridge.Store. It inserts first and reads the
// delivery stored before only when the insert finds one. Under a fence it
// claims what it created when it can (claimSQL): the writer runs one
// transaction at a time, so an earlier delivery of the room is either
// committed, or stored before in this one.
func (db *DB) AddDelivery(ctx context.Context, d bridge.Delivery) (bridge.Delivery, bool, error) {
	if d.MessageID == "" || d.Payload == nil {
		return d, false, errors.New("add delivery: message id and payload are required")
	}
	created := false
	err := db.tx(ctx, "add delivery", func(t *txn) error {
		d.Claimed = false
		stored := func() error {
			existing, err := scanDelivery(t.queryRow(`SELECT `+deliveryColumns+` FROM deliveries WHERE message_id = ?`, string(d.MessageID)))
			if err == nil {
				d = existing
			}
			return err
		}
		add := d
		if add.Target.Room.Room == "" {
			// Where the conversation's replies go: its reply target, else its
			// room.
			var platform, room, thread, replyRoom, replyThread string
			err := t.queryRow(`SELECT platform, room, thread, reply_room, reply_thread, reply_message, reply_user, reply_ephemeral
				FROM conversations WHERE id = ?`, add.Conversation).Scan(&platform, &room, &thread, &replyRoom, &replyThread,
				&add.Target.MessageID, &add.Target.UserID, &add.Target.Ephemeral)
			if errors.Is(err, sql.ErrNoRows) {
				if err := stored(); !errors.Is(err, sql.ErrNoRows) {
					return err
				}
			}
			if err != nil {
				return err
			}
			add.Target.Room = bridge.RoomKey{Platform: bridge.Platform(platform), Room: replyRoom, Thread: replyThread}
			if replyRoom == "" {
				add.Target.Room.Room, add.Target.Room.Thread = room, thread
			}
		}
		add, inserted, err := db.insertDelivery(t, add, true)
		if err != nil {
			return err
		}
		if !inserted {
			return stored()
		}
		d = add
		if _, err := t.exec(`UPDATE conversations SET cursor_ms = max(cursor_ms, ?), active_ms = ? WHERE id = ?`,
			ms(d.CreatedAt), ms(d.ReceivedAt), d.Conversation); err != nil {
			return err
		}
		if _, fenced := bridge.FenceFrom(t.ctx); fenced {
			var err error
			if _, d.Claimed, err = claimIn(t, d.MessageID); err != nil {
				return err
			}
		}
		created = true
		return nil
	})
	if err != nil {
		return d, false, err
	}
	return d, created, nil
}

// insertDelivery stores a new delivery and returns it as a read would.
// With ifNew, a delivery of the same message id stored before is left as
// it is, and inserted is false.
func (db *DB) insertDelivery(t *txn, d bridge.Delivery, ifNew bool) (_ bridge.Delivery, inserted bool, _ error) {
	payload, err := json.Marshal(d.Payload)
	if err != nil {
		return d, false, fmt.Errorf("delivery %s: %w", d.MessageID, err)
	}
	if d.ReceivedAt.IsZero() {
		d.ReceivedAt = db.Now()
	}
	// The store keeps milliseconds; the caller gets what a read returns.
	d.CreatedAt, d.ReceivedAt = fromMS(ms(d.CreatedAt)), fromMS(ms(d.ReceivedAt))
	dt := d.Target
	query := insertDeliverySQL
	if ifNew {
		query = insertNewDeliverySQL
	}
	err = t.queryRow(query, string(d.MessageID), d.Conversation, d.Bot, string(dt.Room.Platform), dt.Room.Room, dt.Room.Thread,
		dt.MessageID, dt.UserID, payload, ms(d.CreatedAt), ms(d.ReceivedAt), dt.Ephemeral).Scan(&d.Seq)
	if ifNew && errors.Is(err, sql.ErrNoRows) {
		return d, false, nil
	}
	return d, err == nil, err
}

const (
	deliveryInsert = `INSERT INTO deliveries (message_id, conversation, bot, platform, room, thread,
		reply_message, reply_user, payload, created_ms, received_ms, ephemeral) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	insertDeliverySQL    = deliveryInsert + ` RETURNING seq`
	insertNewDeliverySQL = deliveryInsert + ` ON CONFLICT (message_id) DO NOTHING RETURNING seq`
)

// PendingDeliveries implements bridge.Store.
func (db *DB) PendingDeliveries(ctx context.Context, limit int) ([]bridge.Delivery, error) {
	if limit <= 0 {
		limit = -1
	}
	rows, err := db.query(ctx, `SELECT `+deliveryColumns+` FROM deliveries WHERE state = 'pending'
		ORDER BY seq LIMIT ?`, limit)
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

// Delivery implements bridge.Store.
func (db *DB) Delivery(ctx context.Context, id chat.MessageID) (bridge.Delivery, error) {
	d, err := scanDelivery(db.queryRow(ctx, `SELECT `+deliveryColumns+` FROM deliveries WHERE message_id = ?`, string(id)))
	if err != nil {
		return d, wrap("delivery "+string(id), err)
	}
	return d, nil
}

// The records of what became of a pending delivery (message_id, last
// argument before the fence's token).
var (
	markDeliveredSQL = fenceable(`UPDATE deliveries SET state = 'posted', platform_id = ?, done_ms = ?
		WHERE message_id = ? AND state = 'pending' $fence`, deliveryRowLease)
	failDeliverySQL = fenceable(`UPDATE deliveries SET state = 'failed', error = ?, done_ms = ?
		WHERE message_id = ? AND state = 'pending' $fence`, deliveryRowLease)
)

// MarkDelivered implements bridge.Store.
func (db *DB) MarkDelivered(ctx context.Context, id chat.MessageID, posted bridge.Parts) error {
	return db.updateDelivery(ctx, "mark delivered", id, markDeliveredSQL, form.EncodeParts(posted), ms(db.Now()), string(id))
}

// FailDelivery implements bridge.Store.
func (db *DB) FailDelivery(ctx context.Context, id chat.MessageID, reason string) error {
	return db.updateDelivery(ctx, "fail delivery", id, failDeliverySQL, reason, ms(db.Now()), string(id))
}

// MarkDeliveredAndClaim implements bridge.Store: the mark and the claim in
// one transaction, the claim in one statement (claimSQL), which claims
// nothing when ClaimDelivery would not.
func (db *DB) MarkDeliveredAndClaim(ctx context.Context, id chat.MessageID, posted bridge.Parts, next chat.MessageID) (bridge.Claim, bool, error) {
	var (
		c       bridge.Claim
		claimed bool
	)
	err := db.tx(ctx, "mark delivered", func(t *txn) error {
		c, claimed = bridge.Claim{}, false
		if err := finishDelivery(t, "mark delivered", id, markDeliveredSQL, form.EncodeParts(posted), ms(db.Now()), string(id)); err != nil {
			return err
		}
		var err error
		c.Attempts, claimed, err = claimIn(t, next)
		return err
	})
	if err != nil {
		return bridge.Claim{}, false, err
	}
	return c, claimed, nil
}

// updateDelivery runs w, the record of what became of delivery id, in a
// transaction of its own (see finishDelivery).
func (db *DB) updateDelivery(ctx context.Context, op string, id chat.MessageID, w fencedWrite, args ...any) error {
	return db.tx(ctx, op, func(t *txn) error { return finishDelivery(t, op, id, w, args...) })
}

// finishDelivery runs w, the record of what became of delivery id, fenced
// in the statement; when it changes nothing, it tells the delivery missing
// or fenced off from one not pending.
func finishDelivery(t *txn, op string, id chat.MessageID, w fencedWrite, args ...any) error {
	q, args := w.in(t, args...)
	res, err := t.exec(q, args...)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n > 0 {
		return nil
	}
	if err := fenced(t, deliveryLease, string(id)); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%s: no delivery %s: %w", op, id, bridge.ErrNotFound)
		}
		return err
	}
	return fmt.Errorf("%s: no pending delivery %s: %w", op, id, bridge.ErrNotFound)
}

// pruneBatch bounds the rows one transaction of Prune deletes. Deleting a
// million rows at once holds the write connection for seconds, in which no
// inbound event can be stored and acknowledged.
const pruneBatch = 1000

// Prune implements bridge.Store. It deletes in transactions of at most
// pruneBatch rows, so that other writes go on in between: finished messages,
// expired offers, then (with before.Idle) idle conversations and what only
// they used.
func (db *DB) Prune(ctx context.Context, before bridge.PruneBefore) (int64, error) {
	now := ms(db.Now())
	type step struct {
		name, query string
		args        []any
	}
	steps := []step{
		{"inbound", `DELETE FROM inbound WHERE rowid IN
			(SELECT rowid FROM inbound WHERE state <> 'pending' AND done_ms < ? LIMIT ?)`, []any{ms(before.Finished)}},
		{"deliveries", `DELETE FROM deliveries WHERE rowid IN
			(SELECT rowid FROM deliveries WHERE state <> 'pending' AND done_ms < ? LIMIT ?)`, []any{ms(before.Finished)}},
		{"offers", `DELETE FROM offers WHERE (platform, room, thread) IN
			(SELECT platform, room, thread FROM offers WHERE expires_ms <= ? LIMIT ?)`, []any{now}},
		// The presence of processes gone since then; never the row of the
		// highest token, which the next token is counted from.
		{"leases", `DELETE FROM leases WHERE name IN
			(SELECT name FROM leases WHERE name LIKE 'replica:%' AND expires_ms < ?
			AND token < (SELECT max(token) FROM leases) LIMIT ?)`, []any{ms(before.Finished)}},
	}
	if !before.Idle.IsZero() {
		idle := ms(before.Idle)
		steps = append(steps,
			step{"conversations", `DELETE FROM conversations WHERE id IN
				(SELECT id FROM conversations c WHERE active_ms < ?
				AND NOT EXISTS (SELECT 1 FROM inbound WHERE conversation = c.id)
				AND NOT EXISTS (SELECT 1 FROM deliveries WHERE conversation = c.id) LIMIT ?)`, []any{idle}},
			step{"threads", `DELETE FROM threads WHERE (bot, platform, room, thread) IN
				(SELECT bot, platform, room, thread FROM threads t WHERE created_ms < ?
				AND NOT EXISTS (SELECT 1 FROM conversations WHERE bot = t.bot AND platform = t.platform
					AND room = t.room AND active_ms >= ?) LIMIT ?)`, []any{idle, idle}},
			step{"users", `DELETE FROM users WHERE (bot, platform, platform_id) IN
				(SELECT bot, platform, platform_id FROM users u WHERE updated_ms < ? AND platform <> 'botbridge'
				AND NOT EXISTS (SELECT 1 FROM participants WHERE chat_user = u.chat_id) LIMIT ?)`, []any{idle}},
		)
	}
	var total int64
	for _, s := range steps {
		for {
			var n int64
			err := db.tx(ctx, "prune "+s.name, func(t *txn) error {
				res, err := t.exec(s.query, append(s.args, pruneBatch)...)
				if err != nil {
					return err
				}
				n, err = res.RowsAffected()
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
