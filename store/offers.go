package store

import (
	"context"
	"fmt"

	"github.com/botbridge/botbridge/bridge"
	"github.com/botbridge/botbridge/store/internal/form"
)

// PutOffer implements bridge.Store.
func (db *DB) PutOffer(ctx context.Context, o bridge.Offer) error {
	body, err := form.EncodeOptions(o.Options)
	if err != nil {
		return fmt.Errorf("put offer: %w", err)
	}
	return db.tx(ctx, "put offer", func(t *txn) error {
		if err := fenced(t, namedLease, bridge.LeaseOf(o.Room)); err != nil {
			return err
		}
		if o.MessageID != "" {
			_, err := t.exec(`UPDATE offers SET message_id = ? WHERE platform = ? AND room = ? AND thread = ?
				AND conversation = ? AND message_id = ''`,
				o.MessageID, string(o.Room.Platform), o.Room.Room, o.Room.Thread, o.Conversation)
			return err
		}
		_, err := t.exec(`INSERT INTO offers (platform, room, thread, bot, conversation, message_id, options, expires_ms)
			VALUES (?, ?, ?, ?, ?, '', ?, ?)
			ON CONFLICT (platform, room, thread) DO UPDATE SET bot = excluded.bot, conversation = excluded.conversation,
			message_id = '', options = excluded.options, expires_ms = excluded.expires_ms`,
			string(o.Room.Platform), o.Room.Room, o.Room.Thread, o.Bot, o.Conversation, body, ms(o.Expires))
		return err
	})
}

// Offer implements bridge.Store.
func (db *DB) Offer(ctx context.Context, room bridge.RoomKey) (bridge.Offer, error) {
	o := bridge.Offer{Room: room}
	var (
		body      []byte
		expiresMS int64
	)
	err := db.queryRow(ctx, `SELECT bot, conversation, message_id, options, expires_ms FROM offers
		WHERE platform = ? AND room = ? AND thread = ? AND expires_ms > ?`,
		string(room.Platform), room.Room, room.Thread, ms(db.Now())).Scan(&o.Bot, &o.Conversation, &o.MessageID, &body, &expiresMS)
	if err != nil {
		return o, wrap("offer", err)
	}
	if o.Options, err = form.DecodeOptions(body); err != nil {
		return o, fmt.Errorf("offer in %s: %w: stored options do not decode: %v", room, bridge.ErrStore, err)
	}
	o.Expires = fromMS(expiresMS)
	return o, nil
}

// SetIndicator implements bridge.Store.
func (db *DB) SetIndicator(ctx context.Context, t bridge.ReplyTarget, on bool) error {
	args := []any{string(t.Room.Platform), t.Room.Room, t.Room.Thread, t.MessageID, t.UserID}
	return db.tx(ctx, "set indicator", func(tx *txn) error {
		if err := fenced(tx, namedLease, bridge.LeaseOf(t.Room)); err != nil {
			return err
		}
		var err error
		if on {
			_, err = tx.exec(`INSERT INTO indicators (platform, room, thread, message_id, user_id, since_ms)
				VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`, append(args, ms(db.Now()))...)
		} else {
			_, err = tx.exec(`DELETE FROM indicators WHERE platform = ? AND room = ? AND thread = ?
				AND message_id = ? AND user_id = ?`, args...)
		}
		return err
	})
}

// Indicators implements bridge.Store.
func (db *DB) Indicators(ctx context.Context) ([]bridge.ReplyTarget, error) {
	rows, err := db.query(ctx, `SELECT platform, room, thread, message_id, user_id FROM indicators ORDER BY since_ms`)
	if err != nil {
		return nil, wrap("indicators", err)
	}
	defer rows.Close()
	var out []bridge.ReplyTarget
	for rows.Next() {
		var (
			t        bridge.ReplyTarget
			platform string
		)
		if err := rows.Scan(&platform, &t.Room.Room, &t.Room.Thread, &t.MessageID, &t.UserID); err != nil {
			return nil, wrap("indicators", err)
		}
		t.Room.Platform = bridge.Platform(platform)
		out = append(out, t)
	}
	return out, wrap("indicators", rows.Err())
}
