package slacktest

import (
	"context"
	"fmt"
	mathrand "math/rand/v2"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// React adds user's reaction name (without colons) to the message ts in
// channel, as a person would, and returns the reaction_added event Slack
// sends: item_user is the message's author, absent for messages of no user.
func (s *Server) React(user, channel, ts, name string) (EventCallback, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.st.Message(channel, ts)
	if m == nil || !visible(m) {
		return EventCallback{}, fmt.Errorf("slacktest: react: no message %s in %s", ts, channel)
	}
	i := slices.IndexFunc(m.Reactions, func(r Reaction) bool { return r.Name == name })
	switch {
	case i < 0:
		m.Reactions = append(m.Reactions, Reaction{Name: name, Users: []string{user}})
	case slices.Contains(m.Reactions[i].Users, user):
		return EventCallback{}, fmt.Errorf("slacktest: react: %s already reacted %s", user, name)
	default:
		m.Reactions[i].Users = append(m.Reactions[i].Users, user)
	}
	s.notify()
	return s.reactionEvent("reaction_added", user, m, name), nil
}

// Unreact removes user's reaction name from the message ts in channel and
// returns the reaction_removed event Slack sends.
func (s *Server) Unreact(user, channel, ts, name string) (EventCallback, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.st.Message(channel, ts)
	if m == nil {
		return EventCallback{}, fmt.Errorf("slacktest: unreact: no message %s in %s", ts, channel)
	}
	i := slices.IndexFunc(m.Reactions, func(r Reaction) bool { return r.Name == name })
	if i < 0 || !slices.Contains(m.Reactions[i].Users, user) {
		return EventCallback{}, fmt.Errorf("slacktest: unreact: %s did not react %s", user, name)
	}
	m.Reactions[i].Users = slices.DeleteFunc(slices.Clone(m.Reactions[i].Users), func(u string) bool { return u == user })
	if len(m.Reactions[i].Users) == 0 {
		m.Reactions = slices.Delete(m.Reactions, i, i+1)
	}
	s.notify()
	return s.reactionEvent("reaction_removed", user, m, name), nil
}

// reactionEvent builds reaction_added or reaction_removed. The caller holds
// s.mu.
func (s *Server) reactionEvent(eventType, user string, m *Message, name string) EventCallback {
	ev := obj{
		"type":     eventType,
		"user":     user,
		"reaction": name,
		"item":     obj{"type": "message", "channel": m.Channel, "ts": m.TS, "channel_type": string(s.channelType(m.Channel))},
		"event_ts": s.nextTS(),
	}
	if m.User != "" {
		ev["item_user"] = m.User
	}
	return s.callback(eventType, m.Channel, ev)
}

// MemberJoinedChannelEvent returns the member_joined_channel event Slack
// sends when user joins channel (see JoinChannel), invited by inviter when
// set.
func (s *Server) MemberJoinedChannelEvent(channel, user, inviter string) EventCallback {
	s.mu.Lock()
	defer s.mu.Unlock()
	ev := obj{
		"type":         "member_joined_channel",
		"user":         user,
		"channel":      channel,
		"channel_type": map[ChannelType]string{Public: "C", Private: "G", MPIM: "G"}[s.channelType(channel)],
		"team":         s.teamOf(channel),
		"event_ts":     s.nextTS(),
	}
	if inviter != "" {
		ev["inviter"] = inviter
	}
	return s.callback("member_joined_channel", channel, ev)
}

// AppHomeOpenedEvent returns the app_home_opened event Slack sends when user
// opens the app's tab ("home" or "messages"): with the user's DM with the
// app as channel, and the Home tab published for the user, if any, as view.
func (s *Server) AppHomeOpenedEvent(user, tab string) EventCallback {
	s.mu.Lock()
	defer s.mu.Unlock()
	channel := ""
	for _, c := range s.channels {
		if c.Type == IM && c.User == user {
			channel = c.ID
		}
	}
	ev := obj{"type": "app_home_opened", "user": user, "channel": channel, "tab": tab, "event_ts": s.nextTS()}
	if v, ok := s.st.Views[user]; ok && tab == "home" {
		ev["view"] = obj{"type": v.Type, "blocks": v.Blocks, "private_metadata": v.PrivateMetadata, "hash": v.Hash,
			"external_id": v.ExternalID, "app_id": s.opts.AppID}
	}
	return s.callback("app_home_opened", channel, ev)
}

// AssistantContext is where a person is in Slack while an assistant thread
// is open.
type AssistantContext struct {
	ChannelID    string
	TeamID       string
	EnterpriseID string
}

func (c AssistantContext) obj() obj {
	o := obj{}
	if c.ChannelID != "" {
		o["channel_id"] = c.ChannelID
	}
	if c.TeamID != "" {
		o["team_id"] = c.TeamID
	}
	if c.EnterpriseID != "" {
		o["enterprise_id"] = c.EnterpriseID
	}
	return o
}

// StartAssistantThread opens an assistant thread for user in their DM with
// the app (channel), as the agent container does: it records the thread's
// root message, posted by the app, and returns it with the
// assistant_thread_started event Slack sends.
func (s *Server) StartAssistantThread(user, channel string, at AssistantContext) (Message, EventCallback, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.channels[channel]
	if !ok || c.Type != IM {
		return Message{}, EventCallback{}, fmt.Errorf("slacktest: start assistant thread: %s is not a DM", channel)
	}
	in := s.installFor(s.teamOf(channel))
	if in == nil {
		return Message{}, EventCallback{}, fmt.Errorf("slacktest: start assistant thread: the app is not installed for %s", channel)
	}
	root := s.st.add(Message{Channel: channel, TS: s.nextTS(), User: in.botUserID, BotID: in.botID,
		Subtype: "assistant_app_thread", Text: "New chat"})
	s.notify()
	ev := s.assistantEvent("assistant_thread_started", user, channel, root.TS, at)
	return root.clone(), ev, nil
}

// AssistantThreadContextChangedEvent returns the
// assistant_thread_context_changed event Slack sends when user, with the
// assistant thread threadTS of channel open, moves to another channel.
func (s *Server) AssistantThreadContextChangedEvent(user, channel, threadTS string, at AssistantContext) EventCallback {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.assistantEvent("assistant_thread_context_changed", user, channel, threadTS, at)
}

// assistantEvent builds an assistant thread event. The caller holds s.mu.
func (s *Server) assistantEvent(eventType, user, channel, threadTS string, at AssistantContext) EventCallback {
	ev := obj{
		"type": eventType,
		"assistant_thread": obj{
			"user_id":    user,
			"context":    at.obj(),
			"channel_id": channel,
			"thread_ts":  threadTS,
		},
		"event_ts": s.nextTS(),
	}
	return s.callback(eventType, channel, ev)
}

// SlashCommand is the payload of a slash command: the JSON of a
// slash_commands envelope (SendEvent), and the form PostCommand sends.
type SlashCommand struct {
	Token               string `json:"token"`
	TeamID              string `json:"team_id"`
	TeamDomain          string `json:"team_domain"`
	EnterpriseID        string `json:"enterprise_id,omitempty"`
	EnterpriseName      string `json:"enterprise_name,omitempty"`
	IsEnterpriseInstall bool   `json:"is_enterprise_install"`
	ChannelID           string `json:"channel_id"`
	ChannelName         string `json:"channel_name"`
	UserID              string `json:"user_id"`
	UserName            string `json:"user_name"`
	Command             string `json:"command"`
	Text                string `json:"text"`
	APIAppID            string `json:"api_app_id"`
	ResponseURL         string `json:"response_url"`
	TriggerID           string `json:"trigger_id"`
}

// Form returns the command as the form body of an HTTP request.
func (c SlashCommand) Form() url.Values {
	v := url.Values{}
	set := func(k, val string) {
		if val != "" {
			v.Set(k, val)
		}
	}
	set("token", c.Token)
	set("team_id", c.TeamID)
	set("team_domain", c.TeamDomain)
	set("enterprise_id", c.EnterpriseID)
	set("enterprise_name", c.EnterpriseName)
	v.Set("is_enterprise_install", strconv.FormatBool(c.IsEnterpriseInstall))
	set("channel_id", c.ChannelID)
	set("channel_name", c.ChannelName)
	set("user_id", c.UserID)
	set("user_name", c.UserName)
	set("command", c.Command)
	v.Set("text", c.Text)
	set("api_app_id", c.APIAppID)
	set("response_url", c.ResponseURL)
	set("trigger_id", c.TriggerID)
	return v
}

// Command returns the payload Slack sends when user types command (such as
// "/ask") with text in channel, with a response_url served by the fake
// (ephemeral to user unless response_type is in_channel).
func (s *Server) Command(user, channel, command, text string) SlashCommand {
	s.mu.Lock()
	defer s.mu.Unlock()
	team := s.team(s.teamOf(channel))
	in := s.installFor(team.ID)
	name := ""
	if c, ok := s.channels[channel]; ok {
		name = c.Name
		if c.Type == IM {
			name = "directmessage"
		}
	}
	s.seq++
	ru := fmt.Sprintf("/commands/%s/%d/%s", team.ID, s.seq, randomToken(24))
	s.responseURLs[ru] = responseURL{channel: channel, user: user}
	return SlashCommand{
		Token:               VerificationToken,
		TeamID:              team.ID,
		TeamDomain:          strings.ToLower(team.Name),
		EnterpriseID:        team.EnterpriseID,
		IsEnterpriseInstall: in != nil && in.orgWide,
		ChannelID:           channel,
		ChannelName:         name,
		UserID:              user,
		UserName:            s.users[user].Name,
		Command:             command,
		Text:                text,
		APIAppID:            s.opts.AppID,
		ResponseURL:         s.URL() + ru,
		TriggerID:           fmt.Sprintf("%d.%d.%s", mathrand.Int64N(1e12), mathrand.Int64N(1e11), strings.ToLower(randomToken(32))),
	}
}

// PostCommand posts a slash command to the app's request URL (target) as
// Slack does: the form of c, signed with Options.SigningSecret.
func (s *Server) PostCommand(ctx context.Context, target string, c SlashCommand, d Delivery) (*Response, error) {
	return s.deliver(ctx, target, "application/x-www-form-urlencoded", []byte(c.Form().Encode()), d)
}
