package matrix

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"log/slog"
	"time"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/botbridge/botbridge/bridge"
)

// maxTrustSeen bounds the sender devices whose doubtful trust was logged;
// past it the adapter forgets them all and logs each once more.
const maxTrustSeen = 10_000

// senderTrust names how far the sender of a decrypted message can be
// trusted: mautrix's trust state of the device whose keys encrypted it
// (verified, cross-signed-…, unverified, unknown-device,
// device-key-mismatch, blacklisted…), or "forwarded" when those keys came
// through another device, which could have made the message itself.
func senderTrust(dec *event.Event) string {
	if dec.Mautrix.ForwardedKeys {
		return id.TrustStateForwarded.String()
	}
	return dec.Mautrix.TrustState.String()
}

// doubtful reports whether a decrypted message's sender is not who the
// message says, as far as the bot can tell: its keys were forwarded, or
// come from a device the sender does not have, or one whose keys do not
// match or that is blacklisted.
func doubtful(dec *event.Event) bool {
	s := dec.Mautrix.TrustState
	return dec.Mautrix.ForwardedKeys || s == id.TrustStateUnknownDevice || s == id.TrustStateForwarded || s < id.TrustStateUnset
}

// senderDevice names the device a decrypted message came from: the one
// mautrix resolved, else the identity key the message claims to come from.
// enc is the message as it came, encrypted.
func senderDevice(enc, dec *event.Event) string {
	if src := dec.Mautrix.TrustSource; src != nil {
		return string(src.DeviceID)
	}
	if c, ok := enc.Content.Parsed.(*event.EncryptedEventContent); ok && c.SenderKey != "" {
		return string(c.SenderKey)
	}
	return "unknown"
}

// firstTime reports whether key is new to seen, and remembers it; seen
// holds at most maxTrustSeen keys.
func (a *Adapter) firstTime(seen map[string]struct{}, key string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := seen[key]; ok {
		return false
	}
	if len(seen) >= maxTrustSeen {
		clear(seen)
	}
	seen[key] = struct{}{}
	return true
}

// noteTrust counts the trust of a decrypted message's sender. Under
// TrustAny, which reads them all, it logs once per sender device one that
// is not cross-signed, and with a warning one the bot cannot trust at all;
// under the other policies trusted logs what it refuses. enc is the
// message as it came, encrypted.
func (a *Adapter) noteTrust(enc, dec *event.Event) {
	state := senderTrust(dec)
	if a.opts.OnSenderTrust != nil {
		a.opts.OnSenderTrust(state)
	}
	s := dec.Mautrix.TrustState
	if a.opts.Trust != TrustAny || (!doubtful(dec) && (s >= id.TrustStateCrossSignedTOFU || s == id.TrustStateBackup)) {
		return
	}
	device := senderDevice(enc, dec)
	if !a.firstTime(a.trustSeen, string(dec.Sender)+" "+device+" "+state) {
		return
	}
	level, msg := slog.LevelInfo, "accepted a message from a device its owner has not verified (cross-signed), as matrix.trust: any lets the bot"
	if doubtful(dec) {
		level, msg = slog.LevelWarn, "accepted a message whose sender the bot cannot trust: "+trustWhy(dec)
	}
	a.logLimited(level, "trust "+string(dec.Sender)+" "+state, msg+"; later messages of this device are counted, not logged",
		bridge.LogRoom, dec.RoomID, logEvent, dec.ID, logUser, dec.Sender, logDevice, device, logTrust, state)
}

// trustWhy says in words why a message's sender cannot be trusted.
func trustWhy(dec *event.Event) string {
	switch {
	case dec.Mautrix.ForwardedKeys:
		return "its keys were forwarded by another device"
	case dec.Mautrix.TrustState == id.TrustStateUnknownDevice:
		return "its keys come from a device the sender does not have"
	case dec.Mautrix.TrustState == id.TrustStateDeviceKeyMismatch:
		return "its keys do not match the sender's device"
	case dec.Mautrix.TrustState == id.TrustStateBlacklisted:
		return "the sender's device is blacklisted"
	}
	return "its trust state is " + senderTrust(dec)
}

// accepts reports whether the policy lets the bot read a message whose
// keys and sender's device have dec's trust.
func (t Trust) accepts(dec *event.Event) bool {
	state := dec.Mautrix.TrustState
	if dec.Mautrix.ForwardedKeys {
		state = id.TrustStateForwarded
	}
	switch t {
	case TrustCrossSigned:
		return state >= id.TrustStateCrossSignedTOFU
	case TrustVerified:
		return state >= id.TrustStateCrossSignedVerified
	}
	return true
}

// noticeTimeout bounds the post of a refusal notice, which the sync loop
// waits for.
const noticeTimeout = 30 * time.Second

// trusted applies the trust policy to a decrypted message. A refused one
// is counted and logged, once per sender device; when it was meant for the
// bot (a direct chat or a mention) and a route admits its sender, the
// sender gets one short notice saying why, once per device.
func (a *Adapter) trusted(ctx context.Context, enc, dec *event.Event) bool {
	if a.opts.Trust.accepts(dec) {
		return true
	}
	a.untrusted.Add(1)
	device := senderDevice(enc, dec)
	key := string(dec.Sender) + " " + device
	why := refusalWhy(a.opts.Trust, dec)
	if a.firstTime(a.refusedSeen, "log "+key) {
		a.log.Warn("refused a message: the trust policy does not accept its sender's device (matrix.trust); later ones of this device are counted, not logged",
			bridge.LogRoom, dec.RoomID, logEvent, dec.ID, logUser, dec.Sender, logDevice, device, logTrust, senderTrust(dec),
			"policy", a.opts.Trust, logReason, why)
	}
	in, ok := a.message(ctx, dec)
	if !ok || !(in.DM || in.Mentioned) || !a.admits(ctx, enc) || !a.firstTime(a.refusedSeen, "notice "+key) {
		return false
	}
	c := &event.MessageEventContent{MsgType: event.MsgNotice, Body: why, Mentions: &event.Mentions{UserIDs: []id.UserID{dec.Sender}}}
	if in.Room.Thread != "" {
		c.RelatesTo = (&event.RelatesTo{}).SetThread(id.EventID(in.Room.Thread), dec.ID)
	} else {
		c.RelatesTo = (&event.RelatesTo{}).SetReplyTo(dec.ID)
	}
	// The transaction id comes from the event's, so that the event handed
	// over again after a restart does not post a second notice.
	sum := sha256.Sum256([]byte(dec.ID))
	txn := "bbtrust" + base64.RawURLEncoding.EncodeToString(sum[:18])
	nctx, cancel := context.WithTimeout(ctx, noticeTimeout)
	defer cancel()
	if _, err := a.sendMessage(nctx, dec.RoomID, c, txn); err != nil {
		a.log.Warn("cannot tell a sender why their message was refused", bridge.LogRoom, dec.RoomID, logUser, dec.Sender, bridge.LogErr, err)
	}
	return false
}

// refusalWhy is the notice a sender gets when the policy refuses their
// message: why, and what to do.
func refusalWhy(t Trust, dec *event.Event) string {
	s := dec.Mautrix.TrustState
	switch {
	case dec.Mautrix.ForwardedKeys || s == id.TrustStateForwarded:
		return "I did not read your message: its keys came through another device, so I cannot tell it comes from you."
	case s == id.TrustStateUnknownDevice || s == id.TrustStateDeviceKeyMismatch || s == id.TrustStateBlacklisted:
		return "I did not read your message: I cannot tell it comes from one of your devices."
	case s == id.TrustStateBackup:
		return "I did not read your message: its keys came from a backup, so I cannot tell who sent it. Please send it again."
	case t == TrustVerified:
		return "I did not read your message: I only read messages from sessions I verified. Verify me from this session (by emoji), then write again."
	}
	return "I did not read your message: this session of yours is not verified. Verify it from another of your sessions (cross-signing), then write again."
}
