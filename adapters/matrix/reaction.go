package matrix

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/botbridge/botbridge/bridge"
)

// Choices by reaction: under a choice it posts (render.Offered: up to ten
// options), the bot reacts with the keycaps 1️⃣ to 🔟; a person's keycap
// reaction on the message of the choice standing in its room reaches the
// bridge as the number typed there, and the bridge matches it to the
// choice after routing, as it does a typed number. The reaction's event id
// is its event key, so a reaction handed over again is stored once; and the
// bridge closes a choice once answered, so a second reaction finds none.

// keycaps are the reactions offered, for options 1 to 10.
var keycaps = [...]string{"1️⃣", "2️⃣", "3️⃣", "4️⃣", "5️⃣", "6️⃣", "7️⃣", "8️⃣", "9️⃣", "🔟"}

// Offers is the part of the bridge's store that knows the choice standing
// in a room. *store.DB implements it.
type Offers interface {
	// Offer returns the offer standing in room (thread included), or an
	// error wrapping bridge.ErrNotFound.
	Offer(ctx context.Context, room bridge.RoomKey) (bridge.Offer, error)
}

// keycapNumber returns the number of a keycap reaction, 1 to 10; clients
// send the digits' keycaps with or without the emoji variation selector.
func keycapNumber(key string) (int, bool) {
	if key == keycaps[9] {
		return 10, true
	}
	digit, ok := strings.CutSuffix(strings.Replace(key, "\ufe0f", "", 1), "\u20e3")
	if !ok || len(digit) != 1 || digit[0] < '1' || digit[0] > '9' {
		return 0, false
	}
	return int(digit[0] - '0'), true
}

// keycapQueue bounds the choices waiting for their keycaps.
const keycapQueue = 100

// keycapJob is a choice to react to: its first event, its number of
// options, and the base of its transaction ids.
type keycapJob struct {
	room    id.RoomID
	choice  id.EventID
	options int
	base    string
}

// queueKeycaps has keycapLoop react to a choice with a keycap per option,
// when there are ten options or fewer. Send does not wait for it: the
// bridge records the choice when Send returns, and an answer that comes
// first, typed or reacted, would not find it.
func (a *Adapter) queueKeycaps(j keycapJob) {
	if j.options < 1 || j.options > len(keycaps) || j.choice == "" {
		return
	}
	select {
	case a.keycaps <- j:
	default:
		a.logLimited(slog.LevelWarn, "keycaps full", "too many choices wait for their keycap reactions; this one is answered by number only",
			bridge.LogRoom, j.room, logEvent, j.choice)
	}
}

// keycapLoop posts the queued keycap reactions until ctx ends.
func (a *Adapter) keycapLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case j := <-a.keycaps:
			a.offerKeycaps(ctx, j)
		}
	}
}

// offerKeycaps reacts to a choice with a keycap per option. The reactions'
// transaction ids come from the choice's, so that posting the choice
// again does not react twice where the homeserver remembers them.
// Failures are logged: the choice can be answered by number all the same.
func (a *Adapter) offerKeycaps(ctx context.Context, j keycapJob) {
	for i, key := range keycaps[:j.options] {
		c := &event.ReactionEventContent{RelatesTo: *(&event.RelatesTo{}).SetAnnotation(j.choice, key)}
		err := a.rateLimited(ctx, j.room, func() error {
			_, err := a.cli.SendMessageEvent(ctx, j.room, event.EventReaction, c, mautrix.ReqSendEvent{TransactionID: j.base + ".r" + strconv.Itoa(i)})
			return err
		})
		if err != nil {
			if ctx.Err() == nil {
				a.logLimited(slog.LevelWarn, "keycaps "+string(j.room), "cannot offer the choice's answers as reactions; people answer by number",
					bridge.LogRoom, j.room, logEvent, j.choice, bridge.LogErr, err)
			}
			return
		}
	}
}

// reaction turns an m.reaction (an m.annotation of an event, its key the
// emoji) into an Inbound: a keycap on the message of the choice standing in
// its room is the number typed there (keycapAnswer); any other reaction is
// a bridge.Reaction, which the bridge keeps when it is on a message of the
// bot. Taking a reaction back redacts it, which is not forwarded.
func (a *Adapter) reaction(ctx context.Context, evt *event.Event) (bridge.Inbound, bool) {
	if evt.Content.Parsed == nil {
		evt.Type.Class = event.MessageEventType
		_ = evt.Content.ParseRaw(event.EventReaction)
	}
	c, ok := evt.Content.Parsed.(*event.ReactionEventContent)
	if !ok || evt.Unsigned.RedactedBecause != nil || c.RelatesTo.Type != event.RelAnnotation ||
		c.RelatesTo.EventID == "" || c.RelatesTo.Key == "" {
		return bridge.Inbound{}, false
	}
	if n, ok := keycapNumber(c.RelatesTo.Key); ok {
		if in, ok := a.keycapAnswer(ctx, evt, c.RelatesTo.EventID, n); ok {
			return in, true
		}
	}
	return bridge.Inbound{
		Key:      bridge.EventKey(evt.ID),
		Room:     bridge.RoomKey{Platform: Platform, Room: string(evt.RoomID)},
		RoomName: a.roomName(ctx, evt.RoomID),
		Sender:   a.sender(ctx, evt.RoomID, evt.Sender, ""),
		DM:       a.direct(ctx, evt.RoomID),
		Reaction: &bridge.Reaction{Emoji: c.RelatesTo.Key, MessageID: string(c.RelatesTo.EventID)},
		Time:     time.UnixMilli(evt.Timestamp),
	}, true
}

// keycapAnswer turns the keycap n on target into the number typed in the
// room (and thread) of the choice standing there, when target is that
// choice's message; else it reports false.
func (a *Adapter) keycapAnswer(ctx context.Context, evt *event.Event, target id.EventID, n int) (bridge.Inbound, bool) {
	log := a.log.With(bridge.LogRoom, evt.RoomID, logEvent, evt.ID, logUser, evt.Sender)
	thread, mine, err := a.postedThread(ctx, evt.RoomID, target)
	if err != nil || !mine {
		if err != nil {
			log.Debug("look up the message a reaction is on", bridge.LogErr, err)
		}
		return bridge.Inbound{}, false
	}
	room := bridge.RoomKey{Platform: Platform, Room: string(evt.RoomID), Thread: string(thread)}
	offer, err := a.opts.Store.Offer(ctx, room)
	switch {
	case errors.Is(err, bridge.ErrNotFound):
		log.Debug("a keycap reaction on a message of the bot whose choice no longer stands")
		return bridge.Inbound{}, false
	case err != nil:
		log.Warn("read the choice standing in a room; a keycap reaction goes to the bot as a reaction", bridge.LogErr, err)
		return bridge.Inbound{}, false
	case offer.MessageID != string(target):
		log.Debug("a keycap reaction on an earlier choice of the bot")
		return bridge.Inbound{}, false
	}
	return bridge.Inbound{
		Key:      bridge.EventKey(evt.ID),
		Room:     room,
		RoomName: a.roomName(ctx, evt.RoomID),
		// The answer goes in reply to the choice.
		MessageID: string(target),
		Sender:    a.sender(ctx, evt.RoomID, evt.Sender, ""),
		DM:        a.direct(ctx, evt.RoomID),
		Text:      strconv.Itoa(n),
		Time:      time.UnixMilli(evt.Timestamp),
	}, true
}

// postedThread looks up an event of room and reports whether the bot
// posted it, and the thread it is in.
func (a *Adapter) postedThread(ctx context.Context, room id.RoomID, eventID id.EventID) (id.EventID, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	evt, err := a.cli.GetEvent(ctx, room, eventID)
	if err != nil {
		return "", false, err
	}
	if evt.Sender != a.user {
		return "", false, nil
	}
	// The relation of an encrypted event is outside its ciphertext.
	if rel, ok := evt.Content.Raw["m.relates_to"].(map[string]any); ok && rel["rel_type"] == string(event.RelThread) {
		s, _ := rel["event_id"].(string)
		return id.EventID(s), true, nil
	}
	return "", true, nil
}
