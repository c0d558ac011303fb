package main

import (
	"strings"
	"testing"

	"github.com/botbridge/botbridge/adapters/slack/slacktest"
	"github.com/botbridge/botbridge/chat/chattest"
)

func TestCheckConfigOnline(t *testing.T) {
	em, err := chattest.New(chattest.Options{EncryptionKey: "right-key"})
	if err != nil {
		t.Fatal(err)
	}
	if err := em.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer em.Close()
	sl, err := slacktest.New(slacktest.Options{BotToken: "xoxb-good", AppToken: "xapp-good"})
	if err != nil {
		t.Fatal(err)
	}
	if err := sl.Start(""); err != nil {
		t.Fatal(err)
	}
	defer sl.Close()

	config := func(key, botToken, appToken string) string {
		return "bots:\n  - name: b\n    url: " + em.URL() + "\n    encryption_key: " + key +
			"\nslack:\n  bot_token: " + botToken + "\n  app_token: " + appToken + "\n  api_url: " + sl.APIURL() + "\n"
	}
	t.Run("everything right passes", func(t *testing.T) {
		code, out, errOut := runMain(t, "", "check-config", "-online", "-config", writeFile(t, config("right-key", "xoxb-good", "xapp-good")))
		if code != 0 || strings.Contains(out, "FAIL") {
			t.Errorf("exit %d:\n%s%s", code, out, errOut)
		}
		for _, want := range []string{"ok    bots[0] b", "ok    slack.bot_token", "ok    slack.app_token"} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
	})
	t.Run("a wrong key and tokens fail with the fix", func(t *testing.T) {
		code, out, _ := runMain(t, "", "check-config", "-online", "-config", writeFile(t, config("wrong-key", "xoxb-bad", "xapp-bad")))
		if code != 1 {
			t.Errorf("exit %d, want 1", code)
		}
		for _, want := range []string{"FAIL  bots[0] b: the Chat API refuses keys signed with encryption_key", "FAIL  slack.bot_token",
			"check slack.bot_token", "FAIL  slack.app_token", "check slack.app_token"} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
		for _, secret := range []string{"wrong-key", "xoxb-bad", "xapp-bad"} {
			if strings.Contains(out, secret) {
				t.Errorf("output shows the secret %q:\n%s", secret, out)
			}
		}
	})
	t.Run("an unreachable Chat API fails", func(t *testing.T) {
		path := writeFile(t, "bots:\n  - name: b\n    url: http://127.0.0.1:1/none\n")
		code, out, _ := runMain(t, "", "check-config", "-online", "-config", path)
		if code != 1 || !strings.Contains(out, "does not answer") {
			t.Errorf("exit %d:\n%s", code, out)
		}
	})
	t.Run("the public URL reaches the public listener, not the admin one", func(t *testing.T) {
		cfg := defaults()
		cfg.HTTP.Addr = "127.0.0.1:0"
		cfg.HTTP.PublicURL = "https://botbridge.example"
		cfg.Bots = []BotConfig{{Name: "b", URL: startEmulator(t)}}
		svc, _ := runConfig(t, cfg, testLog(t))
		for _, c := range []struct{ addr, want string }{
			{svc.HTTPAddr(), "ok    http.public_url"},
			{svc.AdminAddr(), "warn  http.public_url: http://" + svc.AdminAddr() + "/files/healthz answered 404 Not Found, not botbridge"},
		} {
			path := writeFile(t, "bots:\n  - name: b\n    url: "+em.URL()+"\n    encryption_key: right-key\nhttp:\n  addr: 127.0.0.1:0\n  public_url: http://"+c.addr+"\n")
			_, out, errOut := runMain(t, "", "check-config", "-online", "-config", path)
			if !strings.Contains(out, c.want) {
				t.Errorf("output lacks %q:\n%s%s", c.want, out, errOut)
			}
		}
	})
}
