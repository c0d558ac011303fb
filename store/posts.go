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

// Post implements bridge.Store: the posts table (kept by a trigger as
// deliveries are marked posted, see migration 0004) gives the delivery.
func (db *DB) Post(ctx context.Context, room bridge.RoomKey, platformID string) (bridge.Post, error) {
	var (
		p        bridge.Post
		msgID    string
		platform string
	)
	err := db.queryRow(ctx, `SELECT d.message_id, d.conversation, d.bot, d.platform, d.room, d.thread,
		d.reply_message, d.reply_user, d.ephemeral
		FROM posts p JOIN deliveries d ON d.message_id = p.message_id
		WHERE p.platform = ? AND p.room = ? AND p.platform_id = ?`,
		string(room.Platform), room.Room, platformID).Scan(&msgID, &p.Conversation, &p.Bot, &platform,
		&p.Target.Room.Room, &p.Target.Room.Thread, &p.Target.MessageID, &p.Target.UserID, &p.Target.Ephemeral)
	if err != nil {
		return p, wrap("post", err)
	}
	p.MessageID = chat.MessageID(msgID)
	p.Target.Room.Platform = bridge.Platform(platform)
	return p, nil
}

// EnqueueInboundTo implements bridge.Store. For a duplicate it returns the
// item stored before.
func (db *DB) EnqueueInboundTo(ctx context.Context, conv int64, in bridge.Inbound) (bridge.OutboxItem, bool, error) {
	if in.Key == "" {
		return bridge.OutboxItem{}, false, errors.New("enqueue inbound: no event key")
	}
	body, err := form.EncodeInbound(in)
	if err != nil {
		return bridge.OutboxItem{}, false, fmt.Errorf("enqueue inbound: %w", err)
	}
	now := db.Now()
	item := bridge.OutboxItem{Conversation: conv, Inbound: in, CreatedAt: fromMS(ms(now))}
	created := false
	err = db.tx(ctx, "enqueue inbound", func(t *txn) error {
		stored, err := storedInbound(t, in)
		if err == nil {
			item = stored
			return nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		var one int
		if err := t.queryRow(`SELECT 1 FROM conversations WHERE id = ?`, conv).Scan(&one); err != nil {
			return err
		}
		res, err := t.exec(`INSERT INTO inbound (platform, event_key, conversation, body, created_ms)
			VALUES (?, ?, ?, ?, ?)`, string(in.Room.Platform), string(in.Key), conv, body, ms(now))
		if err != nil {
			return err
		}
		if item.ID, err = res.LastInsertId(); err != nil {
			return err
		}
		created = true
		return nil
	})
	if err != nil {
		return bridge.OutboxItem{}, false, err
	}
	return item, created, nil
}
