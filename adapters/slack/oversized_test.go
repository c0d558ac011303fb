package slack_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/botbridge/botbridge/adapters/slack"
	"github.com/botbridge/botbridge/adapters/slack/slacktest"
	"github.com/botbridge/botbridge/bridge"
	"github.com/botbridge/botbridge/bridge/bridgetest"
	"github.com/botbridge/botbridge/chat"
	"github.com/botbridge/botbridge/chat/chattest"
)

// control is an interactive element of a posted message: a button, or one
// option of a select menu.
type control struct {
	ts, actionID, kind, value string
}

// controls returns the bot's buttons and select options in msgs, in order.
func controls(msgs []slacktest.Message) []control {
	type element struct {
		Type     string `json:"type"`
		ActionID string `json:"action_id"`
		Value    string `json:"value"`
		Options  []struct {
			Value string `json:"value"`
		} `json:"options"`
	}
	var out []control
	for _, m := range msgs {
		var blocks []struct {
			Elements  []element `json:"elements"`
			Accessory *element  `json:"accessory"`
		}
		_ = json.Unmarshal(m.Blocks, &blocks)
		for _, b := range blocks {
			els := b.Elements
			if b.Accessory != nil {
				els = append(els, *b.Accessory)
			}
			for _, e := range els {
				if !strings.HasPrefix(e.ActionID, "bb:pick:") {
					continue
				}
				switch e.Type {
				case "button":
					out = append(out, control{m.TS, e.ActionID, e.Type, e.Value})
				case "static_select":
					for _, o := range e.Options {
						out = append(out, control{m.TS, e.ActionID, e.Type, o.Value})
					}
				}
			}
		}
	}
	return out
}

// oversized is a reply too large for one Slack message, and what a person
// must find in its parts.
type oversized struct {
	payload chat.Payload
	values  []string // the value of every option, in order (a bloc has none)
	shown   []string // texts, titles and URLs the parts together show
	parts   int      // at least this many messages
}

func oversizedReplies(files string) map[string]oversized {
	out := map[string]oversized{}

	var choice oversized
	var opts []chat.ChoiceOption
	for i := range 1300 {
		opts = append(opts, chat.ChoiceOption{Label: fmt.Sprint("Option ", i), Value: fmt.Sprint("v-", i)})
		choice.values = append(choice.values, fmt.Sprint("v-", i))
	}
	choice.payload = chat.Choice{Text: "Pick one of many", Options: opts}
	choice.shown, choice.parts = []string{"Pick one of many", "Option 0", "Option 1299"}, 2
	out["choice"] = choice

	var carousel oversized
	var cards []chat.Card
	for i := range 60 {
		cards = append(cards, chat.Card{Title: fmt.Sprint("Card ", i), Subtitle: "A card", ImageURL: fmt.Sprintf("https://cdn.example.com/c%d.png", i),
			Actions: []chat.CardAction{{Action: chat.ActionPostback, Label: "Pick", Value: fmt.Sprint("card-", i)},
				{Action: chat.ActionURL, Label: "Docs", Value: fmt.Sprint("https://docs.example.com/", i)}}})
		carousel.values = append(carousel.values, fmt.Sprint("card-", i))
		carousel.shown = append(carousel.shown, fmt.Sprint("Card ", i), fmt.Sprintf("https://cdn.example.com/c%d.png", i))
	}
	carousel.payload, carousel.parts = chat.Carousel{Items: cards}, 2
	out["carousel"] = carousel

	var dropdown oversized
	opts = nil
	for i := range 200 {
		opts = append(opts, chat.ChoiceOption{Label: fmt.Sprint("Country ", i), Value: fmt.Sprint("c-", i)})
		dropdown.values = append(dropdown.values, fmt.Sprint("c-", i))
	}
	dropdown.payload = chat.Dropdown{Text: "Where to?", Options: opts}
	dropdown.shown, dropdown.parts = []string{"Where to?", "Country 0", "Country 199"}, 1 // two menus fit one message
	out["dropdown"] = dropdown

	var bloc oversized
	var items []chat.Payload
	for i := range 80 {
		switch i % 4 {
		case 0:
			items = append(items, chat.Text{Text: fmt.Sprint("Item ", i)})
			bloc.shown = append(bloc.shown, fmt.Sprint("Item ", i))
		case 1:
			items = append(items, chat.Image{ImageURL: fmt.Sprintf("https://cdn.example.com/b%d.png", i)})
			bloc.shown = append(bloc.shown, fmt.Sprintf("https://cdn.example.com/b%d.png", i))
		case 2:
			items = append(items, chat.File{FileURL: files + "/report.pdf", Title: fmt.Sprint("File ", i)})
			bloc.shown = append(bloc.shown, fmt.Sprint("File ", i))
		case 3:
			items = append(items, chat.Location{Latitude: 48.85, Longitude: 2.35, Title: fmt.Sprint("Place ", i)})
			bloc.shown = append(bloc.shown, fmt.Sprint("Place ", i))
		}
	}
	bloc.payload, bloc.parts = chat.Bloc{Items: items}, 2
	out["bloc"] = bloc
	return out
}

func TestOversizedRepliesArePostedWhole(t *testing.T) {
	files := fileServer(t)
	replies := oversizedReplies(files.URL)
	var mu sync.Mutex
	sent := map[string]chat.Message{} // the bot's replies, by name
	bot := chattest.BotFunc(func(ctx context.Context, r chattest.Replier, m chat.Message) {
		text := bridgetest.Text(m.Payload)
		if name, ok := strings.CutPrefix(text, "show "); ok {
			msg, err := r.Reply(ctx, replies[name].payload)
			if err == nil {
				mu.Lock()
				sent[name] = msg
				mu.Unlock()
			}
			return
		}
		_, _ = r.Reply(ctx, chat.Text{Text: "got: " + text})
	})
	r := newRig(t, bot, rigOptions{})

	type posted struct {
		out   bridge.Outbound
		parts bridge.Parts
	}
	var all []posted
	for _, name := range []string{"choice", "carousel", "dropdown", "bloc"} {
		want := replies[name]
		t.Run(name+" is posted whole; a click on its last option reaches the bot", func(t *testing.T) {
			root := r.say(t, alice, general, "", r.mention()+" show "+name)
			var parts []slacktest.Message
			everything := func(st *slacktest.State) bool {
				var text strings.Builder
				for _, m := range parts {
					text.WriteString(shown(st, m) + "\n")
				}
				for _, s := range want.shown {
					if !strings.Contains(text.String(), s) {
						return false
					}
				}
				return true
			}
			waitFor(t, r.fake, "every part posted", func(st *slacktest.State) bool {
				parts = parts[:0]
				for _, m := range botMessages(st, r.fake, general) {
					if m.ThreadTS == root.TS {
						parts = append(parts, m)
					}
				}
				return len(controls(parts)) >= len(want.values) && everything(st)
			})
			parts = slices.Clone(parts)
			r.idle(t)
			if len(parts) < want.parts {
				t.Errorf("posted as %d messages, want at least %d", len(parts), want.parts)
			}
			cs := controls(parts)
			var values []string
			for _, c := range cs {
				values = append(values, c.value)
			}
			if !slices.Equal(values, want.values) {
				t.Errorf("the parts offer %d options, want the %d of the reply in order", len(values), len(want.values))
			}
			if len(cs) > 0 {
				last := cs[len(cs)-1]
				a := slacktest.Action{User: alice, Channel: general, MessageTS: last.ts, ActionID: last.actionID}
				if last.kind == "static_select" {
					a.Type, a.Value = last.kind, last.value
				}
				if _, err := r.fake.SendEvent(waitCtx(t), slacktest.Interactive, r.fake.BlockActions(a)); err != nil {
					t.Fatal(err)
				}
				got := r.waitReplies(t, general, root.TS, len(parts)+1)
				if want := "got: " + last.value; got[len(parts)].Text != want {
					t.Errorf("reply to the click %q, want %q", got[len(parts)].Text, want)
				}
			}

			mu.Lock()
			msg := sent[name]
			mu.Unlock()
			p := posted{out: bridge.Outbound{ID: msg.ID, Room: bridge.RoomKey{Platform: bridge.PlatformSlack, Room: general, Thread: root.TS},
				Payload: want.payload, Time: msg.CreatedAt}}
			for _, m := range parts {
				p.parts = append(p.parts, m.TS)
			}
			all = append(all, p)
		})
	}
	t.Run("after a restart, FindSent finds every part", func(t *testing.T) {
		a := newAdapter(t, r.fake, func(c *slack.Config) { c.Mode, c.SigningSecret = slack.ModeHTTP, "secret" })
		run(t, a, nopHandler())
		for _, p := range all {
			found, err := a.FindSent(waitCtx(t), p.out)
			if err != nil || !slices.Equal(found, p.parts) {
				t.Errorf("FindSent(%T) = %q, %v; want %q", p.out.Payload, found, err, p.parts)
			}
		}
	})
}
