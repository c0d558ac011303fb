package matrix

import (
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

// Render returns the events that show p, media as an event naming only its
// msgtype and the bot's URL (Send fetches and uploads them).
func Render(p chat.Payload) []*event.MessageEventContent {
	var out []*event.MessageEventContent
	for _, pt := range render(p) {
		if m := pt.media; m != nil {
			out = append(out, &event.MessageEventContent{MsgType: m.msgType, Body: m.title, URL: id.ContentURIString(m.url)})
			continue
		}
		out = append(out, pt.content)
	}
	return out
}
