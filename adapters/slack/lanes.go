package slack

import (
	"encoding/json"
	"sync"
	"unicode/utf8"
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
	return laneKey(p.Event.Channel, p.Channel, p.Event.Item.Channel, p.ChannelID)
}

// laneKey picks the channel of a decoded payload among the places that may
// name one: event.channel (an id, or {id} in the events about channels),
// channel (the same two forms), event.item.channel, channel_id. The raw
// values come from a document json decoded without error.
func laneKey(eventChannel, channel json.RawMessage, itemChannel, channelID string) string {
	for _, raw := range []json.RawMessage{eventChannel, channel} {
		if s, ok := jsonString(raw); ok {
			if s != "" {
				return s
			}
			continue
		}
		var obj struct {
			ID string `json:"id"`
		}
		if json.Unmarshal(raw, &obj) == nil && obj.ID != "" {
			return obj.ID
		}
	}
	if itemChannel != "" {
		return itemChannel
	}
	return channelID
}

// jsonString returns the string raw holds, and false when raw is no JSON
// string. raw is valid JSON: it comes from a decoded document. A string of
// plain ASCII (a channel id always is) is taken as it is, without running
// the decoder again.
func jsonString(raw json.RawMessage) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' {
		return "", false
	}
	inner := raw[1 : len(raw)-1]
	for _, c := range inner {
		if c == '\\' || c >= utf8.RuneSelf {
			var s string
			err := json.Unmarshal(raw, &s)
			return s, err == nil
		}
	}
	return string(inner), true
}
