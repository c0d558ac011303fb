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
	"github.com/botbridge/botbridge/bridge/render"
	"github.com/botbridge/botbridge/chat"
)

// typingTimeout is how long the typing indicator lasts unless turned off;
// the bridge turns it off sooner when the bot answers or gives up.
const typingTimeout = 2 * time.Minute

// findSentLimit is how many of its recent events in a room FindSent reads.
const findSentLimit = 100

// Send implements bridge.Adapter. It renders out into one or more events
// (long texts split, cards and long lists of options over several events,
// a bloc's items one by one, media fetched from the bot's URLs and
// uploaded) and posts those out.Posted does not hold in out.Room's thread,
// or as a reply to out.ReplyTo, mentioning out.ReplyToUser. Each event's
// transaction id is derived from out.ID and the part. It waits for Run to
// have logged in and waits out the homeserver's rate limits. A part the
// homeserver refuses as too large is posted again in smaller pieces, which
// become parts of their own. It returns the event id of every part; on
// failure, those posted so far, with an error wrapped with bridge.NoAccess
// when the bot is no longer in the room (removed, or never joined), or
// with bridge.Permanent when the room does not let it post or the
// homeserver refuses the post. Under a choice of up to ten options, Run
// adds a keycap reaction per option once Send returned.
func (a *Adapter) Send(ctx context.Context, out bridge.Outbound) (bridge.Parts, error) {
	if err := a.waitConnected(ctx); err != nil {
		return out.Posted, err
	}
	room, err := roomID(out.Room)
	if err != nil {
		return out.Posted, err
	}
	encrypted, err := a.encrypted(ctx, room)
	if err != nil {
		return out.Posted, err
	}
	parts := renderMax(out.Payload, a.budget)
	if len(parts) == 0 {
		return nil, bridge.Permanent(fmt.Errorf("matrix: a %s message renders as nothing", out.Payload.PayloadType()))
	}
	base := txnBase(out.ID)
	// Parts split after a refusal make out.Posted longer than parts; it is
	// then of no use, and posting all again with the same transaction ids
	// is deduplicated by the homeserver.
	resume := len(out.Posted) == len(parts)
	var posted bridge.Parts
	for i, p := range parts {
		if resume && out.Posted[i] != "" {
			posted = append(posted, out.Posted[i])
			continue
		}
		unposted := func() bridge.Parts { return append(posted, make(bridge.Parts, len(parts)-i)...) }
		if p.media != nil {
			c, err := a.upload(ctx, room, encrypted, p.media)
			if err != nil {
				return unposted(), err
			}
			p = part{content: c}
		}
		txn := base + "." + strconv.Itoa(i) + "." + strconv.Itoa(len(parts))
		if err := a.post(ctx, room, out, p, txn, &posted); err != nil {
			return unposted(), err
		}
	}
	if opts := render.Offered(out.Payload); len(opts) > 0 {
		a.queueKeycaps(keycapJob{room: room, choice: id.EventID(posted.First()), options: len(opts), base: base})
	}
	return posted, nil
}

// AnswersByText implements bridge.TextChoices: Matrix has no buttons, so
// people answer a choice with its number or label, or with the keycap
// reaction Send offers under it, which the bridge turns into the option's
// value.
func (a *Adapter) AnswersByText() {}

// post posts p after the parts posted so far, and adds its event to them.
// A part the homeserver refuses as too large is split and its pieces
// posted in its place, with transaction ids derived from txn.
func (a *Adapter) post(ctx context.Context, room id.RoomID, out bridge.Outbound, p part, txn string, posted *bridge.Parts) error {
	evt, err := a.sendMessage(ctx, room, relate(p.content, out, *posted), txn)
	if err == nil {
		*posted = append(*posted, string(evt))
		return nil
	}
	if tooLarge(err) {
		if pieces, ok := p.split(); ok {
			a.log.Info("the homeserver refused part of a reply as too large; posting it in smaller pieces",
				bridge.LogRoom, room, logCount, len(pieces), bridge.LogErr, err)
			for j, piece := range pieces {
				if err := a.post(ctx, room, out, piece, txn+"."+strconv.Itoa(j)+"-"+strconv.Itoa(len(pieces)), posted); err != nil {
					return err
				}
			}
			return nil
		}
	}
	return a.sendFailed(ctx, room, "post", err)
}

// tooLarge reports whether the homeserver refused an event for its size.
func tooLarge(err error) bool {
	var he mautrix.HTTPError
	return errors.Is(err, mautrix.MTooLarge) || errors.As(err, &he) && he.IsStatus(http.StatusRequestEntityTooLarge)
}

// relate places a part of out after the parts posted so far: in out's
// thread (with a reply fallback to the part before), or the first part as a
// reply to out.ReplyTo; the first part mentions out.ReplyToUser.
func relate(c *event.MessageEventContent, out bridge.Outbound, posted bridge.Parts) *event.MessageEventContent {
	cp := *c
	c = &cp
	c.Mentions = &event.Mentions{}
	first := len(posted) == 0
	if first && out.ReplyToUser != "" {
		c.Mentions.Add(id.UserID(out.ReplyToUser))
	}
	prev := id.EventID(out.ReplyTo)
	if !first {
		prev = id.EventID(posted[len(posted)-1])
	}
	switch {
	case out.Room.Thread != "":
		if prev == "" {
			prev = id.EventID(out.Room.Thread)
		}
		c.RelatesTo = (&event.RelatesTo{}).SetThread(id.EventID(out.Room.Thread), prev)
	case first && out.ReplyTo != "":
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
// Send derives from out.ID, and returns the event of each part it found.
// The pieces of a part Send had to split after the homeserver refused it
// are not counted: that part is reported missing, and Send posts it again
// with the same transaction ids, which the homeserver deduplicates.
func (a *Adapter) FindSent(ctx context.Context, out bridge.Outbound) (bridge.Parts, error) {
	if err := a.waitConnected(ctx); err != nil {
		return nil, err
	}
	room, err := roomID(out.Room)
	if err != nil {
		return nil, err
	}
	filter := fmt.Sprintf(`{"room":{"rooms":[%q],"timeline":{"limit":%d,"senders":[%q]},"state":{"types":[]},`+
		`"ephemeral":{"types":[]},"account_data":{"types":[]}},"presence":{"types":[]},"account_data":{"types":[]}}`,
		room, findSentLimit, a.user)
	resp, err := a.cli.FullSyncRequest(ctx, mautrix.ReqSync{FilterID: filter})
	if err != nil {
		return nil, fmt.Errorf("matrix: look for a message sent before: %w", err)
	}
	jr := resp.Rooms.Join[room]
	if jr == nil {
		return nil, nil
	}
	base := txnBase(out.ID)
	var found bridge.Parts
	for _, evt := range jr.Timeline.Events {
		if i, n, ok := parseTxn(evt.Unsigned.TransactionID, base); ok && evt.Sender == a.user {
			if len(found) != n {
				found = make(bridge.Parts, n)
			}
			found[i] = string(evt.ID)
		}
	}
	return found, nil
}

// Edit implements bridge.Editor: it replaces the message with an m.replace
// edit showing p (text as Markdown, anything else as plain text).
//
// The first part shows all of p; a message of several parts keeps the
// others as they are.
func (a *Adapter) Edit(ctx context.Context, room bridge.RoomKey, posted bridge.Parts, p chat.Payload) (bridge.Parts, error) {
	if err := a.waitConnected(ctx); err != nil {
		return posted, err
	}
	r, err := roomID(room)
	if err != nil {
		return posted, err
	}
	if posted.First() == "" {
		return posted, bridge.Permanent(errors.New("matrix: edit: no message to edit"))
	}
	c := editContent(p)
	c.SetEdit(id.EventID(posted.First()))
	if _, err := a.sendMessage(ctx, r, c, a.cli.TxnID()); err != nil {
		return posted, a.sendFailed(ctx, r, "edit", err)
	}
	return posted, nil
}

// Delete implements bridge.Deleter: it redacts every part of the message.
func (a *Adapter) Delete(ctx context.Context, room bridge.RoomKey, posted bridge.Parts) error {
	if err := a.waitConnected(ctx); err != nil {
		return err
	}
	r, err := roomID(room)
	if err != nil {
		return err
	}
	for _, evt := range posted {
		if evt == "" {
			continue
		}
		err = a.rateLimited(ctx, r, func() error {
			_, err := a.cli.RedactEvent(ctx, r, id.EventID(evt), mautrix.ReqRedact{Reason: "deleted by the bot"})
			return err
		})
		if err != nil {
			return a.sendFailed(ctx, r, "delete", err)
		}
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

// sendFailed explains a failed post. A room the bot is no longer in is
// bridge.NoAccess: inviting it back fixes that, so the bridge retries for a
// while. A room that refuses the bot otherwise (it may not post there) is a
// permanent failure, as is any other refusal (4xx) of the homeserver.
func (a *Adapter) sendFailed(ctx context.Context, room id.RoomID, op string, err error) error {
	if ctx.Err() != nil || transient(err) {
		return fmt.Errorf("matrix: %s in %s: %w", op, room, err)
	}
	if errors.Is(err, mautrix.MForbidden) {
		if reason := a.membershipLost(ctx, room); reason != "" {
			a.logLimited(slog.LevelWarn, "removed "+string(room), "cannot post: the bot is no longer in the room; invite it again",
				bridge.LogRoom, room, logReason, reason)
			return bridge.NoAccess(fmt.Errorf("matrix: %s in %s: the bot is no longer in the room (%s): invite it again: %w", op, room, reason, err))
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
