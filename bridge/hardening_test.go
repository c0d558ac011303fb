package bridge_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/botbridge/botbridge/bridge"
	"github.com/botbridge/botbridge/bridge/bridgetest"
	"github.com/botbridge/botbridge/chat"
	"github.com/botbridge/botbridge/chat/chattest"
)

// counts records what the engine counts.
type counts struct {
	mu       sync.Mutex
	outbound map[string]int
}

func (c *counts) Inbound(bridge.Platform, string, string) {}
func (c *counts) Outbound(_ bridge.Platform, _ string, result string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.outbound == nil {
		c.outbound = map[string]int{}
	}
	c.outbound[result]++
}
func (c *counts) DeliveryLag(bridge.Platform, string, time.Duration) {}
func (c *counts) StreamReconnect(string)                             {}
func (c *counts) Listeners(int)                                      {}

func (c *counts) out(result string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.outbound[result]
}

func TestAResetIsHandledOncePerEvent(t *testing.T) {
	r := newRig(t, chattest.EchoBot())
	r.routes = []bridge.Route{{Bot: "bot"}}
	r.start()
	room := bridge.RoomKey{Platform: bridge.PlatformSlack, Room: "C1"}
	first := msg(room, "hello")
	first.Mentioned = true
	r.say(first)
	r.waitPosts(1)
	// Slack delivers a channel mention as a message and as an app_mention,
	// with one event key.
	reset := msg(room, "!reset")
	reset.Mentioned = true
	r.say(reset)
	r.say(reset)
	r.waitPosts(2)
	r.waitIdle()
	notices := 0
	for _, p := range r.ad().Posts() {
		if bridgetest.Text(p.Payload()) == "Started a new conversation." {
			notices++
		}
	}
	if notices != 1 {
		t.Errorf("%d reset notices posted, want 1: %q", notices, texts(r.ad().Posts()))
	}
	ds, err := r.db.PendingDeliveries(t.Context(), 0)
	if err != nil || len(ds) != 0 {
		t.Errorf("pending deliveries %+v, %v; want the notice posted and recorded", ds, err)
	}
}

func TestRepliesToARoomTheBotCannotPostInAreGivenUpAfterATime(t *testing.T) {
	r := newRig(t, chattest.EchoBot())
	m := &counts{}
	r.tweak = func(cfg *bridge.Config) {
		cfg.NoAccessTimeout = 300 * time.Millisecond
		cfg.Metrics = m
	}
	kicked := bridge.NoAccess(errors.New("not_in_channel"))
	refusals := make([]error, 1000)
	for i := range refusals {
		refusals[i] = kicked
	}
	r.ad().FailNext(refusals...)
	r.start()
	r.say(dm("while the bot is out"))
	bridgetest.WaitFor(t, "the reply to be given up", func() bool { return m.out("failed") == 1 })
	sends := r.ad().Sends()
	if sends < 2 {
		t.Errorf("%d attempts before giving up, want retries", sends)
	}
	r.say(dm("still out"))
	bridgetest.WaitFor(t, "the next reply to be given up", func() bool { return m.out("failed") == 2 })
	if n := r.ad().Sends() - sends; n != 1 {
		t.Errorf("the next reply was tried %d times, want once: the room refused the bot for long already", n)
	}
	ds, err := r.db.PendingDeliveries(t.Context(), 0)
	if err != nil || len(ds) != 0 {
		t.Errorf("pending deliveries %+v, %v; want both given up", ds, err)
	}

	// The bot is invited back.
	r.ad().ClearFailures()
	r.say(dm("back in"))
	ps := r.waitPosts(1)
	if got := bridgetest.Text(ps[0].Payload()); got != "back in" {
		t.Errorf("after the invite the room got %q", got)
	}
	bridgetest.WaitFor(t, "the post to be counted", func() bool { return m.out("posted") == 1 })
}

// blockingTyper is an adapter whose thinking indicator never answers.
type blockingTyper struct{ *bridgetest.Adapter }

func (blockingTyper) Typing(ctx context.Context, _ bridge.ReplyTarget, _ bool) error {
	<-ctx.Done()
	return ctx.Err()
}

func TestAStuckIndicatorNeverHoldsSendsOrPosts(t *testing.T) {
	// Each message shows the indicator and takes it down: two changes. With
	// every indicator call stuck for its timeout, 700 messages leave 1,400
	// changes waiting, more than any fixed queue of the workers holds.
	const n = 700
	r := newRig(t, chattest.BotFunc(func(ctx context.Context, rp chattest.Replier, m chat.Message) {
		time.Sleep(20 * time.Millisecond) // answer after createMessage returned: the indicator shows
		rp.Reply(ctx, m.Payload)
	}))
	ad := r.ad()
	r.tweak = func(cfg *bridge.Config) { cfg.Adapters = []bridge.Adapter{blockingTyper{ad}} }
	r.start()
	for i := range n {
		in := msg(bridge.RoomKey{Platform: bridge.PlatformSlack, Room: fmt.Sprintf("D%03d", i)}, fmt.Sprintf("m%d", i))
		in.DM = true
		r.say(in)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if _, err := ad.WaitPosts(ctx, n); err != nil {
		t.Fatalf("replies held up by a stuck indicator: %v (%d posted)", err, len(ad.Posts()))
	}
}

func TestIndicatorsLeftShownAreTakenDownAtStart(t *testing.T) {
	release := make(chan struct{})
	r := newRig(t, chattest.BotFunc(func(ctx context.Context, rp chattest.Replier, m chat.Message) {
		select {
		case <-release:
		case <-ctx.Done():
			return
		}
		rp.Reply(ctx, m.Payload)
	}))
	r.start()
	in := dm("think")
	r.say(in)
	bridgetest.WaitFor(t, "the indicator", func() bool { return len(r.ad().TypingCalls()) == 1 })
	bridgetest.WaitFor(t, "the indicator's record", func() bool {
		ts, _ := r.db.Indicators(t.Context())
		return len(ts) == 1
	})
	r.stop() // as if killed: the bot has not answered
	r.start()
	bridgetest.WaitFor(t, "the indicator to be taken down", func() bool {
		calls := r.ad().TypingCalls()
		return len(calls) == 2 && !calls[1].On && calls[1].Target.MessageID == in.MessageID
	})
	bridgetest.WaitFor(t, "the record to go", func() bool {
		ts, _ := r.db.Indicators(t.Context())
		return len(ts) == 0
	})
	close(release)
}
