package store

import (
	"context"
	"errors"

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
func (db *DB) RenameRoom(ctx context.Context, platform bridge.Platform, from, to string) (int, error) {
	if platform == "" || from == "" || to == "" {
		return 0, errors.New("rename room: platform and both rooms are required")
	}
	if from == to {
		return 0, nil
	}
	p := string(platform)
	var moved int64
	err := db.tx(ctx, "rename room", func(t *txn) error {
		res, err := t.exec(`UPDATE OR IGNORE conversations SET room = ?, lease = ? WHERE platform = ? AND room = ?`,
			to, bridge.LeaseOf(bridge.RoomKey{Platform: platform, Room: to}), p, from)
		if err != nil {
			return err
		}
		if moved, err = res.RowsAffected(); err != nil {
			return err
		}
		// A conversation's reply target is where it last answered; that
		// message is not in the new room.
		if _, err := t.exec(`UPDATE conversations SET reply_room = ?, reply_thread = '', reply_message = ''
			WHERE platform = ? AND room = ? AND reply_room = ?`, to, p, to, from); err != nil {
			return err
		}
		if _, err := t.exec(`UPDATE OR IGNORE offers SET room = ? WHERE platform = ? AND room = ?`, to, p, from); err != nil {
			return err
		}
		_, err = t.exec(`UPDATE deliveries SET room = ?, thread = '', reply_message = ''
			WHERE platform = ? AND room = ? AND state = 'pending'`, to, p, from)
		return err
	})
	if err != nil {
		return 0, err
	}
	return int(moved), nil
}
