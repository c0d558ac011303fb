package bridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/botbridge/botbridge/bridge/retry"
)

// Config is what an Engine is built from. Store, Bots, Router and Adapters
// are required; the rest have defaults.
type Config struct {
	Store Store
	Bots  []BotSpec
	// Router picks the bot of each message; built once with NewRouter and
	// shared with the adapters that ask it (Router.Admits).
	Router   *Router
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
	// traffic. Default: WatchWindow for bots without a webhook, whose
	// messages come by streams; 10 minutes for bots with one, where streams
	// only bridge the time webhooks are down.
	ListenerIdle time.Duration
	// WatchWindow is how long a conversation is watched for bot messages
	// after its last traffic: by its stream or the bot's webhooks, and by
	// sweeps that list what they missed. Default 7 days.
	WatchWindow time.Duration
	// MaxStreams caps the open conversation streams (each costs memory and a
	// stream on the connection to Botpress); past it, the least recently
	// active stream closes and its conversation is swept. Default 10,000.
	MaxStreams int
	// SweepBudget is how many requests a minute per bot the sweeps and the
	// catch-ups of streams may make. Botpress allows about 600 a minute per
	// bot, the bridge's own messages included. Default 300.
	SweepBudget int
	// SweepInterval is the shortest time between two sweeps of a
	// conversation no stream or webhook covers; the interval grows with the
	// conversation's idle time, to 120 times this. Conversations that are
	// covered are swept to reconcile from 20 to 1,440 times this. Default 15
	// seconds.
	SweepInterval time.Duration
	// WebhookTimeout is how long a message the bridge sends may take to come
	// back as a webhook before the bot's webhooks count as down. Default 30
	// seconds.
	WebhookTimeout time.Duration
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
	// ForgetIdle is how long a conversation (with its participants and
	// threads) is kept without traffic, and a user who takes part in no
	// conversation left. Default 90 days.
	ForgetIdle time.Duration
	// NoAccessTimeout is how long a reply is retried in a room the bot cannot
	// post in (removed, archived) before it is given up; the room's later
	// replies are then tried once each until one gets through. Default 30
	// minutes.
	NoAccessTimeout time.Duration
	// OfferTTL is how long a choice posted where people answer by text
	// stands. Default 24 hours.
	OfferTTL time.Duration
	// ListenIdleTimeout is passed to the Chat API client as the silence
	// after which a stream is dropped and reopened. Default: the client's.
	ListenIdleTimeout time.Duration

	// Replica names this process among the processes that share the store
	// (see lease.go). It must be unique to each run of each process on a
	// shared store, so that a process that restarts does not take for its
	// own the leases of the run before, which may still be acting. Default
	// "local", for a store no other process shares (SQLite): a process that
	// restarts takes its leases back at once.
	Replica string
	// LeaseTTL is how long a lease lasts without a renewal: how long the
	// conversations of a replica that died wait for another. Default
	// DefaultLeaseTTL.
	LeaseTTL time.Duration
	// LeaseRenew is how often the leases are renewed; at most half of
	// LeaseTTL. Default DefaultLeaseRenew.
	LeaseRenew time.Duration
	// PollInterval is how often a replica lists the work other replicas
	// stored for the leases it holds, in case their notes were lost; only
	// on a store that several processes share (Notifier). Default 5
	// seconds.
	PollInterval time.Duration
}

// Engine moves messages between adapters and Botpress. It wires four parts
// that each own their state and run on their own:
//
//   - intake routes what people say and stores what the bot answers
//     (intake.go);
//   - the sender sends it to Botpress, in order per conversation, and
//     recovers after a crash (sender.go);
//   - the receiver gets the bot's messages from the conversations' streams
//     and stores them (receiver.go);
//   - the poster posts them to the platforms, in order per room, with
//     streamed replies and thinking indicators (poster.go, stream.go,
//     typing.go).
//
// They talk through narrow interfaces and through the store. The Engine
// starts them, resumes what the store holds, keeps the store small, and
// stops them.
type Engine struct {
	cfg      Config
	store    Store
	bots     map[string]*bot
	adapters map[Platform]Adapter
	log      *slog.Logger
	now      func() time.Time

	intake   *intake
	sender   *sender
	receiver *receiver
	poster   *poster
	health   *health
	leases   *leaser
	notes    *notes
	// pollNow asks for a poll of the work other replicas stored at once.
	pollNow chan struct{}
	// leading holds the platforms whose leader adapter runs here.
	leadMu  sync.Mutex
	leading map[Platform]bool

	closed chan struct{}
}

var _ Handler = (*Engine)(nil)

// New checks cfg and returns an Engine ready to Run.
func New(cfg Config) (*Engine, error) {
	if cfg.Store == nil {
		return nil, errors.New("bridge: no store")
	}
	if len(cfg.Bots) == 0 {
		return nil, errors.New("bridge: no bots configured")
	}
	if cfg.Router == nil {
		return nil, errors.New("bridge: no router")
	}
	setDefault(&cfg.Workers, 64)
	setDefault(&cfg.WatchWindow, 7*24*time.Hour)
	setDefault(&cfg.MaxStreams, 10000)
	setDefault(&cfg.SweepBudget, 300)
	setDefault(&cfg.SweepInterval, 15*time.Second)
	setDefault(&cfg.WebhookTimeout, 30*time.Second)
	setDefault(&cfg.RetryMin, 500*time.Millisecond)
	setDefault(&cfg.RetryMax, time.Minute)
	setDefault(&cfg.StreamThrottle, time.Second)
	setDefault(&cfg.TypingTimeout, 2*time.Minute)
	setDefault(&cfg.DrainTimeout, 5*time.Second)
	setDefault(&cfg.ProbeInterval, 5*time.Second)
	setDefault(&cfg.Retention, 7*24*time.Hour)
	setDefault(&cfg.ForgetIdle, 90*24*time.Hour)
	setDefault(&cfg.NoAccessTimeout, 30*time.Minute)
	setDefault(&cfg.OfferTTL, 24*time.Hour)
	setDefault(&cfg.LeaseTTL, DefaultLeaseTTL)
	setDefault(&cfg.LeaseRenew, DefaultLeaseRenew)
	setDefault(&cfg.PollInterval, 5*time.Second)
	if cfg.LeaseRenew > cfg.LeaseTTL/2 {
		return nil, fmt.Errorf("bridge: the leases are renewed every %v, more than half their time to live of %v", cfg.LeaseRenew, cfg.LeaseTTL)
	}
	if cfg.Replica == "" {
		cfg.Replica = "local"
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Metrics == nil {
		cfg.Metrics = nopMetrics{}
	}
	log := cfg.Logger.With(LogComponent, "bridge")
	e := &Engine{
		cfg:      cfg,
		store:    cfg.Store,
		bots:     make(map[string]*bot),
		adapters: make(map[Platform]Adapter),
		log:      log,
		now:      cfg.Now,
		closed:   make(chan struct{}),
		pollNow:  make(chan struct{}, 1),
		leading:  make(map[Platform]bool),
	}
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
	}
	for _, name := range cfg.Router.Bots() {
		if e.bots[name] == nil {
			return nil, fmt.Errorf("bridge: a route names bot %q, which is not configured", name)
		}
	}
	texts := map[Platform]bool{}
	for _, a := range cfg.Adapters {
		p := a.Platform()
		if e.adapters[p] != nil {
			return nil, fmt.Errorf("bridge: two adapters for platform %s", p)
		}
		e.adapters[p] = a
		if _, ok := a.(TextChoices); ok {
			texts[p] = true
		}
	}
	policy := retry.Policy{Min: cfg.RetryMin, Max: cfg.RetryMax}
	e.health = newHealth(log)
	e.notes = newNotes(cfg.Store, log)
	e.leases = &leaser{store: cfg.Store, owner: cfg.Replica, ttl: cfg.LeaseTTL, renew: cfg.LeaseRenew,
		margin: cfg.LeaseTTL / 5, poll: min(time.Second, cfg.LeaseRenew/2), shards: ShardLeases(), log: log}
	for p := range e.adapters {
		if l := LeaseOf(RoomKey{Platform: p}); !strings.HasPrefix(l, shardPrefix) {
			e.leases.leaders = append(e.leases.leaders, l)
		}
	}
	e.leases.metrics, _ = cfg.Metrics.(LeaseMetrics)
	e.leases.gained, e.leases.lost = e.gain, e.lose
	e.leases.init()
	e.poster = &poster{store: cfg.Store, adapters: e.adapters, leases: e.leases, notes: e.notes, metrics: cfg.Metrics,
		log: log, now: cfg.Now, policy: policy, noAccessTimeout: cfg.NoAccessTimeout, offerTTL: cfg.OfferTTL}
	e.poster.init(cfg.TypingTimeout, cfg.StreamThrottle)
	e.sender = &sender{store: cfg.Store, bots: e.bots, files: cfg.Files, await: e.poster, leases: e.leases, notes: e.notes,
		health: e.health, metrics: cfg.Metrics, log: log, now: cfg.Now, policy: policy, workers: cfg.Workers}
	e.sender.init()
	e.receiver = &receiver{store: cfg.Store, bots: e.bots, leases: e.leases, targets: e.sender, poster: e.poster, health: e.health,
		metrics: cfg.Metrics, log: log, now: cfg.Now, policy: policy, listenIdleTimeout: cfg.ListenIdleTimeout,
		listenerIdle: cfg.ListenerIdle, hookedIdle: cfg.ListenerIdle, maxStreams: cfg.MaxStreams}
	if cfg.ListenerIdle <= 0 {
		e.receiver.listenerIdle, e.receiver.hookedIdle = cfg.WatchWindow, 10*time.Minute
	}
	e.receiver.init(cfg.Bots, cfg.WebhookTimeout, cfg.SweepBudget, cfg.SweepInterval, cfg.WatchWindow)
	e.sender.watch = e.receiver
	e.intake = &intake{router: cfg.Router, store: cfg.Store, sender: e.sender, poster: e.poster, texts: texts,
		metrics: cfg.Metrics, log: log, now: cfg.Now}
	e.health.OnUp(e.sender.wakeBot)
	e.health.OnUp(e.receiver.kick)
	return e, nil
}

func setDefault[T int | time.Duration](v *T, d T) {
	if *v <= 0 {
		*v = d
	}
}

// Run starts the adapters and the parts, resumes the work the store holds
// (unsent inbound messages, undelivered replies, open conversations) and
// blocks until ctx ends. It then stops the adapters, lets sends and posts in
// flight finish for up to DrainTimeout, and returns nil. It returns early
// with an error when an adapter fails for good or the store cannot be read
// at start.
func (e *Engine) Run(ctx context.Context) error {
	// The parts' context outlives ctx by the drain time, so that sends in
	// flight can finish.
	work, stop := context.WithCancel(context.WithoutCancel(ctx))
	defer close(e.closed)
	defer stop()

	if err := e.resume(ctx, work); err != nil {
		e.drain(stop)
		e.release(ctx)
		if ctx.Err() != nil {
			return nil // stopped while starting
		}
		return err
	}
	var wg sync.WaitGroup
	wg.Go(func() { e.janitor(work) })
	wg.Go(func() { e.health.probe(work, e.bots, e.cfg.ProbeInterval) })
	wg.Go(func() { e.leases.run(work) })
	if e.notes.store != nil {
		wg.Go(func() { e.notes.run(work) })
		wg.Go(func() { e.listen(work) })
		wg.Go(func() { e.poll(work) })
	}

	adapterCtx, stopAdapters := context.WithCancel(ctx)
	defer stopAdapters()
	errc := make(chan error, len(e.adapters))
	var awg sync.WaitGroup
	for p, a := range e.adapters {
		awg.Go(func() {
			if lease := LeaseOf(RoomKey{Platform: p}); !strings.HasPrefix(lease, shardPrefix) {
				e.runLeader(adapterCtx, p, a, lease, errc)
				return
			}
			e.log.Info("adapter starting", LogPlatform, p)
			if err := a.Run(adapterCtx, e.intake); err != nil && adapterCtx.Err() == nil {
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
	e.drain(stop)
	wg.Wait()
	e.release(ctx)
	return runErr
}

// runLeader runs the adapter of a platform whose rooms share one lease (the
// Matrix sync loop and its encryption state live in one process): only
// while this process holds the lease, in its context, so that the
// adapter's writes carry its fence and it stops when the lease ends; it
// runs again when the lease comes back. A replica without the lease
// stands by.
func (e *Engine) runLeader(ctx context.Context, p Platform, a Adapter, lease string, errc chan<- error) {
	standby := false
	for ctx.Err() == nil {
		changed := e.leases.changed()
		lctx, ok := e.leases.fencedContext(lease)
		if !ok {
			if !standby {
				e.log.Info("adapter standing by: another replica holds its lease", LogPlatform, p, "lease", lease)
				standby = true
			}
			select {
			case <-ctx.Done():
				return
			case <-changed:
			}
			continue
		}
		standby = false
		e.setLeading(p, true)
		e.log.Info("adapter starting", LogPlatform, p, "lease", lease)
		runCtx, cancel := context.WithCancel(lctx)
		stop := context.AfterFunc(ctx, cancel)
		err := a.Run(runCtx, e.intake)
		stop()
		cancel()
		e.setLeading(p, false)
		switch {
		case ctx.Err() != nil:
			return
		case lctx.Err() == nil && err != nil:
			errc <- fmt.Errorf("%s: %w", p, err)
			return
		case lctx.Err() != nil:
			e.log.Warn("adapter stopped: its lease ended; another replica runs it", LogPlatform, p, "lease", lease)
		}
	}
}

// setLeading records whether this process runs the adapter of p, which
// only one replica runs at a time.
func (e *Engine) setLeading(p Platform, on bool) {
	e.leadMu.Lock()
	defer e.leadMu.Unlock()
	e.leading[p] = on
}

// Standby reports whether the adapter of p stands by: its platform's
// rooms share one lease (Matrix), which another replica holds, so that it
// does not run here; its readiness is that replica's.
func (e *Engine) Standby(p Platform) bool {
	if strings.HasPrefix(LeaseOf(RoomKey{Platform: p}), shardPrefix) {
		return false
	}
	e.leadMu.Lock()
	defer e.leadMu.Unlock()
	return !e.leading[p]
}

// resume starts the parts on work and takes the first leases, whose work
// the store holds from before (see gain).
func (e *Engine) resume(ctx, work context.Context) error {
	e.poster.start(work)
	e.sender.start(work)
	e.receiver.start(work)
	return e.leases.start(ctx, work)
}

// gain hands the parts what the store holds of the leases named, which this
// process took: replies to post and indicators left shown, inbound
// messages to send, possibly sent already, and the conversations to listen
// to.
func (e *Engine) gain(ctx context.Context, leases []string) error {
	ds, err := e.poster.resume(ctx, leases)
	if err != nil {
		return err
	}
	items, err := e.sender.resume(ctx, leases)
	if err != nil {
		return err
	}
	now := e.now()
	convs, err := e.receiver.resume(ctx, leases, now.Add(-e.cfg.WatchWindow), now.Add(-e.receiver.listenerIdle))
	if err != nil {
		return fmt.Errorf("resume conversations: %w", err)
	}
	if ds+items+convs > 0 {
		e.log.Info("resumed work from the store", "deliveries", ds, "inbound", items, "conversations", convs, "leases", len(leases))
	}
	return nil
}

// lose makes the parts drop the work of the leases named, which ended.
func (e *Engine) lose(leases []string) {
	e.sender.drop(leases)
	e.poster.drop(leases)
	e.receiver.drop(leases)
}

// release gives every lease up once the parts stopped, for the other
// replicas to take at once.
func (e *Engine) release(ctx context.Context) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	e.leases.stop(rctx)
}

// listen takes the notes of work other replicas stored for this one's
// leases, until ctx ends.
func (e *Engine) listen(ctx context.Context) {
	n := e.store.(Notifier)
	b := retry.Policy{Min: time.Second, Max: 30 * time.Second}.New()
	for {
		err := n.Notify(ctx, func(note Note) { e.noted(ctx, note) })
		if ctx.Err() != nil {
			return
		}
		e.log.Warn("listen for the notes of other replicas; polling meanwhile", LogErr, err)
		if retry.Wait(ctx, b.Next(err)) != nil {
			return
		}
	}
}

// noted takes up the work of a note.
func (e *Engine) noted(ctx context.Context, n Note) {
	switch {
	case n.Lease == "":
		select {
		case e.pollNow <- struct{}{}:
		default:
		}
	case !e.leases.holds(n.Lease):
	case n.Message != "":
		if err := e.poster.fetch(ctx, n.Message); err != nil && ctx.Err() == nil {
			e.log.Debug("fetch a reply another replica stored; the poll finds it", LogMessage, string(n.Message), LogErr, err)
		}
	default:
		e.sender.nudge(n.Conversation, n.Lease)
	}
}

// poll lists, every PollInterval, the work other replicas stored for this
// one's leases: the fallback for notes lost.
func (e *Engine) poll(ctx context.Context) {
	tick := time.NewTicker(e.cfg.PollInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-e.pollNow:
		}
		held := e.leases.names()
		if len(held) == 0 {
			continue
		}
		err := errors.Join(e.sender.poll(ctx, held), e.poster.poll(ctx, held))
		if err != nil && ctx.Err() == nil {
			e.log.Warn("list the work other replicas stored for this one", LogErr, err)
		}
	}
}

// Leases returns the leases this process holds, for operators.
func (e *Engine) Leases() LeasesStatus { return e.leases.status() }

// drain stops the intake of new work, waits for the work in flight up to
// DrainTimeout, then stops the parts; what is left stays in the store.
func (e *Engine) drain(stop context.CancelFunc) {
	e.sender.close()
	done := make(chan struct{})
	go func() {
		e.sender.drained()
		e.poster.wait()
		close(done)
	}()
	timer := time.NewTimer(e.cfg.DrainTimeout)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
		e.log.Warn("stopping with work in flight; it stays in the store for the next start", "drain_timeout", e.cfg.DrainTimeout)
	}
	stop()
	e.sender.wait()
	e.receiver.wait()
	e.poster.wait()
	e.poster.typing.wait()
}

// janitor closes idle streams, takes down stale indicators, forgets what
// the parts no longer need, and prunes the store.
func (e *Engine) janitor(ctx context.Context) {
	// quiet is how long the parts remember a conversation without traffic.
	quiet := e.cfg.ListenerIdle
	if quiet <= 0 {
		quiet = 10 * time.Minute
	}
	tick := time.NewTicker(min(quiet/4, 30*time.Second))
	defer tick.Stop()
	lastPrune := time.Time{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		now := e.now()
		e.receiver.closeIdle(now)
		e.poster.typing.expire(now, now.Add(-quiet))
		e.poster.streams.expire(now)
		e.sender.evict(now.Add(-2 * quiet))
		if now.Sub(lastPrune) > time.Hour {
			lastPrune = now
			n, err := e.store.Prune(ctx, PruneBefore{Finished: now.Add(-e.cfg.Retention), Idle: now.Add(-e.cfg.ForgetIdle)})
			if err != nil {
				e.log.Warn("prune store", LogErr, err)
			} else if n > 0 {
				e.log.Info("pruned finished messages and idle conversations", "rows", n,
					"finished_before", e.cfg.Retention, "idle_for", e.cfg.ForgetIdle)
			}
		}
	}
}

// WebhookHandler serves the bots' webhooks at WebhookPath<bot name>: the
// URL and secret to paste into each bot's Chat integration. Bots without a
// webhook secret answer 404.
func (e *Engine) WebhookHandler() http.Handler { return e.receiver }

// HandleInbound implements Handler: it hands in to the intake, as the
// adapters do.
func (e *Engine) HandleInbound(ctx context.Context, in Inbound) error {
	return e.intake.HandleInbound(ctx, in)
}

// Idle reports whether the engine has nothing left to do: no inbound
// message unsent, no bot that has not answered, no reply unposted.
func (e *Engine) Idle() bool {
	return e.sender.idle() && e.poster.idle()
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
