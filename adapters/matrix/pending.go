package matrix

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"time"

	"maunium.net/go/mautrix/crypto"
	"maunium.net/go/mautrix/event"

	"github.com/botbridge/botbridge/bridge"
)

// An encrypted message whose keys have not arrived waits for them, in the
// store, so that the wait survives a restart after the sync position moved
// past it. Anyone in any room the bot is in can send messages it cannot
// decrypt, so only senders a route admits get a place, within caps per
// sender, per room and in all.

const (
	// keyRequestAfter is how long an undecryptable message waits before the
	// adapter asks the sender's devices for its keys.
	keyRequestAfter = 5 * time.Second
	// maxPending bounds the undecryptable messages kept waiting in all.
	maxPending = 1000
)

// PendingEvents is the part of the bridge's store that keeps the encrypted
// events waiting for their keys, one row each, under the bot's user id
// (account). *store.DB implements it.
type PendingEvents interface {
	// AddMatrixPending keeps an event; one kept already stays as it is.
	AddMatrixPending(ctx context.Context, account, room, eventID, sender, event string, since time.Time) error
	// DeleteMatrixPending forgets an event; one not kept is not an error.
	DeleteMatrixPending(ctx context.Context, account, eventID string) error
	// MatrixPending calls each for every event kept, oldest first.
	MatrixPending(ctx context.Context, account string, each func(eventID, event string, since time.Time) error) error
}

// Store is the part of the bridge's store the adapter keeps its state in.
// *store.DB implements it.
type Store interface {
	Cursors
	PendingEvents
	Rooms
	Offers
}

// pending is an encrypted message waiting for its keys.
type pending struct {
	evt       *event.Event
	since     time.Time
	requested bool
}

// undecryptFailed counts an encrypted message that could not be decrypted.
func (a *Adapter) undecryptFailed(reason string) {
	a.undecryptable.Add(1)
	if a.opts.OnDecryptFailure != nil {
		a.opts.OnDecryptFailure(reason)
	}
}

// decrypt decrypts evt. A message whose keys have not arrived is kept to be
// tried again after later syncs (see wait).
func (a *Adapter) decrypt(ctx context.Context, evt *event.Event) (*event.Event, bool) {
	if a.crypto == nil {
		a.undecryptFailed("encryption off")
		a.lost.Add(1)
		a.logLimited(slog.LevelWarn, "plain "+string(evt.RoomID), "encrypted message ignored: the room is end-to-end encrypted and matrix.encryption is off",
			bridge.LogRoom, evt.RoomID, logEvent, evt.ID)
		return nil, false
	}
	dec, err := a.crypto.Decrypt(ctx, evt)
	if err == nil {
		return dec, true
	}
	if !errors.Is(err, crypto.ErrNoSessionFound) {
		a.undecryptFailed("other")
		a.lost.Add(1)
		a.log.Warn("cannot decrypt a message", bridge.LogRoom, evt.RoomID, logEvent, evt.ID, logUser, evt.Sender, bridge.LogErr, err)
		return nil, false
	}
	a.undecryptFailed("no session")
	a.wait(ctx, evt, err)
	return nil, false
}

// wait keeps evt, whose keys have not arrived, to be decrypted once they
// do: when a route admits its sender in its room and the caps leave room.
// It returns once evt is stored, or when ctx ended first.
func (a *Adapter) wait(ctx context.Context, evt *event.Event, cause error) {
	attrs := []any{bridge.LogRoom, evt.RoomID, logEvent, evt.ID, logUser, evt.Sender}
	if !a.admits(ctx, evt) {
		a.refused.Add(1)
		a.logLimited(slog.LevelDebug, "refused "+string(evt.RoomID),
			"encrypted message not kept to wait for its keys: no route lets its sender talk to a bot in this room", attrs...)
		return
	}
	var bySender, byRoom int
	for _, p := range a.pending {
		if p.evt.ID == evt.ID {
			// Seen again: the sync position had not moved past it when
			// the adapter last stopped.
			return
		}
		if p.evt.Sender == evt.Sender {
			bySender++
		}
		if p.evt.RoomID == evt.RoomID {
			byRoom++
		}
	}
	var key, why string
	switch {
	case bySender >= a.opts.MaxPendingPerSender:
		key, why = "cap sender "+string(evt.Sender), "too many of its sender's messages wait for their keys (matrix.max_pending_per_sender)"
	case byRoom >= a.opts.MaxPendingPerRoom:
		key, why = "cap room "+string(evt.RoomID), "too many messages of its room wait for their keys (matrix.max_pending_per_room)"
	case len(a.pending) >= maxPending:
		key, why = "cap all", "too many messages wait for their keys"
	}
	if key != "" {
		a.lost.Add(1)
		a.capped.Add(1)
		a.logLimited(slog.LevelWarn, key, "encrypted message given up: "+why, attrs...)
		return
	}
	raw, err := json.Marshal(evt)
	if err != nil {
		a.lost.Add(1)
		a.log.Error("encrypted message given up: it cannot be stored", append(attrs, bridge.LogErr, err)...)
		return
	}
	p := pending{evt: evt, since: a.now()}
	if !a.retry(ctx, "keep a message waiting for its keys", func() error {
		return a.opts.Store.AddMatrixPending(ctx, string(a.user), string(evt.RoomID), string(evt.ID), string(evt.Sender), string(raw), p.since)
	}) {
		return
	}
	a.pending = append(a.pending, p)
	a.log.Warn("cannot decrypt a message yet: its keys have not arrived; waiting for them", append(attrs, bridge.LogErr, cause)...)
}

// admits reports whether Admit lets evt's sender talk to a bot in its room.
func (a *Adapter) admits(ctx context.Context, evt *event.Event) bool {
	if a.opts.Admit == nil {
		return true
	}
	return a.opts.Admit(bridge.Inbound{
		Room:     bridge.RoomKey{Platform: Platform, Room: string(evt.RoomID)},
		RoomName: a.roomName(ctx, evt.RoomID),
		Sender:   bridge.Sender{ID: string(evt.Sender)},
		DM:       a.direct(ctx, evt.RoomID),
	})
}

// retryPending decrypts the messages whose keys have arrived and hands them
// to h, asks for keys that are slow to come, and gives up the ones that
// waited too long, forgetting each in the store once done with it. It
// returns false when ctx ended first.
func (a *Adapter) retryPending(ctx context.Context, h bridge.Handler) bool {
	if a.crypto == nil || len(a.pending) == 0 {
		return true
	}
	var keep []pending
	for i, p := range a.pending {
		evt := p.evt
		log := a.log.With(bridge.LogRoom, evt.RoomID, logEvent, evt.ID, logUser, evt.Sender)
		dec, err := a.crypto.Decrypt(ctx, evt)
		done := true
		switch waited := a.now().Sub(p.since); {
		case err == nil:
			a.noteTrust(evt, dec)
			in, ok := bridge.Inbound{}, false
			if !a.verification(ctx, dec) && a.trusted(ctx, evt, dec) {
				in, ok = a.decrypted(ctx, dec)
			}
			if ok && !a.deliver(ctx, h, in) {
				a.pending = append(keep, a.pending[i:]...)
				return false
			}
			a.decryptedLate.Add(1)
			log.Info("decrypted a message after its keys arrived", bridge.LogWait, waited)
			if ok {
				a.markRead(evt.RoomID, evt.ID)
			}
		case !errors.Is(err, crypto.ErrNoSessionFound):
			a.lost.Add(1)
			log.Warn("cannot decrypt a message", bridge.LogErr, err)
		case waited > a.opts.DecryptTimeout:
			a.lost.Add(1)
			log.Error("encrypted message given up: its keys never arrived", bridge.LogWait, waited, bridge.LogErr, err)
		default:
			done = false
			if !p.requested && waited > keyRequestAfter {
				c := evt.Content.AsEncrypted()
				rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				// Every device of the sender is asked: which one sent is deprecated
				// information.
				a.crypto.RequestSession(rctx, evt.RoomID, c.SenderKey, c.SessionID, evt.Sender, "")
				cancel()
				log.Info("asked the sender's devices for the keys of a message", logSession, c.SessionID)
				p.requested = true
			}
		}
		if !done {
			keep = append(keep, p)
			continue
		}
		// A message delivered and not yet forgotten is delivered again after
		// a restart, and the bridge knows it by its event id.
		if !a.retry(ctx, "forget a message that waited for its keys", func() error {
			return a.opts.Store.DeleteMatrixPending(ctx, string(a.user), string(evt.ID))
		}) {
			a.pending = append(keep, a.pending[i:]...)
			return false
		}
	}
	a.pending = keep
	return true
}

// loadPending reads the messages waiting for their keys from the store,
// after moving those of the list an older botbridge kept in one cursor.
func (a *Adapter) loadPending(ctx context.Context) error {
	a.pending = nil
	if err := a.moveOldPending(ctx); err != nil {
		return err
	}
	var bad []string
	err := a.opts.Store.MatrixPending(ctx, string(a.user), func(eventID, raw string, since time.Time) error {
		var evt event.Event
		if err := json.Unmarshal([]byte(raw), &evt); err != nil || evt.ID == "" {
			a.log.Error("a stored message waiting for its keys is unreadable; dropping it", logEvent, eventID, bridge.LogErr, err)
			bad = append(bad, eventID)
			return nil
		}
		prepare(&evt)
		a.pending = append(a.pending, pending{evt: &evt, since: since})
		return nil
	})
	if err != nil {
		return err
	}
	for _, eventID := range bad {
		if err := a.opts.Store.DeleteMatrixPending(ctx, string(a.user), eventID); err != nil {
			return err
		}
	}
	if len(a.pending) > 0 {
		a.log.Info("encrypted messages still wait for their keys", logCount, len(a.pending))
	}
	return nil
}

// oldPending is an entry of the list of messages waiting for their keys
// that botbridge kept in one cursor before they had rows of their own.
type oldPending struct {
	Event *event.Event `json:"event"`
	Since time.Time    `json:"since"`
}

// moveOldPending moves the list an older botbridge kept in the cursor
// "undecrypted" into rows, then clears the cursor. Rows are added before
// the cursor is cleared, and adding one twice is harmless, so a crash in
// between loses nothing.
func (a *Adapter) moveOldPending(ctx context.Context) error {
	name := cursorName(a.user, cursorPending)
	v, err := a.opts.Store.Cursor(ctx, name)
	if err != nil || v == "" {
		return err
	}
	var old []oldPending
	if err := json.Unmarshal([]byte(v), &old); err != nil {
		a.log.Error("the old list of messages waiting for their keys is unreadable; dropping it", bridge.LogErr, err)
		return a.opts.Store.SetCursor(ctx, name, "")
	}
	n := 0
	for _, p := range old {
		if p.Event == nil || p.Event.ID == "" {
			continue
		}
		raw, err := json.Marshal(p.Event)
		if err != nil {
			a.log.Error("a message of the old list waiting for its keys cannot be stored; dropping it", logEvent, p.Event.ID, bridge.LogErr, err)
			continue
		}
		if err := a.opts.Store.AddMatrixPending(ctx, string(a.user), string(p.Event.RoomID), string(p.Event.ID), string(p.Event.Sender), string(raw), p.Since); err != nil {
			return err
		}
		n++
	}
	a.log.Info("moved the messages waiting for their keys from the old list into rows of their own", logCount, n)
	return a.opts.Store.SetCursor(ctx, name, "")
}
