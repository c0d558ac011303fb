package slacktest_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/socketmode"

	"github.com/botbridge/botbridge/adapters/slack/slacktest"
)

// waitTimeout bounds every wait of these tests; reaching it is a failure.
const waitTimeout = 10 * time.Second

// Fixture ids.
const (
	alice   = "U0000ALICE"
	bob     = "U00000BOB"
	general = "C0GENERAL"
	random  = "C00RANDOM"
	secret  = "G0SECRET"
	dm      = "D0ALICEDM"
)

// clock is a settable clock for Options.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// newFake starts a fake with alice and bob, the public channel general (the
// bot and both users in it), random (the bot not in it), the private channel
// secret (the bot not in it) and alice's DM.
func newFake(t *testing.T, opts slacktest.Options) *slacktest.Server {
	t.Helper()
	fake, err := slacktest.New(opts)
	if err != nil {
		t.Fatalf("new: %v", err)
	}
	if err := fake.Start(""); err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() {
		if err := fake.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	fake.AddUser(slacktest.User{ID: alice, Name: "alice", RealName: "Alice Liddell", DisplayName: "ali", Email: "alice@example.com", Image: "https://avatars.example.com/alice.png", TZ: "Europe/Paris"})
	fake.AddUser(slacktest.User{ID: bob, Name: "bob", RealName: "Bob Builder"})
	fake.AddChannel(slacktest.Channel{ID: general, Name: "general", Members: []string{alice, bob}, IsMember: true})
	fake.AddChannel(slacktest.Channel{ID: random, Name: "random", Members: []string{alice}})
	fake.AddChannel(slacktest.Channel{ID: secret, Name: "secret", Type: slacktest.Private, Members: []string{alice}})
	fake.AddChannel(slacktest.Channel{ID: dm, Type: slacktest.IM, User: alice})
	return fake
}

// newAPI returns a slack-go client of the fake, with both tokens.
func newAPI(fake *slacktest.Server) *slack.Client {
	o := fake.Options()
	return slack.New(o.BotToken, slack.OptionAppLevelToken(o.AppToken), slack.OptionAPIURL(fake.APIURL()))
}

// startSocket runs a slack-go Socket Mode client against the fake until the
// test ends, and returns its events.
func startSocket(t *testing.T, fake *slacktest.Server) (*socketmode.Client, <-chan socketmode.Event) {
	t.Helper()
	client := socketmode.New(newAPI(fake))
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = client.RunContext(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return client, client.Events
}

// nextEvent returns the next client event of type typ, skipping others.
func nextEvent(t *testing.T, events <-chan socketmode.Event, typ socketmode.EventType) socketmode.Event {
	t.Helper()
	timer := time.NewTimer(waitTimeout)
	defer timer.Stop()
	for {
		select {
		case ev := <-events:
			if ev.Type == typ {
				return ev
			}
		case <-timer.C:
			t.Fatalf("no %s event within %s", typ, waitTimeout)
		}
	}
}

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
