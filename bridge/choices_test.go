package bridge_test

import (
	"context"
	"strings"
	"testing"

	"github.com/botbridge/botbridge/bridge"
	"github.com/botbridge/botbridge/bridge/bridgetest"
	"github.com/botbridge/botbridge/chat"
	"github.com/botbridge/botbridge/chat/chattest"
)

// chooserBot offers a choice, a carousel or a dropdown when asked, and
// answers anything else with what it got and how.
func chooserBot() chattest.Bot {
	return chattest.BotFunc(func(ctx context.Context, r chattest.Replier, m chat.Message) {
		text := bridgetest.Text(m.Payload)
		var p chat.Payload
		switch text {
		case "choice":
			p = chat.Choice{Text: "Size?", Options: []chat.ChoiceOption{{Label: "Small", Value: "s"}, {Label: "Large", Value: "l"}}}
		case "carousel":
			p = chat.Carousel{Items: []chat.Card{
				{Title: "A", Actions: []chat.CardAction{{Action: chat.ActionURL, Label: "Site", Value: "https://a"}, {Action: chat.ActionPostback, Label: "Pick A", Value: "a"}}},
				{Title: "B", Actions: []chat.CardAction{{Action: chat.ActionSay, Label: "Pick B", Value: "b"}}},
			}}
		case "dropdown":
			p = chat.Dropdown{Text: "Country?", Options: []chat.ChoiceOption{{Label: "France", Value: "fr"}}}
		default:
			how := "said"
			if m.Metadata["action"] == true {
				how = "picked " + m.Metadata["actionLabel"].(string)
			}
			p = chat.Text{Text: how + ": " + text}
		}
		_, _ = r.Reply(ctx, p)
	})
}

// ask says text in the DM and returns the bot's answer, the post n, once
// the bridge is done with it (a person reads a choice before answering).
func (r *rig) ask(text string, n int) string {
	r.t.Helper()
	r.say(dm(text))
	got := bridgetest.Text(r.waitPosts(n)[n-1].Payload())
	r.waitIdle()
	return got
}

func TestAnswersToChoicesByNumberOrLabel(t *testing.T) {
	r := newRig(t, chooserBot())
	r.textChoices = true
	r.start()

	if got := r.ask("hello", 1); got != "said: hello" {
		t.Errorf("plain message answered %q", got)
	}
	r.ask("choice", 2)
	if got := r.ask("2", 3); got != "picked Large: l" {
		t.Errorf("answer by number reached the bot as %q, want the option's value", got)
	}
	if got := r.ask("2", 4); got != "said: 2" {
		t.Errorf("an answered choice still took %q", got)
	}
	r.ask("carousel", 5)
	if got := r.ask("pick b", 6); got != "picked Pick B: b" {
		t.Errorf("answer by label reached the bot as %q", got)
	}
	r.ask("dropdown", 7)
	if got := r.ask("7", 8); got != "said: 7" {
		t.Errorf("out-of-range number reached the bot as %q", got)
	}
}

func TestChoicesStandAcrossARestart(t *testing.T) {
	r := newRig(t, chooserBot())
	r.textChoices = true
	r.start()
	r.ask("choice", 1)
	r.waitIdle()
	r.stop()
	r.start()
	if got := r.ask("small", 2); got != "picked Small: s" {
		t.Errorf("answer after a restart reached the bot as %q, want the option's value", got)
	}
}

func TestOnlyPeopleTheRouteAdmitsAnswerChoices(t *testing.T) {
	r := newRig(t, chooserBot())
	r.textChoices = true
	r.routes = []bridge.Route{{Bot: "bot", Users: []string{"U_ALICE"}}}
	r.start()
	r.ask("choice", 1)
	mallory := dm("1")
	mallory.Sender = bridge.Sender{ID: "U_MALLORY", Name: "Mallory"}
	r.say(mallory)
	r.waitIdle()
	if got := r.ask("1", 2); got != "picked Small: s" {
		t.Errorf("alice's answer reached the bot as %q; the choice must stand after someone the route refuses answered it", got)
	}
	for _, c := range r.conversations() {
		if got := strings.Join(r.userMessages(c), "|"); got != "choice|s" {
			t.Errorf("Botpress got %q, want alice's messages only", got)
		}
	}
}

func TestAnAnswerTheMomentTheChoiceShowsIsTaken(t *testing.T) {
	r := newRig(t, chooserBot())
	r.textChoices = true
	r.start()
	posts := r.ad().Subscribe(0)
	r.say(dm("choice"))
	<-posts // the choice shows; the adapter's Send has not returned yet
	r.say(dm("2"))
	if got := bridgetest.Text((<-posts).Payload()); got != "picked Large: l" {
		t.Errorf("an answer typed as the choice showed reached the bot as %q", got)
	}
}
