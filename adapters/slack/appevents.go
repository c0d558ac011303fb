package slack

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	slackapi "github.com/slack-go/slack"

	"github.com/botbridge/botbridge/bridge"
)

// Events of Slack that are not messages: reactions, people joining,
// agent threads (Slack's assistant threads), the App Home tab, uninstalls.

// reactionEvent is reaction_added and reaction_removed.
type reactionEvent struct {
	Type     string `json:"type"`
	User     string `json:"user"`
	Reaction string `json:"reaction"`
	ItemUser string `json:"item_user"`
	Item     struct {
		Type    string `json:"type"`
		Channel string `json:"channel"`
		TS      string `json:"ts"`
	} `json:"item"`
	EventTS string `json:"event_ts"`
}

// reaction turns a person's reaction to a message of the bot into an
// Inbound. Reactions to other messages are dropped here, for free: Slack
// says who wrote the message (item_user), and the bot's posts carry its
// bot user whatever name they show. The bridge then finds the bot message
// among those it posted.
func (a *Adapter) reaction(ctx context.Context, ws *workspace, cb eventCallback) (bridge.Inbound, bool) {
	var ev reactionEvent
	if err := json.Unmarshal(cb.Event, &ev); err != nil {
		a.logs.Warn(a.log, "malformed", "malformed event ignored", bridge.LogErr, err)
		return bridge.Inbound{}, false
	}
	self := a.whoami(ws)
	if ev.Item.Type != "message" || ev.Item.Channel == "" || ev.Item.TS == "" || ev.User == "" || ev.User == self.userID ||
		ev.ItemUser == "" || ev.ItemUser != self.userID {
		return bridge.Inbound{}, false
	}
	removed := ev.Type == "reaction_removed"
	verb := "react"
	if removed {
		verb = "unreact"
	}
	key := nonEmpty(cb.TeamID, self.teamID) + "/" + ev.Item.Channel + "/" + verb + "/" + ev.Item.TS + "/" + ev.User + "/" +
		ev.Reaction + "/" + ev.EventTS
	in := bridge.Inbound{
		Key:      bridge.EventKey(key),
		Room:     bridge.RoomKey{Platform: Platform, Room: ws.roomID(ev.Item.Channel)},
		DM:       strings.HasPrefix(ev.Item.Channel, "D"),
		Reaction: &bridge.Reaction{Emoji: ev.Reaction, Removed: removed, MessageID: ev.Item.TS},
		Time:     tsTime(ev.EventTS),
		Team:     ws.team(),
	}
	if in.Time.IsZero() {
		in.Time = a.now()
	}
	lctx, cancel := context.WithTimeout(ctx, a.cfg.LookupWait)
	defer cancel()
	u := a.user(lctx, ws, ev.User)
	in.Sender = bridge.Sender{ID: ev.User, Name: u.name, AvatarURL: u.avatar, Bot: u.bot}
	if !in.DM {
		if name := a.channelName(lctx, ws, ev.Item.Channel); name != "" {
			in.RoomName = "#" + name
		}
	}
	return in, true
}

// joinEvent is member_joined_channel.
type joinEvent struct {
	User    string `json:"user"`
	Channel string `json:"channel"`
	Inviter string `json:"inviter"`
	EventTS string `json:"event_ts"`
}

// joined turns someone joining a channel into an Event for the bot to greet
// them with, where the route welcomes people (routes[].welcome). The bot's
// own joins are not.
func (a *Adapter) joined(ctx context.Context, ws *workspace, cb eventCallback) (bridge.Inbound, bool) {
	var ev joinEvent
	if err := json.Unmarshal(cb.Event, &ev); err != nil || ev.User == "" || ev.Channel == "" {
		return bridge.Inbound{}, false
	}
	self := a.whoami(ws)
	if ev.User == self.userID {
		return bridge.Inbound{}, false
	}
	in := bridge.Inbound{
		Key:   bridge.EventKey(nonEmpty(cb.TeamID, self.teamID) + "/" + ev.Channel + "/joined/" + ev.User + "/" + ev.EventTS),
		Room:  bridge.RoomKey{Platform: Platform, Room: ws.roomID(ev.Channel)},
		Event: &bridge.Event{Name: bridge.EventJoined, Text: "joined the channel"},
		Time:  tsTime(ev.EventTS),
		Team:  ws.team(),
	}
	if ev.Inviter != "" {
		in.Event.Data = map[string]string{"inviter": ev.Inviter}
	}
	if in.Time.IsZero() {
		in.Time = a.now()
	}
	lctx, cancel := context.WithTimeout(ctx, a.cfg.LookupWait)
	defer cancel()
	u := a.user(lctx, ws, ev.User)
	in.Sender = bridge.Sender{ID: ev.User, Name: u.name, AvatarURL: u.avatar, Bot: u.bot}
	if name := a.channelName(lctx, ws, ev.Channel); name != "" {
		in.RoomName = "#" + name
	}
	return in, true
}

// assistantEvent is assistant_thread_started and
// assistant_thread_context_changed.
type assistantEvent struct {
	Thread struct {
		UserID    string `json:"user_id"`
		ChannelID string `json:"channel_id"`
		ThreadTS  string `json:"thread_ts"`
		Context   struct {
			ChannelID    string `json:"channel_id"`
			TeamID       string `json:"team_id"`
			EnterpriseID string `json:"enterprise_id"`
		} `json:"context"`
	} `json:"assistant_thread"`
	EventTS string `json:"event_ts"`
}

func parseAssistant(raw json.RawMessage) (assistantEvent, bool) {
	var ev assistantEvent
	err := json.Unmarshal(raw, &ev)
	return ev, err == nil && ev.Thread.ChannelID != "" && ev.Thread.ThreadTS != "" && ev.Thread.UserID != ""
}

// threadContext turns the context of an agent thread (the channel the
// person looks at) into an Event the bot gets in the thread's
// conversation, its details as metadata.
func (a *Adapter) threadContext(ctx context.Context, ws *workspace, cb eventCallback) (bridge.Inbound, bool) {
	ev, ok := parseAssistant(cb.Event)
	if !ok {
		return bridge.Inbound{}, false
	}
	t := ev.Thread
	data := map[string]string{}
	for k, v := range map[string]string{"channelId": t.Context.ChannelID, "teamId": t.Context.TeamID, "enterpriseId": t.Context.EnterpriseID} {
		if v != "" {
			data[k] = v
		}
	}
	text := "left the channel they were viewing"
	lctx, cancel := context.WithTimeout(ctx, a.cfg.LookupWait)
	defer cancel()
	if c := t.Context.ChannelID; c != "" {
		text = "is viewing <#" + c + ">"
		if name := a.channelName(lctx, ws, c); name != "" {
			text = "is viewing #" + name
			data["channelName"] = name
		}
	}
	in := bridge.Inbound{
		Key:   bridge.EventKey(nonEmpty(cb.TeamID, a.whoami(ws).teamID) + "/" + t.ChannelID + "/context/" + t.ThreadTS + "/" + ev.EventTS),
		Room:  bridge.RoomKey{Platform: Platform, Room: ws.roomID(t.ChannelID), Thread: t.ThreadTS},
		DM:    strings.HasPrefix(t.ChannelID, "D"),
		Event: &bridge.Event{Name: bridge.EventContext, Text: text, Data: data},
		Time:  tsTime(ev.EventTS),
		Team:  ws.team(),
	}
	if in.Time.IsZero() {
		in.Time = a.now()
	}
	u := a.user(lctx, ws, t.UserID)
	in.Sender = bridge.Sender{ID: t.UserID, Name: u.name, AvatarURL: u.avatar, Bot: u.bot}
	return in, true
}

// threadStarted returns the work that follows a new agent thread, once it
// is acknowledged: the suggested prompts of the route of the person's DM
// (routes[].prompts), and remembering the thread so that its first message
// titles it.
func (a *Adapter) threadStarted(ws *workspace, cb eventCallback) func(context.Context) {
	ev, ok := parseAssistant(cb.Event)
	if !ok {
		return nil
	}
	t := ev.Thread
	room := ws.roomID(t.ChannelID)
	a.threads.put(room+"/"+t.ThreadTS, a.now())
	if a.cfg.Router == nil {
		return nil
	}
	route, ok := a.cfg.Router.Match(bridge.Inbound{Room: bridge.RoomKey{Platform: Platform, Room: room, Thread: t.ThreadTS},
		DM: strings.HasPrefix(t.ChannelID, "D"), Sender: bridge.Sender{ID: t.UserID}, Team: ws.team()})
	if !ok || len(route.Prompts) == 0 {
		return nil
	}
	params := slackapi.AssistantThreadsSetSuggestedPromptsParameters{ChannelID: t.ChannelID, ThreadTS: t.ThreadTS}
	for _, p := range route.Prompts {
		params.AddPrompt(p.Title, p.Message)
	}
	return func(ctx context.Context) {
		err := a.optional(ctx, ws, "assistant.threads.setSuggestedPrompts", room, func(ctx context.Context) error {
			return ws.api.SetAssistantThreadsSuggestedPromptsContext(ctx, params)
		})
		if err != nil {
			a.logs.Warn(a.log, "prompts", "could not suggest prompts in an agent thread", bridge.LogRoom, room, bridge.LogErr, err)
		}
	}
}

// maxThreadTitle bounds the title an agent thread gets from its first
// message.
const maxThreadTitle = 60

// titleThread returns the work that titles a new agent thread with its
// first message, once the message is acknowledged; nil for other threads.
func (a *Adapter) titleThread(ws *workspace, in bridge.Inbound) func(context.Context) {
	if !a.threads.take(in.Room.Room+"/"+in.Room.Thread, a.now()) {
		return nil
	}
	title := threadTitle(in.Text)
	_, channel, err := a.split(in.Room.Room)
	if title == "" || err != nil {
		return nil
	}
	return func(ctx context.Context) {
		err := a.optional(ctx, ws, "assistant.threads.setTitle", in.Room.Room, func(ctx context.Context) error {
			return ws.api.SetAssistantThreadsTitleContext(ctx, slackapi.AssistantThreadsSetTitleParameters{
				ChannelID: channel, ThreadTS: in.Room.Thread, Title: title})
		})
		if err != nil {
			a.logs.Warn(a.log, "title", "could not title an agent thread", bridge.LogRoom, in.Room.String(), bridge.LogErr, err)
		}
	}
}

// threadTitle is the title a message gives a thread: its first line, cut
// at a word before maxThreadTitle.
func threadTitle(text string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(text), "\n")
	line = strings.Join(strings.Fields(line), " ")
	if utf8.RuneCountInString(line) <= maxThreadTitle {
		return line
	}
	cut := []rune(line)[:maxThreadTitle-1]
	if i := strings.LastIndexByte(string(cut), ' '); i > maxThreadTitle/2 {
		return string(cut)[:i] + "…"
	}
	return string(cut) + "…"
}

// threadSet remembers the agent threads started and not yet titled, for
// threadTTL; at most threadMax of them. It is memory only: a thread started
// before a restart is not titled.
type threadSet struct {
	mu sync.Mutex
	m  map[string]time.Time
}

const (
	threadTTL = time.Hour
	threadMax = 10_000
)

func (s *threadSet) put(key string, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = make(map[string]time.Time)
	}
	if len(s.m) >= threadMax {
		for k, at := range s.m {
			if now.Sub(at) > threadTTL {
				delete(s.m, k)
			}
		}
		if len(s.m) >= threadMax {
			clear(s.m)
		}
	}
	s.m[key] = now
}

// take reports whether key was started (and not titled yet), and forgets
// it.
func (s *threadSet) take(key string, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	at, ok := s.m[key]
	delete(s.m, key)
	return ok && now.Sub(at) < threadTTL
}

// revoked handles app_uninstalled, and tokens_revoked when it names the
// bot: the workspace is forgotten (uninstalled).
func (a *Adapter) revoked(ctx context.Context, ws *workspace, kind string, raw json.RawMessage) error {
	if kind == "tokens_revoked" {
		var ev struct {
			Tokens struct {
				Bot []string `json:"bot"`
			} `json:"tokens"`
		}
		if err := json.Unmarshal(raw, &ev); err != nil || !slices.Contains(ev.Tokens.Bot, a.whoami(ws).userID) {
			return nil // user tokens, which the bridge has none of
		}
	}
	return a.uninstalled(ctx, ws, kind)
}
