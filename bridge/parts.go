package bridge

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/botbridge/botbridge/bridge/render"
	"github.com/botbridge/botbridge/chat"
)

// MetaKey is the metadata field of every message the bridge sends to
// Botpress that identifies the platform event (and part) it came from; the
// bridge looks for it after a crash so as not to send a message twice.
const MetaKey = "botbridge"

// maxTextBytes bounds the text of one Chat API message. Longer texts are
// sent as several messages, cut at paragraph, line or word boundaries.
const maxTextBytes = 32 * 1024

// metaKey identifies part i of an inbound event.
func metaKey(in Inbound, i int) string {
	return string(in.Room.Platform) + ":" + string(in.Key) + "#" + strconv.Itoa(i)
}

// metadata is what the bot learns about where a message came from.
func metadata(in Inbound, mkey string) map[string]any {
	m := map[string]any{
		MetaKey:    mkey,
		"platform": string(in.Room.Platform),
		"room":     in.Room.Room,
		"userId":   in.Sender.ID,
	}
	if in.Room.Thread != "" {
		m["thread"] = in.Room.Thread
	}
	if in.RoomName != "" {
		m["roomName"] = in.RoomName
	}
	if in.Sender.Name != "" {
		m["userName"] = in.Sender.Name
	}
	if in.DM {
		m["dm"] = true
	}
	if in.Edited {
		m["edited"] = true
	}
	if in.Action != nil {
		m["action"] = true
		if in.Action.Label != "" {
			m["actionLabel"] = in.Action.Label
		}
	}
	extraMetadata(m, in)
	return m
}

// messageParts turns an inbound message into the Chat API messages that
// carry it: the action's value or the text (split when too long), then one
// message per file, linked through files (nil: named, with the permalink). A
// message with none of these yields no parts.
func messageParts(in Inbound, files FileLinker) ([]chat.Payload, error) {
	var out []chat.Payload
	switch {
	case in.Action != nil:
		if in.Action.Value == "" {
			return nil, fmt.Errorf("action without a value")
		}
		out = append(out, chat.Text{Text: in.Action.Value})
	case strings.TrimSpace(in.Text) != "":
		for _, t := range render.SplitText(in.Text, maxTextBytes, jsonSize) {
			out = append(out, chat.Text{Text: t})
		}
	case in.notice():
		out = append(out, chat.Text{Text: noticeText(in)})
	}
	for _, f := range in.Files {
		out = append(out, filePayload(files, in.Room.Platform, f))
	}
	for i, p := range out {
		if err := chat.ValidatePayload(p); err != nil {
			return nil, fmt.Errorf("part %d: %w", i, err)
		}
	}
	return out, nil
}

// filePayload links a person's file for the bot: through the bridge's file
// links when it has a public URL, else as text with the permalink.
func filePayload(files FileLinker, p Platform, f File) chat.Payload {
	if files == nil {
		name := f.Name
		if name == "" {
			name = "a file"
		}
		if f.Permalink == "" {
			return chat.Text{Text: fmt.Sprintf("[sent %s]", name)}
		}
		return chat.Text{Text: fmt.Sprintf("[sent %s: %s]", name, f.Permalink)}
	}
	url := files.URL(p, f)
	switch mt := f.MIMEType; {
	case strings.HasPrefix(mt, "image/"):
		return chat.Image{ImageURL: url}
	case strings.HasPrefix(mt, "audio/"):
		return chat.Audio{AudioURL: url}
	case strings.HasPrefix(mt, "video/"):
		return chat.Video{VideoURL: url}
	default:
		return chat.File{FileURL: url, Title: f.Name}
	}
}

// jsonSize is the size of s in a JSON string, escapes included.
func jsonSize(s string) int {
	b, _ := json.Marshal(s)
	return len(b) - 2
}
