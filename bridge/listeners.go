package bridge

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/botbridge/botbridge/chat"
)

// listeners keeps one Chat API stream open per active conversation, opened
// on demand and closed when idle.
type listeners struct {
	e *Engine

	mu   sync.Mutex
	open map[int64]*listener
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

func newListeners(e *Engine) *listeners {
	return &listeners{e: e, open: make(map[int64]*listener)}
}

// ensure opens the conversation's stream unless it is open, and returns a
// channel closed once the stream is connected (nil when there is no stream
// to wait for).
func (ls *listeners) ensure(c Conversation) <-chan struct{} {
	e := ls.e
	if c.ChatID == "" {
		return nil
	}
	b := e.bots[c.Key.Bot]
	if b == nil {
		return nil
	}
	ls.mu.Lock()
	if l, ok := ls.open[c.ID]; ok {
		if l.chatID == c.ChatID {
			l.active.Store(e.now().UnixNano())
			ls.mu.Unlock()
			return l.ready
		}
		l.cancel() // remapped to a new Botpress conversation
	}
	if e.work == nil || e.work.Err() != nil {
		ls.mu.Unlock()
		return nil
	}
	ctx, cancel := context.WithCancel(e.work)
	l := &listener{conv: c.ID, chatID: c.ChatID, bot: b, cancel: cancel, ready: make(chan struct{})}
	l.active.Store(e.now().UnixNano())
	ls.open[c.ID] = l
	n := len(ls.open)
	ls.mu.Unlock()
	e.metrics.Listeners(n)
	e.wg.Go(func() { ls.run(ctx, l) })
	return l.ready
}

// touch records traffic on the conversation, keeping its stream open.
func (ls *listeners) touch(conv int64) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if l, ok := ls.open[conv]; ok {
		l.active.Store(ls.e.now().UnixNano())
	}
}

func (ls *listeners) isOpen(conv int64) bool {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	_, ok := ls.open[conv]
	return ok
}

// closeIdle closes the streams without traffic since the time given.
func (ls *listeners) closeIdle(before time.Time) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	for id, l := range ls.open {
		if l.active.Load() < before.UnixNano() {
			ls.e.log.Debug("closing idle conversation stream", LogConversation, id)
			l.cancel()
			delete(ls.open, id)
		}
	}
	ls.e.metrics.Listeners(len(ls.open))
}

// kick makes the streams of bot that are down reconnect at once.
func (ls *listeners) kick(bot string) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	for _, l := range ls.open {
		if l.bot.Name == bot {
			l.kick()
		}
	}
}

// downBots returns the bots with streams that are down.
func (ls *listeners) downBots() []string {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	var bots []string
	for _, l := range ls.open {
		if l.down.Load() && !slices.Contains(bots, l.bot.Name) {
			bots = append(bots, l.bot.Name)
		}
	}
	return bots
}

func (ls *listeners) remove(l *listener) {
	ls.mu.Lock()
	if ls.open[l.conv] == l {
		delete(ls.open, l.conv)
	}
	n := len(ls.open)
	ls.mu.Unlock()
	ls.e.metrics.Listeners(n)
}

// run listens until ctx ends or the conversation is gone on the Botpress
// side; every (re)connect starts with a catch-up of what the stream missed.
func (ls *listeners) run(ctx context.Context, l *listener) {
	e := ls.e
	defer ls.remove(l)
	defer l.cancel()
	log := e.log.With(LogConversation, l.conv, LogChatConv, string(l.chatID), LogBot, l.bot.Name)
	for attempt := 1; ctx.Err() == nil; attempt++ {
		cctx, stopConn := context.WithCancel(ctx)
		l.kickMu.Lock()
		l.kickFn = stopConn
		l.kickMu.Unlock()
		key, err := l.bot.serviceKey(cctx)
		if err == nil {
			err = l.bot.API.Listen(cctx, key, l.chatID, chat.ListenHandler{
				OnConnect: func(ctx context.Context) {
					attempt = 0
					l.down.Store(false)
					offStack(func() {
						e.retry(ctx, "catch up on a conversation", func() error { return ls.catchUp(ctx, l) })
					})
					l.readyOnce.Do(func() { close(l.ready) })
				},
				OnSignal: func(ctx context.Context, s chat.Signal) {
					l.active.Store(e.now().UnixNano())
					offStack(func() { ls.signal(ctx, l, s) })
				},
				OnDisconnect: func(err error, retryIn time.Duration) {
					l.down.Store(true)
					e.metrics.StreamReconnect(l.bot.Name)
					log.Debug("conversation stream down", LogErr, err, LogWait, retryIn)
				},
				IdleTimeout: e.cfg.ListenIdleTimeout,
				MaxBackoff:  e.cfg.RetryMax,
			})
		}
		stopConn()
		if ctx.Err() != nil {
			return
		}
		if l.kicked.Swap(false) {
			attempt = 0
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
		}
		d := retryDelay(attempt, e.cfg.RetryMin, e.cfg.RetryMax, err)
		log.Warn("conversation stream failed; will retry", LogErr, err, LogWait, d)
		if e.wait(ctx, d) != nil {
			return
		}
	}
}

// catchUp lists the conversation back to its cursor and delivers the bot
// messages the stream missed, oldest first.
func (ls *listeners) catchUp(ctx context.Context, l *listener) error {
	e := ls.e
	conv, err := e.conversation(ctx, l.conv)
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
		if err := e.deliver(ctx, l.conv, m); err != nil {
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

func (ls *listeners) signal(ctx context.Context, l *listener, s chat.Signal) {
	e := ls.e
	switch s := s.(type) {
	case chat.MessageCreated:
		if !s.IsBot {
			return
		}
		e.retry(ctx, "store a bot message", func() error { return e.deliver(ctx, l.conv, s.Message) })
	case chat.MessageStreamDelta:
		e.streams.delta(ctx, l.conv, s)
	case chat.MessageStreamComplete:
		e.streams.complete(ctx, l.conv, s)
	case chat.MessageStreamAbort:
		e.streams.abort(ctx, l.conv, s)
	case chat.MessageDeleted:
		e.deleted(ctx, s.ID)
	default:
		e.log.Debug("signal ignored", "type", s.SignalType(), LogConversation, l.conv)
	}
}

// deliver stores a bot message and queues it for its room.
func (e *Engine) deliver(ctx context.Context, conv int64, m chat.Message) error {
	c, err := e.conversation(ctx, conv)
	if err != nil {
		return err
	}
	target := c.Reply
	if target.Room.Room == "" {
		target.Room = c.Key.Room
	}
	d, created, err := e.store.AddDelivery(ctx, Delivery{
		MessageID:    m.ID,
		Conversation: conv,
		Bot:          c.Key.Bot,
		Target:       target,
		Payload:      m.Payload,
		CreatedAt:    m.CreatedAt,
	})
	if err != nil {
		return err
	}
	e.updateConversation(conv, func(c *Conversation) {
		if m.CreatedAt.After(c.Cursor) {
			c.Cursor = m.CreatedAt
		}
	})
	if !created {
		return nil
	}
	e.replied(ctx, conv)
	e.listeners.touch(conv)
	e.rooms.push(target.Room, job{delivery: &d})
	return nil
}

// deleted removes a posted bot message the bot deleted, where the platform
// can.
func (e *Engine) deleted(ctx context.Context, id chat.MessageID) {
	d, err := e.store.Delivery(ctx, id)
	if err != nil {
		if !errors.Is(err, ErrNotFound) {
			e.log.Warn("look up deleted message", LogMessage, string(id), LogErr, err)
		}
		return
	}
	e.rooms.push(d.Target.Room, job{remove: &d})
}

// retry runs fn until it succeeds or ctx ends, with backoff between tries.
func (e *Engine) retry(ctx context.Context, what string, fn func() error) {
	for attempt := 1; ; attempt++ {
		err := fn()
		if err == nil || ctx.Err() != nil {
			return
		}
		d := retryDelay(attempt, e.cfg.RetryMin, e.cfg.RetryMax, err)
		e.log.Warn(what+" failed; will retry", LogErr, err, LogWait, d, "attempt", attempt)
		if e.wait(ctx, d) != nil {
			return
		}
	}
}

// wait blocks for d or until ctx ends.
func (e *Engine) wait(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
