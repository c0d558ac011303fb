package main

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/botbridge/botbridge/bridge"
)

func env(vars map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := vars[k]
		return v, ok
	}
}

func TestConfigExampleParses(t *testing.T) {
	f, err := os.Open("../../config.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cfg, err := ParseConfig(f, env(map[string]string{
		"BOTPRESS_WEBHOOK_ID":     "wh-123",
		"BOTPRESS_ENCRYPTION_KEY": "s3cret",
	}))
	if err != nil {
		t.Fatalf("config.example.yaml does not parse: %v", err)
	}
	if got, _ := cfg.Bots[0].BaseURL(); got != "https://chat.botpress.cloud/wh-123" {
		t.Errorf("bot url = %q", got)
	}
	if cfg.Bots[0].EncryptionKey != "s3cret" {
		t.Errorf("encryption key not expanded: %q", cfg.Bots[0].EncryptionKey)
	}
	if cfg.Bridge.ListenerIdle != 10*time.Minute || cfg.Bridge.Workers != 64 {
		t.Errorf("bridge settings = %+v", cfg.Bridge)
	}
	routes := cfg.BridgeRoutes()
	if len(routes) != 1 || routes[0].Bot != "support" || routes[0].ResetWord != "!reset" {
		t.Errorf("routes = %+v", routes)
	}
}

func TestConfigErrorsNameTheField(t *testing.T) {
	cases := []struct {
		name, yaml, want string
	}{
		{"unknown key", "bots:\n  - name: a\n    url: https://x/y\n    encrytion_key: k\n", "encrytion_key"},
		{"missing env", "bots:\n  - name: a\n    url: https://x/${NOPE}\n", "bots[0].url: environment variable NOPE is not set"},
		{"no bots", "log:\n  level: info\n", "bots: none configured"},
		{"bad url", "bots:\n  - name: a\n    url: chat.botpress.cloud/x\n", "bots[0]: url:"},
		{"url and webhook", "bots:\n  - name: a\n    url: https://x/y\n    webhook_id: z\n", "give one of them"},
		{"bad level", "log:\n  level: loud\nbots:\n  - name: a\n    url: https://x/y\n", "log.level"},
		{"duplicate bot", "bots:\n  - name: a\n    url: https://x/y\n  - name: a\n    url: https://x/z\n", "bots[1].name"},
		{"route to unknown bot", "bots:\n  - name: a\n    url: https://x/y\nroutes:\n  - bot: b\n", "routes[0].bot"},
		{"bad scope", "bots:\n  - name: a\n    url: https://x/y\nroutes:\n  - bot: a\n    scope: channel\n", "routes[0].scope"},
		{"bad answer", "bots:\n  - name: a\n    url: https://x/y\nroutes:\n  - bot: a\n    answer: some\n", "routes[0].answer"},
		{"bad platform", "bots:\n  - name: a\n    url: https://x/y\nroutes:\n  - bot: a\n    platform: irc\n", "routes[0].platform"},
		{"several bots without routes", "bots:\n  - name: a\n    url: https://x/y\n  - name: b\n    url: https://x/z\n", "routes:"},
		{"public url without listener", "http:\n  public_url: https://b.example\nbots:\n  - name: a\n    url: https://x/y\n", "http.public_url"},
		{"negative duration", "bridge:\n  listener_idle: -1m\nbots:\n  - name: a\n    url: https://x/y\n", "bridge.listener_idle"},
		{"bad duration", "bridge:\n  listener_idle: soon\nbots:\n  - name: a\n    url: https://x/y\n", "soon"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseConfig(strings.NewReader(c.yaml), env(nil))
			if err == nil {
				t.Fatalf("no error; want one mentioning %q", c.want)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not mention %q", err, c.want)
			}
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	cfg, err := ParseConfig(strings.NewReader("bots:\n  - name: only\n    webhook_id: abc\n"), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Store.Path != "botbridge.db" || cfg.Log.Level != "info" || cfg.Log.Format != "text" {
		t.Errorf("defaults = %+v %+v", cfg.Store, cfg.Log)
	}
	if got, _ := cfg.Bots[0].BaseURL(); got != DefaultAPIURL+"/abc" {
		t.Errorf("base url = %q", got)
	}
	routes := cfg.BridgeRoutes()
	if len(routes) != 1 || routes[0].Bot != "only" || routes[0].Platform != "" {
		t.Errorf("default route = %+v", routes)
	}
	r, err := bridge.NewRouter(routes, []string{"only"})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := r.Match(bridge.Inbound{Room: bridge.RoomKey{Platform: bridge.PlatformSlack, Room: "C1"}}); !ok {
		t.Error("the default route does not match a Slack room")
	}
}
