package postgres

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/botbridge/botbridge/bridge"
)

// RenameRoom moves what the bridge keeps of a room of platform to the room
// that replaces it, as after a Matrix room upgrade: the room's
// conversations (every generation, with their Botpress conversation ids,
// so that the talk goes on in the same Botpress conversations), the choice
// standing there, and the replies not posted yet. Replies and reply targets
// that pointed at a message or thread of the old room point at the new
// room itself: those events are not in it. Records the new room has
// already win: an old one that would clash with one stays where it is.
// Thread engagement, indicators and finished replies belong to the old
// room and stay. It returns how many conversation records moved; moving a
// room again, or one the store knows nothing of, moves none.
//
// It is one transaction. A conversation another process makes in the new
// room meanwhile, one that would clash, makes it run again, and the run
// leaves the old one where it is.
func (db *DB) RenameRoom(ctx context.Context, platform bridge.Platform, from, to string) (int, error) {
	if platform == "" || from == "" || to == "" {
		return 0, errors.New("rename room: platform and both rooms are required")
	}
	if from == to {
		return 0, nil
	}
	p := string(platform)
	var moved int64
	err := db.run(ctx, "rename room", uniqueViolation, func(ctx context.Context) error {
		return pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
			// SQLite's UPDATE OR IGNORE: what would clash stays.
			tag, err := tx.Exec(ctx, `UPDATE conversations c SET room = $3, lease = $4 WHERE platform = $1 AND room = $2
				AND NOT EXISTS (SELECT 1 FROM conversations n WHERE n.bot = c.bot AND n.scope = c.scope
					AND n.platform = c.platform AND n.room = $3 AND n.thread = c.thread AND n."user" = c."user"
					AND n.generation = c.generation)`, p, from, to, bridge.LeaseOf(bridge.RoomKey{Platform: platform, Room: to}))
			if err != nil {
				return err
			}
			moved = tag.RowsAffected()
			// A conversation's reply target is where it last answered; that
			// message is not in the new room.
			if _, err := tx.Exec(ctx, `UPDATE conversations SET reply_room = $3, reply_thread = '', reply_message = ''
				WHERE platform = $1 AND room = $3 AND reply_room = $2`, p, from, to); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `UPDATE offers o SET room = $3 WHERE platform = $1 AND room = $2
				AND NOT EXISTS (SELECT 1 FROM offers n WHERE n.platform = $1 AND n.room = $3 AND n.thread = o.thread)`,
				p, from, to); err != nil {
				return err
			}
			_, err = tx.Exec(ctx, `UPDATE deliveries SET room = $3, thread = '', reply_message = ''
				WHERE platform = $1 AND room = $2 AND state = 'pending'`, p, from, to)
			return err
		})
	})
	if err != nil {
		return 0, err
	}
	return int(moved), nil
}

// uniqueViolation reports whether err is a unique key's refusal: a record
// another process stored meanwhile.
func uniqueViolation(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}
