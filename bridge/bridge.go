// Package bridge is the domain of botbridge: rooms, inbound and outbound
// messages, conversations, the interfaces of adapters and of the store, the
// routing rules, and the core that carries messages between chat platforms
// and Botpress.
//
// The core is four parts, each with its own state, wired by Engine:
//
//   - intake routes what people say and stores what the bot answers, before
//     the adapter acknowledges it (intake.go);
//   - the sender sends it to Botpress, in order per conversation, and after
//     a crash looks before it sends again (sender.go);
//   - the receiver brings the bot's messages in, by webhook, stream or
//     sweep, and stores each once (receiver.go, webhook.go, sweep.go);
//   - the poster posts them in order per room, grows streamed replies, and
//     shows the thinking indicator (poster.go, stream.go, typing.go).
//
// The parts talk through narrow interfaces declared where they are used, and
// through the store, whose interface is split the same way (IntakeStore,
// SenderStore, ReceiverStore, PosterStore). No part holds the Engine.
//
// Imports go one way: adapters and the store import bridge; bridge imports
// chat and its own leaf packages (retry, logging).
package bridge

import (
	"strings"
	"time"

	"github.com/botbridge/botbridge/chat"
)

// Platform names a chat platform.
type Platform string

// Platforms botbridge knows.
const (
	PlatformSlack   Platform = "slack"
	PlatformMatrix  Platform = "matrix"
	PlatformConsole Platform = "console"
)

// RoomKey says where something was said or is to be posted: a room (Slack
// channel, Matrix room) and, when it belongs to one, a thread (Slack thread
// ts, Matrix thread root event id).
type RoomKey struct {
	Platform Platform
	Room     string
	Thread   string
}

// String returns "platform:room" or "platform:room/thread".
func (k RoomKey) String() string {
	var b strings.Builder
	b.Grow(len(k.Platform) + len(k.Room) + len(k.Thread) + 2)
	b.WriteString(string(k.Platform))
	b.WriteByte(':')
	b.WriteString(k.Room)
	if k.Thread != "" {
		b.WriteByte('/')
		b.WriteString(k.Thread)
	}
	return b.String()
}

// Top returns the key without its thread.
func (k RoomKey) Top() RoomKey {
	k.Thread = ""
	return k
}

// EventKey is the platform's own unique key of an inbound event (Slack event
// id, Matrix event id). A redelivered event has the same key and is stored
// once.
type EventKey string

// Sender is the person (or bot) who sent an inbound message.
type Sender struct {
	// ID is the platform's user id (Slack U…, Matrix @user:server).
	ID string
	// Name is the display name, used as the Botpress user's name.
	Name string
	// AvatarURL is a public picture URL, used as the Botpress user's picture.
	AvatarURL string
	// Bot is set when the platform says the sender is a bot.
	Bot bool
}

// File is a file a person sent. The bridge turns it into a URL the bot can
// fetch: a signed link back to the bridge, which asks the adapter for the
// bytes (FileOpener), or the permalink when the bridge has no public URL.
type File struct {
	Name     string `json:"name"`
	MIMEType string `json:"mime,omitempty"`
	Size     int64  `json:"size,omitempty"`
	// Ref is the adapter's own handle for the file, given back to
	// FileOpener.OpenFile.
	Ref string `json:"ref"`
	// Permalink is a link people can open on the platform.
	Permalink string `json:"permalink,omitempty"`
}

// Action is a click on a button or a choice in a select menu that the bridge
// posted for the bot.
type Action struct {
	// Value is sent to the bot.
	Value string `json:"value"`
	// Label is what the person saw.
	Label string `json:"label,omitempty"`
	// MessageID is the platform id of the message that held the control.
	MessageID string `json:"messageId,omitempty"`
}

// Inbound is a message from a platform, as an adapter hands it to the bridge.
type Inbound struct {
	// Key identifies the event for de-duplication; required.
	Key EventKey `json:"key"`
	// Room is where it was said; Thread is set when it was said in a thread.
	Room RoomKey `json:"room"`
	// RoomName is a human name of the room (Slack #channel, Matrix alias) that
	// routes may match on; optional.
	RoomName string `json:"roomName,omitempty"`
	// MessageID is the platform id of the message itself (Slack ts, Matrix
	// event id). In thread scope a top-level message starts a thread under it.
	MessageID string `json:"messageId,omitempty"`
	Sender    Sender `json:"sender"`
	// DM is set in direct conversations with the bot (Slack im, Matrix rooms
	// of two members).
	DM bool `json:"dm,omitempty"`
	// Mentioned is set when the message mentions the bot; the adapter has
	// already removed the mention from Text.
	Mentioned bool `json:"mentioned,omitempty"`
	// Text is the message text in Markdown, mentions of others resolved to
	// names.
	Text   string  `json:"text,omitempty"`
	Files  []File  `json:"files,omitempty"`
	Action *Action `json:"action,omitempty"`
	// Edited marks a person's edit of an earlier message, sent to the bot as a
	// new message.
	Edited bool      `json:"edited,omitempty"`
	Time   time.Time `json:"time"`
	// Team is the workspace the room belongs to (a Slack team id, or the
	// enterprise id of an org-wide install), which routes may name; empty on
	// other platforms.
	Team string `json:"team,omitempty"`
	// Reaction, Command and Event mark inbound that is not a message: a
	// person's reaction to a message of the bot, a slash command, something
	// that happened in the room (see events.go). At most one is set.
	Reaction *Reaction `json:"reaction,omitempty"`
	Command  *Command  `json:"command,omitempty"`
	Event    *Event    `json:"event,omitempty"`
}

// Outbound is a bot message for an adapter to post.
type Outbound struct {
	// ID is the Chat API message id; adapters use it as an idempotency key
	// (Matrix transaction id). Notices of the bridge itself have ids that
	// start with "notice-".
	ID chat.MessageID
	// Bot is the name of the bot that sent it.
	Bot string
	// Room is where to post it, thread included.
	Room RoomKey
	// ReplyTo is the platform id of the message being answered, and
	// ReplyToUser the person who sent it; both may be empty.
	ReplyTo     string
	ReplyToUser string
	Payload     chat.Payload
	// Time is when the bot sent it.
	Time time.Time
	// Posted holds the parts of the message already on the platform (posted
	// by an earlier attempt, or found by Recoverer.FindSent); Send posts
	// only the others. Empty for a first attempt.
	Posted Parts
	// Ephemeral asks for a message only ReplyToUser sees (the answer to a
	// slash command the route answers privately); platforms without such
	// messages post it as usual.
	Ephemeral bool
}

// Scope says how platform messages map to Botpress conversations.
type Scope string

// Conversation scopes.
const (
	// ScopeThread gives each thread its own conversation; a top-level message
	// starts a thread.
	ScopeThread Scope = "thread"
	// ScopeRoom gives the room one conversation shared by everyone in it.
	ScopeRoom Scope = "room"
	// ScopeUser gives each person their own conversation per room.
	ScopeUser Scope = "user"
)

// Valid reports whether s is a known scope.
func (s Scope) Valid() bool { return s == ScopeThread || s == ScopeRoom || s == ScopeUser }

// ConvKey identifies a conversation of the bridge independently of its
// Botpress id: which bot, which scope, which room (and thread in thread
// scope), which person (in user scope).
type ConvKey struct {
	Bot   string
	Scope Scope
	Room  RoomKey
	User  string
}

// String returns a readable form for logs.
func (k ConvKey) String() string {
	s := k.Bot + "/" + string(k.Scope) + "/" + k.Room.String()
	if k.User != "" {
		s += "/" + k.User
	}
	return s
}

// ReplyTarget is where a conversation's bot replies are posted: the room and
// thread of the last message the bot was sent, that message and its sender.
type ReplyTarget struct {
	Room      RoomKey
	MessageID string
	UserID    string
	// Ephemeral makes the replies visible to UserID alone (the answers to a
	// slash command the route answers privately).
	Ephemeral bool
}
