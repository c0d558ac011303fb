package main

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/botbridge/botbridge/adapters/slack"
	"github.com/botbridge/botbridge/adapters/slack/slacktest"
	"github.com/botbridge/botbridge/bridge"
	"github.com/botbridge/botbridge/chat"
	"github.com/botbridge/botbridge/store"
)

// botName is the name of the one bot the bridge serves.
const botName = "bench"

// stallTimeout fails a wait that sees no progress for this long: something
// is stuck, and the report says what Slack refused meanwhile.
const stallTimeout = 60 * time.Second

// room is a Slack DM between a person and the bot.
type room struct {
	channel, user string
}

// slackSide is a fake Slack (Socket Mode and Web API over loopback) with an
// observer of what the bot posts.
type slackSide struct {
	fake *slacktest.Server
	obs  *observer
	stop context.CancelFunc
	done chan struct{}
	// sentAt is when the last sayAll had written its last event; read it
	// after that sayAll's channel yielded.
	sentAt time.Time
}

func newSlack() (*slackSide, error) { return newSlackWith(slacktest.Options{}) }

// newSlackWith is newSlack with the fake's options.
func newSlackWith(opts slacktest.Options) (*slackSide, error) {
	fake, err := slacktest.New(opts)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &slackSide{fake: fake, obs: newObserver(), stop: cancel, done: make(chan struct{})}
	labelled("slack", func() {
		if err = fake.Start(""); err != nil {
			return
		}
		go func() {
			defer close(s.done)
			fake.WaitFor(ctx, s.obs.scan)
		}()
	})
	if err != nil {
		cancel()
		fake.Close()
		return nil, err
	}
	return s, nil
}

func (s *slackSide) close() {
	s.stop()
	<-s.done
	s.fake.Close()
}

// addDMs adds n people, each with a DM with the bot.
func (s *slackSide) addDMs(prefix string, n int) []room {
	rooms := make([]room, n)
	for i := range rooms {
		r := room{channel: fmt.Sprintf("D%s%07d", prefix, i), user: fmt.Sprintf("U%s%07d", prefix, i)}
		s.fake.AddUser(slacktest.User{ID: r.user, Name: strings.ToLower(r.user), RealName: "Person " + r.user})
		s.fake.AddChannel(slacktest.Channel{ID: r.channel, Type: slacktest.IM, User: r.user})
		rooms[i] = r
	}
	return rooms
}

// say posts text as r's person and sends its message event over Socket
// Mode; it returns when the event was written, with the time just before.
func (s *slackSide) say(ctx context.Context, r room, text string) (time.Time, error) {
	m := s.fake.AddMessage(slacktest.Message{Channel: r.channel, User: r.user, Text: text})
	ev := s.fake.MessageEvent(m)
	start := time.Now()
	if _, err := s.fake.SendEvent(ctx, slacktest.EventsAPI, ev); err != nil {
		return start, err
	}
	return start, nil
}

// sayAll sends n messages round robin over rooms from a goroutine of its
// own, and returns a channel that yields its error (or nil) once done.
func (s *slackSide) sayAll(ctx context.Context, rooms []room, n int, tag string) <-chan error {
	errc := make(chan error, 1)
	go labelled("people", func() {
		for i := range n {
			if _, err := s.say(ctx, rooms[i%len(rooms)], fmt.Sprintf("%s %d", tag, i)); err != nil {
				errc <- err
				return
			}
		}
		s.sentAt = time.Now()
		errc <- nil
	})
	return errc
}

// sayWindow is how many events sayPaced lets wait for their
// acknowledgement.
const sayWindow = 500

// sayPaced is sayAll with at most sayWindow events unacknowledged at a
// time, for the runs that open thousands of conversations before they
// measure. Flooded, the Socket Mode connection holds more than 30 s of
// events under load: the fake's pings wait behind them, slack-go sees none
// for 30 s and reconnects, and the events still in the old connection are
// lost (Slack would deliver them again; the fake does not, as the bench
// runs it).
func (s *slackSide) sayPaced(ctx context.Context, rooms []room, n int, tag string) <-chan error {
	errc := make(chan error, 1)
	_, acks0 := s.obs.counts()
	go labelled("people", func() {
		for i := range n {
			if i >= sayWindow {
				if _, err := s.obs.waitAcks(ctx, acks0+i-sayWindow+1, nil); err != nil {
					errc <- err
					return
				}
			}
			if _, err := s.say(ctx, rooms[i%len(rooms)], fmt.Sprintf("%s %d", tag, i)); err != nil {
				errc <- err
				return
			}
		}
		s.sentAt = time.Now()
		errc <- nil
	})
	return errc
}

// observer follows the fake's recorded calls: it counts the bot's successful
// chat.postMessage calls (in total and per channel, with the time each
// arrived at the fake), the Socket Mode acks, and the calls Slack refused.
type observer struct {
	mu      sync.Mutex
	changed chan struct{}
	calls   int // prefix of State.Calls already seen
	envs    int // envelopes sent
	conns   int // Socket Mode connections opened
	acks    int
	lastAck time.Time
	posts   int
	last    time.Time
	chans   map[string]chanPosts
	refused map[string]int // by "method: error"
}

type chanPosts struct {
	n    int
	last time.Time
	// times holds when each post arrived, from the first, in channels
	// marked with track.
	times []time.Time
	track bool
}

func newObserver() *observer {
	return &observer{changed: make(chan struct{}), chans: make(map[string]chanPosts), refused: make(map[string]int)}
}

// scan is the fake's WaitFor condition: it reads what was recorded since the
// last call, under the fake's lock, and never ends the wait.
func (o *observer) scan(st *slacktest.State) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	changed := len(st.Acks) != o.acks
	o.envs, o.conns = len(st.Envelopes), len(st.Connections)
	o.acks = len(st.Acks)
	if o.acks > 0 {
		o.lastAck = st.Acks[o.acks-1].Time
	}
	for _, c := range st.Calls[o.calls:] {
		switch {
		case c.Error != "":
			o.refused[c.Method+": "+c.Error]++
		case c.Method == "chat.postMessage":
			ch := c.Args.Get("channel")
			cp := o.chans[ch]
			cp.n++
			cp.last = c.Time
			if cp.track {
				cp.times = append(cp.times, c.Time)
			}
			o.chans[ch] = cp
			o.posts++
			o.last = c.Time
			changed = true
		}
	}
	o.calls = len(st.Calls)
	if changed {
		close(o.changed)
		o.changed = make(chan struct{})
	}
	return false
}

// counts returns the posts and acks seen so far.
func (o *observer) counts() (posts, acks int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.posts, o.acks
}

func (o *observer) channelPosts(ch string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.chans[ch].n
}

// track makes the observer keep the time of every post in the channels
// from now on; postTime reads them.
func (o *observer) track(chans []string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, ch := range chans {
		cp := o.chans[ch]
		cp.track = true
		o.chans[ch] = cp
	}
}

// postTime returns when the k-th post (from 1) tracked in ch arrived; o.mu
// must be held.
func (o *observer) postTime(ch string, k int) (time.Time, bool) {
	cp := o.chans[ch]
	if k < 1 || k > len(cp.times) {
		return time.Time{}, false
	}
	return cp.times[k-1], true
}

// waitUntil blocks until done (called with o.mu held) reports true, or the
// deadline passes (it then returns nil too), or ctx ends. progress, if not
// nil, is called every few seconds with o.mu held.
func (o *observer) waitUntil(ctx context.Context, deadline time.Time, done func() bool, progress func()) error {
	end := time.NewTimer(time.Until(deadline))
	defer end.Stop()
	return o.watch(ctx, done, progress, end.C, nil, func() error { return nil })
}

// wait blocks until done (called with o.mu held) reports true, ctx ends, or
// nothing changes for stallTimeout. progress, if not nil, is called every few
// seconds with o.mu held.
func (o *observer) wait(ctx context.Context, what string, done func() bool, progress func()) error {
	stall := time.NewTimer(stallTimeout)
	defer stall.Stop()
	err := o.watch(ctx, done, progress, stall.C, func() { stall.Reset(stallTimeout) }, func() error {
		o.mu.Lock()
		seen := fmt.Sprintf("%d posts, %d of %d events acknowledged, %d Socket Mode connections", o.posts, o.acks, o.envs, o.conns)
		o.mu.Unlock()
		return fmt.Errorf("waiting for %s: no progress for %v (%s); Slack refused: %s; %s", what, stallTimeout, seen, o.refusals(), dumpGoroutines())
	})
	if err != nil && err == ctx.Err() {
		return fmt.Errorf("waiting for %s: %w; Slack refused: %s", what, err, o.refusals())
	}
	return err
}

// watch is the loop of waitUntil and wait: it checks done at every change
// of what the observer saw (then calls changed, if not nil), calls progress
// every few seconds, and returns the result of timeout once timer fires.
func (o *observer) watch(ctx context.Context, done func() bool, progress func(), timer <-chan time.Time, changed func(), timeout func() error) error {
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	for {
		o.mu.Lock()
		ok := done()
		ch := o.changed
		o.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ch:
			if changed != nil {
				changed()
			}
		case <-tick.C:
			if progress != nil {
				o.mu.Lock()
				progress()
				o.mu.Unlock()
			}
		case <-timer:
			return timeout()
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// waitPosts waits until n posts were seen in total and returns when the
// last one arrived at the fake.
func (o *observer) waitPosts(ctx context.Context, n int, note func(string, ...any)) (time.Time, error) {
	var at time.Time
	err := o.wait(ctx, fmt.Sprintf("%d replies", n), func() bool {
		at = o.last
		return o.posts >= n
	}, func() {
		if note != nil {
			note("  … %d of %d replies posted", o.posts, n)
		}
	})
	return at, err
}

// waitChannel waits until ch had n posts and returns when the last arrived.
func (o *observer) waitChannel(ctx context.Context, ch string, n int) (time.Time, error) {
	var at time.Time
	err := o.wait(ctx, "a reply in "+ch, func() bool {
		cp := o.chans[ch]
		at = cp.last
		return cp.n >= n
	}, nil)
	return at, err
}

// waitAcks waits until n envelopes were acknowledged (stored by the bridge)
// and returns when the last ack arrived.
func (o *observer) waitAcks(ctx context.Context, n int, note func(string, ...any)) (time.Time, error) {
	var at time.Time
	err := o.wait(ctx, fmt.Sprintf("%d acknowledged events", n), func() bool {
		at = o.lastAck
		return o.acks >= n
	}, func() {
		if note != nil {
			note("  … %d of %d events stored", o.acks, n)
		}
	})
	return at, err
}

// dumpGoroutines writes every goroutine's stack to a file in the temporary
// directory, for a wait that saw no progress, and says where.
func dumpGoroutines() string {
	f, err := os.CreateTemp("", "botbridge-bench-stall-*.txt")
	if err != nil {
		return fmt.Sprintf("no goroutine dump: %v", err)
	}
	err = pprof.Lookup("goroutine").WriteTo(f, 2)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Sprintf("goroutine dump %s incomplete: %v", f.Name(), err)
	}
	return "goroutines in " + f.Name()
}

func (o *observer) refusals() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.refused) == 0 {
		return "nothing"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(o.refused)) {
		parts = append(parts, fmt.Sprintf("%s ×%d", k, o.refused[k]))
	}
	return strings.Join(parts, ", ")
}

// bridgeSide is one run of the bridge: its store, Slack adapter and engine,
// wired as cmd/botbridge's Service wires them.
type bridgeSide struct {
	db     *store.DB
	hc     *http.Client
	eng    *bridge.Engine
	cancel context.CancelFunc
	done   chan error

	stopOnce sync.Once
	stopErr  error
}

// newBridge opens the store at dbPath and builds the Slack adapter (Socket
// Mode, on sl's fake) and the engine, not yet running. tweak, if not nil,
// changes the engine's configuration.
func (b *bench) newBridge(ctx context.Context, sl *slackSide, dbPath string, tweak func(*bridge.Config)) (*bridgeSide, error) {
	var opts []store.Option
	if b.opts.sync == "normal" {
		opts = append(opts, store.SyncNormal())
	}
	// The store's writer goroutine is the bridge's work.
	var db *store.DB
	var err error
	labelled("bridge", func() { db, err = store.Open(ctx, dbPath, opts...) })
	if err != nil {
		return nil, err
	}
	o := sl.fake.Options()
	eng, hc, err := newEngine(engineSpec{store: db, slackAPI: sl.fake.APIURL(), botToken: o.BotToken, appToken: o.AppToken,
		postInterval: b.opts.postInterval, thinking: b.opts.thinking, slackIdle: b.opts.slackIdle,
		client: b.client, signer: b.signer, log: b.log}, tweak)
	if err != nil {
		db.Close()
		return nil, err
	}
	return &bridgeSide{db: db, hc: hc, eng: eng, done: make(chan error, 1)}, nil
}

// run starts the engine; stop ends it.
func (bs *bridgeSide) run(ctx context.Context) {
	ctx, bs.cancel = context.WithCancel(ctx)
	go labelled("bridge", func() { bs.done <- bs.eng.Run(ctx) })
}

// stop stops the engine (it drains what is in flight), then closes the
// adapter's connections and the store. Later calls return the first's
// result.
func (bs *bridgeSide) stop() error {
	bs.stopOnce.Do(func() {
		if bs.cancel != nil {
			bs.cancel()
			bs.stopErr = <-bs.done
		}
		bs.hc.CloseIdleConnections()
		if err := bs.db.Close(); bs.stopErr == nil {
			bs.stopErr = err
		}
	})
	return bs.stopErr
}

// startBridge is newBridge then run.
func (b *bench) startBridge(ctx context.Context, sl *slackSide, dbPath string, tweak func(*bridge.Config)) (*bridgeSide, error) {
	bs, err := b.newBridge(ctx, sl, dbPath, tweak)
	if err != nil {
		return nil, err
	}
	bs.run(ctx)
	return bs, nil
}

// engineSpec is what an engine of the bench is built of: its store, the
// fake Slack's address and tokens, the adapter's settings, and the bot's
// Chat API client and key signer.
type engineSpec struct {
	store                        bridge.Store
	slackAPI, botToken, appToken string
	postInterval                 time.Duration
	thinking                     string
	slackIdle                    int
	client                       *chat.Client
	signer                       *chat.Signer
	log                          *slog.Logger
	// replica, leaseTTL and leaseRenew are the engine's name among the
	// replicas and its leases' timing; zero for the engine's defaults.
	replica              string
	leaseTTL, leaseRenew time.Duration
}

// newEngine builds the Slack adapter (Socket Mode) and the engine of s,
// wired as cmd/botbridge's Service wires them, not yet running, and returns
// the engine and the adapter's HTTP client, to close with the run. tweak,
// if not nil, changes the engine's configuration.
func newEngine(s engineSpec, tweak func(*bridge.Config)) (*bridge.Engine, *http.Client, error) {
	// The service gives the adapter no client, so the adapter makes its own:
	// a clone of http.DefaultTransport with 64 idle connections per host.
	// The bench makes the same, to close it with its run.
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64
	if s.slackIdle > 0 {
		tr.MaxIdleConnsPerHost = s.slackIdle
	}
	hc := &http.Client{Transport: tr}
	ad, err := slack.New(slack.Config{
		BotToken:     s.botToken,
		AppToken:     s.appToken,
		Mode:         slack.ModeSocket,
		APIURL:       s.slackAPI,
		PostInterval: s.postInterval,
		Thinking:     slack.Thinking(s.thinking),
		HTTPClient:   hc,
		Logger:       s.log,
	})
	if err != nil {
		return nil, nil, err
	}
	router, err := bridge.NewRouter([]bridge.Route{{Bot: botName}}, []string{botName})
	if err != nil {
		return nil, nil, err
	}
	cfg := bridge.Config{
		Store:      s.store,
		Bots:       []bridge.BotSpec{{Name: botName, API: s.client, Signer: s.signer}},
		Router:     router,
		Adapters:   []bridge.Adapter{ad},
		Logger:     s.log,
		Replica:    s.replica,
		LeaseTTL:   s.leaseTTL,
		LeaseRenew: s.leaseRenew,
	}
	if tweak != nil {
		tweak(&cfg)
	}
	eng, err := bridge.New(cfg)
	if err != nil {
		return nil, nil, err
	}
	return eng, hc, nil
}
