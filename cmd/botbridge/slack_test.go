package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/botbridge/botbridge/adapters/slack/slacktest"
	"github.com/botbridge/botbridge/chat/chattest"
)

func TestSlackConfigErrorsNameTheField(t *testing.T) {
	const bots = "bots:\n  - name: a\n    url: https://x/y\n"
	cases := []struct{ name, yaml, want string }{
		{"bot token of the wrong kind", "slack:\n  bot_token: xoxp-1\n  app_token: xapp-1\n", "slack.bot_token: must start with xoxb-"},
		{"app token missing in socket mode", "slack:\n  bot_token: xoxb-1\n", "slack.app_token: must start with xapp-"},
		{"token given without the bot token", "slack:\n  app_token: xapp-1\n", "slack.bot_token: missing"},
		{"signing secret missing in http mode", "slack:\n  mode: http\n  bot_token: xoxb-1\n", "slack.signing_secret"},
		{"bad mode", "slack:\n  mode: rtm\n  bot_token: xoxb-1\n", "slack.mode"},
		{"bad events path", "slack:\n  mode: http\n  bot_token: xoxb-1\n  signing_secret: s\n  events_path: events\n", "slack.events_path"},
		{"bad api url", "slack:\n  bot_token: xoxb-1\n  app_token: xapp-1\n  api_url: slack.com/api\n", "slack.api_url"},
		{"bad thinking", "slack:\n  bot_token: xoxb-1\n  app_token: xapp-1\n  thinking: typing\n", "slack.thinking"},
		{"negative interval", "slack:\n  bot_token: xoxb-1\n  app_token: xapp-1\n  post_interval: -1s\n", "slack.post_interval"},
		{"unknown key", "slack:\n  bot_tokn: xoxb-1\n", "bot_tokn"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseConfig(strings.NewReader(bots+c.yaml), env(nil))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v; want one mentioning %q", err, c.want)
			}
		})
	}
	t.Run("an empty section keeps Slack off", func(t *testing.T) {
		cfg, err := ParseConfig(strings.NewReader(bots+"slack:\n  bot_token: \"\"\n"), env(nil))
		if err != nil || cfg.Slack.enabled() {
			t.Errorf("err %v, enabled %v", err, cfg.Slack.enabled())
		}
	})
	t.Run("secrets come from the environment", func(t *testing.T) {
		cfg, err := ParseConfig(strings.NewReader(bots+"slack:\n  bot_token: ${SLACK_BOT_TOKEN}\n  app_token: ${SLACK_APP_TOKEN}\n"),
			env(map[string]string{"SLACK_BOT_TOKEN": "xoxb-env", "SLACK_APP_TOKEN": "xapp-env"}))
		if err != nil || cfg.Slack.BotToken != "xoxb-env" || cfg.Slack.AppToken != "xapp-env" {
			t.Errorf("err %v, slack %+v", err, cfg.Slack)
		}
	})
}

// TestServiceWithSlack runs the whole service from a configuration file's
// text against a fake Slack and the Chat API emulator: a message in, the
// bot's reply out.
func TestServiceWithSlack(t *testing.T) {
	const key = "service-test-key"
	for _, mode := range []string{"socket", "http"} {
		t.Run(mode+" mode answers a DM", func(t *testing.T) {
			em, err := chattest.New(chattest.Options{EncryptionKey: key, Bot: chattest.EchoBot()})
			if err != nil {
				t.Fatal(err)
			}
			if err := em.Start("127.0.0.1:0"); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { em.Close() })
			fake, err := slacktest.New(slacktest.Options{SigningSecret: "signing-secret"})
			if err != nil {
				t.Fatal(err)
			}
			if err := fake.Start(""); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { fake.Close() })
			fake.AddUser(slacktest.User{ID: "U0ALICE", Name: "alice", RealName: "Alice"})
			fake.AddChannel(slacktest.Channel{ID: "D0ALICE", Type: slacktest.IM, User: "U0ALICE"})

			yaml := fmt.Sprintf(`
store:
  path: %s
http:
  addr: 127.0.0.1:0
  admin_addr: 127.0.0.1:0
bots:
  - name: echo
    url: %s
    encryption_key: ${KEY}
slack:
  mode: %s
  bot_token: ${SLACK_BOT_TOKEN}
  app_token: ${SLACK_APP_TOKEN}
  signing_secret: ${SLACK_SIGNING_SECRET}
  api_url: %s
  post_interval: 1ms
`, filepath.Join(t.TempDir(), "botbridge.db"), em.URL(), mode, fake.APIURL())
			o := fake.Options()
			cfg, err := ParseConfig(strings.NewReader(yaml), env(map[string]string{"KEY": key,
				"SLACK_BOT_TOKEN": o.BotToken, "SLACK_APP_TOKEN": o.AppToken, "SLACK_SIGNING_SECRET": o.SigningSecret}))
			if err != nil {
				t.Fatal(err)
			}
			svc, err := NewService(t.Context(), cfg, slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			defer svc.Close()
			ctx, cancel := context.WithCancel(t.Context())
			done := make(chan error, 1)
			go func() { done <- svc.Run(ctx) }()
			defer func() {
				cancel()
				if err := <-done; err != nil {
					t.Errorf("Run: %v", err)
				}
			}()

			wait, stop := context.WithTimeout(t.Context(), 20*time.Second)
			defer stop()
			m := fake.AddMessage(slacktest.Message{Channel: "D0ALICE", User: "U0ALICE", Text: "hello service"})
			if mode == "socket" {
				if _, err := fake.SendEvent(wait, slacktest.EventsAPI, fake.MessageEvent(m)); err != nil {
					t.Fatal(err)
				}
			} else {
				// Until the adapter knows who it is, it asks Slack to come back.
				for {
					resp, err := fake.PostEvent(wait, "http://"+svc.HTTPAddr()+DefaultSlackEventsPath, fake.MessageEvent(m), slacktest.Delivery{})
					if err != nil {
						t.Fatal(err)
					}
					if resp.StatusCode == http.StatusOK {
						break
					}
					if resp.StatusCode != http.StatusServiceUnavailable {
						t.Fatalf("status %d: %s", resp.StatusCode, resp.Body)
					}
					select {
					case <-wait.Done():
						t.Fatal("the events handler never accepted the event")
					case <-time.After(10 * time.Millisecond):
					}
				}
			}
			err = fake.WaitFor(wait, func(st *slacktest.State) bool {
				for _, r := range st.Messages["D0ALICE"] {
					if r.BotID == o.BotID && r.Text == "hello service" {
						return true
					}
				}
				return false
			})
			if err != nil {
				t.Fatalf("no reply: %v", err)
			}
			req, _ := http.NewRequestWithContext(wait, http.MethodGet, "http://"+svc.AdminAddr()+"/readyz", nil)
			resp, err := (&http.Client{}).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("/readyz answered %d", resp.StatusCode)
			}
		})
	}
}
