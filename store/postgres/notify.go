package postgres

import (
	"context"
	"encoding/json"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/botbridge/botbridge/bridge"
	"github.com/botbridge/botbridge/bridge/retry"
	"github.com/botbridge/botbridge/chat"
)

// The processes sharing the store tell each other of the work one stored
// for another through PostgreSQL's LISTEN and NOTIFY: a note is a short
// JSON payload on one channel. A note is a hint, never the work itself:
// what it names is in the tables, and a process that misses notes finds
// the work when it lists its leases' work.

// notesChannel is the channel of the notes.
const notesChannel = "botbridge_notes"

var _ bridge.Notifier = (*DB)(nil)

// note is a bridge.Note on the wire.
type note struct {
	Lease        string `json:"l"`
	Conversation int64  `json:"c,omitempty"`
	Message      string `json:"m,omitempty"`
}

// Publish implements bridge.Notifier, with pg_notify in a statement of its
// own: PostgreSQL sends it to every listening session once it commits,
// and the writes of the tables never wait on it.
func (db *DB) Publish(ctx context.Context, n bridge.Note) error {
	payload, err := json.Marshal(note{Lease: n.Lease, Conversation: n.Conversation, Message: string(n.Message)})
	if err != nil {
		return err
	}
	_, err = db.exec(ctx, "publish a note", `SELECT pg_notify($1, $2)`, notesChannel, string(payload))
	return err
}

// Notify implements bridge.Notifier. It listens on a connection of its
// own, made again, with backoff, when it is lost (the server restarted);
// after each new connection but the first, fn gets a Note of no lease, for
// what went by meanwhile.
func (db *DB) Notify(ctx context.Context, fn func(bridge.Note)) error {
	b := retry.Policy{Min: 100 * time.Millisecond, Max: 5 * time.Second}.New()
	first := true
	for {
		err := db.listen(ctx, func() {
			b.Reset()
			if !first {
				fn(bridge.Note{})
			}
			first = false
		}, fn)
		if ctx.Err() != nil {
			return nil
		}
		if retry.Wait(ctx, b.Next(err)) != nil {
			return nil
		}
	}
}

// listen connects, listens, calls up once listening, then fn with each
// note, until the connection fails or ctx ends.
func (db *DB) listen(ctx context.Context, up func(), fn func(bridge.Note)) error {
	conn, err := pgx.ConnectConfig(ctx, db.pool.Config().ConnConfig)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+notesChannel); err != nil {
		return err
	}
	up()
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		var nt note
		if json.Unmarshal([]byte(n.Payload), &nt) != nil || nt.Lease == "" {
			continue
		}
		fn(bridge.Note{Lease: nt.Lease, Conversation: nt.Conversation, Message: chat.MessageID(nt.Message)})
	}
}
