package slack

import (
	"encoding/json"
	"sync"
)

// lanes runs the handling of Socket Mode envelopes: one after the other
// within a channel, so that a channel's messages reach the bridge (and its
// store) in the order Slack sent them, and side by side across channels, so
// that the store commits them together (one disk sync for many) instead of
// one after the other. At most maxInFlight envelopes are handled at once;
// past that, run waits, and Slack holds the rest.
type lanes struct {
	slots chan struct{}

	mu     sync.Mutex
	queues map[string][]func()
	wg     sync.WaitGroup
}

// maxInFlight bounds the envelopes handled at once.
const maxInFlight = 256

func newLanes() *lanes {
	return &lanes{slots: make(chan struct{}, maxInFlight), queues: make(map[string][]func())}
}

// run has fn run after the functions given before with the same key. It
// waits while maxInFlight are queued or running.
func (l *lanes) run(key string, fn func()) {
	l.slots <- struct{}{}
	l.mu.Lock()
	q, busy := l.queues[key]
	l.queues[key] = append(q, fn)
	l.mu.Unlock()
	if busy {
		return
	}
	l.wg.Go(func() {
		for {
			l.mu.Lock()
			q := l.queues[key]
			if len(q) == 0 {
				delete(l.queues, key)
				l.mu.Unlock()
				return
			}
			next := q[0]
			q[0] = nil
			l.queues[key] = q[1:]
			l.mu.Unlock()
			next()
			<-l.slots
		}
	})
}

// wait blocks until every queued function ran.
func (l *lanes) wait() { l.wg.Wait() }

// channelOf returns the channel an envelope's payload is about (an event's,
// a click's, a slash command's), or "" when it names none.
func channelOf(payload json.RawMessage) string {
	var p struct {
		Event struct {
			Channel json.RawMessage `json:"channel"`
			Item    struct {
				Channel string `json:"channel"`
			} `json:"item"`
		} `json:"event"`
		Channel   json.RawMessage `json:"channel"`
		ChannelID string          `json:"channel_id"`
	}
	if json.Unmarshal(payload, &p) != nil {
		return ""
	}
	for _, raw := range []json.RawMessage{p.Event.Channel, p.Channel} {
		var s string
		if json.Unmarshal(raw, &s) == nil && s != "" {
			return s
		}
		var obj struct {
			ID string `json:"id"`
		}
		if json.Unmarshal(raw, &obj) == nil && obj.ID != "" {
			return obj.ID
		}
	}
	if p.Event.Item.Channel != "" {
		return p.Event.Item.Channel
	}
	return p.ChannelID
}
