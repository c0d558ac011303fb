package slack_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/botbridge/botbridge/adapters/slack"
	"github.com/botbridge/botbridge/adapters/slack/slacktest"
	"github.com/botbridge/botbridge/bridge"
	"github.com/botbridge/botbridge/chat"
	"github.com/botbridge/botbridge/chat/chattest"
)

var identities = map[string]slack.BotIdentity{
	"bot":   {Name: "Support", IconURL: "https://icons.example.com/support.png"},
	"sales": {Name: "Sales", IconURL: "https://icons.example.com/sales.png"},
}

// customize is the fake's default scopes with chat:write.customize.
func customize() slacktest.Options {
	return slacktest.Options{Scopes: append(slacktest.DefaultScopes(), "chat:write.customize")}
}

func TestOneIdentityPerBot(t *testing.T) {
	sales := chattest.BotFunc(func(ctx context.Context, rp chattest.Replier, m chat.Message) {
		_, _ = rp.Reply(ctx, chat.Text{Text: "sales here"})
	})
	// In #general the support bot answers mentions and the sales bot
	// /sales, in the channel.
	r := newRig(t, whoBot(), rigOptions{
		fake: customize(),
		adapter: func(c *slack.Config) {
			c.Bots = identities
			c.Commands = []slack.Command{{Name: "/sales", Bot: "sales"}}
		},
		bots:   map[string]chattest.Bot{"sales": sales},
		routes: []bridge.Route{{Bot: "bot", Answer: bridge.AnswerAll, CommandReplies: bridge.CommandReplyChannel}},
	})
	a := r.say(t, alice, general, "", r.mention()+" support please")
	fromA := r.waitReplies(t, general, a.TS, 1)[0]
	command(t, r.fake, bob, general, "/sales", "a quote please")
	fromB := r.waitReplies(t, general, "", 1)[0]
	if fromA.Username != "Support" || fromA.IconURL != identities["bot"].IconURL {
		t.Errorf("the support bot posted as %q %q", fromA.Username, fromA.IconURL)
	}
	if fromB.Username != "Sales" || fromB.IconURL != identities["sales"].IconURL || fromB.Text != "sales here" {
		t.Errorf("the sales bot posted %q as %q %q", fromB.Text, fromB.Username, fromB.IconURL)
	}
	if n := len(r.sentToBot(t, r.ems["sales"])); n != 1 {
		t.Errorf("the sales bot got %d messages, want the command", n)
	}
	t.Run("posts under another name are still the bot's own: not answered, found after a crash", func(t *testing.T) {
		sendAcked(t, r.fake, r.fake.MessageEvent(fromB))
		r.idle(t)
		if n := len(r.replies(general, "")); n != 1 {
			t.Errorf("%d posts at the top; the bot answered its own post", n)
		}
		out := bridge.Outbound{ID: "msg-crash", Bot: "sales", Room: bridge.RoomKey{Platform: bridge.PlatformSlack, Room: general, Thread: a.TS},
			Payload: chat.Text{Text: "posted before the crash"}, Time: time.Now()}
		posted, err := r.ad.Send(waitCtx(t), out)
		if err != nil {
			t.Fatal(err)
		}
		if m := r.fake.Snapshot().Message(general, posted.First()); m == nil || m.Username != "Sales" {
			t.Fatalf("posted %+v", m)
		}
		restarted := newAdapter(t, r.fake, func(c *slack.Config) { c.Bots = identities })
		run(t, restarted, nopHandler())
		found, err := restarted.FindSent(waitCtx(t), out)
		if err != nil || !slices.Equal(found, posted) {
			t.Errorf("FindSent = %q, %v; want %q", found, err, posted)
		}
	})
}

func TestIdentityNeedsTheScope(t *testing.T) {
	r := newRig(t, whoBot(), rigOptions{adapter: func(c *slack.Config) { c.Bots = identities }})
	m := r.say(t, alice, general, "", r.mention()+" hi")
	got := r.waitReplies(t, general, m.TS, 1)[0]
	if got.Username != "" {
		t.Errorf("without chat:write.customize Slack shows the app's name, not %q", got.Username)
	}
}
