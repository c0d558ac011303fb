package bridge

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/botbridge/botbridge/chat"
)

// streams is the poster's display of replies the bot streams
// (message_stream_* signals): one platform message that grows, posted at the
// first delta, edited at most once per throttle, and replaced by the final
// message when it is delivered. Adapters that can neither stream nor edit
// get the final message only. Every platform call runs on the room's queue,
// in order with the other posts.
type streams struct {
	p        *poster
	throttle time.Duration

	mu     sync.Mutex
	byID   map[string]*stream
	finals map[chat.MessageID]*stream
}

type stream struct {
	id     string
	conv   int64
	bot    string
	target ReplyTarget
	text   strings.Builder
	seq    float64

	started    bool // the start step was queued
	platformID string
	sent       int // bytes of text already on the platform
	lastEdit   time.Time
	editQueued bool
	timer      *time.Timer
	done       bool
	updated    time.Time
}

type stepKind int

const (
	stepStart stepKind = iota
	stepEdit
	stepAbort
)

type streamStep struct {
	s    *stream
	kind stepKind
}

// streamingSuffix marks a message that is still growing.
const streamingSuffix = " …"

// streamExpiry is how long a stream that stopped without completing is kept.
const streamExpiry = 10 * time.Minute

func (ss *streams) init(p *poster, throttle time.Duration) {
	ss.p, ss.throttle = p, throttle
	ss.byID = make(map[string]*stream)
	ss.finals = make(map[chat.MessageID]*stream)
}

// canStream reports whether the platform's adapter can show a growing
// message.
func (ss *streams) canStream(p Platform) bool {
	switch ss.p.adapters[p].(type) {
	case Streamer, Editor:
		return true
	}
	return false
}

// StreamDelta shows a part of a reply the bot streams in conv, at t.
func (p *poster) StreamDelta(conv int64, bot string, t ReplyTarget, d chat.MessageStreamDelta) {
	ss := &p.streams
	if !ss.canStream(t.Room.Platform) || t.Ephemeral { // a private answer cannot be edited: the final one is posted
		return
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s := ss.byID[d.StreamID]
	if s == nil {
		s = &stream{id: d.StreamID, conv: conv, bot: bot, target: t, seq: -1}
		ss.byID[d.StreamID] = s
	}
	if s.done || d.Sequence <= s.seq {
		return // finished, or a repeat
	}
	s.seq = d.Sequence
	s.text.WriteString(d.Delta)
	s.updated = p.now()
	switch {
	case !s.started:
		s.started = true
		p.push(t.Room, job{stream: &streamStep{s, stepStart}})
	case !s.editQueued:
		s.editQueued = true
		wait := ss.throttle - p.now().Sub(s.lastEdit)
		if wait <= 0 {
			p.push(t.Room, job{stream: &streamStep{s, stepEdit}})
		} else {
			s.timer = time.AfterFunc(wait, func() {
				p.push(t.Room, job{stream: &streamStep{s, stepEdit}})
			})
		}
	}
}

// StreamComplete links the stream to its final message, which is then
// delivered like any bot message; post replaces the growing message with it.
func (p *poster) StreamComplete(stream string, final chat.MessageID) {
	ss := &p.streams
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if s := ss.byID[stream]; s != nil && s.started {
		ss.finals[final] = s
	}
	delete(ss.byID, stream)
}

// StreamAbort ends a streamed reply the bot gave up, saying so.
func (p *poster) StreamAbort(stream string) {
	ss := &p.streams
	ss.mu.Lock()
	s := ss.byID[stream]
	delete(ss.byID, stream)
	ss.mu.Unlock()
	if s != nil && s.started {
		p.push(s.target.Room, job{stream: &streamStep{s, stepAbort}})
	}
}

// run does one step on the room's queue.
func (ss *streams) run(ctx context.Context, st *streamStep) {
	p := ss.p
	s := st.s
	a := p.adapters[s.target.Room.Platform]
	ss.mu.Lock()
	text := s.text.String()
	pid := s.platformID
	sent := s.sent
	if st.kind == stepEdit {
		s.editQueued = false
	}
	done := s.done
	ss.mu.Unlock()
	if done {
		return
	}
	room := s.target.Room
	var err error
	switch st.kind {
	case stepStart:
		p.typing.replied(s.conv)
		out := Outbound{ID: chat.MessageID("stream-" + s.id), Bot: s.bot, Room: room,
			ReplyTo: s.target.MessageID, ReplyToUser: s.target.UserID, Time: p.now()}
		if sa, ok := a.(Streamer); ok {
			pid, err = sa.StartStream(ctx, out, text)
		} else {
			out.Payload = chat.Text{Text: text + streamingSuffix}
			var posted Parts
			posted, err = a.Send(ctx, out)
			pid = posted.First()
		}
	case stepEdit:
		if pid == "" || len(text) == sent {
			break
		}
		if sa, ok := a.(Streamer); ok {
			err = sa.AppendStream(ctx, room, pid, text[sent:])
		} else {
			_, err = a.(Editor).Edit(ctx, room, Parts{pid}, chat.Text{Text: text + streamingSuffix})
		}
	case stepAbort:
		if pid == "" {
			break
		}
		final := chat.Text{Text: strings.TrimSpace(text + "\n\n(the bot stopped this reply)")}
		if sa, ok := a.(Streamer); ok {
			_, err = sa.StopStream(ctx, room, pid, final)
		} else {
			_, err = a.(Editor).Edit(ctx, room, Parts{pid}, final)
		}
		ss.mu.Lock()
		s.done = true
		ss.mu.Unlock()
	}
	if err != nil {
		p.log.Warn("update streamed reply", LogRoom, room.String(), LogErr, err)
		return
	}
	ss.mu.Lock()
	s.platformID = pid
	s.sent = len(text)
	s.lastEdit = p.now()
	ss.mu.Unlock()
}

// finish replaces a growing message with the final message out, when out
// ends a stream that was shown. It returns the parts the message now has and
// true when it did; false means out is to be posted as usual.
func (ss *streams) finish(ctx context.Context, out Outbound) (Parts, bool) {
	ss.mu.Lock()
	s := ss.finals[out.ID]
	delete(ss.finals, out.ID)
	if s == nil || s.platformID == "" {
		ss.mu.Unlock()
		return nil, false
	}
	s.done = true
	if s.timer != nil {
		s.timer.Stop()
	}
	pid := s.platformID
	ss.mu.Unlock()
	a := ss.p.adapters[out.Room.Platform]
	var (
		posted Parts
		err    error
	)
	if sa, ok := a.(Streamer); ok {
		posted, err = sa.StopStream(ctx, s.target.Room, pid, out.Payload)
	} else if ed, ok := a.(Editor); ok {
		posted, err = ed.Edit(ctx, s.target.Room, Parts{pid}, out.Payload)
	}
	if err != nil {
		ss.p.log.Warn("replace streamed reply with the final message; posting it instead", LogRoom, out.Room.String(), LogErr, err)
		return nil, false
	}
	return posted, true
}

// expire forgets streams that stopped without completing, and finals never
// delivered.
func (ss *streams) expire(now time.Time) {
	before := now.Add(-streamExpiry)
	ss.mu.Lock()
	defer ss.mu.Unlock()
	for id, s := range ss.byID {
		if s.updated.Before(before) {
			if s.timer != nil {
				s.timer.Stop()
			}
			delete(ss.byID, id)
		}
	}
	for id, s := range ss.finals {
		if s.updated.Before(before) {
			delete(ss.finals, id)
		}
	}
}
