package chattest_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/botbridge/botbridge/bridge/bridgetest"
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
	t.Run("sends media back as the same payload", func(t *testing.T) {
		for _, p := range []string{
			`{"type":"image","imageUrl":"https://x/cat.png"}`,
			`{"type":"audio","audioUrl":"https://x/meow.mp3"}`,
			`{"type":"video","videoUrl":"https://x/cat.mp4"}`,
			`{"type":"file","fileUrl":"https://x/cat.pdf","title":"Cat facts"}`,
			`{"type":"file","fileUrl":"https://x/dog.pdf"}`,
		} {
			e.do("POST", "/messages", key, map[string]any{"conversationId": conv, "payload": json.RawMessage(p)}).ok(t, nil)
			st.nextOf(t, chat.SignalMessageCreated)
			if r := botReply(t, e, st); !sameJSON(r.Payload, p) {
				t.Errorf("reply %s, want %s", r.Payload, p)
			}
		}
	})
	t.Run("describes other payloads in a text", func(t *testing.T) {
		e.do("POST", "/messages", key, map[string]any{"conversationId": conv, "payload": map[string]any{"type": "location", "latitude": 1.5, "longitude": 2}}).ok(t, nil)
		st.nextOf(t, chat.SignalMessageCreated)
		if r := botReply(t, e, st); !strings.Contains(string(r.Payload), `You sent a location (1.5, 2)`) {
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
	t.Run("help lists the keywords and explains later", func(t *testing.T) {
		e.sendText(key, conv, "HELP")
		st.nextOf(t, chat.SignalMessageCreated)
		r := botReply(t, e, st)
		if !strings.Contains(string(r.Payload), chattest.DemoKeywords) || !strings.Contains(string(r.Payload), "later 20") {
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
	t.Run("an image is sent back as an image", func(t *testing.T) {
		p := `{"type":"image","imageUrl":"https://x/cat.png"}`
		e.do("POST", "/messages", key, map[string]any{"conversationId": conv, "payload": json.RawMessage(p)}).ok(t, nil)
		st.nextOf(t, chat.SignalMessageCreated)
		if r := botReply(t, e, st); !sameJSON(r.Payload, p) {
			t.Errorf("reply %s, want %s", r.Payload, p)
		}
	})
	t.Run("later answers at once, then late, and the conversation goes on meanwhile", func(t *testing.T) {
		e.sendText(key, conv, "Later 0.3")
		st.nextOf(t, chat.SignalMessageCreated)
		if r := botReply(t, e, st); !strings.Contains(string(r.Payload), "I will answer in 300ms") {
			t.Errorf("acknowledgement %s", r.Payload)
		}
		e.sendText(key, conv, "meanwhile")
		st.nextOf(t, chat.SignalMessageCreated)
		if r := botReply(t, e, st); !sameJSON(r.Payload, `{"type":"text","text":"meanwhile"}`) {
			t.Errorf("reply while waiting %s, want the echo before the late reply", r.Payload)
		}
		if r := botReply(t, e, st); !strings.Contains(string(r.Payload), "the late reply you asked for 300ms ago") {
			t.Errorf("late reply %s", r.Payload)
		}
	})
	t.Run("later takes seconds or a duration, 30 seconds by default", func(t *testing.T) {
		for word, want := range map[string]string{"later": "30s", "later 20": "20s", "later 1m30s": "1m30s"} {
			e.sendText(key, conv, word)
			st.nextOf(t, chat.SignalMessageCreated)
			if r := botReply(t, e, st); !strings.Contains(string(r.Payload), "I will answer in "+want+".") {
				t.Errorf("%q: acknowledgement %s, want %s", word, r.Payload, want)
			}
		}
	})
	t.Run("later with a bad delay explains itself", func(t *testing.T) {
		for _, word := range []string{"later tomorrow", "later -5", "later 0", "later 100000", "later nan"} {
			e.sendText(key, conv, word)
			st.nextOf(t, chat.SignalMessageCreated)
			if r := botReply(t, e, st); !strings.Contains(string(r.Payload), "I did not get that delay") {
				t.Errorf("%q: reply %s", word, r.Payload)
			}
		}
	})
	t.Run("laterally is echoed", func(t *testing.T) {
		e.sendText(key, conv, "laterally")
		st.nextOf(t, chat.SignalMessageCreated)
		if r := botReply(t, e, st); !sameJSON(r.Payload, `{"type":"text","text":"laterally"}`) {
			t.Errorf("reply %s", r.Payload)
		}
	})
}

func TestReplyAfter(t *testing.T) {
	t.Run("Close cancels a pending late reply", func(t *testing.T) {
		s, err := chattest.New(chattest.Options{Bot: chattest.DemoBot()})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Start("127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		e := &env{t: t, s: s, url: s.URL(), hc: &http.Client{Transport: &http.Transport{}}}
		_, key := e.createUser("alice")
		conv := e.createConv(key, "c1")
		e.sendText(key, conv, "later 1h")
		bridgetest.WaitFor(t, "the acknowledgement", func() bool { return len(s.Messages(conv)) == 2 })
		closed := make(chan error, 1)
		go func() { closed <- s.Close() }()
		select {
		case err := <-closed:
			if err != nil {
				t.Error(err)
			}
		case <-time.After(wait):
			t.Fatal("Close waits for a late reply due in an hour")
		}
	})
	t.Run("an invalid payload fails at once", func(t *testing.T) {
		got := make(chan error, 1)
		e := newEnv(t, chattest.Options{Bot: chattest.BotFunc(func(ctx context.Context, r chattest.Replier, m chat.Message) {
			got <- r.ReplyAfter(time.Millisecond, chat.Text{})
		})})
		_, key := e.createUser("alice")
		e.sendText(key, e.createConv(key, "c1"), "hi")
		select {
		case err := <-got:
			if !errors.Is(err, chat.ErrInvalidPayload) {
				t.Errorf("ReplyAfter(empty text) = %v, want chat.ErrInvalidPayload", err)
			}
		case <-time.After(wait):
			t.Fatal("the bot never ran")
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
