package bridge

import (
	"context"
	"errors"
	"time"

	"github.com/botbridge/botbridge/chat"
)

// Sentinel errors of the store and the bridge.
var (
	// ErrNotFound: the record does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict: the record exists already.
	ErrConflict = errors.New("conflict")
	// ErrStore: the store failed (disk full, read-only file, corrupt
	// database). Errors of the store wrap it.
	ErrStore = errors.New("store failure")
)

// Conversation is the bridge's record of one conversation: its key, the
// Botpress conversation it is mapped to, and where replies go.
type Conversation struct {
	// ID is the store's id of the record.
	ID  int64
	Key ConvKey
	// Generation counts resets of the key; each generation is its own
	// Botpress conversation.
	Generation int
	// ChatID is the Botpress conversation, empty until it was created.
	ChatID chat.ConversationID
	// Reply is where bot replies go.
	Reply ReplyTarget
	// Cursor is the creation time of the newest bot message received, the
	// point from which catch-up lists what a stream missed.
	Cursor time.Time
	// ActiveAt is the time of the last message in either direction.
	ActiveAt time.Time
}

// User maps a platform user to a Botpress user of one bot.
type User struct {
	Bot        string
	Platform   Platform
	PlatformID string
	ChatID     chat.UserID
	// Key is kept only for bots without an encryption key, whose users were
	// made with createUser; with an encryption key the bridge signs keys.
	Key       chat.UserKey
	Name      string
	AvatarURL string
}

// OutboxItem is an inbound message waiting to be sent to Botpress.
type OutboxItem struct {
	ID           int64
	Conversation int64
	Inbound      Inbound
	// PartsSent counts the Chat API messages already sent for it (text, then
	// one per file).
	PartsSent int
	CreatedAt time.Time
}

// Delivery is a bot message on its way to a platform.
type Delivery struct {
	// Seq orders deliveries; it is assigned by the store.
	Seq          int64
	MessageID    chat.MessageID
	Conversation int64
	Bot          string
	Target       ReplyTarget
	Payload      chat.Payload
	// CreatedAt is when the bot sent the message; ReceivedAt when the bridge
	// stored it.
	CreatedAt  time.Time
	ReceivedAt time.Time
	// MaybePosted is set by the bridge, not stored, for a delivery that may
	// be on the platform already: the first pending one of its room after a
	// restart, or one whose post failed without a clear answer. Recoverer
	// adapters are asked to look for it before it is posted again.
	MaybePosted bool
	// Claimed is set by AddDelivery, not stored, when it claimed the
	// delivery as it stored it (see ReceiverStore.AddDelivery): it is
	// posted without a claim of its own.
	Claimed bool
	// Posted holds the platform ids of its parts once the adapter posted it.
	Posted Parts
}

// Offer is a choice standing on a platform without buttons (TextChoices):
// the options a person may answer by number or label.
type Offer struct {
	// Room is where the choice was posted, thread included; only answers
	// said there match it.
	Room RoomKey
	Bot  string
	// Conversation is the store id of the conversation that posted it.
	Conversation int64
	// MessageID is the platform id of the message (its first part); empty
	// while the choice is being posted.
	MessageID string
	Options   []chat.ChoiceOption
	// Expires is when the offer stops standing.
	Expires time.Time
}

// PruneBefore says what Prune deletes.
type PruneBefore struct {
	// Finished: inbound messages and deliveries finished before it, kept
	// until then to de-duplicate redeliveries and for inspection.
	Finished time.Time
	// Idle: conversations (with their participants and threads) without
	// traffic since it and with nothing pending, and users who take part in
	// no conversation left. Zero keeps them.
	Idle time.Time
}

// The store, seen by each part of the bridge that uses it. Every method takes
// ctx, runs one transaction and returns ErrNotFound for missing records (and
// for Mark and Fail calls on records already finished) and errors wrapping
// ErrStore for failures of the database.
//
// The writes of the sender and the poster are fenced (see lease.go): when
// ctx carries a fence (WithFence), the write is made only while the lease
// of what it writes (LeaseOf its conversation's or room's room) is held with
// the fence's token, by the store's clock, and fails with ErrFenced
// otherwise. Those are MarkInboundSent, FailInbound, SetConversationChatID,
// AddParticipant, MarkDelivered, FailDelivery, ClaimDelivery, PutOffer,
// SetIndicator, and SetCursor (checked against the fence's own lease). The
// writes any process may make, which unique keys keep single
// (EnqueueInbound, ResetConversation, AddDelivery...), take no fence
// (AddDelivery's only makes its claim).

// IntakeStore is what the intake needs: it routes and stores what people say.
type IntakeStore interface {
	// ThreadEngaged reports whether the bot takes part in the thread.
	ThreadEngaged(ctx context.Context, bot string, thread RoomKey) (bool, error)
	// EnqueueInbound stores in under the current conversation of key
	// (creating the conversation record when there is none) and marks engage
	// as a thread the bot takes part in (when engage.Room is set). An
	// inbound that answers an offer (in.Action with the offer's MessageID,
	// said in its room) closes the offer. It returns the stored item and
	// created=false, and changes nothing, when an inbound of the same
	// platform and key was stored before.
	EnqueueInbound(ctx context.Context, key ConvKey, in Inbound, engage RoomKey) (item OutboxItem, created bool, err error)
	// ResetConversation handles the reset word in: it starts a new
	// generation of key's conversation and stores notice as a delivery of
	// it (its Conversation set by the store), keeping in as a handled
	// inbound event. It returns the stored notice and created=false, and
	// changes nothing, when an inbound of the same platform and key was
	// stored before.
	ResetConversation(ctx context.Context, key ConvKey, in Inbound, notice Delivery) (stored Delivery, created bool, err error)
	// Offer returns the offer standing in room (thread included), or
	// ErrNotFound when there is none or it expired.
	Offer(ctx context.Context, room RoomKey) (Offer, error)
	// Post returns the posted delivery one of whose parts has platformID in
	// room (its top level), or ErrNotFound.
	Post(ctx context.Context, room RoomKey, platformID string) (Post, error)
	// EnqueueInboundTo stores in under the conversation record conv, as
	// EnqueueInbound does under a key's current one (a reaction goes to the
	// conversation of the message it is on). It returns created=false, and
	// changes nothing, when an inbound of the same platform and key was
	// stored before; ErrNotFound when conv is gone.
	EnqueueInboundTo(ctx context.Context, conv int64, in Inbound) (item OutboxItem, created bool, err error)
}

// UserStore keeps the Botpress users of platform users.
type UserStore interface {
	// User returns the Botpress user of a platform user for bot.
	User(ctx context.Context, bot string, platform Platform, platformID string) (User, error)
	// PutUser stores or replaces a user mapping.
	PutUser(ctx context.Context, u User) error
	// DeleteUser forgets a user mapping (and its participations).
	DeleteUser(ctx context.Context, bot string, platform Platform, platformID string) error
}

// SenderStore is what the sender needs: the outbox and the conversations'
// Botpress side.
type SenderStore interface {
	UserStore
	// PendingInbound lists unsent inbound messages, oldest first, at most
	// limit (0: all).
	PendingInbound(ctx context.Context, limit int) ([]OutboxItem, error)
	// NextInbound returns the oldest unsent inbound message of a
	// conversation, or ErrNotFound.
	NextInbound(ctx context.Context, conversation int64) (OutboxItem, error)
	// MarkInboundSent records that parts messages of the item were sent, the
	// last with id msg. When done, the item leaves the outbox and the
	// conversation's reply target becomes reply.
	MarkInboundSent(ctx context.Context, id int64, parts int, msg chat.MessageID, done bool, reply ReplyTarget) error
	// FailInbound takes the item out of the outbox for good, keeping it with
	// the reason.
	FailInbound(ctx context.Context, id int64, reason string) error
	// Conversation returns a conversation by store id.
	Conversation(ctx context.Context, id int64) (Conversation, error)
	// SetConversationChatID maps the conversation to a Botpress conversation
	// (empty: unmapped, to be created again) and forgets its participants.
	SetConversationChatID(ctx context.Context, id int64, chatID chat.ConversationID) error
	// Participant reports whether user was added to the conversation.
	Participant(ctx context.Context, conversation int64, user chat.UserID) (bool, error)
	// AddParticipant records that user was added to the conversation.
	AddParticipant(ctx context.Context, conversation int64, user chat.UserID) error
	// PendingInboundIn lists the unsent inbound messages of the
	// conversations of the leases named, with an id above after, oldest
	// first, at most limit (0: all).
	PendingInboundIn(ctx context.Context, leases []string, after int64, limit int) ([]OutboxItem, error)
}

// ReceiverStore is what the receiver needs: the conversations to listen to
// and the bot messages received.
type ReceiverStore interface {
	UserStore
	// Conversation returns a conversation by store id.
	Conversation(ctx context.Context, id int64) (Conversation, error)
	// ConversationByChatID returns the conversation mapped to a Botpress
	// conversation of bot.
	ConversationByChatID(ctx context.Context, bot string, id chat.ConversationID) (Conversation, error)
	// ActiveConversations lists mapped conversations active since the time
	// given, or with undelivered bot messages.
	ActiveConversations(ctx context.Context, since time.Time) ([]Conversation, error)
	// ActiveConversationsIn is ActiveConversations of the conversations of
	// the leases named.
	ActiveConversationsIn(ctx context.Context, leases []string, since time.Time) ([]Conversation, error)
	// AddDelivery stores a bot message to post and moves the conversation's
	// cursor to its creation time. A delivery without a target room goes to
	// the conversation's reply target. It returns created=false, and the
	// delivery stored before, when the message was stored before.
	//
	// With a fence in ctx (the lease of the conversation, held by the
	// caller, whose poster posts the delivery), a store may claim the
	// delivery it creates in the same transaction, as ClaimDelivery would,
	// when no earlier delivery of its room is pending and the fence holds;
	// it sets Claimed then. A fence that does not hold leaves the delivery
	// unclaimed and stores it all the same: any process stores the bot's
	// messages.
	AddDelivery(ctx context.Context, d Delivery) (stored Delivery, created bool, err error)
	// Delivery returns a delivery by message id.
	Delivery(ctx context.Context, id chat.MessageID) (Delivery, error)
}

// PosterStore is what the poster needs: the deliveries to post, the offers
// it posts, and the indicators it shows.
type PosterStore interface {
	// PendingDeliveries lists deliveries not yet posted, in Seq order, at
	// most limit (0: all).
	PendingDeliveries(ctx context.Context, limit int) ([]Delivery, error)
	// PendingDeliveriesIn lists the deliveries not yet posted of the
	// conversations of the leases named, with a Seq above after, in Seq
	// order, at most limit (0: all).
	PendingDeliveriesIn(ctx context.Context, leases []string, after int64, limit int) ([]Delivery, error)
	// Delivery returns a delivery by message id.
	Delivery(ctx context.Context, id chat.MessageID) (Delivery, error)
	// ClaimDelivery records an attempt to post a pending delivery, made
	// before it is posted, and returns how many were made before (see
	// Claim). It claims nothing, and returns Behind, when an earlier
	// delivery of the same room is still pending. ErrNotFound when the
	// delivery is not pending.
	ClaimDelivery(ctx context.Context, id chat.MessageID) (Claim, error)
	// MarkDelivered records the platform ids of a posted delivery's parts.
	MarkDelivered(ctx context.Context, id chat.MessageID, posted Parts) error
	// MarkDeliveredAndClaim records id posted, as MarkDelivered does, and
	// in the same transaction claims next, the delivery queued after it,
	// as ClaimDelivery does: a room's replies then cost one commit each,
	// not two. claimed is false, and next is left as it was, when next is
	// not claimed (not pending, behind another, fenced off): ClaimDelivery
	// claims it then, and tells why not. The error is the mark's; when it
	// is not nil, neither was recorded.
	MarkDeliveredAndClaim(ctx context.Context, id chat.MessageID, posted Parts, next chat.MessageID) (c Claim, claimed bool, err error)
	// FailDelivery gives a delivery up for good, keeping the reason.
	FailDelivery(ctx context.Context, id chat.MessageID, reason string) error
	// PutOffer records the offer standing in its room, in two steps around
	// the post of the choice, so that an answer typed the moment the choice
	// shows finds it: without o.MessageID it replaces the offer standing in
	// the room by o, pending; with it, it sets the message id of the room's
	// pending offer, and does nothing when that was answered meanwhile.
	PutOffer(ctx context.Context, o Offer) error
	// SetIndicator records that the thinking indicator for t is shown (on)
	// or was taken down (off), so that indicators a stopped process left
	// shown are taken down at the next start.
	SetIndicator(ctx context.Context, t ReplyTarget, on bool) error
	// Indicators lists the indicators recorded as shown.
	Indicators(ctx context.Context) ([]ReplyTarget, error)
}

// LeaseStore keeps the leases through which processes sharing the store
// share its work (see lease.go). Expiry is by the store's clock, which all
// processes share.
type LeaseStore interface {
	// TakeLeases takes for owner, for ttl from now, each of the leases
	// named that is free, expired, or held by owner already (then it is
	// renewed, its token unchanged; a lease taken gets a new token). It
	// returns the leases owner holds now of those named; the others are
	// another's.
	TakeLeases(ctx context.Context, owner string, names []string, ttl time.Duration) ([]Lease, error)
	// ReleaseLeases ends the leases named that owner holds, for another
	// process to take at once.
	ReleaseLeases(ctx context.Context, owner string, names []string) error
	// Leases lists every lease, by name, and the store's clock.
	Leases(ctx context.Context) ([]Lease, time.Time, error)
}

// Notifier is an optional capability of a store that several processes
// share: it carries notes of the work one process stored for another.
type Notifier interface {
	// Publish tells every process listening (Notify) of n. It does not
	// wait for them.
	Publish(ctx context.Context, n Note) error
	// Notify calls fn (on one goroutine, in order) with the notes the
	// processes publish, until ctx ends, and returns nil then. It blocks.
	// When it may have missed some (its connection was lost), it calls fn
	// with a Note of no Lease: anything may be new.
	Notify(ctx context.Context, fn func(Note)) error
}

// Note tells of work another process stored: an inbound message of the
// conversation, or the delivery Message.
type Note struct {
	// Lease is the lease of the conversation; empty when anything may be
	// new.
	Lease        string
	Conversation int64
	// Message is the delivery's message id; empty for an inbound message.
	Message chat.MessageID
}

// Store is the durable state of the bridge: what each part needs, and what
// the engine needs to keep it small and to check it.
type Store interface {
	IntakeStore
	SenderStore
	ReceiverStore
	PosterStore
	LeaseStore

	// Cursor returns a named platform value (a Matrix sync token), or "" when
	// unset.
	Cursor(ctx context.Context, name string) (string, error)
	// SetCursor stores a named platform value.
	SetCursor(ctx context.Context, name, value string) error

	// Prune deletes what is finished or idle (see PruneBefore), in several
	// transactions, and returns how many rows went.
	Prune(ctx context.Context, before PruneBefore) (int64, error)
	// Ping checks that the store can be read and written.
	Ping(ctx context.Context) error
}
