package slack_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/botbridge/botbridge/adapters/slack"
	"github.com/botbridge/botbridge/adapters/slack/slacktest"
	"github.com/botbridge/botbridge/bridge"
)

// BenchmarkMessageEvent is the adapter's handling of one message event of a
// person in a channel, as the Socket Mode loop hands it over: the lane key,
// the decoding, the workspace, the Inbound (names come from the warm
// caches), a handler that takes it.
func BenchmarkMessageEvent(b *testing.B) {
	log := slog.New(slog.DiscardHandler)
	fake, err := slacktest.New(slacktest.Options{Logger: log})
	if err != nil {
		b.Fatal(err)
	}
	if err := fake.Start(""); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { fake.Close() })
	fake.AddUser(slacktest.User{ID: alice, Name: "alice", RealName: "Alice Liddell", DisplayName: "Alice"})
	fake.AddChannel(slacktest.Channel{ID: general, Name: "general", Members: []string{alice}, IsMember: true})
	o := fake.Options()
	client := loopbackOnly()
	b.Cleanup(client.CloseIdleConnections)
	a, err := slack.New(slack.Config{HTTPClient: client, BotToken: o.BotToken, AppToken: o.AppToken,
		APIURL: fake.APIURL(), Logger: log})
	if err != nil {
		b.Fatal(err)
	}
	var handled atomic.Int64
	h := bridge.HandlerFunc(func(context.Context, bridge.Inbound) error {
		handled.Add(1)
		return nil
	})
	ctx, cancel := context.WithCancel(b.Context())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx, nopHandler()) }()
	b.Cleanup(func() {
		cancel()
		<-done
	})
	deadline := time.After(waitTimeout)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for a.Ready() != nil {
		select {
		case <-tick.C:
		case <-deadline:
			b.Fatalf("the adapter is not ready: %v", a.Ready())
		}
	}
	m := fake.AddMessage(slacktest.Message{Channel: general, User: alice, Text: "hello <@" + o.BotUserID + ">, what is *new* today?"})
	payload, err := json.Marshal(fake.MessageEvent(m))
	if err != nil {
		b.Fatal(err)
	}
	if lane, err := a.HandleSocketEvent(ctx, h, payload); err != nil || lane != general { // warms the caches
		b.Fatalf("lane %q, err %v; want %q, nil", lane, err, general)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.HandleSocketEvent(ctx, h, payload); err != nil {
			b.Fatal(err)
		}
	}
	if n := handled.Load(); n != int64(b.N)+1 {
		b.Fatalf("%d events handled, want %d", n, b.N+1)
	}
}
