package matrix

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/crypto/verificationhelper"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/botbridge/botbridge/bridge"
)

// People verify the bot with SAS (emoji or decimals) through mautrix's
// verification helper. The bot answers requests, sent to its device or in
// a room (as Element does when one verifies another person), from people a
// route lets talk to a bot in an encrypted room they share with it, and
// confirms on its side: there is nobody to compare the emoji at the bot's
// end, so it logs them for the operator, whom a careful person asks to
// read them out. Once both sides confirmed, the person's client trusts the
// bot's master key (and so every device the bot signs), and the bot signs
// the person's master key with its user-signing key.
//
// mautrix v0.30.0's helper keys every in-room event by its own event id,
// which is the transaction's only for the request; the later events name
// the request in their m.relates_to. The verifier hands the helper copies
// of those events whose id is the request's.

// verifier answers SAS verification requests.
type verifier struct {
	a      *Adapter
	helper *verificationhelper.VerificationHelper
	// events holds the helper's handlers; the sync loop feeds it the
	// to-device verification events of each batch.
	events *mautrix.DefaultSyncer

	mu sync.Mutex
	// peers are the people whose requests were accepted, by transaction.
	peers map[id.VerificationTransactionID]peer
	// confirm are the transactions whose SAS was shown; the sync loop
	// confirms them after the batch, outside the helper's callbacks.
	confirm []id.VerificationTransactionID
}

type peer struct {
	user   id.UserID
	device id.DeviceID
}

// maxPeers bounds the verifications the verifier remembers; past it, it
// forgets them all (the helper itself cancels them after ten minutes).
const maxPeers = 1000

// newVerifier makes the verifier. The helper registers its handlers on the
// client's syncer at Init; they go to the verifier's own instead, so that
// only the events the sync loop hands over reach it.
func newVerifier(ctx context.Context, a *Adapter) (*verifier, error) {
	v := &verifier{a: a, events: mautrix.NewDefaultSyncer(), peers: make(map[id.VerificationTransactionID]peer)}
	v.helper = verificationhelper.NewVerificationHelper(a.cli, a.crypto.Machine(), nil, v, false, false, true)
	syncer := a.cli.Syncer
	a.cli.Syncer = v.events
	err := v.helper.Init(ctx)
	a.cli.Syncer = syncer
	if err != nil {
		return nil, fmt.Errorf("matrix: verification: %w", err)
	}
	return v, nil
}

// handle hands the to-device verification events of a sync response to
// the helper, then confirms the SAS shown meanwhile. The sync loop calls
// it after mautrix's own handlers saw resp.
func (v *verifier) handle(ctx context.Context, resp *mautrix.RespSync) {
	for _, evt := range resp.ToDevice.Events {
		if strings.HasPrefix(evt.Type.Type, "m.key.verification.") {
			v.events.Dispatch(ctx, evt)
		}
	}
	v.confirmShown(ctx)
}

// roomEvent hands an in-room verification event to the helper and reports
// whether evt was one: a request to the bot (an m.room.message of type
// m.key.verification.request), or a later event of a request. Such events
// are never messages for the bridge. The sync loop calls it before the
// trust policy, which verification is how to satisfy.
func (v *verifier) roomEvent(ctx context.Context, evt *event.Event) bool {
	switch {
	case evt.Type.Type == event.EventMessage.Type:
		c, ok := evt.Content.Parsed.(*event.MessageEventContent)
		if !ok || c.MsgType != event.MsgVerificationRequest {
			return false
		}
		if c.To == v.a.user && evt.Sender != v.a.user {
			v.events.Dispatch(ctx, evt)
		}
		return true
	case strings.HasPrefix(evt.Type.Type, "m.key.verification."):
		if evt.Sender == v.a.user {
			return true // the bot's own, echoed
		}
		var request id.EventID
		if r, ok := evt.Content.Parsed.(event.Relatable); ok && r.OptionalGetRelatesTo() != nil {
			request = r.OptionalGetRelatesTo().EventID
		}
		if request == "" {
			return true
		}
		keyed := *evt
		keyed.ID = request
		v.events.Dispatch(ctx, &keyed)
		v.confirmShown(ctx)
		return true
	}
	return false
}

// confirmShown confirms the transactions whose SAS the helper showed,
// outside its callbacks (which hold its lock). It runs right after the
// event that showed the SAS, which is also when the bot sent its SAS key,
// so the bot always confirms before the person's MAC can arrive (the
// person needs that key to make it). The order matters: mautrix v0.30.0's
// ConfirmSAS, called after the other side's MAC, checks the person's
// master key against the bot's own and fails ("master keys do not match",
// mautrix/go pull request 554); the other way round it checks the key the
// person MAC'd.
func (v *verifier) confirmShown(ctx context.Context) {
	v.mu.Lock()
	confirm := v.confirm
	v.confirm = nil
	v.mu.Unlock()
	for _, txn := range confirm {
		if err := v.helper.ConfirmSAS(ctx, txn); err != nil {
			v.a.log.Warn("cannot confirm a verification", "transaction", txn, bridge.LogErr, err)
		}
	}
}

// peer returns who a transaction is with.
func (v *verifier) peer(txn id.VerificationTransactionID) peer {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.peers[txn]
}

// VerificationRequested implements verificationhelper.RequiredCallbacks: it
// accepts a request of someone a route admits, and cancels the others.
func (v *verifier) VerificationRequested(ctx context.Context, txn id.VerificationTransactionID, from id.UserID, device id.DeviceID) {
	log := v.a.log.With(logUser, from, logDevice, device, "transaction", txn)
	if !v.a.admitsUser(ctx, from) {
		log.Info("verification request refused: no route lets this person talk to a bot in an encrypted room shared with the bot")
		if err := v.helper.CancelVerification(ctx, txn, event.VerificationCancelCodeUser, "this bot does not verify with you"); err != nil {
			log.Debug("cancel a verification request", bridge.LogErr, err)
		}
		return
	}
	if err := v.helper.AcceptVerification(ctx, txn); err != nil {
		log.Warn("cannot accept a verification request", bridge.LogErr, err)
		return
	}
	v.mu.Lock()
	if len(v.peers) >= maxPeers {
		clear(v.peers)
	}
	v.peers[txn] = peer{from, device}
	v.mu.Unlock()
	log.Info("verification request accepted; the emoji to compare are logged when the person starts")
}

// VerificationReady implements verificationhelper.RequiredCallbacks; the
// person's client starts SAS.
func (v *verifier) VerificationReady(context.Context, id.VerificationTransactionID, id.DeviceID, bool, bool, *verificationhelper.QRCode) {
}

// ShowSAS implements verificationhelper.ShowSASCallbacks: it logs what the
// person's screen should show and queues the bot's confirmation.
func (v *verifier) ShowSAS(ctx context.Context, txn id.VerificationTransactionID, emojis []rune, descriptions []string, decimals []int) {
	p := v.peer(txn)
	v.a.log.Info("verification: the person's screen must show these emoji (or numbers); the bot confirms on its side, so compare them with the person if they ask",
		logUser, p.user, logDevice, p.device, "transaction", txn, "emoji", sasEmoji(emojis, descriptions), "decimals", sasDecimals(decimals))
	v.mu.Lock()
	v.confirm = append(v.confirm, txn)
	v.mu.Unlock()
}

// VerificationDone implements verificationhelper.RequiredCallbacks.
func (v *verifier) VerificationDone(ctx context.Context, txn id.VerificationTransactionID, method event.VerificationMethod) {
	p := v.forget(txn)
	v.a.log.Info("verified: the person's device and the bot trust each other", logUser, p.user, logDevice, p.device, "transaction", txn)
}

// VerificationCancelled implements verificationhelper.RequiredCallbacks.
func (v *verifier) VerificationCancelled(ctx context.Context, txn id.VerificationTransactionID, code event.VerificationCancelCode, reason string) {
	p := v.forget(txn)
	v.a.log.Info("verification cancelled", logUser, p.user, logDevice, p.device, "transaction", txn, "code", code, logReason, reason)
}

func (v *verifier) forget(txn id.VerificationTransactionID) peer {
	v.mu.Lock()
	defer v.mu.Unlock()
	p := v.peers[txn]
	delete(v.peers, txn)
	return p
}

// sasEmoji writes emoji with their names, as clients show them.
func sasEmoji(emojis []rune, descriptions []string) string {
	parts := make([]string, len(emojis))
	for i, e := range emojis {
		parts[i] = string(e)
		if i < len(descriptions) {
			parts[i] += " " + descriptions[i]
		}
	}
	return strings.Join(parts, ", ")
}

// sasDecimals writes the three SAS numbers.
func sasDecimals(decimals []int) string {
	parts := make([]string, len(decimals))
	for i, d := range decimals {
		parts[i] = fmt.Sprint(d)
	}
	return strings.Join(parts, " ")
}

// admitsUser reports whether Admit lets user talk to a bot in one of the
// encrypted rooms the bot shares with them.
func (a *Adapter) admitsUser(ctx context.Context, user id.UserID) bool {
	rooms, err := a.state.FindSharedRooms(ctx, user)
	if err != nil {
		a.log.Warn("find the rooms shared with a person", logUser, user, bridge.LogErr, err)
		return false
	}
	for _, room := range rooms {
		if !a.state.IsInRoom(ctx, room, user) || !a.state.IsInRoom(ctx, room, a.user) {
			continue
		}
		if a.opts.Admit == nil || a.opts.Admit(bridge.Inbound{
			Room:     bridge.RoomKey{Platform: Platform, Room: string(room)},
			RoomName: a.roomName(ctx, room),
			Sender:   bridge.Sender{ID: string(user)},
			DM:       a.direct(ctx, room),
		}) {
			return true
		}
	}
	return false
}
