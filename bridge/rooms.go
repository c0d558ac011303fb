package bridge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/botbridge/botbridge/chat"
)

// rooms runs one ordered queue per platform room: bot messages, notices and
// stream updates for a room reach its adapter one at a time, in the order
// they came, and a failure holds the queue until it is retried, so nothing
// is dropped or reordered.
type rooms struct {
	e *Engine

	mu     sync.Mutex
	queues map[RoomKey]*roomQueue
	busy   sync.WaitGroup
}

type roomQueue struct {
	jobs []job
}

// job is one thing to do in a room; exactly one field is set.
type job struct {
	delivery *Delivery
	notice   *Outbound
	remove   *Delivery
	stream   *streamStep
}

func newRooms(e *Engine) *rooms {
	return &rooms{e: e, queues: make(map[RoomKey]*roomQueue)}
}

// push appends a job to the room's queue and starts its worker if needed.
func (r *rooms) push(room RoomKey, j job) {
	key := room.Top()
	r.mu.Lock()
	defer r.mu.Unlock()
	q, running := r.queues[key]
	if !running {
		q = &roomQueue{}
		r.queues[key] = q
	}
	q.jobs = append(q.jobs, j)
	if !running {
		r.busy.Add(1)
		r.e.wg.Go(func() {
			defer r.busy.Done()
			r.run(key, q)
		})
	}
}

// idle reports whether every room queue is empty.
func (r *rooms) idle() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.queues) == 0
}

// wait blocks until every room queue is empty.
func (r *rooms) wait() { r.busy.Wait() }

func (r *rooms) run(key RoomKey, q *roomQueue) {
	ctx := r.e.work
	for {
		r.mu.Lock()
		if len(q.jobs) == 0 || ctx.Err() != nil {
			delete(r.queues, key)
			r.mu.Unlock()
			return
		}
		j := q.jobs[0]
		q.jobs[0] = job{}
		q.jobs = q.jobs[1:]
		r.mu.Unlock()
		switch {
		case j.delivery != nil:
			r.e.post(ctx, *j.delivery)
		case j.notice != nil:
			r.e.postNotice(ctx, *j.notice)
		case j.remove != nil:
			r.e.remove(ctx, *j.remove)
		case j.stream != nil:
			r.e.streams.run(ctx, j.stream)
		}
	}
}

// post hands a delivery to its adapter, retrying until the platform takes it
// or says it never will, and records the result.
func (e *Engine) post(ctx context.Context, d Delivery) {
	log := e.log.With(LogMessage, string(d.MessageID), LogRoom, d.Target.Room.String())
	a := e.adapters[d.Target.Room.Platform]
	if a == nil {
		log.Warn("no adapter for the platform of this reply; it stays in the store until one is configured")
		return
	}
	out := Outbound{
		ID:          d.MessageID,
		Bot:         d.Bot,
		Room:        d.Target.Room,
		ReplyTo:     d.Target.MessageID,
		ReplyToUser: d.Target.UserID,
		Payload:     normalize(d.Payload, log),
		Time:        d.CreatedAt,
	}
	if posted, ok := e.streams.finish(ctx, out); ok {
		e.recordPosted(ctx, d, posted, log)
		return
	}
	rec, canRecover := a.(Recoverer)
	for attempt := 1; ctx.Err() == nil; attempt++ {
		if canRecover && d.MaybePosted {
			found, err := rec.FindSent(ctx, out)
			switch {
			case err == nil && found.Complete():
				log.Info("reply is on the platform already; not posting it again")
				e.recordPosted(ctx, d, found, log)
				return
			case err == nil:
				if found.Found() {
					log.Info("part of a reply was posted before; posting the rest")
					out.Posted = found
				}
				d.MaybePosted = false
			default:
				log.Warn("look for a reply that may have been posted", LogErr, err)
				if e.wait(ctx, retryDelay(attempt, e.cfg.RetryMin, e.cfg.RetryMax, err)) != nil {
					return
				}
				continue
			}
		}
		posted, err := a.Send(ctx, out)
		if err == nil {
			e.recordPosted(ctx, d, posted, log)
			return
		}
		if posted.Found() {
			out.Posted = posted
		}
		if ctx.Err() != nil {
			return
		}
		if IsPermanent(err) {
			log.Error("reply given up: the platform refuses it", LogErr, err)
			e.metrics.Outbound(d.Target.Room.Platform, d.Bot, "failed")
			e.retry(ctx, "record a failed reply", func() error { return e.store.FailDelivery(ctx, d.MessageID, err.Error()) })
			return
		}
		// The post may have reached the platform before it failed.
		d.MaybePosted = true
		wait := retryDelay(attempt, e.cfg.RetryMin, e.cfg.RetryMax, err)
		log.Warn("posting reply failed; will retry", LogErr, err, LogWait, wait, "attempt", attempt)
		if e.wait(ctx, wait) != nil {
			return
		}
	}
}

func (e *Engine) recordPosted(ctx context.Context, d Delivery, posted Parts, log interface {
	Debug(string, ...any)
}) {
	e.retry(ctx, "record a posted reply", func() error {
		err := e.store.MarkDelivered(ctx, d.MessageID, posted)
		if errors.Is(err, ErrNotFound) {
			return nil // recorded before (a stream's final message)
		}
		return err
	})
	e.metrics.Outbound(d.Target.Room.Platform, d.Bot, "posted")
	if !d.CreatedAt.IsZero() {
		e.metrics.DeliveryLag(d.Target.Room.Platform, d.Bot, e.now().Sub(d.CreatedAt))
	}
	log.Debug("reply posted", "platform_ids", posted)
}

// postNotice posts a message of the bridge itself; it is not stored, so a
// crash can lose it.
func (e *Engine) postNotice(ctx context.Context, out Outbound) {
	a := e.adapters[out.Room.Platform]
	if a == nil {
		return
	}
	if _, err := a.Send(ctx, out); err != nil {
		e.log.Warn("post notice", LogRoom, out.Room.String(), LogErr, err)
	}
}

// remove deletes a posted message where the adapter can.
func (e *Engine) remove(ctx context.Context, d Delivery) {
	del, ok := e.adapters[d.Target.Room.Platform].(Deleter)
	if !ok {
		return
	}
	if !d.Posted.Found() {
		return
	}
	if err := del.Delete(ctx, d.Target.Room, d.Posted); err != nil {
		e.log.Warn("delete a message the bot deleted", LogRoom, d.Target.Room.String(), LogErr, err)
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
