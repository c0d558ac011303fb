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
	e := decodeEnvelope(payload)
	_, err = a.handleEvent(ctx, h, e)
	return e.lane, err
}

// EnvelopeReading is what the readers of an Events API payload got from
// it: the lane key, the outer object (with the event's JSON), the kind of
// the event, and for a message the message event, as JSON; "error" where
// decoding failed.
type EnvelopeReading struct {
	Lane, Callback, Kind, Message string
}

// ReadEnvelope reads payload in one pass (decodeEnvelope) and, as a
// reference, as each reader did on its own before: channelOf, the outer
// object, the kind, the message event.
func ReadEnvelope(payload json.RawMessage) (onePass, apart EnvelopeReading) {
	e := decodeEnvelope(payload)
	onePass.Lane = e.lane
	if e.err != nil {
		onePass.Callback = "error"
	} else {
		onePass.Callback = asJSON(e.callback())
		onePass.Kind = e.kind
		switch {
		case !isMessage(e.kind):
		case e.msgErr != nil:
			onePass.Message = "error"
		default:
			onePass.Message = asJSON(e.msg)
		}
	}

	apart.Lane = channelOf(payload)
	var cb eventCallback
	if json.Unmarshal(payload, &cb) != nil {
		apart.Callback = "error"
		return onePass, apart
	}
	apart.Callback = asJSON(cb)
	var kind struct {
		Type string `json:"type"`
	}
	_ = json.Unmarshal(cb.Event, &kind)
	apart.Kind = kind.Type
	if kind.Type == "message" || kind.Type == "app_mention" {
		var ev messageEvent
		if json.Unmarshal(cb.Event, &ev) != nil {
			apart.Message = "error"
		} else {
			apart.Message = asJSON(ev)
		}
	}
	return onePass, apart
}

func asJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return "marshal: " + err.Error()
	}
	return string(b)
}
