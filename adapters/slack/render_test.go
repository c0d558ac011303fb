package slack_test

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/botbridge/botbridge/adapters/slack"
	"github.com/botbridge/botbridge/chat"
)

// jsonEqual reports whether two JSON texts hold the same value.
func jsonEqual(t *testing.T, got, want string) bool {
	t.Helper()
	var g, w any
	if err := json.Unmarshal([]byte(got), &g); err != nil {
		t.Fatalf("got is not JSON: %v: %s", err, got)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("want is not JSON: %v: %s", err, want)
	}
	return reflect.DeepEqual(g, w)
}

func TestRender(t *testing.T) {
	btn := func(id, label, value string) string {
		return `{"type":"button","action_id":"` + id + `","text":{"type":"plain_text","text":"` + label + `","emoji":true},"value":"` + value + `"}`
	}
	cases := []struct {
		name    string
		payload chat.Payload
		want    string // JSON of []slack.RenderedPost
	}{
		{"text is mrkdwn without blocks", chat.Text{Text: "hi **you** & <them>"},
			`[{"text":"hi *you* &amp; &lt;them&gt;"}]`},
		{"markdown is mrkdwn without blocks", chat.Markdown{Markdown: "# News\n\n- a\n- b"},
			`[{"text":"*News*\n\n• a\n• b"}]`},
		{"public image is an image block", chat.Image{ImageURL: "https://cdn.example.com/img/cat.png"},
			`[{"text":"[image] cat.png","blocks":[{"type":"image","image_url":"https://cdn.example.com/img/cat.png","alt_text":"cat.png"}]}]`},
		{"private image is uploaded", chat.Image{ImageURL: "http://10.0.0.5/cat.png"},
			`[{"text":"cat.png","files":["cat.png|cat.png|http://10.0.0.5/cat.png"]}]`},
		{"image on localhost is uploaded", chat.Image{ImageURL: "http://localhost:8080/a/b.jpg"},
			`[{"text":"b.jpg","files":["b.jpg|b.jpg|http://localhost:8080/a/b.jpg"]}]`},
		{"audio is uploaded", chat.Audio{AudioURL: "https://x.org/song.mp3"},
			`[{"text":"song.mp3","files":["song.mp3|song.mp3|https://x.org/song.mp3"]}]`},
		{"video is uploaded", chat.Video{VideoURL: "https://x.org/v/clip.mp4?sig=1"},
			`[{"text":"clip.mp4","files":["clip.mp4|clip.mp4|https://x.org/v/clip.mp4?sig=1"]}]`},
		{"file is uploaded with its title", chat.File{FileURL: "https://x.org/r.pdf", Title: "Report"},
			`[{"text":"Report","files":["r.pdf|Report|https://x.org/r.pdf"]}]`},
		{"location is a section with a map link", chat.Location{Latitude: 1.5, Longitude: -2, Title: "Spot", Address: "1 Main St"},
			`[{"text":"[location] Spot, 1 Main St (1.5, -2) https://www.openstreetmap.org/?mlat=1.5&amp;mlon=-2#map=16/1.5/-2",
			  "blocks":[{"type":"section","text":{"type":"mrkdwn","text":":round_pushpin: *Spot*\n1 Main St\n<https://www.openstreetmap.org/?mlat=1.5&amp;mlon=-2#map=16/1.5/-2|Open the map> (1.5, -2)"}}]}]`},
		{"card has image accessory and buttons", chat.Card{Title: "Plan", Subtitle: "All *in*", ImageURL: "https://x.org/p.png",
			Actions: []chat.CardAction{{Action: chat.ActionPostback, Label: "Buy", Value: "buy"}, {Action: chat.ActionURL, Label: "Docs", Value: "https://x.org/docs"},
				{Action: chat.ActionSay, Label: "Hi", Value: "hello"}}},
			`[{"text":"Plan – All *in*","blocks":[
			  {"type":"section","text":{"type":"mrkdwn","text":"*Plan*\nAll _in_"},"accessory":{"type":"image","image_url":"https://x.org/p.png","alt_text":"Plan"}},
			  {"type":"actions","elements":[` + btn("bb:pick:1", "Buy", "buy") + `,
			    {"type":"button","action_id":"bb:link:2","text":{"type":"plain_text","text":"Docs","emoji":true},"url":"https://x.org/docs"},
			    ` + btn("bb:pick:3", "Hi", "hello") + `]}]}]`},
		{"carousel separates cards and numbers actions across them", chat.Carousel{Items: []chat.Card{
			{Title: "A", Actions: []chat.CardAction{{Action: chat.ActionPostback, Label: "Pick A", Value: "a"}}},
			{Title: "B", Actions: []chat.CardAction{{Action: chat.ActionPostback, Label: "Pick B", Value: "b"}}}}},
			`[{"text":"A\nB","blocks":[
			  {"type":"section","text":{"type":"mrkdwn","text":"*A*"}},{"type":"actions","elements":[` + btn("bb:pick:1", "Pick A", "a") + `]},
			  {"type":"divider"},
			  {"type":"section","text":{"type":"mrkdwn","text":"*B*"}},{"type":"actions","elements":[` + btn("bb:pick:2", "Pick B", "b") + `]}]}]`},
		{"choice is buttons", chat.Choice{Text: "Size?", Options: []chat.ChoiceOption{{Label: "S", Value: "s"}, {Label: "L", Value: "l"}}},
			`[{"text":"Size?","blocks":[{"type":"section","text":{"type":"mrkdwn","text":"Size?"}},
			  {"type":"actions","elements":[` + btn("bb:pick:1", "S", "s") + `,` + btn("bb:pick:2", "L", "l") + `]}]}]`},
		{"dropdown is a static select", chat.Dropdown{Text: "Where?", Options: []chat.ChoiceOption{{Label: "Paris", Value: "par"}}},
			`[{"text":"Where?","blocks":[{"type":"section","text":{"type":"mrkdwn","text":"Where?"},
			  "accessory":{"type":"static_select","action_id":"bb:pick:1","placeholder":{"type":"plain_text","text":"Choose…","emoji":true},
			    "options":[{"text":{"type":"plain_text","text":"Paris","emoji":true},"value":"par"}]}}]}]`},
		{"dropdown with a long value is buttons", chat.Dropdown{Text: "Which?", Options: []chat.ChoiceOption{{Label: "Long", Value: strings.Repeat("v", 200)}}},
			`[{"text":"Which?","blocks":[{"type":"section","text":{"type":"mrkdwn","text":"Which?"}},
			  {"type":"actions","elements":[` + btn("bb:pick:1", "Long", strings.Repeat("v", 200)) + `]}]}]`},
		{"bloc is one message with its files", chat.Bloc{Items: []chat.Payload{chat.Markdown{Markdown: "**Hi**"},
			chat.Image{ImageURL: "https://x.org/i.png"}, chat.File{FileURL: "https://x.org/f.pdf"}}},
			`[{"text":"**Hi**\n[image] i.png\nf.pdf","blocks":[{"type":"section","text":{"type":"mrkdwn","text":"*Hi*"}},
			  {"type":"image","image_url":"https://x.org/i.png","alt_text":"i.png"}],"files":["f.pdf|f.pdf|https://x.org/f.pdf"]}]`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, _ := json.Marshal(slack.Render(c.payload))
			if !jsonEqual(t, string(got), c.want) {
				t.Errorf("Render(%#v)\n got %s\nwant %s", c.payload, got, c.want)
			}
		})
	}
}

func TestRenderLimits(t *testing.T) {
	t.Run("many options make several actions blocks of at most 25 buttons", func(t *testing.T) {
		var opts []chat.ChoiceOption
		for i := range 60 {
			opts = append(opts, chat.ChoiceOption{Label: "o" + string(rune('a'+i%26)), Value: "v"})
		}
		posts := slack.Render(chat.Choice{Text: "Pick", Options: opts})
		var blocks []struct {
			Type     string `json:"type"`
			Elements []any  `json:"elements"`
		}
		if err := json.Unmarshal(posts[0].Blocks, &blocks); err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, b := range blocks {
			if b.Type == "actions" {
				if len(b.Elements) > 25 {
					t.Errorf("actions block with %d elements", len(b.Elements))
				}
				n += len(b.Elements)
			}
		}
		if n != 60 {
			t.Errorf("%d buttons, want 60", n)
		}
	})
	t.Run("a long text in a bloc is cut into sections of at most 3000 characters", func(t *testing.T) {
		posts := slack.Render(chat.Bloc{Items: []chat.Payload{chat.Text{Text: strings.Repeat("word ", 2000)}}})
		var blocks []struct {
			Text struct {
				Text string `json:"text"`
			} `json:"text"`
		}
		if err := json.Unmarshal(posts[0].Blocks, &blocks); err != nil {
			t.Fatal(err)
		}
		if len(blocks) < 4 {
			t.Fatalf("%d sections, want at least 4", len(blocks))
		}
		for _, b := range blocks {
			if len(b.Text.Text) > 3000 {
				t.Errorf("section of %d characters", len(b.Text.Text))
			}
		}
	})
	t.Run("a carousel of many cards is cut into messages of at most 50 blocks", func(t *testing.T) {
		var cards []chat.Card
		for range 40 {
			cards = append(cards, chat.Card{Title: "c", Actions: []chat.CardAction{{Action: chat.ActionPostback, Label: "x", Value: "x"}}})
		}
		posts := slack.Render(chat.Carousel{Items: cards})
		if len(posts) < 3 {
			t.Fatalf("%d messages, want at least 3", len(posts))
		}
		for i, p := range posts {
			var blocks []any
			if err := json.Unmarshal(p.Blocks, &blocks); err != nil {
				t.Fatal(err)
			}
			if len(blocks) > 50 {
				t.Errorf("message %d has %d blocks", i, len(blocks))
			}
		}
	})
}

// renderedBlock is what the limit tests read of a rendered block.
type renderedBlock struct {
	Type string `json:"type"`
	Text *struct {
		Text string `json:"text"`
	} `json:"text"`
	Elements []struct {
		Type        string `json:"type"`
		Value       string `json:"value"`
		Placeholder struct {
			Text string `json:"text"`
		} `json:"placeholder"`
		Options []struct {
			Value string `json:"value"`
		} `json:"options"`
	} `json:"elements"`
}

// renderedBlocks decodes the blocks of each rendered message and checks
// Slack's limits on each: 50 blocks with the files (each may become a link),
// 10 files, 25 elements per actions block, 100 options per menu and 3,000
// characters per section.
func renderedBlocks(t *testing.T, posts []slack.RenderedPost) [][]renderedBlock {
	t.Helper()
	var out [][]renderedBlock
	for i, p := range posts {
		var bs []renderedBlock
		if p.Blocks != nil {
			if err := json.Unmarshal(p.Blocks, &bs); err != nil {
				t.Fatal(err)
			}
		}
		if n := len(bs) + len(p.Files); n > 50 {
			t.Errorf("message %d: %d blocks and files", i, n)
		}
		if len(p.Files) > 10 {
			t.Errorf("message %d: %d files", i, len(p.Files))
		}
		for _, b := range bs {
			if len(b.Elements) > 25 {
				t.Errorf("message %d: %s block of %d elements", i, b.Type, len(b.Elements))
			}
			for _, e := range b.Elements {
				if len(e.Options) > 100 {
					t.Errorf("message %d: menu of %d options", i, len(e.Options))
				}
			}
			if b.Text != nil && utf8.RuneCountInString(b.Text.Text) > 3000 {
				t.Errorf("message %d: section of %d characters", i, utf8.RuneCountInString(b.Text.Text))
			}
		}
		out = append(out, bs)
	}
	return out
}

func TestRenderSplitsWhatOneMessageCannotHold(t *testing.T) {
	t.Run("a choice of 1,300 options is spread over messages, every option kept in order", func(t *testing.T) {
		var opts []chat.ChoiceOption
		for i := range 1300 {
			opts = append(opts, chat.ChoiceOption{Label: fmt.Sprint("o", i), Value: fmt.Sprint(i)})
		}
		posts := slack.Render(chat.Choice{Text: "Pick", Options: opts})
		if len(posts) < 2 {
			t.Fatalf("%d messages", len(posts))
		}
		var values []string
		for i, bs := range renderedBlocks(t, posts) {
			if posts[i].Text != "Pick" {
				t.Errorf("message %d notifies %q, want the question", i, posts[i].Text)
			}
			for _, b := range bs {
				for _, e := range b.Elements {
					values = append(values, e.Value)
				}
			}
		}
		for i, v := range values {
			if v != fmt.Sprint(i) {
				t.Fatalf("option %d has value %q; %d options in all", i, v, len(values))
			}
		}
		if len(values) != 1300 {
			t.Errorf("%d options, want 1300", len(values))
		}
	})
	t.Run("a dropdown of 250 options is three menus that say which options they hold", func(t *testing.T) {
		var opts []chat.ChoiceOption
		for i := range 250 {
			opts = append(opts, chat.ChoiceOption{Label: fmt.Sprint("o", i), Value: fmt.Sprint(i)})
		}
		var placeholders []string
		n := 0
		for _, bs := range renderedBlocks(t, slack.Render(chat.Dropdown{Text: "Where?", Options: opts})) {
			for _, b := range bs {
				for _, e := range b.Elements {
					placeholders = append(placeholders, e.Placeholder.Text)
					n += len(e.Options)
				}
			}
		}
		if want := []string{"Choose… (1–100)", "Choose… (101–200)", "Choose… (201–250)"}; !reflect.DeepEqual(placeholders, want) || n != 250 {
			t.Errorf("menus %q with %d options; want %q with 250", placeholders, n, want)
		}
	})
	t.Run("a card's long subtitle is cut into sections, not truncated", func(t *testing.T) {
		sub := strings.Repeat("word ", 1500) + "LAST"
		var text string
		for _, bs := range renderedBlocks(t, slack.Render(chat.Card{Title: "T", Subtitle: sub})) {
			for _, b := range bs {
				if b.Text != nil {
					text += b.Text.Text
				}
			}
		}
		if !strings.Contains(text, "LAST") {
			t.Error("the end of the subtitle is lost")
		}
	})
	t.Run("a location with a long address keeps its map link", func(t *testing.T) {
		posts := slack.Render(chat.Location{Latitude: 1, Longitude: 2, Address: strings.Repeat("Long Street ", 400)})
		bs := renderedBlocks(t, posts)
		last := bs[len(bs)-1]
		if len(last) == 0 || !strings.Contains(last[len(last)-1].Text.Text, "Open the map") {
			t.Error("the map link is lost")
		}
	})
	t.Run("a bloc of 25 files shares at most 10 with each message", func(t *testing.T) {
		var items []chat.Payload
		for i := range 25 {
			items = append(items, chat.File{FileURL: fmt.Sprintf("https://x.org/%d.pdf", i)})
		}
		posts := slack.Render(chat.Bloc{Items: items})
		renderedBlocks(t, posts)
		n := 0
		for _, p := range posts {
			n += len(p.Files)
		}
		if len(posts) != 3 || n != 25 {
			t.Errorf("%d messages with %d files; want 3 with 25", len(posts), n)
		}
	})
	t.Run("a long carousel's messages neither begin nor end with a divider", func(t *testing.T) {
		var cards []chat.Card
		for i := range 60 {
			cards = append(cards, chat.Card{Title: fmt.Sprint("c", i), Actions: []chat.CardAction{{Action: chat.ActionPostback, Label: "x", Value: "x"}}})
		}
		for i, bs := range renderedBlocks(t, slack.Render(chat.Carousel{Items: cards})) {
			if bs[0].Type == "divider" || bs[len(bs)-1].Type == "divider" {
				t.Errorf("message %d begins or ends with a divider", i)
			}
		}
	})
}

func TestIsPublicURL(t *testing.T) {
	for u, want := range map[string]bool{
		"https://example.com/a.png":     true,
		"http://93.184.216.34/a.png":    true,
		"https://[2606:4700::1]/a":      true,
		"http://127.0.0.1:8080/a.png":   false,
		"http://10.1.2.3/a.png":         false,
		"http://192.168.0.4/a.png":      false,
		"http://169.254.169.254/latest": false,
		"http://100.64.0.1/a":           false,
		"http://[::1]/a":                false,
		"http://localhost/a":            false,
		"http://intranet/a":             false,
		"http://printer.local/a":        false,
		"ftp://example.com/a":           false,
		"data:image/png;base64,AAAA":    false,
	} {
		if got := slack.IsPublicURL(u); got != want {
			t.Errorf("IsPublicURL(%q) = %v, want %v", u, got, want)
		}
	}
}
