package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/botbridge/botbridge/bridge"
	"github.com/botbridge/botbridge/chat"
	"github.com/botbridge/botbridge/store/internal/form"
)

// Post implements bridge.Store: the posts table (kept by a trigger as
// deliveries are marked posted, see migration 0004) gives the delivery.
func (db *DB) Post(ctx context.Context, room bridge.RoomKey, platformID string) (bridge.Post, error) {
	scan := func(row pgx.Row) (bridge.Post, error) {
		var (
			p               bridge.Post
			msgID, platform string
		)
		err := row.Scan(&msgID, &p.Conversation, &p.Bot, &platform, &p.Target.Room.Room, &p.Target.Room.Thread,
			&p.Target.MessageID, &p.Target.UserID, &p.Target.Ephemeral)
		p.MessageID = chat.MessageID(msgID)
		p.Target.Room.Platform = bridge.Platform(platform)
		return p, err
	}
	return queryRow(ctx, db, "post", scan, `SELECT d.message_id, d.conversation, d.bot, d.platform, d.room, d.thread,
		d.reply_message, d.reply_user, d.ephemeral
		FROM posts p JOIN deliveries d ON d.message_id = p.message_id
		WHERE p.platform = $1 AND p.room = $2 AND p.platform_id = $3`, string(room.Platform), room.Room, platformID)
}

// EnqueueInboundTo implements bridge.Store, in one statement for a new
// event. For a duplicate it returns the item stored before. Of two
// processes storing the same event at once, one stores it and the other
// returns it as a duplicate.
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
	// A conversation pruned between the lookup and the insert fails the
	// foreign key, which is ErrNotFound as a missing one is.
	err = db.run(ctx, "enqueue inbound", nil, func(ctx context.Context) error {
		// ON CONFLICT waits for a process storing the same event at this
		// moment, and then does nothing.
		err := db.pool.QueryRow(ctx, `INSERT INTO inbound (platform, event_key, conversation, body, created_ms)
			SELECT $1, $2, id, $4, $5 FROM conversations WHERE id = $3
			ON CONFLICT (platform, event_key) DO NOTHING RETURNING id`,
			string(in.Room.Platform), string(in.Key), conv, string(body), ms(now)).Scan(&item.ID)
		if err == nil {
			created = true
			return nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		stored, err := db.storedInbound(ctx, in)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("conversation %d: %w", conv, bridge.ErrNotFound)
		}
		if err == nil {
			item = stored
		}
		return err
	})
	if err != nil {
		return bridge.OutboxItem{}, false, err
	}
	return item, created, nil
}
