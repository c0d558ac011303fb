package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/botbridge/botbridge/bridge"
	"github.com/botbridge/botbridge/store/internal/form"
)

// PutOffer implements bridge.Store, in one statement either way: without a
// message id it replaces the room's offer by a pending one; with one it
// sets the message id of the room's pending offer of o.Conversation, and
// does nothing when that was answered (deleted) or replaced meanwhile.
func (db *DB) PutOffer(ctx context.Context, o bridge.Offer) error {
	if o.MessageID != "" {
		_, err := db.exec(ctx, "put offer", `UPDATE offers SET message_id = $1
			WHERE platform = $2 AND room = $3 AND thread = $4 AND conversation = $5 AND message_id = ''`,
			o.MessageID, string(o.Room.Platform), o.Room.Room, o.Room.Thread, o.Conversation)
		return err
	}
	body, err := form.EncodeOptions(o.Options)
	if err != nil {
		return fmt.Errorf("put offer: %w", err)
	}
	_, err = db.exec(ctx, "put offer", `INSERT INTO offers (platform, room, thread, bot, conversation, message_id, options, expires_ms)
		VALUES ($1, $2, $3, $4, $5, '', $6, $7)
		ON CONFLICT (platform, room, thread) DO UPDATE SET bot = excluded.bot, conversation = excluded.conversation,
		message_id = '', options = excluded.options, expires_ms = excluded.expires_ms`,
		string(o.Room.Platform), o.Room.Room, o.Room.Thread, o.Bot, o.Conversation, string(body), ms(o.Expires))
	return err
}

// Offer implements bridge.Store.
func (db *DB) Offer(ctx context.Context, room bridge.RoomKey) (bridge.Offer, error) {
	scan := func(row pgx.Row) (bridge.Offer, error) {
		o := bridge.Offer{Room: room}
		var (
			body      string
			expiresMS int64
		)
		if err := row.Scan(&o.Bot, &o.Conversation, &o.MessageID, &body, &expiresMS); err != nil {
			return o, err
		}
		var err error
		if o.Options, err = form.DecodeOptions([]byte(body)); err != nil {
			return o, fmt.Errorf("offer in %s: %w: stored options do not decode: %v", room, bridge.ErrStore, err)
		}
		o.Expires = fromMS(expiresMS)
		return o, nil
	}
	return queryRow(ctx, db, "offer", scan, `SELECT bot, conversation, message_id, options, expires_ms FROM offers
		WHERE platform = $1 AND room = $2 AND thread = $3 AND expires_ms > $4`,
		string(room.Platform), room.Room, room.Thread, ms(db.Now()))
}

// SetIndicator implements bridge.Store.
func (db *DB) SetIndicator(ctx context.Context, t bridge.ReplyTarget, on bool) error {
	args := []any{string(t.Room.Platform), t.Room.Room, t.Room.Thread, t.MessageID, t.UserID}
	var err error
	if on {
		_, err = db.exec(ctx, "set indicator", `INSERT INTO indicators (platform, room, thread, message_id, user_id, since_ms)
			VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING`, append(args, ms(db.Now()))...)
	} else {
		_, err = db.exec(ctx, "set indicator", `DELETE FROM indicators WHERE platform = $1 AND room = $2 AND thread = $3
			AND message_id = $4 AND user_id = $5`, args...)
	}
	return err
}

// Indicators implements bridge.Store.
func (db *DB) Indicators(ctx context.Context) ([]bridge.ReplyTarget, error) {
	scan := func(row pgx.Row) (bridge.ReplyTarget, error) {
		var (
			t        bridge.ReplyTarget
			platform string
		)
		err := row.Scan(&platform, &t.Room.Room, &t.Room.Thread, &t.MessageID, &t.UserID)
		t.Room.Platform = bridge.Platform(platform)
		return t, err
	}
	return queryRows(ctx, db, "indicators", scan, `SELECT platform, room, thread, message_id, user_id FROM indicators
		ORDER BY since_ms, platform, room, thread, message_id, user_id`)
}
