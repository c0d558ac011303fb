package matrix

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/botbridge/botbridge/bridge"
)

// A room's canonical alias is whatever its creator wrote in its state (and
// in an invite's stripped state), so a room can claim the alias of another,
// or one that does not exist. Routes may name rooms by alias; an alias
// counts only when the homeserver's room directory maps it to the room.
const (
	// aliasTTL is how long the directory's answer that an alias maps to a
	// room is trusted.
	aliasTTL = 10 * time.Minute
	// aliasMissTTL is how long an alias the directory does not know is
	// remembered as such: shorter, so that a new alias counts soon.
	aliasMissTTL = time.Minute
	// maxDirectory bounds the directory cache; past it, expired answers are
	// dropped, and then all.
	maxDirectory = 10_000
)

// dirEntry is the directory's answer for an alias: the room it maps to, ""
// when none, until when the answer is trusted.
type dirEntry struct {
	room  id.RoomID
	until time.Time
}

// noteAliases remembers the canonical aliases among events.
func (a *Adapter) noteAliases(room id.RoomID, evs []*event.Event) {
	for _, evt := range evs {
		if evt.Type.Type == event.StateCanonicalAlias.Type && evt.GetStateKey() == "" {
			alias, _ := evt.Content.Raw["alias"].(string)
			a.mu.Lock()
			a.aliases[room] = alias
			a.mu.Unlock()
		}
	}
}

// roomName returns the room's canonical alias when the directory confirms
// it, else "".
func (a *Adapter) roomName(ctx context.Context, room id.RoomID) string {
	return a.confirmAlias(ctx, room, a.alias(ctx, room))
}

// alias returns the alias the room claims as its canonical one, asking the
// homeserver the first time; "" when it has none.
func (a *Adapter) alias(ctx context.Context, room id.RoomID) string {
	a.mu.Lock()
	alias, ok := a.aliases[room]
	a.mu.Unlock()
	if ok {
		return alias
	}
	var c event.CanonicalAliasEventContent
	if err := a.cli.StateEvent(ctx, room, event.StateCanonicalAlias, "", &c); err != nil && !errors.Is(err, mautrix.MNotFound) {
		a.log.Debug("read the room's alias", bridge.LogRoom, room, bridge.LogErr, err)
		return ""
	}
	a.mu.Lock()
	a.aliases[room] = string(c.Alias)
	a.mu.Unlock()
	return string(c.Alias)
}

// confirmAlias returns alias when the homeserver's directory maps it to
// room, else "". Answers are cached (aliasTTL, aliasMissTTL); a failed
// lookup is not, and the alias does not count meanwhile.
func (a *Adapter) confirmAlias(ctx context.Context, room id.RoomID, alias string) string {
	if !strings.HasPrefix(alias, "#") || !strings.Contains(alias, ":") {
		return ""
	}
	now := a.now()
	a.mu.Lock()
	e, ok := a.directory[alias]
	a.mu.Unlock()
	if !ok || !now.Before(e.until) {
		resp, err := a.cli.ResolveAlias(ctx, id.RoomAlias(alias))
		var he mautrix.HTTPError
		switch {
		case err == nil:
			e = dirEntry{room: resp.RoomID, until: now.Add(aliasTTL)}
		case errors.Is(err, mautrix.MNotFound), errors.As(err, &he) && he.IsStatus(http.StatusNotFound), !transient(err):
			e = dirEntry{until: now.Add(aliasMissTTL)}
		case ctx.Err() != nil:
			return ""
		default:
			a.logLimited(slog.LevelWarn, "directory", "cannot look a room's alias up in the directory; routes naming it do not match meanwhile",
				bridge.LogRoom, room, logAlias, alias, bridge.LogErr, err)
			return ""
		}
		a.mu.Lock()
		if len(a.directory) >= maxDirectory {
			for k, old := range a.directory {
				if !now.Before(old.until) {
					delete(a.directory, k)
				}
			}
			if len(a.directory) >= maxDirectory {
				clear(a.directory)
			}
		}
		a.directory[alias] = e
		a.mu.Unlock()
	}
	if e.room != room {
		a.logLimited(slog.LevelInfo, "alias "+string(room), "a room claims an alias the directory does not give it; routes naming the alias do not match it",
			bridge.LogRoom, room, logAlias, alias, logDirectory, e.room)
		return ""
	}
	return alias
}
