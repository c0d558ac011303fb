package matrix

import (
	"log/slog"

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

// noteTrust counts the trust of a decrypted message's sender and logs, once
// per sender device, one the bot cannot trust. Such messages are accepted
// all the same. enc is the message as it came, encrypted.
func (a *Adapter) noteTrust(enc, dec *event.Event) {
	state := senderTrust(dec)
	if a.opts.OnSenderTrust != nil {
		a.opts.OnSenderTrust(state)
	}
	if !doubtful(dec) {
		return
	}
	// The device: the one mautrix resolved, else the identity key the
	// message claims to come from.
	device := "unknown"
	if src := dec.Mautrix.TrustSource; src != nil {
		device = string(src.DeviceID)
	} else if c, ok := enc.Content.Parsed.(*event.EncryptedEventContent); ok && c.SenderKey != "" {
		device = string(c.SenderKey)
	}
	key := string(dec.Sender) + " " + device + " " + state
	a.mu.Lock()
	_, seen := a.trustSeen[key]
	if !seen {
		if len(a.trustSeen) >= maxTrustSeen {
			clear(a.trustSeen)
		}
		a.trustSeen[key] = struct{}{}
	}
	a.mu.Unlock()
	if seen {
		return
	}
	a.logLimited(slog.LevelWarn, "trust "+string(dec.Sender),
		"accepted a message whose sender the bot cannot trust: "+trustWhy(dec)+"; later messages of this device are counted, not logged",
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
