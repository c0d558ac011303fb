package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/botbridge/botbridge/bridge"
	"github.com/botbridge/botbridge/chat"
	"github.com/botbridge/botbridge/store/internal/form"
)

// keyArgs are the columns of a conversation key, in the order of the
// statements' $1..$6.
func keyArgs(key bridge.ConvKey) []any {
	return []any{key.Bot, string(key.Scope), string(key.Room.Platform), key.Room.Room, key.Room.Thread, key.User}
}

// enqueueSQL stores an inbound message in the newest generation of its
// conversation key ($1..$6), engages its thread and closes the offer it
// answers ($17: it is an answer, to the message $14, empty while the
// choice was being posted), in one statement. It returns no row when the key has no
// conversation yet, or when the event was stored before (ON CONFLICT waits
// for a process storing it at the same moment, and then does nothing).
const enqueueSQL = `WITH conv AS (
	SELECT id FROM conversations
	WHERE bot = $1 AND scope = $2 AND platform = $3 AND room = $4 AND thread = $5 AND "user" = $6
	ORDER BY generation DESC LIMIT 1
), item AS (
	INSERT INTO inbound (platform, event_key, conversation, body, created_ms)
	SELECT $7, $8, conv.id, $9, $10 FROM conv
	ON CONFLICT (platform, event_key) DO NOTHING
	RETURNING id, conversation
), engaged AS (
	INSERT INTO threads (bot, platform, room, thread, created_ms)
	SELECT $1, $11, $12, $13, $10 FROM item WHERE $12::text <> ''
	ON CONFLICT DO NOTHING
), answered AS (
	DELETE FROM offers
	WHERE $17 AND platform = $7 AND room = $15 AND thread = $16 AND message_id = $14
	AND EXISTS (SELECT 1 FROM item)
)
SELECT id, conversation FROM item`

// errDuplicate ends a transaction that found its event stored by another.
var errDuplicate = errors.New("stored before")

// errRaced is a run that met another process's change it did not expect
// (a conversation pruned between two statements): the next run does not.
var errRaced = errors.New("changed by another process meanwhile")

// raced reports whether a run should run again: it met errRaced, or a
// foreign key refused a record another process deleted meanwhile.
func raced(err error) bool { return errors.Is(err, errRaced) || missingReference(err) }

// EnqueueInbound implements bridge.Store. For a duplicate it returns the item
// stored before. A key seen before costs one statement; a new key a
// transaction that creates its conversation. Of two processes storing the
// same event at once, one stores it and the other returns it as a
// duplicate, having changed nothing.
func (db *DB) EnqueueInbound(ctx context.Context, key bridge.ConvKey, in bridge.Inbound, engage bridge.RoomKey) (bridge.OutboxItem, bool, error) {
	if in.Key == "" {
		return bridge.OutboxItem{}, false, errors.New("enqueue inbound: no event key")
	}
	if !key.Scope.Valid() {
		return bridge.OutboxItem{}, false, fmt.Errorf("enqueue inbound: conversation %s: invalid scope %q", key, key.Scope)
	}
	body, err := form.EncodeInbound(in)
	if err != nil {
		return bridge.OutboxItem{}, false, fmt.Errorf("enqueue inbound: %w", err)
	}
	now := db.Now()
	var answers string
	if a := in.Action; a != nil {
		answers = a.MessageID
	}
	args := append(keyArgs(key), string(in.Room.Platform), string(in.Key), string(body), ms(now),
		string(engage.Platform), engage.Room, engage.Thread, answers, in.Room.Room, in.Room.Thread, in.Action != nil)
	item := bridge.OutboxItem{Inbound: in, CreatedAt: fromMS(ms(now))}
	created := false
	// A conversation pruned between the lookup and the insert fails the
	// foreign key: the next run makes a new one.
	err = db.run(ctx, "enqueue inbound", raced, func(ctx context.Context) error {
		err := db.pool.QueryRow(ctx, enqueueSQL, args...).Scan(&item.ID, &item.Conversation)
		if err == nil {
			created = true
			return nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		stored, err := db.storedInbound(ctx, in)
		if err == nil {
			item = stored
			return nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		// A new key: its first generation, then the message. Another
		// process may make the same conversation at once (ON CONFLICT waits
		// for it), or store the same event: then nothing of this
		// transaction is kept.
		err = pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `INSERT INTO conversations
				(bot, scope, platform, room, thread, "user", generation, active_ms, created_ms, lease)
				VALUES ($1, $2, $3, $4, $5, $6, 0, $7, $7, $8)
				ON CONFLICT (bot, scope, platform, room, thread, "user", generation) DO NOTHING`,
				append(keyArgs(key), ms(now), bridge.LeaseOf(key.Room))...); err != nil {
				return err
			}
			err := tx.QueryRow(ctx, enqueueSQL, args...).Scan(&item.ID, &item.Conversation)
			if errors.Is(err, pgx.ErrNoRows) {
				return errDuplicate
			}
			return err
		})
		switch {
		case err == nil:
			created = true
			return nil
		case errors.Is(err, errDuplicate):
			stored, err := db.storedInbound(ctx, in)
			if errors.Is(err, pgx.ErrNoRows) {
				return errRaced // the conversation went, not the event came
			}
			item = stored
			return err
		}
		return err
	})
	if err != nil {
		return bridge.OutboxItem{}, false, err
	}
	return item, created, nil
}

// storedInbound returns the stored item of in's event.
func (db *DB) storedInbound(ctx context.Context, in bridge.Inbound) (bridge.OutboxItem, error) {
	return scanOutboxItem(db.pool.QueryRow(ctx, `SELECT id, conversation, body, parts_sent, created_ms
		FROM inbound WHERE platform = $1 AND event_key = $2`, string(in.Room.Platform), string(in.Key)))
}

// ThreadEngaged implements bridge.Store.
func (db *DB) ThreadEngaged(ctx context.Context, bot string, thread bridge.RoomKey) (bool, error) {
	return queryRow(ctx, db, "thread engaged", scanOne[bool], `SELECT EXISTS (SELECT 1 FROM threads
		WHERE bot = $1 AND platform = $2 AND room = $3 AND thread = $4)`,
		bot, string(thread.Platform), thread.Room, thread.Thread)
}

// ResetConversation implements bridge.Store. A key without a conversation
// gets its first generation. Of two processes handling the same reset
// event at once, one resets and the other changes nothing; two different
// resets at once make two generations.
func (db *DB) ResetConversation(ctx context.Context, key bridge.ConvKey, in bridge.Inbound, notice bridge.Delivery) (bridge.Delivery, bool, error) {
	if in.Key == "" {
		return notice, false, errors.New("reset conversation: no event key")
	}
	if !key.Scope.Valid() {
		return notice, false, fmt.Errorf("reset conversation: conversation %s: invalid scope %q", key, key.Scope)
	}
	body, err := form.EncodeInbound(in)
	if err != nil {
		return notice, false, fmt.Errorf("reset conversation: %w", err)
	}
	stored := notice
	created := false
	err = db.run(ctx, "reset conversation", nil, func(ctx context.Context) error {
		stored, created = notice, false
		err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
			var handled bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM inbound WHERE platform = $1 AND event_key = $2)`,
				string(in.Room.Platform), string(in.Key)).Scan(&handled); err != nil {
				return err
			}
			if handled {
				return errDuplicate
			}
			now := db.Now()
			conv, err := nextGeneration(ctx, tx, key, now)
			if err != nil {
				return err
			}
			var id int64
			err = tx.QueryRow(ctx, `INSERT INTO inbound (platform, event_key, conversation, body, state, created_ms, done_ms)
				VALUES ($1, $2, $3, $4, 'sent', $5, $5) ON CONFLICT (platform, event_key) DO NOTHING RETURNING id`,
				string(in.Room.Platform), string(in.Key), conv, string(body), ms(now)).Scan(&id)
			if errors.Is(err, pgx.ErrNoRows) {
				return errDuplicate // stored by another process meanwhile
			}
			if err != nil {
				return err
			}
			stored.Conversation = conv
			if stored, err = db.insertDelivery(ctx, tx, stored); err != nil {
				return err
			}
			created = true
			return nil
		})
		if errors.Is(err, errDuplicate) {
			stored, created = notice, false
			return nil
		}
		return err
	})
	if err != nil {
		return notice, false, err
	}
	return stored, created, nil
}

// nextGeneration adds the next generation of key's conversation and returns
// its id. When another process adds the same generation at once, the
// insert waits for it and does nothing; the next try takes the one after.
func nextGeneration(ctx context.Context, tx pgx.Tx, key bridge.ConvKey, now time.Time) (int64, error) {
	for range 100 {
		var id int64
		err := tx.QueryRow(ctx, `INSERT INTO conversations
			(bot, scope, platform, room, thread, "user", generation, active_ms, created_ms, lease)
			SELECT $1, $2, $3, $4, $5, $6, coalesce(max(generation) + 1, 0), $7, $7, $8 FROM conversations
			WHERE bot = $1 AND scope = $2 AND platform = $3 AND room = $4 AND thread = $5 AND "user" = $6
			ON CONFLICT (bot, scope, platform, room, thread, "user", generation) DO NOTHING RETURNING id`,
			append(keyArgs(key), ms(now), bridge.LeaseOf(key.Room))...).Scan(&id)
		if !errors.Is(err, pgx.ErrNoRows) {
			return id, err
		}
	}
	return 0, fmt.Errorf("conversation %s: %w: no generation could be added after 100 tries", key, bridge.ErrConflict)
}

func scanOutboxItem(row pgx.Row) (bridge.OutboxItem, error) {
	var (
		it        bridge.OutboxItem
		body      string
		createdMS int64
	)
	if err := row.Scan(&it.ID, &it.Conversation, &body, &it.PartsSent, &createdMS); err != nil {
		return it, err
	}
	var err error
	if it.Inbound, err = form.DecodeInbound([]byte(body)); err != nil {
		return it, fmt.Errorf("inbound %d: %w: stored body does not decode: %v", it.ID, bridge.ErrStore, err)
	}
	it.CreatedAt = fromMS(createdMS)
	return it, nil
}

// PendingInbound implements bridge.Store.
func (db *DB) PendingInbound(ctx context.Context, limit int) ([]bridge.OutboxItem, error) {
	return queryRows(ctx, db, "pending inbound", scanOutboxItem, `SELECT id, conversation, body, parts_sent, created_ms
		FROM inbound WHERE state = 'pending' ORDER BY id LIMIT $1`, limitArg(limit))
}

// limitArg is the argument of LIMIT for a limit of the interface: NULL, no
// limit, for 0 or less.
func limitArg(limit int) any {
	if limit <= 0 {
		return nil
	}
	return int64(limit)
}

// NextInbound implements bridge.Store.
func (db *DB) NextInbound(ctx context.Context, conversation int64) (bridge.OutboxItem, error) {
	return queryRow(ctx, db, "next inbound", scanOutboxItem, `SELECT id, conversation, body, parts_sent, created_ms
		FROM inbound WHERE conversation = $1 AND state = 'pending' ORDER BY id LIMIT 1`, conversation)
}

// MarkInboundSent implements bridge.Store. Of two processes marking the same
// item done at once, one succeeds and the other finds it finished.
func (db *DB) MarkInboundSent(ctx context.Context, id int64, parts int, msg chat.MessageID, done bool, reply bridge.ReplyTarget) error {
	now := ms(db.Now())
	state := "pending"
	var doneMS *int64
	if done {
		state, doneMS = "sent", &now
	}
	f, err := queryRow(ctx, db, "mark inbound sent", scanFenced, `WITH `+fenceCTE(inboundLease, 13)+`, item AS (
			UPDATE inbound SET parts_sent = $2, chat_message = $3, state = $4, done_ms = $5
			WHERE id = $1 AND state = 'pending' AND (SELECT held FROM fence) RETURNING conversation
		), conv AS (
			UPDATE conversations SET reply_room = $6, reply_thread = $7, reply_message = $8, reply_user = $9, active_ms = $10,
				reply_ephemeral = $12
			WHERE $11 AND id IN (SELECT conversation FROM item)
		)
		SELECT `+fenceColumns+`, (SELECT count(*) FROM item)`, id, parts, string(msg), state, doneMS,
		reply.Room.Room, reply.Room.Thread, reply.MessageID, reply.UserID, now, done, reply.Ephemeral, token(ctx))
	if err != nil {
		return err
	}
	if err := fenceResult(fmt.Sprintf("mark inbound sent %d", id), f.held, f.found); err != nil {
		return err
	}
	if f.n == 0 {
		return fmt.Errorf("mark inbound sent: no pending inbound %d: %w", id, bridge.ErrNotFound)
	}
	return nil
}

// FailInbound implements bridge.Store.
func (db *DB) FailInbound(ctx context.Context, id int64, reason string) error {
	f, err := queryRow(ctx, db, "fail inbound", scanFenced, `WITH `+fenceCTE(inboundLease, 4)+`, item AS (
			UPDATE inbound SET state = 'failed', error = $2, done_ms = $3
			WHERE id = $1 AND state = 'pending' AND (SELECT held FROM fence) RETURNING 1
		)
		SELECT `+fenceColumns+`, (SELECT count(*) FROM item)`, id, Storable(reason), ms(db.Now()), token(ctx))
	if err != nil {
		return err
	}
	if err := fenceResult(fmt.Sprintf("fail inbound %d", id), f.held, f.found); err != nil {
		return err
	}
	if f.n == 0 {
		return fmt.Errorf("fail inbound: no pending inbound %d: %w", id, bridge.ErrNotFound)
	}
	return nil
}
