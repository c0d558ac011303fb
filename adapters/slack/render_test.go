package slack_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

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
