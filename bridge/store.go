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
	// Posted holds the platform ids of its parts once the adapter posted it.
	Posted Parts
}

// Store is the durable state of the bridge. Every method takes ctx, runs one
// transaction (Prune runs several) and returns ErrNotFound for missing
// records (and for Mark and Fail calls on records already finished) and
// errors wrapping ErrStore for failures of the database.
type Store interface {
	// EnqueueInbound stores in under the current conversation of key
	// (creating the conversation record when there is none) and marks engage
	// as a thread the bot takes part in (when engage.Room is set). It returns
	// the stored item and created=false, and changes nothing, when an inbound
	// of the same platform and key was stored before.
	EnqueueInbound(ctx context.Context, key ConvKey, in Inbound, engage RoomKey) (item OutboxItem, created bool, err error)
	// ThreadEngaged reports whether the bot takes part in the thread.
	ThreadEngaged(ctx context.Context, bot string, thread RoomKey) (bool, error)
	// ResetConversation starts a new generation of key's conversation.
	ResetConversation(ctx context.Context, key ConvKey) (Conversation, error)
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
	// ConversationByChatID returns the conversation mapped to a Botpress
	// conversation of bot.
	ConversationByChatID(ctx context.Context, bot string, id chat.ConversationID) (Conversation, error)
	// SetConversationChatID maps the conversation to a Botpress conversation
	// (empty: unmapped, to be created again) and forgets its participants.
	SetConversationChatID(ctx context.Context, id int64, chatID chat.ConversationID) error
	// ActiveConversations lists mapped conversations active since the time
	// given, or with undelivered bot messages.
	ActiveConversations(ctx context.Context, since time.Time) ([]Conversation, error)

	// User returns the Botpress user of a platform user for bot.
	User(ctx context.Context, bot string, platform Platform, platformID string) (User, error)
	// PutUser stores or replaces a user mapping.
	PutUser(ctx context.Context, u User) error
	// DeleteUser forgets a user mapping (and its participations).
	DeleteUser(ctx context.Context, bot string, platform Platform, platformID string) error
	// Participant reports whether user was added to the conversation.
	Participant(ctx context.Context, conversation int64, user chat.UserID) (bool, error)
	// AddParticipant records that user was added to the conversation.
	AddParticipant(ctx context.Context, conversation int64, user chat.UserID) error

	// AddDelivery stores a bot message to post and moves the conversation's
	// cursor to its creation time. It returns created=false when the message
	// was stored before.
	AddDelivery(ctx context.Context, d Delivery) (stored Delivery, created bool, err error)
	// PendingDeliveries lists deliveries not yet posted, in Seq order, at
	// most limit (0: all).
	PendingDeliveries(ctx context.Context, limit int) ([]Delivery, error)
	// Delivery returns a delivery by message id.
	Delivery(ctx context.Context, id chat.MessageID) (Delivery, error)
	// MarkDelivered records the platform ids of a posted delivery's parts.
	MarkDelivered(ctx context.Context, id chat.MessageID, posted Parts) error
	// FailDelivery gives a delivery up for good, keeping the reason.
	FailDelivery(ctx context.Context, id chat.MessageID, reason string) error

	// Cursor returns a named platform value (a Matrix sync token), or "" when
	// unset.
	Cursor(ctx context.Context, name string) (string, error)
	// SetCursor stores a named platform value.
	SetCursor(ctx context.Context, name, value string) error

	// Prune deletes inbound messages and deliveries finished before the time
	// given, and returns how many rows went.
	Prune(ctx context.Context, before time.Time) (int64, error)
	// Ping checks that the store can be read and written.
	Ping(ctx context.Context) error
}
