package bridge_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/botbridge/botbridge/bridge"
	"github.com/botbridge/botbridge/bridge/bridgetest"
	"github.com/botbridge/botbridge/chat"
	"github.com/botbridge/botbridge/chat/chattest"
)

// conversation returns the rig's one Botpress conversation.
func (r *rig) conversation() chat.ConversationID {
	r.t.Helper()
	cs := r.conversations()
	if len(cs) != 1 {
		r.t.Fatalf("%d conversations, want 1", len(cs))
	}
	for _, c := range cs {
		return c
	}
	return ""
}

func TestALateReplyIntoAnIdleConversationIsPostedBySweeps(t *testing.T) {
	r := newRig(t, chattest.EchoBot())
	r.tweak = func(cfg *bridge.Config) {
		cfg.ListenerIdle = 100 * time.Millisecond
		cfg.SweepInterval = 20 * time.Millisecond
	}
	r.start()
	r.say(dm("hello"))
	r.waitPosts(1)
	bridgetest.WaitFor(t, "the idle stream to close", func() bool { return r.em.OpenStreams() == 0 })
	if _, err := r.em.PushBotMessage(t.Context(), r.conversation(), chat.Text{Text: "a human agent answers, later"}); err != nil {
		t.Fatal(err)
	}
	ps := r.waitPosts(2)
	if got := bridgetest.Text(ps[1].Payload()); got != "a human agent answers, later" {
		t.Errorf("late reply posted as %q", got)
	}
	r.waitIdle()
	if n := len(r.ad().Posts()); n != 2 {
		t.Errorf("%d posts, want 2: %q", n, texts(r.ad().Posts()))
	}
}

// hookServer serves the webhooks of the rig's current engine over HTTP.
type hookServer struct {
	*httptest.Server
	h atomic.Pointer[http.Handler]
}

// serve makes the server hand webhooks to eng, after a (re)start.
func (hs *hookServer) serve(eng *bridge.Engine) {
	h := eng.WebhookHandler()
	hs.h.Store(&h)
}

// webhookRig is a rig whose bot has a webhook secret, with the engine's
// webhook handler on an HTTP server.
func webhookRig(t *testing.T, bot chattest.Bot, tweak func(*bridge.Config)) (*rig, *hookServer) {
	return startWebhooks(t, newRig(t, bot), tweak)
}

// startWebhooks starts r as webhookRig does.
func startWebhooks(t *testing.T, r *rig, tweak func(*bridge.Config)) (*rig, *hookServer) {
	hs := &hookServer{}
	hs.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		h := hs.h.Load()
		if h == nil {
			http.Error(w, "starting", http.StatusServiceUnavailable)
			return
		}
		(*h).ServeHTTP(w, req)
	}))
	t.Cleanup(hs.Close)
	r.tweak = func(cfg *bridge.Config) {
		cfg.Bots[0].WebhookSecret = "hook-s3cret"
		if tweak != nil {
			tweak(cfg)
		}
	}
	r.start()
	hs.serve(r.eng)
	return r, hs
}

// post sends a signal as the Chat API's webhooks do, and returns the status.
func post(t *testing.T, url, secret string, s chat.Signal) int {
	t.Helper()
	body, err := json.Marshal(struct {
		Type string      `json:"type"`
		Data chat.Signal `json:"data"`
	}{s.SignalType(), s})
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if secret != "" {
		req.Header.Set("x-secret-key", secret)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestAWebhookReplyIsStoredBeforeTheAnswerAndPostedOnce(t *testing.T) {
	r, srv := webhookRig(t, silentBot(), nil)
	url := srv.URL + bridge.WebhookPath + "bot/"
	r.say(dm("hello"))
	bridgetest.WaitFor(t, "the message to reach Botpress", func() bool {
		cs := r.conversations()
		return len(cs) == 1 && len(r.userMessages(r.conversation())) == 1
	})
	if n := r.em.OpenStreams(); n != 0 {
		t.Errorf("%d streams open with a webhook, want none", n)
	}
	m, err := r.em.PushBotMessage(t.Context(), r.conversation(), chat.Text{Text: "by webhook"})
	if err != nil {
		t.Fatal(err)
	}
	signal := chat.MessageCreated{Message: m, IsBot: true}

	t.Run("a wrong or missing secret is refused and nothing is stored", func(t *testing.T) {
		for _, secret := range []string{"", "wrong", "hook-s3cret-and-more"} {
			if code := post(t, url, secret, signal); code != http.StatusUnauthorized {
				t.Errorf("secret %q: %d, want 401", secret, code)
			}
		}
		if ds, err := r.db.PendingDeliveries(t.Context(), 0); err != nil || len(ds) != 0 {
			t.Errorf("pending deliveries %v, %v; want none", ds, err)
		}
		if _, err := r.db.Delivery(t.Context(), m.ID); err == nil {
			t.Error("the message was stored")
		}
	})
	t.Run("the right secret stores it before answering, and it is posted once", func(t *testing.T) {
		if code := post(t, url, "hook-s3cret", signal); code != http.StatusOK {
			t.Fatalf("webhook: %d", code)
		}
		if _, err := r.db.Delivery(t.Context(), m.ID); err != nil {
			t.Errorf("not stored when the webhook was answered: %v", err)
		}
		if code := post(t, url, "hook-s3cret", signal); code != http.StatusOK {
			t.Fatalf("webhook again: %d", code)
		}
		ps := r.waitPosts(1)
		r.waitIdle()
		if got := texts(r.ad().Posts()); len(got) != 1 || got[0] != "by webhook" {
			t.Errorf("posts %q (first %q), want the reply once", got, bridgetest.Text(ps[0].Payload()))
		}
	})
	t.Run("other bots, other conversations and bad bodies", func(t *testing.T) {
		other := signal
		other.ID, other.ConversationID = "msg_other", "conv_of_another_channel"
		if code := post(t, url, "hook-s3cret", other); code != http.StatusOK {
			t.Errorf("a conversation the bridge did not create: %d, want 200 (ignored)", code)
		}
		if code := post(t, srv.URL+bridge.WebhookPath+"nobody/", "hook-s3cret", signal); code != http.StatusNotFound {
			t.Errorf("an unknown bot: %d, want 404", code)
		}
		resp, err := http.Post(url, "application/json", strings.NewReader(`{"type":"message_created"`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("a bad body without the secret: %d, want 401 before anything is read", resp.StatusCode)
		}
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, url, strings.NewReader(`{"type":`))
		req.Header.Set("x-secret-key", "hook-s3cret")
		resp, err = http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("a bad body: %d, want 400", resp.StatusCode)
		}
		req, _ = http.NewRequestWithContext(t.Context(), http.MethodPost, url, strings.NewReader(strings.Repeat("x", 3<<20)))
		req.Header.Set("x-secret-key", "hook-s3cret")
		resp, err = http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("a 3 MB body: %d, want 413", resp.StatusCode)
		}
		if n := len(r.ad().Posts()); n != 1 {
			t.Errorf("%d posts after the bad webhooks, want still 1", n)
		}
	})
}

func TestALostWebhookIsDeliveredByReconciliation(t *testing.T) {
	r, _ := webhookRig(t, silentBot(), func(cfg *bridge.Config) {
		cfg.SweepInterval = 5 * time.Millisecond // reconciles every 100 ms or more
	})
	r.say(dm("hello"))
	bridgetest.WaitFor(t, "the message to reach Botpress", func() bool {
		cs := r.conversations()
		return len(cs) == 1 && len(r.userMessages(r.conversation())) == 1
	})
	// The service sent its webhook, and it was lost.
	if _, err := r.em.PushBotMessage(t.Context(), r.conversation(), chat.Text{Text: "lost on the way"}); err != nil {
		t.Fatal(err)
	}
	ps := r.waitPosts(1)
	if got := bridgetest.Text(ps[0].Payload()); got != "lost on the way" {
		t.Errorf("reconciliation posted %q", got)
	}
}

func TestWebhooksThatStopArriveAreReplacedByStreams(t *testing.T) {
	r, _ := webhookRig(t, chattest.EchoBot(), func(cfg *bridge.Config) {
		cfg.WebhookTimeout = 200 * time.Millisecond
	})
	// No webhook ever comes: the echo of the bridge's message is missed, the
	// bot's webhooks count as down, and its conversations are listed.
	r.say(dm("anyone there?"))
	ps := r.waitPosts(1)
	if got := bridgetest.Text(ps[0].Payload()); got != "anyone there?" {
		t.Errorf("reply %q", got)
	}
	// From then on, conversations get streams.
	r.say(dm("and now?"))
	r.waitPosts(2)
	bridgetest.WaitFor(t, "a stream", func() bool { return r.em.OpenStreams() > 0 })
}

// silentBot answers nothing by itself: the test makes it speak.
func silentBot() chattest.Bot {
	return chattest.BotFunc(func(context.Context, chattest.Replier, chat.Message) {})
}

// hookedRig is a rig whose emulator sends every signal to the engine's
// webhook handler, as the Chat integration does with a Webhook URL.
func hookedRig(t *testing.T, bot chattest.Bot, tweak func(*bridge.Config)) (*rig, *hookServer) {
	return startHooked(t, newRig(t, bot), tweak)
}

// startHooked starts r as hookedRig does.
func startHooked(t *testing.T, r *rig, tweak func(*bridge.Config)) (*rig, *hookServer) {
	r, hs := startWebhooks(t, r, tweak)
	if err := r.em.SetWebhook(hs.URL+bridge.WebhookPath+"bot", "hook-s3cret"); err != nil {
		t.Fatal(err)
	}
	return r, hs
}

func TestWebhookModeAnswersWithoutStreams(t *testing.T) {
	r, _ := hookedRig(t, chattest.EchoBot(), nil)
	r.say(dm("hello by webhook"))
	ps := r.waitPosts(1)
	if got := bridgetest.Text(ps[0].Payload()); got != "hello by webhook" {
		t.Errorf("reply %q", got)
	}
	r.waitIdle()
	if n := r.em.OpenStreams(); n != 0 {
		t.Errorf("%d streams open with healthy webhooks, want none", n)
	}
	t.Run("a late reply into an idle conversation", func(t *testing.T) {
		if _, err := r.em.PushBotMessage(t.Context(), r.conversation(), chat.Text{Text: "later, by webhook"}); err != nil {
			t.Fatal(err)
		}
		ps := r.waitPosts(2)
		if got := bridgetest.Text(ps[1].Payload()); got != "later, by webhook" {
			t.Errorf("late reply %q", got)
		}
	})
	t.Run("a streamed reply grows in one message", func(t *testing.T) {
		r.say(dm("stream please"))
		ps := r.waitPosts(3)
		if got := bridgetest.Text(ps[2].Payload()); got != "stream please" {
			t.Errorf("reply %q", got)
		}
	})
}

func TestWebhooksLostWhileTheBridgeWasDownAreDeliveredAfterItStarts(t *testing.T) {
	r, hs := hookedRig(t, silentBot(), nil)
	r.say(dm("hello"))
	bridgetest.WaitFor(t, "the message to reach Botpress", func() bool {
		cs := r.conversations()
		return len(cs) == 1 && len(r.userMessages(r.conversation())) == 1
	})
	conv := r.conversation()
	r.stop()
	// The bot answers while the bridge is down: its webhook reaches nobody.
	if _, err := r.em.PushBotMessage(t.Context(), conv, chat.Text{Text: "while you were down"}); err != nil {
		t.Fatal(err)
	}
	bridgetest.WaitFor(t, "the webhook to fail", func() bool { return r.em.WebhookStats().Failed > 0 })
	r.start()
	hs.serve(r.eng)
	ps := r.waitPosts(1)
	if got := bridgetest.Text(ps[0].Payload()); got != "while you were down" {
		t.Errorf("after the start the room got %q", got)
	}
}

func TestTheSameReplyByWebhookStreamAndSweepIsPostedOnce(t *testing.T) {
	r, _ := hookedRig(t, chattest.EchoBot(), func(cfg *bridge.Config) {
		cfg.SweepInterval = 5 * time.Millisecond
		cfg.WebhookTimeout = 50 * time.Millisecond
	})
	// Every webhook is lost: the bridge's own message does not come back,
	// the bot's webhooks count as down, a sweep finds the reply, and the
	// next message gets a stream.
	r.em.DropWebhooksUntil(time.Now().Add(time.Hour))
	r.say(dm("one"))
	r.waitPosts(1)
	r.say(dm("two"))
	r.waitPosts(2)
	bridgetest.WaitFor(t, "a stream", func() bool { return r.em.OpenStreams() > 0 })
	// Webhooks arrive again: the next reply comes by webhook, by the stream
	// and by sweeps.
	r.em.DropWebhooksUntil(time.Time{})
	r.say(dm("three"))
	r.waitPosts(3)
	before := r.em.Requests()
	bridgetest.WaitFor(t, "more sweeps", func() bool { return r.em.Requests() >= before+10 })
	bridgetest.WaitFor(t, "webhooks of the reply", func() bool { return r.em.WebhookStats().Delivered >= 2 })
	r.waitIdle()
	if got := strings.Join(texts(r.ad().Posts()), "|"); got != "one|two|three" {
		t.Errorf("posts %q, want each reply once", got)
	}
}

func TestAMessageSentDoesNotWaitForTheBudgetOfCatchUps(t *testing.T) {
	r := newRig(t, chattest.EchoBot())
	r.start()
	rooms := []string{"D1", "D2", "D3", "D4"}
	say := func(room, text string) {
		in := msg(bridge.RoomKey{Platform: bridge.PlatformSlack, Room: room}, text)
		in.DM = true
		r.say(in)
	}
	for _, room := range rooms {
		say(room, "hello "+room)
	}
	r.waitPosts(len(rooms))
	r.stop()
	// After a restart every stream catches up within one request a minute:
	// the last ones would wait minutes.
	r.tweak = func(cfg *bridge.Config) { cfg.SweepBudget = 1 }
	r.start()
	say("D4", "are you there?")
	ps := r.waitPosts(len(rooms) + 1)
	if got := bridgetest.Text(ps[len(rooms)].Payload()); got != "are you there?" {
		t.Errorf("reply %q", got)
	}
}

func TestAWebhookReplyStoredButNotPostedWhenTheBridgeStopsIsPostedOnceAfterIt(t *testing.T) {
	r, hs := hookedRig(t, chattest.EchoBot(), nil)
	r.ad().FailNext(transient(1000)...)
	r.say(dm("stored, not posted"))
	bridgetest.WaitFor(t, "the reply to be stored and tried", func() bool {
		ds, _ := r.db.PendingDeliveries(t.Context(), 0)
		return len(ds) == 1 && r.ad().Sends() > 0
	})
	r.stop()
	r.adapters[0] = bridgetest.NewAdapter(bridge.PlatformSlack) // the platform works again
	r.start()
	hs.serve(r.eng)
	ps := r.waitPosts(1)
	r.waitIdle()
	if got := texts(r.ad().Posts()); len(got) != 1 || got[0] != "stored, not posted" {
		t.Errorf("posts %q (first %q), want the reply once", got, bridgetest.Text(ps[0].Payload()))
	}
}

// echoFirst is a transport that answers the bridge's createMessage only
// once the bridge has answered the service's webhook of that message: the
// order in which a fast webhook and a slow answer arrive.
type echoFirst struct {
	mu     sync.Mutex
	hooked map[chat.MessageID]chan struct{} // closed once the webhook was answered
	held   atomic.Int32                     // answers held until their webhook came
}

// came returns the channel closed once the webhook of msg was answered.
func (e *echoFirst) came(msg chat.MessageID) chan struct{} {
	e.mu.Lock()
	defer e.mu.Unlock()
	c, ok := e.hooked[msg]
	if !ok {
		c = make(chan struct{})
		e.hooked[msg] = c
	}
	return c
}

// serve hands a webhook to h, then marks its message as come.
func (e *echoFirst) serve(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		req.Body = io.NopCloser(bytes.NewReader(body))
		h.ServeHTTP(w, req)
		var s struct {
			Type string `json:"type"`
			Data struct {
				ID chat.MessageID `json:"id"`
			} `json:"data"`
		}
		if json.Unmarshal(body, &s) == nil && s.Type == "message_created" {
			close(e.came(s.Data.ID))
		}
	})
}

func (e *echoFirst) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil || req.Method != http.MethodPost || !strings.HasSuffix(req.URL.Path, "/messages") || resp.StatusCode/100 != 2 {
		return resp, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	var created struct {
		Message struct {
			ID chat.MessageID `json:"id"`
		} `json:"message"`
	}
	if err := json.Unmarshal(body, &created); err != nil {
		return nil, err
	}
	select {
	case <-e.came(created.Message.ID):
		e.held.Add(1)
	case <-time.After(10 * time.Second):
	}
	return resp, nil
}

func TestAWebhookEchoArrivingBeforeTheSendsAnswerKeepsWebhooksHealthy(t *testing.T) {
	const timeout = 200 * time.Millisecond
	r := newRig(t, chattest.EchoBot())
	order := &echoFirst{hooked: make(map[chat.MessageID]chan struct{})}
	client, err := chat.NewClient(r.em.URL(), chat.WithHTTPClient(&http.Client{Transport: order}))
	if err != nil {
		t.Fatal(err)
	}
	_, hs := startHooked(t, r, func(cfg *bridge.Config) {
		cfg.WebhookTimeout = timeout
		cfg.Bots[0].API = client
	})
	h := order.serve(r.eng.WebhookHandler())
	hs.h.Store(&h)

	r.say(dm("hello"))
	r.waitPosts(1)
	// The echo came before the answer; had it been missed, the watcher
	// would count the bot's webhooks as down within a few ticks of the
	// timeout, and the next conversation's message would get a stream.
	time.Sleep(3 * timeout)
	in := dm("a second person")
	in.Sender.ID, in.Room.Room = "U2", "D2"
	r.say(in)
	r.waitPosts(2)
	if n := order.held.Load(); n != 2 {
		t.Fatalf("%d answers came after their webhook, want 2: the test did not make the order it tests", n)
	}
	if n := r.em.OpenStreams(); n != 0 {
		t.Errorf("%d streams open: an echo that came before the send's answer counted as missing, webhooks as down", n)
	}
}
