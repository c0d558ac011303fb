package bridge

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/botbridge/botbridge/chat"
)

// streams shows a reply the bot streams (message_stream_* signals) as one
// platform message that grows: posted at the first delta, edited at most
// once per StreamThrottle, and replaced by the final message when it comes.
// Adapters that can neither stream nor edit get the final message only. All
// platform calls run on the room's queue, in order with the other posts.
type streams struct {
	e *Engine

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

func newStreams(e *Engine) *streams {
	return &streams{e: e, byID: make(map[string]*stream), finals: make(map[chat.MessageID]*stream)}
}

// canStream reports whether the platform's adapter can show a growing
// message.
func (ss *streams) canStream(p Platform) bool {
	switch ss.e.adapters[p].(type) {
	case Streamer, Editor:
		return true
	}
	return false
}

func (ss *streams) delta(ctx context.Context, conv int64, d chat.MessageStreamDelta) {
	e := ss.e
	c, err := e.conversation(ctx, conv)
	if err != nil {
		e.log.Warn("stream delta for an unknown conversation", LogConversation, conv, LogErr, err)
		return
	}
	target := c.Reply
	if target.Room.Room == "" {
		target.Room = c.Key.Room
	}
	if !ss.canStream(target.Room.Platform) {
		return
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s := ss.byID[d.StreamID]
	if s == nil {
		s = &stream{id: d.StreamID, conv: conv, bot: c.Key.Bot, target: target, seq: -1}
		ss.byID[d.StreamID] = s
	}
	if s.done || d.Sequence <= s.seq {
		return // finished, or a repeat
	}
	s.seq = d.Sequence
	s.text.WriteString(d.Delta)
	s.updated = e.now()
	e.listeners.touch(conv)
	switch {
	case !s.started:
		s.started = true
		e.rooms.push(target.Room, job{stream: &streamStep{s, stepStart}})
	case !s.editQueued:
		s.editQueued = true
		wait := e.cfg.StreamThrottle - e.now().Sub(s.lastEdit)
		if wait <= 0 {
			e.rooms.push(target.Room, job{stream: &streamStep{s, stepEdit}})
		} else {
			s.timer = time.AfterFunc(wait, func() {
				e.rooms.push(target.Room, job{stream: &streamStep{s, stepEdit}})
			})
		}
	}
}

// complete links the stream to its final message, which is then delivered
// like any bot message; post replaces the growing message with it.
func (ss *streams) complete(ctx context.Context, conv int64, c chat.MessageStreamComplete) {
	ss.mu.Lock()
	if s := ss.byID[c.StreamID]; s != nil && s.started {
		ss.finals[c.Message.ID] = s
	}
	delete(ss.byID, c.StreamID)
	ss.mu.Unlock()
	ss.e.retry(ctx, "store a bot message", func() error { return ss.e.deliver(ctx, conv, c.Message) })
}

func (ss *streams) abort(ctx context.Context, conv int64, a chat.MessageStreamAbort) {
	ss.mu.Lock()
	s := ss.byID[a.StreamID]
	delete(ss.byID, a.StreamID)
	ss.mu.Unlock()
	if s != nil && s.started {
		ss.e.rooms.push(s.target.Room, job{stream: &streamStep{s, stepAbort}})
	}
}

// run does one step on the room's queue.
func (ss *streams) run(ctx context.Context, st *streamStep) {
	e := ss.e
	s := st.s
	a := e.adapters[s.target.Room.Platform]
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
		e.replied(ctx, s.conv)
		out := Outbound{ID: chat.MessageID("stream-" + s.id), Bot: s.bot, Room: room,
			ReplyTo: s.target.MessageID, ReplyToUser: s.target.UserID, Time: e.now()}
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
		e.log.Warn("update streamed reply", LogRoom, room.String(), LogErr, err)
		return
	}
	ss.mu.Lock()
	s.platformID = pid
	s.sent = len(text)
	s.lastEdit = e.now()
	ss.mu.Unlock()
}

// finish replaces a growing message with the final message out, when out
// ends a stream that was shown. It returns the platform id and true when it
// did; false means out is to be posted as usual.
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
	a := ss.e.adapters[out.Room.Platform]
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
		ss.e.log.Warn("replace streamed reply with the final message; posting it instead", LogRoom, out.Room.String(), LogErr, err)
		return nil, false
	}
	return posted, true
}

// expire forgets streams that stopped without completing.
func (ss *streams) expire(before time.Time) {
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
}
