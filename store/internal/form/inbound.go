// Package form holds the stored forms of the store's values that are not
// plain columns (inbound messages, the platform ids of posted parts, offered
// options), shared by the SQLite and the PostgreSQL store so that a row
// means the same in both and moves between them unchanged.
package form

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/botbridge/botbridge/bridge"
)

// InboundVersion is the version of the stored form of an inbound message.
// A change of the form that old rows would not decode into gets a new
// version, and DecodeInbound keeps reading the old ones.
const InboundVersion = 1

// storedInbound is the stored form of a bridge.Inbound: the store's own, so
// that renaming a field of the domain type does not break rows written
// before. Version 1 has the field names bridge.Inbound had when the form
// was introduced; rows written earlier carry no version and the same names.
// Fields added since are optional, so that rows without them still decode
// as version 1 (storedExtra).
type storedInbound struct {
	V         int           `json:"v"`
	Key       string        `json:"key"`
	Room      storedRoom    `json:"room"`
	RoomName  string        `json:"roomName,omitempty"`
	MessageID string        `json:"messageId,omitempty"`
	Sender    storedSender  `json:"sender"`
	DM        bool          `json:"dm,omitempty"`
	Mentioned bool          `json:"mentioned,omitempty"`
	Text      string        `json:"text,omitempty"`
	Files     []storedFile  `json:"files,omitempty"`
	Action    *storedAction `json:"action,omitempty"`
	Edited    bool          `json:"edited,omitempty"`
	Time      time.Time     `json:"time"`
	storedExtra
}

type storedRoom struct {
	Platform string `json:"Platform"`
	Room     string `json:"Room"`
	Thread   string `json:"Thread,omitempty"`
}

type storedSender struct {
	ID        string `json:"ID"`
	Name      string `json:"Name,omitempty"`
	AvatarURL string `json:"AvatarURL,omitempty"`
	Bot       bool   `json:"Bot,omitempty"`
}

type storedFile struct {
	Name      string `json:"name"`
	MIMEType  string `json:"mime,omitempty"`
	Size      int64  `json:"size,omitempty"`
	Ref       string `json:"ref"`
	Permalink string `json:"permalink,omitempty"`
}

type storedAction struct {
	Value     string `json:"value"`
	Label     string `json:"label,omitempty"`
	MessageID string `json:"messageId,omitempty"`
}

// EncodeInbound returns the stored form of in.
func EncodeInbound(in bridge.Inbound) ([]byte, error) {
	s := storedInbound{
		V: InboundVersion, Key: string(in.Key),
		Room:     storedRoom{Platform: string(in.Room.Platform), Room: in.Room.Room, Thread: in.Room.Thread},
		RoomName: in.RoomName, MessageID: in.MessageID,
		Sender: storedSender{ID: in.Sender.ID, Name: in.Sender.Name, AvatarURL: in.Sender.AvatarURL, Bot: in.Sender.Bot},
		DM:     in.DM, Mentioned: in.Mentioned, Text: in.Text, Edited: in.Edited, Time: in.Time,
	}
	for _, f := range in.Files {
		s.Files = append(s.Files, storedFile{Name: f.Name, MIMEType: f.MIMEType, Size: f.Size, Ref: f.Ref, Permalink: f.Permalink})
	}
	if a := in.Action; a != nil {
		s.Action = &storedAction{Value: a.Value, Label: a.Label, MessageID: a.MessageID}
	}
	s.storedExtra = encodeExtra(in)
	return json.Marshal(s)
}

// DecodeInbound reads a stored inbound message of any version; it fails
// for a version newer than InboundVersion.
func DecodeInbound(body []byte) (bridge.Inbound, error) {
	var s storedInbound
	if err := json.Unmarshal(body, &s); err != nil {
		return bridge.Inbound{}, err
	}
	if s.V > InboundVersion {
		return bridge.Inbound{}, fmt.Errorf("stored with version %d of the form; this botbridge reads up to %d: run a newer botbridge", s.V, InboundVersion)
	}
	in := bridge.Inbound{
		Key:       bridge.EventKey(s.Key),
		Room:      bridge.RoomKey{Platform: bridge.Platform(s.Room.Platform), Room: s.Room.Room, Thread: s.Room.Thread},
		RoomName:  s.RoomName,
		MessageID: s.MessageID,
		Sender:    bridge.Sender{ID: s.Sender.ID, Name: s.Sender.Name, AvatarURL: s.Sender.AvatarURL, Bot: s.Sender.Bot},
		DM:        s.DM, Mentioned: s.Mentioned, Text: s.Text, Edited: s.Edited, Time: s.Time,
	}
	for _, f := range s.Files {
		in.Files = append(in.Files, bridge.File{Name: f.Name, MIMEType: f.MIMEType, Size: f.Size, Ref: f.Ref, Permalink: f.Permalink})
	}
	if a := s.Action; a != nil {
		in.Action = &bridge.Action{Value: a.Value, Label: a.Label, MessageID: a.MessageID}
	}
	s.decodeExtra(&in)
	return in, nil
}
