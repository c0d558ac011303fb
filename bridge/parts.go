package bridge

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

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
	return m
}

// parts turns an inbound message into the Chat API messages that carry it:
// the action's value or the text (split when too long), then one message per
// file. A message with none of these yields no parts.
func (e *Engine) parts(in Inbound) ([]chat.Payload, error) {
	var out []chat.Payload
	switch {
	case in.Action != nil:
		if in.Action.Value == "" {
			return nil, fmt.Errorf("action without a value")
		}
		out = append(out, chat.Text{Text: in.Action.Value})
	case strings.TrimSpace(in.Text) != "":
		for _, t := range splitText(in.Text, maxTextBytes) {
			out = append(out, chat.Text{Text: t})
		}
	}
	for _, f := range in.Files {
		out = append(out, e.filePayload(in.Room.Platform, f))
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
func (e *Engine) filePayload(p Platform, f File) chat.Payload {
	if e.cfg.Files == nil {
		name := f.Name
		if name == "" {
			name = "a file"
		}
		if f.Permalink == "" {
			return chat.Text{Text: fmt.Sprintf("[sent %s]", name)}
		}
		return chat.Text{Text: fmt.Sprintf("[sent %s: %s]", name, f.Permalink)}
	}
	url := e.cfg.Files.URL(p, f)
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

// splitText cuts s into pieces of at most max bytes whose JSON encodings
// also fit, preferring paragraph, then line, then word boundaries.
func splitText(s string, max int) []string {
	var out []string
	for len(s) > 0 {
		if fits(s, max) {
			out = append(out, s)
			break
		}
		cut := cutPoint(s, max)
		out = append(out, strings.TrimRight(s[:cut], " \n"))
		s = strings.TrimLeft(s[cut:], " \n")
	}
	return out
}

func fits(s string, max int) bool {
	if len(s) > max {
		return false
	}
	b, _ := json.Marshal(s)
	return len(b) <= 2*max
}

// cutPoint finds where to cut s so that the first piece fits.
func cutPoint(s string, max int) int {
	limit := min(len(s), max)
	for !fits(s[:limit], max) {
		limit /= 2
	}
	for limit > 0 && !utf8.RuneStart(s[limit]) {
		limit--
	}
	head := s[:limit]
	for _, sep := range []string{"\n\n", "\n", " "} {
		if i := strings.LastIndex(head, sep); i > limit/2 {
			return i + len(sep)
		}
	}
	if limit == 0 {
		_, n := utf8.DecodeRuneInString(s)
		return n
	}
	return limit
}
