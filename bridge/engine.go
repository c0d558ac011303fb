package bridge

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/botbridge/botbridge/chat"
)

// Config is what an Engine is built from. Store, Bots, Routes and Adapters
// are required; the rest have defaults.
type Config struct {
	Store    Store
	Bots     []BotSpec
	Routes   []Route
	Adapters []Adapter
	// Files turns files people send into links the bot can fetch; nil gives
	// the bot the file's name and permalink as text.
	Files FileLinker
	// Metrics receives counters and timings; nil records nothing.
	Metrics Metrics
	Logger  *slog.Logger
	// Now is the clock; default time.Now.
	Now func() time.Time

	// Workers is how many conversations are sent to Botpress at once.
	// Default 64.
	Workers int
	// ListenerIdle is how long a conversation's stream stays open without
	// traffic. Default 10 minutes.
	ListenerIdle time.Duration
	// RetryMin and RetryMax bound the backoff between attempts to send to
	// Botpress or post to a platform. Defaults 500 ms and 1 minute.
	RetryMin, RetryMax time.Duration
	// StreamThrottle is the least time between two edits of a streamed
	// reply. Default 1 second.
	StreamThrottle time.Duration
	// TypingTimeout is how long the typing indicator stays on without a
	// reply. Default 2 minutes.
	TypingTimeout time.Duration
	// DrainTimeout is how long Run waits for sends in flight when it stops.
	// Default 5 seconds.
	DrainTimeout time.Duration
	// ProbeInterval is how often a bot that failed is asked whether it
	// answers again (GET /hello/), so that its conversations retry at once
	// instead of waiting out their backoff. Default 5 seconds.
	ProbeInterval time.Duration
	// Retention is how long finished messages are kept for de-duplication
	// and inspection. Default 7 days.
	Retention time.Duration
	// ListenIdleTimeout is passed to the Chat API client as the silence
	// after which a stream is dropped and reopened. Default: the client's.
	ListenIdleTimeout time.Duration
}

// Engine moves messages between adapters and Botpress: it routes inbound
// messages, keeps them in the store's outbox until Botpress has them,
// listens to the conversations for the bot's replies, and hands those to the
// adapters in order. It implements Handler for the adapters.
type Engine struct {
	cfg      Config
	store    Store
	router   *Router
	bots     map[string]*bot
	adapters map[Platform]Adapter
	log      *slog.Logger
	now      func() time.Time
	metrics  Metrics

	outbox    *outbox
	listeners *listeners
	rooms     *rooms
	streams   *streams

	convMu sync.Mutex
	convs  map[int64]*convEntry

	awaitMu  sync.Mutex
	awaiting map[int64]*awaiting
	typingQ  []chan typingOp

	// work is the context of the workers; it outlives Run's ctx by the
	// drain time so that sends in flight can finish.
	work   context.Context
	stop   context.CancelFunc
	wg     sync.WaitGroup
	closed chan struct{}
}

var _ Handler = (*Engine)(nil)

// convEntry caches a conversation record and its known participants.
type convEntry struct {
	conv         Conversation
	participants map[chat.UserID]bool
	used         time.Time
}

// awaiting tracks whether a conversation's bot has been sent a message and
// has not answered yet.
type awaiting struct {
	waiting bool
	// targets are the messages sent since the bot last answered; each shows
	// the indicator (a reaction is per message) until the answer comes.
	targets []ReplyTarget
	since   time.Time
	replies uint64 // bot messages received
}

// New checks cfg and returns an Engine ready to Run.
func New(cfg Config) (*Engine, error) {
	if cfg.Store == nil {
		return nil, errors.New("bridge: no store")
	}
	if len(cfg.Bots) == 0 {
		return nil, errors.New("bridge: no bots configured")
	}
	setDefault(&cfg.Workers, 64)
	setDefault(&cfg.ListenerIdle, 10*time.Minute)
	setDefault(&cfg.RetryMin, 500*time.Millisecond)
	setDefault(&cfg.RetryMax, time.Minute)
	setDefault(&cfg.StreamThrottle, time.Second)
	setDefault(&cfg.TypingTimeout, 2*time.Minute)
	setDefault(&cfg.DrainTimeout, 5*time.Second)
	setDefault(&cfg.ProbeInterval, 5*time.Second)
	setDefault(&cfg.Retention, 7*24*time.Hour)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Metrics == nil {
		cfg.Metrics = nopMetrics{}
	}
	e := &Engine{
		cfg:      cfg,
		store:    cfg.Store,
		bots:     make(map[string]*bot),
		adapters: make(map[Platform]Adapter),
		log:      cfg.Logger.With(LogComponent, "bridge"),
		now:      cfg.Now,
		metrics:  cfg.Metrics,
		convs:    make(map[int64]*convEntry),
		awaiting: make(map[int64]*awaiting),
		closed:   make(chan struct{}),
	}
	var names []string
	for _, b := range cfg.Bots {
		switch {
		case b.Name == "":
			return nil, errors.New("bridge: a bot has no name")
		case b.API == nil:
			return nil, fmt.Errorf("bridge: bot %s: no Chat API client", b.Name)
		case e.bots[b.Name] != nil:
			return nil, fmt.Errorf("bridge: bot %s: configured twice", b.Name)
		}
		e.bots[b.Name] = newBot(b, cfg.Store)
		names = append(names, b.Name)
	}
	router, err := NewRouter(cfg.Routes, names)
	if err != nil {
		return nil, err
	}
	e.router = router
	for _, a := range cfg.Adapters {
		p := a.Platform()
		if e.adapters[p] != nil {
			return nil, fmt.Errorf("bridge: two adapters for platform %s", p)
		}
		e.adapters[p] = a
	}
	e.typingQ = make([]chan typingOp, typingWorkers)
	for i := range e.typingQ {
		e.typingQ[i] = make(chan typingOp, 256)
	}
	e.outbox = newOutbox(e)
	e.listeners = newListeners(e)
	e.rooms = newRooms(e)
	e.streams = newStreams(e)
	return e, nil
}

func setDefault[T int | time.Duration](v *T, d T) {
	if *v <= 0 {
		*v = d
	}
}

// Run starts the adapters and the workers, resumes the work the store holds
// (unsent inbound messages, undelivered replies, open conversations) and
// blocks until ctx ends. It then stops the adapters, lets sends in flight
// finish for up to DrainTimeout, and returns nil. It returns early with an
// error when an adapter fails for good or the store cannot be read at start.
func (e *Engine) Run(ctx context.Context) error {
	e.work, e.stop = context.WithCancel(context.WithoutCancel(ctx))
	defer close(e.closed)
	defer e.stop()

	if err := e.recover(ctx); err != nil {
		if ctx.Err() != nil {
			return nil // stopped while starting
		}
		return err
	}
	for range e.cfg.Workers {
		e.wg.Go(func() { e.outbox.worker(e.work) })
	}
	e.wg.Go(func() { e.janitor(e.work) })
	e.wg.Go(func() { e.probe(e.work) })
	for _, q := range e.typingQ {
		e.wg.Go(func() { e.typingWorker(e.work, q) })
	}

	adapterCtx, stopAdapters := context.WithCancel(ctx)
	defer stopAdapters()
	errc := make(chan error, len(e.adapters))
	var awg sync.WaitGroup
	for p, a := range e.adapters {
		awg.Go(func() {
			e.log.Info("adapter starting", LogPlatform, p)
			if err := a.Run(adapterCtx, e); err != nil && adapterCtx.Err() == nil {
				errc <- fmt.Errorf("%s: %w", p, err)
			}
		})
	}
	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
		e.log.Error("adapter stopped", LogErr, runErr)
	}
	stopAdapters()
	awg.Wait()
	e.drain()
	return runErr
}

// drain stops the intake of new work, waits for the work in flight up to
// DrainTimeout, then cancels what is left; it stays in the store.
func (e *Engine) drain() {
	e.outbox.close()
	done := make(chan struct{})
	go func() {
		e.outbox.wait()
		e.rooms.wait()
		close(done)
	}()
	timer := time.NewTimer(e.cfg.DrainTimeout)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
		e.log.Warn("stopping with work in flight; it stays in the store for the next start", "drain_timeout", e.cfg.DrainTimeout)
	}
	e.stop()
	e.wg.Wait()
}

// recover queues what the store holds from before: replies to post, inbound
// messages to send (possibly sent already), and the streams of recently
// active conversations.
func (e *Engine) recover(ctx context.Context) error {
	ds, err := e.store.PendingDeliveries(ctx, 0)
	if err != nil {
		return fmt.Errorf("resume deliveries: %w", err)
	}
	// Rooms post one delivery at a time, so only the first pending one of a
	// room can have been posted without the store knowing.
	heads := map[RoomKey]bool{}
	for _, d := range ds {
		if room := d.Target.Room.Top(); !heads[room] {
			heads[room] = true
			d.MaybePosted = true
		}
		e.rooms.push(d.Target.Room, job{delivery: &d})
	}
	items, err := e.store.PendingInbound(ctx, 0)
	if err != nil {
		return fmt.Errorf("resume outbox: %w", err)
	}
	// Likewise a conversation sends one item at a time: only its first pending
	// item can have reached Botpress without the store knowing.
	seen := map[int64]bool{}
	for _, it := range items {
		e.outbox.resume(it, !seen[it.Conversation])
		seen[it.Conversation] = true
	}
	convs, err := e.store.ActiveConversations(ctx, e.now().Add(-e.cfg.ListenerIdle))
	if err != nil {
		return fmt.Errorf("resume conversations: %w", err)
	}
	for _, c := range convs {
		e.cacheConversation(c)
		e.listeners.ensure(c)
	}
	if len(ds)+len(items)+len(convs) > 0 {
		e.log.Info("resumed work from the store", "deliveries", len(ds), "inbound", len(items), "conversations", len(convs))
	}
	return nil
}

// janitor closes idle streams, turns off stale typing indicators and prunes
// old rows.
func (e *Engine) janitor(ctx context.Context) {
	tick := time.NewTicker(min(e.cfg.ListenerIdle/4, 30*time.Second))
	defer tick.Stop()
	lastPrune := time.Time{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		now := e.now()
		e.listeners.closeIdle(now.Add(-e.cfg.ListenerIdle))
		e.expireTyping(ctx, now)
		e.streams.expire(now.Add(-10 * time.Minute))
		e.evictConversations(now.Add(-2 * e.cfg.ListenerIdle))
		if now.Sub(lastPrune) > time.Hour {
			lastPrune = now
			if n, err := e.store.Prune(ctx, now.Add(-e.cfg.Retention)); err != nil {
				e.log.Warn("prune store", LogErr, err)
			} else if n > 0 {
				e.log.Info("pruned finished messages", "rows", n, "older_than", e.cfg.Retention)
			}
		}
	}
}

// probe asks the bots whose conversations back off after failures whether
// they answer again, and wakes those conversations when they do.
func (e *Engine) probe(ctx context.Context) {
	tick := time.NewTicker(e.cfg.ProbeInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		bots := e.outbox.waitingBots()
		for _, b := range e.listeners.downBots() {
			if !slices.Contains(bots, b) {
				bots = append(bots, b)
			}
		}
		for _, name := range bots {
			b := e.bots[name]
			if b == nil {
				continue
			}
			pctx, cancel := context.WithTimeout(ctx, e.cfg.ProbeInterval)
			err := b.API.Hello(pctx)
			cancel()
			if err == nil {
				e.log.Info("Botpress answers again; retrying now", LogBot, name)
				e.botBack(name)
			}
		}
	}
}

// botBack retries at once what waits for bot: sends backing off and streams
// that are down.
func (e *Engine) botBack(bot string) {
	e.outbox.wakeBot(bot)
	e.listeners.kick(bot)
}

// HandleInbound implements Handler: it routes in and, when the bot answers
// it, stores it in the outbox. It returns nil when in was stored, was a
// duplicate, or was ignored; an error when it could not be stored.
func (e *Engine) HandleInbound(ctx context.Context, in Inbound) error {
	if in.Key == "" || in.Room.Platform == "" || in.Room.Room == "" {
		e.log.Warn("inbound without event key or room ignored", LogRoom, in.Room.String(), LogEventKey, string(in.Key))
		return nil
	}
	log := e.log.With(LogRoom, in.Room.String(), LogEventKey, string(in.Key))
	route, ok := e.router.Match(in)
	if !ok {
		log.Debug("no route for room; ignored")
		return nil
	}
	engaged := false
	if route.NeedsThreadState(in) {
		var err error
		if engaged, err = e.store.ThreadEngaged(ctx, route.Bot, in.Room); err != nil {
			return fmt.Errorf("handle inbound: %w", err)
		}
	}
	d := route.Decide(in, engaged)
	if !d.Answer {
		log.Debug("not answered", "reason", d.Reason)
		return nil
	}
	if d.Reset {
		return e.reset(ctx, d, in)
	}
	item, created, err := e.store.EnqueueInbound(ctx, d.Key, in, d.Engage)
	if err != nil {
		return fmt.Errorf("handle inbound: %w", err)
	}
	if !created {
		log.Debug("duplicate event; already stored")
		e.metrics.Inbound(in.Room.Platform, route.Bot, "duplicate")
		return nil
	}
	e.metrics.Inbound(in.Room.Platform, route.Bot, "stored")
	log.Debug("inbound stored", LogConversation, item.Conversation, LogBot, route.Bot)
	e.outbox.add(item)
	return nil
}

// reset starts a new conversation for d.Key and tells the room.
func (e *Engine) reset(ctx context.Context, d Decision, in Inbound) error {
	c, err := e.store.ResetConversation(ctx, d.Key)
	if err != nil {
		return fmt.Errorf("reset conversation: %w", err)
	}
	e.log.Info("conversation reset", LogConversation, c.ID, LogRoom, in.Room.String(), "generation", c.Generation)
	t := d.ReplyTarget(in)
	e.rooms.push(t.Room, job{notice: &Outbound{
		ID:          chat.MessageID("notice-reset-" + string(in.Key)),
		Bot:         d.Key.Bot,
		Room:        t.Room,
		ReplyTo:     t.MessageID,
		ReplyToUser: t.UserID,
		Payload:     chat.Text{Text: "Started a new conversation."},
		Time:        e.now(),
	}})
	return nil
}

// conversation returns a conversation record from the cache or the store.
func (e *Engine) conversation(ctx context.Context, id int64) (Conversation, error) {
	e.convMu.Lock()
	if ce, ok := e.convs[id]; ok {
		ce.used = e.now()
		c := ce.conv
		e.convMu.Unlock()
		return c, nil
	}
	e.convMu.Unlock()
	c, err := e.store.Conversation(ctx, id)
	if err != nil {
		return c, err
	}
	e.cacheConversation(c)
	return c, nil
}

func (e *Engine) cacheConversation(c Conversation) {
	e.convMu.Lock()
	defer e.convMu.Unlock()
	if ce, ok := e.convs[c.ID]; ok {
		if ce.conv.ChatID != c.ChatID {
			ce.participants = make(map[chat.UserID]bool)
		}
		if ce.conv.Cursor.After(c.Cursor) {
			c.Cursor = ce.conv.Cursor
		}
		ce.conv, ce.used = c, e.now()
		return
	}
	e.convs[c.ID] = &convEntry{conv: c, participants: make(map[chat.UserID]bool), used: e.now()}
}

// updateConversation applies fn to the cached record of id, if cached.
func (e *Engine) updateConversation(id int64, fn func(*Conversation)) {
	e.convMu.Lock()
	defer e.convMu.Unlock()
	if ce, ok := e.convs[id]; ok {
		fn(&ce.conv)
		ce.used = e.now()
	}
}

func (e *Engine) evictConversations(before time.Time) {
	e.convMu.Lock()
	defer e.convMu.Unlock()
	for id, ce := range e.convs {
		if ce.used.Before(before) && !e.listeners.isOpen(id) {
			delete(e.convs, id)
		}
	}
}

// knownParticipant reports whether user is a cached participant of the
// conversation; addParticipant caches one.
func (e *Engine) knownParticipant(id int64, user chat.UserID) bool {
	e.convMu.Lock()
	defer e.convMu.Unlock()
	ce, ok := e.convs[id]
	return ok && ce.participants[user]
}

func (e *Engine) cacheParticipant(id int64, user chat.UserID) {
	e.convMu.Lock()
	defer e.convMu.Unlock()
	if ce, ok := e.convs[id]; ok {
		ce.participants[user] = true
	}
}

// replies returns how many bot messages the conversation has received, to
// pass to startAwaiting after a send.
func (e *Engine) replies(conv int64) uint64 {
	e.awaitMu.Lock()
	defer e.awaitMu.Unlock()
	if a := e.awaiting[conv]; a != nil {
		return a.replies
	}
	return 0
}

// startAwaiting records that the bot was sent a message in the conversation
// and shows the typing indicator for it, unless a reply came in since the
// count before was taken (the bot can answer before createMessage returns).
func (e *Engine) startAwaiting(ctx context.Context, conv int64, t ReplyTarget, before uint64) {
	e.awaitMu.Lock()
	a := e.awaitEntry(conv)
	show := a.replies == before && !slices.ContainsFunc(a.targets, func(o ReplyTarget) bool { return o == t })
	if show {
		if !a.waiting {
			a.since = e.now()
		}
		a.waiting = true
		a.targets = append(a.targets, t)
	}
	e.awaitMu.Unlock()
	if show {
		e.typing(ctx, t, true)
	}
}

// awaitEntry returns the conversation's entry; e.awaitMu must be held.
func (e *Engine) awaitEntry(conv int64) *awaiting {
	a := e.awaiting[conv]
	if a == nil {
		a = &awaiting{}
		e.awaiting[conv] = a
	}
	return a
}

// replied counts a bot message of the conversation and clears its typing
// indicators.
func (e *Engine) replied(ctx context.Context, conv int64) {
	e.awaitMu.Lock()
	a := e.awaitEntry(conv)
	a.replies++
	targets := a.targets
	a.waiting, a.targets = false, nil
	a.since = e.now()
	e.awaitMu.Unlock()
	for _, t := range targets {
		e.typing(ctx, t, false)
	}
}

// expireTyping turns off indicators that waited too long and forgets
// conversations quiet for long.
func (e *Engine) expireTyping(ctx context.Context, now time.Time) {
	var stale []ReplyTarget
	e.awaitMu.Lock()
	for id, a := range e.awaiting {
		switch {
		case a.waiting && now.Sub(a.since) > e.cfg.TypingTimeout:
			stale = append(stale, a.targets...)
			a.waiting, a.targets = false, nil
		case !a.waiting && now.Sub(a.since) > e.cfg.ListenerIdle:
			delete(e.awaiting, id)
		}
	}
	e.awaitMu.Unlock()
	for _, t := range stale {
		e.typing(ctx, t, false)
	}
}

// typing queues a change of the typing indicator. The indicator is a
// platform call (a Slack reaction, Matrix m.typing) that must not slow the
// sends and posts down, so it runs on a few workers, each room always on the
// same one so that on and off keep their order.
func (e *Engine) typing(ctx context.Context, t ReplyTarget, on bool) {
	if _, ok := e.adapters[t.Room.Platform].(Typer); !ok {
		return
	}
	h := fnv.New32a()
	h.Write([]byte(t.Room.Top().String()))
	q := e.typingQ[h.Sum32()%uint32(len(e.typingQ))]
	select {
	case q <- typingOp{t, on}:
	case <-ctx.Done():
	}
}

type typingOp struct {
	target ReplyTarget
	on     bool
}

// typingWorkers is how many goroutines make typing indicator calls.
const typingWorkers = 4

func (e *Engine) typingWorker(ctx context.Context, q <-chan typingOp) {
	for {
		select {
		case <-ctx.Done():
			return
		case op := <-q:
			tp := e.adapters[op.target.Room.Platform].(Typer)
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			if err := tp.Typing(cctx, op.target, op.on); err != nil {
				e.log.Debug("typing indicator", LogRoom, op.target.Room.String(), LogErr, err)
			}
			cancel()
		}
	}
}

// Idle reports whether the engine has nothing left to do: no inbound
// message unsent, no bot that has not answered, no reply unposted.
func (e *Engine) Idle() bool {
	e.awaitMu.Lock()
	waiting := false
	for _, a := range e.awaiting {
		waiting = waiting || a.waiting
	}
	e.awaitMu.Unlock()
	return !waiting && e.outbox.idle() && e.rooms.idle()
}

// WaitIdle blocks until the engine has been Idle for quiet (so that a bot's
// answer in several messages is complete), or ctx ends.
func (e *Engine) WaitIdle(ctx context.Context, quiet time.Duration) error {
	tick := time.NewTicker(min(quiet/4+time.Millisecond, 50*time.Millisecond))
	defer tick.Stop()
	var since time.Time
	for {
		if e.Idle() {
			if since.IsZero() {
				since = time.Now()
			} else if time.Since(since) >= quiet {
				return nil
			}
		} else {
			since = time.Time{}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-e.closed:
			return errors.New("bridge stopped")
		case <-tick.C:
		}
	}
}

// Log attribute keys used across the bridge and its adapters.
const (
	LogComponent    = "component"
	LogErr          = "err"
	LogPlatform     = "platform"
	LogRoom         = "room"
	LogBot          = "bot"
	LogConversation = "conversation"
	LogChatConv     = "chat_conversation"
	LogMessage      = "message"
	LogEventKey     = "event"
	LogWait         = "wait"
)
