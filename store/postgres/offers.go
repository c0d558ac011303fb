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
	lease := bridge.LeaseOf(o.Room)
	if o.MessageID != "" {
		return db.fencedExec(ctx, "put offer", `UPDATE offers SET message_id = $3
			WHERE platform = $4 AND room = $5 AND thread = $6 AND conversation = $7 AND message_id = ''
			AND (SELECT held FROM fence) RETURNING 1`,
			lease, o.MessageID, string(o.Room.Platform), o.Room.Room, o.Room.Thread, o.Conversation)
	}
	body, err := form.EncodeOptions(o.Options)
	if err != nil {
		return fmt.Errorf("put offer: %w", err)
	}
	return db.fencedExec(ctx, "put offer", `INSERT INTO offers (platform, room, thread, bot, conversation, message_id, options, expires_ms)
		SELECT $3, $4, $5, $6, $7::bigint, '', $8, $9::bigint WHERE (SELECT held FROM fence)
		ON CONFLICT (platform, room, thread) DO UPDATE SET bot = excluded.bot, conversation = excluded.conversation,
		message_id = '', options = excluded.options, expires_ms = excluded.expires_ms RETURNING 1`,
		lease, string(o.Room.Platform), o.Room.Room, o.Room.Thread, o.Bot, o.Conversation, string(body), ms(o.Expires))
}

// fencedExec runs write (which refers to the CTE fence) under the fence of
// ctx on the lease named ($1; $2 is the token, the write's own parameters
// follow): it fails with bridge.ErrFenced when the fence does not hold the
// lease.
func (db *DB) fencedExec(ctx context.Context, op, write, lease string, args ...any) error {
	f, err := queryRow(ctx, db, op, scanFenced, `WITH `+fenceCTE(namedLease, 2)+`, written AS (`+write+`)
		SELECT `+fenceColumns+`, (SELECT count(*) FROM written)`, append([]any{lease, token(ctx)}, args...)...)
	if err != nil {
		return err
	}
	return fenceResult(op, f.held, f.found)
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
	lease := bridge.LeaseOf(t.Room)
	if on {
		return db.fencedExec(ctx, "set indicator", `INSERT INTO indicators (platform, room, thread, message_id, user_id, since_ms)
			SELECT $3, $4, $5, $6, $7, $8::bigint WHERE (SELECT held FROM fence) ON CONFLICT DO NOTHING RETURNING 1`,
			lease, append(args, ms(db.Now()))...)
	}
	return db.fencedExec(ctx, "set indicator", `DELETE FROM indicators WHERE platform = $3 AND room = $4 AND thread = $5
		AND message_id = $6 AND user_id = $7 AND (SELECT held FROM fence) RETURNING 1`, lease, args...)
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
