// Package storetest is the contract suite of botbridge's store (Store:
// bridge.Store and the parts of it the adapters declare): the tests every
// implementation passes (the SQLite store in package store, the PostgreSQL
// store in store/postgres), written from the doc comments of the
// interfaces' methods, and benchmarks of the methods on the hot path.
//
// An implementation's test calls Run with an Opener that makes a new, empty
// store:
//
//	func TestContract(t *testing.T) {
//		storetest.Run(t, func(tb testing.TB, now func() time.Time) storetest.Subject { ... })
//	}
package storetest

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/botbridge/botbridge/bridge"
	"github.com/botbridge/botbridge/chat"
)

// Store is what a store of botbridge implements: bridge.Store, and the
// parts of the store the adapters declare for themselves, with the same
// methods (the Matrix adapter's matrix.PendingEvents and matrix.Rooms, the
// Slack adapter's slack.Installs), which the suite tests too.
type Store interface {
	bridge.Store
	// AddMatrixPending keeps an encrypted event of the account's that waits
	// for its keys; one kept already stays as it is.
	AddMatrixPending(ctx context.Context, account, room, eventID, sender, event string, since time.Time) error
	// DeleteMatrixPending forgets a waiting event; one not kept is not an
	// error.
	DeleteMatrixPending(ctx context.Context, account, eventID string) error
	// MatrixPending calls each for every event the account keeps, oldest
	// first, and returns each's first error.
	MatrixPending(ctx context.Context, account string, each func(eventID, event string, since time.Time) error) error
	// RenameRoom moves what the bridge keeps of a room to the room that
	// replaces it (a Matrix room upgrade) and returns how many
	// conversation records moved.
	RenameRoom(ctx context.Context, platform bridge.Platform, from, to string) (int, error)
	// PutWorkspace stores or replaces a workspace that installed the app.
	PutWorkspace(ctx context.Context, w bridge.Workspace) error
	// Workspaces lists the installed workspaces of a platform, by id.
	Workspaces(ctx context.Context, platform bridge.Platform) ([]bridge.Workspace, error)
	// DeleteWorkspace forgets an installed workspace; ErrNotFound when there
	// is none.
	DeleteWorkspace(ctx context.Context, platform bridge.Platform, id string) error
}

// Subject is one store under test.
type Subject struct {
	// Store is the store, new and empty, on the clock the Opener was given.
	Store Store
	// Row runs a query and scans its one row into dest. The suite checks
	// with it what the interface does not show (the reason kept for a
	// failure, the rows Prune left). Queries use only SQL that SQLite and
	// PostgreSQL both take, on the tables and columns both schemas share,
	// and no parameters.
	Row func(ctx context.Context, query string, dest ...any) error
	// Exec runs a statement of the same kind, to write what the interface
	// cannot (a row in an older or newer stored form).
	Exec func(ctx context.Context, query string) error
	// Another opens a second handle on the same store, on the same clock, as
	// a second process on the same machine or another one would; the suite
	// races the two. The Opener closes it with tb.Cleanup.
	Another func(tb testing.TB) Store
	// Close closes Store; the suite calls it to check a closed store's
	// errors, and the Opener's cleanup may call it again.
	Close func() error
	// ClaimsOnAdd says that AddDelivery under a fence claims the delivery
	// it creates when it can (see bridge.ReceiverStore.AddDelivery): the
	// suite checks that it does. Without it, the suite checks that it
	// claims nothing.
	ClaimsOnAdd bool
}

// Opener makes a new, empty store whose clock is now, and closes it (and
// removes what it made) with tb.Cleanup.
type Opener func(tb testing.TB, now func() time.Time) Subject

// Run runs the contract suite on stores made by open.
func Run(t *testing.T, open Opener) {
	for _, g := range []struct {
		name string
		run  func(*testing.T, Opener)
	}{
		{"EnqueueInbound", testEnqueueInbound},
		{"ResetConversation", testResetConversation},
		{"Outbox", testOutbox},
		{"InboundForms", testInboundForms},
		{"Conversations", testConversations},
		{"Users", testUsers},
		{"Cursors", testCursors},
		{"Deliveries", testDeliveries},
		{"DeliveryTargets", testDeliveryTargets},
		{"DeliveryPayloads", testDeliveryPayloads},
		{"Offers", testOffers},
		{"Indicators", testIndicators},
		{"Prune", testPrune},
		{"Posts", testPosts},
		{"EnqueueInboundTo", testEnqueueInboundTo},
		{"MatrixPending", testMatrixPending},
		{"Workspaces", testWorkspaces},
		{"RenameRoom", testRenameRoom},
		{"Leases", testLeases},
		{"Races", testRaces},
		{"Concurrency", testConcurrency},
		{"Failures", testFailures},
	} {
		t.Run(g.name, func(t *testing.T) { g.run(t, open) })
	}
}

// clock is a store's Now in the suite: it stands still until moved.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock and returns the new time.
func (c *clock) Advance(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	return c.now
}

// env is one test's store and clock, with the helpers the tests share.
type env struct {
	tb  testing.TB
	db  Store
	clk *clock
	s   Subject
}

func newEnv(tb testing.TB, open Opener) *env {
	tb.Helper()
	clk := newClock()
	s := open(tb, clk.Now)
	return &env{tb: tb, db: s.Store, clk: clk, s: s}
}

// count returns the integer query returns.
func (e *env) count(query string) int {
	e.tb.Helper()
	var n int
	if err := e.s.Row(e.tb.Context(), query, &n); err != nil {
		e.tb.Fatalf("%s: %v", query, err)
	}
	return n
}

// exec runs a statement.
func (e *env) exec(query string) {
	e.tb.Helper()
	if err := e.s.Exec(e.tb.Context(), query); err != nil {
		e.tb.Fatalf("%s: %v", query, err)
	}
}

// lit returns s as an SQL string literal.
func lit(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

func roomKey(room, thread string) bridge.RoomKey {
	return bridge.RoomKey{Platform: bridge.PlatformSlack, Room: room, Thread: thread}
}

func convKey(room string) bridge.ConvKey {
	return bridge.ConvKey{Bot: "bot", Scope: bridge.ScopeRoom, Room: roomKey(room, "")}
}

func newInbound(key string, room bridge.RoomKey, at time.Time) bridge.Inbound {
	return bridge.Inbound{
		Key:       bridge.EventKey(key),
		Room:      room,
		MessageID: "m-" + key,
		Sender:    bridge.Sender{ID: "U1", Name: "Ada"},
		Text:      "hello " + key,
		Time:      at,
	}
}

func newDelivery(id string, conv int64, created time.Time) bridge.Delivery {
	return bridge.Delivery{
		MessageID:    chat.MessageID(id),
		Conversation: conv,
		Bot:          "bot",
		Target:       bridge.ReplyTarget{Room: roomKey("C1", "1700.1"), MessageID: "1700.2", UserID: "U1"},
		Payload:      chat.Text{Text: "answer " + id},
		CreatedAt:    created,
	}
}

// enqueue stores a new inbound message and fails the test unless it was
// created.
func enqueue(tb testing.TB, db bridge.Store, key bridge.ConvKey, in bridge.Inbound) bridge.OutboxItem {
	tb.Helper()
	it, created, err := db.EnqueueInbound(tb.Context(), key, in, bridge.RoomKey{})
	if err != nil || !created {
		tb.Fatalf("enqueue %s: created=%v, %v", in.Key, created, err)
	}
	return it
}

func (e *env) enqueue(key bridge.ConvKey, in bridge.Inbound) bridge.OutboxItem {
	e.tb.Helper()
	return enqueue(e.tb, e.db, key, in)
}

// mapConv enqueues a message for key and maps its conversation to chatID.
func mapConv(tb testing.TB, db bridge.Store, now time.Time, key bridge.ConvKey, event string, chatID chat.ConversationID) bridge.OutboxItem {
	tb.Helper()
	it := enqueue(tb, db, key, newInbound(event, key.Room, now))
	if err := db.SetConversationChatID(tb.Context(), it.Conversation, chatID); err != nil {
		tb.Fatalf("set chat id: %v", err)
	}
	return it
}

func (e *env) mapConv(key bridge.ConvKey, event string, chatID chat.ConversationID) bridge.OutboxItem {
	e.tb.Helper()
	return mapConv(e.tb, e.db, e.clk.Now(), key, event, chatID)
}

func (e *env) addDelivery(d bridge.Delivery) bridge.Delivery {
	e.tb.Helper()
	stored, created, err := e.db.AddDelivery(e.tb.Context(), d)
	if err != nil || !created {
		e.tb.Fatalf("add delivery %s: created=%v, %v", d.MessageID, created, err)
	}
	return stored
}

// addTo stores a new delivery of conv to room, as addDelivery does.
func (e *env) addTo(id string, conv int64, room bridge.RoomKey) bridge.Delivery {
	e.tb.Helper()
	d := newDelivery(id, conv, e.clk.Now())
	d.Target.Room = room
	return e.addDelivery(d)
}

// attempts returns the claims made of delivery id.
func (e *env) attempts(id string) int {
	e.tb.Helper()
	return e.count(`SELECT attempts FROM deliveries WHERE message_id = '` + id + `'`)
}

// putOffer records o as the poster does, in two steps around the post of
// its choice: pending (no message id), then with o's message id when it
// has one.
func putOffer(tb testing.TB, db bridge.Store, o bridge.Offer) {
	tb.Helper()
	pending := o
	pending.MessageID = ""
	if err := db.PutOffer(tb.Context(), pending); err != nil {
		tb.Fatalf("put pending offer: %v", err)
	}
	if o.MessageID == "" {
		return
	}
	if err := db.PutOffer(tb.Context(), o); err != nil {
		tb.Fatalf("put offer %s: %v", o.MessageID, err)
	}
}

func (e *env) putOffer(o bridge.Offer) {
	e.tb.Helper()
	putOffer(e.tb, e.db, o)
}

// reset resets key's conversation for the event evKey and returns the new
// conversation.
func (e *env) reset(key bridge.ConvKey, evKey string) (bridge.Conversation, error) {
	e.tb.Helper()
	ctx := e.tb.Context()
	in := newInbound(evKey, key.Room, e.clk.Now())
	notice := bridge.Delivery{MessageID: chat.MessageID("notice-" + evKey), Bot: key.Bot, Payload: chat.Text{Text: "reset"}, CreatedAt: e.clk.Now()}
	stored, _, err := e.db.ResetConversation(ctx, key, in, notice)
	if err != nil {
		return bridge.Conversation{}, err
	}
	return e.db.Conversation(ctx, stored.Conversation)
}
