package matrix

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/botbridge/botbridge/bridge"
	"github.com/botbridge/botbridge/chat"
)

// typingTimeout is how long the typing indicator lasts unless turned off;
// the bridge turns it off sooner when the bot answers or gives up.
const typingTimeout = 2 * time.Minute

// findSentLimit is how many of its recent events in a room FindSent reads.
const findSentLimit = 100

// Send implements bridge.Adapter. It renders out into one or more events
// (long texts split, a bloc's items one by one, media fetched from the
// bot's URLs and uploaded) and posts them in out.Room's thread, or as a
// reply to out.ReplyTo, mentioning out.ReplyToUser. Each event's
// transaction id is derived from out.ID. It waits for Run to have logged in
// and waits out the homeserver's rate limits. It returns the id of the
// first event; an error wrapped with bridge.Permanent when the room refuses
// the bot (it was removed, or may not post).
func (a *Adapter) Send(ctx context.Context, out bridge.Outbound) (string, error) {
	if err := a.waitConnected(ctx); err != nil {
		return "", err
	}
	room, err := roomID(out.Room)
	if err != nil {
		return "", err
	}
	encrypted, err := a.encrypted(ctx, room)
	if err != nil {
		return "", err
	}
	parts := render(out.Payload)
	a.mu.Lock()
	done := a.recovered[out.ID]
	delete(a.recovered, out.ID)
	a.mu.Unlock()

	base := txnBase(out.ID)
	ids := make([]id.EventID, len(parts))
	for i, p := range parts {
		if evt, ok := done[i]; ok {
			ids[i] = evt
			continue
		}
		c := p.content
		if p.media != nil {
			if c, err = a.upload(ctx, room, encrypted, p.media); err != nil {
				return "", err
			}
		}
		c = relate(c, out, i, ids)
		txn := base + "." + strconv.Itoa(i) + "." + strconv.Itoa(len(parts))
		if ids[i], err = a.sendMessage(ctx, room, c, txn); err != nil {
			return "", a.sendFailed(ctx, room, "post", err)
		}
	}
	if len(ids) == 0 {
		return "", bridge.Permanent(fmt.Errorf("matrix: a %s message renders as nothing", out.Payload.PayloadType()))
	}
	a.choices.Offer(out.Room, string(ids[0]), out.Payload)
	return string(ids[0]), nil
}

// relate places part i of out: in out's thread (with a reply fallback to
// the message before), or the first part as a reply to out.ReplyTo; the
// first part mentions out.ReplyToUser.
func relate(c *event.MessageEventContent, out bridge.Outbound, i int, ids []id.EventID) *event.MessageEventContent {
	cp := *c
	c = &cp
	c.Mentions = &event.Mentions{}
	if i == 0 && out.ReplyToUser != "" {
		c.Mentions.Add(id.UserID(out.ReplyToUser))
	}
	prev := id.EventID(out.ReplyTo)
	if i > 0 {
		prev = ids[i-1]
	}
	switch {
	case out.Room.Thread != "":
		if prev == "" {
			prev = id.EventID(out.Room.Thread)
		}
		c.RelatesTo = (&event.RelatesTo{}).SetThread(id.EventID(out.Room.Thread), prev)
	case i == 0 && out.ReplyTo != "":
		c.RelatesTo = (&event.RelatesTo{}).SetReplyTo(id.EventID(out.ReplyTo))
	}
	return c
}

// txnBase derives the transaction ids of a message's events from its Chat
// API id: a resend uses the same ones, so a homeserver that remembers them
// does not post twice.
func txnBase(msg chat.MessageID) string {
	sum := sha256.Sum256([]byte(msg))
	return "bb" + base64.RawURLEncoding.EncodeToString(sum[:18])
}

// parseTxn returns the part and number of parts of a transaction id made
// for the message with base.
func parseTxn(txn, base string) (part, parts int, ok bool) {
	rest, ok := strings.CutPrefix(txn, base+".")
	if !ok {
		return 0, 0, false
	}
	p, n, ok := strings.Cut(rest, ".")
	if !ok {
		return 0, 0, false
	}
	part, err1 := strconv.Atoi(p)
	parts, err2 := strconv.Atoi(n)
	return part, parts, err1 == nil && err2 == nil && part >= 0 && part < parts
}

// FindSent implements bridge.Recoverer. It reads the bot's recent events in
// out.Room (an initial sync of that room alone: Dendrite shows a sender its
// transaction ids there, and not in /messages) for the transaction ids
// Send derives from out.ID. It returns the first event's id when every
// part of out is there; when only some are, it remembers them so that the
// next Send posts only the rest.
func (a *Adapter) FindSent(ctx context.Context, out bridge.Outbound) (string, bool, error) {
	if err := a.waitConnected(ctx); err != nil {
		return "", false, err
	}
	room, err := roomID(out.Room)
	if err != nil {
		return "", false, err
	}
	filter := fmt.Sprintf(`{"room":{"rooms":[%q],"timeline":{"limit":%d,"senders":[%q]},"state":{"types":[]},`+
		`"ephemeral":{"types":[]},"account_data":{"types":[]}},"presence":{"types":[]},"account_data":{"types":[]}}`,
		room, findSentLimit, a.user)
	resp, err := a.cli.FullSyncRequest(ctx, mautrix.ReqSync{FilterID: filter})
	if err != nil {
		return "", false, fmt.Errorf("matrix: look for a message sent before: %w", err)
	}
	jr := resp.Rooms.Join[room]
	if jr == nil {
		return "", false, nil
	}
	base := txnBase(out.ID)
	found := map[int]id.EventID{}
	parts := 0
	for _, evt := range jr.Timeline.Events {
		if i, n, ok := parseTxn(evt.Unsigned.TransactionID, base); ok && evt.Sender == a.user {
			found[i], parts = evt.ID, n
		}
	}
	switch {
	case len(found) == 0:
		return "", false, nil
	case len(found) == parts:
		return string(found[0]), true, nil
	}
	a.mu.Lock()
	a.recovered[out.ID] = found
	a.mu.Unlock()
	a.log.Info("part of a reply was posted before the restart; posting the rest", bridge.LogRoom, room,
		bridge.LogMessage, string(out.ID), logCount, len(found))
	return "", false, nil
}

// Edit implements bridge.Editor: it replaces the message with an m.replace
// edit showing p (text as Markdown, anything else as plain text).
func (a *Adapter) Edit(ctx context.Context, room bridge.RoomKey, platformID string, p chat.Payload) error {
	if err := a.waitConnected(ctx); err != nil {
		return err
	}
	r, err := roomID(room)
	if err != nil {
		return err
	}
	c := editContent(p)
	c.SetEdit(id.EventID(platformID))
	if _, err := a.sendMessage(ctx, r, c, a.cli.TxnID()); err != nil {
		return a.sendFailed(ctx, r, "edit", err)
	}
	return nil
}

// Delete implements bridge.Deleter: it redacts the message.
func (a *Adapter) Delete(ctx context.Context, room bridge.RoomKey, platformID string) error {
	if err := a.waitConnected(ctx); err != nil {
		return err
	}
	r, err := roomID(room)
	if err != nil {
		return err
	}
	err = a.rateLimited(ctx, r, func() error {
		_, err := a.cli.RedactEvent(ctx, r, id.EventID(platformID), mautrix.ReqRedact{Reason: "deleted by the bot"})
		return err
	})
	if err != nil {
		return a.sendFailed(ctx, r, "delete", err)
	}
	return nil
}

// Typing implements bridge.Typer with m.typing, which is per room: threads
// show it too.
func (a *Adapter) Typing(ctx context.Context, t bridge.ReplyTarget, on bool) error {
	if err := a.waitConnected(ctx); err != nil {
		return err
	}
	r, err := roomID(t.Room)
	if err != nil {
		return err
	}
	_, err = a.cli.UserTyping(ctx, r, on, typingTimeout)
	return err
}

func roomID(k bridge.RoomKey) (id.RoomID, error) {
	if k.Platform != Platform || !strings.HasPrefix(k.Room, "!") {
		return "", bridge.Permanent(fmt.Errorf("matrix: %s is not a Matrix room", k))
	}
	return id.RoomID(k.Room), nil
}

// encrypted reports whether room is end-to-end encrypted. It trusts the
// state store for rooms the bot is known to be in, and asks the homeserver
// for others, so that a message never goes out in the clear because a sync
// had not told of the room yet. Without encryption, an encrypted room is a
// permanent failure.
func (a *Adapter) encrypted(ctx context.Context, room id.RoomID) (bool, error) {
	enc, err := a.state.IsEncrypted(ctx, room)
	if err != nil {
		return false, fmt.Errorf("matrix: read room state: %w", err)
	}
	if !enc && !a.state.IsInRoom(ctx, room, a.user) {
		var c event.EncryptionEventContent
		err := a.cli.StateEvent(ctx, room, event.StateEncryption, "", &c)
		switch {
		case err == nil && c.Algorithm != "":
			enc = true
			if err := a.state.SetEncryptionEvent(ctx, room, &c); err != nil {
				return false, fmt.Errorf("matrix: save room state: %w", err)
			}
		case err != nil && !errors.Is(err, mautrix.MNotFound):
			return false, a.sendFailed(ctx, room, "read the room's encryption", err)
		}
	}
	if enc && a.crypto == nil {
		return true, bridge.Permanent(fmt.Errorf("matrix: room %s is end-to-end encrypted: set matrix.encryption and matrix.pickle_key to post there", room))
	}
	return enc, nil
}

// sendMessage posts one event, encrypted in encrypted rooms.
func (a *Adapter) sendMessage(ctx context.Context, room id.RoomID, c *event.MessageEventContent, txn string) (id.EventID, error) {
	var resp *mautrix.RespSendEvent
	err := a.rateLimited(ctx, room, func() (err error) {
		resp, err = a.cli.SendMessageEvent(ctx, room, event.EventMessage, c, mautrix.ReqSendEvent{TransactionID: txn})
		return err
	})
	if err != nil {
		return "", err
	}
	return resp.EventID, nil
}

// rateLimited runs fn again while the homeserver answers M_LIMIT_EXCEEDED,
// waiting as long as it asks each time. Nothing else of the room's queue
// goes out meanwhile: the bridge sends a room's messages one at a time.
func (a *Adapter) rateLimited(ctx context.Context, room id.RoomID, fn func() error) error {
	for attempt := 1; ; attempt++ {
		err := fn()
		wait, limited := retryAfter(err, attempt)
		if !limited {
			return err
		}
		a.log.Debug("rate limited by the homeserver; waiting", bridge.LogRoom, room, bridge.LogWait, wait)
		if a.opts.OnRateLimit != nil {
			a.opts.OnRateLimit(wait)
		}
		if !sleep(ctx, wait) {
			return fmt.Errorf("matrix: rate limited: %w", context.Cause(ctx))
		}
	}
}

// retryAfter returns how long a rate-limited request asks to wait.
func retryAfter(err error, attempt int) (time.Duration, bool) {
	var he mautrix.HTTPError
	if err == nil || !(errors.Is(err, mautrix.MLimitExceeded) || errors.As(err, &he) && he.IsStatus(http.StatusTooManyRequests)) {
		return 0, false
	}
	if errors.As(err, &he) {
		if he.RespError != nil {
			if ms, ok := he.RespError.ExtraData["retry_after_ms"].(float64); ok && ms > 0 {
				return time.Duration(ms) * time.Millisecond, true
			}
		}
		if he.Response != nil {
			if s, err := strconv.Atoi(he.Response.Header.Get("Retry-After")); err == nil && s > 0 {
				return time.Duration(s) * time.Second, true
			}
		}
	}
	return min(time.Duration(attempt)*time.Second, 30*time.Second), true
}

// sendFailed explains a failed post: a room that refuses the bot is a
// permanent failure, as is any other refusal (4xx) of the homeserver.
func (a *Adapter) sendFailed(ctx context.Context, room id.RoomID, op string, err error) error {
	if ctx.Err() != nil || transient(err) {
		return fmt.Errorf("matrix: %s in %s: %w", op, room, err)
	}
	if errors.Is(err, mautrix.MForbidden) {
		if reason := a.membershipLost(ctx, room); reason != "" {
			a.logLimited(slog.LevelWarn, "removed "+string(room), "cannot post: the bot is no longer in the room; invite it again",
				bridge.LogRoom, room, logReason, reason)
			return bridge.Permanent(fmt.Errorf("matrix: %s in %s: the bot is no longer in the room (%s): invite it again: %w", op, room, reason, err))
		}
		return bridge.Permanent(fmt.Errorf("matrix: %s in %s: the room does not let the bot post: give it permission to send messages: %w", op, room, err))
	}
	return bridge.Permanent(fmt.Errorf("matrix: %s in %s: %w", op, room, err))
}

// membershipLost returns why the bot is no longer in room, or "" when it
// still is: what the sync told, or else its membership as the homeserver
// has it (the sync may not have told yet).
func (a *Adapter) membershipLost(ctx context.Context, room id.RoomID) string {
	if reason := a.removedReason(room); reason != "" {
		return reason
	}
	evt, err := a.cli.FullStateEvent(ctx, room, event.StateMember, string(a.user))
	if err != nil {
		if a.state.IsInRoom(ctx, room, a.user) {
			return ""
		}
		return "not a member"
	}
	prepare(evt)
	if membership(evt.Content) == event.MembershipJoin {
		return ""
	}
	return removal(evt)
}
