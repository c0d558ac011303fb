package bridge

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

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

// Choices remembers, per room, the last options offered to people on a
// platform without buttons, so that the answer "2" or "Large" reaches the
// bot as the option's value. It is safe for concurrent use.
type Choices struct {
	// TTL is how long an offer stands. Default 24 hours.
	TTL time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time

	mu     sync.Mutex
	offers map[RoomKey]offer
}

type offer struct {
	options   []chat.ChoiceOption
	messageID string
	at        time.Time
}

func (c *Choices) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// Offer records the options of p (see Offered), posted as messageID in room;
// a payload without options leaves the room's offer as it is.
func (c *Choices) Offer(room RoomKey, messageID string, p chat.Payload) {
	opts := Offered(p)
	if len(opts) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.offers == nil {
		c.offers = make(map[RoomKey]offer)
	}
	c.offers[room] = offer{options: opts, messageID: messageID, at: c.now()}
}

// Answer matches text against the room's standing offer: its number, or a
// label (case and surrounding space ignored). A match ends the offer.
func (c *Choices) Answer(room RoomKey, text string) (*Action, bool) {
	text = strings.TrimSpace(text)
	c.mu.Lock()
	defer c.mu.Unlock()
	o, ok := c.offers[room]
	if !ok {
		return nil, false
	}
	ttl := c.TTL
	if ttl <= 0 {
		ttl = 24 * time.Hour
	}
	if c.now().Sub(o.at) > ttl {
		delete(c.offers, room)
		return nil, false
	}
	pick := -1
	if i, err := strconv.Atoi(strings.TrimSuffix(text, ".")); err == nil && i >= 1 && i <= len(o.options) {
		pick = i - 1
	} else {
		for i, opt := range o.options {
			if strings.EqualFold(opt.Label, text) {
				pick = i
				break
			}
		}
	}
	if pick < 0 {
		return nil, false
	}
	delete(c.offers, room)
	opt := o.options[pick]
	return &Action{Value: opt.Value, Label: opt.Label, MessageID: o.messageID}, true
}
