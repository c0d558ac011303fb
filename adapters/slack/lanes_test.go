package slack_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/botbridge/botbridge/adapters/slack/slacktest"
	"github.com/botbridge/botbridge/bridge"
)

func TestEventsOfAChannelKeepTheirOrderAndDoNotWaitForOtherChannels(t *testing.T) {
	fake := newFake(t, slacktest.Options{})
	a := newAdapter(t, fake, nil)
	release := make(chan struct{})
	var (
		mu  sync.Mutex
		got = map[string][]string{}
	)
	run(t, a, bridge.HandlerFunc(func(ctx context.Context, in bridge.Inbound) error {
		if in.Text == "slow" {
			select { // the store of this channel is slow to answer
			case <-release:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		mu.Lock()
		got[in.Room.Room] = append(got[in.Room.Room], in.Text)
		mu.Unlock()
		return nil
	}))
	waitReady(t, a, "nil", func(err error) bool { return err == nil })

	say(t, fake, alice, general, "", "slow")
	for i := range 5 {
		say(t, fake, alice, general, "", fmt.Sprintf("general %d", i))
	}
	var dmWant []string
	for i := range 5 {
		text := fmt.Sprintf("dm %d", i)
		dmWant = append(dmWant, text)
		say(t, fake, alice, dm, "", text)
	}
	waitFor(t, fake, "the DM's events while general waits", func(*slacktest.State) bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got[dm]) == 5
	})
	mu.Lock()
	if slices.Contains(got[general], "general 0") {
		t.Errorf("general's later events were handled before its first: %q", got[general])
	}
	if !slices.Equal(got[dm], dmWant) {
		t.Errorf("the DM's events came as %q, want %q", got[dm], dmWant)
	}
	mu.Unlock()
	close(release)
	waitFor(t, fake, "general's events", func(*slacktest.State) bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got[general]) == 6
	})
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"slow", "general 0", "general 1", "general 2", "general 3", "general 4"}; !slices.Equal(got[general], want) {
		t.Errorf("general's events came as %q, want %q", got[general], want)
	}
}
