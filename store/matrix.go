package store

import (
	"context"
	"errors"
	"time"
)

// The Matrix adapter keeps the encrypted events it cannot decrypt yet here,
// one row each, until their keys come or it gives them up.

// AddMatrixPending keeps an encrypted event of the Matrix account's that
// waits for its keys: its room, id and sender, the event as JSON, and since
// when it waits. An event kept already stays as it is.
func (db *DB) AddMatrixPending(ctx context.Context, account, room, eventID, sender, event string, since time.Time) error {
	if account == "" || eventID == "" {
		return errors.New("add matrix pending event: account and event id are required")
	}
	return db.tx(ctx, "add matrix pending event", func(t *txn) error {
		_, err := t.exec(`INSERT INTO matrix_pending (account, event_id, room, sender, event, since_ms)
			VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (account, event_id) DO NOTHING`,
			account, eventID, room, sender, event, ms(since))
		return err
	})
}

// DeleteMatrixPending forgets a waiting event of the account's; forgetting
// one that is not kept is not an error.
func (db *DB) DeleteMatrixPending(ctx context.Context, account, eventID string) error {
	return db.tx(ctx, "delete matrix pending event", func(t *txn) error {
		_, err := t.exec(`DELETE FROM matrix_pending WHERE account = ? AND event_id = ?`, account, eventID)
		return err
	})
}

// MatrixPending calls each with the id, the JSON and the waiting start of
// every event the account keeps, oldest first, and returns each's first
// error. each must not call the store.
func (db *DB) MatrixPending(ctx context.Context, account string, each func(eventID, event string, since time.Time) error) error {
	rows, err := db.query(ctx, `SELECT event_id, event, since_ms FROM matrix_pending WHERE account = ? ORDER BY since_ms, id`, account)
	if err != nil {
		return wrap("matrix pending events", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			eventID, event string
			sinceMS        int64
		)
		if err := rows.Scan(&eventID, &event, &sinceMS); err != nil {
			return wrap("matrix pending events", err)
		}
		if err := each(eventID, event, fromMS(sinceMS)); err != nil {
			return err
		}
	}
	return wrap("matrix pending events", rows.Err())
}
