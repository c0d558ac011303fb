package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"time"

	"github.com/botbridge/botbridge/bridge"
	"github.com/botbridge/botbridge/chat"
)

// warmUps is how many round trips of each kind run before the latency
// samples, so that connections, caches and the conversation exist.
const warmUps = 20

// latency measures round trips one at a time, alternating the two kinds so
// that both see the same machine: the chat client alone (createMessage, then
// the echo bot's reply on the conversation's stream), and a person's DM
// through the whole bridge (Socket Mode event → adapter → store → Botpress
// → stream → store → adapter → chat.postMessage arriving at the fake).
func (b *bench) latency(ctx context.Context) error {
	direct, closeDirect, err := b.directRoundTrip(ctx)
	if err != nil {
		return err
	}
	defer closeDirect()

	sl, err := newSlack()
	if err != nil {
		return err
	}
	defer sl.close()
	r := sl.addDMs("LAT", 1)[0]
	br, err := b.startBridge(ctx, sl, b.dbPath("latency"), nil)
	if err != nil {
		return err
	}
	defer br.stop()
	through := func(i int) (time.Duration, error) {
		k := sl.obs.channelPosts(r.channel) + 1
		start, err := sl.say(ctx, r, fmt.Sprintf("ping %d", i))
		if err != nil {
			return 0, err
		}
		at, err := sl.obs.waitChannel(ctx, r.channel, k)
		return at.Sub(start), err
	}

	ds := make([]time.Duration, 0, b.opts.n)
	bs := make([]time.Duration, 0, b.opts.n)
	for i := range warmUps + b.opts.n {
		var d, t time.Duration
		labelled("direct", func() { d, err = direct(i) })
		if err != nil {
			return fmt.Errorf("direct round trip: %w", err)
		}
		if t, err = through(i); err != nil {
			return fmt.Errorf("bridge round trip: %w", err)
		}
		if i >= warmUps {
			ds, bs = append(ds, d), append(bs, t)
		}
	}
	b.res.DirectP50, b.res.DirectP99 = percentile(ds, 0.50), percentile(ds, 0.99)
	b.res.BridgeP50, b.res.BridgeP99 = percentile(bs, 0.50), percentile(bs, 0.99)
	b.note("latency: direct p50 %.3f ms p99 %.3f ms; bridge p50 %.3f ms p99 %.3f ms (%d samples each)",
		b.res.DirectP50, b.res.DirectP99, b.res.BridgeP50, b.res.BridgeP99, b.opts.n)
	return br.stop()
}

// directRoundTrip opens a conversation and its stream with a chat client of
// its own, and returns a function that times one round trip on it.
func (b *bench) directRoundTrip(ctx context.Context) (func(int) (time.Duration, error), func(), error) {
	c, err := chat.NewClient(b.emu.API)
	if err != nil {
		return nil, nil, err
	}
	key, err := b.signer.Key("bench-direct")
	if err != nil {
		return nil, nil, err
	}
	if _, err := c.GetOrCreateUser(ctx, key, chat.UserProfile{Name: "Direct"}); err != nil {
		return nil, nil, fmt.Errorf("direct: %w", err)
	}
	conv, err := c.CreateConversation(ctx, key, "")
	if err != nil {
		return nil, nil, fmt.Errorf("direct: %w", err)
	}
	replies := make(chan time.Time, 16)
	connected := make(chan struct{}, 1)
	lctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- c.Listen(lctx, key, conv.ID, chat.ListenHandler{
			OnConnect: func(context.Context) {
				select {
				case connected <- struct{}{}:
				default:
				}
			},
			OnSignal: func(_ context.Context, s chat.Signal) {
				if m, ok := s.(chat.MessageCreated); ok && m.IsBot {
					replies <- time.Now()
				}
			},
		})
	}()
	closeFn := func() { cancel(); <-done }
	select {
	case <-connected:
	case <-ctx.Done():
		closeFn()
		return nil, nil, fmt.Errorf("direct: stream: %w", ctx.Err())
	}
	trip := func(i int) (time.Duration, error) {
		start := time.Now()
		_, err := c.CreateMessage(ctx, key, chat.CreateMessageRequest{ConversationID: conv.ID,
			Payload: chat.Text{Text: fmt.Sprintf("ping %d", i)}})
		if err != nil {
			return 0, err
		}
		t := time.NewTimer(stallTimeout)
		defer t.Stop()
		select {
		case at := <-replies:
			return at.Sub(start), nil
		case <-t.C:
			return 0, errors.New("no reply from the echo bot")
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	return trip, closeFn, nil
}

// percentile returns the q-quantile of ds in milliseconds (nearest rank).
func percentile(ds []time.Duration, q float64) float64 {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return float64(s[int(q*float64(len(s)-1)+0.5)]) / float64(time.Millisecond)
}

// throughput sends opts.msgs DMs spread round robin over rooms as fast as
// Socket Mode takes them, after one warm-up message per room (which makes
// the users, conversations and streams), and returns the replies posted per
// second from the first message sent to the last reply arriving at Slack.
func (b *bench) throughput(ctx context.Context, rooms int) (rate float64, cost perMsg, err error) {
	sl, err := newSlack()
	if err != nil {
		return 0, cost, err
	}
	defer sl.close()
	rs := sl.addDMs(fmt.Sprintf("T%d", rooms), rooms)
	br, err := b.startBridge(ctx, sl, b.dbPath(fmt.Sprintf("throughput-%d", rooms)), nil)
	if err != nil {
		return 0, cost, err
	}
	defer br.stop()

	if err := <-sl.sayAll(ctx, rs, rooms, "warm up"); err != nil {
		return 0, cost, err
	}
	if _, err := sl.obs.waitPosts(ctx, rooms, b.note); err != nil {
		return 0, cost, err
	}
	base, acks := sl.obs.counts()
	n := b.opts.msgs
	var split *splitProfile
	if b.opts.cpuSplit {
		if split, err = startSplit(); err != nil {
			return 0, cost, err
		}
		defer split.stop() // on the early returns
	}
	start, cpu, reqs := time.Now(), b.cpuNow(), b.requests(ctx)
	sctx, stopSending := context.WithCancel(ctx)
	defer stopSending()
	errc := sl.sayAll(sctx, rs, n, "load")
	end, err := sl.obs.waitPosts(ctx, base+n, b.note)
	if err != nil {
		stopSending()
	}
	if serr := <-errc; serr != nil && err == nil {
		return 0, cost, fmt.Errorf("send: %w", serr)
	}
	if err != nil {
		return 0, cost, err
	}
	stored, err := sl.obs.waitAcks(ctx, acks+n, nil)
	if err != nil {
		return 0, cost, err
	}
	used := b.cpuNow().sub(cpu)
	cost = perMsg{
		cpu:      cpuTimes{self: used.self / time.Duration(n), child: used.child / time.Duration(n)},
		requests: float64(b.requests(ctx)-reqs) / float64(n),
	}
	if cost.split, err = split.stop(); err != nil {
		return 0, cost, err
	}
	rate = float64(n) / end.Sub(start).Seconds()
	b.note("throughput: %d rooms: %d messages in %v: %.0f msgs/s (all sent after %v, stored after %v)", rooms, n,
		end.Sub(start).Round(time.Millisecond), rate, sl.sentAt.Sub(start).Round(time.Millisecond), stored.Sub(start).Round(time.Millisecond))
	return rate, cost, br.stop()
}

// memory measures the memory per open conversation listener over
// HTTP/1.1 (the emulator child's only protocol), with opts.listeners open.
func (b *bench) memory(ctx context.Context) error {
	m, err := b.listenerMemory(ctx, "memory", b.emu, b.client, b.opts.memprofile)
	if err != nil {
		return err
	}
	b.info.heapPerListener, b.info.stackPerListener, b.info.goroutinesPerListener, b.info.filesPerListener = m.heap, m.stack, m.goroutines, m.files
	b.res.ListenerBytes = m.heap + m.stack
	b.note("memory: %.0f bytes per listener (heap %.0f, stack %.0f, %.2f goroutines)",
		b.res.ListenerBytes, m.heap, m.stack, m.goroutines)
	return nil
}

// resumeBudget is the sweep budget (requests a minute) of a bridge that is
// restarted to measure its open streams: the restarted bridge reopens every
// stream at once, and each stream's first catch-up waits for the budget
// (at the default 300 a minute, 10,000 of them take 33 minutes). With this
// one none waits, so the memory measured is that of idle streams, with no
// catch-up pending.
const resumeBudget = 1 << 30

// perListener is what one open listener costs: bytes of heap and stack,
// goroutines, and open files (connections; negative when unknown).
type perListener struct {
	heap, stack, goroutines, files float64
}

// listenerMemory opens opts.listeners conversations through the bridge (one
// DM each), with api as the bot's Chat API client on the emulator emu,
// restarts the bridge on the same store, and measures what the restarted
// process holds once it has reopened every conversation's stream: heap and
// stack in use after a GC, before the engine runs and after. The emulator
// runs in a child process, so its side of the streams is not counted; the
// fake Slack is in this process but does nothing meanwhile. With profile
// set, a heap profile is written there with every listener open.
func (b *bench) listenerMemory(ctx context.Context, name string, emu *emulator, api *chat.Client, profile string) (perListener, error) {
	var m perListener
	n := b.opts.listeners
	sl, err := newSlack()
	if err != nil {
		return m, err
	}
	defer sl.close()
	rs := sl.addDMs("M", n)
	path := b.dbPath(name)
	withAPI := func(c *bridge.Config) { c.Bots[0].API = api }
	br, err := b.startBridge(ctx, sl, path, withAPI)
	if err != nil {
		return m, err
	}
	b.note("%s: opening %d conversations through the bridge", name, n)
	sctx, stopSending := context.WithCancel(ctx)
	defer stopSending()
	errc := sl.sayPaced(sctx, rs, n, "hello")
	_, err = sl.obs.waitPosts(ctx, n, b.note)
	if err != nil {
		stopSending()
	}
	if serr := <-errc; err == nil {
		err = serr
	}
	if err != nil {
		br.stop()
		return m, err
	}
	if err := br.stop(); err != nil {
		return m, err
	}

	// The restarted bridge reopens the streams of the conversations active
	// within ListenerIdle as it starts.
	br, err = b.newBridge(ctx, sl, path, func(c *bridge.Config) {
		withAPI(c)
		c.SweepBudget = resumeBudget
	})
	if err != nil {
		return m, err
	}
	defer br.stop()
	before := memNow()
	br.run(ctx)
	b.note("%s: restarted; waiting for %d streams", name, n)
	if err := emu.waitStreams(ctx, n); err != nil {
		return m, err
	}
	after := memNow()
	if profile != "" {
		if err := writeProfile("heap", profile); err != nil {
			return m, err
		}
	}
	per := func(after, before uint64) float64 { return (float64(after) - float64(before)) / float64(n) }
	m = perListener{
		heap:       per(after.heap, before.heap),
		stack:      per(after.stack, before.stack),
		goroutines: (float64(after.goroutines) - float64(before.goroutines)) / float64(n),
		files:      -1,
	}
	if after.files >= 0 && before.files >= 0 {
		m.files = float64(after.files-before.files) / float64(n)
	}
	return m, br.stop()
}

type memSample struct {
	heap, stack uint64
	goroutines  int
	files       int // open file descriptors; -1 when unknown
}

// memNow returns the heap and stack in use after a full collection, and the
// goroutines and open files.
func memNow() memSample {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	files := -1
	if fds, err := os.ReadDir("/proc/self/fd"); err == nil {
		files = len(fds)
	}
	return memSample{heap: ms.HeapInuse, stack: ms.StackInuse, goroutines: runtime.NumGoroutine(), files: files}
}

// writeProfile writes the named runtime/pprof profile to path.
func writeProfile(name, path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pprof.Lookup(name).WriteTo(f, 0); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// drain builds a backlog and times a restart through it: the bridge answers
// one message per room (conversations and streams exist), Botpress goes down
// (every request 503), opts.backlog messages arrive and are stored, the
// bridge stops, Botpress comes back, and a new bridge process starts on the
// store. The figure runs from the store's opening to the last reply
// arriving at Slack.
func (b *bench) drain(ctx context.Context) error {
	n, rooms := b.opts.backlog, b.opts.backlogRooms
	sl, err := newSlack()
	if err != nil {
		return err
	}
	defer sl.close()
	rs := sl.addDMs("B", rooms)
	path := b.dbPath("drain")
	short := func(c *bridge.Config) { c.DrainTimeout = time.Second }
	br, err := b.startBridge(ctx, sl, path, short)
	if err != nil {
		return err
	}
	if err := <-sl.sayAll(ctx, rs, rooms, "warm up"); err != nil {
		br.stop()
		return err
	}
	if _, err := sl.obs.waitPosts(ctx, rooms, b.note); err != nil {
		br.stop()
		return err
	}
	if err := b.emu.setDown(ctx, true); err != nil {
		br.stop()
		return err
	}
	defer b.emu.setDown(context.WithoutCancel(ctx), false)
	b.note("drain: Botpress is down; queueing %d messages in %d rooms", n, rooms)
	_, acks := sl.obs.counts()
	if err := <-sl.sayAll(ctx, rs, n, "queued"); err != nil {
		br.stop()
		return err
	}
	if _, err := sl.obs.waitAcks(ctx, acks+n, b.note); err != nil {
		br.stop()
		return err
	}
	if err := br.stop(); err != nil {
		return err
	}
	if err := b.emu.setDown(ctx, false); err != nil {
		return err
	}
	base, _ := sl.obs.counts()
	b.note("drain: Botpress is back; restarting the bridge")
	start, reqs := time.Now(), b.requests(ctx)
	br, err = b.startBridge(ctx, sl, path, nil)
	if err != nil {
		return err
	}
	defer br.stop()
	end, err := sl.obs.waitPosts(ctx, base+n, b.note)
	if err != nil {
		return err
	}
	b.res.DrainSeconds = end.Sub(start).Seconds()
	b.info.drainRequests = float64(b.requests(ctx)-reqs) / float64(n)
	b.note("drain: %d messages answered in %.2f s after the restart, with %.1f Chat API requests each", n, b.res.DrainSeconds, b.info.drainRequests)
	return br.stop()
}
