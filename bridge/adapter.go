package bridge

import (
	"context"
	"errors"
	"io"

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
// (Editor, Deleter, Typer, Streamer, FileOpener, Recoverer, Checker) are
// separate interfaces found by type assertion.
type Adapter interface {
	// Platform names the platform; RoomKeys of its inbound messages carry it.
	Platform() Platform
	// Run connects to the platform and hands every inbound message to h,
	// acknowledging an event to the platform only after h returned nil. It
	// blocks until ctx ends (then it returns nil) or the adapter cannot go on
	// (a configuration error); transient failures are retried inside.
	Run(ctx context.Context, h Handler) error
	// Send posts out into out.Room, rendered for the platform. It blocks until
	// the platform accepted the post, waiting out rate limits, and returns the
	// platform id of the posted message (the one later edits apply to). The
	// bridge calls Send for one room at a time, in order. An error wrapped
	// with Permanent is not retried; any other error is retried with backoff.
	Send(ctx context.Context, out Outbound) (platformID string, err error)
}

// Editor is an adapter that can replace the content of a message it posted.
type Editor interface {
	// Edit replaces the message platformID in room with p. It blocks on the
	// platform and returns its error.
	Edit(ctx context.Context, room RoomKey, platformID string, p chat.Payload) error
}

// Deleter is an adapter that can delete a message it posted.
type Deleter interface {
	// Delete removes the message platformID from room. It blocks on the
	// platform and returns its error.
	Delete(ctx context.Context, room RoomKey, platformID string) error
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
	// StopStream ends the stream with the final payload.
	StopStream(ctx context.Context, room RoomKey, platformID string, final chat.Payload) error
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
	// FindSent looks for out, identified by out.ID, in out.Room and returns
	// its platform id when it is there.
	FindSent(ctx context.Context, out Outbound) (platformID string, found bool, err error)
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
