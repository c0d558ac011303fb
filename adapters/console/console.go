// Package console is a terminal adapter: each line read is a message from
// one local person in one room, and the bot's messages are printed as lines
// starting with "bot> ". It backs `botbridge demo` and lets anyone try a bot
// without a chat platform.
package console

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/botbridge/botbridge/bridge"
	"github.com/botbridge/botbridge/bridge/render"
)

// Platform is the console's platform name.
const Platform = bridge.PlatformConsole

// Room is the console's only room.
const Room = "console"

// Prefix starts every line the bot says.
const Prefix = "bot> "

// Config configures an Adapter.
type Config struct {
	// In is read line by line, each line a message; Out receives the bot's
	// messages. Both required.
	In  io.Reader
	Out io.Writer
	// UserID and UserName identify the person at the terminal. Defaults
	// "local" and "You".
	UserID, UserName string
	// Session makes event keys unique across runs on the same store (the
	// same line typed in two runs is two messages). Default: the start time.
	Session string
	Logger  *slog.Logger
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Adapter reads messages from in and prints the bot's to out.
type Adapter struct {
	in   io.Reader
	out  io.Writer
	opts Config
	log  *slog.Logger

	mu  sync.Mutex // serialises writes to out
	eof chan struct{}
}

var _ bridge.Adapter = (*Adapter)(nil)

// New returns an adapter on cfg.In and cfg.Out.
func New(cfg Config) *Adapter {
	opts := cfg
	if opts.UserID == "" {
		opts.UserID = "local"
	}
	if opts.UserName == "" {
		opts.UserName = "You"
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Session == "" {
		opts.Session = strconv.FormatInt(opts.Now().UnixNano(), 36)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	a := &Adapter{in: opts.In, out: opts.Out, opts: opts, log: opts.Logger.With(bridge.LogComponent, "console"), eof: make(chan struct{})}
	return a
}

// Platform implements bridge.Adapter.
func (a *Adapter) Platform() bridge.Platform { return Platform }

// EOF is closed when the input has ended.
func (a *Adapter) EOF() <-chan struct{} { return a.eof }

// Run implements bridge.Adapter: it reads lines until the input ends, hands
// each non-empty one to h, then blocks until ctx ends. A line the bridge
// could not store is retried; it returns nil.
func (a *Adapter) Run(ctx context.Context, h bridge.Handler) error {
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(a.in)
		sc.Buffer(make([]byte, 64*1024), 1<<20)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-ctx.Done():
				return
			}
		}
		if err := sc.Err(); err != nil {
			a.log.Error("read input", bridge.LogErr, err)
		}
	}()
	n := 0
	for {
		select {
		case <-ctx.Done():
			return nil
		case line, ok := <-lines:
			if !ok {
				close(a.eof)
				<-ctx.Done()
				return nil
			}
			if strings.TrimSpace(line) == "" {
				continue
			}
			n++
			if err := a.handle(ctx, h, n, line); err != nil {
				return nil // ctx ended
			}
		}
	}
}

func (a *Adapter) handle(ctx context.Context, h bridge.Handler, n int, line string) error {
	room := bridge.RoomKey{Platform: Platform, Room: Room}
	key := a.opts.Session + "-" + strconv.Itoa(n)
	in := bridge.Inbound{
		Key:       bridge.EventKey(key),
		Room:      room,
		MessageID: key,
		Sender:    bridge.Sender{ID: a.opts.UserID, Name: a.opts.UserName},
		DM:        true,
		Text:      line,
		Time:      a.opts.Now(),
	}
	for attempt := 1; ; attempt++ {
		err := h.HandleInbound(ctx, in)
		if err == nil {
			return nil
		}
		a.log.Error("message not stored; retrying", bridge.LogErr, err, "attempt", attempt)
		t := time.NewTimer(min(time.Duration(attempt)*time.Second, 10*time.Second))
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// AnswersByText implements bridge.TextChoices: the next line may answer a
// choice with its number or label, which the bridge turns into the option's
// value.
func (a *Adapter) AnswersByText() {}

// Send implements bridge.Adapter: it prints the message, each line starting
// with "bot> ". Choices and card buttons are numbered; the next line may
// answer with the number or the label.
func (a *Adapter) Send(ctx context.Context, out bridge.Outbound) (bridge.Parts, error) {
	if out.Room.Platform != Platform {
		return nil, bridge.Permanent(fmt.Errorf("console: room %s is not a console room", out.Room))
	}
	text := render.PlainText(out.Payload)
	if len(render.Offered(out.Payload)) > 0 {
		text += "\n(answer with a number or a label)"
	}
	var b strings.Builder
	for l := range strings.SplitSeq(text, "\n") {
		b.WriteString(Prefix)
		b.WriteString(l)
		b.WriteByte('\n')
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, err := io.WriteString(a.out, b.String()); err != nil {
		if errors.Is(err, io.ErrClosedPipe) {
			return nil, bridge.Permanent(fmt.Errorf("console: write: %w", err))
		}
		return nil, fmt.Errorf("console: write: %w", err)
	}
	return bridge.Parts{string(out.ID)}, nil
}
