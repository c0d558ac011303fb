package slack_test

import (
	"context"
	"testing"
	"time"

	"github.com/botbridge/botbridge/adapters/slack/slacktest"
	"github.com/botbridge/botbridge/bridge"
	"github.com/botbridge/botbridge/bridge/bridgetest"
)

func TestContract(t *testing.T) {
	fake := newFake(t, slacktest.Options{RedeliverAfter: 200 * time.Millisecond})
	bridgetest.RunAdapterContract(t, bridgetest.Harness{
		New: func(t *testing.T) bridge.Adapter {
			return newAdapter(t, fake, nil)
		},
		Room: bridge.RoomKey{Platform: bridge.PlatformSlack, Room: general},
		Say: func(ctx context.Context, room bridge.RoomKey, text string) (string, error) {
			m := fake.AddMessage(slacktest.Message{Channel: room.Room, User: alice, ThreadTS: room.Thread, Text: text})
			_, err := fake.SendEvent(ctx, slacktest.EventsAPI, fake.MessageEvent(m))
			return m.TS, err
		},
		Seen: func(ctx context.Context, room bridge.RoomKey) ([]bridgetest.Seen, error) {
			st := fake.Snapshot()
			var out []bridgetest.Seen
			for _, m := range botMessages(st, fake, room.Room) {
				out = append(out, bridgetest.Seen{ID: m.TS, Thread: m.ThreadTS, Text: shown(st, m)})
			}
			return out, nil
		},
		Redelivers: true,
		Timeout:    waitTimeout,
	})
}
