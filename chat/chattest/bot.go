package chattest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/botbridge/botbridge/chat"
)

// Bot answers the messages users send. The emulator calls HandleMessage
// asynchronously after createMessage has answered and the message_created
// signal of the user's message has gone out, from one goroutine per
// conversation, one message at a time in the order they were created. ctx ends
// when the Server closes.
type Bot interface {
	HandleMessage(ctx context.Context, r Replier, m chat.Message)
}

// BotFunc adapts a function to the Bot interface.
type BotFunc func(ctx context.Context, r Replier, m chat.Message)

// HandleMessage calls f.
func (f BotFunc) HandleMessage(ctx context.Context, r Replier, m chat.Message) { f(ctx, r, m) }

// Replier lets a bot act in the conversation of the message it handles, as the
// bot's user. Its methods fail with chat.ErrNotFound once the conversation is
// deleted, with chat.ErrInvalidPayload for an invalid payload, and with the
// context's error when ctx is done.
type Replier interface {
	// Reply stores a bot message and emits its message_created (isBot true).
	Reply(ctx context.Context, p chat.Payload) (chat.Message, error)
	// ReplyAfter returns at once and, d from now (real time, not
	// Options.Now), sends p as Reply does, as a bot answering late would (a
	// human agent, a workflow, a reminder). The Server owns the wait: Close
	// cancels it, and a late reply is not kept in the state file. It fails
	// at once only for an invalid payload or a closed Server; a later
	// failure (the conversation was deleted) is logged.
	ReplyAfter(d time.Duration, p chat.Payload) error
	// Stream emits one message_stream_delta per chunk (sequence 0, 1, ...),
	// then stores final and emits message_stream_complete followed by its
	// message_created. A nil final is the text of the chunks joined.
	Stream(ctx context.Context, chunks []string, final chat.Payload) (chat.Message, error)
	// AbortStream emits one message_stream_delta per chunk, then
	// message_stream_abort; nothing is stored.
	AbortStream(ctx context.Context, chunks []string) error
	// SendEvent emits an event_created pushed by the bot: id null, isBot
	// true. Nothing is stored.
	SendEvent(ctx context.Context, payload map[string]any) error
}

type botQueue struct {
	pending []chat.Message
	running bool
}

// runBot feeds a conversation's queued messages to the bot, in order, and
// exits when the queue is empty.
func (s *Server) runBot(conv chat.ConversationID, q *botQueue) {
	defer s.wg.Done()
	r := &replier{s: s, conv: conv}
	for {
		s.mu.Lock()
		if len(q.pending) == 0 || s.ctx.Err() != nil {
			q.running = false
			delete(s.botq, conv)
			s.mu.Unlock()
			return
		}
		m := q.pending[0]
		q.pending[0] = chat.Message{}
		q.pending = q.pending[1:]
		s.mu.Unlock()
		s.bot.HandleMessage(s.ctx, r, m)
	}
}

type replier struct {
	s    *Server
	conv chat.ConversationID
}

func (r *replier) Reply(ctx context.Context, p chat.Payload) (chat.Message, error) {
	m, err := r.s.botMessage(ctx, r.conv, p, nil)
	if err != nil {
		return chat.Message{}, fmt.Errorf("reply: %w", err)
	}
	return m, nil
}

func (r *replier) ReplyAfter(d time.Duration, p chat.Payload) error {
	if _, err := encodeBotPayload(p); err != nil {
		return fmt.Errorf("reply after: %w", err)
	}
	s := r.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("reply after: the emulator is closing")
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		if _, err := s.botMessage(s.ctx, r.conv, p, nil); err != nil && s.ctx.Err() == nil {
			s.log.Info("late reply not sent", logConversation, r.conv, logErr, err)
		}
	}()
	return nil
}

func (r *replier) Stream(ctx context.Context, chunks []string, final chat.Payload) (chat.Message, error) {
	if final == nil {
		final = chat.Text{Text: strings.Join(chunks, "")}
	}
	if _, err := encodeBotPayload(final); err != nil {
		return chat.Message{}, fmt.Errorf("stream: %w", err)
	}
	id := newID("stream")
	if err := r.deltas(ctx, id, chunks); err != nil {
		return chat.Message{}, fmt.Errorf("stream: %w", err)
	}
	m, err := r.s.botMessage(ctx, r.conv, final, func(m *message) {
		r.s.publish(r.conv, chat.SignalMessageStreamComplete, streamCompleteJSON{id, m.json()})
	})
	if err != nil {
		return chat.Message{}, fmt.Errorf("stream: %w", err)
	}
	return m, nil
}

func (r *replier) AbortStream(ctx context.Context, chunks []string) error {
	id := newID("stream")
	if err := r.deltas(ctx, id, chunks); err != nil {
		return fmt.Errorf("abort stream: %w", err)
	}
	err := r.inConversation(ctx, func() {
		r.s.publish(r.conv, chat.SignalMessageStreamAbort, streamAbortJSON{id, r.conv})
	})
	if err != nil {
		return fmt.Errorf("abort stream: %w", err)
	}
	return nil
}

func (r *replier) deltas(ctx context.Context, id string, chunks []string) error {
	for i, d := range chunks {
		err := r.inConversation(ctx, func() {
			r.s.publish(r.conv, chat.SignalMessageStreamDelta, streamDeltaJSON{
				StreamID: id, ConversationID: r.conv, UserID: r.s.st.botUser,
				CreatedAt: chat.Timestamp(r.s.now()), Sequence: i, Delta: d,
			})
		})
		if err != nil {
			return err
		}
	}
	return nil
}

func (r *replier) SendEvent(ctx context.Context, payload map[string]any) error {
	if payload == nil {
		payload = map[string]any{}
	}
	raw, err := json.Marshal(payload)
	if err != nil {
		return fmt.Errorf("send event: %w: %v", chat.ErrInvalidPayload, err)
	}
	err = r.inConversation(ctx, func() {
		r.s.publish(r.conv, chat.SignalEventCreated, eventCreatedJSON{
			CreatedAt: chat.Timestamp(r.s.now()), Payload: raw,
			ConversationID: r.conv, UserID: r.s.st.botUser, IsBot: true,
		})
	})
	if err != nil {
		return fmt.Errorf("send event: %w", err)
	}
	return nil
}

// inConversation runs f under the state lock if the conversation still exists.
func (r *replier) inConversation(ctx context.Context, f func()) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	if r.s.st.convs[r.conv] == nil {
		return fmt.Errorf("conversation %s: %w", r.conv, chat.ErrNotFound)
	}
	f()
	return nil
}
