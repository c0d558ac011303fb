package chattest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/botbridge/botbridge/bridge/bridgetest"
	"github.com/botbridge/botbridge/chat"
	"github.com/botbridge/botbridge/chat/chattest"
)

// hook is a webhook receiver over loopback HTTP that records what it gets.
type hook struct {
	*httptest.Server
	hold chan struct{} // while open, requests wait (or until the sender gives up)

	mu       sync.Mutex
	got      []hookCall
	inFlight map[string]int // by conversation
	now, max int
}

type hookCall struct {
	method, path string
	header       http.Header
	body         []byte
	conv         string
}

// newHook starts a receiver that answers status at once, or, when hold is
// true, waits until release (or until the sender gives up) first.
func newHook(t *testing.T, status int, hold bool) *hook {
	t.Helper()
	h := &hook{hold: make(chan struct{}), inFlight: map[string]int{}}
	if !hold {
		close(h.hold)
	}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		c := hookCall{r.Method, r.URL.Path, r.Header.Clone(), body, convOf(body)}
		h.mu.Lock()
		h.got = append(h.got, c)
		h.inFlight[c.conv]++
		if h.inFlight[c.conv] > 1 {
			h.inFlight["two at once in "+c.conv] = 1
		}
		h.now++
		h.max = max(h.max, h.now)
		h.mu.Unlock()
		select {
		case <-h.hold:
		case <-r.Context().Done():
		}
		h.mu.Lock()
		h.inFlight[c.conv]--
		h.now--
		h.mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(h.Close)
	t.Cleanup(h.release) // before Close, which waits for the handlers
	return h
}

func (h *hook) release() {
	h.mu.Lock()
	defer h.mu.Unlock()
	select {
	case <-h.hold:
	default:
		close(h.hold)
	}
}

func (h *hook) calls() []hookCall {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]hookCall(nil), h.got...)
}

// bodies returns the bodies received for conv, in order of arrival.
func (h *hook) bodies(conv chat.ConversationID) []string {
	var out []string
	for _, c := range h.calls() {
		if c.conv == string(conv) {
			out = append(out, string(c.body))
		}
	}
	return out
}

// convOf returns the conversation a signal is about.
func convOf(body []byte) string {
	var s struct {
		Data struct {
			ConversationID string `json:"conversationId"`
			Message        struct {
				ConversationID string `json:"conversationId"`
			} `json:"message"`
		} `json:"data"`
	}
	_ = json.Unmarshal(body, &s)
	if s.Data.ConversationID != "" {
		return s.Data.ConversationID
	}
	return s.Data.Message.ConversationID
}

// hasText reports whether a body is the message_created of a text.
func hasText(body, text string) bool {
	return strings.Contains(body, `"type":"message_created"`) && strings.Contains(body, fmt.Sprintf(`"text":%q`, text))
}

func waitStats(t *testing.T, s *chattest.Server, what string, cond func(chattest.WebhookStats) bool) chattest.WebhookStats {
	t.Helper()
	bridgetest.WaitFor(t, what, func() bool { return cond(s.WebhookStats()) })
	return s.WebhookStats()
}

func TestWebhooksCarryEverySignalOnce(t *testing.T) {
	h := newHook(t, http.StatusOK, false)
	e := newEnv(t, chattest.Options{Bot: streamBot(), WebhookURL: h.URL + "/botpress/demo", WebhookSecret: "s3cret"})
	_, alice := e.createUser("alice")
	bob, _ := e.createUser("bob")
	conv := e.createConv(alice, "c1")
	other := e.createConv(alice, "c2")
	st := e.listen(alice, conv)

	// The bot answers after createMessage returns: wait for the end of each
	// answer, so that the stream's order is the order of the test.
	var streamed []signal
	until := func(typ string) {
		for {
			s := st.next(t)
			streamed = append(streamed, s)
			if s.Type == typ && (typ != chat.SignalMessageCreated || strings.Contains(string(s.Data), `"isBot":true`)) {
				return
			}
		}
	}
	e.addParticipant(alice, conv, bob)
	hello := e.sendText(alice, conv, "hello")
	e.sendText(alice, conv, "stream")
	until(chat.SignalMessageCreated)
	e.sendText(alice, conv, "abort")
	until(chat.SignalMessageStreamAbort)
	e.sendText(alice, conv, "event")
	until(chat.SignalEventCreated)
	e.do("POST", "/events", alice, map[string]any{"conversationId": conv, "payload": map[string]any{"kind": "typing"}}).ok(t, nil)
	e.do("DELETE", "/messages/"+string(hello.ID), alice, nil).ok(t, nil)
	e.do("DELETE", "/conversations/c1/participants/"+string(bob), alice, nil).ok(t, nil)
	if _, err := e.s.PushBotMessage(t.Context(), conv, chat.Image{ImageURL: "https://x/late.png"}); err != nil {
		t.Fatal(err)
	}
	e.sendText(alice, other, "elsewhere")
	e.sendText(alice, conv, "marker")
	streamed = append(streamed, st.untilMarker(t, "marker")...)

	stats := waitStats(t, e.s, "every webhook sent", func(s chattest.WebhookStats) bool { return s.Pending == 0 && s.Delivered == len(streamed)+2 })
	got := h.bodies(conv)
	if len(got) != len(streamed)+1 || !hasText(got[len(got)-1], "marker") {
		t.Fatalf("%d webhooks for %s, want the %d signals of its stream and the marker:\n%s", len(got), conv, len(streamed), strings.Join(got, "\n"))
	}
	types := map[string]bool{}
	for i, s := range streamed {
		if got[i] != string(s.raw) {
			t.Errorf("webhook %d is\n%s\nwant the stream's\n%s", i, got[i], s.raw)
		}
		types[s.Type] = true
	}
	for _, typ := range []string{chat.SignalMessageCreated, chat.SignalMessageDeleted, chat.SignalParticipantAdded, chat.SignalParticipantRemoved,
		chat.SignalEventCreated, chat.SignalMessageStreamDelta, chat.SignalMessageStreamComplete, chat.SignalMessageStreamAbort} {
		if !types[typ] {
			t.Errorf("no %s among the signals compared", typ)
		}
	}
	if o := h.bodies(other); len(o) != 1 || !hasText(o[0], "elsewhere") {
		t.Errorf("webhooks of a conversation nobody listens to: %q, want its one message", o)
	}
	if stats != (chattest.WebhookStats{Delivered: len(got) + 1}) {
		t.Errorf("stats %+v, want %d delivered and nothing else", stats, len(got)+1)
	}
	for _, c := range h.calls() {
		if c.method != http.MethodPost || c.path != "/botpress/demo/" || c.header.Get("Content-Type") != "application/json" || c.header.Get("X-Secret-Key") != "s3cret" {
			t.Fatalf("webhook %s %s with %v, want POST /botpress/demo/ with JSON and x-secret-key", c.method, c.path, c.header)
		}
	}
}

func TestWebhookWithoutSecretHasNoSecretHeader(t *testing.T) {
	h := newHook(t, http.StatusNoContent, false)
	e := newEnv(t, chattest.Options{WebhookURL: h.URL + "/in/"})
	_, alice := e.createUser("alice")
	e.sendText(alice, e.createConv(alice, "c1"), "hi")
	waitStats(t, e.s, "the webhook", func(s chattest.WebhookStats) bool { return s.Delivered == 1 })
	c := h.calls()[0]
	if _, ok := c.header["X-Secret-Key"]; ok || c.path != "/in/" {
		t.Errorf("webhook to %s with headers %v, want /in/ (one slash) and no x-secret-key", c.path, c.header)
	}
}

func TestWebhookURL(t *testing.T) {
	for _, bad := range []string{"ftp://x/y", "/relative", "http://", "::"} {
		if _, err := chattest.New(chattest.Options{WebhookURL: bad}); err == nil || !strings.Contains(err.Error(), "webhook url") {
			t.Errorf("New with WebhookURL %q: %v, want an error naming the webhook url", bad, err)
		}
	}
	h := newHook(t, http.StatusOK, false)
	e := newEnv(t, chattest.Options{})
	_, alice := e.createUser("alice")
	conv := e.createConv(alice, "c1")
	t.Run("no URL sends nothing", func(t *testing.T) {
		e.sendText(alice, conv, "unseen")
		if s := e.s.WebhookStats(); s != (chattest.WebhookStats{}) {
			t.Errorf("stats %+v without a webhook", s)
		}
	})
	t.Run("SetWebhook starts and stops them", func(t *testing.T) {
		if err := e.s.SetWebhook("gopher://x", ""); err == nil {
			t.Error("SetWebhook took a gopher URL")
		}
		if err := e.s.SetWebhook(h.URL+"/late", "k"); err != nil {
			t.Fatal(err)
		}
		e.sendText(alice, conv, "seen")
		waitStats(t, e.s, "the webhook", func(s chattest.WebhookStats) bool { return s.Delivered == 1 })
		if err := e.s.SetWebhook("", ""); err != nil {
			t.Fatal(err)
		}
		e.sendText(alice, conv, "unseen again")
		if got := h.bodies(conv); len(got) != 1 || !hasText(got[0], "seen") || h.calls()[0].path != "/late/" {
			t.Errorf("webhooks %q", got)
		}
	})
}

func TestDroppingWebhooks(t *testing.T) {
	h := newHook(t, http.StatusOK, false)
	clk := newClock(time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC))
	e := newEnv(t, chattest.Options{WebhookURL: h.URL, Now: clk.Now})
	_, alice := e.createUser("alice")
	conv := e.createConv(alice, "c1")
	delivered := 0
	send := func(texts ...string) {
		t.Helper()
		for _, s := range texts {
			e.sendText(alice, conv, s)
		}
	}
	// settle waits for the webhooks of what was sent, and checks which came.
	settle := func(t *testing.T, want ...string) {
		t.Helper()
		delivered += len(want)
		waitStats(t, e.s, "the webhooks", func(s chattest.WebhookStats) bool { return s.Pending == 0 && s.Delivered == delivered })
		got := h.bodies(conv)
		got = got[len(got)-len(want):]
		for i, w := range want {
			if !hasText(got[i], w) {
				t.Errorf("webhook %s, want the message %q", got[i], w)
			}
		}
	}

	t.Run("the next n", func(t *testing.T) {
		e.s.DropWebhooks(2)
		send("d1", "d2", "s1", "s2")
		settle(t, "s1", "s2")
		if s := e.s.WebhookStats(); s.Dropped != 2 {
			t.Errorf("stats %+v, want 2 dropped", s)
		}
	})
	t.Run("all until a time", func(t *testing.T) {
		e.s.DropWebhooksUntil(clk.Now().Add(time.Minute))
		send("d3", "d4")
		clk.Advance(time.Minute)
		send("s3")
		settle(t, "s3")
		e.s.DropWebhooksUntil(clk.Now().Add(time.Hour))
		send("d5")
		e.s.DropWebhooksUntil(time.Time{})
		send("s4")
		settle(t, "s4")
		if s := e.s.WebhookStats(); s.Dropped != 5 {
			t.Errorf("stats %+v, want 5 dropped", s)
		}
	})
	t.Run("a fraction", func(t *testing.T) {
		for _, bad := range []float64{-0.1, 1.5, math.NaN()} {
			if err := e.s.SetWebhookDropRate(bad); err == nil {
				t.Errorf("SetWebhookDropRate(%v) took it", bad)
			}
		}
		if _, err := chattest.New(chattest.Options{WebhookDropRate: 2}); err == nil {
			t.Error("New took WebhookDropRate 2")
		}
		if err := e.s.SetWebhookDropRate(1); err != nil {
			t.Fatal(err)
		}
		send("d6", "d7")
		if err := e.s.SetWebhookDropRate(0.5); err != nil {
			t.Fatal(err)
		}
		before := e.s.WebhookStats()
		const n = 200
		for i := range n {
			send(fmt.Sprint("half ", i))
		}
		s := waitStats(t, e.s, "the webhooks", func(s chattest.WebhookStats) bool {
			return s.Pending == 0 && s.Delivered+s.Dropped == before.Delivered+before.Dropped+n
		})
		dropped, sent := s.Dropped-before.Dropped, s.Delivered-before.Delivered
		if dropped == 0 || sent == 0 {
			t.Errorf("of %d webhooks at rate 0.5, %d dropped and %d sent", n, dropped, sent)
		}
		if before.Dropped != 7 {
			t.Errorf("rate 1 dropped %d in all, want 7", before.Dropped)
		}
		if err := e.s.SetWebhookDropRate(0); err != nil {
			t.Fatal(err)
		}
		delivered = s.Delivered
		send("s5")
		settle(t, "s5")
	})
}

// TestSlowWebhookReceiver holds every webhook: the API and the streams go on,
// a bounded number of POSTs wait (never two of one conversation), the rest
// of the queue is bounded, and once released the receiver gets each
// conversation's signals in order.
func TestSlowWebhookReceiver(t *testing.T) {
	h := newHook(t, http.StatusOK, true)
	const workers, queue, convs, per = 4, 30, 8, 6
	e := newEnv(t, chattest.Options{WebhookURL: h.URL, WebhookConcurrency: workers, WebhookQueue: queue})
	_, alice := e.createUser("alice")
	ids := make([]chat.ConversationID, convs)
	for i := range ids {
		ids[i] = e.createConv(alice, fmt.Sprint("c", i))
	}
	st := e.listen(alice, ids[0])
	ctx, cancel := context.WithTimeout(t.Context(), wait)
	defer cancel()
	for j := range per {
		for _, id := range ids {
			var out struct{ Message messageOut }
			e.doCtx(ctx, "POST", "/messages", alice, map[string]any{
				"conversationId": id, "payload": map[string]any{"type": "text", "text": fmt.Sprint("m", j)},
			}).ok(t, &out)
		}
		st.nextOf(t, chat.SignalMessageCreated) // the stream does not wait for webhooks
	}
	s := waitStats(t, e.s, "a full queue", func(s chattest.WebhookStats) bool { return s.Pending == queue })
	if s.Discarded != convs*per-queue {
		t.Errorf("stats %+v, want %d discarded", s, convs*per-queue)
	}
	bridgetest.WaitFor(t, "the workers' POSTs", func() bool { return len(h.calls()) == workers })

	h.release()
	s = waitStats(t, e.s, "the queue to drain", func(s chattest.WebhookStats) bool { return s.Pending == 0 })
	if s.Delivered != queue {
		t.Errorf("stats %+v, want %d delivered", s, queue)
	}
	h.mu.Lock()
	most, two := h.max, h.inFlight
	h.mu.Unlock()
	if most > workers {
		t.Errorf("%d webhooks in flight at once, want at most %d", most, workers)
	}
	for k := range two {
		if strings.HasPrefix(k, "two at once") {
			t.Errorf("%s", k)
		}
	}
	for _, id := range ids {
		got := h.bodies(id)
		for j, b := range got {
			if !hasText(b, fmt.Sprint("m", j)) {
				t.Errorf("webhook %d of %s is %s, want m%d: the order of the conversation", j, id, b, j)
			}
		}
	}
}

func TestFailedWebhooksAreCountedNotRetried(t *testing.T) {
	t.Run("no answer in time", func(t *testing.T) {
		h := newHook(t, http.StatusOK, true)
		e := newEnv(t, chattest.Options{WebhookURL: h.URL, WebhookTimeout: 50 * time.Millisecond})
		_, alice := e.createUser("alice")
		conv := e.createConv(alice, "c1")
		e.sendText(alice, conv, "a")
		e.sendText(alice, conv, "b")
		waitStats(t, e.s, "two failures", func(s chattest.WebhookStats) bool { return s.Failed == 2 && s.Pending == 0 })
		if got := h.bodies(conv); len(got) != 2 {
			t.Errorf("%d POSTs, want 2 (no retry)", len(got))
		}
	})
	t.Run("an error status", func(t *testing.T) {
		h := newHook(t, http.StatusUnauthorized, false)
		e := newEnv(t, chattest.Options{WebhookURL: h.URL})
		_, alice := e.createUser("alice")
		e.sendText(alice, e.createConv(alice, "c1"), "a")
		waitStats(t, e.s, "the failure", func(s chattest.WebhookStats) bool { return s.Failed == 1 && s.Pending == 0 })
		if n := len(h.calls()); n != 1 {
			t.Errorf("%d POSTs, want 1", n)
		}
	})
	t.Run("nobody listening", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		dead := "http://" + ln.Addr().String()
		ln.Close()
		e := newEnv(t, chattest.Options{WebhookURL: dead})
		_, alice := e.createUser("alice")
		conv := e.createConv(alice, "c1")
		st := e.listen(alice, conv)
		e.sendText(alice, conv, "a")
		st.nextOf(t, chat.SignalMessageCreated)
		waitStats(t, e.s, "the failure", func(s chattest.WebhookStats) bool { return s.Failed == 1 && s.Pending == 0 })
	})
	t.Run("Close does not wait for a receiver that hangs", func(t *testing.T) {
		h := newHook(t, http.StatusOK, true)
		s, err := chattest.New(chattest.Options{WebhookURL: h.URL, WebhookTimeout: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Start("127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		e := &env{t: t, s: s, url: s.URL(), hc: &http.Client{Transport: &http.Transport{}}}
		_, alice := e.createUser("alice")
		e.sendText(alice, e.createConv(alice, "c1"), "a")
		bridgetest.WaitFor(t, "the POST", func() bool { return len(h.calls()) == 1 })
		closed := make(chan error, 1)
		go func() { closed <- s.Close() }()
		select {
		case err := <-closed:
			if err != nil {
				t.Error(err)
			}
		case <-time.After(wait):
			t.Fatal("Close waits for a webhook receiver")
		}
	})
}
