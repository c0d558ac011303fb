// Package bridgetest holds what tests of the bridge and of adapters share: an
// in-memory Adapter whose inbound messages a test injects and whose posts it
// reads, and the contract suite every adapter must pass.
package bridgetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"

	"github.com/botbridge/botbridge/bridge"
	"github.com/botbridge/botbridge/chat"
)

// Post is one message an Adapter was asked to post, and its later edits.
type Post struct {
	ID  string
	Out bridge.Outbound
	// Edits holds the payloads it was replaced with, in order.
	Edits   []chat.Payload
	Deleted bool
}

// Payload returns the post's current payload: the last edit, or the
// original.
func (p Post) Payload() chat.Payload {
	if len(p.Edits) > 0 {
		return p.Edits[len(p.Edits)-1]
	}
	return p.Out.Payload
}

// Adapter is an in-memory bridge.Adapter with every optional capability
// except Streamer. Tests call Say to inject inbound messages and WaitPosts to
// read what the bridge posted. It is safe for concurrent use.
type Adapter struct {
	// Recover makes FindSent find earlier posts; without it the adapter
	// behaves like a platform that cannot look up what it posted.
	Recover bool

	platform bridge.Platform

	mu      sync.Mutex
	handler bridge.Handler
	running chan struct{}
	posts   []Post
	typing  []TypingCall
	fail    []error
	changed chan struct{}
	sends   int
	files   map[string][]byte
	subs    []chan Post
}

// TypingCall records a call of Typing.
type TypingCall struct {
	Target bridge.ReplyTarget
	On     bool
}

var (
	_ bridge.Adapter    = (*Adapter)(nil)
	_ bridge.Editor     = (*Adapter)(nil)
	_ bridge.Deleter    = (*Adapter)(nil)
	_ bridge.Typer      = (*Adapter)(nil)
	_ bridge.FileOpener = (*Adapter)(nil)
	_ bridge.Recoverer  = (*Adapter)(nil)
)

// NewAdapter returns an adapter for platform p.
func NewAdapter(p bridge.Platform) *Adapter {
	return &Adapter{platform: p, running: make(chan struct{}), changed: make(chan struct{}), files: make(map[string][]byte)}
}

// Platform implements bridge.Adapter.
func (a *Adapter) Platform() bridge.Platform { return a.platform }

// Run implements bridge.Adapter: it makes Say work and blocks until ctx
// ends. It may run again after it returned, as after a restart.
func (a *Adapter) Run(ctx context.Context, h bridge.Handler) error {
	a.mu.Lock()
	a.handler = h
	close(a.running)
	a.mu.Unlock()
	<-ctx.Done()
	a.mu.Lock()
	a.handler = nil
	a.running = make(chan struct{})
	a.mu.Unlock()
	return nil
}

// Say hands in to the bridge the way a platform event would arrive, once
// Run has started, and returns the handler's answer (nil: safe to
// acknowledge).
func (a *Adapter) Say(ctx context.Context, in bridge.Inbound) error {
	var h bridge.Handler
	for {
		a.mu.Lock()
		running := a.running
		h = a.handler
		a.mu.Unlock()
		if h != nil {
			break
		}
		select {
		case <-running:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if in.Room.Platform == "" {
		in.Room.Platform = a.platform
	}
	return h.HandleInbound(ctx, in)
}

// FailNext makes the next sends fail with the errors given, in order (wrap
// one with bridge.Permanent for a refusal).
func (a *Adapter) FailNext(errs ...error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.fail = append(a.fail, errs...)
}

// ClearFailures drops the failures FailNext queued and not used yet.
func (a *Adapter) ClearFailures() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.fail = nil
}

// Send implements bridge.Adapter. Every payload is one part.
func (a *Adapter) Send(ctx context.Context, out bridge.Outbound) (bridge.Parts, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	a.mu.Lock()
	a.sends++
	if len(a.fail) > 0 {
		err := a.fail[0]
		a.fail = a.fail[1:]
		a.mu.Unlock()
		return nil, err
	}
	if out.Room.Platform != a.platform {
		a.mu.Unlock()
		return nil, bridge.Permanent(fmt.Errorf("room %s is not on %s", out.Room, a.platform))
	}
	id := "post-" + strconv.Itoa(len(a.posts)+1)
	p := Post{ID: id, Out: out}
	a.posts = append(a.posts, p)
	a.notify()
	subs := a.subs
	a.mu.Unlock()
	for _, ch := range subs {
		select {
		case ch <- p:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return bridge.Parts{id}, nil
}

// Subscribe returns a channel that receives every post from now on. Send
// blocks when the channel is full, so the caller must keep reading.
func (a *Adapter) Subscribe(buffer int) <-chan Post {
	ch := make(chan Post, buffer)
	a.mu.Lock()
	defer a.mu.Unlock()
	a.subs = append(a.subs, ch)
	return ch
}

// FindSent implements bridge.Recoverer: with Recover set it finds an earlier
// post of out.ID.
func (a *Adapter) FindSent(ctx context.Context, out bridge.Outbound) (bridge.Parts, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.Recover {
		return nil, nil
	}
	for _, p := range a.posts {
		if p.Out.ID == out.ID {
			return bridge.Parts{p.ID}, nil
		}
	}
	return nil, nil
}

// Sends counts calls of Send, failed ones included.
func (a *Adapter) Sends() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.sends
}

// Edit implements bridge.Editor: every payload is one part.
func (a *Adapter) Edit(ctx context.Context, room bridge.RoomKey, posted bridge.Parts, p chat.Payload) (bridge.Parts, error) {
	return posted, a.change(posted.First(), func(p2 *Post) { p2.Edits = append(p2.Edits, p) })
}

// Delete implements bridge.Deleter.
func (a *Adapter) Delete(ctx context.Context, room bridge.RoomKey, posted bridge.Parts) error {
	return a.change(posted.First(), func(p *Post) { p.Deleted = true })
}

func (a *Adapter) change(id string, fn func(*Post)) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	for i := range a.posts {
		if a.posts[i].ID == id {
			fn(&a.posts[i])
			a.notify()
			return nil
		}
	}
	return bridge.Permanent(fmt.Errorf("no post %s", id))
}

// Typing implements bridge.Typer.
func (a *Adapter) Typing(ctx context.Context, t bridge.ReplyTarget, on bool) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.typing = append(a.typing, TypingCall{t, on})
	a.notify()
	return nil
}

// TypingCalls returns the calls of Typing so far.
func (a *Adapter) TypingCalls() []TypingCall {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]TypingCall(nil), a.typing...)
}

// AddFile makes a file available to OpenFile under ref.
func (a *Adapter) AddFile(ref string, body []byte) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.files[ref] = body
}

// OpenFile implements bridge.FileOpener.
func (a *Adapter) OpenFile(ctx context.Context, ref string) (io.ReadCloser, string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	b, ok := a.files[ref]
	if !ok {
		return nil, "", fmt.Errorf("file %s: %w", ref, bridge.ErrNotFound)
	}
	return io.NopCloser(bytes.NewReader(b)), "application/octet-stream", nil
}

// notify wakes waiters; a.mu must be held.
func (a *Adapter) notify() {
	close(a.changed)
	a.changed = make(chan struct{})
}

// Posts returns a copy of the posts so far.
func (a *Adapter) Posts() []Post {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]Post(nil), a.posts...)
}

// WaitPosts blocks until at least n posts exist, or ctx ends, and returns
// them.
func (a *Adapter) WaitPosts(ctx context.Context, n int) ([]Post, error) {
	return a.WaitFor(ctx, func(ps []Post) bool { return len(ps) >= n })
}

// WaitFor blocks until cond holds for the posts, or ctx ends, and returns
// them.
func (a *Adapter) WaitFor(ctx context.Context, cond func([]Post) bool) ([]Post, error) {
	for {
		a.mu.Lock()
		ps := append([]Post(nil), a.posts...)
		ch := a.changed
		a.mu.Unlock()
		if cond(ps) {
			return ps, nil
		}
		select {
		case <-ctx.Done():
			return ps, fmt.Errorf("wait for posts (have %d): %w", len(ps), context.Cause(ctx))
		case <-ch:
		}
	}
}

// ErrTransient is a failure a test makes Send return to simulate an outage.
var ErrTransient = errors.New("bridgetest: platform unavailable")

// TextAdapter is an Adapter whose platform has no buttons
// (bridge.TextChoices): people answer choices by number or label.
type TextAdapter struct{ *Adapter }

var _ bridge.TextChoices = TextAdapter{}

// AnswersByText implements bridge.TextChoices.
func (TextAdapter) AnswersByText() {}
