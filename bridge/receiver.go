package bridge

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/botbridge/botbridge/bridge/logging"
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
// It listens to, and sweeps, only the conversations of the leases this
// process holds (leaser.go); a stream ends with its lease. Webhooks come
// to any process: a bot message is stored by whichever gets it, and posted
// by the process that holds its room's lease.
//
// It owns the open streams.
type receiver struct {
	store   ReceiverStore
	bots    map[string]*bot
	leases  *leaser
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
	// listenerIdle is how long a stream stays open without traffic: the
	// watch window for bots without a webhook, where streams are how bot
	// messages come, and Config.ListenerIdle for bots with one, where they
	// only bridge the time webhooks are down.
	listenerIdle, hookedIdle time.Duration
	// maxStreams caps the open streams; past it the least recently active
	// one closes, and its conversation is swept.
	maxStreams int
	limiter    logging.Limiter

	ctx context.Context // the streams' context, set by start
	wg  sync.WaitGroup

	mu   sync.Mutex
	open map[int64]*listener
	// stopped is set by wait: no stream opens after it.
	stopped bool

	hooks   hooks
	sweeper sweeper
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
	lease  string
	chatID chat.ConversationID
	bot    *bot
	cancel context.CancelFunc
	active atomic.Int64 // unix nanoseconds of the last traffic
	// ready is closed once the stream connected and caught up the first
	// time.
	ready chan struct{}
	// budgeted makes every catch-up, the first included, wait for the
	// bot's request budget: streams opened in bulk (at a start) must not
	// burst. A stream opened for a message being sent catches up the first
	// time at once.
	budgeted atomic.Bool
	// urgent is set while the stream's catch-up waits for the budget, and
	// closed when a message is sent in the conversation meanwhile: the
	// catch-up then goes ahead at once.
	urgentMu  sync.Mutex
	urgent    chan struct{}
	readyOnce sync.Once
	// down is set while the stream is not connected; kick cuts the wait
	// before the next attempt short.
	down   atomic.Bool
	kickMu sync.Mutex
	kickFn context.CancelFunc
	kicked atomic.Bool
}

// waitUrgent returns the channel hurry closes, for a wait for the budget:
// closed already when a message was sent since the last catch-up.
func (l *listener) waitUrgent() <-chan struct{} {
	l.urgentMu.Lock()
	defer l.urgentMu.Unlock()
	if l.urgent == nil {
		l.urgent = make(chan struct{})
	}
	return l.urgent
}

// doneWaiting ends a wait for the budget: the next one waits again.
func (l *listener) doneWaiting() {
	l.urgentMu.Lock()
	defer l.urgentMu.Unlock()
	l.urgent = nil
}

// hurry makes the stream's catch-up, waiting or about to wait for the
// budget, go ahead at once.
func (l *listener) hurry() {
	l.urgentMu.Lock()
	defer l.urgentMu.Unlock()
	if l.urgent == nil {
		l.urgent = make(chan struct{})
	}
	select {
	case <-l.urgent:
	default:
		close(l.urgent)
	}
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

func (r *receiver) init(bots []BotSpec, echoTimeout time.Duration, sweepBudget int, sweepEvery, window time.Duration) {
	r.open = make(map[int64]*listener)
	r.hooks.init(bots, echoTimeout)
	r.sweeper.init(r, sweepBudget, sweepEvery, window)
}

// start lets Watch open streams, which live until ctx ends, and starts the
// sweeps and the watch over webhooks.
func (r *receiver) start(ctx context.Context) {
	r.mu.Lock()
	r.ctx, r.stopped = ctx, false
	r.mu.Unlock()
	r.sweeper.start(ctx)
	if len(r.hooks.secrets) > 0 {
		r.wg.Go(func() { r.watchHooks(ctx) })
	}
}

// resume watches the conversations of the leases named, taken by this
// process (at its start, or from another), with traffic in the watch
// window, or with replies not yet posted, and lists each once: what the bot
// said while no process listened came by no stream, and its webhooks
// reached nobody. Streams open for those active since streamsSince (up to
// maxStreams, the most recently active first).
func (r *receiver) resume(ctx context.Context, leases []string, since, streamsSince time.Time) (int, error) {
	convs, err := r.store.ActiveConversationsIn(ctx, leases, since)
	if err != nil {
		return 0, err
	}
	slices.SortFunc(convs, func(a, b Conversation) int { return b.ActiveAt.Compare(a.ActiveAt) })
	for i, c := range convs {
		if i < r.maxStreams && !c.ActiveAt.Before(streamsSince) && !r.hooks.healthy(c.Key.Bot) {
			r.watch(c, true) // its stream catches up when it connects
			continue
		}
		r.sweeper.watch(c, c.ActiveAt, true)
	}
	return len(convs), nil
}

// wait blocks until every stream and sweep ended; their context must have
// ended.
func (r *receiver) wait() {
	r.mu.Lock()
	r.stopped = true
	r.mu.Unlock()
	r.wg.Wait()
	r.sweeper.wait()
}

// covered reports whether something brings the conversation's bot messages
// as they come: its open stream, or the bot's healthy webhook.
func (r *receiver) covered(conv int64, bot string) bool {
	if r.hooks.healthy(bot) {
		return true
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	l, ok := r.open[conv]
	return ok && !l.down.Load()
}

// watchHooks checks every few seconds that the messages the bridge sends
// come back as webhooks; when they stop, the bot's conversations get
// streams and sweeps until webhooks arrive again.
func (r *receiver) watchHooks(ctx context.Context) {
	tick := time.NewTicker(max(r.hooks.timeout/4, 10*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		for _, bot := range r.hooks.overdue(r.now()) {
			r.log.Warn("webhooks from Botpress stopped arriving: the bridge's own message came back by none; listening to streams and listing conversations until they arrive again. Check the Chat integration's Webhook URL (the bridge's public URL + "+WebhookPath+bot+") and Webhook Secret, and that the URL reaches this listener",
				LogBot, bot, "timeout", r.hooks.timeout)
			r.sweeper.reschedule(bot, true)
		}
	}
}

// Watch makes sure the conversation's bot messages are received: by the
// bot's webhooks while they arrive, else by the conversation's stream,
// opened unless it is open. It returns a channel closed once the stream is
// connected (nil when there is no stream to wait for).
func (r *receiver) Watch(c Conversation) <-chan struct{} { return r.watch(c, false) }

// watch is Watch; budgeted makes the stream's first catch-up wait for the
// bot's request budget too.
func (r *receiver) watch(c Conversation, budgeted bool) <-chan struct{} {
	if c.ChatID == "" {
		return nil
	}
	b := r.bots[c.Key.Bot]
	if b == nil {
		return nil
	}
	lease := LeaseOf(c.Key.Room)
	lctx, held := r.leases.context(lease)
	if !held {
		return nil // another process's
	}
	now := r.now()
	active := now
	if budgeted {
		active = c.ActiveAt // opened at a start: its traffic is the store's
	}
	defer r.sweeper.watch(c, active, false)
	if r.hooks.healthy(c.Key.Bot) {
		return nil
	}
	r.mu.Lock()
	if l, ok := r.open[c.ID]; ok {
		if l.chatID == c.ChatID {
			l.active.Store(now.UnixNano())
			r.mu.Unlock()
			if !budgeted {
				l.hurry()
			}
			return l.ready
		}
		l.cancel() // remapped to a new Botpress conversation
	}
	if r.ctx == nil || r.ctx.Err() != nil || r.stopped {
		r.mu.Unlock()
		return nil
	}
	evicted := r.evictLocked()
	// The stream ends with the lease, or with the receiver.
	ctx, cancel := context.WithCancel(lctx)
	l := &listener{conv: c.ID, lease: lease, chatID: c.ChatID, bot: b, cancel: cancel, ready: make(chan struct{})}
	l.active.Store(now.UnixNano())
	l.budgeted.Store(budgeted)
	r.open[c.ID] = l
	n := len(r.open)
	// Counted under r.mu, before wait marks the receiver stopped: a stream
	// is never added while wait waits.
	r.wg.Add(1)
	r.mu.Unlock()
	if evicted != 0 {
		r.sweeper.rescheduleConv(evicted)
	}
	r.metrics.Listeners(n)
	go func() {
		defer r.wg.Done()
		r.run(ctx, l)
	}()
	return l.ready
}

// evictLocked closes the least recently active stream when maxStreams are
// open, and returns its conversation (0 if none); r.mu must be held.
func (r *receiver) evictLocked() int64 {
	if len(r.open) < r.maxStreams {
		return 0
	}
	var oldest *listener
	for _, l := range r.open {
		if oldest == nil || l.active.Load() < oldest.active.Load() {
			oldest = l
		}
	}
	oldest.cancel()
	delete(r.open, oldest.conv)
	r.log.Debug("closing the least recently active stream: the open streams are at bridge.max_streams; its conversation is swept", LogConversation, oldest.conv)
	return oldest.conv
}

// Touch records traffic on the conversation, keeping its stream open.
func (r *receiver) Touch(conv int64) {
	now := r.now()
	r.mu.Lock()
	if l, ok := r.open[conv]; ok {
		l.active.Store(now.UnixNano())
	}
	r.mu.Unlock()
	r.sweeper.touch(conv, now)
}

// Sent records a message the bridge sent in the conversation: its traffic,
// and a webhook to expect back.
func (r *receiver) Sent(conv int64, bot string, msg chat.MessageID) {
	r.hooks.sent(bot, msg, r.now())
	r.Touch(conv)
}

// closeIdle closes the streams without traffic for longer than their
// bot's idle time; their conversations are swept from then on.
func (r *receiver) closeIdle(now time.Time) {
	var closed []int64
	r.mu.Lock()
	for id, l := range r.open {
		idle := r.listenerIdle
		if _, hooked := r.hooks.secrets[l.bot.Name]; hooked {
			idle = r.hookedIdle
		}
		if l.active.Load() < now.Add(-idle).UnixNano() {
			r.log.Debug("closing idle conversation stream", LogConversation, id)
			l.cancel()
			delete(r.open, id)
			closed = append(closed, id)
		}
	}
	n := len(r.open)
	r.mu.Unlock()
	r.metrics.Listeners(n)
	for _, id := range closed {
		r.sweeper.rescheduleConv(id)
	}
}

// drop closes the streams of the conversations of the leases named, which
// ended, and stops sweeping them.
func (r *receiver) drop(leases []string) {
	r.mu.Lock()
	for id, l := range r.open {
		if slices.Contains(leases, l.lease) {
			l.cancel()
			delete(r.open, id)
		}
	}
	n := len(r.open)
	r.mu.Unlock()
	r.metrics.Listeners(n)
	r.sweeper.drop(leases)
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
					offStack(func() {
						if l.budgeted.Swap(true) && r.sweeper.bucket(l.bot.Name).take(ctx, r.now, l.waitUrgent()) != nil {
							return
						}
						l.doneWaiting()
						r.retry(ctx, "catch up on a conversation", func() error { return r.catchUp(ctx, l.conv, l.chatID, l.bot) })
					})
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
// messages it finds there, oldest first.
func (r *receiver) catchUp(ctx context.Context, conv int64, chatID chat.ConversationID, b *bot) error {
	c, err := r.store.Conversation(ctx, conv)
	if err != nil {
		return err
	}
	key, err := b.serviceKey(ctx)
	if err != nil {
		return err
	}
	var missed []chat.Message
	token := ""
	for range maxCatchUpPages {
		msgs, next, err := b.API.ListMessagesPage(ctx, key, chatID, token)
		if err != nil {
			return err
		}
		past := false
		for _, m := range msgs {
			if !c.Cursor.IsZero() && m.CreatedAt.Before(c.Cursor) {
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
		if _, err := r.deliver(ctx, conv, b.Name, m); err != nil {
			return err
		}
	}
	return nil
}

// sweep lists a conversation no stream or webhook may have covered, and
// delivers what it missed.
func (r *receiver) sweep(ctx context.Context, conv int64, chatID chat.ConversationID, bot string) error {
	b := r.bots[bot]
	if b == nil {
		return nil
	}
	err := r.catchUp(ctx, conv, chatID, b)
	if errors.Is(err, chat.ErrNotFound) || errors.Is(err, chat.ErrForbidden) {
		return nil // gone on the Botpress side; the next message remaps it
	}
	return err
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
		r.retry(ctx, "store a bot message", func() error {
			_, err := r.deliver(ctx, l.conv, l.bot.Name, s.Message)
			return err
		})
	case chat.MessageStreamDelta:
		t, err := r.target(ctx, l.conv)
		if err != nil {
			r.log.Warn("stream delta for an unknown conversation", LogConversation, l.conv, LogErr, err)
			return
		}
		r.poster.StreamDelta(l.conv, l.bot.Name, t, s)
	case chat.MessageStreamComplete:
		r.poster.StreamComplete(s.StreamID, s.Message.ID)
		r.retry(ctx, "store a bot message", func() error {
			_, err := r.deliver(ctx, l.conv, l.bot.Name, s.Message)
			return err
		})
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

// deliver stores a bot message and hands it to the poster, once; it
// reports whether the message was new.
func (r *receiver) deliver(ctx context.Context, conv int64, bot string, m chat.Message) (bool, error) {
	t, _ := r.targets.ReplyTarget(conv) // else the store takes the conversation's
	if t.Room.Room != "" {
		// This process posts it: the store may claim it as it stores it.
		if f, ok := r.leases.fence(LeaseOf(t.Room)); ok {
			ctx = WithFence(ctx, f)
		}
	}
	d, created, err := r.store.AddDelivery(ctx, Delivery{
		MessageID:    m.ID,
		Conversation: conv,
		Bot:          bot,
		Target:       t,
		Payload:      m.Payload,
		CreatedAt:    m.CreatedAt,
	})
	if err != nil || !created {
		return false, err
	}
	r.Touch(conv)
	r.poster.Deliver(d)
	return true, nil
}

// webhook handles a signal the bot's webhook brought: like a stream's, for
// the conversations of the bridge. A bot message is stored before it
// returns.
func (r *receiver) webhook(ctx context.Context, bot string, s chat.Signal) error {
	var (
		conv chat.ConversationID
		msg  chat.MessageID
	)
	switch s := s.(type) {
	case chat.MessageCreated:
		conv, msg = s.ConversationID, s.ID
		if !s.IsBot {
			// One of the bridge's own messages, or a person's of another
			// channel: the webhook works.
			if r.hooks.arrived(bot, msg, true, r.now()) {
				r.log.Info("webhooks from Botpress arrive again", LogBot, bot)
				r.sweeper.reschedule(bot, false)
			}
			return nil
		}
	case chat.MessageStreamDelta:
		conv = s.ConversationID
	case chat.MessageStreamComplete:
		conv = s.Message.ConversationID
	case chat.MessageStreamAbort:
		conv = s.ConversationID
	case chat.MessageDeleted:
		conv = s.ConversationID
	default:
		return nil
	}
	c, err := r.conversationOf(ctx, bot, conv)
	if errors.Is(err, ErrNotFound) {
		return nil // not one of the bridge's
	}
	if err != nil {
		return err
	}
	if r.hooks.arrived(bot, msg, false, r.now()) {
		r.log.Info("webhooks from Botpress arrive again", LogBot, bot)
		r.sweeper.reschedule(bot, false)
	}
	switch s := s.(type) {
	case chat.MessageCreated:
		_, err = r.deliver(ctx, c.ID, bot, s.Message)
	case chat.MessageStreamDelta:
		t, terr := r.target(ctx, c.ID)
		if terr != nil {
			return terr
		}
		r.poster.StreamDelta(c.ID, bot, t, s)
	case chat.MessageStreamComplete:
		r.poster.StreamComplete(s.StreamID, s.Message.ID)
		_, err = r.deliver(ctx, c.ID, bot, s.Message)
	case chat.MessageStreamAbort:
		r.poster.StreamAbort(s.StreamID)
	case chat.MessageDeleted:
		r.deleted(ctx, s.ID)
	}
	return err
}

// conversationOf returns the bridge's conversation mapped to a Botpress
// conversation of bot, or ErrNotFound.
func (r *receiver) conversationOf(ctx context.Context, bot string, id chat.ConversationID) (Conversation, error) {
	if id == "" {
		return Conversation{}, ErrNotFound
	}
	return r.store.ConversationByChatID(ctx, bot, id)
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
