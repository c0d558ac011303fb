package chat

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"time"

	"github.com/botbridge/botbridge/bridge/logging"
	"github.com/botbridge/botbridge/bridge/retry"
	sse "github.com/tmaxmax/go-sse"
)

// Stream tuning.
const (
	// DefaultIdleTimeout is how long a stream may stay silent, keepalive
	// pings included, before Listen drops it and reconnects. The server pings
	// every 30 s.
	DefaultIdleTimeout = 60 * time.Second
	// DefaultMaxBackoff caps the wait between reconnects.
	DefaultMaxBackoff = 30 * time.Second
	// MaxFrameBytes is the largest SSE frame Listen reads; a larger one
	// drops the connection (and the caller's catch-up finds the message).
	MaxFrameBytes = 2 << 20

	listenInitialBackoff = time.Second
	// healthyAfter is how long a connection must last, without any frame,
	// for the next failure to start the backoff from the beginning again.
	healthyAfter = 30 * time.Second
	// maxErrorBody bounds what Listen reads of a refused stream's answer.
	maxErrorBody = 64 << 10
	// skipLogEvery spaces the log lines about skipped frames of one stream.
	skipLogEvery = time.Minute
)

// ErrIdleTimeout is matched by errors.Is in the error given to
// ListenHandler.OnDisconnect when a stream stayed silent for longer than the
// idle timeout.
var ErrIdleTimeout = errors.New("stream idle")

// ListenHandler receives what Listen sees. Its functions are called one at a
// time on the goroutine that called Listen; while one runs, the stream is not
// read and its idle timer is stopped, so they should return quickly.
type ListenHandler struct {
	// OnConnect, if set, is called after each successful (re)connect,
	// before any signal of that connection. Signals sent while the stream
	// was down are lost, so this is where a caller lists what it missed.
	OnConnect func(ctx context.Context)
	// OnSignal is called for every signal, in stream order. Required.
	OnSignal func(ctx context.Context, s Signal)
	// OnDisconnect, if set, is called each time a connection attempt fails
	// or an open stream ends and Listen is going to try again, with the
	// reason (matching ErrIdleTimeout after silence, or an *Error) and the
	// wait before the next attempt. For logging and metrics.
	OnDisconnect func(err error, retryIn time.Duration)
	// IdleTimeout is how long a stream may stay silent before it is dropped
	// and reopened. Default DefaultIdleTimeout.
	IdleTimeout time.Duration
	// MaxBackoff caps the wait between reconnects. Default DefaultMaxBackoff.
	MaxBackoff time.Duration
}

// Listen opens the conversation's event stream as the key's user and keeps it
// open until ctx ends, reconnecting with capped exponential backoff (or the
// server's Retry-After, up to the client's RetryPolicy.MaxRetryAfter) after
// network errors, server errors, a closed stream or IdleTimeout of silence. It blocks the calling goroutine, which also runs
// the handler. Keepalive pings are consumed; frames that are not signals are
// skipped and logged. It returns ctx.Err() when ctx ends, and an *Error
// without retrying when the server refuses the stream for good (4xx other
// than 408 and 429: 401 bad key, 403 not a participant, 404), or an error at
// once for invalid arguments.
func (c *Client) Listen(ctx context.Context, key UserKey, conv ConversationID, h ListenHandler) error {
	const op = "listen"
	if key == "" {
		return fmt.Errorf("chat: %s: %w", op, ErrNoKey)
	}
	if err := requireID("conversation id", conv); err != nil {
		return fmt.Errorf("chat: %s: %w", op, err)
	}
	if h.OnSignal == nil {
		return fmt.Errorf("chat: %s: ListenHandler.OnSignal is nil", op)
	}
	if h.IdleTimeout <= 0 {
		h.IdleTimeout = DefaultIdleTimeout
	}
	if h.MaxBackoff <= 0 {
		h.MaxBackoff = DefaultMaxBackoff
	}
	l := &listener{
		c:    c,
		key:  key,
		conv: conv,
		h:    h,
		url:  c.base + "/conversations/" + seg(conv) + "/listen",
		log:  c.log.With(logKeyConversation, string(conv)),
	}
	var b *retry.Backoff
	for {
		err := l.connect(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var e *Error
		if errors.As(err, &e) && e.Status >= 400 && e.Status < 500 && !e.Temporary() {
			return e
		}
		if b == nil {
			b = retry.Policy{Min: listenInitialBackoff, Max: h.MaxBackoff, MaxServerWait: c.retry.MaxRetryAfter}.New()
		}
		if l.healthy() {
			b.Reset()
		}
		d := b.Next(err)
		l.log.DebugContext(ctx, "stream down", logKeyErr, err, logKeyWait, d)
		if h.OnDisconnect != nil {
			h.OnDisconnect(err, d)
		}
		if err := c.clock.Wait(ctx, d); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("chat: %s: wait: %w", op, err)
		}
	}
}

// listener is the state of one Listen call.
type listener struct {
	c    *Client
	key  UserKey
	conv ConversationID
	h    ListenHandler
	url  string
	log  *slog.Logger

	// Per connection.
	connectedAt time.Time // zero until the server accepted the stream
	frames      int

	// skips rate-limits the skipped-frame log.
	skips logging.Limiter
}

// healthy reports whether the last connection proved the server well: it
// delivered a frame or stayed open for a while.
func (l *listener) healthy() bool {
	if l.connectedAt.IsZero() {
		return false
	}
	return l.frames > 0 || l.c.clock.Now().Sub(l.connectedAt) >= healthyAfter
}

// connect runs one connection until it fails or ctx ends.
//
// It sends the request itself and hands only the body to go-sse's parser
// (sse.Read): a go-sse Connection would add its own retry machinery, a
// per-connection random source (5 KB) and copies of the request, which
// thousands of idle streams pay for, and it hides the status and Retry-After
// of a refused stream unless they are smuggled through its validator.
func (l *listener) connect(ctx context.Context) error {
	l.connectedAt, l.frames = time.Time{}, 0
	cctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	// The idle timer covers the wait for the response headers too, so a
	// server that accepts the connection and says nothing cannot hang us.
	idle := time.AfterFunc(l.h.IdleTimeout, func() { cancel(ErrIdleTimeout) })
	defer idle.Stop()
	err := l.stream(ctx, cctx, idle)
	if errors.Is(context.Cause(cctx), ErrIdleTimeout) && ctx.Err() == nil {
		return fmt.Errorf("chat: listen: no frame for %v: %w", l.h.IdleTimeout, ErrIdleTimeout)
	}
	return err
}

// stream opens the stream on cctx and reads it; handlers get ctx, which
// outlives the connection.
func (l *listener) stream(ctx, cctx context.Context, idle *time.Timer) error {
	req, err := http.NewRequestWithContext(cctx, http.MethodGet, l.url, nil)
	if err != nil {
		return fmt.Errorf("chat: listen: %w", err)
	}
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Cache-Control", "no-cache")
	req.Header.Set("User-Agent", l.c.userAgent)
	req.Header.Set("x-user-key", string(l.key))
	resp, err := l.c.hc.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // its URL holds the webhook id
		}
		return fmt.Errorf("chat: listen: connect: %w", err)
	}
	defer resp.Body.Close()
	if err := l.accept(resp); err != nil {
		return err
	}
	l.connectedAt = l.c.clock.Now()
	if l.h.OnConnect != nil {
		idle.Stop()
		l.h.OnConnect(ctx)
	}
	idle.Reset(l.h.IdleTimeout)
	for ev, err := range sse.Read(resp.Body, &sse.ReadConfig{MaxEventSize: MaxFrameBytes}) {
		if err != nil {
			return fmt.Errorf("chat: listen: read: %w", err)
		}
		l.frames++
		idle.Stop()
		l.frame(ctx, ev)
		idle.Reset(l.h.IdleTimeout)
	}
	return fmt.Errorf("chat: listen: stream ended by the server: %w", io.EOF)
}

// accept decides whether a response is an event stream; otherwise it returns
// an *Error built from the answer, or a plain error for a 2xx that is not a
// stream.
func (l *listener) accept(resp *http.Response) error {
	const op = "listen"
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		return l.c.apiError(op, l.key, resp.StatusCode, resp.Header, body)
	}
	ct := resp.Header.Get("Content-Type")
	if mt, _, _ := mime.ParseMediaType(ct); mt == "text/event-stream" || ct == "" {
		return nil
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	if e := l.c.errorIn2xx(op, l.key, resp.Header, body); e != nil {
		return e
	}
	return fmt.Errorf("answer of type %q is not an event stream", ct)
}

// frame handles one SSE event.
func (l *listener) frame(ctx context.Context, ev sse.Event) {
	if ev.Type != "" && ev.Type != "message" {
		l.skip(ctx, slog.LevelDebug, fmt.Errorf("event type %q", ev.Type))
		return
	}
	if ev.Data == "ping" {
		return
	}
	s, err := ParseSignal([]byte(ev.Data))
	if err != nil {
		level := slog.LevelWarn
		if errors.Is(err, ErrUnknownSignal) {
			// New signal types appear on the server before clients know them.
			level = slog.LevelDebug
		}
		l.skip(ctx, level, err)
		return
	}
	l.h.OnSignal(ctx, s)
}

// skip logs a skipped frame, at most once per skipLogEvery per stream, with
// the number of frames skipped silently since the last line. The frame's
// data is not logged: it holds users' messages.
func (l *listener) skip(ctx context.Context, level slog.Level, reason error) {
	l.skips.Every, l.skips.Now = skipLogEvery, l.c.clock.Now
	l.skips.Log(l.log, level, "skipped", "skipped stream frame", logKeyErr, reason)
}
