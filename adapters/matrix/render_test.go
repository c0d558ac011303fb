package matrix_test

import (
	"encoding/json"
	"strings"
	"testing"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/botbridge/botbridge/adapters/matrix"
	"github.com/botbridge/botbridge/chat"
)

func TestMarkdownToHTML(t *testing.T) {
	cases := []struct {
		name, src, html string
	}{
		{"plain text has no HTML", "just words, it's fine", ""},
		{"emphasis", "some **bold** and _italic_", "some <strong>bold</strong> and <em>italic</em>"},
		{"line breaks are kept", "one\ntwo", "one<br>\ntwo"},
		{"lists", "- a\n- b", "<ul>\n<li>a</li>\n<li>b</li>\n</ul>"},
		{"code", "run `make`", "run <code>make</code>"},
		{"links", "[docs](https://example.com/docs)", `<a href="https://example.com/docs">docs</a>`},
		{"raw HTML alone stays plain text", "<b>x</b> <script>alert(1)</script>", ""},
		{"raw HTML beside Markdown is shown, not run", "**a** <script>alert(1)</script>", "<strong>a</strong> &lt;script&gt;alert(1)&lt;/script&gt;"},
		{"javascript links lose their target", "[click](javascript:alert(1))", `<a href="">click</a>`},
		{"strikethrough", "~~gone~~", "<del>gone</del>"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := matrix.Markdown(c.src)
			if got.MsgType != event.MsgText || got.Body != c.src {
				t.Errorf("msgtype %q body %q, want m.text with the source as body", got.MsgType, got.Body)
			}
			if c.html == "" {
				if got.Format != "" || got.FormattedBody != "" {
					t.Errorf("HTML %q for plain text", got.FormattedBody)
				}
				return
			}
			if got.Format != event.FormatHTML || got.FormattedBody != c.html {
				t.Errorf("HTML = %q, want %q", got.FormattedBody, c.html)
			}
		})
	}
}

func TestPayloadRendering(t *testing.T) {
	type ev struct {
		msgType          event.MessageType
		body, html, more string
	}
	cases := []struct {
		name    string
		payload chat.Payload
		want    []ev
	}{
		{"text", chat.Text{Text: "hello *there*"}, []ev{{event.MsgText, "hello *there*", "hello <em>there</em>", ""}}},
		{"image to fetch", chat.Image{ImageURL: "https://x.test/a.png"}, []ev{{event.MsgImage, "", "", "https://x.test/a.png"}}},
		{"file keeps its title", chat.File{FileURL: "https://x.test/r.pdf", Title: "Report"}, []ev{{event.MsgFile, "Report", "", "https://x.test/r.pdf"}}},
		{"location", chat.Location{Latitude: 1.5, Longitude: -2.25, Title: "Here"},
			[]ev{{event.MsgLocation, "[location] Here (1.5, -2.25) https://www.openstreetmap.org/?mlat=1.5&mlon=-2.25#map=16/1.5/-2.25", "", "geo:1.5,-2.25"}}},
		{"choice", chat.Choice{Text: "Size?", Options: []chat.ChoiceOption{{Label: "S", Value: "s"}, {Label: "<L>", Value: "l"}}},
			[]ev{{event.MsgText, "Size?\n  1. S\n  2. <L>\n(answer with a number or a label)",
				`<p>Size?</p><ol start="1"><li>S</li><li>&lt;L&gt;</li></ol><p><em>(answer with a number or a label)</em></p>`, ""}}},
		{"card", chat.Card{Title: "Plan", Subtitle: "Best", ImageURL: "https://x.test/p.png", Actions: []chat.CardAction{
			{Action: chat.ActionURL, Label: "Docs", Value: "https://x.test/docs"},
			{Action: chat.ActionPostback, Label: "Buy", Value: "buy"},
			{Action: chat.ActionSay, Label: "Hi", Value: "hi"}}},
			[]ev{{event.MsgText, "Plan\nBest\n[image] https://x.test/p.png\n  - Docs: https://x.test/docs\n  1. Buy\n  2. Hi\n(answer with a number or a label)",
				`<p><strong>Plan</strong><br>Best</p><p><a href="https://x.test/p.png">Image</a></p><ol start="1"><li>Buy</li><li>Hi</li></ol>` +
					`<p><a href="https://x.test/docs">Docs</a></p><p><em>(answer with a number or a label)</em></p>`, ""}}},
		{"card with links only has no hint", chat.Card{Title: "T", Actions: []chat.CardAction{{Action: chat.ActionURL, Label: "Go", Value: "https://x.test"}}},
			[]ev{{event.MsgText, "T\n  - Go: https://x.test", `<p><strong>T</strong></p><p><a href="https://x.test">Go</a></p>`, ""}}},
		{"carousel numbers on across cards", chat.Carousel{Items: []chat.Card{
			{Title: "A", Actions: []chat.CardAction{{Action: chat.ActionPostback, Label: "Pick A", Value: "a"}}},
			{Title: "B", Actions: []chat.CardAction{{Action: chat.ActionPostback, Label: "Pick B", Value: "b"}}}}},
			[]ev{{event.MsgText, "A\n  1. Pick A\n\nB\n  2. Pick B\n(answer with a number or a label)",
				`<p><strong>A</strong></p><ol start="1"><li>Pick A</li></ol><hr><p><strong>B</strong></p><ol start="2"><li>Pick B</li></ol>` +
					`<p><em>(answer with a number or a label)</em></p>`, ""}}},
		{"bloc items one by one", chat.Bloc{Items: []chat.Payload{chat.Text{Text: "first"}, chat.Audio{AudioURL: "https://x.test/s.mp3"}}},
			[]ev{{event.MsgText, "first", "", ""}, {event.MsgAudio, "", "", "https://x.test/s.mp3"}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := matrix.Render(c.payload)
			if len(got) != len(c.want) {
				t.Fatalf("%d events, want %d", len(got), len(c.want))
			}
			for i, w := range c.want {
				g := got[i]
				more := g.GeoURI + string(g.URL)
				if g.MsgType != w.msgType || g.Body != w.body || g.FormattedBody != w.html || more != w.more {
					t.Errorf("event %d = %s %q %q %q,\nwant       %s %q %q %q", i, g.MsgType, g.Body, g.FormattedBody, more, w.msgType, w.body, w.html, w.more)
				}
			}
		})
	}
}

func TestLongTextsAreSplitWithinEventLimits(t *testing.T) {
	var b strings.Builder
	for b.Len() < 100_000 {
		b.WriteString("A paragraph with **bold** & <angle> text.\n\n")
	}
	b.WriteString(strings.Repeat("x", 20_000)) // no boundary at all
	src := b.String()
	got := matrix.Render(chat.Markdown{Markdown: src})
	if len(got) < 2 {
		t.Fatalf("%d events", len(got))
	}
	var joined strings.Builder
	for i, c := range got {
		raw, _ := json.Marshal(c)
		if len(raw) > 40<<10 {
			t.Errorf("event %d is %d bytes of JSON", i, len(raw))
		}
		joined.WriteString(c.Body)
	}
	if strip(joined.String()) != strip(src) {
		t.Error("the parts do not add up to the text")
	}
}

func strip(s string) string { return strings.Join(strings.Fields(s), "") }

func TestMentions(t *testing.T) {
	bot := id.UserID("@helper:example.org")
	names := []string{"Help Desk", "helper"}
	pill := func(href string) string { return `<a href="` + href + `">Help Desk</a>: hi` }
	cases := []struct {
		name      string
		content   event.MessageEventContent
		mentioned bool
		text      string
	}{
		{"intentional mention", event.MessageEventContent{Body: "status please", Mentions: &event.Mentions{UserIDs: []id.UserID{bot}}}, true, "status please"},
		{"pill with the display name", event.MessageEventContent{Body: "Help Desk: hi", FormattedBody: pill("https://matrix.to/#/@helper:example.org")}, true, "hi"},
		{"escaped pill", event.MessageEventContent{Body: "hey there", FormattedBody: pill("https://matrix.to/#/%40helper%3Aexample.org")}, true, "hey there"},
		{"display name in the text", event.MessageEventContent{Body: "hey help desk, how are you"}, true, "hey how are you"},
		{"localpart with @", event.MessageEventContent{Body: "@HELPER status"}, true, "status"},
		{"user id", event.MessageEventContent{Body: "ping @helper:example.org now"}, true, "ping now"},
		{"name inside a word is not a mention", event.MessageEventContent{Body: "helpers are great"}, false, "helpers are great"},
		{"someone else's pill", event.MessageEventContent{Body: "Ann: hi", FormattedBody: `<a href="https://matrix.to/#/@ann:example.org">Ann</a>: hi`}, false, "Ann: hi"},
		{"someone else's intentional mention", event.MessageEventContent{Body: "hi", Mentions: &event.Mentions{UserIDs: []id.UserID{"@ann:example.org"}}}, false, "hi"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, text := matrix.Mentioned(&c.content, c.content.Body, bot, names)
			if m != c.mentioned || text != c.text {
				t.Errorf("Mentioned = %v, %q; want %v, %q", m, text, c.mentioned, c.text)
			}
		})
	}
}
