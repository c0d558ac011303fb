package matrix

import (
	"encoding/json"
	"fmt"
	"html"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/yuin/goldmark"
	goldhtml "github.com/yuin/goldmark/renderer/html"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/format"
	"maunium.net/go/mautrix/format/mdext"

	"github.com/botbridge/botbridge/bridge/render"
	"github.com/botbridge/botbridge/chat"
)

const (
	// maxTextBytes is the most Markdown one event carries; longer texts are
	// split on paragraph, line or word boundaries.
	maxTextBytes = 16 << 10
	// maxContentBytes bounds an event's content as Go encodes it to JSON
	// (which writes <, > and & as 6 bytes each: more than the homeserver
	// counts). A homeserver refuses an event over 65,536 bytes, counted
	// whole: the content, and the envelope it adds (ids, auth and previous
	// events, hashes, signatures), about 1 to 3 KB. In an encrypted room the
	// content travels as Megolm ciphertext: the JSON of type, content and
	// room id (about 300 bytes more), padded, MAC'd and signed (about 100
	// more), in base64 (4/3 as large), beside the encrypted content's own
	// fields and the relation kept in the clear (about 600 bytes). 32 KiB
	// of content thus makes an encrypted event of about 4/3 x 33.2 + 3.6 =
	// 48 KB, and a plain one of about 36 KB: under 64 KiB, with room for
	// the relation and mentions added when it is sent and for a larger
	// envelope. A homeserver that still refuses a part as too large gets it
	// again in smaller pieces (see Send).
	maxContentBytes = 32 << 10
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
// or media to fetch and upload first. A part of a text or of options also
// keeps what it was made of, to be split further if the homeserver refuses
// it as too large.
type part struct {
	content *event.MessageEventContent
	media   *mediaPart

	// src is the Markdown of a text part.
	src string
	// items are the pieces of a part of options; hint is set on the last
	// part of a payload with options.
	items []item
	hint  bool
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

// renderMax turns a payload into the events that show it, in order, each
// with at most max bytes of content (maxContentBytes, but for tests).
func renderMax(p chat.Payload, max int) []part {
	media := func(t event.MessageType, url, title string) []part {
		return []part{{media: &mediaPart{msgType: t, url: url, title: title, fallback: plain(render.PlainText(p))}}}
	}
	switch p := p.(type) {
	case chat.Text:
		return textParts(p.Text, max)
	case chat.Markdown:
		return textParts(p.Markdown, max)
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
			Body:     render.PlainText(p),
			GeoURI:   "geo:" + strconv.FormatFloat(p.Latitude, 'f', -1, 64) + "," + strconv.FormatFloat(p.Longitude, 'f', -1, 64),
			Mentions: &event.Mentions{},
		}}}
	case chat.Card, chat.Carousel, chat.Choice, chat.Dropdown:
		items := optionItems(p)
		hint := slices.ContainsFunc(items, func(it item) bool { return it.option > 0 })
		return packItems(items, hint, max)
	case chat.Bloc:
		var out []part
		for _, it := range p.Items {
			out = append(out, renderMax(it, max)...)
		}
		return out
	}
	return textParts(render.PlainText(p), max)
}

// textParts renders Markdown as m.text events of at most max bytes of
// content: pieces of at most maxTextBytes, those whose rendering is still
// too large (HTML escaping) split in halves.
func textParts(src string, max int) []part { return textPartsMax(src, min(maxTextBytes, max), max) }

func textPartsMax(src string, chunkMax, max int) []part {
	var out []part
	for _, chunk := range render.SplitText(src, chunkMax, nil) {
		c := markdown(chunk)
		if size(c) > max && len(chunk) > 64 {
			out = append(out, textPartsMax(chunk, len(chunk)/2, max)...)
			continue
		}
		out = append(out, part{content: c, src: chunk})
	}
	return out
}

// split splits a part the homeserver refused as too large in two or more
// smaller ones; false when it cannot be split (media, a location, a short
// text).
func (p part) split() ([]part, bool) {
	switch {
	case len(p.items) > 1:
		half := len(p.items) / 2
		first := packItems(p.items[:half], false, size(p.content))
		return append(first, packItems(p.items[half:], p.hint, size(p.content))...), true
	case len(p.items) == 1:
		// One card or option too large alone: its text, plain.
		out := textPartsMax(strings.TrimSpace(p.items[0].plain), len(p.items[0].plain)/2, size(p.content)/2)
		return out, len(out) > 1
	case len(p.src) > 64:
		out := textPartsMax(p.src, len(p.src)/2, size(p.content)/2)
		return out, len(out) > 1
	}
	return nil, false
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

// item is a piece of a rendered card, carousel, choice or dropdown: a
// paragraph (its HTML and its plain lines; a link has only the one or the
// other, as HTML gathers a card's links after its options), a rule between
// cards, or an option a person answers by number.
type item struct {
	html, plain string
	// option is the option's number, from 1; 0 for other items.
	option int
	label  string
	rule   bool
}

// optionItems renders cards, carousels, choices and dropdowns as items,
// the options a person can answer numbered as render.PlainText numbers
// them, so that the plain body of a single part is render.PlainText.
func optionItems(p chat.Payload) []item {
	var out []item
	n := 0
	option := func(label string) {
		n++
		out = append(out, item{option: n, label: label, plain: fmt.Sprintf("  %d. %s\n", n, label)})
	}
	card := func(c chat.Card) {
		h := fmt.Sprintf("<p><strong>%s</strong>", html.EscapeString(c.Title))
		plain := c.Title + "\n"
		if c.Subtitle != "" {
			h += fmt.Sprintf("<br>%s", html.EscapeString(c.Subtitle))
			plain += c.Subtitle + "\n"
		}
		out = append(out, item{html: h + "</p>", plain: plain})
		if c.ImageURL != "" {
			out = append(out, item{html: fmt.Sprintf(`<p><a href="%s">Image</a></p>`, html.EscapeString(c.ImageURL)), plain: fmt.Sprintf("[image] %s\n", c.ImageURL)})
		}
		var links []string
		for _, act := range c.Actions {
			if act.Action == chat.ActionURL {
				links = append(links, fmt.Sprintf(`<a href="%s">%s</a>`, html.EscapeString(act.Value), html.EscapeString(act.Label)))
				out = append(out, item{plain: fmt.Sprintf("  - %s: %s\n", act.Label, act.Value)})
				continue
			}
			option(act.Label)
		}
		if len(links) > 0 {
			out = append(out, item{html: fmt.Sprintf("<p>%s</p>", strings.Join(links, " · "))})
		}
	}
	choice := func(text string, opts []chat.ChoiceOption) {
		out = append(out, item{html: fmt.Sprintf("<p>%s</p>", html.EscapeString(text)), plain: text + "\n"})
		for _, o := range opts {
			option(o.Label)
		}
	}
	switch p := p.(type) {
	case chat.Card:
		card(p)
	case chat.Carousel:
		for i, c := range p.Items {
			if i > 0 {
				out = append(out, item{html: "<hr>", plain: "\n", rule: true})
			}
			card(c)
		}
	case chat.Choice:
		choice(p.Text, p.Options)
	case chat.Dropdown:
		choice(p.Text, p.Options)
	}
	return out
}

// optionsContent renders items as one m.text event: HTML, consecutive
// options in one numbered list, and the plain lines as the body; with the
// hint to answer by number or label at the end when hint is set.
func optionsContent(items []item, hint bool) *event.MessageEventContent {
	var h, b strings.Builder
	inList := false
	for _, it := range items {
		if it.option > 0 {
			if !inList {
				fmt.Fprintf(&h, `<ol start="%d">`, it.option)
				inList = true
			}
			fmt.Fprintf(&h, "<li>%s</li>", html.EscapeString(it.label))
			b.WriteString(it.plain)
			continue
		}
		if inList && it.html != "" {
			h.WriteString("</ol>")
			inList = false
		}
		h.WriteString(it.html)
		b.WriteString(it.plain)
	}
	if inList {
		h.WriteString("</ol>")
	}
	body := strings.TrimRight(b.String(), "\n")
	if hint {
		body += "\n" + answerHint
		fmt.Fprintf(&h, "<p><em>%s</em></p>", answerHint)
	}
	c := plain(body)
	c.Format, c.FormattedBody = event.FormatHTML, h.String()
	return c
}

// packItems puts items into as few parts as hold them with at most max
// bytes of content each, in order; rules between cards that would start or
// end a part are left out. The last part gets the hint when hint is set.
func packItems(items []item, hint bool, max int) []part {
	// What an item adds to a part, measured alone: a little more than it
	// adds beside others (an option's list is counted each time).
	base := size(optionsContent(nil, hint))
	var groups [][]item
	var cur []item
	used := base
	for _, it := range items {
		// +2: the newline a part's body keeps between items, "\\n" in JSON.
		cost := size(optionsContent([]item{it}, false)) - size(optionsContent(nil, false)) + 2
		if len(cur) > 0 && used+cost > max {
			groups = append(groups, cur)
			cur, used = nil, base
		}
		if it.rule && len(cur) == 0 {
			continue
		}
		cur = append(cur, it)
		used += cost
	}
	if len(cur) > 0 {
		groups = append(groups, cur)
	}
	var out []part
	for i, g := range groups {
		for len(g) > 0 && g[len(g)-1].rule {
			g = g[:len(g)-1]
		}
		last := i == len(groups)-1
		p := part{content: optionsContent(g, hint && last), items: g, hint: hint && last}
		if size(p.content) > max {
			// An item too large alone: split as the homeserver's refusal
			// would have it.
			if more, ok := p.split(); ok {
				out = append(out, more...)
				continue
			}
		}
		out = append(out, p)
	}
	if len(out) == 0 {
		out = append(out, part{content: optionsContent(nil, hint), hint: hint})
	}
	return out
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
		text = render.PlainText(p)
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
