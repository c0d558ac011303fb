package bridge_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/botbridge/botbridge/bridge"
	"github.com/botbridge/botbridge/bridge/bridgetest"
	"github.com/botbridge/botbridge/chat"
	"github.com/botbridge/botbridge/chat/chattest"
	"github.com/botbridge/botbridge/store"
)

// rig is a bridge on a real SQLite file, talking over HTTP to the Chat API
// emulator, with an in-memory adapter per platform.
type rig struct {
	t        testing.TB
	em       *chattest.Server
	client   *chat.Client
	signer   *chat.Signer
	path     string
	adapters []*bridgetest.Adapter
	routes   []bridge.Route
	tweak    func(*bridge.Config)
	wrap     func(bridge.Store) bridge.Store
	// textChoices makes the adapters answer choices by text
	// (bridge.TextChoices).
	textChoices bool

	db     *store.DB
	eng    *bridge.Engine
	cancel context.CancelFunc
	done   chan error
}

func newRig(t testing.TB, bot chattest.Bot, adapters ...*bridgetest.Adapter) *rig {
	t.Helper()
	bp := bridgetest.StartBotpress(t, bot)
	em, client, signer := bp.Server, bp.Client, bp.Signer
	if len(adapters) == 0 {
		adapters = []*bridgetest.Adapter{bridgetest.NewAdapter(bridge.PlatformSlack)}
	}
	r := &rig{t: t, em: em, client: client, signer: signer, path: filepath.Join(t.TempDir(), "bridge.db"),
		adapters: adapters, routes: []bridge.Route{{Bot: "bot"}}}
	t.Cleanup(r.stop)
	return r
}

func (r *rig) ad() *bridgetest.Adapter { return r.adapters[0] }

// start runs an engine on the rig's store file.
func (r *rig) start() {
	r.t.Helper()
	db, err := store.Open(r.t.Context(), r.path)
	if err != nil {
		r.t.Fatal(err)
	}
	var st bridge.Store = db
	if r.wrap != nil {
		st = r.wrap(db)
	}
	var adapters []bridge.Adapter
	for _, a := range r.adapters {
		if r.textChoices {
			adapters = append(adapters, bridgetest.TextAdapter{Adapter: a})
		} else {
			adapters = append(adapters, a)
		}
	}
	cfg := bridge.Config{
		Store:          st,
		Bots:           []bridge.BotSpec{{Name: "bot", API: r.client, Signer: r.signer}},
		Adapters:       adapters,
		Logger:         testLogger(r.t),
		RetryMin:       5 * time.Millisecond,
		RetryMax:       100 * time.Millisecond,
		StreamThrottle: 5 * time.Millisecond,
		DrainTimeout:   2 * time.Second,
	}
	if r.tweak != nil {
		r.tweak(&cfg)
	}
	if cfg.Router == nil {
		cfg.Router = bridgetest.Router(r.t, r.routes, cfg.Bots...)
	}
	eng, err := bridge.New(cfg)
	if err != nil {
		r.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(r.t.Context()))
	r.db, r.eng, r.cancel, r.done = db, eng, cancel, make(chan error, 1)
	go func() { r.done <- eng.Run(ctx) }()
}

// stop stops the engine and closes its store, as a shutdown would.
func (r *rig) stop() {
	if r.eng == nil {
		return
	}
	r.cancel()
	select {
	case err := <-r.done:
		if err != nil {
			r.t.Errorf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		r.t.Error("Run did not return within 10s of being stopped")
	}
	r.db.Close()
	r.eng = nil
}

var seq atomic.Int64

// msg builds an inbound message from alice in room.
func msg(room bridge.RoomKey, text string) bridge.Inbound {
	n := seq.Add(1)
	return bridge.Inbound{
		Key:       bridge.EventKey(fmt.Sprintf("ev-%d", n)),
		Room:      room,
		MessageID: fmt.Sprintf("%d.000", n),
		Sender:    bridge.Sender{ID: "U_ALICE", Name: "Alice"},
		Text:      text,
		Time:      time.Now(),
	}
}

func dm(text string) bridge.Inbound {
	in := msg(bridge.RoomKey{Platform: bridge.PlatformSlack, Room: "D1"}, text)
	in.DM = true
	return in
}

func (r *rig) say(in bridge.Inbound) {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(r.t.Context(), 10*time.Second)
	defer cancel()
	if err := r.ad().Say(ctx, in); err != nil {
		r.t.Fatalf("say %q: %v", in.Text, err)
	}
}

func (r *rig) waitPosts(n int) []bridgetest.Post {
	r.t.Helper()
	return waitPosts(r.t, r.ad(), n)
}

func waitPosts(t testing.TB, a *bridgetest.Adapter, n int) []bridgetest.Post {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	ps, err := a.WaitPosts(ctx, n)
	if err != nil {
		t.Fatalf("%v; posts: %s", err, texts(ps))
	}
	return ps
}

// waitIdle waits until the engine has nothing left to do.
func (r *rig) waitIdle() {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(r.t.Context(), 20*time.Second)
	defer cancel()
	if err := r.eng.WaitIdle(ctx, 100*time.Millisecond); err != nil {
		r.t.Fatalf("engine never idle: %v", err)
	}
}

// conversations returns the Botpress conversation of every bridge
// conversation, by id of the bridge's record.
func (r *rig) conversations() map[int64]chat.ConversationID {
	r.t.Helper()
	cs, err := r.db.ActiveConversations(r.t.Context(), time.Time{})
	if err != nil {
		r.t.Fatal(err)
	}
	out := map[int64]chat.ConversationID{}
	for _, c := range cs {
		out[c.ID] = c.ChatID
	}
	return out
}

// userMessages counts the messages people sent in a Botpress conversation.
func (r *rig) userMessages(conv chat.ConversationID) []string {
	var out []string
	for _, m := range r.em.Messages(conv) {
		if m.UserID != r.em.BotUserID() {
			out = append(out, bridgetest.Text(m.Payload))
		}
	}
	return out
}

func texts(ps []bridgetest.Post) []string {
	var out []string
	for _, p := range ps {
		out = append(out, bridgetest.Text(p.Payload()))
	}
	return out
}

// testLogger sends the logs to the test's log.
func testLogger(t testing.TB) *slog.Logger { return bridgetest.Logger(t) }

func TestReplyGoesBackToTheRoomAndThread(t *testing.T) {
	r := newRig(t, chattest.EchoBot())
	r.start()
	room := bridge.RoomKey{Platform: bridge.PlatformSlack, Room: "C1"}

	top := msg(room, "hello bot")
	top.Mentioned = true
	r.say(top)
	ps := r.waitPosts(1)
	want := bridge.RoomKey{Platform: bridge.PlatformSlack, Room: "C1", Thread: top.MessageID}
	if ps[0].Out.Room != want {
		t.Errorf("reply posted to %v, want the thread under the mention %v", ps[0].Out.Room, want)
	}
	if got := bridgetest.Text(ps[0].Payload()); got != "hello bot" {
		t.Errorf("reply = %q, want the echo", got)
	}
	if ps[0].Out.ReplyTo != top.MessageID || ps[0].Out.ReplyToUser != "U_ALICE" {
		t.Errorf("reply answers %q of %q", ps[0].Out.ReplyTo, ps[0].Out.ReplyToUser)
	}

	t.Run("a follow-up in the thread is answered without a mention", func(t *testing.T) {
		in := msg(want, "and then?")
		r.say(in)
		ps := r.waitPosts(2)
		if ps[1].Out.Room != want || bridgetest.Text(ps[1].Payload()) != "and then?" {
			t.Errorf("follow-up answered as %q in %v", bridgetest.Text(ps[1].Payload()), ps[1].Out.Room)
		}
		if n := len(r.conversations()); n != 1 {
			t.Errorf("%d conversations, want the thread's one", n)
		}
	})

	t.Run("the channel without a mention is ignored", func(t *testing.T) {
		r.say(msg(room, "just chatting"))
		other := msg(bridge.RoomKey{Platform: bridge.PlatformSlack, Room: "C1", Thread: "99.000"}, "other thread")
		r.say(other)
		r.waitIdle()
		if n := len(r.ad().Posts()); n != 2 {
			t.Errorf("%d posts, want 2: unmentioned messages were answered: %q", n, texts(r.ad().Posts()))
		}
	})
}

func TestDMIsAnsweredWithoutMention(t *testing.T) {
	r := newRig(t, chattest.EchoBot())
	r.start()
	r.say(dm("hi in private"))
	ps := r.waitPosts(1)
	if ps[0].Out.Room.Room != "D1" || ps[0].Out.Room.Thread != "" {
		t.Errorf("DM answered in %v", ps[0].Out.Room)
	}
}

func TestRedeliveredEventIsSentOnce(t *testing.T) {
	r := newRig(t, chattest.EchoBot())
	r.start()
	in := dm("only once")
	r.say(in)
	r.say(in)
	r.waitPosts(1)
	r.waitIdle()
	r.say(in) // after it was sent, too
	r.waitIdle()
	if n := len(r.ad().Posts()); n != 1 {
		t.Errorf("%d replies, want 1", n)
	}
	for _, c := range r.conversations() {
		if got := r.userMessages(c); len(got) != 1 {
			t.Errorf("Botpress got %q, want the message once", got)
		}
	}
}

func TestRestartResumesTheConversation(t *testing.T) {
	r := newRig(t, chattest.EchoBot())
	r.start()
	r.say(dm("before restart"))
	r.waitPosts(1)
	before := r.conversations()
	r.stop()

	r.start()
	r.say(dm("after restart"))
	ps := r.waitPosts(2)
	if got := bridgetest.Text(ps[1].Payload()); got != "after restart" {
		t.Errorf("second reply = %q", got)
	}
	after := r.conversations()
	if len(after) != 1 || len(before) != 1 {
		t.Fatalf("conversations before %v, after %v; want the same one", before, after)
	}
	for id, c := range after {
		if before[id] != c {
			t.Errorf("conversation %d mapped to %s after restart, %s before", id, c, before[id])
		}
		if got := r.userMessages(c); len(got) != 2 {
			t.Errorf("Botpress got %q", got)
		}
	}
}

// faultStore crashes at a chosen store call: the call fails and stops the
// engine, and every write after it fails too, as if the process had died
// there.
type faultStore struct {
	bridge.Store
	failSent, failDelivered atomic.Bool
	// failClaimed crashes right after a mark that claimed the next reply;
	// failStoredClaimed right after a reply was stored and claimed.
	failClaimed, failStoredClaimed atomic.Bool
	crash                          func()
	dead                           atomic.Bool
}

var errCrash = errors.New("simulated crash")

func (f *faultStore) at(point *atomic.Bool) error {
	if point.CompareAndSwap(true, false) {
		f.dead.Store(true)
		f.crash()
	}
	if f.dead.Load() {
		return errCrash
	}
	return nil
}

func (f *faultStore) MarkInboundSent(ctx context.Context, id int64, parts int, msg chat.MessageID, done bool, reply bridge.ReplyTarget) error {
	if err := f.at(&f.failSent); err != nil {
		return err
	}
	return f.Store.MarkInboundSent(ctx, id, parts, msg, done, reply)
}

func (f *faultStore) MarkDelivered(ctx context.Context, id chat.MessageID, platformID bridge.Parts) error {
	if err := f.at(&f.failDelivered); err != nil {
		return err
	}
	return f.Store.MarkDelivered(ctx, id, platformID)
}

func (f *faultStore) MarkDeliveredAndClaim(ctx context.Context, id chat.MessageID, platformID bridge.Parts, next chat.MessageID) (bridge.Claim, bool, error) {
	if err := f.at(&f.failDelivered); err != nil {
		return bridge.Claim{}, false, err
	}
	c, claimed, err := f.Store.MarkDeliveredAndClaim(ctx, id, platformID, next)
	if err == nil && claimed {
		if err := f.at(&f.failClaimed); err != nil {
			return bridge.Claim{}, false, err
		}
	}
	return c, claimed, err
}

func (f *faultStore) AddDelivery(ctx context.Context, d bridge.Delivery) (bridge.Delivery, bool, error) {
	if f.dead.Load() {
		return d, false, errCrash
	}
	stored, created, err := f.Store.AddDelivery(ctx, d)
	if err == nil && stored.Claimed {
		if err := f.at(&f.failStoredClaimed); err != nil {
			return d, false, err
		}
	}
	return stored, created, err
}

func (f *faultStore) FailDelivery(ctx context.Context, id chat.MessageID, reason string) error {
	if f.dead.Load() {
		return errCrash
	}
	return f.Store.FailDelivery(ctx, id, reason)
}

func (f *faultStore) FailInbound(ctx context.Context, id int64, reason string) error {
	if f.dead.Load() {
		return errCrash
	}
	return f.Store.FailInbound(ctx, id, reason)
}

// crashAt has the rig's stores, from its next start, crash at point (one
// of faultStore's fail fields), and returns a check that the crash came.
func (r *rig) crashAt(point func(*faultStore) *atomic.Bool) (crashed func() bool) {
	var f *faultStore
	r.wrap = func(s bridge.Store) bridge.Store {
		f = &faultStore{Store: s, crash: func() { r.cancel() }}
		point(f).Store(true)
		return f
	}
	return func() bool { return f != nil && !point(f).Load() }
}

// transient returns n transient errors, for an adapter's FailNext.
func transient(n int) []error {
	errs := make([]error, n)
	for i := range errs {
		errs[i] = bridgetest.ErrTransient
	}
	return errs
}

func TestCrashAtEachStepLosesNothingAndSendsNothingTwice(t *testing.T) {
	t.Run("after the inbound was stored", func(t *testing.T) {
		r := newRig(t, chattest.EchoBot())
		r.em.FailRequests(http.StatusServiceUnavailable, 0, time.Now().Add(time.Hour))
		r.start()
		r.say(dm("stored, not sent"))
		bridgetest.WaitFor(t, "a failed attempt to reach Botpress", func() bool { return r.em.Requests() > 0 })
		r.stop()
		r.em.FailRequests(0, 0, time.Time{})
		r.start()
		ps := r.waitPosts(1)
		r.waitIdle()
		r.checkOnce(t, ps, "stored, not sent")
	})

	t.Run("after Botpress got it, before the store knew", func(t *testing.T) {
		// The bot answers only after the crash: an answer posted before it
		// would be the window of the posted-but-not-recorded cases below,
		// not this one.
		stopped := make(chan struct{})
		r := newRig(t, chattest.BotFunc(func(ctx context.Context, rp chattest.Replier, m chat.Message) {
			select {
			case <-stopped:
			case <-ctx.Done():
				return
			}
			rp.Reply(ctx, m.Payload)
		}))
		crashed := r.crashAt(func(f *faultStore) *atomic.Bool { return &f.failSent })
		r.start()
		r.say(dm("sent, not recorded"))
		bridgetest.WaitFor(t, "the crash", crashed)
		r.stop()
		close(stopped)
		r.wrap = nil
		r.start()
		ps := r.waitPosts(1)
		r.waitIdle()
		r.checkOnce(t, ps, "sent, not recorded")
	})

	t.Run("after the reply was received, before it was posted", func(t *testing.T) {
		r := newRig(t, chattest.EchoBot())
		r.ad().FailNext(transient(1000)...)
		r.start()
		r.say(dm("received, not posted"))
		bridgetest.WaitFor(t, "the reply to be stored", func() bool {
			ds, _ := r.db.PendingDeliveries(t.Context(), 0)
			return len(ds) == 1 && r.ad().Sends() > 0
		})
		r.stop()
		r.adapters[0] = bridgetest.NewAdapter(bridge.PlatformSlack) // the platform works again
		r.start()
		ps := r.waitPosts(1)
		r.waitIdle()
		r.checkOnce(t, ps, "received, not posted")
	})

	t.Run("after it was posted, the store not knowing: posted twice without a Recoverer", func(t *testing.T) {
		// The window no store can close: the platform accepted the post and the
		// process died before recording it. Adapters whose sends are
		// idempotent or that can look the post up (Recoverer) close it;
		// others post the reply again.
		r := newRig(t, chattest.EchoBot())
		crashed := r.crashAt(func(f *faultStore) *atomic.Bool { return &f.failDelivered })
		r.start()
		r.say(dm("posted, not recorded"))
		r.waitPosts(1)
		bridgetest.WaitFor(t, "the crash", crashed)
		r.stop()
		r.wrap = nil
		r.start()
		ps := r.waitPosts(2)
		r.waitIdle()
		if got := texts(ps); len(got) != 2 || got[0] != got[1] {
			t.Errorf("posts = %q, want the reply twice (the documented window)", got)
		}
	})

	t.Run("after it was posted, the store not knowing: posted once with a Recoverer", func(t *testing.T) {
		r := newRig(t, chattest.EchoBot())
		r.ad().Recover = true
		crashed := r.crashAt(func(f *faultStore) *atomic.Bool { return &f.failDelivered })
		r.start()
		r.say(dm("posted, not recorded"))
		r.waitPosts(1)
		bridgetest.WaitFor(t, "the crash", crashed)
		r.stop()
		r.wrap = nil
		r.start()
		r.waitIdle()
		r.checkOnce(t, r.ad().Posts(), "posted, not recorded")
	})

	t.Run("after the reply was stored and claimed, before it was posted", func(t *testing.T) {
		r := newRig(t, chattest.EchoBot())
		r.ad().Recover = true
		crashed := r.crashAt(func(f *faultStore) *atomic.Bool { return &f.failStoredClaimed })
		r.start()
		r.say(dm("stored and claimed, not posted"))
		bridgetest.WaitFor(t, "the crash", crashed)
		r.stop()
		r.wrap = nil
		r.start()
		ps := r.waitPosts(1)
		r.waitIdle()
		r.checkOnce(t, ps, "stored and claimed, not posted")
		if n := r.ad().Sends(); n != 1 {
			t.Errorf("%d sends, want 1", n)
		}
	})

	t.Run("after a reply was posted and the next claimed with its record, before that one was posted", func(t *testing.T) {
		want := []string{"one", "two", "three"}
		r := newRig(t, chattest.BotFunc(func(ctx context.Context, rp chattest.Replier, m chat.Message) {
			for _, text := range want {
				if _, err := rp.Reply(ctx, chat.Text{Text: text}); err != nil {
					return
				}
			}
		}))
		r.ad().Recover = true
		r.ad().FailNext(transient(1000)...) // until the three replies wait in the room
		crashed := r.crashAt(func(f *faultStore) *atomic.Bool { return &f.failClaimed })
		r.start()
		r.say(dm("three answers"))
		bridgetest.WaitFor(t, "the replies to be stored", func() bool {
			ds, _ := r.db.PendingDeliveries(t.Context(), 0)
			return len(ds) == len(want)
		})
		r.ad().ClearFailures()
		bridgetest.WaitFor(t, "the crash", crashed)
		r.stop()
		r.wrap = nil
		r.start()
		r.waitPosts(len(want))
		r.waitIdle()
		if got := texts(r.ad().Posts()); !slices.Equal(got, want) {
			t.Errorf("posts = %q, want %q, each once", got, want)
		}
	})
}

// checkOnce checks that Botpress got text once and the room got its echo
// once.
func (r *rig) checkOnce(t testing.TB, ps []bridgetest.Post, text string) {
	t.Helper()
	if got := texts(ps); len(got) != 1 || got[0] != text {
		t.Errorf("posts = %q, want %q once", got, text)
	}
	for _, c := range r.conversations() {
		if got := r.userMessages(c); len(got) != 1 {
			t.Errorf("Botpress got %q, want %q once", got, text)
		}
	}
}

func TestOutagesDeliverEverythingInOrderOnce(t *testing.T) {
	const n = 12
	sayAll := func(r *rig) []string {
		var want []string
		for i := range n {
			text := fmt.Sprintf("message %02d", i)
			want = append(want, text)
			r.say(dm(text))
		}
		return want
	}
	check := func(t *testing.T, r *rig, want []string) {
		t.Helper()
		ps := r.waitPosts(n)
		r.waitIdle()
		if got := texts(r.ad().Posts()); strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("posts = %q\nwant    %q", got, want)
		}
		for _, c := range r.conversations() {
			if got := r.userMessages(c); strings.Join(got, "|") != strings.Join(want, "|") {
				t.Errorf("Botpress got %q", got)
			}
		}
		_ = ps
	}

	t.Run("Botpress answers 503 for a while", func(t *testing.T) {
		r := newRig(t, chattest.EchoBot())
		r.start()
		r.say(dm("warm up"))
		r.waitPosts(1)
		r.em.FailRequests(http.StatusServiceUnavailable, 0, time.Now().Add(time.Hour))
		cut := r.em.CutStreams()
		if cut == 0 {
			t.Log("no stream was open when the outage began")
		}
		var want []string
		for i := range n {
			text := fmt.Sprintf("message %02d", i)
			want = append(want, text)
			r.say(dm(text))
		}
		bridgetest.WaitFor(t, "failed attempts", func() bool { return r.em.Requests() > 20 })
		r.em.FailRequests(0, 0, time.Time{})
		ps := r.waitPosts(n + 1)
		r.waitIdle()
		if got := texts(ps[1:]); strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("posts = %q\nwant    %q", got, want)
		}
	})

	t.Run("Botpress answers 429 with Retry-After", func(t *testing.T) {
		r := newRig(t, chattest.EchoBot())
		r.em.FailNext(3, http.StatusTooManyRequests, time.Second)
		r.start()
		check(t, r, sayAll(r))
	})

	t.Run("every stream is cut while the bot replies", func(t *testing.T) {
		r := newRig(t, chattest.EchoBot())
		r.start()
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() {
			tick := time.NewTicker(3 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
					r.em.CutStreams()
				}
			}
		})
		want := sayAll(r)
		r.waitPosts(n)
		close(stop)
		wg.Wait()
		check(t, r, want)
	})

	t.Run("the platform refuses posts for a while", func(t *testing.T) {
		r := newRig(t, chattest.EchoBot())
		r.ad().FailNext(transient(4)...)
		r.start()
		check(t, r, sayAll(r))
	})
}
