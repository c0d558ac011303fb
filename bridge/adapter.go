package bridge

import (
	"context"
	"errors"
	"io"
	"slices"

	"github.com/botbridge/botbridge/chat"
)

// Handler receives inbound messages from an adapter.
type Handler interface {
	// HandleInbound decides whether the bridge answers the message and, if so,
	// stores it durably. It blocks on the store. A nil error means the event
	// is safe to acknowledge to the platform: it was stored, was a duplicate
	// of a stored event, or was deliberately ignored. Any other error means it
	// was not stored; the adapter must not acknowledge it, so that the
	// platform delivers it again.
	HandleInbound(ctx context.Context, in Inbound) error
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, in Inbound) error

// HandleInbound calls f.
func (f HandlerFunc) HandleInbound(ctx context.Context, in Inbound) error { return f(ctx, in) }

// Adapter connects one chat platform to the bridge. Optional capabilities
// (Editor, Deleter, Typer, Streamer, FileOpener, Recoverer, TextChoices,
// Checker) are
// separate interfaces found by type assertion.
type Adapter interface {
	// Platform names the platform; RoomKeys of its inbound messages carry it.
	Platform() Platform
	// Run connects to the platform and hands every inbound message to h,
	// acknowledging an event to the platform only after h returned nil. It
	// blocks until ctx ends (then it returns nil) or the adapter cannot go on
	// (a configuration error); transient failures are retried inside.
	Run(ctx context.Context, h Handler) error
	// Send posts out into out.Room, rendered for the platform as one or more
	// messages (its parts: a long text split, media uploaded one by one). It
	// posts only the parts out.Posted does not hold (posted by an earlier
	// attempt, or found by Recoverer.FindSent) and returns the platform ids
	// of every part, in order. It blocks until the platform accepted them,
	// waiting out rate limits. On failure it returns the parts posted so far
	// (empty strings for the others) with the error, so that the next
	// attempt posts only the rest. The bridge calls Send for one room at a
	// time, in order. An error wrapped with Permanent is not retried; one
	// wrapped with NoAccess is retried for a bounded time; any other error
	// is retried with backoff.
	Send(ctx context.Context, out Outbound) (Parts, error)
}

// Editor is an adapter that can replace the content of a message it posted.
type Editor interface {
	// Edit replaces the content of the message posted as the parts posted
	// with p: it updates the parts p still needs, deletes the others, and
	// posts the parts p needs beyond them. It returns the parts the message
	// now has. It blocks on the platform and returns its error.
	Edit(ctx context.Context, room RoomKey, posted Parts, p chat.Payload) (Parts, error)
}

// Deleter is an adapter that can delete a message it posted.
type Deleter interface {
	// Delete removes every part of a message from room; parts already gone
	// are not an error. It blocks on the platform and returns its error.
	Delete(ctx context.Context, room RoomKey, posted Parts) error
}

// Typer is an adapter that can show that the bot is working on an answer.
type Typer interface {
	// Typing shows (on) or hides (off) the indicator in t.Room for the message
	// t.MessageID. It does I/O; errors are for logging only.
	Typing(ctx context.Context, t ReplyTarget, on bool) error
}

// Streamer is an adapter with a native way to post a message that grows
// (Slack's chat streaming). Adapters that only implement Editor get streamed
// replies as a posted message that the bridge edits as it grows.
type Streamer interface {
	// StartStream posts the beginning of a streamed reply to out.Room (the
	// payload of out is ignored) and returns the platform id of the message.
	StartStream(ctx context.Context, out Outbound, text string) (platformID string, err error)
	// AppendStream adds text to the streamed message.
	AppendStream(ctx context.Context, room RoomKey, platformID, text string) error
	// StopStream ends the stream with the final payload and returns the
	// parts the message now has (a long final payload may need more than
	// one).
	StopStream(ctx context.Context, room RoomKey, platformID string, final chat.Payload) (Parts, error)
}

// FileOpener is an adapter that can hand over the bytes of a file a person
// sent (File.Ref), so that the bridge can serve it to the bot.
type FileOpener interface {
	// OpenFile opens the file; the caller closes the reader. It does I/O and
	// returns an error wrapping ErrNotFound when the file is gone.
	OpenFile(ctx context.Context, ref string) (body io.ReadCloser, mimeType string, err error)
}

// Recoverer is an adapter that can tell, after a crash, whether a message was
// already posted. The bridge asks before posting a delivery again that was
// being posted when the process stopped.
type Recoverer interface {
	// FindSent looks for the parts of out, identified by out.ID, in out.Room
	// and returns the platform id of each part it found, in order, with
	// empty strings for the parts that are not there; an empty result means
	// none is. Send then posts only the missing parts. It does I/O and
	// returns the platform's error when it cannot look.
	FindSent(ctx context.Context, out Outbound) (Parts, error)
}

// TextChoices is an adapter whose platform has no buttons: a person answers
// the options of a choice, dropdown or card (render.Offered) by typing the
// option's number or label. The bridge records each offer it posts there
// and turns a matching answer from a person the route lets talk to the bot
// into the option's value.
type TextChoices interface {
	// AnswersByText marks the capability; it does nothing.
	AnswersByText()
}

// Checker is an adapter that can say whether it is connected and working.
type Checker interface {
	// Ready returns nil when the adapter is connected, or why not.
	Ready() error
}

// Permanent marks err as a failure that retrying will not fix (a room that
// no longer exists, content the platform refuses). It returns nil for nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err}
}

type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// IsPermanent reports whether err was marked with Permanent.
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

// ErrNoAccess is the reason of a post refused because the bot cannot post in
// the room (any more): it is not a member, was removed or kicked, or the room
// is archived or gone. Inviting the bot back fixes it, so the bridge retries
// for a bounded time (bridge.Config.NoAccessTimeout) before it gives the
// reply up, and tries the room's next replies once each.
var ErrNoAccess = errors.New("the bot cannot post in this room")

// NoAccess marks err as a refusal because the bot cannot post in the room;
// errors.Is(err, ErrNoAccess) then holds. It returns nil for nil.
func NoAccess(err error) error {
	if err == nil {
		return nil
	}
	return &noAccessError{err}
}

type noAccessError struct{ err error }

func (e *noAccessError) Error() string   { return e.err.Error() }
func (e *noAccessError) Unwrap() []error { return []error{e.err, ErrNoAccess} }

// Parts are the platform ids of the messages one Outbound was posted as, in
// order; an empty string stands for a part not posted.
type Parts []string

// Complete reports whether every part was posted (and there is at least one).
func (p Parts) Complete() bool { return len(p) > 0 && !slices.Contains(p, "") }

// Found reports whether any part was posted.
func (p Parts) Found() bool { return slices.ContainsFunc(p, func(s string) bool { return s != "" }) }

// First returns the id of the first part, the one a growing message's edits
// and a reply's relation refer to; "" when it was not posted.
func (p Parts) First() string {
	if len(p) == 0 {
		return ""
	}
	return p[0]
}
