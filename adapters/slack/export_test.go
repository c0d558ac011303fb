package slack

import (
	"context"
	"encoding/json"

	"github.com/botbridge/botbridge/bridge"
	"github.com/botbridge/botbridge/chat"
)

// Mrkdwn exposes the Markdown to mrkdwn conversion to the tests.
var Mrkdwn = mrkdwn

// Markdown exposes the conversion of a person's Slack text, with names
// looked up in names.
func Markdown(text, self string, names map[string]string) (string, bool) {
	return markdown(text, self, func(id string) string {
		if n, ok := names[id]; ok {
			return n
		}
		return id
	})
}

// RenderedPost is one message as render makes it, for the tests.
type RenderedPost struct {
	Text   string          `json:"text"`
	Blocks json.RawMessage `json:"blocks,omitempty"`
	Files  []string        `json:"files,omitempty"` // "name|title|url"
}

// Render exposes render.
func Render(p chat.Payload) []RenderedPost {
	var out []RenderedPost
	for _, po := range render(p) {
		rp := RenderedPost{Text: po.text}
		if len(po.blocks) > 0 {
			rp.Blocks, _ = json.Marshal(po.blocks)
		}
		for _, m := range po.media {
			rp.Files = append(rp.Files, m.name+"|"+m.title+"|"+m.url)
		}
		out = append(out, rp)
	}
	return out
}

// IsPublicURL exposes isPublicURL.
var IsPublicURL = isPublicURL

// HandleSocketEvent handles the payload of an events_api envelope as the
// Socket Mode loop does, without the socket: its lane key, then the event.
func (a *Adapter) HandleSocketEvent(ctx context.Context, h bridge.Handler, payload json.RawMessage) (lane string, err error) {
	lane = channelOf(payload)
	_, err = a.handleEvent(ctx, h, payload)
	return lane, err
}
