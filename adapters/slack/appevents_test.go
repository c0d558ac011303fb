package slack_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/botbridge/botbridge/adapters/slack"
	"github.com/botbridge/botbridge/adapters/slack/slacktest"
	"github.com/botbridge/botbridge/bridge"
)

// sendAcked sends an Events API envelope and waits for its ack.
func sendAcked(t *testing.T, fake *slacktest.Server, ev slacktest.EventCallback) {
	t.Helper()
	id, err := fake.SendEvent(waitCtx(t), slacktest.EventsAPI, ev)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fake.WaitAck(waitCtx(t), id); err != nil {
		t.Fatal(err)
	}
}

func TestHomeTab(t *testing.T) {
	r := newRig(t, whoBot(), rigOptions{adapter: func(c *slack.Config) {
		c.Commands = testCommands
		c.Bots = map[string]slack.BotIdentity{"bot": {Name: "Helpdesk", Description: "Answers questions about **your account**."}}
	}})
	sendAcked(t, r.fake, r.fake.AppHomeOpenedEvent(alice, "home"))
	var view slacktest.View
	waitFor(t, r.fake, "the Home tab", func(st *slacktest.State) bool {
		view = st.Views[alice]
		return view.Type == "home"
	})
	text := shown(r.fake.Snapshot(), slacktest.Message{Blocks: view.Blocks})
	for _, want := range []string{"Helpdesk", "Answers questions about *your account*.", "How to talk to me", "`/ask` — Ask the bot", "`/reset`"} {
		if !strings.Contains(text, want) {
			t.Errorf("the Home tab lacks %q:\n%s", want, text)
		}
	}
	t.Run("opening it again publishes nothing new", func(t *testing.T) {
		sendAcked(t, r.fake, r.fake.AppHomeOpenedEvent(alice, "home"))
		sendAcked(t, r.fake, r.fake.AppHomeOpenedEvent(alice, "messages"))
		r.idle(t)
		if n := len(r.fake.Snapshot().CallsTo("views.publish")); n != 1 {
			t.Errorf("views.publish called %d times, want once", n)
		}
	})
}

func TestAgentThreads(t *testing.T) {
	prompts := []bridge.Prompt{{Title: "Reset my password", Message: "How do I reset my password?"}, {Title: "Status", Message: "Is anything down?"}}
	r := newRig(t, whoBot(), rigOptions{routes: []bridge.Route{{Bot: "bot", Prompts: prompts}}})
	root, ev, err := r.fake.StartAssistantThread(alice, dm, slacktest.AssistantContext{ChannelID: general, TeamID: slacktest.DefaultTeamID})
	if err != nil {
		t.Fatal(err)
	}
	sendAcked(t, r.fake, ev)

	t.Run("a new thread gets the route's suggested prompts", func(t *testing.T) {
		var got slacktest.SuggestedPrompts
		waitFor(t, r.fake, "suggested prompts", func(st *slacktest.State) bool {
			if len(st.Prompts) == 0 {
				return false
			}
			got = st.Prompts[0]
			return true
		})
		want := []slacktest.Prompt{{Title: "Reset my password", Message: "How do I reset my password?"}, {Title: "Status", Message: "Is anything down?"}}
		if got.Channel != dm || got.ThreadTS != root.TS || !slices.Equal(got.Prompts, want) {
			t.Errorf("prompts %+v", got)
		}
	})
	t.Run("its first message titles it and is answered in it", func(t *testing.T) {
		r.say(t, alice, dm, root.TS, "How do I reset my password? I forgot it yesterday and the link expired")
		r.waitReplies(t, dm, root.TS, 1)
		var titles []slacktest.Title
		waitFor(t, r.fake, "a title", func(st *slacktest.State) bool {
			titles = slices.Clone(st.Titles)
			return len(titles) > 0
		})
		if want := "How do I reset my password? I forgot it yesterday and the…"; titles[0].Title != want || titles[0].ThreadTS != root.TS {
			t.Errorf("title %+v, want %q", titles[0], want)
		}
		r.say(t, alice, dm, root.TS, "second message")
		r.waitReplies(t, dm, root.TS, 2)
		r.idle(t)
		if n := len(r.fake.Snapshot().Titles); n != 1 {
			t.Errorf("%d titles; only the first message titles the thread", n)
		}
	})
	t.Run("a change of context reaches the bot as metadata", func(t *testing.T) {
		sendAcked(t, r.fake, r.fake.AssistantThreadContextChangedEvent(alice, dm, root.TS, slacktest.AssistantContext{ChannelID: group, TeamID: slacktest.DefaultTeamID}))
		got := r.waitReplies(t, dm, root.TS, 3)
		if !strings.HasPrefix(got[2].Text, "(is viewing #mpdm-alice--bob--botbridge-1)") {
			t.Errorf("the bot got %q", got[2].Text)
		}
		sent := r.sentToBot(t, r.em)
		last := sent[len(sent)-1]
		data, _ := last.Metadata["eventData"].(map[string]any)
		if last.Metadata["event"] != bridge.EventContext || data["channelId"] != group || data["teamId"] != slacktest.DefaultTeamID {
			t.Errorf("metadata %v", last.Metadata)
		}
	})
}

func TestWelcome(t *testing.T) {
	const quiet = "C0QUIET"
	r := newRig(t, whoBot(), rigOptions{routes: []bridge.Route{{Bot: "bot", Rooms: []string{general}, Welcome: true}, {Bot: "bot"}}})
	r.fake.AddChannel(slacktest.Channel{ID: quiet, Name: "quiet", Members: []string{alice}, IsMember: true})
	const carol = "U000CAROL"
	r.fake.AddUser(slacktest.User{ID: carol, Name: "carol", RealName: "Carol"})
	for _, ch := range []string{quiet, general} {
		if _, err := r.fake.JoinChannel(ch, carol); err != nil {
			t.Fatal(err)
		}
		sendAcked(t, r.fake, r.fake.MemberJoinedChannelEvent(ch, carol, alice))
	}
	got := r.waitReplies(t, general, "", 1)
	if want := "(joined the channel) (from Carol in #general)"; got[0].Text != want {
		t.Errorf("greeting %q, want %q", got[0].Text, want)
	}
	t.Run("the bot joining is no one to greet, and rooms without welcome stay quiet", func(t *testing.T) {
		sendAcked(t, r.fake, r.fake.MemberJoinedChannelEvent(general, r.fake.Options().BotUserID, alice))
		r.idle(t)
		if n := len(r.replies(general, "")); n != 1 {
			t.Errorf("%d greetings in #general, want 1", n)
		}
		if n := len(r.replies(quiet, "")); n != 0 {
			t.Errorf("%d greetings in #quiet, want none", n)
		}
		sent := r.sentToBot(t, r.em)
		if len(sent) != 1 || sent[0].Metadata["event"] != bridge.EventJoined {
			t.Errorf("Botpress got %v", sent)
		}
	})
}
