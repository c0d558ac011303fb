package slacktest

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	mathrand "math/rand/v2"
	"strings"
)

// VerificationToken is the deprecated verification token carried by the
// payloads the helpers build.
const VerificationToken = "slacktestVerificationToken"

// TeamDomain is the workspace's domain in interaction payloads.
const TeamDomain = "slacktest"

// EventCallback is Slack's "event_callback" wrapper around one event: the
// payload of an events_api envelope, and the body of an Events API request.
type EventCallback struct {
	Token               string          `json:"token"`
	TeamID              string          `json:"team_id"`
	EnterpriseID        *string         `json:"enterprise_id,omitempty"`
	ContextTeamID       string          `json:"context_team_id"`
	ContextEnterpriseID *string         `json:"context_enterprise_id"`
	APIAppID            string          `json:"api_app_id"`
	Event               json.RawMessage `json:"event"`
	Type                string          `json:"type"`
	EventID             string          `json:"event_id"`
	EventTime           int64           `json:"event_time"`
	Authorizations      []Authorization `json:"authorizations"`
	IsExtSharedChannel  bool            `json:"is_ext_shared_channel"`
	EventContext        string          `json:"event_context"`
}

// Authorization is an installation an event is delivered for.
type Authorization struct {
	EnterpriseID        *string `json:"enterprise_id"`
	TeamID              string  `json:"team_id"`
	UserID              string  `json:"user_id"`
	IsBot               bool    `json:"is_bot"`
	IsEnterpriseInstall bool    `json:"is_enterprise_install"`
}

// callback wraps an inner event about channel, for the install that
// serves the channel's team. The caller holds s.mu.
func (s *Server) callback(eventType, channel string, inner obj) EventCallback {
	team := s.team(s.teamOf(channel))
	in := s.installFor(team.ID)
	orgWide := in != nil && in.orgWide
	return s.callbackFor(eventType, team.ID, team.EnterpriseID, orgWide, channel, inner)
}

// callbackFor wraps an inner event of a team (in an enterprise, for an
// org-wide install when orgWide), as Slack does: team_id, enterprise_id and
// the authorization of the install the event is delivered for. The caller
// holds s.mu.
func (s *Server) callbackFor(eventType, teamID, enterprise string, orgWide bool, channel string, inner obj) EventCallback {
	ev, _ := json.Marshal(inner)
	ctx, _ := json.Marshal(obj{"et": eventType, "tid": teamID, "aid": s.opts.AppID, "cid": channel})
	auth := Authorization{TeamID: teamID, UserID: s.opts.BotUserID, IsBot: true, IsEnterpriseInstall: orgWide}
	id := teamID
	if orgWide {
		id = enterprise
	}
	if in := s.installByID(id); in != nil {
		auth.UserID = in.botUserID
	}
	cb := EventCallback{
		Token:          VerificationToken,
		TeamID:         teamID,
		ContextTeamID:  teamID,
		APIAppID:       s.opts.AppID,
		Event:          ev,
		Type:           "event_callback",
		EventID:        s.newID("Ev"),
		EventTime:      s.now().Unix(),
		Authorizations: []Authorization{auth},
		EventContext:   "4-" + base64.RawURLEncoding.EncodeToString(ctx),
	}
	if enterprise != "" {
		e := enterprise
		cb.EnterpriseID, cb.ContextEnterpriseID, auth.EnterpriseID = &e, &e, &e
		cb.Authorizations[0] = auth
	}
	return cb
}

// eventMessage renders m as a message event's message, filling what a
// message not recorded with AddMessage lacks. The caller holds s.mu.
func (s *Server) eventMessage(m Message) obj {
	if m.TS == "" {
		m.TS = s.nextTS()
	}
	if m.User != "" && m.BotID == "" && m.Subtype == "" {
		if m.ClientMsgID == "" {
			m.ClientMsgID = newUUID()
		}
		if m.Blocks == nil && m.Text != "" {
			m.Blocks = s.withBlockIDs(richTextBlocks(m.Text))
		}
	}
	return s.messageObject(s.URL(), &m, true, true)
}

// MessageEvent returns the "message" event Slack sends for m (channels,
// groups, DMs and group DMs alike; channel_type tells them apart): a thread
// reply when ThreadTS is set, "file_share" with files, an app's message when
// BotID and User are set, a legacy "bot_message" when only BotID is, and
// m.Subtype (such as "channel_join" from JoinChannel) when set. It does not
// record m; use AddMessage first for a message history should show.
func (s *Server) MessageEvent(m Message) EventCallback {
	s.mu.Lock()
	defer s.mu.Unlock()
	ev := s.eventMessage(m)
	ev["channel"] = m.Channel
	ev["event_ts"] = ev["ts"]
	ev["channel_type"] = string(s.channelType(m.Channel))
	return s.callback("message", m.Channel, ev)
}

// AppMentionEvent returns the "app_mention" event Slack sends for m, a
// message that mentions the bot (Slack also sends MessageEvent for it when
// the app subscribes to messages).
func (s *Server) AppMentionEvent(m Message) EventCallback {
	s.mu.Lock()
	defer s.mu.Unlock()
	ev := s.eventMessage(m)
	ev["type"] = "app_mention"
	delete(ev, "subtype")
	delete(ev, "upload")
	delete(ev, "display_as_bot")
	ev["channel"] = m.Channel
	ev["event_ts"] = ev["ts"]
	return s.callback("app_mention", m.Channel, ev)
}

// MessageChangedEvent returns the "message" event of subtype
// "message_changed" Slack sends when prev was edited into cur (see
// EditMessage).
func (s *Server) MessageChangedEvent(prev, cur Message) EventCallback {
	s.mu.Lock()
	defer s.mu.Unlock()
	editTS := ""
	if n := len(cur.Updates); n > 0 {
		editTS = cur.Updates[n-1].TS
	} else {
		editTS = s.nextTS()
		cur.Updates = append(cur.Updates, Update{TS: editTS, Text: cur.Text, Blocks: cur.Blocks})
	}
	msg := s.eventMessage(cur)
	if cur.User != "" {
		msg["source_team"] = s.opts.TeamID
		msg["user_team"] = s.opts.TeamID
	}
	ev := obj{
		"type":             "message",
		"subtype":          "message_changed",
		"message":          msg,
		"previous_message": s.eventMessage(prev),
		"channel":          cur.Channel,
		"hidden":           true,
		"ts":               editTS,
		"event_ts":         editTS,
		"channel_type":     string(s.channelType(cur.Channel)),
	}
	return s.callback("message", cur.Channel, ev)
}

// MessageDeletedEvent returns the "message" event of subtype
// "message_deleted" Slack sends when prev is deleted (see DeleteMessage).
func (s *Server) MessageDeletedEvent(prev Message) EventCallback {
	s.mu.Lock()
	defer s.mu.Unlock()
	ts := s.nextTS()
	ev := obj{
		"type":             "message",
		"subtype":          "message_deleted",
		"hidden":           true,
		"deleted_ts":       prev.TS,
		"channel":          prev.Channel,
		"previous_message": s.eventMessage(prev),
		"ts":               ts,
		"event_ts":         ts,
		"channel_type":     string(s.channelType(prev.Channel)),
	}
	return s.callback("message", prev.Channel, ev)
}

// Action describes a click on an interactive element of a message, for
// BlockActions.
type Action struct {
	// User clicked, in Channel, on the message with timestamp MessageTS.
	User      string
	Channel   string
	MessageTS string
	// ActionID identifies the element. BlockID defaults to the block the
	// element is in, found in the recorded message's blocks.
	ActionID string
	BlockID  string
	// Type is "button" (the default) or "static_select".
	Type string
	// Value is the button's value or the chosen option's value; for a
	// button it defaults to the element's value.
	Value string
	// Text is the button's or option's text; it defaults to the element's
	// (or option's) text in the recorded message.
	Text string
}

// BlockActions returns the "block_actions" payload Slack sends for a click,
// for an Interactive envelope or PostInteraction: the user, the container
// and the channel, the recorded message (when the fake has it) with its
// blocks, the state of select menus, a response_url served by the fake, and
// the action with the element's own text, value or option.
func (s *Server) BlockActions(a Action) json.RawMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a.Type == "" {
		a.Type = "button"
	}
	base := s.URL()
	m := s.st.Message(a.Channel, a.MessageTS)
	var elem map[string]json.RawMessage
	if m != nil {
		var blockID string
		blockID, elem = findElement(m.Blocks, a.ActionID)
		if a.BlockID == "" {
			a.BlockID = blockID
		}
	}
	actionTS := s.nextTS()
	action := obj{"type": a.Type, "action_id": a.ActionID, "block_id": a.BlockID, "action_ts": actionTS}
	state := obj{}
	switch a.Type {
	case "static_select":
		var opt any = obj{"text": plainText(a.Text), "value": a.Value}
		if raw := findOption(elem, a.Value); raw != nil {
			opt = raw
		}
		action["selected_option"] = opt
		if ph, ok := elem["placeholder"]; ok {
			action["placeholder"] = ph
		}
		state[a.BlockID] = obj{a.ActionID: obj{"type": "static_select", "selected_option": opt}}
	default:
		text := any(plainText(a.Text))
		if t, ok := elem["text"]; ok && a.Text == "" {
			text = t
		}
		action["text"] = text
		value := a.Value
		if v, ok := elem["value"]; ok && value == "" {
			_ = json.Unmarshal(v, &value)
		}
		action["value"] = value
		if st, ok := elem["style"]; ok {
			action["style"] = st
		}
	}

	user := s.users[a.User]
	container := obj{
		"type":         "message",
		"message_ts":   a.MessageTS,
		"channel_id":   a.Channel,
		"is_ephemeral": m != nil && m.EphemeralTo != "",
	}
	if m != nil && m.ThreadTS != "" {
		container["thread_ts"] = m.ThreadTS
	}
	channelName := ""
	if c, ok := s.channels[a.Channel]; ok {
		channelName = c.Name
		if c.Type == IM {
			channelName = "directmessage"
		}
	}
	s.seq++
	ruPath := fmt.Sprintf("/actions/%s/%d/%s", s.opts.TeamID, s.seq, randomToken(24))
	s.responseURLs[ruPath] = responseURL{channel: a.Channel, messageTS: a.MessageTS, user: a.User}

	payload := obj{
		"type":                  "block_actions",
		"user":                  obj{"id": a.User, "username": user.Name, "name": user.Name, "team_id": s.opts.TeamID},
		"api_app_id":            s.opts.AppID,
		"token":                 VerificationToken,
		"container":             container,
		"trigger_id":            fmt.Sprintf("%d.%d.%s", mathrand.Int64N(1e12), mathrand.Int64N(1e11), strings.ToLower(randomToken(32))),
		"team":                  obj{"id": s.opts.TeamID, "domain": TeamDomain},
		"enterprise":            nil,
		"is_enterprise_install": false,
		"channel":               obj{"id": a.Channel, "name": channelName},
		"state":                 obj{"values": state},
		"response_url":          base + ruPath,
		"actions":               []obj{action},
	}
	if m != nil && m.EphemeralTo == "" {
		payload["message"] = s.messageObject(base, m, false, false)
	}
	out, _ := json.Marshal(payload)
	return out
}

// URLVerification returns the body of the url_verification request Slack
// sends when an Events API request URL is configured.
func URLVerification(challenge string) json.RawMessage {
	out, _ := json.Marshal(obj{"token": VerificationToken, "challenge": challenge, "type": "url_verification"})
	return out
}

func plainText(t string) obj { return obj{"type": "plain_text", "text": t, "emoji": true} }

// findElement finds the interactive element with actionID in blocks (in an
// actions block's elements or a section's accessory) and returns its block's
// id and its fields.
func findElement(blocks json.RawMessage, actionID string) (string, map[string]json.RawMessage) {
	var bs []struct {
		BlockID   string                       `json:"block_id"`
		Elements  []map[string]json.RawMessage `json:"elements"`
		Accessory map[string]json.RawMessage   `json:"accessory"`
	}
	if json.Unmarshal(blocks, &bs) != nil {
		return "", nil
	}
	for _, b := range bs {
		for _, e := range append(b.Elements, b.Accessory) {
			var id string
			if e != nil && json.Unmarshal(e["action_id"], &id) == nil && id == actionID {
				return b.BlockID, e
			}
		}
	}
	return "", nil
}

// findOption finds the option with value in a select element's options or
// option groups.
func findOption(elem map[string]json.RawMessage, value string) json.RawMessage {
	type option struct {
		Value string `json:"value"`
	}
	var lists [][]json.RawMessage
	var opts []json.RawMessage
	if json.Unmarshal(elem["options"], &opts) == nil {
		lists = append(lists, opts)
	}
	var groups []struct {
		Options []json.RawMessage `json:"options"`
	}
	if json.Unmarshal(elem["option_groups"], &groups) == nil {
		for _, g := range groups {
			lists = append(lists, g.Options)
		}
	}
	for _, l := range lists {
		for _, raw := range l {
			var o option
			if json.Unmarshal(raw, &o) == nil && o.Value == value {
				return raw
			}
		}
	}
	return nil
}
