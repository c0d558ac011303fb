package matrix

import (
	"context"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/botbridge/botbridge/chat"
)

// Exported for the tests of package matrix_test.
var (
	Markdown  = markdown
	Mentioned = mentioned
	Origin    = origin
)

// SetBudget sets the most content one event of a carries, in bytes.
func SetBudget(a *Adapter, n int) { a.budget = n }

// Render returns the events that show p, media as an event naming only its
// msgtype and the bot's URL (Send fetches and uploads them).
func Render(p chat.Payload) []*event.MessageEventContent { return RenderMax(p, maxContentBytes) }

// RenderMax is Render with at most max bytes of content per event.
func RenderMax(p chat.Payload, max int) []*event.MessageEventContent {
	var out []*event.MessageEventContent
	for _, pt := range renderMax(p, max) {
		if m := pt.media; m != nil {
			out = append(out, &event.MessageEventContent{MsgType: m.msgType, Body: m.title, URL: id.ContentURIString(m.url)})
			continue
		}
		out = append(out, pt.content)
	}
	return out
}

// DeviceID returns the device a logged in as.
func DeviceID(a *Adapter) id.DeviceID { return a.device }

// Decrypt decrypts evt with a's crypto store, as the sync loop would.
func Decrypt(ctx context.Context, a *Adapter, evt *event.Event) (*event.Event, error) {
	return a.crypto.Decrypt(ctx, evt)
}

// KeycapNumber is keycapNumber.
var KeycapNumber = keycapNumber
