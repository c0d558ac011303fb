package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/botbridge/botbridge/bridge"
	"github.com/botbridge/botbridge/chat"
)

// The late phase: replies the bot sends into conversations that have been
// idle, with no message to answer. Three runs:
//
//   - webhook: the bot has a webhook secret and the emulator POSTs its
//     webhooks to the engine's handler on a listener of this process; the
//     bridge opens no stream;
//   - sweep: no webhook, and streams close after sweepListenerIdle, so that
//     only the sweeps find the replies;
//   - h2: the memory per open stream, as in the memory phase, against an
//     emulator child whose API speaks HTTP/2 (opts.h2: TLS or h2c).
//
// In the first two, opts.lateConvs conversations are opened through the
// bridge (one DM each, answered by the echo bot); once the bridge has had
// nothing to send or post for idleQuiet, the bot sends one late reply into
// each of opts.lateReplies of them, picked at random, all at once. A reply's delay runs from its push in the emulator child to its
// chat.postMessage arriving at the fake Slack; both processes read the
// same clock.

const (
	// benchWebhookSecret is the bot's webhook secret in the webhook run.
	benchWebhookSecret = "botbridge-bench-webhook-secret"
	// sweepListenerIdle is how long a stream stays open without traffic in
	// the sweep run (bridge.listener_idle): streams close soon after the
	// conversations were opened, and sweeps are what is left.
	sweepListenerIdle = 2 * time.Second
	// lateText is what the bot says late.
	lateText = "a human agent answers, late"
	// idleWait bounds the wait for every stream of the sweep run to close.
	idleWait = time.Minute
	// idleQuiet is how long the bridge has had nothing to send or post
	// when the late replies come.
	idleQuiet = 2 * time.Second
)

// lateRun is what one run of the late phase saw.
type lateRun struct {
	// delays are those of the replies posted by the deadline.
	delays []time.Duration
	// lost counts the replies not posted by the deadline; extra the posts
	// beyond one per late reply (a reply posted twice).
	lost, extra int
	// streams were open in the emulator when the replies were pushed.
	streams int
	// perMinute is the rate of Chat API requests from the push to the last
	// reply posted (or the deadline), over window; cpu is what was used
	// meanwhile.
	perMinute float64
	window    time.Duration
	cpu       cpuTimes
	// hooks are the emulator's webhook counters of the run.
	hooks struct{ delivered, failed, dropped, discarded int }
	// In the webhook run, each late reply's delay in three parts: from the
	// push to its webhook reaching the bridge (the emulator's queue and
	// the POST), the bridge's handler (the reply stored), and from the
	// handler's answer to the post.
	toHook, inHook, toPost []time.Duration
}

// lateDetails are the late phase's figures beside the JSON ones.
type lateDetails struct {
	hook, sweep lateRun
	budget      int // the sweep run's SweepBudget
	h2          perListener
	h2conns     int // connections the HTTP/2 run's emulator accepted
}

// sweepBudget is the sweep run's bridge.sweep_budget, in requests a minute
// per bot: opts.sweepBudget, or else 1.5 times what the schedule asks of
// opts.lateConvs conversations idle for less than 5 minutes (each listed
// every 15 s, 4 times a minute), never below the default (300). The
// emulator has no rate limit, so the budget, not the service, would
// otherwise be what the figure measures.
func (b *bench) sweepBudget() int {
	if b.opts.sweepBudget > 0 {
		return b.opts.sweepBudget
	}
	return max(300, 6*b.opts.lateConvs)
}

// late runs the three runs of the late phase.
func (b *bench) late(ctx context.Context) error {
	var err error
	if b.info.late.hook, err = b.lateRun(ctx, "late-webhook", true); err != nil {
		return fmt.Errorf("webhook run: %w", err)
	}
	b.info.late.budget = b.sweepBudget()
	if b.info.late.sweep, err = b.lateRun(ctx, "late-sweep", false); err != nil {
		return fmt.Errorf("sweep run: %w", err)
	}
	hook, sweep := b.info.late.hook, b.info.late.sweep
	b.res.LateP50 = percentile(hook.delays, 0.50) / 1000
	b.res.LateP99 = percentile(hook.delays, 0.99) / 1000
	b.res.LateSweepP99 = percentile(sweep.delays, 0.99) / 1000
	b.res.LateLost = hook.lost + sweep.lost
	if err := b.lateH2(ctx); err != nil {
		return fmt.Errorf("HTTP/2 run: %w", err)
	}
	return nil
}

// lateRun opens opts.lateConvs conversations, pushes one late reply into
// opts.lateReplies of them and waits for their posts until opts.lateDeadline
// after the push. hooked selects the webhook run, else the sweep run.
func (b *bench) lateRun(ctx context.Context, name string, hooked bool) (lateRun, error) {
	var run lateRun
	n, k := b.opts.lateConvs, b.opts.lateReplies
	sl, err := newSlack()
	if err != nil {
		return run, err
	}
	defer sl.close()
	rs := sl.addDMs("L", n)
	budget := b.sweepBudget()
	br, err := b.newBridge(ctx, sl, b.dbPath(name), func(c *bridge.Config) {
		if hooked {
			c.Bots[0].WebhookSecret = benchWebhookSecret
			return
		}
		c.ListenerIdle = sweepListenerIdle
		c.SweepBudget = budget
	})
	if err != nil {
		return run, err
	}
	defer br.stop()
	hooks0, err := b.emu.stats(ctx)
	if err != nil {
		return run, err
	}
	timer := &hookTimer{next: br.eng.WebhookHandler(), seen: map[chat.ConversationID]hookTimes{}}
	if hooked {
		url, closeHooks, err := serveWebhooks(timer)
		if err != nil {
			return run, err
		}
		defer closeHooks()
		if err := b.emu.setWebhook(ctx, url+bridge.WebhookPath+botName, benchWebhookSecret); err != nil {
			return run, err
		}
		defer b.emu.setWebhook(context.WithoutCancel(ctx), "", "")
	}
	br.run(ctx)

	b.note("%s: opening %d conversations through the bridge", name, n)
	if err := <-sl.sayPaced(ctx, rs, n, "hello"); err != nil {
		return run, err
	}
	if _, err := sl.obs.waitPosts(ctx, n, b.note); err != nil {
		return run, b.emu.annotate(ctx, err)
	}
	// Idle: nothing left to send or post for idleQuiet, so that the burst
	// meets a bridge with no work from the setup.
	if err := br.eng.WaitIdle(ctx, idleQuiet); err != nil {
		return run, err
	}
	if !hooked {
		b.note("%s: waiting for every stream to close (bridge.listener_idle %v)", name, sweepListenerIdle)
		if err := b.emu.waitNoStreams(ctx, idleWait); err != nil {
			return run, err
		}
	}
	st, err := b.emu.stats(ctx)
	if err != nil {
		return run, err
	}
	run.streams = st.Streams

	convs, err := br.db.ActiveConversations(ctx, time.Time{})
	if err != nil {
		return run, err
	}
	if len(convs) != n {
		none, many := 0, 0
		for _, r := range rs {
			switch c := sl.obs.channelPosts(r.channel); {
			case c == 0:
				none++
			case c > 1:
				many++
			}
		}
		posts, acks := sl.obs.counts()
		return run, fmt.Errorf("the store holds %d conversations, want %d; %d posts, %d events acknowledged, %d DMs without a post, %d with more than one",
			len(convs), n, posts, acks, none, many)
	}
	rand.Shuffle(len(convs), func(i, j int) { convs[i], convs[j] = convs[j], convs[i] })
	convs = convs[:k]
	ids := make([]chat.ConversationID, k)
	chans := make([]string, k)
	for i, c := range convs {
		ids[i], chans[i] = c.ChatID, c.Key.Room.Room
	}
	sl.obs.track(chans)
	postsBefore, _ := sl.obs.counts()

	b.note("%s: the bot sends a late reply into %d of the %d idle conversations (%d streams open)", name, k, n, run.streams)
	reqs0, cpu0 := st.Requests, b.cpuNow()
	timer.armed.Store(true)
	pushed, err := b.emu.push(ctx, ids, lateText)
	if err != nil {
		return run, err
	}
	deadline := pushed[0].Add(b.opts.lateDeadline)
	posted := func() (done int, last time.Time) {
		for _, ch := range chans {
			if at, ok := sl.obs.postTime(ch, 1); ok {
				done++
				if at.After(last) {
					last = at
				}
			}
		}
		return done, last
	}
	var last time.Time
	err = sl.obs.waitUntil(ctx, deadline, func() bool {
		var done int
		done, last = posted()
		return done == k
	}, func() {
		done, _ := posted()
		b.note("  … %d of %d late replies posted", done, k)
	})
	if err != nil {
		return run, err
	}
	end, cpu := time.Now(), b.cpuNow().sub(cpu0)
	if st, err = b.emu.stats(ctx); err != nil {
		return run, err
	}
	if !last.IsZero() {
		end = last
	}
	run.window, run.cpu = end.Sub(pushed[0]), cpu
	run.perMinute = float64(st.Requests-reqs0) / run.window.Minutes()
	if hooked {
		if err := b.emu.setWebhook(ctx, "", ""); err != nil {
			return run, err
		}
	}
	if err := br.stop(); err != nil {
		return run, err
	}
	if st, err = b.emu.stats(ctx); err != nil {
		return run, err
	}
	run.hooks.delivered = st.Webhooks.Delivered - hooks0.Webhooks.Delivered
	run.hooks.failed = st.Webhooks.Failed - hooks0.Webhooks.Failed
	run.hooks.dropped = st.Webhooks.Dropped - hooks0.Webhooks.Dropped
	run.hooks.discarded = st.Webhooks.Discarded - hooks0.Webhooks.Discarded

	sl.obs.mu.Lock()
	for i, ch := range chans {
		at, ok := sl.obs.postTime(ch, 1)
		if !ok {
			run.lost++
			continue
		}
		run.delays = append(run.delays, at.Sub(pushed[i]))
		if h, ok := timer.times(ids[i]); ok {
			run.toHook = append(run.toHook, h.arrived.Sub(pushed[i]))
			run.inHook = append(run.inHook, h.answered.Sub(h.arrived))
			run.toPost = append(run.toPost, at.Sub(h.answered))
		}
	}
	sl.obs.mu.Unlock()
	postsAfter, _ := sl.obs.counts()
	run.extra = postsAfter - postsBefore - len(run.delays)
	b.note("%s: %d of %d late replies posted: p50 %.3f s, p99 %.3f s; %d lost, %d posts too many; %.0f Chat API requests a minute meanwhile",
		name, len(run.delays), k, percentile(run.delays, 0.5)/1000, percentile(run.delays, 0.99)/1000, run.lost, run.extra, run.perMinute)
	if len(run.toHook) > 0 {
		b.note("%s: p50 / p99 from the push to the webhook %.0f / %.0f ms, in the handler %.0f / %.0f ms, from its answer to the post %.0f / %.0f ms", name,
			percentile(run.toHook, 0.5), percentile(run.toHook, 0.99), percentile(run.inHook, 0.5), percentile(run.inHook, 0.99),
			percentile(run.toPost, 0.5), percentile(run.toPost, 0.99))
	}
	return run, nil
}

// hookTimer serves the engine's webhook handler and, once armed, records
// when each bot message's webhook arrived and was answered, by
// conversation.
type hookTimer struct {
	next  http.Handler
	armed atomic.Bool
	mu    sync.Mutex
	seen  map[chat.ConversationID]hookTimes
}

type hookTimes struct{ arrived, answered time.Time }

func (t *hookTimer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !t.armed.Load() {
		t.next.ServeHTTP(w, r)
		return
	}
	at := time.Now()
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, "cannot read the body", http.StatusBadRequest)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	t.next.ServeHTTP(w, r)
	if s, err := chat.ParseSignal(body); err == nil {
		if m, ok := s.(chat.MessageCreated); ok && m.IsBot {
			t.mu.Lock()
			t.seen[m.ConversationID] = hookTimes{arrived: at, answered: time.Now()}
			t.mu.Unlock()
		}
	}
}

func (t *hookTimer) times(conv chat.ConversationID) (hookTimes, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	h, ok := t.seen[conv]
	return h, ok
}

// serveWebhooks serves h on a loopback listener, as the service's public
// listener would, and returns its base URL and a function that closes it.
func serveWebhooks(h http.Handler) (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, fmt.Errorf("webhook listener: %w", err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go labelled("bridge", func() {
		defer close(done)
		srv.Serve(ln)
	})
	return "http://" + ln.Addr().String(), func() {
		srv.Close()
		<-done
	}, nil
}

// lateH2 measures the memory per open stream over HTTP/2, as the memory
// phase does over HTTP/1.1, against an emulator child of its own that
// speaks HTTP/2 (opts.h2).
func (b *bench) lateH2(ctx context.Context) error {
	emu, err := startEmulator(ctx, b.opts.h2, b.stderr)
	if err != nil {
		return err
	}
	defer emu.close()
	var copt chat.Option
	switch b.opts.h2 {
	case protoTLS:
		cfg, err := emu.tlsConfig()
		if err != nil {
			return err
		}
		copt = chat.WithTLSConfig(cfg)
	case protoH2C:
		copt = chat.WithUnencryptedHTTP2()
	default:
		return errors.New("-h2: want tls or h2c")
	}
	api, err := chat.NewClient(emu.API, copt)
	if err != nil {
		return err
	}
	b.note("late-h2: emulator child at %s (HTTP/2 over %s)", emu.API, b.opts.h2)
	profile := ""
	if !b.opts.phases[phaseMemory] {
		profile = b.opts.memprofile
	}
	m, err := b.listenerMemory(ctx, "late-h2", emu, api, profile)
	if err != nil {
		return err
	}
	st, err := emu.stats(ctx)
	if err != nil {
		return err
	}
	b.info.late.h2, b.info.late.h2conns = m, st.Connections
	b.res.ListenerBytesH2 = m.heap + m.stack
	b.note("late-h2: %.0f bytes per stream over HTTP/2 (heap %.0f, stack %.0f, %.2f goroutines, %.4f open files); the emulator accepted %d connections in all",
		b.res.ListenerBytesH2, m.heap, m.stack, m.goroutines, m.files, st.Connections)
	return nil
}
