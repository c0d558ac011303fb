package chattest

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/botbridge/botbridge/chat"
)

// EchoBot returns a bot that answers every message with what it got: the
// same text, markdown, image, audio, video or file payload (same links, same
// title), and a short text describing any other payload. Media thus goes both
// ways in a demo or an end-to-end test without the internet: the bot hands
// back the very link the bridge gave it.
func EchoBot() Bot {
	return BotFunc(func(ctx context.Context, r Replier, m chat.Message) {
		_, _ = r.Reply(ctx, echo(m.Payload))
	})
}

func echo(p chat.Payload) chat.Payload {
	switch p := p.(type) {
	case chat.Text, chat.Markdown, chat.Image, chat.Audio, chat.Video, chat.File:
		return p
	}
	return chat.Text{Text: "You sent " + Describe(p)}
}

// Describe returns a short human description of a payload, such as
// `an image (https://…)` or `a choice "Pick one" (2 options)`.
func Describe(p chat.Payload) string {
	switch p := p.(type) {
	case chat.Text:
		return fmt.Sprintf("a text: %q", p.Text)
	case chat.Markdown:
		return fmt.Sprintf("a markdown text: %q", p.Markdown)
	case chat.Image:
		return "an image (" + p.ImageURL + ")"
	case chat.Audio:
		return "an audio clip (" + p.AudioURL + ")"
	case chat.Video:
		return "a video (" + p.VideoURL + ")"
	case chat.File:
		if p.Title != "" {
			return fmt.Sprintf("a file %q (%s)", p.Title, p.FileURL)
		}
		return "a file (" + p.FileURL + ")"
	case chat.Location:
		s := fmt.Sprintf("a location (%g, %g)", p.Latitude, p.Longitude)
		if p.Address != "" {
			s += " " + p.Address
		}
		return s
	case chat.Card:
		return fmt.Sprintf("a card %q (%d actions)", p.Title, len(p.Actions))
	case chat.Carousel:
		return fmt.Sprintf("a carousel of %d cards", len(p.Items))
	case chat.Choice:
		return fmt.Sprintf("a choice %q (%d options)", p.Text, len(p.Options))
	case chat.Dropdown:
		return fmt.Sprintf("a dropdown %q (%d options)", p.Text, len(p.Options))
	case chat.Bloc:
		parts := make([]string, len(p.Items))
		for i, it := range p.Items {
			parts[i] = Describe(it)
		}
		return fmt.Sprintf("a bloc of %d items: %s", len(p.Items), strings.Join(parts, "; "))
	case nil:
		return "nothing"
	}
	return fmt.Sprintf("a %q payload", p.PayloadType())
}

// Sample media for the demo bot: small, long-lived public sample files, so
// that platforms which fetch media (Slack image blocks) can show them.
const (
	demoImage = "https://picsum.photos/id/237/640/480"
	demoAudio = "https://www.w3schools.com/html/horse.mp3"
	demoVideo = "https://www.w3schools.com/html/mov_bbb.mp4"
	demoFile  = "https://www.w3.org/WAI/ER/tests/xhtml/testfiles/resources/pdf/dummy.pdf"
)

// DemoKeywords lists the words DemoBot answers to, as its help shows them.
const DemoKeywords = "text, markdown, image, audio, video, file, location, card, carousel, choice, dropdown, bloc, stream, later, help"

// DemoLaterHelp explains DemoBot's later keyword, in its help.
const DemoLaterHelp = `"later 20" answers 20 seconds later (just "later": 30 seconds), to show a reply that comes long after the question`

// DefaultLaterDelay is how long DemoBot's "later" waits without a number.
const DefaultLaterDelay = 30 * time.Second

// maxLaterDelay bounds "later", so that a typo does not leave a timer for
// years.
const maxLaterDelay = 24 * time.Hour

// DemoBot returns a bot that shows every payload type. A message that is
// exactly one of the keywords text, markdown, image, audio, video, file,
// location, card, carousel, choice, dropdown or bloc (any case) gets one
// payload of that type; "stream" gets a streamed reply; "later" an
// acknowledgement at once and a text DefaultLaterDelay later ("later 20": 20
// seconds; "later 1m30s" or "later 0.5" work too, up to 24 hours), through
// Replier.ReplyAfter, so that the conversation goes on meanwhile; "help" the
// list of keywords; anything else is echoed as EchoBot does (media included).
func DemoBot() Bot {
	return BotFunc(func(ctx context.Context, r Replier, m chat.Message) {
		var word string
		switch p := m.Payload.(type) {
		case chat.Text:
			word = p.Text
		case chat.Markdown:
			word = p.Markdown
		}
		word = strings.ToLower(strings.TrimSpace(word))
		if rest, ok := strings.CutPrefix(word, "later"); ok && (rest == "" || rest[0] == ' ') {
			later(ctx, r, strings.TrimSpace(rest))
			return
		}
		if word == "stream" {
			chunks := []string{"This ", "reply ", "arrives ", "word ", "by ", "word, ", "as ", "a ", "streamed ", "message."}
			_, _ = r.Stream(ctx, chunks, nil)
			return
		}
		if p := demoPayload(word); p != nil {
			_, _ = r.Reply(ctx, p)
			return
		}
		_, _ = r.Reply(ctx, echo(m.Payload))
	})
}

// later answers "later [delay]": an acknowledgement now, the late reply
// after the delay.
func later(ctx context.Context, r Replier, arg string) {
	d, err := parseLater(arg)
	if err != nil {
		_, _ = r.Reply(ctx, chat.Text{Text: "I did not get that delay: " + DemoLaterHelp + "."})
		return
	}
	if _, err := r.Reply(ctx, chat.Text{Text: fmt.Sprintf("OK, I will answer in %v. Go on talking meanwhile.", d)}); err != nil {
		return
	}
	_ = r.ReplyAfter(d, chat.Text{Text: fmt.Sprintf("Here is the late reply you asked for %v ago.", d)})
}

// parseLater reads the delay of "later": empty for the default, a number of
// seconds, or a Go duration such as 1m30s.
func parseLater(arg string) (time.Duration, error) {
	if arg == "" {
		return DefaultLaterDelay, nil
	}
	var d time.Duration
	if secs, err := strconv.ParseFloat(arg, 64); err == nil {
		if !(secs > 0 && secs <= maxLaterDelay.Seconds()) { // NaN too
			return 0, fmt.Errorf("delay %s out of range", arg)
		}
		d = time.Duration(secs * float64(time.Second))
	} else if d, err = time.ParseDuration(arg); err != nil {
		return 0, err
	}
	if d <= 0 || d > maxLaterDelay {
		return 0, fmt.Errorf("delay %v out of range", d)
	}
	return d, nil
}

func demoPayload(word string) chat.Payload {
	card := func(title, subtitle, image string) chat.Card {
		return chat.Card{
			Title: title, Subtitle: subtitle, ImageURL: image,
			Actions: []chat.CardAction{
				{Action: chat.ActionPostback, Label: "Tell me more", Value: "more about " + strings.ToLower(title)},
				{Action: chat.ActionURL, Label: "Open the docs", Value: "https://botpress.com/docs"},
				{Action: chat.ActionSay, Label: "Say hello", Value: "Hello!"},
			},
		}
	}
	switch word {
	case "help":
		return chat.Text{Text: "Send one of these words and I answer with that kind of message: " + DemoKeywords + ". " +
			DemoLaterHelp + ". Anything else, I repeat; an image, audio, video or file comes back as it is."}
	case chat.TypeText:
		return chat.Text{Text: "This is a plain text message from the demo bot."}
	case chat.TypeMarkdown:
		return chat.Markdown{Markdown: "# Markdown\n\nSome **bold**, some _italic_, some `code` and [a link](https://botpress.com).\n\n- first item\n- second item\n\n```\nfmt.Println(\"hello\")\n```"}
	case chat.TypeImage:
		return chat.Image{ImageURL: demoImage}
	case chat.TypeAudio:
		return chat.Audio{AudioURL: demoAudio}
	case chat.TypeVideo:
		return chat.Video{VideoURL: demoVideo}
	case chat.TypeFile:
		return chat.File{FileURL: demoFile, Title: "dummy.pdf"}
	case chat.TypeLocation:
		return chat.Location{Latitude: 45.5019, Longitude: -73.5674, Address: "Montréal, QC, Canada", Title: "Botpress HQ"}
	case chat.TypeCard:
		return card("Botpress", "Build AI agents", demoImage)
	case chat.TypeCarousel:
		return chat.Carousel{Items: []chat.Card{
			card("Slack", "Chat where your team works", demoImage),
			card("Matrix", "Open, decentralised chat", demoImage),
			card("Console", "Try a bot in the terminal", demoImage),
		}}
	case chat.TypeChoice:
		return chat.Choice{Text: "Which colour do you like best?", Options: []chat.ChoiceOption{
			{Label: "Red", Value: "red"}, {Label: "Green", Value: "green"}, {Label: "Blue", Value: "blue"},
		}}
	case chat.TypeDropdown:
		return chat.Dropdown{Text: "Pick a city", Options: []chat.ChoiceOption{
			{Label: "Montréal", Value: "montreal"}, {Label: "Paris", Value: "paris"},
			{Label: "Tokyo", Value: "tokyo"}, {Label: "Nairobi", Value: "nairobi"},
		}}
	case chat.TypeBloc:
		return chat.Bloc{Items: []chat.Payload{
			chat.Text{Text: "A bloc groups several items in one message:"},
			chat.Image{ImageURL: demoImage},
			chat.File{FileURL: demoFile, Title: "dummy.pdf"},
			chat.Location{Latitude: 45.5019, Longitude: -73.5674, Title: "Botpress HQ"},
		}}
	}
	return nil
}
