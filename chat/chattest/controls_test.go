package chattest_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/botbridge/botbridge/bridge/bridgetest"
	"github.com/botbridge/botbridge/chat"
	"github.com/botbridge/botbridge/chat/chattest"
)

func TestPushBotMessage(t *testing.T) {
	e := newEnv(t, chattest.Options{})
	_, key := e.createUser("alice")
	conv := e.createConv(key, "c1")
	st := e.listen(key, conv)

	t.Run("stores and announces a bot message", func(t *testing.T) {
		m, err := e.s.PushBotMessage(t.Context(), conv, chat.Choice{Text: "Pick", Options: []chat.ChoiceOption{{Label: "A", Value: "a"}}})
		if err != nil {
			t.Fatal(err)
		}
		if m.UserID != e.s.BotUserID() || m.ConversationID != conv || m.Payload.PayloadType() != chat.TypeChoice {
			t.Errorf("message %+v", m)
		}
		got := botReply(t, e, st)
		if got.ID != m.ID {
			t.Errorf("signal for %s, pushed %s", got.ID, m.ID)
		}
	})
	t.Run("refuses an invalid payload", func(t *testing.T) {
		if _, err := e.s.PushBotMessage(t.Context(), conv, chat.Text{}); !errors.Is(err, chat.ErrInvalidPayload) {
			t.Errorf("empty text: %v", err)
		}
	})
	t.Run("refuses an unknown conversation", func(t *testing.T) {
		if _, err := e.s.PushBotMessage(t.Context(), "nope", chat.Text{Text: "x"}); !errors.Is(err, chat.ErrNotFound) {
			t.Errorf("unknown conversation: %v", err)
		}
	})
	t.Run("honours a done context", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if _, err := e.s.PushBotMessage(ctx, conv, chat.Text{Text: "x"}); !errors.Is(err, context.Canceled) {
			t.Errorf("canceled: %v", err)
		}
	})
}

func TestMessagesOldestFirst(t *testing.T) {
	e := newEnv(t, chattest.Options{})
	_, key := e.createUser("alice")
	conv := e.createConv(key, "c1")
	a := e.sendText(key, conv, "one")
	b, err := e.s.PushBotMessage(t.Context(), conv, chat.Markdown{Markdown: "two"})
	if err != nil {
		t.Fatal(err)
	}
	e.do("POST", "/messages", key, map[string]any{"conversationId": conv, "payload": map[string]any{"type": "text", "text": "three"}, "metadata": map[string]any{"k": "v"}}).ok(t, nil)
	got := e.s.Messages(conv)
	if len(got) != 3 || got[0].ID != a.ID || got[1].ID != b.ID {
		t.Fatalf("Messages %+v", got)
	}
	if got[0].Payload != (chat.Text{Text: "one"}) || got[1].Payload != (chat.Markdown{Markdown: "two"}) || got[2].Metadata["k"] != "v" {
		t.Errorf("Messages %+v", got)
	}
	if got[0].CreatedAt.Location() != time.UTC {
		t.Errorf("CreatedAt %v is not UTC", got[0].CreatedAt)
	}
	if e.s.Messages("nope") != nil {
		t.Error("Messages of an unknown conversation is not nil")
	}
}

// TestSetLatency delays answers by an hour: a request with a short deadline
// cannot complete, but stream frames still flow, and removing the latency
// restores answers.
func TestSetLatency(t *testing.T) {
	e := newEnv(t, chattest.Options{})
	_, key := e.createUser("alice")
	conv := e.createConv(key, "c1")
	st := e.listen(key, conv)
	e.s.SetLatency(time.Hour)

	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	if r, err := e.send(ctx, "GET", "/users/me", key, nil); err == nil {
		t.Fatalf("answered %d despite an hour of latency", r.status)
	}
	if _, err := e.s.PushBotMessage(t.Context(), conv, chat.Text{Text: "frames are not delayed"}); err != nil {
		t.Fatal(err)
	}
	botReply(t, e, st)
	e.s.SetLatency(0)
	e.do("GET", "/users/me", key, nil).ok(t, nil)
}

func TestFailRequests(t *testing.T) {
	clk := newClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	e := newEnv(t, chattest.Options{Now: clk.Now})
	_, key := e.createUser("alice")
	e.createConv(key, "c1")

	e.s.FailRequests(http.StatusTooManyRequests, 1500*time.Millisecond, clk.Now().Add(time.Minute))
	t.Run("every request fails until the time given", func(t *testing.T) {
		r := e.do("GET", "/users/me", key, nil)
		r.apiErr(t, http.StatusTooManyRequests, "RateLimited", "")
		if ra := r.header.Get("Retry-After"); ra != "2" {
			t.Errorf("Retry-After %q, want 2 (seconds, rounded up)", ra)
		}
		_, lr := e.openStream(key, "c1")
		lr.apiErr(t, http.StatusTooManyRequests, "RateLimited", "")
		e.do("GET", "/hello", "", nil).apiErr(t, http.StatusTooManyRequests, "RateLimited", "")
	})
	t.Run("OPTIONS is not affected", func(t *testing.T) {
		if r := e.do("OPTIONS", "/messages", "", nil); r.status != http.StatusOK {
			t.Errorf("OPTIONS %d", r.status)
		}
	})
	t.Run("requests succeed once Now passes the time", func(t *testing.T) {
		clk.Advance(time.Minute)
		e.do("GET", "/users/me", key, nil).ok(t, nil)
	})
	t.Run("a zero time stops the failures", func(t *testing.T) {
		e.s.FailRequests(http.StatusServiceUnavailable, 0, clk.Now().Add(time.Hour))
		r := e.do("GET", "/users/me", key, nil)
		r.apiErr(t, http.StatusServiceUnavailable, "Unknown", "")
		if r.header.Get("Retry-After") != "" {
			t.Errorf("Retry-After %q without a retryAfter", r.header.Get("Retry-After"))
		}
		e.s.FailRequests(0, 0, time.Time{})
		e.do("GET", "/users/me", key, nil).ok(t, nil)
	})
}

func TestFailNext(t *testing.T) {
	e := newEnv(t, chattest.Options{})
	_, key := e.createUser("alice")
	e.s.FailNext(2, http.StatusInternalServerError, 0)
	e.do("GET", "/users/me", key, nil).apiErr(t, http.StatusInternalServerError, "Internal", "")
	e.do("POST", "/conversations", key, nil).apiErr(t, http.StatusInternalServerError, "Internal", "")
	e.do("GET", "/users/me", key, nil).ok(t, nil)
	t.Run("takes precedence over FailRequests", func(t *testing.T) {
		e.s.FailRequests(http.StatusServiceUnavailable, 0, time.Now().Add(time.Hour))
		e.s.FailNext(1, http.StatusGatewayTimeout, time.Second)
		r := e.do("GET", "/users/me", key, nil)
		r.apiErr(t, http.StatusGatewayTimeout, "OperationTimeout", "")
		if r.header.Get("Retry-After") != "1" {
			t.Errorf("Retry-After %q", r.header.Get("Retry-After"))
		}
		e.do("GET", "/users/me", key, nil).apiErr(t, http.StatusServiceUnavailable, "Unknown", "")
	})
}

func TestRequestsAndOpenStreams(t *testing.T) {
	e := newEnv(t, chattest.Options{})
	if e.s.Requests() != 0 || e.s.OpenStreams() != 0 {
		t.Fatalf("fresh server: %d requests, %d streams", e.s.Requests(), e.s.OpenStreams())
	}
	_, key := e.createUser("alice")
	e.createConv(key, "c1")
	e.s.FailNext(1, http.StatusServiceUnavailable, 0)
	e.do("GET", "/users/me", key, nil)
	e.do("OPTIONS", "/users/me", key, nil)
	if n := e.s.Requests(); n != 3 {
		t.Errorf("Requests %d, want 3 (a failed one included, OPTIONS not)", n)
	}
	st := e.listen(key, "c1")
	if n := e.s.OpenStreams(); n != 1 {
		t.Errorf("OpenStreams %d, want 1", n)
	}
	st.close()
	bridgetest.WaitFor(t, "the closed stream to be gone", func() bool { return e.s.OpenStreams() == 0 })
}

func TestCloseEndsStreamsAndBots(t *testing.T) {
	started := make(chan struct{})
	bot := chattest.BotFunc(func(ctx context.Context, r chattest.Replier, m chat.Message) {
		close(started)
		<-ctx.Done() // a bot that only stops when the server closes
	})
	s, err := chattest.New(chattest.Options{Bot: bot})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, s: s, url: s.URL(), hc: &http.Client{Transport: &http.Transport{}}}
	_, key := e.createUser("alice")
	e.createConv(key, "c1")
	st := e.listen(key, "c1")
	e.sendText(key, "c1", "hi")
	<-started
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := st.ended(t); err == nil {
		t.Error("stream still open after Close")
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := s.Start("127.0.0.1:0"); err == nil {
		t.Error("Start after Close succeeded")
	}
}

// TestConcurrentMessages has many users send at once, with a stream
// listening: every message is stored once, listed once and announced once.
func TestConcurrentMessages(t *testing.T) {
	e := newEnv(t, chattest.Options{Bot: chattest.EchoBot()})
	_, owner := e.createUser("owner")
	conv := e.createConv(owner, "c1")
	const users, each = 8, 25
	keys := make([]chat.UserKey, users)
	for i := range keys {
		var id chat.UserID
		id, keys[i] = e.createUser(fmt.Sprint("u", i))
		e.addParticipant(owner, conv, id)
	}
	st := e.listen(owner, conv)
	errs := make(chan error, users*each)
	var wg sync.WaitGroup
	for _, k := range keys {
		wg.Go(func() {
			for j := range each {
				r, err := e.send(t.Context(), "POST", "/messages", k, map[string]any{
					"conversationId": conv, "payload": map[string]any{"type": "text", "text": fmt.Sprint("m", j)},
				})
				if err == nil && r.status != http.StatusOK {
					err = fmt.Errorf("status %d: %s", r.status, r.body)
				}
				if err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	const total = 2 * users * each // every message and its echo
	seen := map[chat.MessageID]bool{}
	for len(seen) < total {
		var m messageOut
		st.nextOf(t, chat.SignalMessageCreated).decode(t, &m)
		if seen[m.ID] {
			t.Fatalf("message %s announced twice", m.ID)
		}
		seen[m.ID] = true
	}
	listed := map[chat.MessageID]bool{}
	for _, p := range e.listAll(owner, "/conversations/c1/messages") {
		for _, m := range p.Messages {
			if listed[m.ID] || !seen[m.ID] {
				t.Fatalf("message %s listed twice or never announced", m.ID)
			}
			listed[m.ID] = true
		}
	}
	if len(listed) != total || len(e.s.Messages(conv)) != total {
		t.Errorf("listed %d, stored %d, want %d", len(listed), len(e.s.Messages(conv)), total)
	}
}
