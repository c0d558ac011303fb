package slack_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/botbridge/botbridge/adapters/slack"
	"github.com/botbridge/botbridge/adapters/slack/slacktest"
	"github.com/botbridge/botbridge/bridge"
	"github.com/botbridge/botbridge/chat"
)

func contains(s string) func(error) bool {
	return func(err error) bool { return err != nil && strings.Contains(err.Error(), s) }
}

func TestReadiness(t *testing.T) {
	t.Run("a refused bot token is reported with the setting to fix", func(t *testing.T) {
		fake := newFake(t, slacktest.Options{})
		a := newAdapter(t, fake, func(c *slack.Config) { c.BotToken = "xoxb-revoked" })
		run(t, a, nopHandler())
		waitReady(t, a, "the token error", contains("invalid_auth: check slack.bot_token"))
		// It keeps trying, slowly, rather than giving up.
		waitFor(t, fake, "a second auth.test", func(st *slacktest.State) bool { return len(st.CallsTo("auth.test")) >= 2 })
	})
	t.Run("a refused app token is reported with the setting to fix", func(t *testing.T) {
		fake := newFake(t, slacktest.Options{})
		a := newAdapter(t, fake, func(c *slack.Config) { c.AppToken = "xapp-1-revoked" })
		run(t, a, nopHandler())
		waitReady(t, a, "the token error", contains("invalid_auth: check slack.app_token"))
		waitFor(t, fake, "another apps.connections.open", func(st *slacktest.State) bool {
			return len(st.CallsTo("apps.connections.open")) >= 2
		})
	})
	t.Run("a missing scope is named, and readiness comes back once it is granted", func(t *testing.T) {
		r := newRig(t, whoBot(), rigOptions{})
		waitReady(t, r.ad, "nil", func(err error) bool { return err == nil })
		r.fake.FailMethod("chat.postMessage", "missing_scope", 3)
		r.say(t, alice, dm, "", "hello")
		waitReady(t, r.ad, "the scope error", contains("add the chat:write scope"))
		r.waitReplies(t, dm, "", 1) // the bridge retries until Slack accepts
		waitReady(t, r.ad, "nil", func(err error) bool { return err == nil })
	})
	t.Run("a channel without the bot says to invite it", func(t *testing.T) {
		fake := newFake(t, slacktest.Options{})
		fake.AddChannel(slacktest.Channel{ID: "C0RANDOM", Name: "random", Members: []string{alice}})
		a := newAdapter(t, fake, nil)
		run(t, a, nopHandler())
		waitReady(t, a, "nil", func(err error) bool { return err == nil })
		_, err := a.Send(waitCtx(t), bridge.Outbound{ID: "m1", Room: bridge.RoomKey{Platform: bridge.PlatformSlack, Room: "C0RANDOM"},
			Payload: chat.Text{Text: "hi"}, Time: time.Now()})
		if !errors.Is(err, bridge.ErrNoAccess) || bridge.IsPermanent(err) {
			t.Fatalf("Send: %v; want a refusal marked bridge.NoAccess", err)
		}
		waitReady(t, a, "the channel error", contains("invite the bot to channel C0RANDOM"))
	})
	t.Run("a channel the bot cannot see is refused as no access, and readiness stays", func(t *testing.T) {
		fake := newFake(t, slacktest.Options{})
		a := newAdapter(t, fake, nil)
		run(t, a, nopHandler())
		waitReady(t, a, "nil", func(err error) bool { return err == nil })
		_, err := a.Send(waitCtx(t), bridge.Outbound{ID: "m1", Room: bridge.RoomKey{Platform: bridge.PlatformSlack, Room: "C0NOWHERE"},
			Payload: chat.Text{Text: "hi"}, Time: time.Now()})
		var ae *slack.APIError
		if !errors.Is(err, bridge.ErrNoAccess) || bridge.IsPermanent(err) || !errors.As(err, &ae) || ae.Code != "channel_not_found" {
			t.Errorf("Send: %v; want channel_not_found marked bridge.NoAccess", err)
		}
		if err := a.Ready(); err != nil {
			t.Errorf("Ready: %v", err)
		}
	})
}
