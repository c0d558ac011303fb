package bridge

import (
	"container/heap"
	"context"
	"slices"
	"sync"
	"time"

	"github.com/botbridge/botbridge/chat"
)

// sweeper is the receiver's watch over conversations whose bot messages no
// stream or webhook brings: every conversation with traffic in the watch
// window is listed (messages newer than the last one delivered) on a
// schedule, more often the more recently it was active, within a budget of
// requests per bot. Conversations a stream or a healthy webhook covers are
// listed too, rarely, to reconcile what a lost webhook or a gap of a
// stream missed. After a start, every watched conversation is listed once,
// the most recently active first.
type sweeper struct {
	r      *receiver
	budget float64 // requests a minute per bot
	every  time.Duration
	window time.Duration

	mu      sync.Mutex
	convs   map[int64]*watched
	due     watchHeap
	buckets map[string]*bucket
	wake    chan struct{}
	wg      sync.WaitGroup
}

// watched is a conversation the sweeper keeps an eye on.
type watched struct {
	conv   int64
	lease  string
	chatID chat.ConversationID
	bot    string
	active time.Time // its last traffic
	next   time.Time // when it is listed next
	index  int       // in the heap; -1 when not in it
}

// sweepWorkers is how many conversations are listed at once.
const sweepWorkers = 4

func (sw *sweeper) init(r *receiver, budget int, every, window time.Duration) {
	sw.r, sw.budget, sw.every, sw.window = r, float64(budget), every, window
	sw.convs = make(map[int64]*watched)
	sw.buckets = make(map[string]*bucket)
	sw.wake = make(chan struct{}, 1)
}

// start runs the workers until ctx ends.
func (sw *sweeper) start(ctx context.Context) {
	for range sweepWorkers {
		sw.wg.Go(func() { sw.work(ctx) })
	}
}

func (sw *sweeper) wait() { sw.wg.Wait() }

// watch adds c to the watched conversations, or records its traffic. A
// conversation new to the sweeper is listed at once when now is zero (a
// start: what came while the bridge was down), else on its schedule.
func (sw *sweeper) watch(c Conversation, active time.Time, listNow bool) {
	if c.ChatID == "" {
		return
	}
	sw.mu.Lock()
	defer sw.mu.Unlock()
	w := sw.convs[c.ID]
	if w == nil {
		w = &watched{conv: c.ID, lease: LeaseOf(c.Key.Room), chatID: c.ChatID, bot: c.Key.Bot, active: active, index: -1}
		sw.convs[c.ID] = w
	}
	w.chatID = c.ChatID
	if active.After(w.active) {
		w.active = active
	}
	next := sw.r.now().Add(sw.interval(w))
	if listNow {
		next = sw.r.now()
	}
	sw.schedule(w, next)
}

// drop forgets the conversations of the leases named, which ended.
func (sw *sweeper) drop(leases []string) {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	for id, w := range sw.convs {
		if slices.Contains(leases, w.lease) {
			if w.index >= 0 {
				heap.Remove(&sw.due, w.index)
			}
			delete(sw.convs, id)
		}
	}
}

// touch records traffic in a watched conversation.
func (sw *sweeper) touch(conv int64, at time.Time) {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	if w := sw.convs[conv]; w != nil && at.After(w.active) {
		w.active = at
	}
}

// reschedule lists the conversations again on their schedules: their cover
// changed (a stream closed, a webhook stopped or came back). bot "" is all.
func (sw *sweeper) reschedule(bot string, listNow bool) {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	now := sw.r.now()
	for _, w := range sw.convs {
		if bot != "" && w.bot != bot {
			continue
		}
		next := now.Add(sw.interval(w))
		if listNow {
			next = now
		}
		if w.index < 0 || next.Before(w.next) {
			sw.schedule(w, next)
		}
	}
}

// rescheduleConv lists one conversation on its schedule again.
func (sw *sweeper) rescheduleConv(conv int64) {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	if w := sw.convs[conv]; w != nil {
		next := sw.r.now().Add(sw.interval(w))
		if w.index < 0 || next.Before(w.next) {
			sw.schedule(w, next)
		}
	}
}

// schedule sets w's next listing; sw.mu must be held.
func (sw *sweeper) schedule(w *watched, next time.Time) {
	w.next = next
	if w.index >= 0 {
		heap.Fix(&sw.due, w.index)
	} else {
		heap.Push(&sw.due, w)
	}
	select {
	case sw.wake <- struct{}{}:
	default:
	}
}

// interval is how long w waits before its next listing. A conversation no
// stream or webhook covers is listed every twentieth of its idle time
// (between every and 120 times every: by default 15 s and 30 minutes); a
// covered one every quarter of it (between 20 and 1,440 times every: 5
// minutes and 6 hours), to reconcile.
func (sw *sweeper) interval(w *watched) time.Duration {
	idle := sw.r.now().Sub(w.active)
	if sw.r.covered(w.conv, w.bot) {
		return clampDuration(idle/4, 20*sw.every, 1440*sw.every)
	}
	return clampDuration(idle/20, sw.every, 120*sw.every)
}

func clampDuration(d, lo, hi time.Duration) time.Duration { return min(max(d, lo), hi) }

// take returns the next conversation due, waiting for it, or nil when ctx
// ends. Conversations out of the watch window are forgotten.
func (sw *sweeper) take(ctx context.Context) *watched {
	for {
		sw.mu.Lock()
		var wait time.Duration = time.Hour
		if len(sw.due) > 0 {
			w := sw.due[0]
			now := sw.r.now()
			switch {
			case now.Sub(w.active) > sw.window:
				heap.Pop(&sw.due)
				delete(sw.convs, w.conv)
				sw.mu.Unlock()
				continue
			case !w.next.After(now):
				heap.Pop(&sw.due)
				sw.mu.Unlock()
				return w
			}
			wait = w.next.Sub(now)
		}
		sw.mu.Unlock()
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-sw.wake:
		case <-t.C:
		}
		t.Stop()
	}
}

func (sw *sweeper) work(ctx context.Context) {
	for {
		w := sw.take(ctx)
		if w == nil {
			return
		}
		lctx, held := sw.r.leases.context(w.lease)
		if !held {
			continue // dropped with its lease
		}
		if err := sw.bucket(w.bot).take(ctx, sw.r.now, nil); err != nil {
			return
		}
		if err := sw.r.sweep(lctx, w.conv, w.chatID, w.bot); err != nil && ctx.Err() == nil {
			sw.r.log.Debug("list a conversation for missed bot messages", LogConversation, w.conv, LogErr, err)
		}
		sw.mu.Lock()
		if sw.convs[w.conv] == w && w.index < 0 {
			sw.schedule(w, sw.r.now().Add(sw.interval(w)))
		}
		sw.mu.Unlock()
	}
}

// bucket returns the request budget of bot.
func (sw *sweeper) bucket(bot string) *bucket {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	b := sw.buckets[bot]
	if b == nil {
		b = newBucket(sw.budget/60, max(1, sw.budget/6))
		sw.buckets[bot] = b
	}
	return b
}

// watchHeap orders watched conversations by their next listing, the most
// recently active first among those due at the same time.
type watchHeap []*watched

func (h watchHeap) Len() int { return len(h) }
func (h watchHeap) Less(i, j int) bool {
	if !h[i].next.Equal(h[j].next) {
		return h[i].next.Before(h[j].next)
	}
	return h[i].active.After(h[j].active)
}
func (h watchHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *watchHeap) Push(x any) {
	w := x.(*watched)
	w.index = len(*h)
	*h = append(*h, w)
}
func (h *watchHeap) Pop() any {
	old := *h
	n := len(old)
	w := old[n-1]
	old[n-1] = nil
	w.index = -1
	*h = old[:n-1]
	return w
}

// bucket is a token bucket: rate tokens a second, at most burst at once.
type bucket struct {
	mu     sync.Mutex
	rate   float64
	burst  float64
	tokens float64
	last   time.Time
}

func newBucket(rate, burst float64) *bucket {
	return &bucket{rate: rate, burst: burst, tokens: burst}
}

// take waits for a token, or until ctx ends; a close of skip ends the wait
// without a token.
func (b *bucket) take(ctx context.Context, now func() time.Time, skip <-chan struct{}) error {
	for {
		b.mu.Lock()
		t := now()
		if !b.last.IsZero() {
			b.tokens = min(b.burst, b.tokens+t.Sub(b.last).Seconds()*b.rate)
		}
		b.last = t
		if b.tokens >= 1 {
			b.tokens--
			b.mu.Unlock()
			return nil
		}
		wait := time.Duration((1 - b.tokens) / b.rate * float64(time.Second))
		b.mu.Unlock()
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return ctx.Err()
		case <-skip:
			timer.Stop()
			return nil
		case <-timer.C:
		}
	}
}
