package chat_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/botbridge/botbridge/chat"
	"github.com/botbridge/botbridge/chat/chattest"
)

const emulatorKey = "emulator-encryption-key"

// startEmulator runs a chattest server on loopback for the test.
func startEmulator(t testing.TB, opts chattest.Options) *chattest.Server {
	t.Helper()
	srv, err := chattest.New(opts)
	if err != nil {
		t.Fatalf("chattest.New: %v", err)
	}
	t.Cleanup(func() { srv.Close() })
	if err := srv.Start("127.0.0.1:0"); err != nil {
		t.Fatalf("start emulator: %v", err)
	}
	return srv
}

// listening runs Listen in the background and reports what it sees.
type listening struct {
	connects chan struct{}
	signals  chan chat.Signal
	drops    chan error
	cancel   context.CancelFunc
	done     chan error
	result   error
	ended    bool
}

func listen(t *testing.T, c *chat.Client, key chat.UserKey, conv chat.ConversationID) *listening {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	l := &listening{
		connects: make(chan struct{}, 10), signals: make(chan chat.Signal, 100), drops: make(chan error, 10),
		cancel: cancel, done: make(chan error, 1),
	}
	go func() {
		l.done <- c.Listen(ctx, key, conv, chat.ListenHandler{
			OnConnect:    func(context.Context) { l.connects <- struct{}{} },
			OnSignal:     func(_ context.Context, s chat.Signal) { l.signals <- s },
			OnDisconnect: func(err error, _ time.Duration) { l.drops <- err },
		})
	}()
	t.Cleanup(func() { l.stop(t) })
	return l
}

// wait returns Listen's result once it ends by itself.
func (l *listening) wait(t *testing.T) error {
	t.Helper()
	if !l.ended {
		l.result, l.ended = recv(t, l.done, "Listen to return"), true
	}
	return l.result
}

// stop cancels Listen and returns its result.
func (l *listening) stop(t *testing.T) error {
	t.Helper()
	l.cancel()
	return l.wait(t)
}

// next returns the next signal of type T, failing on any other signal.
func next[T chat.Signal](t *testing.T, l *listening) T {
	t.Helper()
	s := recv(t, l.signals, fmt.Sprintf("a %T signal", *new(T)))
	v, ok := s.(T)
	if !ok {
		t.Fatalf("signal = %#v, want %T", s, *new(T))
	}
	return v
}

func mustErr(t *testing.T, err error, want error) {
	t.Helper()
	var e *chat.Error
	if !errors.Is(err, want) || !errors.As(err, &e) {
		t.Fatalf("error = %v, want an *Error matching %v", err, want)
	}
}

// result carries a call's two results so that must can check them inline:
// try(c.GetUser(ctx, key)).must(t).
type result[T any] struct {
	v   T
	err error
}

func try[T any](v T, err error) result[T] { return result[T]{v, err} }

func (r result[T]) must(t *testing.T) T {
	t.Helper()
	if r.err != nil {
		t.Fatal(r.err)
	}
	return r.v
}

// keyFor signs a user key with secret.
func keyFor(t testing.TB, secret string, id chat.UserID) chat.UserKey {
	t.Helper()
	s, err := chat.NewSigner(secret)
	if err != nil {
		t.Fatal(err)
	}
	k, err := s.Key(id)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func collect[T any](t *testing.T, seq func(func(T, error) bool)) []T {
	t.Helper()
	var out []T
	for v, err := range seq {
		if err != nil {
			t.Fatalf("iteration: %v", err)
		}
		out = append(out, v)
	}
	return out
}

// TestEmulatorSharedMode drives every operation with keys created by the
// server.
func TestEmulatorSharedMode(t *testing.T) {
	srv := startEmulator(t, chattest.Options{Bot: chattest.EchoBot()})
	c := newClient(t, srv.URL(), &waits{}, nil)
	ctx := t.Context()

	if err := c.Hello(ctx); err != nil {
		t.Fatalf("Hello: %v", err)
	}
	ann, annKey, err := c.CreateUser(ctx, chat.CreateUserRequest{ID: "ann", Name: "Ann", Profile: "likes tea"})
	if err != nil {
		t.Fatal(err)
	}
	if ann.ID != "ann" || ann.Name != "Ann" || annKey == "" {
		t.Fatalf("created user = %+v", ann)
	}
	_, _, err = c.CreateUser(ctx, chat.CreateUserRequest{ID: "ann"})
	mustErr(t, err, chat.ErrConflict)
	bob, bobKey, err := c.CreateUser(ctx, chat.CreateUserRequest{})
	if err != nil || bob.ID == "" {
		t.Fatalf("CreateUser with a generated id = %+v, %v", bob, err)
	}
	if got := try(c.GetOrCreateUser(ctx, bobKey, chat.UserProfile{Name: "Bob"})).must(t); got.ID != bob.ID || got.Name != "Bob" {
		t.Errorf("GetOrCreateUser with a server key = %+v, want %s named Bob", got, bob.ID)
	}
	exercise(t, srv, c, annKey, ann.ID, bobKey, bob.ID)
}

// TestEmulatorManualMode drives every operation with keys signed by the
// bridge.
func TestEmulatorManualMode(t *testing.T) {
	srv := startEmulator(t, chattest.Options{Bot: chattest.EchoBot(), EncryptionKey: emulatorKey})
	c := newClient(t, srv.URL(), &waits{}, nil)
	ctx := t.Context()
	annKey := keyFor(t, emulatorKey, "slack/T1/ann")
	bobKey := keyFor(t, emulatorKey, "slack/T1/bob")

	_, _, err := c.CreateUser(ctx, chat.CreateUserRequest{ID: "x"})
	mustErr(t, err, chat.ErrUnauthorized)
	forged := keyFor(t, "wrong-key", "slack/T1/ann")
	_, err = c.GetOrCreateUser(ctx, forged, chat.UserProfile{})
	mustErr(t, err, chat.ErrUnauthorized)

	ann, err := c.GetOrCreateUser(ctx, annKey, chat.UserProfile{Name: "Ann"})
	if err != nil || ann.ID != "slack/T1/ann" || ann.Name != "Ann" {
		t.Fatalf("GetOrCreateUser = %+v, %v", ann, err)
	}
	again, err := c.GetOrCreateUser(ctx, annKey, chat.UserProfile{PictureURL: "https://example.org/a.png"})
	if err != nil || again.ID != ann.ID || again.PictureURL != "https://example.org/a.png" {
		t.Fatalf("second GetOrCreateUser = %+v, %v", again, err)
	}
	bob := try(c.GetOrCreateUser(ctx, bobKey, chat.UserProfile{})).must(t)
	exercise(t, srv, c, annKey, ann.ID, bobKey, bob.ID)
}

// exercise runs the operations shared by both modes: ann owns the
// conversation, bob joins, writes and leaves.
func exercise(t *testing.T, srv *chattest.Server, c *chat.Client, annKey chat.UserKey, annID chat.UserID, bobKey chat.UserKey, bobID chat.UserID) {
	ctx := t.Context()

	u := try(c.GetUser(ctx, annKey)).must(t)
	if u.ID != annID {
		t.Fatalf("GetUser = %+v, want %s", u, annID)
	}
	u = try(c.UpdateUser(ctx, annKey, chat.UserProfile{Name: "Ann B.", Profile: "likes coffee"})).must(t)
	if u.Name != "Ann B." || u.Profile != "likes coffee" {
		t.Errorf("UpdateUser = %+v", u)
	}

	generated := try(c.CreateConversation(ctx, annKey, "")).must(t)
	if generated.ID == "" {
		t.Fatal("CreateConversation without id returned no id")
	}
	conv := try(c.CreateConversation(ctx, annKey, "room/general")).must(t)
	if conv.ID != "room/general" {
		t.Fatalf("CreateConversation = %+v", conv)
	}
	_, err := c.CreateConversation(ctx, annKey, "room/general")
	mustErr(t, err, chat.ErrConflict)
	if got := try(c.GetOrCreateConversation(ctx, annKey, conv.ID)).must(t); got.ID != conv.ID {
		t.Errorf("GetOrCreateConversation = %+v", got)
	}
	_, err = c.GetOrCreateConversation(ctx, bobKey, conv.ID)
	mustErr(t, err, chat.ErrForbidden)
	if got := try(c.GetConversation(ctx, annKey, conv.ID)).must(t); got.ID != conv.ID || got.CreatedAt.IsZero() {
		t.Errorf("GetConversation = %+v", got)
	}
	_, err = c.GetConversation(ctx, bobKey, conv.ID)
	mustErr(t, err, chat.ErrForbidden)

	ann := listen(t, c, annKey, conv.ID)
	recv(t, ann.connects, "ann's stream to connect")

	if p := try(c.AddParticipant(ctx, annKey, conv.ID, bobID)).must(t); p.ID != bobID {
		t.Errorf("AddParticipant = %+v", p)
	}
	if s := next[chat.ParticipantAdded](t, ann); s.ParticipantID != bobID || s.ConversationID != conv.ID {
		t.Errorf("participant_added = %+v", s)
	}
	if p := try(c.GetParticipant(ctx, annKey, conv.ID, bobID)).must(t); p.ID != bobID {
		t.Errorf("GetParticipant = %+v", p)
	}
	_, err = c.GetParticipant(ctx, bobKey, conv.ID, annID)
	mustErr(t, err, chat.ErrForbidden) // owner only (quirk 5)
	var ids []chat.UserID
	for _, p := range collect(t, c.ListParticipants(ctx, bobKey, conv.ID)) {
		ids = append(ids, p.ID)
	}
	slices.Sort(ids)
	if want := []chat.UserID{annID, bobID}; !slices.Equal(ids, sortedIDs(want)) {
		t.Errorf("participants = %v, want %v", ids, want)
	}

	bob := listen(t, c, bobKey, conv.ID)
	recv(t, bob.connects, "bob's stream to connect")
	sent, err := c.CreateMessage(ctx, bobKey, chat.CreateMessageRequest{
		ConversationID: conv.ID,
		Payload:        chat.Text{Text: "hello bot"},
		Metadata:       map[string]any{"platformEvent": "slack:T1:C1:1700000000.000100"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if sent.ID == "" || sent.UserID != bobID || sent.ConversationID != conv.ID || sent.Metadata["platformEvent"] != "slack:T1:C1:1700000000.000100" {
		t.Errorf("CreateMessage = %+v", sent)
	}
	for _, l := range []*listening{ann, bob} {
		mine := next[chat.MessageCreated](t, l)
		if mine.ID != sent.ID || mine.IsBot || mine.Metadata["platformEvent"] == nil {
			t.Errorf("user's message_created = %+v", mine)
		}
		reply := next[chat.MessageCreated](t, l)
		if !reply.IsBot || reply.UserID != srv.BotUserID() || reply.Payload != (chat.Text{Text: "hello bot"}) {
			t.Errorf("bot's message_created = %+v", reply)
		}
	}
	got := try(c.GetMessage(ctx, annKey, sent.ID)).must(t)
	if got.ID != sent.ID || got.Payload != (chat.Text{Text: "hello bot"}) {
		t.Errorf("GetMessage = %+v", got)
	}
	msgs := collect(t, c.ListMessages(ctx, annKey, conv.ID))
	if len(msgs) != 2 || msgs[1].ID != sent.ID || msgs[0].UserID != srv.BotUserID() {
		t.Errorf("ListMessages = %+v, want the bot's reply then bob's message", msgs)
	}

	ev, err := c.CreateEvent(ctx, bobKey, conv.ID, map[string]string{"clicked": "yes"})
	if err != nil {
		t.Fatal(err)
	}
	if ev.ID == "" || ev.UserID != bobID || string(ev.Payload) != `{"clicked":"yes"}` {
		t.Errorf("CreateEvent = %+v (payload %s)", ev, ev.Payload)
	}
	if s := next[chat.EventCreated](t, ann); s.ID != ev.ID || s.IsBot {
		t.Errorf("event_created = %+v", s)
	}
	if got := try(c.GetEvent(ctx, annKey, ev.ID)).must(t); got.ID != ev.ID || string(got.Payload) != `{"clicked":"yes"}` {
		t.Errorf("GetEvent = %+v", got)
	}

	mustErr(t, c.DeleteMessage(ctx, annKey, sent.ID), chat.ErrForbidden) // sender only
	if err := c.DeleteMessage(ctx, bobKey, sent.ID); err != nil {
		t.Fatal(err)
	}
	if s := next[chat.MessageDeleted](t, ann); s.ID != sent.ID {
		t.Errorf("message_deleted = %+v", s)
	}
	_, err = c.GetMessage(ctx, bobKey, sent.ID)
	mustErr(t, err, chat.ErrNotFound)

	mustErr(t, c.RemoveParticipant(ctx, annKey, conv.ID, annID), chat.ErrInvalidPayload) // not the owner
	if err := c.RemoveParticipant(ctx, annKey, conv.ID, bobID); err != nil {
		t.Fatal(err)
	}
	if s := next[chat.ParticipantRemoved](t, ann); s.ParticipantID != bobID {
		t.Errorf("participant_removed = %+v", s)
	}
	// The server closes the removed user's stream; reconnecting is refused.
	if err := bob.wait(t); !errors.Is(err, chat.ErrForbidden) {
		t.Errorf("bob's Listen = %v, want ErrForbidden after removal", err)
	}
	_, err = c.GetConversation(ctx, bobKey, conv.ID)
	mustErr(t, err, chat.ErrForbidden)

	var convs []chat.ConversationID
	for _, cv := range collect(t, c.ListConversations(ctx, annKey)) {
		convs = append(convs, cv.ID)
	}
	if !slices.Contains(convs, conv.ID) || !slices.Contains(convs, generated.ID) || len(convs) != 2 {
		t.Errorf("ListConversations = %v", convs)
	}
	if n := len(collect(t, c.ListConversations(ctx, bobKey))); n != 0 {
		t.Errorf("bob owns %d conversations, want 0", n)
	}

	mustErr(t, c.DeleteConversation(ctx, bobKey, conv.ID), chat.ErrForbidden)
	if err := c.DeleteConversation(ctx, annKey, conv.ID); err != nil {
		t.Fatal(err)
	}
	_, err = c.GetConversation(ctx, annKey, conv.ID)
	mustErr(t, err, chat.ErrNotFound)
	if err := ann.stop(t); !errors.Is(err, context.Canceled) {
		t.Errorf("ann's Listen = %v", err)
	}

	if err := c.DeleteUser(ctx, bobKey); err != nil {
		t.Fatal(err)
	}
	_, err = c.GetUser(ctx, bobKey)
	if err == nil {
		t.Error("GetUser after DeleteUser succeeded")
	}
}

func sortedIDs(ids []chat.UserID) []chat.UserID {
	out := slices.Clone(ids)
	slices.Sort(out)
	return out
}

func TestEmulatorPagination(t *testing.T) {
	srv := startEmulator(t, chattest.Options{PageSize: 3, EncryptionKey: emulatorKey})
	c := newClient(t, srv.URL(), &waits{}, nil)
	ctx := t.Context()
	owner := keyFor(t, emulatorKey, "owner")
	try(c.GetOrCreateUser(ctx, owner, chat.UserProfile{})).must(t)
	conv := try(c.GetOrCreateConversation(ctx, owner, "paged")).must(t)
	var sent []chat.MessageID
	for i := range 10 {
		m := try(c.CreateMessage(ctx, owner, chat.CreateMessageRequest{ConversationID: conv.ID, Payload: chat.Text{Text: fmt.Sprint("m", i)}})).must(t)
		sent = append(sent, m.ID)
	}
	for i := range 7 {
		u := keyFor(t, emulatorKey, chat.UserID(fmt.Sprint("member", i)))
		try(c.GetOrCreateUser(ctx, u, chat.UserProfile{})).must(t)
		try(c.AddParticipant(ctx, owner, conv.ID, chat.UserID(fmt.Sprint("member", i)))).must(t)
	}
	for i := range 4 {
		try(c.CreateConversation(ctx, owner, chat.ConversationID(fmt.Sprint("extra", i)))).must(t)
	}

	t.Run("messages come newest first across pages", func(t *testing.T) {
		var got []chat.MessageID
		for _, m := range collect(t, c.ListMessages(ctx, owner, conv.ID)) {
			got = append(got, m.ID)
		}
		want := slices.Clone(sent)
		slices.Reverse(want)
		if !slices.Equal(got, want) {
			t.Errorf("ids = %v, want %v", got, want)
		}
	})
	t.Run("pages carry tokens until the last", func(t *testing.T) {
		var sizes []int
		token := ""
		for {
			page, next, err := c.ListMessagesPage(ctx, owner, conv.ID, token)
			if err != nil {
				t.Fatal(err)
			}
			sizes = append(sizes, len(page))
			if next == "" {
				break
			}
			token = next
		}
		if !slices.Equal(sizes, []int{3, 3, 3, 1}) {
			t.Errorf("page sizes = %v, want [3 3 3 1]", sizes)
		}
	})
	t.Run("participants and conversations page too", func(t *testing.T) {
		if n := len(collect(t, c.ListParticipants(ctx, owner, conv.ID))); n != 8 {
			t.Errorf("participants = %d, want 8", n)
		}
		if n := len(collect(t, c.ListConversations(ctx, owner))); n != 5 {
			t.Errorf("conversations = %d, want 5", n)
		}
	})
	t.Run("stopping early fetches no further page", func(t *testing.T) {
		before := srv.Requests()
		n := 0
		for _, err := range c.ListMessages(ctx, owner, conv.ID) {
			if err != nil {
				t.Fatal(err)
			}
			if n++; n == 2 {
				break
			}
		}
		if got := srv.Requests() - before; got != 1 {
			t.Errorf("requests = %d, want 1", got)
		}
	})
	t.Run("canceled context ends iteration with its error", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		defer cancel()
		var errs []error
		n := 0
		for _, err := range c.ListMessages(cctx, owner, conv.ID) {
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if n++; n == 4 {
				cancel()
			}
		}
		if len(errs) != 1 || !errors.Is(errs[0], context.Canceled) || n != 4 {
			t.Errorf("items = %d, errors = %v; want 4 items then context.Canceled", n, errs)
		}
	})
}

func TestEmulatorListen(t *testing.T) {
	srv := startEmulator(t, chattest.Options{Bot: chattest.DemoBot(), EncryptionKey: emulatorKey})
	var w waits
	c := newClient(t, srv.URL(), &w, nil)
	ctx := t.Context()
	key := keyFor(t, emulatorKey, "listener")
	try(c.GetOrCreateUser(ctx, key, chat.UserProfile{})).must(t)
	conv := try(c.GetOrCreateConversation(ctx, key, "live")).must(t)
	l := listen(t, c, key, conv.ID)
	recv(t, l.connects, "connect")

	t.Run("bot reply arrives as a bot message", func(t *testing.T) {
		try(c.CreateMessage(ctx, key, chat.CreateMessageRequest{ConversationID: conv.ID, Payload: chat.Text{Text: "card"}})).must(t)
		next[chat.MessageCreated](t, l)
		reply := next[chat.MessageCreated](t, l)
		if _, ok := reply.Payload.(chat.Card); !ok || !reply.IsBot {
			t.Errorf("reply = %+v, want a bot card", reply)
		}
	})
	t.Run("streamed reply arrives as deltas then the message", func(t *testing.T) {
		try(c.CreateMessage(ctx, key, chat.CreateMessageRequest{ConversationID: conv.ID, Payload: chat.Text{Text: "stream"}})).must(t)
		next[chat.MessageCreated](t, l)
		var text string
		var s chat.Signal
		for s = recv(t, l.signals, "stream signals"); ; s = recv(t, l.signals, "stream signals") {
			d, ok := s.(chat.MessageStreamDelta)
			if !ok {
				break
			}
			text += d.Delta
		}
		done, ok := s.(chat.MessageStreamComplete)
		if !ok || done.Message.Payload != (chat.Text{Text: text}) {
			t.Fatalf("after deltas %q: %#v", text, s)
		}
		if m := next[chat.MessageCreated](t, l); m.ID != done.Message.ID || !m.IsBot {
			t.Errorf("message_created after the stream = %+v", m)
		}
	})
	t.Run("pushed bot message arrives", func(t *testing.T) {
		pushed := try(srv.PushBotMessage(ctx, conv.ID, chat.Markdown{Markdown: "*pushed*"})).must(t)
		if m := next[chat.MessageCreated](t, l); m.ID != pushed.ID || !m.IsBot {
			t.Errorf("pushed = %+v", m)
		}
	})
	t.Run("cut stream reconnects and reports it", func(t *testing.T) {
		if n := srv.CutStreams(); n != 1 {
			t.Fatalf("CutStreams = %d, want 1", n)
		}
		recv(t, l.drops, "disconnect")
		recv(t, l.connects, "reconnect")
		try(srv.PushBotMessage(ctx, conv.ID, chat.Text{Text: "after the cut"})).must(t)
		if m := next[chat.MessageCreated](t, l); m.Payload != (chat.Text{Text: "after the cut"}) {
			t.Errorf("after reconnect = %+v", m)
		}
	})
	t.Run("5xx on reconnect is retried until the stream is back", func(t *testing.T) {
		srv.FailNext(3, http.StatusServiceUnavailable, 0)
		before := len(w.all())
		srv.CutStreams()
		for range 4 {
			recv(t, l.drops, "disconnect")
		}
		recv(t, l.connects, "reconnect")
		if got := len(w.all()) - before; got != 4 {
			t.Errorf("reconnect waits = %d, want 4 (cut + 3 failures)", got)
		}
	})
	if err := l.stop(t); !errors.Is(err, context.Canceled) {
		t.Errorf("Listen = %v", err)
	}
}

func TestEmulatorListenRefused(t *testing.T) {
	srv := startEmulator(t, chattest.Options{EncryptionKey: emulatorKey})
	c := newClient(t, srv.URL(), &waits{}, nil)
	ctx := t.Context()
	owner := keyFor(t, emulatorKey, "owner")
	outsider := keyFor(t, emulatorKey, "outsider")
	try(c.GetOrCreateUser(ctx, owner, chat.UserProfile{})).must(t)
	try(c.GetOrCreateUser(ctx, outsider, chat.UserProfile{})).must(t)
	conv := try(c.GetOrCreateConversation(ctx, owner, "private")).must(t)
	forged := keyFor(t, "not-the-key", "owner")
	wrongBase := newClient(t, srv.URL()+"-other", &waits{}, nil)

	tests := []struct {
		name string
		c    *chat.Client
		key  chat.UserKey
		want error
	}{
		{"bad key stops with ErrUnauthorized", c, forged, chat.ErrUnauthorized},
		{"non-participant stops with ErrForbidden", c, outsider, chat.ErrForbidden},
		{"unknown webhook stops with ErrNotFound", wrongBase, owner, chat.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := srv.Requests()
			lctx, cancel := context.WithCancel(ctx)
			defer cancel()
			err := tt.c.Listen(lctx, tt.key, conv.ID, chat.ListenHandler{
				OnConnect: func(context.Context) { t.Error("OnConnect called") },
				OnSignal:  func(context.Context, chat.Signal) {},
				OnDisconnect: func(err error, _ time.Duration) {
					t.Errorf("reconnecting after %v", err)
					cancel()
				},
			})
			mustErr(t, err, tt.want)
			if n := srv.Requests() - before; n > 1 {
				t.Errorf("requests = %d, want at most one", n)
			}
		})
	}
}

func TestEmulatorRetries(t *testing.T) {
	srv := startEmulator(t, chattest.Options{EncryptionKey: emulatorKey})
	var w waits
	c := newClient(t, srv.URL(), &w, nil)
	ctx := t.Context()
	key := keyFor(t, emulatorKey, "retry")
	try(c.GetOrCreateUser(ctx, key, chat.UserProfile{})).must(t)
	conv := try(c.GetOrCreateConversation(ctx, key, "retry")).must(t)

	t.Run("5xx storm is ridden out", func(t *testing.T) {
		srv.FailNext(3, http.StatusBadGateway, 0)
		before, waited := srv.Requests(), len(w.all())
		if _, err := c.GetUser(ctx, key); err != nil {
			t.Fatal(err)
		}
		if srv.Requests()-before != 4 || len(w.all())-waited != 3 {
			t.Errorf("requests = %d, waits = %v", srv.Requests()-before, w.all()[waited:])
		}
	})
	t.Run("longer storm surfaces the 5xx", func(t *testing.T) {
		srv.FailNext(10, http.StatusInternalServerError, 0)
		defer srv.FailNext(0, 0, 0)
		_, err := c.GetConversation(ctx, key, conv.ID)
		var e *chat.Error
		if !errors.As(err, &e) || e.Status != 500 || e.Op != "getConversation" {
			t.Fatalf("error = %v", err)
		}
	})
	t.Run("429 honours Retry-After", func(t *testing.T) {
		srv.FailNext(1, http.StatusTooManyRequests, 2*time.Second)
		waited := len(w.all())
		if _, _, err := c.ListMessagesPage(ctx, key, conv.ID, ""); err != nil {
			t.Fatal(err)
		}
		if got := w.all()[waited:]; !slices.Equal(got, []time.Duration{2 * time.Second}) {
			t.Errorf("waits = %v, want [2s]", got)
		}
	})
	t.Run("createMessage is sent once without WithRetry", func(t *testing.T) {
		srv.FailNext(1, http.StatusServiceUnavailable, 0)
		_, err := c.CreateMessage(ctx, key, chat.CreateMessageRequest{ConversationID: conv.ID, Payload: chat.Text{Text: "once"}})
		if !errors.As(err, new(*chat.Error)) {
			t.Fatalf("error = %v", err)
		}
		if n := len(srv.Messages(conv.ID)); n != 0 {
			t.Errorf("stored messages = %d, want 0", n)
		}
	})
	t.Run("createMessage with WithRetry gets through", func(t *testing.T) {
		srv.FailNext(2, http.StatusServiceUnavailable, 0)
		m, err := c.CreateMessage(ctx, key, chat.CreateMessageRequest{ConversationID: conv.ID, Payload: chat.Text{Text: "retried"}}, chat.WithRetry())
		if err != nil {
			t.Fatal(err)
		}
		if got := srv.Messages(conv.ID); len(got) != 1 || got[0].ID != m.ID {
			t.Errorf("stored = %+v", got)
		}
	})
	t.Run("FailRequests until a time is retried through", func(t *testing.T) {
		srv.FailRequests(http.StatusServiceUnavailable, time.Second, time.Now().Add(time.Hour))
		_, err := c.GetUser(ctx, key)
		var e *chat.Error
		if !errors.As(err, &e) || e.RetryAfter != time.Second {
			t.Fatalf("error = %v, want 503 with Retry-After 1s", err)
		}
		srv.FailRequests(0, 0, time.Time{})
		if _, err := c.GetUser(ctx, key); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("event payload round-trips as raw json", func(t *testing.T) {
		ev := try(c.CreateEvent(ctx, key, conv.ID, json.RawMessage(`{"n":1,"nested":{"a":[1,2]}}`))).must(t)
		got := try(c.GetEvent(ctx, key, ev.ID)).must(t)
		var v map[string]any
		if err := json.Unmarshal(got.Payload, &v); err != nil || v["n"] != float64(1) {
			t.Errorf("payload = %s", got.Payload)
		}
	})
}
