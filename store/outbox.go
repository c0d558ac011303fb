package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/botbridge/botbridge/bridge"
	"github.com/botbridge/botbridge/chat"
	"github.com/botbridge/botbridge/store/internal/form"
)

func scanOutboxItem(s scanner) (bridge.OutboxItem, error) {
	var (
		it        bridge.OutboxItem
		body      []byte
		createdMS int64
	)
	if err := s.Scan(&it.ID, &it.Conversation, &body, &it.PartsSent, &createdMS); err != nil {
		return it, err
	}
	var err error
	if it.Inbound, err = form.DecodeInbound(body); err != nil {
		return it, fmt.Errorf("inbound %d: %w: stored body does not decode: %v", it.ID, bridge.ErrStore, err)
	}
	it.CreatedAt = fromMS(createdMS)
	return it, nil
}

// PendingInbound implements bridge.Store.
func (db *DB) PendingInbound(ctx context.Context, limit int) ([]bridge.OutboxItem, error) {
	if limit <= 0 {
		limit = -1
	}
	// Without INDEXED BY, SQLite walks the whole table in id order rather
	// than sort the few pending rows of the partial index.
	rows, err := db.query(ctx, `SELECT id, conversation, body, parts_sent, created_ms FROM inbound
		INDEXED BY inbound_pending WHERE state = 'pending' ORDER BY id LIMIT ?`, limit)
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

// NextInbound implements bridge.Store.
func (db *DB) NextInbound(ctx context.Context, conversation int64) (bridge.OutboxItem, error) {
	// INDEXED BY: SQLite would rather walk every message the conversation
	// ever had through inbound_conversation.
	it, err := scanOutboxItem(db.queryRow(ctx, `SELECT id, conversation, body, parts_sent, created_ms
		FROM inbound INDEXED BY inbound_pending WHERE conversation = ? AND state = 'pending' ORDER BY id LIMIT 1`, conversation))
	if err != nil {
		return it, wrap("next inbound", err)
	}
	return it, nil
}

// The records of what became of a pending inbound message (id, last
// argument before the fence's token).
var (
	markInboundSentSQL = fenceable(`UPDATE inbound SET parts_sent = ?, chat_message = ?, state = ?, done_ms = ?
		WHERE id = ? AND state = 'pending' $fence RETURNING conversation`, inboundRowLease)
	failInboundSQL = fenceable(`UPDATE inbound SET state = 'failed', error = ?, done_ms = ?
		WHERE id = ? AND state = 'pending' $fence`, inboundRowLease)
)

// MarkInboundSent implements bridge.Store.
func (db *DB) MarkInboundSent(ctx context.Context, id int64, parts int, msg chat.MessageID, done bool, reply bridge.ReplyTarget) error {
	return db.tx(ctx, "mark inbound sent", func(t *txn) error {
		now := ms(db.Now())
		state := "pending"
		var doneMS any
		if done {
			state, doneMS = "sent", now
		}
		var conv int64
		q, args := markInboundSentSQL.in(t, parts, string(msg), state, doneMS, id)
		err := t.queryRow(q, args...).Scan(&conv)
		if errors.Is(err, sql.ErrNoRows) {
			// Not found, fenced off, or no longer pending.
			if err := fenced(t, inboundLease, id); err != nil {
				return err
			}
		}
		if err != nil {
			return err
		}
		if !done {
			return nil
		}
		_, err = t.exec(`UPDATE conversations SET reply_room = ?, reply_thread = ?, reply_message = ?,
			reply_user = ?, active_ms = ?, reply_ephemeral = ? WHERE id = ?`,
			reply.Room.Room, reply.Room.Thread, reply.MessageID, reply.UserID, now, reply.Ephemeral, conv)
		return err
	})
}

// FailInbound implements bridge.Store.
func (db *DB) FailInbound(ctx context.Context, id int64, reason string) error {
	return db.tx(ctx, "fail inbound", func(t *txn) error {
		q, args := failInboundSQL.in(t, reason, ms(db.Now()), id)
		res, err := t.exec(q, args...)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n > 0 {
			return nil
		}
		if err := fenced(t, inboundLease, id); err != nil {
			return err
		}
		return fmt.Errorf("inbound %d: %w", id, bridge.ErrNotFound)
	})
}
