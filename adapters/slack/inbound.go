package slack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	slackapi "github.com/slack-go/slack"

	"github.com/botbridge/botbridge/bridge"
)

// handleTimeout bounds the handling of one event, so that Slack gets its
// answer within its 3 seconds; the store commits in far less.
const handleTimeout = 2500 * time.Millisecond

// eventCallback is the outer object of an Events API event.
type eventCallback struct {
	Type                string          `json:"type"`
	TeamID              string          `json:"team_id"`
	EnterpriseID        string          `json:"enterprise_id"`
	ContextEnterpriseID string          `json:"context_enterprise_id"`
	EventID             string          `json:"event_id"`
	Event               json.RawMessage `json:"event"`
	Challenge           string          `json:"challenge"`
	Authorizations      []struct {
		TeamID              string `json:"team_id"`
		EnterpriseID        string `json:"enterprise_id"`
		IsEnterpriseInstall bool   `json:"is_enterprise_install"`
	} `json:"authorizations"`
}

// envelope is an Events API payload (the payload of an events_api envelope,
// or the body of an Events API request) decoded once for all its readers:
// the lane key, the workspace, the kind of the event and, for a message,
// the message. The rarer kinds decode their own part of the event
// (callback).
type envelope struct {
	payload json.RawMessage
	// cb is the outer object. Its Event is set only once callback needs
	// it, or when the outer object was decoded on its own.
	cb eventCallback
	// err is why the outer object could not be decoded: the event is
	// malformed.
	err  error
	lane string
	kind string
	// msg is the event when it is a message or app_mention; msgErr is why
	// it could not be decoded as one.
	msg    messageEvent
	msgErr error
}

// wireEnvelope is what decodeEnvelope reads of a payload in one pass.
type wireEnvelope struct {
	// eventCallback is the outer object; its Event is hidden by Event.
	eventCallback
	Event     wireEvent       `json:"event"`
	Channel   json.RawMessage `json:"channel"`
	ChannelID string          `json:"channel_id"`
}

// wireEvent is the event as the lane key and a message read it.
type wireEvent struct {
	messageEvent
	// Channel is a message's channel id, or {id} in the events about
	// channels; it hides messageEvent's.
	Channel json.RawMessage `json:"channel"`
	Item    struct {
		Channel string `json:"channel"`
	} `json:"item"`
}

// decodeEnvelope decodes payload in one pass. A value of a type one of its
// readers does not expect (a user object in user_change, a channel object
// in a message) makes the one pass fail as a whole, where each reader
// decoding its own part fails alone or not at all: such a payload is then
// decoded part by part as each reader did on its own, so that every reader
// sees what it saw before. Malformed payloads end there too, with err set.
func decodeEnvelope(payload json.RawMessage) *envelope {
	e := &envelope{payload: payload}
	var w wireEnvelope
	if json.Unmarshal(payload, &w) == nil {
		channel, isString := jsonString(w.Event.Channel)
		if isString || !isMessage(w.Event.Type) || len(w.Event.Channel) == 0 || string(w.Event.Channel) == "null" {
			e.cb = w.eventCallback
			e.lane = laneKey(w.Event.Channel, w.Channel, w.Event.Item.Channel, w.ChannelID)
			e.kind = w.Event.Type
			e.msg = w.Event.messageEvent
			e.msg.Channel = channel
			return e
		}
	}
	e.lane = channelOf(payload)
	if e.err = json.Unmarshal(payload, &e.cb); e.err != nil {
		return e
	}
	var kind struct {
		Type string `json:"type"`
	}
	_ = json.Unmarshal(e.cb.Event, &kind)
	e.kind = kind.Type
	if isMessage(e.kind) {
		e.msgErr = json.Unmarshal(e.cb.Event, &e.msg)
	}
	return e
}

// isMessage reports whether an event of kind is read as a messageEvent.
func isMessage(kind string) bool { return kind == "message" || kind == "app_mention" }

// callback returns the outer object with the event's JSON, for the kinds
// of events that decode their own part of it.
func (e *envelope) callback() eventCallback {
	if e.cb.Event == nil {
		var p struct {
			Event json.RawMessage `json:"event"`
		}
		_ = json.Unmarshal(e.payload, &p) // decoded without error before
		e.cb.Event = p.Event
	}
	return e.cb
}

// workspace returns the workspace the event is for, nil when the app is not
// installed there (any more).
func (a *Adapter) eventFor(cb eventCallback) *workspace {
	enterprise := nonEmpty(cb.EnterpriseID, cb.ContextEnterpriseID)
	for _, au := range cb.Authorizations {
		if au.IsEnterpriseInstall {
			enterprise = nonEmpty(enterprise, au.EnterpriseID)
		}
	}
	return a.eventWorkspace(cb.TeamID, enterprise)
}

// slackFile is a file as message events show it.
type slackFile struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	Title      string `json:"title"`
	Mimetype   string `json:"mimetype"`
	Size       int64  `json:"size"`
	Permalink  string `json:"permalink"`
	URLPrivate string `json:"url_private"`
	Mode       string `json:"mode"`
	IsExternal bool   `json:"is_external"`
}

// messageEvent is a message or app_mention event, or the message inside a
// message_changed event.
type messageEvent struct {
	Type        string      `json:"type"`
	Subtype     string      `json:"subtype"`
	Channel     string      `json:"channel"`
	ChannelType string      `json:"channel_type"`
	User        string      `json:"user"`
	BotID       string      `json:"bot_id"`
	Username    string      `json:"username"`
	Text        string      `json:"text"`
	TS          string      `json:"ts"`
	ThreadTS    string      `json:"thread_ts"`
	Files       []slackFile `json:"files"`
	BotProfile  *struct {
		Name string `json:"name"`
	} `json:"bot_profile"`
	Edited *struct {
		User string `json:"user"`
		TS   string `json:"ts"`
	} `json:"edited"`
	Message         *messageEvent `json:"message"`
	PreviousMessage *messageEvent `json:"previous_message"`
	DeletedTS       string        `json:"deleted_ts"`
}

// blockActions is the interaction payload of a click on a button or a
// choice in a select menu.
type blockActions struct {
	Type string `json:"type"`
	User struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	} `json:"user"`
	Team struct {
		ID string `json:"id"`
	} `json:"team"`
	Enterprise *struct {
		ID string `json:"id"`
	} `json:"enterprise"`
	Channel struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	} `json:"channel"`
	Container struct {
		MessageTS   string `json:"message_ts"`
		ChannelID   string `json:"channel_id"`
		ThreadTS    string `json:"thread_ts"`
		IsEphemeral bool   `json:"is_ephemeral"`
	} `json:"container"`
	Message *struct {
		TS       string          `json:"ts"`
		ThreadTS string          `json:"thread_ts"`
		Text     string          `json:"text"`
		Blocks   json.RawMessage `json:"blocks"`
	} `json:"message"`
	Actions []struct {
		ActionID       string `json:"action_id"`
		Type           string `json:"type"`
		Value          string `json:"value"`
		ActionTS       string `json:"action_ts"`
		Text           *text  `json:"text"`
		SelectedOption *struct {
			Value string `json:"value"`
			Text  text   `json:"text"`
		} `json:"selected_option"`
	} `json:"actions"`
}

type text struct {
	Text string `json:"text"`
}

// errNotRunning answers events that come before Run knows who the bot is.
var errNotRunning = errors.New("slack: the adapter is not running yet")

// handleEvent hands what an event_callback says to h: a message, a
// reaction, a join, an agent thread's context. It returns nil when the
// event was stored or deliberately ignored; an error means the event must
// not be acknowledged. after, when not nil, is work to do once the event
// is acknowledged (a Home tab to publish, suggested prompts, a thread's
// title).
func (a *Adapter) handleEvent(ctx context.Context, h bridge.Handler, e *envelope) (after func(context.Context), err error) {
	if e.err != nil {
		a.logs.Warn(a.log, "malformed", "malformed event ignored", bridge.LogErr, e.err)
		return nil, nil
	}
	cb := e.cb
	if cb.Type != "event_callback" {
		if cb.Type == "app_rate_limited" {
			a.logs.Warn(a.log, "app_rate_limited", "Slack is dropping events: the app exceeded 30,000 events an hour")
		}
		return nil, nil
	}
	ws := a.eventFor(cb)
	if ws == nil {
		a.log.Debug("event of a workspace the app is not installed in ignored", logTeam, cb.TeamID)
		return nil, nil
	}
	var (
		in bridge.Inbound
		ok bool
	)
	switch e.kind {
	case "message", "app_mention":
		in, ok = a.inbound(ctx, ws, e)
		if ok && in.Room.Thread != "" && !in.Sender.Bot {
			after = a.titleThread(ws, in)
		}
	case "reaction_added", "reaction_removed":
		in, ok = a.reaction(ctx, ws, e.callback())
	case "member_joined_channel":
		in, ok = a.joined(ctx, ws, e.callback())
	case "assistant_thread_context_changed":
		in, ok = a.threadContext(ctx, ws, e.callback())
	case "assistant_thread_started":
		return a.threadStarted(ws, e.callback()), nil
	case "app_home_opened":
		return a.homeOpened(ws, e.callback()), nil
	case "app_uninstalled", "tokens_revoked":
		return nil, a.revoked(ctx, ws, e.kind, e.callback().Event)
	}
	if !ok {
		return nil, nil
	}
	hctx, cancel := context.WithTimeout(ctx, handleTimeout)
	defer cancel()
	if err := h.HandleInbound(hctx, in); err != nil {
		return nil, fmt.Errorf("handle event %s: %w", cb.EventID, err)
	}
	return after, nil
}

// inbound turns a message event into an Inbound; false for events the bridge
// does not forward.
func (a *Adapter) inbound(ctx context.Context, ws *workspace, e *envelope) (bridge.Inbound, bool) {
	self := a.whoami(ws)
	if e.msgErr != nil {
		a.logs.Warn(a.log, "malformed", "malformed event ignored", bridge.LogErr, e.msgErr)
		return bridge.Inbound{}, false
	}
	ev := &e.msg
	if ev.Type != "message" && ev.Type != "app_mention" {
		return bridge.Inbound{}, false
	}
	m := ev
	edited := false
	switch ev.Subtype {
	case "", "file_share", "thread_broadcast", "bot_message":
	case "message_changed":
		// Unfurls and the bot's own updates change messages too; only an
		// edit of the text is a new message for the bot.
		if ev.Message == nil || ev.Message.Edited == nil ||
			ev.PreviousMessage != nil && ev.PreviousMessage.Text == ev.Message.Text {
			return bridge.Inbound{}, false
		}
		m = ev.Message
		m.Channel, m.ChannelType = ev.Channel, ev.ChannelType
		edited = true
	case "message_deleted":
		if ev.PreviousMessage != nil && ev.PreviousMessage.User != self.userID {
			a.log.Info("a person deleted a message; the bot keeps what it was sent", logChannel, ev.Channel, logTS, ev.DeletedTS)
		}
		return bridge.Inbound{}, false
	default:
		return bridge.Inbound{}, false // joins, leaves, topics, hidden changes
	}
	if ev.Type == "app_mention" && ev.Edited != nil && ev.Edited.TS != "" {
		// Slack sends app_mention again when a message that mentions the
		// bot is edited, beside message_changed: the same edit, which must
		// get the same key for the bridge to keep one of the two.
		edited = true
	}
	if m.User != "" && m.User == self.userID || m.BotID != "" && m.BotID == self.botID {
		return bridge.Inbound{}, false
	}
	if m.Channel == "" || m.TS == "" || m.User == "" && m.BotID == "" {
		return bridge.Inbound{}, false
	}
	team := nonEmpty(e.cb.TeamID, self.teamID)
	key := team + "/" + m.Channel + "/" + m.TS
	at := tsTime(m.TS)
	if edited {
		key += "/edit/" + m.Edited.TS
		at = tsTime(m.Edited.TS)
	}
	in := bridge.Inbound{
		Key:       bridge.EventKey(key),
		Room:      bridge.RoomKey{Platform: Platform, Room: ws.roomID(m.Channel)},
		MessageID: m.TS,
		DM:        m.ChannelType == "im" || strings.HasPrefix(m.Channel, "D"),
		Edited:    edited,
		Time:      at,
		Team:      ws.team(),
	}
	if m.ThreadTS != "" && m.ThreadTS != m.TS {
		in.Room.Thread = m.ThreadTS
	}
	if at.IsZero() {
		in.Time = a.now()
	}
	// Names are looked up within one LookupWait for the whole event, so that
	// Slack gets its answer in time however many people it mentions.
	ctx, cancel := context.WithTimeout(ctx, a.cfg.LookupWait)
	defer cancel()
	switch {
	case m.User != "":
		u := a.user(ctx, ws, m.User)
		in.Sender = bridge.Sender{ID: m.User, Name: u.name, AvatarURL: u.avatar, Bot: u.bot || m.BotID != ""}
	default:
		name := m.Username
		if name == "" && m.BotProfile != nil {
			name = m.BotProfile.Name
		}
		in.Sender = bridge.Sender{ID: m.BotID, Name: nonEmpty(name, m.BotID), Bot: true}
	}
	in.Text, in.Mentioned = markdown(m.Text, self.userID, func(id string) string { return a.user(ctx, ws, id).name })
	in.Mentioned = in.Mentioned || ev.Type == "app_mention"
	for _, f := range m.Files {
		switch {
		case f.Mode == "tombstone" || f.Mode == "hidden_by_limit" || f.ID == "":
		case f.IsExternal:
			in.Text = strings.TrimSpace(in.Text + "\n" + nonEmpty(f.Title, f.Name) + ": " + nonEmpty(f.Permalink, f.URLPrivate))
		default:
			in.Files = append(in.Files, bridge.File{Name: nonEmpty(f.Name, f.Title, f.ID), MIMEType: f.Mimetype, Size: f.Size,
				Ref: ws.roomID(f.ID), Permalink: f.Permalink})
		}
	}
	if strings.TrimSpace(in.Text) == "" && len(in.Files) == 0 {
		return bridge.Inbound{}, false
	}
	if !in.DM {
		if name := a.channelName(ctx, ws, m.Channel); name != "" {
			in.RoomName = "#" + name
		}
	}
	return in, true
}

// handleInteraction hands a click on one of the bot's buttons or select
// menus to h as an action, in the room and thread of the clicked message.
// On success it returns the update that shows the choice in the message,
// to run after the acknowledgement.
func (a *Adapter) handleInteraction(ctx context.Context, h bridge.Handler, raw json.RawMessage) (after func(context.Context), err error) {
	var ba blockActions
	if err := json.Unmarshal(raw, &ba); err != nil {
		a.logs.Warn(a.log, "malformed", "malformed interaction ignored", bridge.LogErr, err)
		return nil, nil
	}
	if ba.Type != "block_actions" || len(ba.Actions) == 0 {
		return nil, nil
	}
	act := ba.Actions[0]
	if !strings.HasPrefix(act.ActionID, actionPick) {
		return nil, nil // a link button, or not ours
	}
	var value, label string
	switch {
	case act.SelectedOption != nil:
		value, label = act.SelectedOption.Value, act.SelectedOption.Text.Text
	default:
		value = act.Value
		if act.Text != nil {
			label = act.Text.Text
		}
	}
	channel := nonEmpty(ba.Container.ChannelID, ba.Channel.ID)
	msgTS := ba.Container.MessageTS
	thread := ba.Container.ThreadTS
	if thread == "" && ba.Message != nil {
		thread = ba.Message.ThreadTS
	}
	if thread == msgTS {
		thread = ""
	}
	if channel == "" || msgTS == "" || ba.User.ID == "" || value == "" {
		return nil, nil
	}
	enterprise := ""
	if ba.Enterprise != nil {
		enterprise = ba.Enterprise.ID
	}
	ws := a.eventWorkspace(ba.Team.ID, enterprise)
	if ws == nil {
		a.log.Debug("click in a workspace the app is not installed in ignored", logTeam, ba.Team.ID)
		return nil, nil
	}
	self := a.whoami(ws)
	lctx, cancel := context.WithTimeout(ctx, a.cfg.LookupWait)
	defer cancel()
	u := a.user(lctx, ws, ba.User.ID)
	in := bridge.Inbound{
		Key:       bridge.EventKey(nonEmpty(ba.Team.ID, self.teamID) + "/" + channel + "/action/" + act.ActionTS + "/" + ba.User.ID),
		Room:      bridge.RoomKey{Platform: Platform, Room: ws.roomID(channel), Thread: thread},
		MessageID: msgTS,
		Sender:    bridge.Sender{ID: ba.User.ID, Name: nonEmpty(u.name, ba.User.Name), AvatarURL: u.avatar, Bot: u.bot},
		DM:        strings.HasPrefix(channel, "D"),
		Action:    &bridge.Action{Value: value, Label: label, MessageID: msgTS},
		Time:      tsTime(act.ActionTS),
		Team:      ws.team(),
	}
	if in.Time.IsZero() {
		in.Time = a.now()
	}
	if !in.DM {
		if name := a.channelName(lctx, ws, channel); name != "" {
			in.RoomName = "#" + name
		}
	}
	hctx, hcancel := context.WithTimeout(ctx, handleTimeout)
	defer hcancel()
	if err := h.HandleInbound(hctx, in); err != nil {
		return nil, fmt.Errorf("handle click: %w", err)
	}
	if ba.Message == nil || ba.Container.IsEphemeral {
		return nil, nil
	}
	blocks, ok := chosen(ba.Message.Blocks, label, ba.User.ID)
	if !ok {
		return nil, nil
	}
	fallback := ba.Message.Text
	return func(ctx context.Context) {
		err := a.call(ctx, ws, "chat.update", in.Room.Room, func(ctx context.Context) error {
			_, _, _, err := ws.api.UpdateMessageContext(ctx, channel, msgTS,
				slackapi.MsgOptionText(fallback, false), slackapi.MsgOptionBlocks(slackBlocks(blocks)...))
			return err
		})
		if err != nil {
			a.logs.Warn(a.log, "update-choice", "could not show the choice in the message", logChannel, channel, bridge.LogErr, err)
		}
	}, nil
}

// chosen returns the blocks of a message after a click: the bot's buttons
// and menus removed (link buttons kept), and a line saying who chose what.
func chosen(raw json.RawMessage, label, user string) ([]block, bool) {
	var bs []block
	if err := json.Unmarshal(raw, &bs); err != nil || len(bs) == 0 {
		return nil, false
	}
	ours := func(el any) bool {
		m, _ := el.(map[string]any)
		id, _ := m["action_id"].(string)
		return strings.HasPrefix(id, actionPick)
	}
	out := make([]block, 0, len(bs)+1)
	for _, b := range bs {
		if acc, ok := b["accessory"]; ok && ours(acc) {
			delete(b, "accessory")
		}
		if b.BlockType() == "actions" {
			els, _ := b["elements"].([]any)
			var keep []any
			for _, el := range els {
				if !ours(el) {
					keep = append(keep, el)
				}
			}
			if len(keep) == 0 {
				continue
			}
			b["elements"] = keep
		}
		out = append(out, b)
	}
	if len(out) >= maxBlocks {
		out = out[:maxBlocks-1]
	}
	line := "<@" + user + "> chose *" + escape(truncate(label, maxButtonText)) + "*"
	out = append(out, block{"type": "context", "elements": []any{mrkdwnText(":white_check_mark: " + line)}})
	return out, true
}
