package matrix

import (
	"context"
	"errors"
	"net/http"
	"slices"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/botbridge/botbridge/bridge"
)

// A room upgrade replaces a room with a new one: the old room gets an
// m.room.tombstone naming its replacement and becomes read-only. The bot
// follows when a route lets the one who upgraded talk to a bot in the new
// room: it moves the room's conversations to the new room in the store
// (Rooms.RenameRoom), so that the talk goes on in the same Botpress
// conversations, and joins. An invite-only new room needs an invite,
// which people's clients send when they upgrade; the bot accepts it as any
// other.

// Rooms is the part of the bridge's store that moves a room's
// conversations to the room that replaces it. *store.DB implements it.
type Rooms interface {
	// RenameRoom moves what the bridge keeps of room from of platform to
	// room to and returns how many conversations moved; moving again moves
	// none.
	RenameRoom(ctx context.Context, platform bridge.Platform, from, to string) (int, error)
}

// maxFollowed bounds the upgrades the adapter remembers having followed.
const maxFollowed = 10_000

// followUpgrades follows the room upgrades of a sync response. The sync
// loop calls it after the batch's messages were stored, so that those of
// the old room stay with its conversations as they were. It returns false
// when ctx ended first.
func (a *Adapter) followUpgrades(ctx context.Context, resp *mautrix.RespSync) bool {
	for room, jr := range resp.Rooms.Join {
		for _, evt := range slices.Concat(jr.State.Events, jr.Timeline.Events) {
			if evt.Type.Type != event.StateTombstone.Type || evt.GetStateKey() != "" {
				continue
			}
			next, _ := evt.Content.Raw["replacement_room"].(string)
			if next == "" || a.followed[room] == id.RoomID(next) {
				continue
			}
			if !a.upgraded(ctx, room, id.RoomID(next), evt.Sender) {
				return false
			}
			if len(a.followed) >= maxFollowed {
				clear(a.followed)
			}
			a.followed[room] = id.RoomID(next)
		}
	}
	return true
}

// upgraded follows the upgrade of room old to room next by user, when a
// route lets user talk to a bot in the new room. It returns false when ctx
// ended first.
func (a *Adapter) upgraded(ctx context.Context, old, next id.RoomID, user id.UserID) bool {
	log := a.log.With(bridge.LogRoom, old, "new_room", next, logUser, user)
	// The upgrade moves the old room's alias to the new one; what the
	// directory said of it before no longer holds.
	alias := a.alias(ctx, old)
	a.mu.Lock()
	delete(a.directory, alias)
	a.mu.Unlock()
	asked := bridge.Inbound{
		Room:     bridge.RoomKey{Platform: Platform, Room: string(next)},
		RoomName: a.confirmAlias(ctx, next, alias),
		Sender:   bridge.Sender{ID: string(user)},
		DM:       a.direct(ctx, old),
	}
	if a.opts.Admit != nil && !a.opts.Admit(asked) {
		log.Info("a room was upgraded; the bot stays behind: no route lets the one who upgraded it talk to a bot in the new room")
		return true
	}
	var moved int
	if !a.retry(ctx, "move a room's conversations to the room that replaces it", func() (err error) {
		moved, err = a.opts.Store.RenameRoom(ctx, Platform, string(old), string(next))
		return err
	}) {
		return false
	}
	if a.state.IsInRoom(ctx, next, a.user) {
		log.Info("followed a room upgrade: the conversation goes on in the new room", logCount, moved)
		return true
	}
	err := a.retryTransient(ctx, a.backoff(), "join the room that replaces another", func() error {
		_, err := a.cli.JoinRoom(ctx, string(next), &mautrix.ReqJoinRoom{Via: []string{user.Homeserver()}})
		return err
	})
	var he mautrix.HTTPError
	switch {
	case ctx.Err() != nil:
		return false
	case errors.Is(err, mautrix.MForbidden), errors.As(err, &he) && he.IsStatus(http.StatusForbidden):
		log.Info("followed a room upgrade: the conversation goes on in the new room once the bot is invited there (it is invite-only)", logCount, moved)
	case err != nil:
		log.Warn("a room was upgraded; the bot cannot join the new room: invite it there", logCount, moved, bridge.LogErr, err)
	default:
		a.mu.Lock()
		delete(a.removed, next)
		a.mu.Unlock()
		log.Info("followed a room upgrade: joined the new room, where the conversation goes on", logCount, moved)
	}
	return true
}
