package form

import (
	"maps"

	"github.com/botbridge/botbridge/bridge"
	"github.com/botbridge/botbridge/chat"
)

// storedExtra holds the fields of the stored inbound form added since
// version 1, all optional: the workspace, and what marks inbound that is
// not a message (a reaction, a command, an event).
type storedExtra struct {
	Team     string          `json:"team,omitempty"`
	Reaction *storedReaction `json:"reaction,omitempty"`
	Command  *storedCommand  `json:"command,omitempty"`
	Event    *storedEvent    `json:"event,omitempty"`
}

type storedReaction struct {
	Emoji         string `json:"emoji"`
	Removed       bool   `json:"removed,omitempty"`
	MessageID     string `json:"messageId"`
	ChatMessageID string `json:"chatMessageId,omitempty"`
}

type storedCommand struct {
	Name      string `json:"name"`
	Reset     bool   `json:"reset,omitempty"`
	Ephemeral bool   `json:"ephemeral,omitempty"`
	Bot       string `json:"bot,omitempty"`
}

type storedEvent struct {
	Name string            `json:"name"`
	Text string            `json:"text,omitempty"`
	Data map[string]string `json:"data,omitempty"`
}

// encodeExtra returns the stored form of in's fields added since version 1.
func encodeExtra(in bridge.Inbound) storedExtra {
	s := storedExtra{Team: in.Team}
	if r := in.Reaction; r != nil {
		s.Reaction = &storedReaction{Emoji: r.Emoji, Removed: r.Removed, MessageID: r.MessageID, ChatMessageID: string(r.ChatMessageID)}
	}
	if c := in.Command; c != nil {
		s.Command = &storedCommand{Name: c.Name, Reset: c.Reset, Ephemeral: c.Ephemeral, Bot: c.Bot}
	}
	if e := in.Event; e != nil {
		s.Event = &storedEvent{Name: e.Name, Text: e.Text, Data: maps.Clone(e.Data)}
	}
	return s
}

// decodeExtra sets in's fields from what encodeExtra stored.
func (s storedExtra) decodeExtra(in *bridge.Inbound) {
	in.Team = s.Team
	if r := s.Reaction; r != nil {
		in.Reaction = &bridge.Reaction{Emoji: r.Emoji, Removed: r.Removed, MessageID: r.MessageID, ChatMessageID: chat.MessageID(r.ChatMessageID)}
	}
	if c := s.Command; c != nil {
		in.Command = &bridge.Command{Name: c.Name, Reset: c.Reset, Ephemeral: c.Ephemeral, Bot: c.Bot}
	}
	if e := s.Event; e != nil {
		in.Event = &bridge.Event{Name: e.Name, Text: e.Text, Data: e.Data}
	}
}
