package main

import (
	"os"
	"reflect"
	"regexp"
	"slices"
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
	if cfg.Bridge.ListenerIdle != 0 || cfg.Bridge.WatchWindow != 168*time.Hour || cfg.Bridge.Workers != 64 {
		t.Errorf("bridge settings = %+v", cfg.Bridge)
	}
	if cfg.HTTP != defaults().HTTP {
		t.Errorf("the http section shows %+v; the defaults are %+v", cfg.HTTP, defaults().HTTP)
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
		{"no read timeout", "http:\n  read_timeout: 0s\nbots:\n  - name: a\n    url: https://x/y\n", "http.read_timeout: must be positive"},
		{"admin and public on one address", "http:\n  addr: 127.0.0.1:9091\nbots:\n  - name: a\n    url: https://x/y\n", "http.admin_addr: 127.0.0.1:9091 is also http.addr"},
		{"no connections", "http:\n  max_connections: 0\nbots:\n  - name: a\n    url: https://x/y\n", "http.max_connections: must be positive"},
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

func TestConfigWithOnlyHTTPAddrKeepsTheAdminListenerOnLoopback(t *testing.T) {
	cfg, err := ParseConfig(strings.NewReader("http:\n  addr: 0.0.0.0:9090\nbots:\n  - name: a\n    url: https://x/y\n"), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTP.Addr != "0.0.0.0:9090" || cfg.HTTP.AdminAddr != DefaultAdminAddr || !isLoopback(cfg.HTTP.AdminAddr) {
		t.Errorf("http = %q, admin %q; want the admin listener on loopback by default", cfg.HTTP.Addr, cfg.HTTP.AdminAddr)
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

func TestConfigEnvExpansion(t *testing.T) {
	const bot = "bots:\n  - name: a\n    url: https://x/y\n"
	vars := env(map[string]string{"KEY": "k3y", "EMPTY": "", "WORD": "!again", "SLACK_BOT_TOKEN": ""})
	t.Run("what expands", func(t *testing.T) {
		for _, c := range []struct{ name, value, want string }{
			{"a variable in braces", "${WORD}", "!again"},
			{"a variable inside text", "say ${WORD} now", "say !again now"},
			{"$$ is a literal $", "$$WORD", "$WORD"},
			{"a $ before a digit is kept", "costs $5", "costs $5"},
			{"a $ at the end is kept", "pay$", "pay$"},
			{"an empty variable in a field that is not secret", "${EMPTY}", ""},
		} {
			t.Run(c.name, func(t *testing.T) {
				cfg, err := ParseConfig(strings.NewReader(bot+"routes:\n  - bot: a\n    reset_word: '"+c.value+"'\n"), vars)
				if err != nil {
					t.Fatal(err)
				}
				if got := cfg.Routes[0].ResetWord; got != c.want {
					t.Errorf("%q became %q, want %q", c.value, got, c.want)
				}
			})
		}
		cfg, err := ParseConfig(strings.NewReader("bots:\n  - name: a\n    url: https://x/y\n    encryption_key: ${KEY}\n"), vars)
		if err != nil || cfg.Bots[0].EncryptionKey != "k3y" {
			t.Errorf("encryption_key: %q, %v; want k3y", cfg.Bots[0].EncryptionKey, err)
		}
	})
	for _, c := range []struct {
		name, yaml, want string
		// secret is text that must not appear in the error.
		secret string
	}{
		{"a secret set but empty", "bots:\n  - name: a\n    url: https://x/y\n    encryption_key: ${EMPTY}\n",
			"bots[0].encryption_key: ${EMPTY} is set but empty", ""},
		{"a Slack token set but empty", bot + "slack:\n  bot_token: ${SLACK_BOT_TOKEN}\n  app_token: xapp-1\n",
			"slack.bot_token: ${SLACK_BOT_TOKEN} is set but empty", ""},
		{"a webhook id set but empty", "bots:\n  - name: a\n    webhook_id: ${EMPTY}\n",
			"bots[0].webhook_id: ${EMPTY} is set but empty", ""},
		{"a variable without braces", "bots:\n  - name: a\n    url: https://x/y\n    encryption_key: $BOTPRESS_KEY\n",
			"bots[0].encryption_key: $BOTPRESS_KEY: write ${BOTPRESS_KEY}", ""},
		{"a variable without braces in text", bot + "routes:\n  - bot: a\n    reset_word: go $HOME\n",
			"routes[0].reset_word: $HOME: write ${HOME} to read the variable, or $$HOME for a literal $", ""},
		{"a secret with a $ and letters", "bots:\n  - name: a\n    url: https://x/y\n    encryption_key: pa$sw0rd\n",
			"bots[0].encryption_key: a $ followed by a name: write ${NAME} to read a variable, or $$ for a literal $", "sw0rd"},
		{"a default value", "bots:\n  - name: a\n    url: ${BOTPRESS_URL:-https://chat.botpress.cloud/secret-id}\n",
			"bots[0].url: ${BOTPRESS_URL…}: only ${BOTPRESS_URL} is supported", "secret-id"},
		{"a ${ without }", bot + "routes:\n  - bot: a\n    reset_word: ${WORD\n", "routes[0].reset_word: a ${ has no closing }", ""},
		{"an empty name", bot + "routes:\n  - bot: a\n    reset_word: ${}\n", "routes[0].reset_word: ${} is not a variable name", ""},
		{"not a name in a secret", "bots:\n  - name: a\n    url: https://x/y\n    encryption_key: ab${9z}cd\n",
			"bots[0].encryption_key: a ${…} that is not a variable name", "9z"},
		{"a variable that is not set", bot + "http:\n  public_url: ${NOPE}\n", "http.public_url: environment variable NOPE is not set", ""},
	} {
		t.Run(c.name+" is an error naming the field", func(t *testing.T) {
			_, err := ParseConfig(strings.NewReader(c.yaml), vars)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v; want one saying %q", err, c.want)
			}
			if c.secret != "" && strings.Contains(err.Error(), c.secret) {
				t.Errorf("the error quotes the secret field's text %q: %v", c.secret, err)
			}
		})
	}
	t.Run("check-config refuses an empty encryption key", func(t *testing.T) {
		t.Setenv("BOTBRIDGE_TEST_EMPTY_KEY", "")
		path := writeFile(t, "bots:\n  - name: a\n    url: https://x/y\n    encryption_key: ${BOTBRIDGE_TEST_EMPTY_KEY}\n")
		code, _, errOut := runMain(t, "", "check-config", "-config", path)
		if code != 1 || !strings.Contains(errOut, "bots[0].encryption_key: ${BOTBRIDGE_TEST_EMPTY_KEY} is set but empty") {
			t.Errorf("exit %d, stderr %q; want 1 naming the field and the variable", code, errOut)
		}
	})
}

// TestSecretFieldsAreMarked keeps the secret tag on every field that looks
// like a secret, so that a new one cannot expand to empty unnoticed.
func TestSecretFieldsAreMarked(t *testing.T) {
	looksSecret := regexp.MustCompile(`token|secret|key|password|webhook|^url$`)
	var marked []string
	var walk func(reflect.Type, string)
	walk = func(rt reflect.Type, path string) {
		for rt.Kind() == reflect.Slice || rt.Kind() == reflect.Pointer {
			rt = rt.Elem()
		}
		if rt.Kind() != reflect.Struct {
			return
		}
		for i := range rt.NumField() {
			f := rt.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			field := join(path, name)
			secret := f.Tag.Get("secret") == "true"
			if secret {
				marked = append(marked, field)
			}
			if f.Type.Kind() == reflect.String && looksSecret.MatchString(name) && !secret {
				t.Errorf("%s looks like a secret but has no secret:\"true\" tag", field)
			}
			walk(f.Type, field)
		}
	}
	walk(reflect.TypeFor[Config](), "")
	want := []string{"bots.url", "bots.webhook_id", "bots.encryption_key", "bots.webhook_secret", "slack.bot_token", "slack.app_token",
		"slack.signing_secret", "slack.client_secret", "slack.token_key", "matrix.access_token", "matrix.password", "matrix.pickle_key", "matrix.recovery_key"}
	if !slices.Equal(marked, want) {
		t.Errorf("secret fields %v, want %v", marked, want)
	}
}
