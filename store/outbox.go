package store

import (
	"context"
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

// MarkInboundSent implements bridge.Store.
func (db *DB) MarkInboundSent(ctx context.Context, id int64, parts int, msg chat.MessageID, done bool, reply bridge.ReplyTarget) error {
	return db.tx(ctx, "mark inbound sent", func(t *txn) error {
		if err := fenced(t, inboundLease, id); err != nil {
			return err
		}
		now := ms(db.Now())
		state := "pending"
		var doneMS any
		if done {
			state, doneMS = "sent", now
		}
		var conv int64
		err := t.queryRow(`UPDATE inbound SET parts_sent = ?, chat_message = ?, state = ?, done_ms = ?
			WHERE id = ? AND state = 'pending' RETURNING conversation`, parts, string(msg), state, doneMS, id).Scan(&conv)
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
		if err := fenced(t, inboundLease, id); err != nil {
			return err
		}
		res, err := t.exec(`UPDATE inbound SET state = 'failed', error = ?, done_ms = ?
			WHERE id = ? AND state = 'pending'`, reason, ms(db.Now()), id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("inbound %d: %w", id, bridge.ErrNotFound)
		}
		return nil
	})
}
