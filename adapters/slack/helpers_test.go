package slack_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/botbridge/botbridge/adapters/slack"
	"github.com/botbridge/botbridge/adapters/slack/slacktest"
	"github.com/botbridge/botbridge/bridge"
	"github.com/botbridge/botbridge/bridge/bridgetest"
)

// waitTimeout bounds every wait of these tests; reaching it is a failure.
const waitTimeout = 20 * time.Second

// Fixture ids.
const (
	alice    = "U0000ALICE"
	bob      = "U00000BOB"
	otherBot = "U0OTHERBOT"
	general  = "C0GENERAL"
	dm       = "D0ALICEDM"
	group    = "G0GROUPDM"
)

// newFake starts a fake Slack with alice, bob and another app's bot user;
// the public channel general with the bot, alice and bob in it; alice's DM
// with the bot; and a group DM of alice, bob and the bot.
func newFake(t *testing.T, opts slacktest.Options) *slacktest.Server {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	fake, err := slacktest.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := fake.Start(""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fake.Close() })
	fake.AddUser(slacktest.User{ID: alice, Name: "alice", RealName: "Alice Liddell", DisplayName: "Alice", Image: "https://avatars.example.com/alice.png"})
	fake.AddUser(slacktest.User{ID: bob, Name: "bob", RealName: "Bob Builder"})
	fake.AddUser(slacktest.User{ID: otherBot, Name: "otherbot", IsBot: true, BotID: "B0OTHERBOT"})
	fake.AddChannel(slacktest.Channel{ID: general, Name: "general", Members: []string{alice, bob, otherBot}, IsMember: true})
	fake.AddChannel(slacktest.Channel{ID: dm, Type: slacktest.IM, User: alice})
	fake.AddChannel(slacktest.Channel{ID: group, Name: "mpdm-alice--bob--botbridge-1", Type: slacktest.MPIM, Members: []string{alice, bob}, IsMember: true})
	return fake
}

// loopbackOnly is an HTTP client that reaches loopback addresses only, so
// that no test goes out to the network (the bot's sample files at
// example.com fail to download, as they would for a bridge offline).
func loopbackOnly() *http.Client {
	d := &net.Dialer{}
	return &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		if ap, err := netip.ParseAddrPort(addr); err != nil || !ap.Addr().IsLoopback() {
			return nil, &net.AddrError{Err: "tests reach loopback only", Addr: addr}
		}
		return d.DialContext(ctx, network, addr)
	}}}
}

// newAdapter returns an adapter of the fake in socket mode, tuned for tests:
// posts are not spaced, and the bot's files may come from loopback.
func newAdapter(t *testing.T, fake *slacktest.Server, tweak func(*slack.Config)) *slack.Adapter {
	t.Helper()
	o := fake.Options()
	cfg := slack.Config{
		HTTPClient:       loopbackOnly(),
		BotToken:         o.BotToken,
		AppToken:         o.AppToken,
		SigningSecret:    o.SigningSecret,
		APIURL:           fake.APIURL(),
		PostInterval:     time.Millisecond,
		AllowPrivateURLs: true,
		RetryMax:         200 * time.Millisecond,
		Logger:           testLogger(t),
	}
	if tweak != nil {
		tweak(&cfg)
	}
	// Connections the transport opened and never used would hold the
	// fake's graceful shutdown for 5 seconds.
	t.Cleanup(cfg.HTTPClient.CloseIdleConnections)
	a, err := slack.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// run runs a until the test ends and checks that it stops cleanly.
func run(t *testing.T, a *slack.Adapter, h bridge.Handler) { bridgetest.RunAdapter(t, a, h) }

// waitCtx returns a context that ends with the test or after waitTimeout.
func waitCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	t.Cleanup(cancel)
	return ctx
}

// waitFor waits on the fake's state and fails the test on timeout.
func waitFor(t *testing.T, fake *slacktest.Server, what string, cond func(*slacktest.State) bool) {
	t.Helper()
	if err := fake.WaitFor(waitCtx(t), cond); err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

// botMessages returns the bot's visible messages in channel, oldest first.
func botMessages(st *slacktest.State, fake *slacktest.Server, channel string) []slacktest.Message {
	return botMessagesOf(st, []string{fake.Options().BotID}, channel)
}

// botMessagesOf returns the visible messages in channel of the bots with
// the ids given, oldest first.
func botMessagesOf(st *slacktest.State, botIDs []string, channel string) []slacktest.Message {
	var out []slacktest.Message
	for _, m := range st.Messages[channel] {
		if slices.Contains(botIDs, m.BotID) && !m.Deleted && m.EphemeralTo == "" {
			out = append(out, m)
		}
	}
	return out
}

// appBotIDs returns the bot ids of every install of the app in the fake.
func appBotIDs(fake *slacktest.Server) []string {
	var ids []string
	for _, in := range fake.Installations() {
		ids = append(ids, in.BotID)
	}
	return ids
}

// shown returns everything a person can read in a message: its text, the
// texts, links and image URLs of its blocks and the names and titles of its
// files.
func shown(st *slacktest.State, m slacktest.Message) string {
	var b strings.Builder
	b.WriteString(m.Text)
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if s, ok := x.(string); ok && (k == "text" || k == "alt_text" || k == "url" || k == "image_url") {
					b.WriteString("\n" + s)
				}
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	var blocks any
	if json.Unmarshal(m.Blocks, &blocks) == nil {
		walk(blocks)
	}
	for _, id := range m.Files {
		f := st.Files[id]
		b.WriteString("\n" + f.Name + "\n" + f.Title)
	}
	return strings.NewReplacer("&lt;", "<", "&gt;", ">", "&amp;", "&").Replace(b.String())
}

// say records a message of user in channel (in thread when set) and sends
// its message event; it returns the message.
func say(t *testing.T, fake *slacktest.Server, user, channel, thread, text string) slacktest.Message {
	t.Helper()
	m := fake.AddMessage(slacktest.Message{Channel: channel, User: user, ThreadTS: thread, Text: text})
	if _, err := fake.SendEvent(waitCtx(t), slacktest.EventsAPI, fake.MessageEvent(m)); err != nil {
		t.Fatal(err)
	}
	return m
}

// nopHandler is a bridge.Handler that takes everything.
func nopHandler() bridge.Handler {
	return bridge.HandlerFunc(func(context.Context, bridge.Inbound) error { return nil })
}

// testLogger sends the logs to the test's log.
func testLogger(t *testing.T) *slog.Logger { return bridgetest.Logger(t) }
