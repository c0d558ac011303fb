package slack_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/botbridge/botbridge/adapters/slack"
	"github.com/botbridge/botbridge/adapters/slack/slacktest"
	"github.com/botbridge/botbridge/bridge"
)

// ackDeadline is how soon Slack wants a slash command acknowledged.
const ackDeadline = 3 * time.Second

var testCommands = []slack.Command{
	{Name: "/ask", Description: "Ask the bot"},
	{Name: "/reset", Description: "Start over", Reset: true},
}

// ephemeral returns the bot's messages in channel that only user sees.
func ephemeral(st *slacktest.State, channel, user string) []slacktest.Message {
	var out []slacktest.Message
	for _, m := range st.Messages[channel] {
		if m.EphemeralTo == user {
			out = append(out, m)
		}
	}
	return out
}

func waitEphemeral(t *testing.T, fake *slacktest.Server, channel, user string, n int) []slacktest.Message {
	t.Helper()
	var got []slacktest.Message
	waitFor(t, fake, "ephemeral answers", func(st *slacktest.State) bool {
		got = ephemeral(st, channel, user)
		return len(got) >= n
	})
	return got
}

// command sends a slash command over Socket Mode and returns its ack, which
// must come within Slack's deadline.
func command(t *testing.T, fake *slacktest.Server, user, channel, name, text string) slacktest.Ack {
	t.Helper()
	id, err := fake.SendEvent(waitCtx(t), slacktest.SlashCommands, fake.Command(user, channel, name, text))
	if err != nil {
		t.Fatal(err)
	}
	ack, err := fake.WaitAck(waitCtx(t), id)
	if err != nil {
		t.Fatal(err)
	}
	var sent time.Time
	for _, e := range fake.Snapshot().Envelopes {
		if e.EnvelopeID == id {
			sent = e.Time
		}
	}
	if d := ack.Time.Sub(sent); d > ackDeadline {
		t.Errorf("the command was acknowledged after %v, past Slack's %v", d, ackDeadline)
	}
	return ack
}

func TestSlashCommands(t *testing.T) {
	t.Run("the answer goes to the person alone by default", func(t *testing.T) {
		r := newRig(t, whoBot(), rigOptions{adapter: func(c *slack.Config) { c.Commands = testCommands }})
		ack := command(t, r.fake, alice, general, "/ask", "what is the weather?")
		if ack.Payload != nil {
			t.Errorf("ack payload %s, want none once the command is taken", ack.Payload)
		}
		got := waitEphemeral(t, r.fake, general, alice, 1)
		if want := "what is the weather? (from Alice in #general)"; got[0].Text != want || got[0].ThreadTS != "" {
			t.Errorf("answer %q in thread %q, want %q at the top", got[0].Text, got[0].ThreadTS, want)
		}
		r.idle(t)
		if n := len(r.replies(general, "")); n != 0 {
			t.Errorf("%d answers everyone sees", n)
		}
		sent := r.sentToBot(t, r.em)
		if len(sent) != 1 || sent[0].Metadata["command"] != "/ask" || sent[0].Metadata["ephemeral"] != true {
			t.Errorf("Botpress got %v", sent)
		}

		t.Run("a reset command starts over, and says so to the person", func(t *testing.T) {
			command(t, r.fake, alice, general, "/reset", "")
			got := waitEphemeral(t, r.fake, general, alice, 2)
			if !strings.Contains(got[1].Text, "new conversation") {
				t.Errorf("reset answered %q", got[1].Text)
			}
		})
		t.Run("a command without text sends its name", func(t *testing.T) {
			command(t, r.fake, alice, dm, "/ask", "")
			got := waitEphemeral(t, r.fake, dm, alice, 1)
			if want := "/ask (from Alice)"; got[0].Text != want {
				t.Errorf("answer %q, want %q", got[0].Text, want)
			}
		})
		t.Run("a command botbridge does not know is answered with a hint", func(t *testing.T) {
			ack := command(t, r.fake, alice, general, "/weather", "today")
			var body struct {
				ResponseType string `json:"response_type"`
				Text         string `json:"text"`
			}
			if err := json.Unmarshal(ack.Payload, &body); err != nil || body.ResponseType != "ephemeral" || !strings.Contains(body.Text, "slack.commands") {
				t.Errorf("ack %s, %v", ack.Payload, err)
			}
		})
	})
	t.Run("the answer goes to the channel where the route says so", func(t *testing.T) {
		r := newRig(t, whoBot(), rigOptions{
			adapter: func(c *slack.Config) { c.Commands = testCommands },
			routes:  []bridge.Route{{Bot: "bot", CommandReplies: bridge.CommandReplyChannel}},
		})
		command(t, r.fake, alice, general, "/ask", "hello all")
		got := r.waitReplies(t, general, "", 1)
		if want := "hello all (from Alice in #general)"; got[0].Text != want {
			t.Errorf("answer %q, want %q", got[0].Text, want)
		}
	})
	t.Run("over HTTP, the command is answered 200 within the deadline", func(t *testing.T) {
		r := newRig(t, whoBot(), rigOptions{adapter: func(c *slack.Config) {
			c.Commands = testCommands
			c.Mode, c.AppToken, c.SigningSecret = slack.ModeHTTP, "", "secret"
		}, fake: slacktest.Options{SigningSecret: "secret"}})
		srv := httptest.NewServer(r.ad.EventsHandler())
		t.Cleanup(srv.Close)
		waitReady(t, r.ad, "nil", func(err error) bool { return err == nil })
		start := time.Now()
		resp, err := r.fake.PostCommand(waitCtx(t), srv.URL, r.fake.Command(bob, general, "/ask", "over http"), slacktest.Delivery{})
		if err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); resp.StatusCode != http.StatusOK || len(resp.Body) != 0 || d > ackDeadline {
			t.Errorf("answered %d %q after %v", resp.StatusCode, resp.Body, d)
		}
		got := waitEphemeral(t, r.fake, general, bob, 1)
		if want := "over http (from Bob Builder in #general)"; got[0].Text != want {
			t.Errorf("answer %q, want %q", got[0].Text, want)
		}
	})
}
