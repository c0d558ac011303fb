package bridge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/botbridge/botbridge/bridge/render"
	"github.com/botbridge/botbridge/bridge/retry"
	"github.com/botbridge/botbridge/chat"
)

// poster is the part of the bridge that posts the bot's messages to the
// platforms. It runs one ordered queue per platform room: deliveries, stream
// updates and deletions for a room reach its adapter one at a time, in the
// order they came, and a failure holds the queue until it is retried, so
// nothing is dropped or reordered. After a crash it asks the adapter whether
// the first pending delivery of each room is there already. It also shows
// the thinking indicator while the bot works (typing.go), grows streamed
// replies (stream.go), and records the choices it posts where people answer
// by text.
//
// It posts only in the rooms of the leases this process holds (leaser.go),
// each job under its lease's fence, and claims each delivery before it
// posts it: a delivery claimed before may be on the platform already, and
// one behind an earlier delivery of its room waits for it. The claim costs
// no commit of its own when it can share one: the receiver's store of a
// reply makes it (Delivery.Claimed) when the room has nothing pending
// before it, and the record of a reply posted makes the claim of the one
// queued next (markPosted); else ClaimDelivery makes it. The deliveries
// another process stores for its rooms come by note or poll.
//
// It owns the room queues, the unreachable rooms, the streams shown, and the
// indicators.
type poster struct {
	store    PosterStore
	adapters map[Platform]Adapter
	leases   *leaser
	notes    *notes
	metrics  Metrics
	log      *slog.Logger
	now      func() time.Time
	policy   retry.Policy
	// noAccessTimeout is how long a reply is retried in a room the bot
	// cannot post in.
	noAccessTimeout time.Duration
	// offerTTL is how long a choice posted on a TextChoices platform stands.
	offerTTL time.Duration

	ctx context.Context // the queues' context, set by start

	mu sync.Mutex
	// workers counts the room queues' running workers; done is signalled
	// when it falls to 0. A worker starts whenever a job comes to an idle
	// queue, also while wait waits (a reply that comes while the bridge
	// drains is posted), which a WaitGroup does not allow.
	workers int
	done    *sync.Cond
	queues  map[RoomKey]*roomQueue
	// known holds the deliveries queued or being posted, so that a note or
	// a poll does not queue one twice.
	known map[chat.MessageID]bool
	// unreachable holds the rooms where the bot could not post, since when.
	unreachable map[RoomKey]time.Time

	streams streams
	typing  typing
}

type roomQueue struct {
	jobs []job
}

// job is one thing to do in a room; exactly one of delivery, remove and
// stream is set.
type job struct {
	delivery *Delivery
	remove   *Delivery
	stream   *streamStep
	// claim is the delivery's claim when it was made with its store
	// (Delivery.Claimed) or with the mark of the delivery before it (see
	// markPosted).
	claim *Claim
}

func (p *poster) init(typingTimeout, streamThrottle time.Duration) {
	p.done = sync.NewCond(&p.mu)
	p.queues = make(map[RoomKey]*roomQueue)
	p.known = make(map[chat.MessageID]bool)
	p.unreachable = make(map[RoomKey]time.Time)
	p.streams.init(p, streamThrottle)
	p.typing.init(p, typingTimeout)
}

// start lets the queues run until ctx ends.
func (p *poster) start(ctx context.Context) {
	p.mu.Lock()
	p.ctx = ctx
	for room := range p.queues {
		p.run(room)
	}
	p.mu.Unlock()
	p.typing.start(ctx)
}

// resume queues the deliveries the store holds of the leases named, taken
// by this process (at its start, or from another), and takes down the
// indicators a process that stopped or lost them left shown. Rooms post
// one delivery at a time, so only the first pending one of a room can have
// been posted without the store knowing (claims tell the others).
func (p *poster) resume(ctx context.Context, leases []string) (int, error) {
	ds, err := p.store.PendingDeliveriesIn(ctx, leases, 0, 0)
	if err != nil {
		return 0, fmt.Errorf("resume deliveries: %w", err)
	}
	heads := map[RoomKey]bool{}
	for _, d := range ds {
		if room := d.Target.Room.Top(); !heads[room] {
			heads[room] = true
			d.MaybePosted = true
		}
		p.queue(d)
	}
	if err := p.typing.resume(ctx, leases); err != nil {
		return len(ds), err
	}
	return len(ds), nil
}

// Deliver posts a stored delivery in its room, in order, when this process
// holds the room's lease; else it tells the process that does.
func (p *poster) Deliver(d Delivery) {
	lease := LeaseOf(d.Target.Room)
	if !p.leases.holds(lease) {
		p.notes.publish(Note{Lease: lease, Conversation: d.Conversation, Message: d.MessageID})
		return
	}
	p.typing.replied(d.Conversation)
	p.queue(d)
}

// queue pushes a delivery not queued yet.
func (p *poster) queue(d Delivery) {
	p.mu.Lock()
	if p.known[d.MessageID] {
		p.mu.Unlock()
		return
	}
	p.known[d.MessageID] = true
	p.mu.Unlock()
	j := job{delivery: &d}
	if d.Claimed {
		j.claim = &Claim{}
	}
	p.push(d.Target.Room, j)
}

// fetch queues a delivery another process stored, in a room of a lease
// this process holds.
func (p *poster) fetch(ctx context.Context, id chat.MessageID) error {
	d, err := p.store.Delivery(ctx, id)
	if err != nil {
		return err
	}
	if !p.leases.holds(LeaseOf(d.Target.Room)) || d.Posted.Found() {
		return nil
	}
	p.typing.replied(d.Conversation)
	p.queue(d)
	return nil
}

// poll queues the deliveries of the leases named not queued yet: the
// fallback for notes lost.
func (p *poster) poll(ctx context.Context, leases []string) error {
	ds, err := p.store.PendingDeliveriesIn(ctx, leases, 0, 0)
	if err != nil {
		return err
	}
	for _, d := range ds {
		if p.leases.holds(LeaseOf(d.Target.Room)) {
			p.queue(d)
		}
	}
	return nil
}

// drop forgets the queued work of the rooms of the leases named, which
// ended; a job in progress stops with its lease's context.
func (p *poster) drop(leases []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for key, q := range p.queues {
		if !slices.Contains(leases, LeaseOf(key)) {
			continue
		}
		for _, j := range q.jobs {
			if j.delivery != nil {
				delete(p.known, j.delivery.MessageID)
			}
		}
		q.jobs = nil
	}
}

// Remove deletes a posted delivery, where the platform can.
func (p *poster) Remove(d Delivery) { p.push(d.Target.Room, job{remove: &d}) }

// push appends a job to the room's queue and starts its worker if needed.
func (p *poster) push(room RoomKey, j job) {
	key := room.Top()
	p.mu.Lock()
	q, running := p.queues[key]
	if !running {
		q = &roomQueue{}
		p.queues[key] = q
	}
	q.jobs = append(q.jobs, j)
	if !running && p.ctx != nil {
		p.run(key)
	}
	p.mu.Unlock()
}

// run starts the worker of a room's queue; p.mu is held.
func (p *poster) run(key RoomKey) {
	p.workers++
	go func() {
		p.work(key)
		p.mu.Lock()
		if p.workers--; p.workers == 0 {
			p.done.Broadcast()
		}
		p.mu.Unlock()
	}()
}

// idle reports whether every room queue is empty and no bot is awaited.
func (p *poster) idle() bool {
	p.mu.Lock()
	empty := len(p.queues) == 0
	p.mu.Unlock()
	return empty && !p.typing.waiting()
}

// wait blocks until every room queue is empty, or ends with its context.
func (p *poster) wait() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.workers > 0 {
		p.done.Wait()
	}
}

func (p *poster) work(key RoomKey) {
	lease := LeaseOf(key)
	for {
		p.mu.Lock()
		q := p.queues[key]
		if len(q.jobs) == 0 || p.ctx.Err() != nil {
			delete(p.queues, key)
			p.mu.Unlock()
			return
		}
		j := q.jobs[0]
		q.jobs[0] = job{}
		q.jobs = q.jobs[1:]
		p.mu.Unlock()
		ctx, done, held := p.leases.acquire(lease)
		if !held {
			// Another process's room now: what is queued is its work.
			p.mu.Lock()
			for _, j := range append(q.jobs, j) {
				if j.delivery != nil {
					delete(p.known, j.delivery.MessageID)
				}
			}
			q.jobs = nil
			p.mu.Unlock()
			continue
		}
		switch {
		case j.delivery != nil:
			if p.post(ctx, *j.delivery, j.claim) {
				p.mu.Lock()
				delete(p.known, j.delivery.MessageID)
				p.mu.Unlock()
			}
		case j.remove != nil:
			p.remove(ctx, *j.remove)
		case j.stream != nil:
			p.streams.run(ctx, j.stream)
		}
		done()
	}
}

// behind puts the pending deliveries of d's room that come before d (lower
// Seq: stored by another process, or queued after d in a race) at the head
// of the room's queue, and d after them.
func (p *poster) behind(ctx context.Context, d Delivery, log *slog.Logger) {
	room := d.Target.Room.Top()
	ds, err := p.store.PendingDeliveriesIn(ctx, []string{LeaseOf(room)}, 0, 0)
	var earlier []job
	if err == nil {
		for _, e := range ds {
			if e.Target.Room.Top() == room && e.Seq < d.Seq {
				earlier = append(earlier, job{delivery: &e})
			}
		}
	}
	if len(earlier) == 0 {
		// Not listed yet (being stored), or another lease's (a room renamed
		// while it had replies waiting): wait for it a moment.
		log.Debug("an earlier reply of the room is not posted yet; waiting for it", LogErr, err)
		if retry.Wait(ctx, behindWait) != nil {
			return
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	q := p.queues[room]
	ahead := make(map[chat.MessageID]bool, len(earlier))
	for _, e := range earlier {
		ahead[e.delivery.MessageID] = true
		p.known[e.delivery.MessageID] = true
	}
	jobs := append(earlier, job{delivery: &d})
	for _, j := range q.jobs {
		if j.delivery == nil || !ahead[j.delivery.MessageID] {
			jobs = append(jobs, j)
		}
	}
	q.jobs = jobs
}

// behindWait is how long a delivery waits for an earlier one of its room
// that is not listed yet.
const behindWait = 200 * time.Millisecond

// post hands a delivery to its adapter, retrying until the platform takes it
// or says it never will, and records the result. It claims the delivery
// first (see PosterStore.ClaimDelivery), unless claimed is its claim made
// already. It returns false when it left the delivery queued (behind an
// earlier one, or without an adapter to post it), true when it is done
// with it.
func (p *poster) post(ctx context.Context, d Delivery, claimed *Claim) bool {
	log := p.log.With(LogMessage, string(d.MessageID), LogRoom, d.Target.Room.String())
	a := p.adapters[d.Target.Room.Platform]
	if a == nil {
		log.Warn("no adapter for the platform of this reply; it stays in the store until one is configured")
		return false
	}
	var claim Claim
	if claimed != nil {
		claim = *claimed
	} else {
		c, ok := p.claim(ctx, d, log)
		if !ok {
			return true
		}
		claim = c
	}
	if claim.Behind {
		p.behind(ctx, d, log)
		return false
	}
	if claim.Attempts > 0 {
		d.MaybePosted = true // an earlier attempt may have posted it
	}
	out := Outbound{
		ID:          d.MessageID,
		Bot:         d.Bot,
		Room:        d.Target.Room,
		ReplyTo:     d.Target.MessageID,
		ReplyToUser: d.Target.UserID,
		Payload:     normalize(d.Payload, log),
		Time:        d.CreatedAt,
		Ephemeral:   d.Target.Ephemeral,
	}
	if !p.leases.valid(ctx) {
		return true
	}
	if posted, ok := p.streams.finish(ctx, out); ok {
		p.posted(ctx, d, out, posted, log)
		return true
	}
	offer := p.offer(ctx, d, out, log)
	rec, canRecover := a.(Recoverer)
	b := p.policy.New()
	for ctx.Err() == nil {
		if canRecover && d.MaybePosted {
			found, err := rec.FindSent(ctx, out)
			switch {
			case err == nil && found.Complete():
				log.Info("reply is on the platform already; not posting it again")
				p.posted(ctx, d, out, found, log)
				p.offered(ctx, offer, found, log)
				return true
			case err == nil:
				if found.Found() {
					log.Info("part of a reply was posted before; posting the rest")
					out.Posted = found
				}
				d.MaybePosted = false
			case errors.Is(err, ErrNoAccess) && p.noAccess(d.Target.Room, err, log):
				log.Error("reply given up: the bot cannot post in this room; invite it back for its next replies to get through", LogErr, err)
				p.failed(ctx, d, err)
				p.withdraw(ctx, offer, log)
				return true
			default:
				log.Warn("look for a reply that may have been posted", LogErr, err)
				if retry.Wait(ctx, b.Next(err)) != nil {
					return true
				}
				continue
			}
		}
		// The lease may have ended while this process stalled: then the
		// post is the next owner's, which finds it claimed.
		if !p.leases.valid(ctx) {
			return true
		}
		posted, err := a.Send(ctx, out)
		if err == nil {
			p.posted(ctx, d, out, posted, log)
			p.offered(ctx, offer, posted, log)
			return true
		}
		if posted.Found() {
			out.Posted = posted
		}
		if ctx.Err() != nil {
			return true
		}
		if IsPermanent(err) {
			log.Error("reply given up: the platform refuses it", LogErr, err)
			p.failed(ctx, d, err)
			p.withdraw(ctx, offer, log)
			return true
		}
		if errors.Is(err, ErrNoAccess) {
			if p.noAccess(d.Target.Room, err, log) {
				log.Error("reply given up: the bot cannot post in this room; invite it back for its next replies to get through", LogErr, err)
				p.failed(ctx, d, err)
				p.withdraw(ctx, offer, log)
				return true
			}
		} else {
			// The post may have reached the platform before it failed.
			d.MaybePosted = true
		}
		wait := b.Next(err)
		log.Warn("posting reply failed; will retry", LogErr, err, LogWait, wait, "attempt", b.Attempts())
		if retry.Wait(ctx, wait) != nil {
			return true
		}
	}
	return true
}

// claim claims d before it is posted, retrying while the store fails. It
// returns false when d is not to be posted here: done already, or another
// process's now, or the lease's context ended.
func (p *poster) claim(ctx context.Context, d Delivery, log *slog.Logger) (Claim, bool) {
	b := p.policy.New()
	for {
		c, err := p.store.ClaimDelivery(ctx, d.MessageID)
		switch {
		case err == nil:
			return c, true
		case errors.Is(err, ErrNotFound):
			log.Debug("reply posted or given up already")
			return c, false
		case p.leases.fenced(ctx, err), ctx.Err() != nil:
			return c, false
		}
		wait := b.Next(err)
		log.Warn("claim a reply before posting it failed; will retry", LogErr, err, LogWait, wait)
		if retry.Wait(ctx, wait) != nil {
			return c, false
		}
	}
}

// noAccess notes that the bot cannot post in room and reports whether the
// reply is to be given up: when the room has refused the bot for longer than
// noAccessTimeout. Its next replies are then tried once each, until one gets
// through (the bot was invited back).
func (p *poster) noAccess(room RoomKey, err error, log *slog.Logger) bool {
	key := room.Top()
	now := p.now()
	p.mu.Lock()
	since, ok := p.unreachable[key]
	if !ok {
		p.unreachable[key] = now
		since = now
	}
	p.mu.Unlock()
	if !ok {
		log.Warn("the bot cannot post in this room; retrying for a while, then giving its replies up: invite the bot back (or unarchive the room)",
			LogErr, err, "give_up_after", p.noAccessTimeout)
	}
	return now.Sub(since) >= p.noAccessTimeout
}

// failed records a reply given up for good, and counts it.
func (p *poster) failed(ctx context.Context, d Delivery, err error) {
	p.record(ctx, "record a failed reply", func(ctx context.Context) error {
		return p.store.FailDelivery(ctx, d.MessageID, err.Error())
	})
	p.metrics.Outbound(d.Target.Room.Platform, d.Bot, "failed")
}

// record runs fn, the record of what became of a delivery, until it
// succeeds or ctx ends; its first attempt is made even when ctx ended (see
// recordAccepted). A delivery already finished (ErrNotFound) is done.
func (p *poster) record(ctx context.Context, what string, fn func(ctx context.Context) error) {
	_ = retry.Until(ctx, p.policy, func() error {
		err := recordAccepted(ctx, fn)
		switch {
		case errors.Is(err, ErrNotFound):
			return nil
		case p.leases.fenced(ctx, err):
			// The next owner of the room finds it claimed, and looks.
			p.log.Info(what+": the room is another replica's now, which finds the reply claimed and looks for it", LogErr, err)
			return nil
		}
		return err
	}, func(attempt int, err error, wait time.Duration) {
		p.log.Warn(what+" failed; will retry", LogErr, err, LogWait, wait, "attempt", attempt)
	})
}

// posted records a posted delivery: its parts, and the offer it makes on a
// platform without buttons.
func (p *poster) posted(ctx context.Context, d Delivery, out Outbound, posted Parts, log *slog.Logger) {
	p.mu.Lock()
	if _, was := p.unreachable[d.Target.Room.Top()]; was {
		delete(p.unreachable, d.Target.Room.Top())
		log.Info("the bot can post in this room again")
	}
	p.mu.Unlock()
	p.markPosted(ctx, d, posted)
	p.metrics.Outbound(d.Target.Room.Platform, d.Bot, "posted")
	if !d.CreatedAt.IsZero() {
		p.metrics.DeliveryLag(d.Target.Room.Platform, d.Bot, p.now().Sub(d.CreatedAt))
	}
	log.Debug("reply posted", "platform_ids", posted)
}

// markPosted records d posted. When a delivery waits next in the room's
// queue, the same transaction claims it (PosterStore.MarkDeliveredAndClaim),
// so that each reply of a busy room waits for one commit, not two.
func (p *poster) markPosted(ctx context.Context, d Delivery, posted Parts) {
	room := d.Target.Room.Top()
	p.record(ctx, "record a posted reply", func(ctx context.Context) error {
		next, ok := p.unclaimedNext(room)
		if !ok {
			return p.store.MarkDelivered(ctx, d.MessageID, posted)
		}
		c, claimed, err := p.store.MarkDeliveredAndClaim(ctx, d.MessageID, posted, next)
		if err == nil && claimed {
			p.claimedNext(room, next, c)
		}
		return err
	})
}

// unclaimedNext returns the delivery at the head of room's queue when it is
// not claimed yet.
func (p *poster) unclaimedNext(room RoomKey) (chat.MessageID, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	j := p.headDelivery(room)
	if j == nil || j.claim != nil {
		return "", false
	}
	return j.delivery.MessageID, true
}

// claimedNext keeps the claim of the delivery next at the head of room's
// queue, for post. When the queue changed meanwhile (its lease ended), the
// claim stays in the store, where a claim made before tells whoever posts
// the delivery to look for it first.
func (p *poster) claimedNext(room RoomKey, next chat.MessageID, c Claim) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if j := p.headDelivery(room); j != nil && j.delivery.MessageID == next {
		j.claim = &c
	}
}

// headDelivery returns the job at the head of room's queue when it is a
// delivery, else nil; p.mu is held.
func (p *poster) headDelivery(room RoomKey) *job {
	q := p.queues[room]
	if q == nil || len(q.jobs) == 0 || q.jobs[0].delivery == nil {
		return nil
	}
	return &q.jobs[0]
}

// offer records, pending, the choice out makes where people answer by
// typing a number or a label (TextChoices), before it is posted: a person
// may answer the moment it shows. It returns the offer, nil when out makes
// none.
func (p *poster) offer(ctx context.Context, d Delivery, out Outbound, log *slog.Logger) *Offer {
	if _, ok := p.adapters[d.Target.Room.Platform].(TextChoices); !ok {
		return nil
	}
	opts := render.Offered(out.Payload)
	if len(opts) == 0 {
		return nil
	}
	o := &Offer{Room: d.Target.Room, Bot: d.Bot, Conversation: d.Conversation, Options: opts, Expires: p.now().Add(p.offerTTL)}
	if err := p.store.PutOffer(ctx, *o); err != nil {
		log.Warn("record the choice offered; answers by number will reach the bot as text", LogErr, err)
		return nil
	}
	return o
}

// withdraw ends the pending offer o of a choice that was not posted.
func (p *poster) withdraw(ctx context.Context, o *Offer, log *slog.Logger) {
	if o == nil {
		return
	}
	o.Expires = p.now()
	if err := recordAccepted(ctx, func(ctx context.Context) error { return p.store.PutOffer(ctx, *o) }); err != nil {
		log.Warn("withdraw the choice of a reply given up", LogErr, err)
	}
}

// offered gives the pending offer o the id of the message that holds it.
func (p *poster) offered(ctx context.Context, o *Offer, posted Parts, log *slog.Logger) {
	if o == nil || posted.First() == "" {
		return
	}
	o.MessageID = posted.First()
	if err := recordAccepted(ctx, func(ctx context.Context) error { return p.store.PutOffer(ctx, *o) }); err != nil {
		log.Warn("record the message of the choice offered", LogErr, err)
	}
}

// remove deletes a posted message where the adapter can.
func (p *poster) remove(ctx context.Context, d Delivery) {
	del, ok := p.adapters[d.Target.Room.Platform].(Deleter)
	if !ok || !d.Posted.Found() {
		return
	}
	if err := del.Delete(ctx, d.Target.Room, d.Posted); err != nil {
		p.log.Warn("delete a message the bot deleted", LogRoom, d.Target.Room.String(), LogErr, err)
	}
}

// normalize replaces payloads no adapter can render (unknown types) with
// their text, or a short notice, and logs it.
func normalize(p chat.Payload, log interface{ Warn(string, ...any) }) chat.Payload {
	raw, ok := p.(chat.RawPayload)
	if !ok {
		return p
	}
	var fields struct {
		Text     string `json:"text"`
		Markdown string `json:"markdown"`
	}
	_ = json.Unmarshal(raw.JSON, &fields)
	log.Warn("bot sent a payload type the bridge does not know; posting its text", "type", raw.Type)
	switch {
	case fields.Markdown != "":
		return chat.Markdown{Markdown: fields.Markdown}
	case fields.Text != "":
		return chat.Text{Text: fields.Text}
	}
	return chat.Text{Text: fmt.Sprintf("(the bot sent a %q message, which cannot be shown here)", raw.Type)}
}
