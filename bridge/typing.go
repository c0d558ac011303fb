package bridge

import (
	"context"
	"hash/fnv"
	"slices"
	"sync"
	"time"
)

// typing is the poster's thinking indicator: shown (a Slack reaction or
// assistant status, Matrix m.typing) from when a message reaches the bot
// until its first reply, or a timeout. The indicator is a platform call that
// must not slow sends and posts down, so changes go to a few workers, each
// room always to the same one so that on and off keep their order; a
// change waiting for its worker is replaced by the next change of the same
// indicator, so the queues never block and never grow past the indicators
// in flux. Indicators shown are recorded in the store, so that those a
// stopped process left shown are taken down at the next start.
type typing struct {
	p       *poster
	timeout time.Duration

	mu       sync.Mutex
	awaiting map[int64]*awaiting

	queues [typingWorkers]typingQueue
	wg     sync.WaitGroup
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

// typingWorkers is how many goroutines make typing indicator calls.
const typingWorkers = 4

// typingQueue holds the indicator changes of its worker's rooms, the latest
// wish for each, in the order they first came.
type typingQueue struct {
	mu    sync.Mutex
	order []ReplyTarget
	want  map[ReplyTarget]bool
	wake  chan struct{}
	// shown is the worker's own record of the indicators it turned on.
	shown map[ReplyTarget]bool
}

func (t *typing) init(p *poster, timeout time.Duration) {
	t.p, t.timeout = p, timeout
	t.awaiting = make(map[int64]*awaiting)
	for i := range t.queues {
		q := &t.queues[i]
		q.want = make(map[ReplyTarget]bool)
		q.shown = make(map[ReplyTarget]bool)
		q.wake = make(chan struct{}, 1)
	}
}

// start runs the workers until ctx ends.
func (t *typing) start(ctx context.Context) {
	for i := range t.queues {
		q := &t.queues[i]
		t.wg.Go(func() { t.worker(ctx, q) })
	}
}

// wait blocks until the workers returned; their context must have ended.
func (t *typing) wait() { t.wg.Wait() }

// resume takes down the indicators the store says are shown in the rooms
// of the leases named: a process that stopped, or lost them, left them.
func (t *typing) resume(ctx context.Context, leases []string) error {
	all, err := t.p.store.Indicators(ctx)
	if err != nil {
		return err
	}
	var ts []ReplyTarget
	for _, target := range all {
		if slices.Contains(leases, LeaseOf(target.Room)) {
			ts = append(ts, target)
		}
	}
	for _, target := range ts {
		q := t.queue(target)
		q.mu.Lock()
		q.shown[target] = true
		q.mu.Unlock()
		t.set(target, false)
	}
	if len(ts) > 0 {
		t.p.log.Info("taking down thinking indicators left shown by the last run", "count", len(ts))
	}
	return nil
}

// Replies counts the bot messages the conversation received.
func (p *poster) Replies(conv int64) uint64 {
	p.typing.mu.Lock()
	defer p.typing.mu.Unlock()
	if a := p.typing.awaiting[conv]; a != nil {
		return a.replies
	}
	return 0
}

// Awaiting records that the bot was sent the message at target in the
// conversation and shows the indicator for it, unless a reply came since
// the count before was taken (the bot can answer before createMessage
// returns).
func (p *poster) Awaiting(conv int64, target ReplyTarget, before uint64) {
	t := &p.typing
	t.mu.Lock()
	a := t.entry(conv)
	show := a.replies == before && !slices.Contains(a.targets, target)
	if show {
		if !a.waiting {
			a.since = p.now()
		}
		a.waiting = true
		a.targets = append(a.targets, target)
	}
	t.mu.Unlock()
	if show {
		t.set(target, true)
	}
}

// entry returns the conversation's entry; t.mu must be held.
func (t *typing) entry(conv int64) *awaiting {
	a := t.awaiting[conv]
	if a == nil {
		a = &awaiting{}
		t.awaiting[conv] = a
	}
	return a
}

// replied counts a bot message of the conversation and takes its
// indicators down.
func (t *typing) replied(conv int64) {
	t.mu.Lock()
	a := t.entry(conv)
	a.replies++
	targets := a.targets
	a.waiting, a.targets = false, nil
	a.since = t.p.now()
	t.mu.Unlock()
	for _, target := range targets {
		t.set(target, false)
	}
}

// expire takes down indicators that waited longer than the timeout, and
// forgets conversations quiet since before.
func (t *typing) expire(now, before time.Time) {
	var stale []ReplyTarget
	t.mu.Lock()
	for id, a := range t.awaiting {
		switch {
		case a.waiting && now.Sub(a.since) > t.timeout:
			stale = append(stale, a.targets...)
			a.waiting, a.targets = false, nil
		case !a.waiting && a.since.Before(before):
			delete(t.awaiting, id)
		}
	}
	t.mu.Unlock()
	for _, target := range stale {
		t.set(target, false)
	}
}

// waiting reports whether a bot has been sent a message it has not
// answered yet.
func (t *typing) waiting() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, a := range t.awaiting {
		if a.waiting {
			return true
		}
	}
	return false
}

func (t *typing) queue(target ReplyTarget) *typingQueue {
	h := fnv.New32a()
	h.Write([]byte(target.Room.Top().String()))
	return &t.queues[h.Sum32()%typingWorkers]
}

// set asks for the indicator at target to be shown or not. It never blocks.
func (t *typing) set(target ReplyTarget, on bool) {
	if _, ok := t.p.adapters[target.Room.Platform].(Typer); !ok {
		return
	}
	q := t.queue(target)
	q.mu.Lock()
	if _, queued := q.want[target]; !queued {
		q.order = append(q.order, target)
	}
	q.want[target] = on
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (t *typing) worker(ctx context.Context, q *typingQueue) {
	for {
		q.mu.Lock()
		if len(q.order) == 0 {
			q.order = nil
			q.mu.Unlock()
			select {
			case <-ctx.Done():
				return
			case <-q.wake:
			}
			continue
		}
		target := q.order[0]
		q.order = q.order[1:]
		on := q.want[target]
		delete(q.want, target)
		change := q.shown[target] != on
		q.mu.Unlock()
		if change {
			t.apply(q, target, on)
		}
	}
}

// apply makes the platform call, and records an indicator shown before it
// is shown and forgets it after it was taken down, so that a crash in
// between leaves the record. It does nothing in a room of a lease this
// process does not hold: the indicators there are another process's.
func (t *typing) apply(q *typingQueue, target ReplyTarget, on bool) {
	p := t.p
	ctx, done, held := p.leases.acquire(LeaseOf(target.Room))
	if !held {
		q.mu.Lock()
		delete(q.shown, target)
		q.mu.Unlock()
		return
	}
	defer done()
	tp := p.adapters[target.Room.Platform].(Typer)
	if on {
		if err := p.store.SetIndicator(ctx, target, true); err != nil {
			p.log.Warn("record a thinking indicator", LogRoom, target.Room.String(), LogErr, err)
		}
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	err := tp.Typing(cctx, target, on)
	cancel()
	if err != nil {
		p.log.Debug("typing indicator", LogRoom, target.Room.String(), LogErr, err)
	}
	q.mu.Lock()
	if on {
		q.shown[target] = true
	} else {
		delete(q.shown, target)
	}
	q.mu.Unlock()
	if !on && err == nil {
		if err := p.store.SetIndicator(ctx, target, false); err != nil {
			p.log.Warn("forget a thinking indicator", LogRoom, target.Room.String(), LogErr, err)
		}
	}
}
