package bridge

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/botbridge/botbridge/chat"
)

// outbox hands conversations with unsent inbound messages to workers, one
// worker per conversation at a time so that a conversation's messages reach
// Botpress in order, and schedules retries with backoff.
type outbox struct {
	e *Engine

	mu      sync.Mutex
	queue   []int64
	state   map[int64]*convWork
	pending int // inbound messages stored and not yet sent or failed
	closed  bool
	wake    chan struct{}
	busy    sync.WaitGroup // conversations being worked on
}

// convWork is the outbox state of one conversation.
type convWork struct {
	queued, running, again bool
	retry                  *time.Timer
	failures               int
	// maybeSent holds items whose send may have reached Botpress without
	// the bridge knowing (a crash, a lost answer): before sending them again
	// the worker looks for them in the conversation.
	maybeSent map[int64]bool
	// vanished counts consecutive times the Botpress side was found gone.
	vanished int
	// bot is the conversation's bot, known after a failure; rateLimited is
	// set when Botpress asked to wait (429), so that wake leaves it alone.
	bot         string
	rateLimited bool
}

func newOutbox(e *Engine) *outbox {
	return &outbox{e: e, state: make(map[int64]*convWork), wake: make(chan struct{}, 1)}
}

// add queues a newly stored item's conversation.
func (o *outbox) add(it OutboxItem) {
	o.mu.Lock()
	o.pending++
	o.mu.Unlock()
	o.notify(it.Conversation)
}

// resume queues an item found in the store at start; maybeSent marks the
// one that may have been sent before the process stopped.
func (o *outbox) resume(it OutboxItem, maybeSent bool) {
	o.mu.Lock()
	o.pending++
	w := o.work(it.Conversation)
	if maybeSent {
		w.maybeSent[it.ID] = true
	}
	o.mu.Unlock()
	o.notify(it.Conversation)
}

func (o *outbox) work(conv int64) *convWork {
	w, ok := o.state[conv]
	if !ok {
		w = &convWork{maybeSent: make(map[int64]bool)}
		o.state[conv] = w
	}
	return w
}

// notify makes sure the conversation will be worked on.
func (o *outbox) notify(conv int64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	w := o.work(conv)
	switch {
	case w.running:
		w.again = true
	case w.queued || w.retry != nil || o.closed:
	default:
		w.queued = true
		o.queue = append(o.queue, conv)
		o.signal()
	}
}

func (o *outbox) signal() {
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// take returns the next conversation to work on, or false when the outbox
// is closed or ctx ended.
func (o *outbox) take(ctx context.Context) (int64, bool) {
	for {
		o.mu.Lock()
		if o.closed {
			o.mu.Unlock()
			return 0, false
		}
		if len(o.queue) > 0 {
			conv := o.queue[0]
			o.queue = o.queue[1:]
			if len(o.queue) == 0 {
				o.queue = nil // let the backing array go
			} else {
				o.signal()
			}
			w := o.work(conv)
			w.queued, w.running = false, true
			o.busy.Add(1)
			o.mu.Unlock()
			return conv, true
		}
		o.mu.Unlock()
		select {
		case <-ctx.Done():
			return 0, false
		case <-o.wake:
		}
	}
}

// release ends a turn of work on conv and schedules the next: at once when
// new items came in meanwhile, after retryIn when the turn failed.
func (o *outbox) release(conv int64, retryIn time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	defer o.busy.Done()
	w := o.work(conv)
	w.running = false
	switch {
	case o.closed:
	case retryIn > 0:
		w.again = false
		w.retry = time.AfterFunc(retryIn, func() {
			o.mu.Lock()
			w.retry = nil
			o.mu.Unlock()
			o.notify(conv)
		})
	case w.again:
		w.again, w.queued = false, true
		o.queue = append(o.queue, conv)
		o.signal()
	case len(w.maybeSent) == 0 && w.failures == 0:
		delete(o.state, conv)
	}
}

// close stops handing out work; turns in progress finish.
func (o *outbox) close() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.closed = true
	for _, w := range o.state {
		if w.retry != nil {
			w.retry.Stop()
		}
	}
	close(o.wake)
}

// wait blocks until no conversation is being worked on.
func (o *outbox) wait() { o.busy.Wait() }

// idle reports whether every stored item was sent or given up.
func (o *outbox) idle() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.pending == 0
}

func (o *outbox) finished() {
	o.mu.Lock()
	o.pending--
	o.mu.Unlock()
}

func (o *outbox) worker(ctx context.Context) {
	for {
		conv, ok := o.take(ctx)
		if !ok {
			return
		}
		o.release(conv, o.drainConversation(ctx, conv))
	}
}

// drainConversation sends the conversation's items in order until none is
// left (0) or one fails for now (the wait before the next try).
func (o *outbox) drainConversation(ctx context.Context, conv int64) time.Duration {
	e := o.e
	for ctx.Err() == nil {
		it, err := e.store.NextInbound(ctx, conv)
		if errors.Is(err, ErrNotFound) {
			return 0
		}
		if err != nil {
			e.log.Error("read outbox", LogConversation, conv, LogErr, err)
			return o.failed(ctx, conv, err)
		}
		err = e.send(ctx, it, o.maybeSent(conv, it.ID))
		switch {
		case err == nil:
			o.sent(conv, it.ID)
			o.finished()
		case ctx.Err() != nil:
			return 0
		case IsPermanent(err):
			e.log.Error("inbound message given up: Botpress refuses it", LogConversation, conv,
				LogEventKey, string(it.Inbound.Key), LogErr, err)
			if ferr := e.store.FailInbound(ctx, it.ID, err.Error()); ferr != nil {
				e.log.Error("record failed inbound", LogErr, ferr)
				return o.failed(ctx, conv, ferr)
			}
			bot := ""
			if c, cerr := e.conversation(ctx, conv); cerr == nil {
				bot = c.Key.Bot
			}
			e.metrics.Inbound(it.Inbound.Room.Platform, bot, "failed")
			o.sent(conv, it.ID)
			o.finished()
		default:
			return o.failed(ctx, conv, err)
		}
	}
	return 0
}

func (o *outbox) maybeSent(conv, item int64) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.work(conv).maybeSent[item]
}

func (o *outbox) markMaybeSent(conv, item int64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.work(conv).maybeSent[item] = true
}

func (o *outbox) sent(conv, item int64) {
	o.mu.Lock()
	w := o.work(conv)
	delete(w.maybeSent, item)
	w.failures, w.vanished = 0, 0
	bot, waiting := w.bot, o.waiting(w.bot)
	o.mu.Unlock()
	if waiting {
		// Botpress answers again: the conversations backing off for the same
		// bot need not wait out their backoff.
		o.e.botBack(bot)
	}
}

// waiting reports whether conversations of bot wait to retry; o.mu must be
// held.
func (o *outbox) waiting(bot string) bool {
	for _, w := range o.state {
		if w.retry != nil && !w.rateLimited && (bot == "" || w.bot == bot) {
			return true
		}
	}
	return false
}

// waitingBots returns the bots with conversations waiting to retry.
func (o *outbox) waitingBots() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	var bots []string
	for _, w := range o.state {
		if w.retry != nil && !w.rateLimited && !slices.Contains(bots, w.bot) {
			bots = append(bots, w.bot)
		}
	}
	return bots
}

// wakeBot retries at once the conversations of bot (all when empty) that
// wait out a backoff, except those Botpress asked to wait.
func (o *outbox) wakeBot(bot string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return
	}
	for conv, w := range o.state {
		if w.retry == nil || w.rateLimited || (bot != "" && w.bot != bot) {
			continue
		}
		if !w.retry.Stop() {
			continue // firing already
		}
		w.retry = nil
		if !w.running && !w.queued {
			w.queued = true
			o.queue = append(o.queue, conv)
		}
	}
	o.signal()
}

// failed counts a failure and returns the wait before the next attempt.
func (o *outbox) failed(ctx context.Context, conv int64, err error) time.Duration {
	bot := ""
	if c, cerr := o.e.conversation(ctx, conv); cerr == nil {
		bot = c.Key.Bot
	}
	o.mu.Lock()
	w := o.work(conv)
	w.failures++
	w.bot = bot
	w.rateLimited = errors.Is(err, chat.ErrRateLimited)
	n := w.failures
	o.mu.Unlock()
	d := retryDelay(n, o.e.cfg.RetryMin, o.e.cfg.RetryMax, err)
	o.e.log.Warn("sending to Botpress failed; will retry", LogConversation, conv, "attempt", n, LogWait, d, LogErr, err)
	return d
}

// retryDelay is capped exponential backoff with jitter, or the server's
// Retry-After when it asked for longer.
func retryDelay(attempt int, lo, hi time.Duration, err error) time.Duration {
	d := lo
	for i := 1; i < attempt && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	d = d/2 + rand.N(d/2+1) // jitter in [d/2, d]
	var ce *chat.Error
	if errors.As(err, &ce) && ce.RetryAfter > d {
		d = min(ce.RetryAfter, max(hi, 10*time.Minute))
	}
	return d
}

// errVanished marks a failure because the Botpress side of a conversation or
// user is gone; the mapping was dropped and the send is tried again at once.
var errVanished = errors.New("vanished on the Botpress side")

// send delivers one outbox item to Botpress: it resolves the bot's users and
// the conversation, then sends each part not yet sent, recording progress in
// the store after each.
func (e *Engine) send(ctx context.Context, it OutboxItem, maybeSent bool) error {
	err := e.sendOnce(ctx, it, maybeSent)
	if errors.Is(err, errVanished) && !e.outbox.vanishedAgain(it.Conversation) {
		// The mapping was dropped: try once more at once, with fresh users and
		// conversation, from the progress the store recorded.
		if fresh, nerr := e.store.NextInbound(ctx, it.Conversation); nerr == nil && fresh.ID == it.ID {
			it = fresh
		}
		err = e.sendOnce(ctx, it, e.outbox.maybeSent(it.Conversation, it.ID))
	}
	return err
}

func (o *outbox) vanishedAgain(conv int64) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	w := o.work(conv)
	w.vanished++
	return w.vanished > 2
}

func (e *Engine) sendOnce(ctx context.Context, it OutboxItem, maybeSent bool) error {
	conv, err := e.conversation(ctx, it.Conversation)
	if err != nil {
		return err
	}
	b := e.bots[conv.Key.Bot]
	if b == nil {
		return Permanent(fmt.Errorf("bot %q is no longer configured", conv.Key.Bot))
	}
	in := it.Inbound
	parts, err := e.parts(in)
	if err != nil {
		return Permanent(err)
	}
	reply := replyTarget(conv.Key, in)
	if it.PartsSent >= len(parts) {
		if err := e.store.MarkInboundSent(ctx, it.ID, len(parts), "", true, reply); err != nil {
			return err
		}
		e.updateConversation(conv.ID, func(c *Conversation) { c.Reply = reply })
		return nil
	}

	svc, err := b.serviceKey(ctx)
	if err != nil {
		return e.classify(ctx, b, &conv, in, err)
	}
	if conv.ChatID == "" {
		if conv, err = e.createConversation(ctx, b, conv, svc); err != nil {
			return e.classify(ctx, b, &conv, in, err)
		}
	}
	u, err := b.user(ctx, in.Room.Platform, in.Sender)
	if err != nil {
		return e.classify(ctx, b, &conv, in, err)
	}
	if !e.knownParticipant(conv.ID, u.ChatID) {
		if err := e.addParticipant(ctx, b, conv, svc, u.ChatID); err != nil {
			return e.classify(ctx, b, &conv, in, err)
		}
	}
	// The stream must be up before the message goes, or the start of a
	// streamed reply would be missed (catch-up only finds whole messages).
	if ready := e.listeners.ensure(conv); ready != nil {
		t := time.NewTimer(streamConnectWait)
		select {
		case <-ready:
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
	}
	replies := e.replies(conv.ID)
	// Replies to this message may arrive before createMessage returns; they
	// go where this message was said.
	e.updateConversation(conv.ID, func(c *Conversation) { c.Reply = reply })
	sentNow := false

	for i := it.PartsSent; i < len(parts); i++ {
		mkey := metaKey(in, i)
		done := i == len(parts)-1
		if maybeSent {
			id, found, err := e.findSent(ctx, b, svc, conv.ChatID, mkey)
			if err != nil {
				return e.classify(ctx, b, &conv, in, err)
			}
			if found {
				e.log.Info("message was sent before the restart; not sending it again", LogConversation, conv.ID, LogEventKey, mkey)
				if err := e.store.MarkInboundSent(ctx, it.ID, i+1, id, done, reply); err != nil {
					return err
				}
				continue
			}
		}
		msg, err := b.API.CreateMessage(ctx, u.Key, chat.CreateMessageRequest{
			ConversationID: conv.ChatID,
			Payload:        parts[i],
			Metadata:       metadata(in, mkey),
		})
		if err != nil {
			if ambiguous(err) {
				e.outbox.markMaybeSent(conv.ID, it.ID)
			}
			return e.classify(ctx, b, &conv, in, err)
		}
		sentNow = true
		if err := e.store.MarkInboundSent(ctx, it.ID, i+1, msg.ID, done, reply); err != nil {
			// Botpress has it, the store does not know: look before resending.
			e.outbox.markMaybeSent(conv.ID, it.ID)
			return err
		}
	}
	e.updateConversation(conv.ID, func(c *Conversation) {
		c.Reply = reply
		c.ActiveAt = e.now()
	})
	e.metrics.Inbound(in.Room.Platform, b.Name, "sent")
	e.log.Debug("sent to Botpress", LogConversation, conv.ID, LogChatConv, string(conv.ChatID), LogEventKey, string(in.Key))
	e.listeners.touch(conv.ID)
	if sentNow {
		e.startAwaiting(ctx, conv.ID, reply, replies)
	}
	return nil
}

// replyTarget is where the bot's answers to in go: the conversation's thread
// in thread scope, else where in was said.
func replyTarget(key ConvKey, in Inbound) ReplyTarget {
	room := in.Room
	if key.Scope == ScopeThread {
		room = key.Room
	}
	return ReplyTarget{Room: room, MessageID: in.MessageID, UserID: in.Sender.ID}
}

// createConversation maps conv to a Botpress conversation: the one with its
// derived id (so that a retry after a crash finds it), or a new one with a
// generated id when another user owns the derived id.
func (e *Engine) createConversation(ctx context.Context, b *bot, conv Conversation, svc chat.UserKey) (Conversation, error) {
	c, err := b.API.GetOrCreateConversation(ctx, svc, conversationID(conv))
	if errors.Is(err, chat.ErrForbidden) {
		e.log.Warn("derived conversation id belongs to another user; creating a new conversation", LogConversation, conv.ID)
		c, err = b.API.CreateConversation(ctx, svc, "")
	}
	if err != nil {
		return conv, fmt.Errorf("create conversation: %w", err)
	}
	if err := e.store.SetConversationChatID(ctx, conv.ID, c.ID); err != nil {
		return conv, err
	}
	conv.ChatID = c.ID
	e.cacheConversation(conv)
	e.log.Info("conversation created", LogConversation, conv.ID, LogChatConv, string(c.ID), LogBot, b.Name, "key", conv.Key.String())
	return conv, nil
}

func (e *Engine) addParticipant(ctx context.Context, b *bot, conv Conversation, svc chat.UserKey, user chat.UserID) error {
	ok, err := e.store.Participant(ctx, conv.ID, user)
	if err != nil {
		return err
	}
	if !ok {
		if user != chat.UserID(serviceChatID) {
			if _, err := b.API.AddParticipant(ctx, svc, conv.ChatID, user); err != nil {
				return fmt.Errorf("add participant: %w", err)
			}
		}
		if err := e.store.AddParticipant(ctx, conv.ID, user); err != nil {
			return err
		}
	}
	e.cacheParticipant(conv.ID, user)
	return nil
}

// findSent looks for a message the bridge sent with metadata key mkey among
// the conversation's recent messages.
func (e *Engine) findSent(ctx context.Context, b *bot, key chat.UserKey, conv chat.ConversationID, mkey string) (chat.MessageID, bool, error) {
	token := ""
	for range findSentPages {
		msgs, next, err := b.API.ListMessagesPage(ctx, key, conv, token)
		if err != nil {
			return "", false, fmt.Errorf("look for a message sent before: %w", err)
		}
		for _, m := range msgs {
			if k, _ := m.Metadata[MetaKey].(string); k == mkey {
				return m.ID, true, nil
			}
		}
		if next == "" {
			break
		}
		token = next
	}
	return "", false, nil
}

// streamConnectWait bounds how long a send waits for the conversation's
// stream to connect.
const streamConnectWait = 2 * time.Second

// findSentPages bounds how far back findSent looks.
const findSentPages = 5

// ambiguous reports whether a failed request may have reached Botpress.
func ambiguous(err error) bool {
	var ce *chat.Error
	if errors.As(err, &ce) {
		return ce.Status >= 500 || ce.Status == http.StatusRequestTimeout
	}
	return !errors.Is(err, chat.ErrInvalidPayload) && !errors.Is(err, chat.ErrNoKey)
}

// classify turns a failure into what the outbox does next: errVanished
// after dropping the mapping of whatever is gone on the Botpress side, a
// Permanent error for what retrying cannot fix, or err for a retry later.
func (e *Engine) classify(ctx context.Context, b *bot, conv *Conversation, in Inbound, err error) error {
	switch {
	case errors.Is(err, chat.ErrNotFound), errors.Is(err, chat.ErrForbidden):
		e.log.Warn("conversation or user gone on the Botpress side (deleted, or the bot was reset); recreating them",
			LogConversation, conv.ID, LogChatConv, string(conv.ChatID), LogBot, b.Name, LogErr, err)
		var errs []error
		errs = append(errs, b.forget(ctx, in.Room.Platform, in.Sender.ID), b.forget(ctx, servicePlatform, serviceID))
		if conv.ChatID != "" {
			errs = append(errs, e.store.SetConversationChatID(ctx, conv.ID, ""))
			conv.ChatID = ""
			e.cacheConversation(*conv)
		}
		if ferr := errors.Join(errs...); ferr != nil {
			return ferr
		}
		return fmt.Errorf("%w: %w", errVanished, err)
	case errors.Is(err, chat.ErrUnauthorized):
		if b.Signer == nil {
			// A kept key no longer works: the user is made again.
			if ferr := errors.Join(b.forget(ctx, in.Room.Platform, in.Sender.ID), b.forget(ctx, servicePlatform, serviceID)); ferr != nil {
				return ferr
			}
			return fmt.Errorf("%w: %w", errVanished, err)
		}
		return fmt.Errorf("bot %s refuses the bridge's user keys: check bots[].encryption_key against the Chat integration's Encryption Key: %w", b.Name, err)
	case errors.Is(err, chat.ErrInvalidPayload), errors.Is(err, chat.ErrInvalidID):
		return Permanent(err)
	}
	return err
}
