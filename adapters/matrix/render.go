package matrix

import (
	"encoding/json"
	"fmt"
	"html"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/yuin/goldmark"
	goldhtml "github.com/yuin/goldmark/renderer/html"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/format"
	"maunium.net/go/mautrix/format/mdext"

	"github.com/botbridge/botbridge/bridge"
	"github.com/botbridge/botbridge/chat"
)

const (
	// maxTextBytes is the most Markdown one event carries; longer texts are
	// split on paragraph, line or word boundaries.
	maxTextBytes = 16 << 10
	// maxContentBytes bounds an event's content as JSON, so that body and
	// HTML together, encrypted (a third larger), stay under Matrix's 64 KiB.
	maxContentBytes = 40 << 10
	// maxEditBytes bounds the text of an edit, which carries it twice.
	maxEditBytes = 12 << 10
)

// answerHint follows payloads whose options people answer by number or label.
const answerHint = "(answer with a number or a label)"

// markdownRenderer turns the bot's Markdown into Matrix HTML: mautrix's
// extensions and hard line breaks, raw HTML shown as text, and goldmark's
// own filtering of dangerous link URLs (format's renderer turns it off).
var markdownRenderer = goldmark.New(
	format.Extensions,
	goldmark.WithRendererOptions(goldhtml.WithHardWraps()),
	goldmark.WithExtensions(mdext.EscapeHTML),
)

// part is one event of a rendered payload: either content ready to send,
// or media to fetch and upload first.
type part struct {
	content *event.MessageEventContent
	media   *mediaPart
}

// mediaPart is a file the bot gave by URL.
type mediaPart struct {
	msgType event.MessageType
	url     string
	// title is the file's caption, when the bot gave one.
	title string
	// fallback is posted instead when the file cannot be fetched or uploaded.
	fallback *event.MessageEventContent
}

// render turns a payload into the events that show it, in order.
func render(p chat.Payload) []part {
	media := func(t event.MessageType, url, title string) []part {
		return []part{{media: &mediaPart{msgType: t, url: url, title: title, fallback: plain(bridge.PlainText(p))}}}
	}
	switch p := p.(type) {
	case chat.Text:
		return textParts(p.Text)
	case chat.Markdown:
		return textParts(p.Markdown)
	case chat.Image:
		return media(event.MsgImage, p.ImageURL, "")
	case chat.Audio:
		return media(event.MsgAudio, p.AudioURL, "")
	case chat.Video:
		return media(event.MsgVideo, p.VideoURL, "")
	case chat.File:
		return media(event.MsgFile, p.FileURL, p.Title)
	case chat.Location:
		return []part{{content: &event.MessageEventContent{
			MsgType:  event.MsgLocation,
			Body:     bridge.PlainText(p),
			GeoURI:   "geo:" + strconv.FormatFloat(p.Latitude, 'f', -1, 64) + "," + strconv.FormatFloat(p.Longitude, 'f', -1, 64),
			Mentions: &event.Mentions{},
		}}}
	case chat.Card, chat.Carousel, chat.Choice, chat.Dropdown:
		return []part{{content: options(p)}}
	case chat.Bloc:
		var out []part
		for _, it := range p.Items {
			out = append(out, render(it)...)
		}
		return out
	}
	return textParts(bridge.PlainText(p))
}

// textParts renders Markdown as m.text events, split where too long.
func textParts(src string) []part { return textPartsMax(src, maxTextBytes) }

// textPartsMax splits src into pieces of at most max bytes, and those whose
// rendering is still too large (HTML escaping) into halves.
func textPartsMax(src string, max int) []part {
	var out []part
	for _, chunk := range bridge.SplitText(src, max, nil) {
		c := markdown(chunk)
		if size(c) > maxContentBytes && len(chunk) > 1024 {
			out = append(out, textPartsMax(chunk, len(chunk)/2)...)
			continue
		}
		out = append(out, part{content: c})
	}
	return out
}

func size(c *event.MessageEventContent) int {
	b, _ := json.Marshal(c)
	return len(b)
}

// markdown renders Markdown as an m.text event: the source as the plain
// body, and HTML when the source has any formatting.
func markdown(src string) *event.MessageEventContent {
	c := plain(src)
	var b strings.Builder
	if err := markdownRenderer.Convert([]byte(src), &b); err != nil {
		return c
	}
	h := format.UnwrapSingleParagraph(b.String())
	if html.UnescapeString(h) != strings.TrimSpace(src) {
		c.Format, c.FormattedBody = event.FormatHTML, h
	}
	return c
}

func plain(text string) *event.MessageEventContent {
	return &event.MessageEventContent{MsgType: event.MsgText, Body: text, Mentions: &event.Mentions{}}
}

// options renders cards, carousels, choices and dropdowns as HTML, the
// options a person can answer numbered as bridge.PlainText numbers them.
func options(p chat.Payload) *event.MessageEventContent {
	var b strings.Builder
	n := 0
	list := func(labels []string) {
		if len(labels) == 0 {
			return
		}
		fmt.Fprintf(&b, `<ol start="%d">`, n+1)
		for _, l := range labels {
			fmt.Fprintf(&b, "<li>%s</li>", html.EscapeString(l))
		}
		b.WriteString("</ol>")
		n += len(labels)
	}
	card := func(c chat.Card) {
		fmt.Fprintf(&b, "<p><strong>%s</strong>", html.EscapeString(c.Title))
		if c.Subtitle != "" {
			fmt.Fprintf(&b, "<br>%s", html.EscapeString(c.Subtitle))
		}
		b.WriteString("</p>")
		if c.ImageURL != "" {
			fmt.Fprintf(&b, `<p><a href="%s">Image</a></p>`, html.EscapeString(c.ImageURL))
		}
		var labels, links []string
		for _, act := range c.Actions {
			if act.Action == chat.ActionURL {
				links = append(links, fmt.Sprintf(`<a href="%s">%s</a>`, html.EscapeString(act.Value), html.EscapeString(act.Label)))
			} else {
				labels = append(labels, act.Label)
			}
		}
		list(labels)
		if len(links) > 0 {
			fmt.Fprintf(&b, "<p>%s</p>", strings.Join(links, " · "))
		}
	}
	choice := func(text string, opts []chat.ChoiceOption) {
		fmt.Fprintf(&b, "<p>%s</p>", html.EscapeString(text))
		labels := make([]string, len(opts))
		for i, o := range opts {
			labels[i] = o.Label
		}
		list(labels)
	}
	switch p := p.(type) {
	case chat.Card:
		card(p)
	case chat.Carousel:
		for i, c := range p.Items {
			if i > 0 {
				b.WriteString("<hr>")
			}
			card(c)
		}
	case chat.Choice:
		choice(p.Text, p.Options)
	case chat.Dropdown:
		choice(p.Text, p.Options)
	}
	body := bridge.PlainText(p)
	if n > 0 {
		body += "\n" + answerHint
		fmt.Fprintf(&b, "<p><em>%s</em></p>", answerHint)
	}
	c := plain(body)
	c.Format, c.FormattedBody = event.FormatHTML, b.String()
	return c
}

// editContent renders the payload an edit replaces a message with: text
// as Markdown, anything else as its plain text.
func editContent(p chat.Payload) *event.MessageEventContent {
	var text string
	switch p := p.(type) {
	case chat.Text:
		text = p.Text
	case chat.Markdown:
		text = p.Markdown
	default:
		text = bridge.PlainText(p)
	}
	if len(text) > maxEditBytes {
		cut := maxEditBytes
		for cut > 0 && !utf8.RuneStart(text[cut]) {
			cut--
		}
		text = text[:cut] + " …"
	}
	return markdown(text)
}
