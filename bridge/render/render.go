// Package render holds what the adapters share to show a bot's messages on
// platforms: a plain-text form of every payload, the options a person can
// answer by number or label, and a splitter of long texts. It imports only
// chat, so that the bridge and every adapter can use it.
package render

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/botbridge/botbridge/chat"
)

// PlainText renders any payload as readable plain text, for platforms
// without rich messages (the console) and as the fallback body of rich ones.
// The options a person can answer (see Offered) are numbered from 1.
func PlainText(p chat.Payload) string {
	var b strings.Builder
	n := 0
	writePlain(&b, p, &n)
	return strings.TrimRight(b.String(), "\n")
}

func writePlain(b *strings.Builder, p chat.Payload, n *int) {
	line := func(format string, args ...any) {
		fmt.Fprintf(b, format, args...)
		b.WriteByte('\n')
	}
	switch p := p.(type) {
	case chat.Text:
		line("%s", p.Text)
	case chat.Markdown:
		line("%s", p.Markdown)
	case chat.Image:
		line("[image] %s", p.ImageURL)
	case chat.Audio:
		line("[audio] %s", p.AudioURL)
	case chat.Video:
		line("[video] %s", p.VideoURL)
	case chat.File:
		if p.Title != "" {
			line("[file] %s: %s", p.Title, p.FileURL)
		} else {
			line("[file] %s", p.FileURL)
		}
	case chat.Location:
		name := strings.Join(nonEmpty(p.Title, p.Address), ", ")
		if name != "" {
			name += " "
		}
		line("[location] %s(%s) %s", name, LatLon(p), MapURL(p))
	case chat.Card:
		writeCard(b, p, n)
	case chat.Carousel:
		for i, c := range p.Items {
			if i > 0 {
				b.WriteByte('\n')
			}
			writeCard(b, c, n)
		}
	case chat.Choice:
		writeOptions(b, p.Text, p.Options, n)
	case chat.Dropdown:
		writeOptions(b, p.Text, p.Options, n)
	case chat.Bloc:
		for _, it := range p.Items {
			writePlain(b, it, n)
		}
	case chat.RawPayload:
		line("(a %q message, which cannot be shown here)", p.Type)
	}
}

func writeCard(b *strings.Builder, c chat.Card, n *int) {
	b.WriteString(c.Title)
	b.WriteByte('\n')
	if c.Subtitle != "" {
		b.WriteString(c.Subtitle)
		b.WriteByte('\n')
	}
	if c.ImageURL != "" {
		fmt.Fprintf(b, "[image] %s\n", c.ImageURL)
	}
	for _, a := range c.Actions {
		if a.Action == chat.ActionURL {
			fmt.Fprintf(b, "  - %s: %s\n", a.Label, a.Value)
			continue
		}
		*n++
		fmt.Fprintf(b, "  %d. %s\n", *n, a.Label)
	}
}

func writeOptions(b *strings.Builder, text string, opts []chat.ChoiceOption, n *int) {
	b.WriteString(text)
	b.WriteByte('\n')
	for _, o := range opts {
		*n++
		fmt.Fprintf(b, "  %d. %s\n", *n, o.Label)
	}
}

func nonEmpty(ss ...string) []string {
	var out []string
	for _, s := range ss {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

// LatLon formats a location's coordinates.
func LatLon(l chat.Location) string {
	return strconv.FormatFloat(l.Latitude, 'f', -1, 64) + ", " + strconv.FormatFloat(l.Longitude, 'f', -1, 64)
}

// MapURL links a location on OpenStreetMap.
func MapURL(l chat.Location) string {
	lat := strconv.FormatFloat(l.Latitude, 'f', -1, 64)
	lon := strconv.FormatFloat(l.Longitude, 'f', -1, 64)
	return "https://www.openstreetmap.org/?mlat=" + lat + "&mlon=" + lon + "#map=16/" + lat + "/" + lon
}

// Offered returns what a person can answer to a payload on a platform
// without buttons, in the order PlainText numbers them: the options of a
// choice or dropdown, and the postback and say actions of cards.
func Offered(p chat.Payload) []chat.ChoiceOption {
	var out []chat.ChoiceOption
	cards := func(cs ...chat.Card) {
		for _, c := range cs {
			for _, a := range c.Actions {
				if a.Action != chat.ActionURL {
					out = append(out, chat.ChoiceOption{Label: a.Label, Value: a.Value})
				}
			}
		}
	}
	switch p := p.(type) {
	case chat.Choice:
		out = append(out, p.Options...)
	case chat.Dropdown:
		out = append(out, p.Options...)
	case chat.Card:
		cards(p)
	case chat.Carousel:
		cards(p.Items...)
	}
	return out
}
