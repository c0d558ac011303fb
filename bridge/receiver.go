package bridge

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/botbridge/botbridge/bridge/retry"
	"github.com/botbridge/botbridge/chat"
)

// receiver is the part of the bridge the bot's messages come in through. It
// keeps one Chat API stream open per active conversation, opened on demand
// and closed when idle; after every (re)connect it lists what the stream
// missed. Every bot message is stored as a delivery (once: the store
// de-duplicates by message id) and handed to the poster; streamed replies and
// deletions go to the poster as they come.
//
// It owns the open streams.
type receiver struct {
	store   ReceiverStore
	bots    map[string]*bot
	targets interface {
		ReplyTarget(conv int64) (ReplyTarget, bool)
	}
	poster            sink
	health            *health
	metrics           Metrics
	log               *slog.Logger
	now               func() time.Time
	policy            retry.Policy
	listenIdleTimeout time.Duration

	ctx context.Context // the streams' context, set by start
	wg  sync.WaitGroup

	mu   sync.Mutex
	open map[int64]*listener
}

// sink is what the receiver needs of the poster.
type sink interface {
	// Deliver posts a stored delivery.
	Deliver(d Delivery)
	// Remove deletes a posted delivery the bot deleted.
	Remove(d Delivery)
	// StreamDelta shows a part of a reply the bot streams.
	StreamDelta(conv int64, bot string, t ReplyTarget, d chat.MessageStreamDelta)
	// StreamComplete links a streamed reply to its final message, delivered
	// next.
	StreamComplete(stream string, final chat.MessageID)
	// StreamAbort ends a streamed reply the bot gave up.
	StreamAbort(stream string)
}

// listener is one conversation's stream.
type listener struct {
	conv   int64
	chatID chat.ConversationID
	bot    *bot
	cancel context.CancelFunc
	active atomic.Int64 // unix nanoseconds of the last traffic
	// ready is closed once the stream connected and caught up the first
	// time.
	ready     chan struct{}
	readyOnce sync.Once
	// down is set while the stream is not connected; kick cuts the wait
	// before the next attempt short.
	down   atomic.Bool
	kickMu sync.Mutex
	kickFn context.CancelFunc
	kicked atomic.Bool
}

// kick makes a stream that is down try again at once.
func (l *listener) kick() {
	if !l.down.Load() {
		return
	}
	l.kickMu.Lock()
	defer l.kickMu.Unlock()
	if l.kickFn != nil {
		l.kicked.Store(true)
		l.kickFn()
	}
}

// offStack runs fn on a goroutine of its own and waits for it. A stream's
// goroutine lives as long as the stream and keeps the stack it ever needed;
// catch-up and delivery go deep (HTTP, JSON, SQLite), and thousands of idle
// streams would each keep such a stack.
func offStack(fn func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	<-done
}

// maxCatchUpPages bounds how far back a catch-up lists a conversation.
const maxCatchUpPages = 10

func (r *receiver) init() { r.open = make(map[int64]*listener) }

// start lets Watch open streams, which live until ctx ends.
func (r *receiver) start(ctx context.Context) {
	r.mu.Lock()
	r.ctx = ctx
	r.mu.Unlock()
}

// resume opens the streams of the conversations active since the time
// given, or with replies not yet posted.
func (r *receiver) resume(ctx context.Context, since time.Time) (int, error) {
	convs, err := r.store.ActiveConversations(ctx, since)
	if err != nil {
		return 0, err
	}
	for _, c := range convs {
		r.Watch(c)
	}
	return len(convs), nil
}

// wait blocks until every stream ended; their context must have ended.
func (r *receiver) wait() { r.wg.Wait() }

// Watch opens the conversation's stream unless it is open, and returns a
// channel closed once the stream is connected (nil when there is no stream
// to wait for).
func (r *receiver) Watch(c Conversation) <-chan struct{} {
	if c.ChatID == "" {
		return nil
	}
	b := r.bots[c.Key.Bot]
	if b == nil {
		return nil
	}
	r.mu.Lock()
	if l, ok := r.open[c.ID]; ok {
		if l.chatID == c.ChatID {
			l.active.Store(r.now().UnixNano())
			r.mu.Unlock()
			return l.ready
		}
		l.cancel() // remapped to a new Botpress conversation
	}
	if r.ctx == nil || r.ctx.Err() != nil {
		r.mu.Unlock()
		return nil
	}
	ctx, cancel := context.WithCancel(r.ctx)
	l := &listener{conv: c.ID, chatID: c.ChatID, bot: b, cancel: cancel, ready: make(chan struct{})}
	l.active.Store(r.now().UnixNano())
	r.open[c.ID] = l
	n := len(r.open)
	r.mu.Unlock()
	r.metrics.Listeners(n)
	r.wg.Go(func() { r.run(ctx, l) })
	return l.ready
}

// Touch records traffic on the conversation, keeping its stream open.
func (r *receiver) Touch(conv int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if l, ok := r.open[conv]; ok {
		l.active.Store(r.now().UnixNano())
	}
}

// closeIdle closes the streams without traffic since the time given.
func (r *receiver) closeIdle(before time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, l := range r.open {
		if l.active.Load() < before.UnixNano() {
			r.log.Debug("closing idle conversation stream", LogConversation, id)
			l.cancel()
			delete(r.open, id)
		}
	}
	r.metrics.Listeners(len(r.open))
}

// kick makes the streams of bot that are down reconnect at once.
func (r *receiver) kick(bot string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, l := range r.open {
		if l.bot.Name == bot {
			l.kick()
		}
	}
}

func (r *receiver) remove(l *listener) {
	r.mu.Lock()
	if r.open[l.conv] == l {
		delete(r.open, l.conv)
	}
	n := len(r.open)
	r.mu.Unlock()
	r.metrics.Listeners(n)
}

// run listens until ctx ends or the conversation is gone on the Botpress
// side; every (re)connect starts with a catch-up of what the stream missed.
func (r *receiver) run(ctx context.Context, l *listener) {
	defer r.remove(l)
	defer l.cancel()
	log := r.log.With(LogConversation, l.conv, LogChatConv, string(l.chatID), LogBot, l.bot.Name)
	var b *retry.Backoff
	for ctx.Err() == nil {
		cctx, stopConn := context.WithCancel(ctx)
		l.kickMu.Lock()
		l.kickFn = stopConn
		l.kickMu.Unlock()
		key, err := l.bot.serviceKey(cctx)
		if err == nil {
			err = l.bot.API.Listen(cctx, key, l.chatID, chat.ListenHandler{
				OnConnect: func(ctx context.Context) {
					b = nil
					l.down.Store(false)
					r.health.Up(l.bot.Name)
					offStack(func() { r.retry(ctx, "catch up on a conversation", func() error { return r.catchUp(ctx, l) }) })
					l.readyOnce.Do(func() { close(l.ready) })
				},
				OnSignal: func(ctx context.Context, s chat.Signal) {
					l.active.Store(r.now().UnixNano())
					offStack(func() { r.signal(ctx, l, s) })
				},
				OnDisconnect: func(err error, retryIn time.Duration) {
					l.down.Store(true)
					r.health.Down(l.bot.Name)
					r.metrics.StreamReconnect(l.bot.Name)
					log.Debug("conversation stream down", LogErr, err, LogWait, retryIn)
				},
				IdleTimeout: r.listenIdleTimeout,
				MaxBackoff:  r.policy.Max,
			})
		}
		stopConn()
		if ctx.Err() != nil {
			return
		}
		if l.kicked.Swap(false) {
			b = nil
			continue // the bot answers again: reconnect now
		}
		l.down.Store(true)
		switch {
		case errors.Is(err, chat.ErrNotFound), errors.Is(err, chat.ErrForbidden):
			log.Warn("conversation gone on the Botpress side; its stream is closed until the next message remaps it", LogErr, err)
			return
		case errors.Is(err, chat.ErrUnauthorized):
			log.Error("Botpress refuses the bridge's service user key; check bots[].encryption_key", LogErr, err)
			if ferr := l.bot.forget(ctx, servicePlatform, serviceID); ferr != nil {
				log.Error("forget service user", LogErr, ferr)
			}
		default:
			r.health.Down(l.bot.Name)
		}
		if b == nil {
			b = r.policy.New()
		}
		d := b.Next(err)
		log.Warn("conversation stream failed; will retry", LogErr, err, LogWait, d)
		if retry.Wait(ctx, d) != nil {
			return
		}
	}
}

// catchUp lists the conversation back to its cursor and delivers the bot
// messages the stream missed, oldest first.
func (r *receiver) catchUp(ctx context.Context, l *listener) error {
	conv, err := r.store.Conversation(ctx, l.conv)
	if err != nil {
		return err
	}
	key, err := l.bot.serviceKey(ctx)
	if err != nil {
		return err
	}
	var missed []chat.Message
	token := ""
	for range maxCatchUpPages {
		msgs, next, err := l.bot.API.ListMessagesPage(ctx, key, l.chatID, token)
		if err != nil {
			return err
		}
		past := false
		for _, m := range msgs {
			if !conv.Cursor.IsZero() && m.CreatedAt.Before(conv.Cursor) {
				past = true
				break
			}
			if isBotMessage(m) {
				missed = append(missed, m)
			}
		}
		if past || next == "" {
			break
		}
		token = next
	}
	slices.Reverse(missed)
	for _, m := range missed {
		if err := r.deliver(ctx, l, m); err != nil {
			return err
		}
	}
	return nil
}

// isBotMessage tells the bot's messages from the ones the bridge sent,
// which all carry MetaKey.
func isBotMessage(m chat.Message) bool {
	_, ours := m.Metadata[MetaKey]
	return !ours && m.UserID != chat.UserID(serviceChatID)
}

func (r *receiver) signal(ctx context.Context, l *listener, s chat.Signal) {
	switch s := s.(type) {
	case chat.MessageCreated:
		if !s.IsBot {
			return
		}
		r.retry(ctx, "store a bot message", func() error { return r.deliver(ctx, l, s.Message) })
	case chat.MessageStreamDelta:
		t, err := r.target(ctx, l.conv)
		if err != nil {
			r.log.Warn("stream delta for an unknown conversation", LogConversation, l.conv, LogErr, err)
			return
		}
		r.poster.StreamDelta(l.conv, l.bot.Name, t, s)
	case chat.MessageStreamComplete:
		r.poster.StreamComplete(s.StreamID, s.Message.ID)
		r.retry(ctx, "store a bot message", func() error { return r.deliver(ctx, l, s.Message) })
	case chat.MessageStreamAbort:
		r.poster.StreamAbort(s.StreamID)
	case chat.MessageDeleted:
		r.deleted(ctx, s.ID)
	default:
		r.log.Debug("signal ignored", "type", s.SignalType(), LogConversation, l.conv)
	}
}

// target returns where the conversation's replies go now.
func (r *receiver) target(ctx context.Context, conv int64) (ReplyTarget, error) {
	if t, ok := r.targets.ReplyTarget(conv); ok {
		return t, nil
	}
	c, err := r.store.Conversation(ctx, conv)
	if err != nil {
		return ReplyTarget{}, err
	}
	t := c.Reply
	if t.Room.Room == "" {
		t.Room = c.Key.Room
	}
	return t, nil
}

// deliver stores a bot message and hands it to the poster.
func (r *receiver) deliver(ctx context.Context, l *listener, m chat.Message) error {
	t, _ := r.targets.ReplyTarget(l.conv) // else the store takes the conversation's
	d, created, err := r.store.AddDelivery(ctx, Delivery{
		MessageID:    m.ID,
		Conversation: l.conv,
		Bot:          l.bot.Name,
		Target:       t,
		Payload:      m.Payload,
		CreatedAt:    m.CreatedAt,
	})
	if err != nil || !created {
		return err
	}
	l.active.Store(r.now().UnixNano())
	r.poster.Deliver(d)
	return nil
}

// deleted removes a posted bot message the bot deleted, where the platform
// can.
func (r *receiver) deleted(ctx context.Context, id chat.MessageID) {
	d, err := r.store.Delivery(ctx, id)
	if err != nil {
		if !errors.Is(err, ErrNotFound) {
			r.log.Warn("look up deleted message", LogMessage, string(id), LogErr, err)
		}
		return
	}
	r.poster.Remove(d)
}

// retry runs fn until it succeeds or ctx ends.
func (r *receiver) retry(ctx context.Context, what string, fn func() error) {
	_ = retry.Until(ctx, r.policy, fn, func(attempt int, err error, wait time.Duration) {
		r.log.Warn(what+" failed; will retry", LogErr, err, LogWait, wait, "attempt", attempt)
	})
}
