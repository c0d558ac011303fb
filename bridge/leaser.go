package bridge

import (
	"context"
	"errors"
	"hash/fnv"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/botbridge/botbridge/bridge/logging"
)

// leaser holds the engine's leases (see lease.go): the shards it should
// have, and the leases of the platforms one process serves (the Matrix
// sync loop). It looks at the store's leases every poll interval; it
// takes the shards it should have that are free or expired, renews what it
// holds every renew interval, and gives up (after the work in flight under
// it ends) a shard another replica should have. Which replica should have
// a shard is decided by rendezvous hashing of the shard's name and the
// replicas alive (those whose presence lease, "replica:OWNER", has not
// expired): each replica computes the same answer, the shards spread
// evenly, and few move when a replica comes or goes.
//
// A lease is acted under until its local deadline: the lease's time to
// live, less a margin, counted by this process's monotonic clock from
// before the store was asked, so that the process stops before the store
// would let another take over, whatever the difference of the clocks. The
// work under a lease runs in the lease's context, cancelled when the lease
// ends: lost, given up, or past its deadline (a stalled process, or a store
// that does not answer).
type leaser struct {
	store  LeaseStore
	owner  string
	ttl    time.Duration
	renew  time.Duration
	margin time.Duration
	poll   time.Duration
	// shards are the leases spread over the replicas; leaders those the
	// first replica to come takes, and keeps.
	shards, leaders []string
	log             *slog.Logger
	metrics         LeaseMetrics
	limiter         logging.Limiter

	// gained lists and hands to the parts the work of leases taken; lost
	// tells them to drop the work of leases ended. Both are called on the
	// leaser's goroutine, without its lock. When gained fails, the leases
	// are ended and taken again at the next round.
	gained func(ctx context.Context, names []string) error
	lost   func(names []string)

	// nextExpiry is how soon a lease this process waits for expires; the
	// leaser's goroutine's own.
	nextExpiry time.Duration

	// epoch is when the leaser was made: holdings keep their deadlines as
	// monotonic time since.
	epoch time.Time

	mu   sync.Mutex
	base context.Context // the parent of the leases' contexts
	held map[string]*holding
	// change is closed and made again when a lease is taken or ends.
	change   chan struct{}
	replicas int
	renewed  time.Time // of the last successful take or renewal
	lastErr  error
	wake     chan struct{}
}

// holding is a lease this process acts under.
type holding struct {
	name     string
	token    int64
	deadline time.Time // by the monotonic clock
	// until is deadline as time since the leaser's epoch, for the lease's
	// context to read without the lock.
	until  atomic.Int64
	epoch  time.Time
	ctx    context.Context
	cancel context.CancelFunc
	timer  *time.Timer
	// active counts the work in flight under it; idle is closed when it
	// drops to zero after the holding ended, or while it is being given
	// up.
	active int
	ended  bool
	idle   chan struct{}
	// leaving is set while the lease is being given up: no new work
	// starts under it, the work in flight finishes.
	leaving bool
}

// LeaseMetrics is an optional capability of Metrics: it receives what the
// engine's leases do.
type LeaseMetrics interface {
	// LeasesHeld reports the number of shards (and leader leases) held.
	LeasesHeld(n int)
	// LeaseRenewFailed counts a failed attempt to take or renew the leases.
	LeaseRenewFailed()
}

// registrationPrefix starts the names of the presence leases.
const registrationPrefix = "replica:"

// releaseWait bounds how long a lease given up waits for the work in
// flight under it.
const releaseWait = 5 * time.Second

func (l *leaser) init() {
	l.held = make(map[string]*holding)
	l.change = make(chan struct{})
	l.wake = make(chan struct{}, 1)
	l.epoch = time.Now()
}

// past reports whether h's deadline has passed, by the monotonic clock.
func (h *holding) past() bool { return time.Since(h.epoch) >= time.Duration(h.until.Load()) }

// leaseCtx is the context of the work under a holding: done when the
// holding ends, and also, checked at every call of Done or Err, from its
// deadline on, even before the timer that ends the holding has fired. A
// process that stalled past its lease (SIGSTOP, a frozen VM) wakes with
// overdue timers that fire in no promised order: the first context a
// goroutine checks, or derives for a request, then already says the lease
// is gone, so that no request starts under it.
type leaseCtx struct {
	context.Context
	h *holding
}

// closed is a channel closed from the start, the Done of a lease past its
// deadline.
var closed = func() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}()

func (c leaseCtx) Done() <-chan struct{} {
	if c.h.past() {
		return closed
	}
	return c.Context.Done()
}

func (c leaseCtx) Err() error {
	if err := c.Context.Err(); err != nil {
		return err
	}
	if c.h.past() {
		return context.DeadlineExceeded
	}
	return nil
}

// registration is the name of this process's presence lease.
func (l *leaser) registration() string { return registrationPrefix + l.owner }

// start takes this process's first leases and hands their work to the
// parts (gained): a store that cannot be read fails it. The leases'
// contexts derive from work.
func (l *leaser) start(ctx, work context.Context) error {
	l.mu.Lock()
	l.base = work
	l.mu.Unlock()
	return l.round(ctx, true)
}

// run looks at the leases every poll interval, or sooner when woken or when
// a lease it waits for expires, until ctx ends.
func (l *leaser) run(ctx context.Context) {
	timer := time.NewTimer(l.poll)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-l.wake:
		}
		next := l.poll
		if err := l.round(ctx, false); err == nil {
			next = min(next, l.nextExpiry)
		}
		timer.Reset(max(next, time.Millisecond))
	}
}

// kick makes the leaser look at the leases at once.
func (l *leaser) kick() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// round is one look at the leases: give up what another replica should
// have, take what this one should have and can, renew what it holds when
// due (always when first).
func (l *leaser) round(ctx context.Context, first bool) error {
	ls, now, err := l.store.Leases(ctx)
	if err != nil {
		l.failed(err)
		return err
	}
	byName := make(map[string]Lease, len(ls))
	for _, x := range ls {
		byName[x.Name] = x
	}
	live := []string{l.owner}
	for _, x := range ls {
		if o, ok := strings.CutPrefix(x.Name, registrationPrefix); ok && o != l.owner && x.Expires.After(now) {
			live = append(live, o)
		}
	}
	l.mu.Lock()
	l.replicas = len(live)
	held := make(map[string]bool, len(l.held))
	for name := range l.held {
		held[name] = true
	}
	due := first || time.Since(l.renewed) >= l.renew
	l.mu.Unlock()

	want := map[string]bool{}
	for _, s := range l.shards {
		if top(s, live) == l.owner {
			want[s] = true
		}
	}
	for _, s := range l.leaders {
		x, ok := byName[s]
		if held[s] || !ok || !x.Expires.After(now) || x.Owner == l.owner {
			want[s] = true
		}
	}
	var release []string
	for name := range held {
		if !want[name] {
			release = append(release, name)
		}
	}
	names := []string{l.registration()}
	l.nextExpiry = l.poll
	for name := range want {
		x, ok := byName[name]
		switch {
		case held[name]:
			names = append(names, name)
		case !ok || !x.Expires.After(now) || x.Owner == l.owner:
			names = append(names, name)
			due = true
		default:
			// Another's until it expires (a replica that died, or one that
			// will give it up): look again then.
			l.nextExpiry = min(l.nextExpiry, x.Expires.Sub(now)+10*time.Millisecond)
		}
	}
	if len(release) > 0 {
		l.release(ctx, release)
	}
	if !due {
		return nil
	}
	return l.take(ctx, names)
}

// take takes or renews the leases named, and applies the store's answer:
// the leases it holds now, with their deadline; those it lost end; those it
// gained are handed to the parts.
func (l *leaser) take(ctx context.Context, names []string) error {
	t0 := time.Now()
	ls, err := l.store.TakeLeases(ctx, l.owner, names, l.ttl)
	if err != nil {
		l.failed(err)
		return err
	}
	deadline := t0.Add(l.ttl - l.margin)
	got := make(map[string]Lease, len(ls))
	for _, x := range ls {
		if !strings.HasPrefix(x.Name, registrationPrefix) {
			got[x.Name] = x
		}
	}
	var gained, lost []string
	l.mu.Lock()
	for name, h := range l.held {
		if x, ok := got[name]; !ok || x.Token != h.token {
			l.endLocked(h)
			lost = append(lost, name)
		}
	}
	for name, x := range got {
		if h, ok := l.held[name]; ok {
			h.deadline = deadline
			h.until.Store(int64(deadline.Sub(l.epoch)))
			h.timer.Reset(time.Until(deadline))
			continue
		}
		hctx, cancel := context.WithCancel(l.base)
		h := &holding{name: name, token: x.Token, deadline: deadline, epoch: l.epoch, cancel: cancel}
		h.until.Store(int64(deadline.Sub(l.epoch)))
		h.ctx = leaseCtx{Context: hctx, h: h}
		h.timer = time.AfterFunc(time.Until(deadline), func() { l.expire(h) })
		l.held[name] = h
		gained = append(gained, name)
	}
	l.renewed, l.lastErr = time.Now(), nil
	n := len(l.held)
	if len(gained)+len(lost) > 0 {
		l.changedLocked()
	}
	l.mu.Unlock()
	l.gauge(n)
	if len(lost) > 0 {
		slices.Sort(lost)
		l.log.Warn("leases lost: another replica took them over (this one stalled, or could not renew them in time); their work is theirs now",
			"leases", lost)
		l.lost(lost)
	}
	if len(gained) > 0 {
		slices.Sort(gained)
		l.log.Info("leases taken", "leases", gained, "owner", l.owner)
		if err := l.gained(ctx, gained); err != nil {
			l.log.Warn("list the work of the leases taken; giving them up to take them again", "leases", gained, LogErr, err)
			l.drop(gained)
			return err
		}
	}
	return nil
}

// failed records a failure to read or take the leases: the leases held
// run until their deadlines.
func (l *leaser) failed(err error) {
	l.mu.Lock()
	l.lastErr = err
	l.mu.Unlock()
	if l.metrics != nil {
		l.metrics.LeaseRenewFailed()
	}
	l.limiter.Warn(l.log, "leases", "cannot reach the store to renew the leases; work stops at their deadline unless it answers again", LogErr, err)
}

func (l *leaser) gauge(n int) {
	if l.metrics != nil {
		l.metrics.LeasesHeld(n)
	}
}

// expire ends h when its deadline passed without a renewal.
func (l *leaser) expire(h *holding) {
	l.mu.Lock()
	if h.ended || l.held[h.name] != h {
		l.mu.Unlock()
		return
	}
	if wait := time.Until(h.deadline); wait > 0 {
		h.timer.Reset(wait) // renewed meanwhile
		l.mu.Unlock()
		return
	}
	l.endLocked(h)
	n := len(l.held)
	l.mu.Unlock()
	l.gauge(n)
	l.log.Warn("lease past its deadline without a renewal: stopping its work", "lease", h.name)
	l.lost([]string{h.name})
	l.kick()
}

// drop ends the leases named locally, without giving them up in the store.
func (l *leaser) drop(names []string) {
	var ended []string
	l.mu.Lock()
	for _, name := range names {
		if h := l.held[name]; h != nil {
			l.endLocked(h)
			ended = append(ended, name)
		}
	}
	n := len(l.held)
	l.mu.Unlock()
	l.gauge(n)
	if len(ended) > 0 {
		l.lost(ended)
	}
}

// changedLocked wakes who waits for a lease to be taken or to end; l.mu
// must be held.
func (l *leaser) changedLocked() {
	close(l.change)
	l.change = make(chan struct{})
}

// changed returns a channel closed when a lease is next taken or ends.
func (l *leaser) changed() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.change
}

// endLocked ends h: its work stops. l.mu must be held.
func (l *leaser) endLocked(h *holding) {
	l.changedLocked()
	h.ended = true
	h.cancel()
	h.timer.Stop()
	if l.held[h.name] == h {
		delete(l.held, h.name)
	}
	if h.active == 0 && h.idle != nil {
		close(h.idle)
		h.idle = nil
	}
}

// release gives up the leases named, for the replica that should have
// them: no new work starts under them, the work in flight finishes
// undisturbed (for up to releaseWait: a message on its way to Botpress or
// a post is not cut off, which would leave the next holder to guess
// whether it went), then their contexts end and the store frees them.
func (l *leaser) release(ctx context.Context, names []string) {
	var (
		waits []chan struct{}
		hs    []*holding
	)
	l.mu.Lock()
	for _, name := range names {
		h := l.held[name]
		if h == nil {
			continue
		}
		h.leaving = true
		hs = append(hs, h)
		if h.active > 0 {
			h.idle = make(chan struct{})
			waits = append(waits, h.idle)
		}
	}
	l.mu.Unlock()
	slices.Sort(names)
	l.log.Info("giving leases up to the replica that should have them", "leases", names)
	l.lost(names)
	timer := time.NewTimer(releaseWait)
	defer timer.Stop()
wait:
	for _, w := range waits {
		select {
		case <-w:
		case <-timer.C:
			break wait
		case <-ctx.Done():
			break wait
		}
	}
	l.mu.Lock()
	for _, h := range hs {
		if !h.ended {
			l.endLocked(h)
		}
	}
	n := len(l.held)
	l.mu.Unlock()
	l.gauge(n)
	if ctx.Err() != nil {
		return
	}
	if err := l.store.ReleaseLeases(ctx, l.owner, names); err != nil {
		l.log.Warn("give leases up; they expire on their own", "leases", names, LogErr, err)
	}
}

// stop gives up every lease and the presence, once the parts stopped.
func (l *leaser) stop(ctx context.Context) {
	l.mu.Lock()
	names := []string{l.registration()}
	for name, h := range l.held {
		names = append(names, name)
		l.endLocked(h)
	}
	l.mu.Unlock()
	l.gauge(0)
	if err := l.store.ReleaseLeases(ctx, l.owner, names); err != nil {
		l.log.Warn("give leases up at the stop; they expire on their own", LogErr, err)
	}
}

// acquire returns the context to work in under the lease named, with its
// fence, and a func to call when the work is done, or false when this
// process does not hold the lease (or is past its deadline).
func (l *leaser) acquire(name string) (context.Context, func(), bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	h := l.held[name]
	if h == nil || h.leaving || !time.Now().Before(h.deadline) {
		return nil, nil, false
	}
	h.active++
	var once sync.Once
	return WithFence(h.ctx, Fence{Lease: name, Token: h.token}), func() {
		once.Do(func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			h.active--
			if h.active == 0 && h.idle != nil {
				close(h.idle)
				h.idle = nil
			}
		})
	}, true
}

// fencedContext returns the context of the lease named, with its fence,
// for work that lasts as long as the lease (a leader's adapter), or false.
// Unlike acquire, it does not count as work in flight.
func (l *leaser) fencedContext(name string) (context.Context, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	h := l.usable(name)
	if h == nil {
		return nil, false
	}
	return WithFence(h.ctx, Fence{Lease: name, Token: h.token}), true
}

// fence returns the fence of the lease named, held, or false.
func (l *leaser) fence(name string) (Fence, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	h := l.usable(name)
	if h == nil {
		return Fence{}, false
	}
	return Fence{Lease: name, Token: h.token}, true
}

// usable returns the lease named when it is held, not being left, and
// before its deadline; l.mu is held.
func (l *leaser) usable(name string) *holding {
	h := l.held[name]
	if h == nil || h.leaving || h.past() {
		return nil
	}
	return h
}

// context returns the context of the lease named, cancelled when it ends,
// for work that lasts as long as it (streams), or false.
func (l *leaser) context(name string) (context.Context, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	h := l.held[name]
	if h == nil || h.leaving {
		return nil, false
	}
	return h.ctx, true
}

// names returns the names of the leases held.
func (l *leaser) names() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]string, 0, len(l.held))
	for name, h := range l.held {
		if !h.leaving {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// holds reports whether this process acts under the lease named.
func (l *leaser) holds(name string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	h := l.held[name]
	return h != nil && !h.leaving && time.Now().Before(h.deadline)
}

// valid reports whether the fence of ctx (see acquire) still holds: its
// lease held with its token, and before its deadline. The parts ask it
// right before what the store cannot fence: a message sent to Botpress, a
// post to a platform.
func (l *leaser) valid(ctx context.Context) bool {
	f, ok := FenceFrom(ctx)
	if !ok {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	h := l.held[f.Lease]
	return h != nil && !h.leaving && h.token == f.Token && time.Now().Before(h.deadline)
}

// fenced reports whether err is the store's refusal of a write under the
// fence of ctx, and then ends that lease here: another process has it.
func (l *leaser) fenced(ctx context.Context, err error) bool {
	if !errors.Is(err, ErrFenced) {
		return false
	}
	f, ok := FenceFrom(ctx)
	if !ok {
		return true
	}
	l.mu.Lock()
	h := l.held[f.Lease]
	mine := h != nil && h.token == f.Token
	l.mu.Unlock()
	if mine {
		l.log.Warn("the store refused a write under a lease: another replica has it; stopping its work", "lease", f.Lease)
		l.drop([]string{f.Lease})
		l.kick()
	}
	return true
}

// LeaseState is a lease this process holds, for operators.
type LeaseState struct {
	Name  string
	Token int64
	// Left is the time left before its local deadline.
	Left time.Duration
}

// LeasesStatus is what an engine holds, for /readyz, /metrics and status.
type LeasesStatus struct {
	// Owner is this process's name among the replicas.
	Owner string
	// Held are the leases held, by name.
	Held []LeaseState
	// Replicas is how many replicas were alive at the last look.
	Replicas int
	// Renewed is when the leases were last taken or renewed; Err the last
	// failure since, if any.
	Renewed time.Time
	Err     error
}

func (l *leaser) status() LeasesStatus {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := LeasesStatus{Owner: l.owner, Replicas: l.replicas, Renewed: l.renewed, Err: l.lastErr}
	now := time.Now()
	for name, h := range l.held {
		s.Held = append(s.Held, LeaseState{Name: name, Token: h.token, Left: h.deadline.Sub(now)})
	}
	slices.SortFunc(s.Held, func(a, b LeaseState) int { return strings.Compare(a.Name, b.Name) })
	return s
}

// top returns the replica of live that should hold the lease named: the
// one of the highest hash of the two (rendezvous hashing).
func top(name string, live []string) string {
	var best string
	var bestScore uint64
	for _, o := range live {
		h := fnv.New64a()
		h.Write([]byte(name))
		h.Write([]byte{0})
		h.Write([]byte(o))
		s := h.Sum64()
		if best == "" || s > bestScore || s == bestScore && o < best {
			best, bestScore = o, s
		}
	}
	return best
}
