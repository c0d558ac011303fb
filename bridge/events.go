package bridge

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode"

	"github.com/botbridge/botbridge/chat"
)

// Inbound that is not a message. People do more than write: they react to
// what the bot said, type slash commands, join rooms, move around while an
// agent thread is open. Adapters hand these to the bridge as an Inbound with
// one of Reaction, Command or Event set, under the platform's own event key,
// so that they are routed, stored before the platform is acknowledged and
// de-duplicated like any message:
//
//   - a Command is a message addressed to the bot: its text (Inbound.Text)
//     goes to the bot in the conversation the route gives the room, the
//     route's mention policy does not apply, and the answers go where the
//     route says (CommandReplies: to the person alone, or in the room);
//   - a Reaction goes to the bot in the conversation of the message it is
//     on (see reactions.go);
//   - an Event (EventJoined, EventContext) goes to the bot in the
//     conversation the route gives the room; EventJoined only when the
//     route has Welcome.
//
// Reactions and events are notices: the bot is told, and need not answer
// (no thinking indicator is shown). A bot is told of them as its
// BotSpec.Notify says: NotifyMessage sends a text message (the emoji, or a
// short line in parentheses) whose metadata says what it is; NotifyEvent
// sends a Chat API custom event (createEvent), which the bot handles apart
// from messages. Events cannot be listed in the Chat API, so a notice whose
// createEvent may have reached Botpress before a crash cannot be looked up
// like a message: it is sent again, and its payload's MetaKey ("botbridge")
// is the same both times, for the bot to tell a repeat.

// Reaction is a person's reaction to a message of the bot.
type Reaction struct {
	// Emoji is the reaction as the platform names it: a Slack short name
	// ("+1", "white_check_mark") or the emoji itself (a Matrix key, "👍").
	Emoji string `json:"emoji"`
	// Removed marks the removal of a reaction.
	Removed bool `json:"removed,omitempty"`
	// MessageID is the platform id of the message reacted to: a part of a
	// bot message the bridge posted.
	MessageID string `json:"messageId"`
	// ChatMessageID is the Chat API id of the bot message reacted to; the
	// bridge sets it when it finds the message.
	ChatMessageID chat.MessageID `json:"chatMessageId,omitempty"`
}

// Command is a slash command a person typed; its text is Inbound.Text.
type Command struct {
	// Name is the command, "/ask".
	Name string `json:"name"`
	// Reset makes the command start a new conversation instead of sending
	// its text to the bot.
	Reset bool `json:"reset,omitempty"`
	// Bot is the bot the command asks, instead of the route's: with it, two
	// bots answer in one room (say, /sales beside mentions of the support
	// bot). The route's other rules apply.
	Bot string `json:"bot,omitempty"`
	// Ephemeral is set by the bridge from the route (CommandReplies): the
	// bot's answers go to the person alone.
	Ephemeral bool `json:"ephemeral,omitempty"`
}

// Event is something that happened in a room that the bot is told about.
type Event struct {
	// Name is the kind of event: EventJoined, EventContext.
	Name string `json:"name"`
	// Text says what happened, for people (and language models): the text
	// of the message a bot with NotifyMessage gets.
	Text string `json:"text,omitempty"`
	// Data are the event's details, in the metadata of the message or the
	// payload of the Chat API event.
	Data map[string]string `json:"data,omitempty"`
}

// Kinds of Event.
const (
	// EventJoined: the sender joined the room; sent only to routes with
	// Welcome, for the bot to greet them.
	EventJoined = "joined"
	// EventContext: the context of an agent thread changed (Slack: the
	// channel the person is looking at while the assistant thread is open);
	// Data holds it.
	EventContext = "context"
)

// Notify says how a bot is told of reactions and events.
type Notify string

// Ways of telling a bot.
const (
	// NotifyMessage sends a text message with metadata (the default).
	NotifyMessage Notify = "message"
	// NotifyEvent sends a Chat API custom event.
	NotifyEvent Notify = "event"
)

// Valid reports whether n is a known way ("" is NotifyMessage).
func (n Notify) Valid() bool { return n == "" || n == NotifyMessage || n == NotifyEvent }

// CommandReply says where the answers to slash commands go.
type CommandReply string

// Places of the answers to slash commands.
const (
	// CommandReplyEphemeral shows them to the person who typed the command
	// alone (the default).
	CommandReplyEphemeral CommandReply = "ephemeral"
	// CommandReplyChannel posts them in the room for everyone.
	CommandReplyChannel CommandReply = "channel"
)

// Prompt is a suggested prompt of an agent thread: a title people see and
// the message it sends.
type Prompt struct {
	Title   string
	Message string
}

// MaxPrompts is how many suggested prompts a route may have (Slack shows
// at most four).
const MaxPrompts = 4

// notice reports whether in is a reaction or an event, which the bot is
// told of and need not answer.
func (in Inbound) notice() bool { return in.Reaction != nil || in.Event != nil }

// addressed reports whether in is meant for the bot whatever the route's
// mention policy: a mention, a click, a command, a notice.
func (in Inbound) addressed() bool {
	return in.Mentioned || in.Action != nil || in.Command != nil || in.notice()
}

// ephemeral reports whether the answers to in go to its sender alone.
func (in Inbound) ephemeral() bool { return in.Command != nil && in.Command.Ephemeral }

// admit applies the route's rules for inbound that is not a message: it
// skips welcome events of routes without Welcome (with the reason), records
// where the answers to a command go, and gives a command that names its
// bot to that bot.
func (rt *Route) admit(in *Inbound) (reason string, skipped bool) {
	if in.Event != nil && in.Event.Name == EventJoined && !rt.Welcome {
		return "the route does not welcome people (routes[].welcome)", true
	}
	if in.Command != nil {
		c := *in.Command
		c.Ephemeral = rt.CommandReplies != CommandReplyChannel
		in.Command = &c
		if c.Bot != "" {
			rt.Bot = c.Bot
		}
	}
	return "", false
}

// checkExtras checks the route's fields for commands, welcomes, prompts and
// teams; field names the route in errors.
func (rt Route) checkExtras(field string) []error {
	var errs []error
	switch rt.CommandReplies {
	case "", CommandReplyEphemeral, CommandReplyChannel:
	default:
		errs = append(errs, fmt.Errorf("%s.command_replies: %q is not ephemeral or channel", field, rt.CommandReplies))
	}
	if len(rt.Prompts) > MaxPrompts {
		errs = append(errs, fmt.Errorf("%s.prompts: %d prompts; Slack shows at most %d", field, len(rt.Prompts), MaxPrompts))
	}
	for i, p := range rt.Prompts {
		if strings.TrimSpace(p.Title) == "" || strings.TrimSpace(p.Message) == "" {
			errs = append(errs, fmt.Errorf("%s.prompts[%d]: needs a title and a message", field, i))
		}
	}
	return errs
}

// noticeText is what a bot that takes notices as messages reads: the emoji
// of a reaction, or a short line in parentheses.
func noticeText(in Inbound) string {
	switch {
	case in.Reaction != nil:
		e := emoji(in.Reaction.Emoji)
		if in.Reaction.Removed {
			return "(removed the reaction " + e + ")"
		}
		return e
	case in.Event != nil && strings.TrimSpace(in.Event.Text) != "":
		return "(" + strings.TrimSpace(in.Event.Text) + ")"
	case in.Event != nil:
		return "(" + in.Event.Name + ")"
	}
	return ""
}

// emoji writes a reaction's name as people type it: a short name between
// colons (":+1:"), an emoji as it is.
func emoji(name string) string {
	if name == "" {
		return "?"
	}
	for _, r := range name {
		if r > unicode.MaxASCII || unicode.IsSpace(r) {
			return name
		}
	}
	return ":" + name + ":"
}

// extraMetadata adds what the bot learns about a message beyond where it
// came from: the workspace, the command, the reaction or the event.
func extraMetadata(m map[string]any, in Inbound) {
	if in.Team != "" {
		m["team"] = in.Team
	}
	if c := in.Command; c != nil {
		m["command"] = c.Name
		if c.Ephemeral {
			m["ephemeral"] = true
		}
	}
	if r := in.Reaction; r != nil {
		m["reaction"] = r.Emoji
		m["reactionMessageId"] = r.MessageID
		if r.ChatMessageID != "" {
			m["reactionTo"] = string(r.ChatMessageID)
		}
		if r.Removed {
			m["reactionRemoved"] = true
		}
	}
	if e := in.Event; e != nil {
		m["event"] = e.Name
		if len(e.Data) > 0 {
			data := make(map[string]any, len(e.Data))
			for k, v := range e.Data {
				data[k] = v
			}
			m["eventData"] = data
		}
	}
}

// noticeType is the "type" of the Chat API event of a notice.
func noticeType(in Inbound) string {
	switch {
	case in.Reaction != nil && in.Reaction.Removed:
		return "reaction_removed"
	case in.Reaction != nil:
		return "reaction"
	case in.Event != nil:
		return in.Event.Name
	}
	return ""
}

// sendNotice tells the bot of a reaction or an event with a Chat API custom
// event: its payload is the metadata a message would carry, with "type" and
// "text". An event that may have been sent before (maybeSent) cannot be
// looked up (the Chat API lists messages, not events) and is sent again
// with the same MetaKey. It reports whether it sent the event.
func (s *sender) sendNotice(ctx context.Context, b *bot, conv Conversation, u User, it OutboxItem, maybeSent bool, reply ReplyTarget) (bool, error) {
	in := it.Inbound
	if it.PartsSent > 0 {
		return false, s.record(ctx, it.ID, it.PartsSent, "", true, reply)
	}
	mkey := metaKey(in, 0)
	if maybeSent {
		s.log.Info("an event for the bot may have been sent before the restart; events cannot be looked up, so it is sent again with the same key",
			LogConversation, conv.ID, LogEventKey, mkey)
	}
	payload := metadata(in, mkey)
	payload["type"] = noticeType(in)
	payload["text"] = noticeText(in)
	if !s.leases.valid(ctx) {
		return false, errLeaseEnded
	}
	if _, err := b.API.CreateEvent(ctx, u.Key, conv.ChatID, payload); err != nil {
		if ambiguous(err) {
			s.markMaybeSent(conv.ID, it.ID)
		}
		return false, s.classify(ctx, b, &conv, in, err)
	}
	if err := s.record(ctx, it.ID, 1, "", true, reply); err != nil {
		s.markMaybeSent(conv.ID, it.ID)
		return true, err
	}
	return true, nil
}

// errNoPost is the reason a reaction is ignored: it is not on a message the
// bridge posted (or one forgotten since, see bridge.Config.Retention).
var errNoPost = errors.New("not on a message of the bot")
