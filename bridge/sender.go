package bridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/botbridge/botbridge/bridge/retry"
	"github.com/botbridge/botbridge/chat"
)

// sender is the part of the bridge that sends the inbound messages the store
// holds to Botpress. It hands conversations with unsent messages to its
// workers, one worker per conversation at a time so that a conversation's
// messages reach Botpress in order, and retries with backoff. For each
// message it resolves the Botpress user and conversation (creating them,
// adding participants), sends the message's parts, and records each in the
// store; after a crash it looks for a message in the conversation before
// sending it again.
//
// It works only on the conversations of the leases this process holds
// (leaser.go), each turn under its lease's fence; the messages another
// process stores for them come by note or poll (nudge).
//
// It owns the queue of conversations and a cache of their Botpress side
// (conversation id, participants) and of where their replies go while a
// message is on its way.
type sender struct {
	store   SenderStore
	bots    map[string]*bot
	files   FileLinker
	watch   watcher
	await   awaiter
	leases  *leaser
	notes   *notes
	health  *health
	metrics Metrics
	log     *slog.Logger
	now     func() time.Time
	policy  retry.Policy
	workers int

	mu      sync.Mutex
	queue   []int64
	state   map[int64]*convWork
	pending int // inbound messages stored and not yet sent or failed
	closed  bool
	wake    chan struct{}
	busy    sync.WaitGroup // conversations being worked on
	wg      sync.WaitGroup // workers

	convMu sync.Mutex
	convs  map[int64]*convEntry
}

// watcher is what the sender needs of the receiver.
type watcher interface {
	// Watch makes sure the conversation's bot messages are received and
	// returns a channel closed once they are (nil: nothing to wait for).
	Watch(c Conversation) <-chan struct{}
	// Sent records a message the bridge sent in the conversation.
	Sent(conv int64, bot string, msg chat.MessageID)
}

// awaiter is what the sender needs of the poster: the thinking indicator.
type awaiter interface {
	// Replies counts the bot messages the conversation received.
	Replies(conv int64) uint64
	// Awaiting shows that the bot works on an answer to the message at t,
	// unless a reply came since the count before was taken.
	Awaiting(conv int64, t ReplyTarget, before uint64)
}

// convWork is the sender's state of one conversation.
type convWork struct {
	// lease is the conversation's lease.
	lease                  string
	queued, running, again bool
	// items counts the conversation's inbound messages stored and not yet
	// sent or given up, so that a worker knows when it is done without
	// asking the store once more.
	items int
	// unknown is set when another process may have stored messages of the
	// conversation (a note, a poll, a lease taken): a worker then goes on
	// until the store has none left.
	unknown bool
	// dropped is set when the conversation's lease ended while a worker
	// was on it: the state goes when the worker is done.
	dropped bool
	retry   *time.Timer
	backoff *retry.Backoff
	// maybeSent holds items whose send may have reached Botpress without
	// the bridge knowing (a crash, a lost answer): before sending them again
	// the worker looks for them in the conversation.
	maybeSent map[int64]bool
	// vanished counts consecutive times the Botpress side was found gone.
	vanished int
	// bot is the conversation's bot, known after a failure; rateLimited is
	// set when Botpress asked to wait (429), so that wakeBot leaves it alone.
	bot         string
	rateLimited bool
}

// convEntry caches a conversation record, its known participants and where
// its replies go now.
type convEntry struct {
	conv         Conversation
	participants map[chat.UserID]bool
	used         time.Time
}

func (s *sender) init() {
	s.state = make(map[int64]*convWork)
	s.convs = make(map[int64]*convEntry)
	s.wake = make(chan struct{}, 1)
}

// start runs the workers until ctx ends or close.
func (s *sender) start(ctx context.Context) {
	for range s.workers {
		s.wg.Go(func() { s.worker(ctx) })
	}
}

// resume queues what the store holds of the leases named, taken by this
// process (at its start, or from another): a conversation sends one item
// at a time, so only its first pending item can have reached Botpress
// without the store knowing (sent by a process that stopped, or lost the
// lease, before it recorded it).
func (s *sender) resume(ctx context.Context, leases []string) (int, error) {
	items, err := s.store.PendingInboundIn(ctx, leases, 0, 0)
	if err != nil {
		return 0, fmt.Errorf("resume outbox: %w", err)
	}
	seen := map[int64]bool{}
	s.mu.Lock()
	for _, it := range items {
		s.pending++
		w := s.work(it.Conversation)
		w.lease = LeaseOf(it.Inbound.Room)
		w.items++
		if !seen[it.Conversation] {
			w.maybeSent[it.ID] = true
			seen[it.Conversation] = true
		}
	}
	s.mu.Unlock()
	for conv := range seen {
		s.notify(conv)
	}
	return len(items), nil
}

// Queue makes the sender send a newly stored item, when this process holds
// its conversation's lease; else it tells the process that does.
func (s *sender) Queue(it OutboxItem) {
	lease := LeaseOf(it.Inbound.Room)
	if !s.leases.holds(lease) {
		s.notes.publish(Note{Lease: lease, Conversation: it.Conversation})
		return
	}
	s.mu.Lock()
	s.pending++
	w := s.work(it.Conversation)
	w.lease = lease
	w.items++
	s.mu.Unlock()
	s.notify(it.Conversation)
}

// nudge makes the sender send what the store holds of a conversation of a
// lease it holds: messages another process stored.
func (s *sender) nudge(conv int64, lease string) {
	if !s.leases.holds(lease) {
		return
	}
	s.mu.Lock()
	w := s.work(conv)
	w.lease, w.unknown = lease, true
	s.mu.Unlock()
	s.notify(conv)
}

// poll nudges every conversation of the leases named with messages
// waiting: the fallback for notes lost.
func (s *sender) poll(ctx context.Context, leases []string) error {
	items, err := s.store.PendingInboundIn(ctx, leases, 0, 0)
	if err != nil {
		return err
	}
	seen := map[int64]bool{}
	for _, it := range items {
		if !seen[it.Conversation] {
			seen[it.Conversation] = true
			s.nudge(it.Conversation, LeaseOf(it.Inbound.Room))
		}
	}
	return nil
}

// drop forgets the conversations of the leases named, which ended: their
// messages are another process's now.
func (s *sender) drop(leases []string) {
	s.mu.Lock()
	for conv, w := range s.state {
		if !slices.Contains(leases, w.lease) {
			continue
		}
		s.pending -= w.items
		w.items, w.unknown = 0, false
		if w.retry != nil {
			w.retry.Stop()
			w.retry = nil
		}
		if w.running {
			w.dropped = true
		} else {
			delete(s.state, conv)
		}
	}
	s.mu.Unlock()
	s.convMu.Lock()
	for id, ce := range s.convs {
		if slices.Contains(leases, LeaseOf(ce.conv.Key.Room)) {
			delete(s.convs, id)
		}
	}
	s.convMu.Unlock()
}

func (s *sender) work(conv int64) *convWork {
	w, ok := s.state[conv]
	if !ok {
		w = &convWork{maybeSent: make(map[int64]bool)}
		s.state[conv] = w
	}
	return w
}

// notify makes sure the conversation will be worked on.
func (s *sender) notify(conv int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.work(conv)
	switch {
	case w.running:
		w.again = true
	case w.queued || w.retry != nil || s.closed:
	default:
		w.queued = true
		s.queue = append(s.queue, conv)
		s.signal()
	}
}

func (s *sender) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// take returns the next conversation to work on and its lease, or false
// when the sender is closed or ctx ended.
func (s *sender) take(ctx context.Context) (int64, string, bool) {
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return 0, "", false
		}
		if len(s.queue) > 0 {
			conv := s.queue[0]
			s.queue = s.queue[1:]
			if len(s.queue) == 0 {
				s.queue = nil // let the backing array go
			} else {
				s.signal()
			}
			w, ok := s.state[conv]
			if !ok {
				s.mu.Unlock()
				continue // dropped with its lease
			}
			w.queued, w.running = false, true
			s.busy.Add(1)
			lease := w.lease // Queue and nudge set it under s.mu
			s.mu.Unlock()
			return conv, lease, true
		}
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			return 0, "", false
		case <-s.wake:
		}
	}
}

// release ends a turn of work on conv and schedules the next: at once when
// new items came in meanwhile, after retryIn when the turn failed.
func (s *sender) release(conv int64, retryIn time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.busy.Done()
	w := s.work(conv)
	w.running = false
	switch {
	case w.dropped:
		delete(s.state, conv)
	case s.closed:
	case retryIn > 0:
		w.again = false
		w.retry = time.AfterFunc(retryIn, func() {
			s.mu.Lock()
			w.retry = nil
			s.mu.Unlock()
			s.notify(conv)
		})
	case w.again:
		w.again, w.queued = false, true
		s.queue = append(s.queue, conv)
		s.signal()
	case len(w.maybeSent) == 0 && w.backoff == nil && w.items == 0 && !w.unknown:
		delete(s.state, conv)
	}
}

// close stops handing out work; turns in progress finish.
func (s *sender) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	for _, w := range s.state {
		if w.retry != nil {
			w.retry.Stop()
		}
	}
	close(s.wake)
}

// drained blocks until no conversation is being worked on.
func (s *sender) drained() { s.busy.Wait() }

// wait blocks until the workers returned.
func (s *sender) wait() { s.wg.Wait() }

// idle reports whether every stored item was sent or given up.
func (s *sender) idle() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pending != 0 {
		return false
	}
	for _, w := range s.state {
		if w.unknown {
			return false
		}
	}
	return true
}

// finished counts an item of conv sent or given up.
func (s *sender) finished(conv int64) {
	s.mu.Lock()
	if w := s.work(conv); w.items > 0 {
		w.items--
		s.pending--
	}
	s.mu.Unlock()
}

// caughtUp reports whether the conversation has no item left to send.
func (s *sender) caughtUp(conv int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.work(conv)
	return w.items == 0 && !w.unknown
}

func (s *sender) worker(ctx context.Context) {
	for {
		conv, lease, ok := s.take(ctx)
		if !ok {
			return
		}
		lctx, done, held := s.leases.acquire(lease)
		if !held {
			s.mu.Lock()
			w := s.work(conv)
			s.pending -= w.items
			w.items, w.unknown, w.dropped = 0, false, true
			s.mu.Unlock()
			s.release(conv, 0)
			continue
		}
		retryIn := s.drainConversation(lctx, conv)
		done()
		s.release(conv, retryIn)
	}
}

// drainConversation sends the conversation's items in order until none is
// left (0) or one fails for now (the wait before the next try).
func (s *sender) drainConversation(ctx context.Context, conv int64) time.Duration {
	for ctx.Err() == nil {
		if s.caughtUp(conv) {
			return 0
		}
		it, err := s.store.NextInbound(ctx, conv)
		if errors.Is(err, ErrNotFound) {
			s.mu.Lock()
			w := s.work(conv)
			// Items counted but gone: sent by another process before this
			// one took the lease; never wait for them.
			s.pending -= w.items
			w.items, w.unknown = 0, false
			s.mu.Unlock()
			return 0
		}
		if err != nil {
			if ctx.Err() != nil {
				return 0
			}
			s.log.Error("read outbox", LogConversation, conv, LogErr, err)
			return s.failed(ctx, conv, err)
		}
		err = s.send(ctx, it)
		switch {
		case err == nil:
			s.sent(conv, it.ID)
			s.finished(conv)
		case ctx.Err() != nil, errors.Is(err, errLeaseEnded), s.leases.fenced(ctx, err):
			// Stopping, or the conversation is another process's now.
			return 0
		case IsPermanent(err):
			s.log.Error("inbound message given up: Botpress refuses it", LogConversation, conv,
				LogEventKey, string(it.Inbound.Key), LogErr, err)
			if ferr := s.store.FailInbound(ctx, it.ID, err.Error()); ferr != nil {
				if s.leases.fenced(ctx, ferr) {
					return 0
				}
				s.log.Error("record failed inbound", LogErr, ferr)
				return s.failed(ctx, conv, ferr)
			}
			bot := ""
			if c, cerr := s.conversation(ctx, conv); cerr == nil {
				bot = c.Key.Bot
			}
			s.metrics.Inbound(it.Inbound.Room.Platform, bot, "failed")
			s.sent(conv, it.ID)
			s.finished(conv)
		default:
			return s.failed(ctx, conv, err)
		}
	}
	return 0
}

func (s *sender) maybeSent(conv, item int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.work(conv).maybeSent[item]
}

func (s *sender) markMaybeSent(conv, item int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.work(conv).maybeSent[item] = true
}

// sent ends the item's troubles: its conversation starts its backoff over.
func (s *sender) sent(conv, item int64) {
	s.mu.Lock()
	w := s.work(conv)
	delete(w.maybeSent, item)
	w.backoff, w.vanished = nil, 0
	s.mu.Unlock()
}

// wakeBot retries at once the conversations of bot that wait out a backoff,
// except those Botpress asked to wait.
func (s *sender) wakeBot(bot string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	for conv, w := range s.state {
		if w.retry == nil || w.rateLimited || w.bot != bot {
			continue
		}
		if !w.retry.Stop() {
			continue // firing already
		}
		w.retry = nil
		if !w.running && !w.queued {
			w.queued = true
			s.queue = append(s.queue, conv)
		}
	}
	s.signal()
}

// failed counts a failure and returns the wait before the next attempt.
func (s *sender) failed(ctx context.Context, conv int64, err error) time.Duration {
	bot := ""
	if c, cerr := s.conversation(ctx, conv); cerr == nil {
		bot = c.Key.Bot
	}
	rateLimited := errors.Is(err, chat.ErrRateLimited)
	s.mu.Lock()
	w := s.work(conv)
	if w.backoff == nil {
		w.backoff = s.policy.New()
	}
	d := w.backoff.Next(err)
	n := w.backoff.Attempts()
	w.bot, w.rateLimited = bot, rateLimited
	s.mu.Unlock()
	if bot != "" && !rateLimited && !errors.Is(err, ErrStore) {
		s.health.Down(bot)
	}
	s.log.Warn("sending to Botpress failed; will retry", LogConversation, conv, "attempt", n, LogWait, d, LogErr, err)
	return d
}

// errVanished marks a failure because the Botpress side of a conversation or
// user is gone; the mapping was dropped and the send is tried again at once.
var errVanished = errors.New("vanished on the Botpress side")

// errLeaseEnded stops a send before it reaches Botpress: the lease of the
// conversation ended (lost, given up, or past its deadline), and its
// messages are another process's now.
var errLeaseEnded = errors.New("the lease of the conversation ended")

// send delivers one outbox item to Botpress: it resolves the bot's users and
// the conversation, then sends each part not yet sent, recording progress in
// the store after each.
func (s *sender) send(ctx context.Context, it OutboxItem) error {
	err := s.sendOnce(ctx, it, s.maybeSent(it.Conversation, it.ID))
	if errors.Is(err, errVanished) && !s.vanishedAgain(it.Conversation) {
		// The mapping was dropped: try once more at once, with fresh users and
		// conversation, from the progress the store recorded.
		if fresh, nerr := s.store.NextInbound(ctx, it.Conversation); nerr == nil && fresh.ID == it.ID {
			it = fresh
		}
		err = s.sendOnce(ctx, it, s.maybeSent(it.Conversation, it.ID))
	}
	return err
}

func (s *sender) vanishedAgain(conv int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.work(conv)
	w.vanished++
	return w.vanished > 2
}

// sendOnce is one attempt at an item: the Botpress side (resolve), then
// each part not sent yet (sendParts), then what follows a send.
func (s *sender) sendOnce(ctx context.Context, it OutboxItem, maybeSent bool) error {
	conv, err := s.conversation(ctx, it.Conversation)
	if err != nil {
		return err
	}
	b := s.bots[conv.Key.Bot]
	if b == nil {
		return Permanent(fmt.Errorf("bot %q is no longer configured", conv.Key.Bot))
	}
	in := it.Inbound
	parts, err := messageParts(in, s.files)
	if err != nil {
		return Permanent(err)
	}
	reply := replyTarget(conv.Key, in)
	if it.PartsSent >= len(parts) {
		return s.record(ctx, it.ID, len(parts), "", true, reply)
	}
	conv, u, err := s.resolve(ctx, b, conv, in)
	if err != nil {
		return s.classify(ctx, b, &conv, in, err)
	}
	// The stream must be up before the message goes, or the start of a
	// streamed reply would be missed (catch-up only finds whole messages).
	if ready := s.watch.Watch(conv); ready != nil {
		t := time.NewTimer(streamConnectWait)
		select {
		case <-ready:
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
	}
	replies := s.await.Replies(conv.ID)
	// Replies to this message may arrive before createMessage returns; they
	// go where this message was said.
	s.setReply(conv.ID, reply)
	sentNow, last, err := s.sendParts(ctx, b, conv, u, it, parts, maybeSent, reply)
	if err != nil {
		return err
	}
	s.metrics.Inbound(in.Room.Platform, b.Name, "sent")
	s.log.Debug("sent to Botpress", LogConversation, conv.ID, LogChatConv, string(conv.ChatID), LogEventKey, string(in.Key))
	s.health.Up(b.Name)
	s.watch.Sent(conv.ID, b.Name, last)
	if sentNow && !in.notice() { // the bot need not answer a notice
		s.await.Awaiting(conv.ID, reply, replies)
	}
	return nil
}

// resolve makes sure the conversation and the sender's user exist on the
// Botpress side and that the user takes part in the conversation.
func (s *sender) resolve(ctx context.Context, b *bot, conv Conversation, in Inbound) (Conversation, User, error) {
	svc, err := b.serviceKey(ctx)
	if err != nil {
		return conv, User{}, err
	}
	if conv.ChatID == "" {
		if conv, err = s.createConversation(ctx, b, conv, svc); err != nil {
			return conv, User{}, err
		}
	}
	u, err := b.user(ctx, in.Room.Platform, in.Sender)
	if err != nil {
		return conv, User{}, err
	}
	if !s.knownParticipant(conv.ID, u.ChatID) {
		if err := s.addParticipant(ctx, b, conv, svc, u.ChatID); err != nil {
			return conv, User{}, err
		}
	}
	return conv, u, nil
}

// sendParts sends the parts of it not sent yet, looking each up first when
// it may have been sent before, and records each in the store. It reports
// whether it sent any now, and the id of the last it sent.
func (s *sender) sendParts(ctx context.Context, b *bot, conv Conversation, u User, it OutboxItem, parts []chat.Payload, maybeSent bool, reply ReplyTarget) (sentNow bool, last chat.MessageID, err error) {
	in := it.Inbound
	if b.Notify == NotifyEvent && in.notice() {
		sent, err := s.sendNotice(ctx, b, conv, u, it, maybeSent, reply)
		return sent, "", err
	}
	for i := it.PartsSent; i < len(parts); i++ {
		mkey := metaKey(in, i)
		done := i == len(parts)-1
		if maybeSent {
			id, found, err := findSent(ctx, b, conv.ChatID, mkey)
			if err != nil {
				return sentNow, last, s.classify(ctx, b, &conv, in, err)
			}
			if found {
				s.log.Info("message was sent before the restart; not sending it again", LogConversation, conv.ID, LogEventKey, mkey)
				if err := s.record(ctx, it.ID, i+1, id, done, reply); err != nil {
					return sentNow, last, err
				}
				continue
			}
		}
		if !s.leases.valid(ctx) {
			return sentNow, last, errLeaseEnded
		}
		msg, err := b.API.CreateMessage(ctx, u.Key, chat.CreateMessageRequest{
			ConversationID: conv.ChatID,
			Payload:        parts[i],
			Metadata:       metadata(in, mkey),
		})
		if err != nil {
			if ambiguous(err) {
				s.markMaybeSent(conv.ID, it.ID)
			}
			return sentNow, last, s.classify(ctx, b, &conv, in, err)
		}
		sentNow, last = true, msg.ID
		if err := s.record(ctx, it.ID, i+1, msg.ID, done, reply); err != nil {
			// Botpress has it, the store does not know: look before resending.
			s.markMaybeSent(conv.ID, it.ID)
			return sentNow, last, err
		}
	}
	return sentNow, last, nil
}

// record stores the progress of an item.
func (s *sender) record(ctx context.Context, id int64, parts int, msg chat.MessageID, done bool, reply ReplyTarget) error {
	return recordAccepted(ctx, func(ctx context.Context) error {
		return s.store.MarkInboundSent(ctx, id, parts, msg, done, reply)
	})
}

// recordAccepted makes the record of something the other side has accepted
// (Botpress took a message, a platform a post): its first attempt is made
// even when ctx ended meanwhile (the bridge is stopping), for up to
// recordTimeout, so that a stop does not turn an accepted step into one to
// look up after the restart. It returns fn's error.
func recordAccepted(ctx context.Context, fn func(ctx context.Context) error) error {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	return fn(rctx)
}

// recordTimeout bounds a record made while the bridge is stopping.
const recordTimeout = 5 * time.Second

// replyTarget is where the bot's answers to in go: the conversation's thread
// in thread scope, else where in was said.
func replyTarget(key ConvKey, in Inbound) ReplyTarget {
	room := in.Room
	if key.Scope == ScopeThread {
		room = key.Room
	}
	return ReplyTarget{Room: room, MessageID: in.MessageID, UserID: in.Sender.ID, Ephemeral: in.ephemeral()}
}

// createConversation maps conv to a Botpress conversation: the one with its
// derived id (so that a retry after a crash finds it), or a new one with a
// generated id when another user owns the derived id.
func (s *sender) createConversation(ctx context.Context, b *bot, conv Conversation, svc chat.UserKey) (Conversation, error) {
	c, err := b.API.GetOrCreateConversation(ctx, svc, conversationID(conv))
	if errors.Is(err, chat.ErrForbidden) {
		s.log.Warn("derived conversation id belongs to another user; creating a new conversation", LogConversation, conv.ID)
		c, err = b.API.CreateConversation(ctx, svc, "")
	}
	if err != nil {
		return conv, fmt.Errorf("create conversation: %w", err)
	}
	if err := s.store.SetConversationChatID(ctx, conv.ID, c.ID); err != nil {
		return conv, err
	}
	conv.ChatID = c.ID
	s.cache(conv)
	s.log.Info("conversation created", LogConversation, conv.ID, LogChatConv, string(c.ID), LogBot, b.Name, "key", conv.Key.String())
	return conv, nil
}

func (s *sender) addParticipant(ctx context.Context, b *bot, conv Conversation, svc chat.UserKey, user chat.UserID) error {
	ok, err := s.store.Participant(ctx, conv.ID, user)
	if err != nil {
		return err
	}
	if !ok {
		if user != chat.UserID(serviceChatID) {
			if _, err := b.API.AddParticipant(ctx, svc, conv.ChatID, user); err != nil {
				return fmt.Errorf("add participant: %w", err)
			}
		}
		if err := s.store.AddParticipant(ctx, conv.ID, user); err != nil {
			return err
		}
	}
	s.cacheParticipant(conv.ID, user)
	return nil
}

// findSent looks for a message the bridge sent with metadata key mkey among
// the conversation's recent messages.
func findSent(ctx context.Context, b *bot, conv chat.ConversationID, mkey string) (chat.MessageID, bool, error) {
	key, err := b.serviceKey(ctx)
	if err != nil {
		return "", false, err
	}
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

// classify turns a failure into what the sender does next: errVanished
// after dropping the mapping of whatever is gone on the Botpress side, a
// Permanent error for what retrying cannot fix, or err for a retry later.
func (s *sender) classify(ctx context.Context, b *bot, conv *Conversation, in Inbound, err error) error {
	switch {
	case errors.Is(err, chat.ErrNotFound), errors.Is(err, chat.ErrForbidden):
		s.log.Warn("conversation or user gone on the Botpress side (deleted, or the bot was reset); recreating them",
			LogConversation, conv.ID, LogChatConv, string(conv.ChatID), LogBot, b.Name, LogErr, err)
		var errs []error
		errs = append(errs, b.forget(ctx, in.Room.Platform, in.Sender.ID), b.forget(ctx, servicePlatform, serviceID))
		if conv.ChatID != "" {
			errs = append(errs, s.store.SetConversationChatID(ctx, conv.ID, ""))
			conv.ChatID = ""
			s.cache(*conv)
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

// conversation returns a conversation record from the cache or the store.
func (s *sender) conversation(ctx context.Context, id int64) (Conversation, error) {
	s.convMu.Lock()
	if ce, ok := s.convs[id]; ok {
		ce.used = s.now()
		c := ce.conv
		s.convMu.Unlock()
		return c, nil
	}
	s.convMu.Unlock()
	c, err := s.store.Conversation(ctx, id)
	if err != nil {
		return c, err
	}
	s.cache(c)
	return c, nil
}

// cache keeps c, forgetting its participants when it was remapped.
func (s *sender) cache(c Conversation) {
	s.convMu.Lock()
	defer s.convMu.Unlock()
	if ce, ok := s.convs[c.ID]; ok {
		if ce.conv.ChatID != c.ChatID {
			ce.participants = make(map[chat.UserID]bool)
		}
		c.Reply = ce.conv.Reply
		ce.conv, ce.used = c, s.now()
		return
	}
	s.convs[c.ID] = &convEntry{conv: c, participants: make(map[chat.UserID]bool), used: s.now()}
}

// setReply records where the conversation's replies go from now on.
func (s *sender) setReply(id int64, t ReplyTarget) {
	s.convMu.Lock()
	defer s.convMu.Unlock()
	if ce, ok := s.convs[id]; ok {
		ce.conv.Reply, ce.used = t, s.now()
	}
}

// ReplyTarget returns where the conversation's replies go, when the sender
// knows it (it sent a message there recently); else the store's record
// says.
func (s *sender) ReplyTarget(conv int64) (ReplyTarget, bool) {
	s.convMu.Lock()
	defer s.convMu.Unlock()
	if ce, ok := s.convs[conv]; ok && ce.conv.Reply.Room.Room != "" {
		return ce.conv.Reply, true
	}
	return ReplyTarget{}, false
}

// evict forgets conversations unused since before.
func (s *sender) evict(before time.Time) {
	s.convMu.Lock()
	defer s.convMu.Unlock()
	for id, ce := range s.convs {
		if ce.used.Before(before) {
			delete(s.convs, id)
		}
	}
}

// knownParticipant reports whether user is a cached participant of the
// conversation; cacheParticipant caches one.
func (s *sender) knownParticipant(id int64, user chat.UserID) bool {
	s.convMu.Lock()
	defer s.convMu.Unlock()
	ce, ok := s.convs[id]
	return ok && ce.participants[user]
}

func (s *sender) cacheParticipant(id int64, user chat.UserID) {
	s.convMu.Lock()
	defer s.convMu.Unlock()
	if ce, ok := s.convs[id]; ok {
		ce.participants[user] = true
	}
}
