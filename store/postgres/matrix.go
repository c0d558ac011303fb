package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
)

// The Matrix adapter keeps the encrypted events it cannot decrypt yet here,
// one row each, until their keys come or it gives them up. Only the
// replica running the Matrix sync uses them.

// AddMatrixPending keeps an encrypted event of the Matrix account's that
// waits for its keys: its room, id and sender, the event as JSON, and since
// when it waits. An event kept already stays as it is.
func (db *DB) AddMatrixPending(ctx context.Context, account, room, eventID, sender, event string, since time.Time) error {
	if account == "" || eventID == "" {
		return errors.New("add matrix pending event: account and event id are required")
	}
	_, err := db.exec(ctx, "add matrix pending event", `INSERT INTO matrix_pending (account, event_id, room, sender, event, since_ms)
		VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (account, event_id) DO NOTHING`,
		account, eventID, room, sender, Storable(event), ms(since))
	return err
}

// DeleteMatrixPending forgets a waiting event of the account's; forgetting
// one that is not kept is not an error.
func (db *DB) DeleteMatrixPending(ctx context.Context, account, eventID string) error {
	_, err := db.exec(ctx, "delete matrix pending event", `DELETE FROM matrix_pending WHERE account = $1 AND event_id = $2`,
		account, eventID)
	return err
}

// pendingEvent is a row of matrix_pending as MatrixPending gives it.
type pendingEvent struct {
	id, event string
	sinceMS   int64
}

// MatrixPending calls each with the id, the JSON and the waiting start of
// every event the account keeps, oldest first, and returns each's first
// error. The rows are read before the first call, so each may call the
// store.
func (db *DB) MatrixPending(ctx context.Context, account string, each func(eventID, event string, since time.Time) error) error {
	rows, err := queryRows(ctx, db, "matrix pending events", func(row pgx.Row) (pendingEvent, error) {
		var p pendingEvent
		err := row.Scan(&p.id, &p.event, &p.sinceMS)
		return p, err
	}, `SELECT event_id, event, since_ms FROM matrix_pending WHERE account = $1 ORDER BY since_ms, id`, account)
	if err != nil {
		return err
	}
	for _, p := range rows {
		if err := each(p.id, p.event, fromMS(p.sinceMS)); err != nil {
			return err
		}
	}
	return nil
}
