package chattest_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/botbridge/botbridge/chat"
	"github.com/botbridge/botbridge/chat/chattest"
)

// botReply waits for the bot's message_created after the user's own and checks
// that it looks like a real bot reply.
func botReply(t *testing.T, e *env, st *sse) messageOut {
	t.Helper()
	var m messageOut
	st.nextOf(t, chat.SignalMessageCreated).decode(t, &m)
	if m.IsBot == nil || !*m.IsBot || m.UserID != e.s.BotUserID() {
		t.Fatalf("message_created %+v, want isBot true from %s", m, e.s.BotUserID())
	}
	return m
}

func TestEchoBot(t *testing.T) {
	e := newEnv(t, chattest.Options{Bot: chattest.EchoBot()})
	_, key := e.createUser("alice")
	conv := e.createConv(key, "c1")
	st := e.listen(key, conv)

	t.Run("answers after the user's own message_created", func(t *testing.T) {
		sent := e.sendText(key, conv, "hello there")
		var first messageOut
		st.nextOf(t, chat.SignalMessageCreated).decode(t, &first)
		if first.ID != sent.ID || *first.IsBot {
			t.Fatalf("first signal %+v, want the user's message", first)
		}
		reply := botReply(t, e, st)
		if !sameJSON(reply.Payload, `{"type":"text","text":"hello there"}`) {
			t.Errorf("reply %s", reply.Payload)
		}
		var list listOut
		e.do("GET", "/conversations/c1/messages", key, nil).ok(t, &list)
		if len(list.Messages) != 2 || list.Messages[0].ID != reply.ID || list.Messages[0].UserID != e.s.BotUserID() {
			t.Errorf("listMessages %+v, want the bot reply first", list.Messages)
		}
	})
	t.Run("echoes markdown as markdown", func(t *testing.T) {
		e.do("POST", "/messages", key, map[string]any{"conversationId": conv, "payload": map[string]any{"type": "markdown", "markdown": "**b**"}}).ok(t, nil)
		st.nextOf(t, chat.SignalMessageCreated)
		if r := botReply(t, e, st); !sameJSON(r.Payload, `{"type":"markdown","markdown":"**b**"}`) {
			t.Errorf("reply %s", r.Payload)
		}
	})
	t.Run("describes other payloads in a text", func(t *testing.T) {
		e.do("POST", "/messages", key, map[string]any{"conversationId": conv, "payload": map[string]any{"type": "image", "imageUrl": "https://x/cat.png"}}).ok(t, nil)
		st.nextOf(t, chat.SignalMessageCreated)
		if r := botReply(t, e, st); !strings.Contains(string(r.Payload), "an image (https://x/cat.png)") {
			t.Errorf("reply %s", r.Payload)
		}
	})
	t.Run("does not answer its own messages", func(t *testing.T) {
		if _, err := e.s.PushBotMessage(t.Context(), conv, chat.Text{Text: "from the bot"}); err != nil {
			t.Fatal(err)
		}
		botReply(t, e, st)
		e.sendText(key, conv, "marker")
		if extra := st.untilMarker(t, "marker"); len(extra) != 0 {
			t.Errorf("signals after a pushed bot message: %v", extra)
		}
	})
}

func TestBotRunsInOrderPerConversation(t *testing.T) {
	e := newEnv(t, chattest.Options{Bot: chattest.EchoBot()})
	_, key := e.createUser("alice")
	conv := e.createConv(key, "c1")
	st := e.listen(key, conv)
	const n = 30
	for i := range n {
		e.sendText(key, conv, fmt.Sprint("m", i))
	}
	var replies []string
	for len(replies) < n {
		var m messageOut
		st.nextOf(t, chat.SignalMessageCreated).decode(t, &m)
		if *m.IsBot {
			replies = append(replies, string(m.Payload))
		}
	}
	for i, r := range replies {
		if !sameJSON([]byte(r), fmt.Sprintf(`{"type":"text","text":"m%d"}`, i)) {
			t.Fatalf("reply %d is %s", i, r)
		}
	}
}

func TestDemoBot(t *testing.T) {
	e := newEnv(t, chattest.Options{Bot: chattest.DemoBot()})
	_, key := e.createUser("alice")
	conv := e.createConv(key, "c1")
	st := e.listen(key, conv)
	for _, word := range []string{"text", "markdown", "image", "audio", "video", "file", "location", "card", "carousel", "choice", "dropdown", "bloc"} {
		t.Run(word+" gets a "+word+" payload", func(t *testing.T) {
			e.sendText(key, conv, " "+strings.ToUpper(word[:1])+word[1:]+" ")
			st.nextOf(t, chat.SignalMessageCreated)
			r := botReply(t, e, st) // validated against the signal schema
			p, err := chat.DecodePayload(r.Payload)
			if err != nil {
				t.Fatal(err)
			}
			if p.PayloadType() != word {
				t.Errorf("reply %s", r.Payload)
			}
			if err := chat.ValidatePayload(p); err != nil {
				t.Errorf("reply %s: %v", r.Payload, err)
			}
		})
	}
	t.Run("stream gets a streamed reply", func(t *testing.T) {
		e.sendText(key, conv, "stream")
		st.nextOf(t, chat.SignalMessageCreated)
		var text strings.Builder
		s := st.next(t)
		for ; s.Type == chat.SignalMessageStreamDelta; s = st.next(t) {
			var d struct{ Delta string }
			s.decode(t, &d)
			text.WriteString(d.Delta)
		}
		if s.Type != chat.SignalMessageStreamComplete || text.Len() == 0 {
			t.Fatalf("after %q deltas: %s", text.String(), s.raw)
		}
		if r := botReply(t, e, st); !sameJSON(r.Payload, fmt.Sprintf(`{"type":"text","text":%q}`, text.String())) {
			t.Errorf("final %s, deltas %q", r.Payload, text.String())
		}
	})
	t.Run("help lists the keywords", func(t *testing.T) {
		e.sendText(key, conv, "HELP")
		st.nextOf(t, chat.SignalMessageCreated)
		if r := botReply(t, e, st); !strings.Contains(string(r.Payload), chattest.DemoKeywords) {
			t.Errorf("help %s", r.Payload)
		}
	})
	t.Run("anything else is echoed", func(t *testing.T) {
		e.sendText(key, conv, "text please")
		st.nextOf(t, chat.SignalMessageCreated)
		if r := botReply(t, e, st); !sameJSON(r.Payload, `{"type":"text","text":"text please"}`) {
			t.Errorf("echo %s", r.Payload)
		}
	})
}

func TestReplierAfterConversationDeleted(t *testing.T) {
	deleted := make(chan struct{})
	result := make(chan error, 1)
	bot := chattest.BotFunc(func(ctx context.Context, r chattest.Replier, m chat.Message) {
		<-deleted
		_, err := r.Reply(ctx, chat.Text{Text: "too late"})
		result <- err
	})
	e := newEnv(t, chattest.Options{Bot: bot})
	_, key := e.createUser("alice")
	conv := e.createConv(key, "c1")
	e.sendText(key, conv, "hi")
	e.do("DELETE", "/conversations/c1", key, nil).ok(t, nil)
	close(deleted)
	select {
	case err := <-result:
		if !errors.Is(err, chat.ErrNotFound) {
			t.Errorf("Reply after delete: %v, want chat.ErrNotFound", err)
		}
	case <-time.After(wait):
		t.Fatal("the bot never ran")
	}
}
