package bridge_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/botbridge/botbridge/bridge"
	"github.com/botbridge/botbridge/bridge/bridgetest"
	"github.com/botbridge/botbridge/bridge/media"
	"github.com/botbridge/botbridge/chat"
	"github.com/botbridge/botbridge/chat/chattest"
)

func TestResetWordStartsANewConversation(t *testing.T) {
	r := newRig(t, chattest.EchoBot())
	r.start()
	r.say(dm("first conversation"))
	r.waitPosts(1)
	r.say(dm("!reset"))
	ps := r.waitPosts(2)
	if got := bridgetest.Text(ps[1].Payload()); !strings.Contains(got, "new conversation") {
		t.Errorf("reset answered %q, want a notice", got)
	}
	r.say(dm("second conversation"))
	r.waitPosts(3)
	r.waitIdle()
	convs := r.conversations()
	if len(convs) != 2 {
		t.Fatalf("%d conversations, want 2 after the reset", len(convs))
	}
	var got [][]string
	for _, c := range convs {
		got = append(got, r.userMessages(c))
	}
	for _, msgs := range got {
		if len(msgs) != 1 {
			t.Errorf("a conversation got %q; each should have one message and !reset none", msgs)
		}
	}
}

func TestRoomScopeSharesOneConversationWithEveryone(t *testing.T) {
	r := newRig(t, chattest.EchoBot(), bridgetest.NewAdapter(bridge.PlatformMatrix))
	r.routes = []bridge.Route{{Bot: "bot", Answer: bridge.AnswerAll}}
	r.start()
	room := bridge.RoomKey{Platform: bridge.PlatformMatrix, Room: "!room:example.org"}
	alice := msg(room, "hello from alice")
	bob := msg(room, "hello from bob")
	bob.Sender = bridge.Sender{ID: "@bob:example.org", Name: "Bob"}
	r.say(alice)
	r.waitPosts(1)
	r.say(bob)
	r.waitPosts(2)
	r.waitIdle()
	convs := r.conversations()
	if len(convs) != 1 {
		t.Fatalf("%d conversations, want the room's one", len(convs))
	}
	for _, c := range convs {
		key, _ := r.signer.Key("botbridge")
		var ids []string
		for u, err := range r.client.ListParticipants(t.Context(), key, c) {
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, string(u.ID))
		}
		if len(ids) != 3 { // the bridge's service user, alice, bob
			t.Errorf("participants %q, want the service user and both speakers", ids)
		}
		if got := r.userMessages(c); len(got) != 2 {
			t.Errorf("Botpress got %q", got)
		}
	}
}

func TestUserScopeGivesEachPersonTheirOwnConversation(t *testing.T) {
	r := newRig(t, chattest.EchoBot())
	r.routes = []bridge.Route{{Bot: "bot", Answer: bridge.AnswerAll, Scope: bridge.ScopeUser}}
	r.start()
	room := bridge.RoomKey{Platform: bridge.PlatformSlack, Room: "C1"}
	a := msg(room, "from alice")
	b := msg(room, "from bob")
	b.Sender = bridge.Sender{ID: "U_BOB", Name: "Bob"}
	r.say(a)
	r.say(b)
	ps := r.waitPosts(2)
	r.waitIdle()
	if n := len(r.conversations()); n != 2 {
		t.Errorf("%d conversations, want one per person", n)
	}
	for _, p := range ps {
		if p.Out.Room.Thread != "" {
			t.Errorf("user scope reply went to thread %q", p.Out.Room.Thread)
		}
	}
}

func TestTwoBotsRoutedByRoom(t *testing.T) {
	sales, err := chattest.New(chattest.Options{EncryptionKey: bridgetest.EncryptionKey, Bot: chattest.BotFunc(func(ctx context.Context, rp chattest.Replier, m chat.Message) {
		rp.Reply(ctx, chat.Text{Text: "sales: " + bridgetest.Text(m.Payload)})
	})})
	if err != nil {
		t.Fatal(err)
	}
	if err := sales.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer sales.Close()
	salesClient, err := chat.NewClient(sales.URL())
	if err != nil {
		t.Fatal(err)
	}

	r := newRig(t, chattest.EchoBot())
	r.routes = []bridge.Route{
		{Bot: "sales", Rooms: []string{"#sales-*"}},
		{Bot: "bot"},
	}
	r.tweak = func(cfg *bridge.Config) {
		cfg.Bots = append(cfg.Bots, bridge.BotSpec{Name: "sales", API: salesClient, Signer: r.signer})
	}
	r.start()
	s := msg(bridge.RoomKey{Platform: bridge.PlatformSlack, Room: "C_SALES"}, "price?")
	s.RoomName, s.Mentioned = "#sales-eu", true
	o := msg(bridge.RoomKey{Platform: bridge.PlatformSlack, Room: "C_OTHER"}, "help?")
	o.RoomName, o.Mentioned = "#general", true
	r.say(s)
	r.say(o)
	ps := r.waitPosts(2)
	got := map[string]string{}
	for _, p := range ps {
		got[p.Out.Room.Room] = bridgetest.Text(p.Payload())
	}
	if got["C_SALES"] != "sales: price?" || got["C_OTHER"] != "help?" {
		t.Errorf("replies by room = %q; want the sales bot in #sales-eu and the echo bot elsewhere", got)
	}
}

func TestAllowlistsKeepOthersOut(t *testing.T) {
	r := newRig(t, chattest.EchoBot())
	r.routes = []bridge.Route{{Bot: "bot", Rooms: []string{"D1"}, Users: []string{"U_ALICE"}}}
	r.start()
	other := dm("from a stranger")
	other.Sender = bridge.Sender{ID: "U_MALLORY"}
	elsewhere := dm("in another room")
	elsewhere.Room.Room = "D2"
	r.say(other)
	r.say(elsewhere)
	r.say(dm("from alice"))
	ps := r.waitPosts(1)
	r.waitIdle()
	if len(r.ad().Posts()) != 1 || bridgetest.Text(ps[0].Payload()) != "from alice" {
		t.Errorf("posts = %q, want only alice's echo", texts(r.ad().Posts()))
	}
}

func TestVanishedConversationIsRecreated(t *testing.T) {
	r := newRig(t, chattest.EchoBot())
	r.start()
	r.say(dm("before"))
	r.waitPosts(1)
	r.waitIdle()
	var old chat.ConversationID
	for _, c := range r.conversations() {
		old = c
	}
	// An admin deletes the conversation on the Botpress side.
	key, _ := r.signer.Key("botbridge")
	if err := r.client.DeleteConversation(t.Context(), key, old); err != nil {
		t.Fatal(err)
	}
	r.say(dm("after"))
	ps := r.waitPosts(2)
	if got := bridgetest.Text(ps[1].Payload()); got != "after" {
		t.Errorf("reply after the deletion = %q", got)
	}
	r.waitIdle()
	for _, c := range r.conversations() {
		if got := r.userMessages(c); len(got) != 1 || got[0] != "after" {
			t.Errorf("the new conversation has %q", got)
		}
	}
}

func TestUnknownPayloadTypesArePostedAsText(t *testing.T) {
	r := newRig(t, chattest.BotFunc(func(ctx context.Context, rp chattest.Replier, m chat.Message) {
		rp.Reply(ctx, chat.RawPayload{Type: "poll", JSON: json.RawMessage(`{"type":"poll","text":"Vote now","options":["a","b"]}`)})
		rp.Reply(ctx, chat.RawPayload{Type: "widget", JSON: json.RawMessage(`{"type":"widget","size":3}`)})
	}))
	r.start()
	r.say(dm("show me"))
	ps := r.waitPosts(2)
	if got := bridgetest.Text(ps[0].Payload()); got != "Vote now" {
		t.Errorf("unknown payload with text posted as %q", got)
	}
	if got := bridgetest.Text(ps[1].Payload()); !strings.Contains(got, "widget") {
		t.Errorf("unknown payload without text posted as %q", got)
	}
}

func TestOversizedTextReachesTheBotInParts(t *testing.T) {
	r := newRig(t, chattest.EchoBot())
	r.start()
	var b strings.Builder
	for b.Len() < 100_000 {
		b.WriteString("A paragraph of a very long message.\n\n")
	}
	b.WriteString("LAST")
	r.say(dm(b.String()))
	r.waitIdle()
	for _, c := range r.conversations() {
		got := r.userMessages(c)
		if len(got) < 4 {
			t.Errorf("a 100 KB text became %d messages; each must stay under 32 KB", len(got))
		}
		joined := strings.Join(got, "\n\n")
		if strings.Count(joined, "A paragraph") != strings.Count(b.String(), "A paragraph") || !strings.HasSuffix(joined, "LAST") {
			t.Error("text lost in the split")
		}
	}
}

func TestStreamedReplyGrowsAsOneMessage(t *testing.T) {
	release := make(chan struct{})
	r := newRig(t, chattest.BotFunc(func(ctx context.Context, rp chattest.Replier, m chat.Message) {
		<-release
		rp.Stream(ctx, []string{"Once ", "upon ", "a ", "time."}, chat.Markdown{Markdown: "Once upon a *time*."})
	}))
	r.start()
	r.say(dm("tell me a story"))
	close(release)
	ps, err := r.ad().WaitFor(t.Context(), func(ps []bridgetest.Post) bool {
		return len(ps) > 0 && bridgetest.Text(ps[0].Payload()) == "Once upon a *time*."
	})
	if err != nil {
		t.Fatalf("%v: posts %q", err, texts(ps))
	}
	r.waitIdle()
	ps = r.ad().Posts()
	if len(ps) != 1 {
		t.Fatalf("a streamed reply became %d posts: %q", len(ps), texts(ps))
	}
	if !strings.HasPrefix(bridgetest.Text(ps[0].Out.Payload), "Once") {
		t.Errorf("the stream started with %q", bridgetest.Text(ps[0].Out.Payload))
	}
	if _, ok := ps[0].Payload().(chat.Markdown); !ok {
		t.Errorf("final edit is %T, want the final markdown message", ps[0].Payload())
	}
}

func TestTypingShowsUntilTheReply(t *testing.T) {
	release := make(chan struct{})
	r := newRig(t, chattest.BotFunc(func(ctx context.Context, rp chattest.Replier, m chat.Message) {
		<-release
		rp.Reply(ctx, chat.Text{Text: "done thinking"})
	}))
	r.start()
	in := dm("think about it")
	r.say(in)
	bridgetest.WaitFor(t, "the typing indicator", func() bool { return len(r.ad().TypingCalls()) == 1 })
	close(release)
	r.waitPosts(1)
	bridgetest.WaitFor(t, "the indicator to go off", func() bool { return len(r.ad().TypingCalls()) == 2 })
	calls := r.ad().TypingCalls()
	if !calls[0].On || calls[1].On || calls[0].Target.MessageID != in.MessageID {
		t.Errorf("typing calls = %+v", calls)
	}
}

func TestFilesReachTheBotAsLinksItCanFetch(t *testing.T) {
	got := make(chan chat.Payload, 4)
	r := newRig(t, chattest.BotFunc(func(ctx context.Context, rp chattest.Replier, m chat.Message) {
		got <- m.Payload
	}))
	var links *media.Links
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) { links.ServeHTTP(w, req) }))
	defer srv.Close()
	links, err := media.NewLinks(media.LinksConfig{BaseURL: srv.URL, Secret: []byte(strings.Repeat("k", 32)),
		Openers: map[bridge.Platform]bridge.FileOpener{bridge.PlatformSlack: r.ad()}})
	if err != nil {
		t.Fatal(err)
	}
	r.ad().AddFile("F1", []byte("picture bytes"))
	r.tweak = func(cfg *bridge.Config) { cfg.Files = links }
	r.start()
	in := dm("")
	in.Files = []bridge.File{{Name: "cat.png", MIMEType: "image/png", Ref: "F1"}}
	r.say(in)
	var p chat.Payload
	select {
	case p = <-got:
	case <-time.After(20 * time.Second):
		t.Fatal("the bot got nothing")
	}
	img, ok := p.(chat.Image)
	if !ok {
		t.Fatalf("the bot got %T, want an image", p)
	}
	resp, err := http.Get(img.ImageURL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != "picture bytes" {
		t.Errorf("fetching the link: %s %q", resp.Status, body)
	}
	tampered := strings.Replace(img.ImageURL, "/files/", "/files/x", 1)
	if resp, err := http.Get(tampered); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("a tampered link answered %s", resp.Status)
		}
	}
}

func TestCreateUserModeKeepsTheKeysItWasGiven(t *testing.T) {
	em, err := chattest.New(chattest.Options{Bot: chattest.EchoBot()}) // no encryption key: createUser mode
	if err != nil {
		t.Fatal(err)
	}
	if err := em.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer em.Close()
	client, err := chat.NewClient(em.URL())
	if err != nil {
		t.Fatal(err)
	}
	r := newRig(t, nil)
	r.em = em
	r.tweak = func(cfg *bridge.Config) { cfg.Bots = []bridge.BotSpec{{Name: "bot", API: client}} }
	r.start()
	r.say(dm("hello"))
	r.waitPosts(1)
	r.stop()
	before := em.Requests()
	r.start()
	r.say(dm("again"))
	r.waitPosts(2)
	r.waitIdle()
	u, err := r.db.User(t.Context(), "bot", bridge.PlatformSlack, "U_ALICE")
	if err != nil {
		t.Fatal(err)
	}
	if u.Key == "" {
		t.Error("createUser mode kept no key for the user")
	}
	// After the restart: listMessages (catch-up), createMessage and the
	// stream; no createUser of the same person again.
	if n := em.Requests() - before; n > 6 {
		t.Errorf("%d requests after the restart; users were created again?", n)
	}
	for _, c := range r.conversations() {
		if got := r.userMessages(c); len(got) != 2 {
			t.Errorf("Botpress got %q in one conversation", got)
		}
	}
}

func TestIdleStreamsCloseAndReopenWithCatchUp(t *testing.T) {
	r := newRig(t, chattest.EchoBot())
	r.tweak = func(cfg *bridge.Config) { cfg.ListenerIdle = 200 * time.Millisecond }
	r.start()
	r.say(dm("wake up"))
	r.waitPosts(1)
	bridgetest.WaitFor(t, "the idle stream to close", func() bool { return r.em.OpenStreams() == 0 })
	// A message the bot sends while nobody listens arrives with the next
	// inbound message's catch-up.
	for _, c := range r.conversations() {
		if _, err := r.em.PushBotMessage(t.Context(), c, chat.Text{Text: "while you were away"}); err != nil {
			t.Fatal(err)
		}
	}
	r.say(dm("back"))
	ps := r.waitPosts(3)
	if got := texts(ps); got[1] != "while you were away" || got[2] != "back" {
		t.Errorf("posts = %q", got)
	}
}

func TestTypingGoesOffOnEveryMessageTheReplyAnswers(t *testing.T) {
	release := make(chan struct{})
	r := newRig(t, chattest.BotFunc(func(ctx context.Context, rp chattest.Replier, m chat.Message) {
		<-release
		rp.Reply(ctx, chat.Text{Text: "answer to " + bridgetest.Text(m.Payload)})
	}))
	r.start()
	first, second := dm("first"), dm("second")
	r.say(first)
	r.say(second)
	bridgetest.WaitFor(t, "both indicators", func() bool { return len(r.ad().TypingCalls()) == 2 })
	close(release)
	r.waitPosts(2)
	r.waitIdle()
	on, off := map[string]int{}, map[string]int{}
	for _, c := range r.ad().TypingCalls() {
		if c.On {
			on[c.Target.MessageID]++
		} else {
			off[c.Target.MessageID]++
		}
	}
	for _, in := range []bridge.Inbound{first, second} {
		if on[in.MessageID] != 1 || off[in.MessageID] != 1 {
			t.Errorf("message %s: indicator on %d times, off %d times; want once each", in.MessageID, on[in.MessageID], off[in.MessageID])
		}
	}
}

func TestRecoveryFromAnOutageDoesNotWaitOutTheBackoff(t *testing.T) {
	r := newRig(t, chattest.EchoBot())
	r.tweak = func(cfg *bridge.Config) {
		cfg.RetryMin, cfg.RetryMax = time.Hour, time.Hour // only a wake-up can retry in time
		cfg.ProbeInterval = 20 * time.Millisecond
	}
	r.start()
	r.say(dm("warm up"))
	r.waitPosts(1)
	r.em.FailRequests(http.StatusServiceUnavailable, 0, time.Now().Add(time.Hour))
	r.em.CutStreams() // the stream is down too, and waits an hour to reconnect
	r.say(dm("during the outage"))
	bridgetest.WaitFor(t, "a failed send", func() bool {
		s, _ := r.db.PendingInbound(t.Context(), 0)
		return len(s) == 1 && r.em.Requests() > 0
	})
	before := r.em.Requests()
	bridgetest.WaitFor(t, "a probe", func() bool { return r.em.Requests() > before+2 })
	r.em.FailRequests(0, 0, time.Time{})
	ps := r.waitPosts(2)
	if got := bridgetest.Text(ps[1].Payload()); got != "during the outage" {
		t.Errorf("reply = %q", got)
	}
}
