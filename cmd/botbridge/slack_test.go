package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/botbridge/botbridge/adapters/slack/slacktest"
	"github.com/botbridge/botbridge/bridge"
	"github.com/botbridge/botbridge/chat/chattest"
)

func TestBotAndRouteConfigErrorsNameTheField(t *testing.T) {
	cases := []struct{ name, yaml, want string }{
		{"bad events", "bots:\n  - name: a\n    url: https://x/y\n    events: webhook\n", "bots[0].events: \"webhook\" is not message or event"},
		{"bad icon", "bots:\n  - name: a\n    url: https://x/y\n    icon_url: icon.png\n", "bots[0].icon_url"},
		{"long name", "bots:\n  - name: a\n    url: https://x/y\n    display_name: " + strings.Repeat("n", 81) + "\n", "bots[0].display_name"},
		{"bad command replies", "bots:\n  - name: a\n    url: https://x/y\nroutes:\n  - bot: a\n    command_replies: thread\n", "routes[0].command_replies"},
		{"too many prompts", "bots:\n  - name: a\n    url: https://x/y\nroutes:\n  - bot: a\n    prompts:" + strings.Repeat("\n      - title: t\n        message: m", 5) + "\n", "routes[0].prompts: 5 prompts"},
		{"prompt without message", "bots:\n  - name: a\n    url: https://x/y\nroutes:\n  - bot: a\n    prompts:\n      - title: t\n", "routes[0].prompts[0]: needs a title and a message"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseConfig(strings.NewReader(c.yaml), env(nil))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v; want one mentioning %q", err, c.want)
			}
		})
	}
	t.Run("the new options reach the bridge", func(t *testing.T) {
		cfg, err := ParseConfig(strings.NewReader("bots:\n  - name: a\n    url: https://x/y\n    events: event\nroutes:\n  - bot: a\n    team: T1\n    welcome: true\n    command_replies: channel\n    prompts:\n      - title: t\n        message: m\n"), env(nil))
		if err != nil {
			t.Fatal(err)
		}
		r := cfg.BridgeRoutes()[0]
		if r.Team != "T1" || !r.Welcome || r.CommandReplies != bridge.CommandReplyChannel || len(r.Prompts) != 1 || r.Prompts[0].Message != "m" {
			t.Errorf("route %+v", r)
		}
	})
}

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
		{"client secret missing", "slack:\n  client_id: \"1.2\"\n  app_token: xapp-1\n  token_key: " + strings.Repeat("k", 32) + "\n", "slack.client_secret: missing"},
		{"token key too short", "slack:\n  client_id: \"1.2\"\n  client_secret: s\n  app_token: xapp-1\n  token_key: short\n", "slack.token_key: needs 32 characters"},
		{"token key without client id", "slack:\n  bot_token: xoxb-1\n  app_token: xapp-1\n  token_key: k\n", "slack.client_id: missing"},
		{"client id without public url", "slack:\n  client_id: \"1.2\"\n  client_secret: s\n  app_token: xapp-1\n  token_key: " + strings.Repeat("k", 32) + "\n", "slack.client_id: needs http.public_url"},
		{"command without slash", "slack:\n  bot_token: xoxb-1\n  app_token: xapp-1\n  commands:\n    - name: ask\n", "slack.commands[0].name"},
		{"command twice", "slack:\n  bot_token: xoxb-1\n  app_token: xapp-1\n  commands:\n    - name: /ask\n    - name: /ask\n", "slack.commands[1].name: /ask is listed twice"},
		{"command of an unknown bot", "slack:\n  bot_token: xoxb-1\n  app_token: xapp-1\n  commands:\n    - name: /ask\n      bot: nobody\n", "slack.commands[0].bot: no bot named \"nobody\""},
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

// TestServiceInstallsWorkspaces runs the whole service with several
// workspaces: the install link and the OAuth callback are on the HTTP
// listener, and a workspace installed through them is answered with its own
// token.
func TestServiceInstallsWorkspaces(t *testing.T) {
	const key = "service-test-key"
	em, err := chattest.New(chattest.Options{EncryptionKey: key, Bot: chattest.EchoBot()})
	if err != nil {
		t.Fatal(err)
	}
	if err := em.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { em.Close() })
	fake, err := slacktest.New(slacktest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := fake.Start(""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fake.Close() })
	fake.AddTeam(slacktest.Team{ID: "T2", Name: "Two"})
	fake.AddUser(slacktest.User{ID: "U0DAVE", Name: "dave", RealName: "Dave"})
	fake.AddChannel(slacktest.Channel{ID: "C2", Name: "two", Team: "T2", Members: []string{"U0DAVE"}, IsMember: true})

	yaml := fmt.Sprintf(`
store:
  path: %s
http:
  addr: 127.0.0.1:0
  public_url: https://bridge.example.org
bots:
  - name: echo
    url: %s
    encryption_key: ${KEY}
routes:
  - bot: echo
    answer: all
slack:
  app_token: ${SLACK_APP_TOKEN}
  client_id: ${SLACK_CLIENT_ID}
  client_secret: ${SLACK_CLIENT_SECRET}
  token_key: ${SLACK_TOKEN_KEY}
  api_url: %s
  post_interval: 1ms
`, filepath.Join(t.TempDir(), "botbridge.db"), em.URL(), fake.APIURL())
	o := fake.Options()
	cfg, err := ParseConfig(strings.NewReader(yaml), env(map[string]string{"KEY": key, "SLACK_APP_TOKEN": o.AppToken,
		"SLACK_CLIENT_ID": o.ClientID, "SLACK_CLIENT_SECRET": o.ClientSecret, "SLACK_TOKEN_KEY": strings.Repeat("k", 40)}))
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

	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(u string) *http.Response {
		t.Helper()
		req, _ := http.NewRequestWithContext(wait, http.MethodGet, u, nil)
		resp, err := browser.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	base := "http://" + svc.HTTPAddr()
	resp := get(base + SlackInstallPath)
	authorize, err := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound || err != nil || authorize.Query().Get("redirect_uri") != "https://bridge.example.org"+SlackCallbackPath {
		t.Fatalf("install link answered %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	q := authorize.Query()
	q.Set("team", "T2")
	authorize.RawQuery = q.Encode()
	back, err := url.Parse(get(authorize.String()).Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	// The public URL leads to the listener (through a proxy, in production).
	for {
		resp = get(base + back.Path + "?" + back.RawQuery)
		if resp.StatusCode != http.StatusServiceUnavailable {
			break
		}
		select { // the adapter is starting; Slack's code stays valid
		case <-wait.Done():
			t.Fatal("the callback never accepted the install")
		case <-time.After(10 * time.Millisecond):
		}
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("callback answered %d", resp.StatusCode)
	}
	m := fake.AddMessage(slacktest.Message{Channel: "C2", User: "U0DAVE", Text: "hello workspace two"})
	if _, err := fake.SendEvent(wait, slacktest.EventsAPI, fake.MessageEvent(m)); err != nil {
		t.Fatal(err)
	}
	token := ""
	for _, in := range fake.Installations() {
		if in.ID == "T2" {
			token = in.BotToken
		}
	}
	err = fake.WaitFor(wait, func(st *slacktest.State) bool {
		for _, c := range st.CallsTo("chat.postMessage") {
			if c.Args.Get("channel") == "C2" && c.Args.Get("text") == "hello workspace two" && c.Token == token && c.Error == "" {
				return true
			}
		}
		return false
	})
	if err != nil {
		t.Fatalf("no reply with the workspace's token: %v", err)
	}
}
