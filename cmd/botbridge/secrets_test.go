package main

import (
	"bytes"
	"context"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/botbridge/botbridge/adapters/matrix/matrixtest"
	"github.com/botbridge/botbridge/adapters/slack/slacktest"
	"github.com/botbridge/botbridge/bridge"
	"github.com/botbridge/botbridge/bridge/bridgetest"
	"github.com/botbridge/botbridge/chat/chattest"
)

// jwtPattern finds user keys (JWTs) in text.
var jwtPattern = regexp.MustCompile(`eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}`)

// syncBuf is a log buffer that tells waiters when it grows.
type syncBuf struct {
	mu      sync.Mutex
	b       bytes.Buffer
	changed chan struct{}
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.changed != nil {
		close(s.changed)
		s.changed = nil
	}
	return s.b.Write(p)
}

// wait blocks until the buffer holds text, or fails the test after 20 s.
func (s *syncBuf) wait(t *testing.T, text string) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		s.mu.Lock()
		if strings.Contains(s.b.String(), text) {
			s.mu.Unlock()
			return
		}
		if s.changed == nil {
			s.changed = make(chan struct{})
		}
		ch := s.changed
		s.mu.Unlock()
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("the log never said %q:\n%s", text, s.String())
		}
	}
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestSecretsNeverReachTheLogs runs the service with known secrets through
// the error paths it can reach (keys Botpress refuses, tokens Slack refuses,
// Botpress failing with the users' keys in flight, a webhook id in every
// URL) and checks that no secret and no user key shows up in the logs or in
// the errors printed by the command line.
func TestSecretsNeverReachTheLogs(t *testing.T) {
	const (
		webhookID  = "SECRET-WEBHOOK-7f3a9c"
		encKey     = "SECRET-ENCRYPTION-KEY-5d1e"
		botToken   = "xoxb-SECRET-BOT-TOKEN-9b2c"
		appToken   = "xapp-SECRET-APP-TOKEN-4e8f"
		signingKey = "SECRET-SIGNING-SECRET-1a6d"
		mxToken    = "syt_SECRET_MATRIX_TOKEN_77aa"
		pickleKey  = "SECRET-PICKLE-KEY-3c9e0f12"
	)
	secrets := []string{webhookID, encKey, botToken, appToken, signingKey, mxToken, pickleKey}

	// One bot whose emulator expects another key (every key is refused), one in
	// createUser mode whose emulator fails after handing out keys.
	wrongKey, err := chattest.New(chattest.Options{WebhookID: webhookID, EncryptionKey: "the-right-key", Bot: chattest.EchoBot()})
	if err != nil {
		t.Fatal(err)
	}
	shared, err := chattest.New(chattest.Options{WebhookID: webhookID, Bot: chattest.EchoBot()})
	if err != nil {
		t.Fatal(err)
	}
	for _, em := range []*chattest.Server{wrongKey, shared} {
		if err := em.Start("127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		defer em.Close()
	}
	sl, err := slacktest.New(slacktest.Options{BotToken: "xoxb-the-right-one", AppToken: "xapp-the-right-one"})
	if err != nil {
		t.Fatal(err)
	}
	if err := sl.Start(""); err != nil {
		t.Fatal(err)
	}
	defer sl.Close()

	var logs syncBuf
	log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg := defaults()
	cfg.HTTP.AdminAddr = ""
	cfg.Store.Path = t.TempDir() + "/b.db"
	cfg.Bots = []BotConfig{
		{Name: "keyed", URL: wrongKey.URL(), EncryptionKey: encKey},
		{Name: "shared", URL: shared.URL()},
	}
	cfg.Routes = []RouteConfig{{Bot: "keyed", Rooms: []string{"R-KEYED"}}, {Bot: "shared"}}
	cfg.Slack = SlackConfig{BotToken: botToken, AppToken: appToken, APIURL: sl.APIURL()}
	hs := matrixtest.StartT(t)
	cfg.Matrix = MatrixConfig{HomeserverURL: hs.URL, UserID: "@botbridge:" + hs.ServerName, AccessToken: mxToken,
		Encryption: true, PickleKey: pickleKey}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ad := bridgetest.NewAdapter(bridge.PlatformConsole)
	svc, err := NewService(t.Context(), cfg, log, ad)
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()

	say := func(room, text string) {
		in := bridge.Inbound{Key: bridge.EventKey(room + text), Room: bridge.RoomKey{Platform: bridge.PlatformConsole, Room: room},
			DM: true, Sender: bridge.Sender{ID: "U1", Name: "One"}, Text: text, Time: time.Now()}
		if err := ad.Say(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
	say("R-KEYED", "refused key")
	say("R-SHARED", "hello")
	wctx, wcancel := context.WithTimeout(ctx, 20*time.Second)
	if _, err := ad.WaitPosts(wctx, 1); err != nil {
		t.Fatal(err)
	}
	wcancel()
	shared.FailRequests(500, 0, time.Now().Add(time.Hour))
	say("R-SHARED", "while Botpress fails")
	logs.wait(t, "refuses the bridge's user keys")
	logs.wait(t, "sending to Botpress failed")
	logs.wait(t, "invalid_auth")
	logs.wait(t, "check matrix.access_token")
	cancel()
	<-done

	// The command line's own errors.
	var out, errOut bytes.Buffer
	badConfig := writeFile(t, "bots:\n  - name: b\n    url: https://x.example/"+webhookID+"\n    encryption_key: "+encKey+
		"\nslack:\n  bot_token: "+appToken+"\n  app_token: "+botToken+"\n  signing_secret: "+signingKey+"\n")
	Main(t.Context(), []string{"check-config", "-config", badConfig}, strings.NewReader(""), &out, &errOut)
	Main(t.Context(), []string{"check-config", "-online", "-config", writeFile(t, "bots:\n  - name: b\n    url: http://127.0.0.1:1/"+webhookID+"\n    encryption_key: "+encKey+"\n")},
		strings.NewReader(""), &out, &errOut)

	all := logs.String() + out.String() + errOut.String()
	if !strings.Contains(all, "slack.bot_token") {
		t.Errorf("the config errors do not name the fields:\n%s", errOut.String())
	}
	for _, s := range secrets {
		if strings.Contains(all, s) {
			i := strings.Index(all, s)
			t.Errorf("secret %q appears in the output: …%s…", s, all[max(0, i-200):min(len(all), i+100)])
		}
	}
	if m := jwtPattern.FindString(all); m != "" {
		t.Errorf("a user key appears in the output: %s", m)
	}
}

// TestHelpPrintsNoSecret sets the variables demo reads its defaults from to
// known values and checks that no command's -h, usage error or refusal of a
// bad value prints them.
func TestHelpPrintsNoSecret(t *testing.T) {
	const (
		url       = "https://chat.example/SECRET-URL-WEBHOOK-81c2"
		webhookID = "SECRET-WEBHOOK-ID-3f0a"
		key       = "SECRET-DEMO-KEY-9d4e"
	)
	t.Setenv("BOTPRESS_URL", url)
	t.Setenv("BOTPRESS_WEBHOOK_ID", webhookID)
	t.Setenv("BOTPRESS_ENCRYPTION_KEY", key)
	check := func(t *testing.T, out string) {
		t.Helper()
		for _, s := range []string{url, webhookID, key, "SECRET-"} {
			if strings.Contains(out, s) {
				t.Errorf("the output shows %q:\n%s", s, out)
			}
		}
	}
	for _, args := range [][]string{
		{"demo", "-h"}, {"demo", "-bogus"}, {"demo", "stray"}, {"-h"},
		{"run", "-h"}, {"check-config", "-h"}, {"emulator", "-h"}, {"version", "-h"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			_, out, errOut := runMain(t, "", args...)
			check(t, out+errOut)
			if args[0] == "demo" && args[1] == "-h" && !strings.Contains(errOut, "(default: $BOTPRESS_ENCRYPTION_KEY)") {
				t.Errorf("demo -h does not say where the key comes from:\n%s", errOut)
			}
		})
	}
	t.Run("a bad URL from the environment", func(t *testing.T) {
		t.Setenv("BOTPRESS_URL", "chat.example/SECRET-URL-WEBHOOK-81c2")
		t.Setenv("BOTPRESS_WEBHOOK_ID", "")
		code, out, errOut := runMain(t, "", "demo")
		if code != exitUsage || !strings.Contains(errOut, "url: must start with https://") {
			t.Errorf("exit %d, stderr %q; want %d saying what is wrong with the url", code, errOut, exitUsage)
		}
		check(t, out+errOut)
	})
}
