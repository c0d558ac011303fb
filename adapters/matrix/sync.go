package matrix

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/botbridge/botbridge/bridge"
	"github.com/botbridge/botbridge/bridge/retry"
)

const (
	// maxBackfill bounds how many events the adapter pages back through
	// when a room had more new events than one sync returns.
	maxBackfill = 1000
	// pendingPoll is the longest /sync wait while encrypted messages wait
	// for their keys, so that they are retried soon after keys arrive.
	pendingPoll = 5 * time.Second
)

// dispatcher feeds mautrix's own handlers (the state store, the crypto
// machine) with the sync responses the adapter fetches itself. It is not a
// mautrix.DispatchableSyncer on purpose: the crypto helper then leaves
// decryption to the adapter, which must know whether each message was
// stored before it moves the sync token forward.
type dispatcher struct{ d *mautrix.DefaultSyncer }

var _ mautrix.ExtensibleSyncer = (*dispatcher)(nil)

func newDispatcher() *dispatcher { return &dispatcher{d: mautrix.NewDefaultSyncer()} }

func (s *dispatcher) ProcessResponse(ctx context.Context, resp *mautrix.RespSync, since string) error {
	return s.d.ProcessResponse(ctx, resp, since)
}

func (s *dispatcher) OnFailedSync(*mautrix.RespSync, error) (time.Duration, error) {
	return 0, errors.New("matrix: the adapter runs its own sync loop")
}

func (s *dispatcher) GetFilterJSON(id.UserID) *mautrix.Filter { return &mautrix.Filter{} }

func (s *dispatcher) OnSync(cb mautrix.SyncHandler)                     { s.d.OnSync(cb) }
func (s *dispatcher) OnEvent(cb mautrix.EventHandler)                   { s.d.OnEvent(cb) }
func (s *dispatcher) OnEventType(t event.Type, cb mautrix.EventHandler) { s.d.OnEventType(t, cb) }

// Run implements bridge.Adapter. It logs in, retrying with backoff while
// the homeserver is unreachable or refuses the credentials (Ready says why
// meanwhile), then syncs until ctx ends, when it returns nil. The sync token
// moves forward only after the bridge stored every message of a batch; a
// message it could not store is handed to it again, with backoff. The first
// start skips the rooms' history. Run may be called again after it
// returned, as after a restart.
func (a *Adapter) Run(ctx context.Context, h bridge.Handler) error {
	if !a.running.CompareAndSwap(false, true) {
		return errors.New("matrix: Run is already running")
	}
	defer a.running.Store(false)
	defer a.setStatus(errors.New("matrix: stopped"))

	bo := a.backoff()
	for {
		err := a.connect(ctx)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return nil
		}
		a.setStatus(err)
		d := bo.Next(err)
		a.logLimited(slog.LevelError, "connect "+err.Error(), "cannot connect to Matrix; retrying", bridge.LogErr, err, bridge.LogWait, d)
		if !sleep(ctx, d) {
			return nil
		}
	}
	a.connectedOnce.Do(func() { close(a.connected) })
	a.log.Info("connected", logUser, a.user, logDevice, a.device, logHomeserver, a.opts.HomeserverURL,
		logEncryption, a.crypto != nil)

	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() { a.readLoop(ctx) })
	wg.Go(func() { a.keycapLoop(ctx) })
	a.syncLoop(ctx, h)
	return nil
}

// syncLoop syncs until ctx ends.
func (a *Adapter) syncLoop(ctx context.Context, h bridge.Handler) {
	keySince := cursorName(a.user, cursorSince)
	bo := a.backoff()
	var since string
	if !a.retry(ctx, "read the sync token", func() (err error) {
		since, err = a.opts.Store.Cursor(ctx, keySince)
		return err
	}) || !a.retry(ctx, "read the messages waiting for keys", func() error { return a.loadPending(ctx) }) {
		return
	}
	// The first sync of a run, and the first after a failure, answer at
	// once, so that readiness reflects the homeserver without a long poll.
	quick := true
	var failure error
	for ctx.Err() == nil {
		resp, err := a.syncOnce(ctx, since, quick)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if wait, limited := retryAfter(err, 1); limited {
				a.log.Debug("sync rate limited by the homeserver; waiting", bridge.LogWait, wait)
				if !sleep(ctx, wait) {
					return
				}
				continue
			}
			// The token was refused (a logout), or there is none: a login
			// after a logout failed (the homeserver busy), which the next
			// turn tries again, after the backoff.
			if errors.Is(err, mautrix.MUnknownToken) || errors.Is(err, mautrix.MMissingToken) {
				if a.opts.Password == "" {
					err = errBadToken
				} else if err = a.login(ctx, true); err == nil {
					continue
				}
			} else {
				err = fmt.Errorf("matrix: sync with %s: %w", a.opts.HomeserverURL, err)
			}
			quick, failure = true, err
			a.setStatus(err)
			d := bo.Next(err)
			a.logLimited(slog.LevelWarn, "sync "+err.Error(), "sync failed; retrying", bridge.LogErr, err, bridge.LogWait, d)
			if !sleep(ctx, d) {
				return
			}
			continue
		}
		if failure != nil {
			a.log.Info("sync works again", bridge.LogErr, failure)
		}
		quick, failure = false, nil
		bo.Reset()
		a.setStatus(nil)
		if !a.handleBatch(ctx, h, resp, since) {
			return
		}
		if !a.retry(ctx, "save the sync token", func() error { return a.opts.Store.SetCursor(ctx, keySince, resp.NextBatch) }) {
			return
		}
		since = resp.NextBatch
		a.backUpKeys(ctx)
	}
}

// syncOnce makes one /sync request, which waits up to SyncTimeout for
// events unless quick.
func (a *Adapter) syncOnce(ctx context.Context, since string, quick bool) (*mautrix.RespSync, error) {
	wait := a.opts.SyncTimeout
	if quick {
		wait = 0
	}
	if len(a.pending) > 0 {
		wait = min(wait, pendingPoll)
	}
	// A connection that stalls past the server's own timeout is dropped.
	ctx, cancel := context.WithTimeout(ctx, wait+a.opts.SyncTimeout)
	defer cancel()
	return a.cli.FullSyncRequest(ctx, mautrix.ReqSync{
		Timeout:  int(wait / time.Millisecond),
		Since:    since,
		FilterID: a.filter(),
	})
}

// filter is the inline sync filter: room timelines and state, without
// typing, receipts, presence and account data, which the bot does not use.
func (a *Adapter) filter() string {
	return fmt.Sprintf(`{"room":{"timeline":{"limit":%d},"ephemeral":{"types":[]},"account_data":{"types":[]}},`+
		`"presence":{"types":[]},"account_data":{"types":[]}}`, a.opts.TimelineLimit)
}

// handleBatch updates the stores from resp, answers invites, and hands
// every new message to h, each until h stored it. It returns false when ctx
// ended first.
func (a *Adapter) handleBatch(ctx context.Context, h bridge.Handler, resp *mautrix.RespSync, since string) bool {
	if err := a.sync.ProcessResponse(ctx, resp, since); err != nil {
		a.log.Error("mautrix's handlers failed on a sync response", bridge.LogErr, err)
	}
	if a.verify != nil {
		a.verify.handle(ctx, resp)
	}
	if len(resp.ToDevice.Events) > 0 {
		// Room keys come as to-device events.
		a.identity.backupDue = true
	}
	for room, jr := range resp.Rooms.Join {
		a.noteAliases(room, jr.State.Events)
		a.noteAliases(room, jr.Timeline.Events)
	}
	for room, inv := range resp.Rooms.Invite {
		if !a.invited(ctx, room, inv) {
			return false
		}
	}
	for room, lr := range resp.Rooms.Leave {
		a.left(room, lr)
	}
	if since == "" {
		a.log.Info("first sync: the rooms' earlier messages are not sent to the bot", logCount, len(resp.Rooms.Join))
		return a.followUpgrades(ctx, resp)
	}
	for room, jr := range resp.Rooms.Join {
		events, ok := a.timeline(ctx, room, jr.Timeline, since)
		if !ok {
			return false
		}
		var last id.EventID
		for _, evt := range events {
			in, ok := a.inbound(ctx, evt)
			if ctx.Err() != nil {
				// An event kept to wait for its keys may not be stored.
				return false
			}
			if !ok {
				continue
			}
			if !a.deliver(ctx, h, in) {
				return false
			}
			last = evt.ID
		}
		if last != "" {
			a.markRead(room, last)
		}
	}
	return a.followUpgrades(ctx, resp) && a.retryPending(ctx, h)
}

// deliver hands in to h until h stores it. It returns false when ctx ended
// first.
func (a *Adapter) deliver(ctx context.Context, h bridge.Handler, in bridge.Inbound) bool {
	bo := a.backoff()
	for {
		err := h.HandleInbound(ctx, in)
		if err == nil {
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		d := bo.Next(err)
		a.logLimited(slog.LevelWarn, "handle", "the bridge could not store a message; the sync position stays until it does",
			bridge.LogRoom, in.Room.String(), logEvent, string(in.Key), bridge.LogErr, err, bridge.LogWait, d)
		if !sleep(ctx, d) {
			return false
		}
	}
}

// timeline returns the events of a room's timeline that are new to the
// bot: those after its own join when it just joined, and, when the
// server cut the timeline short, the missing ones before it.
func (a *Adapter) timeline(ctx context.Context, room id.RoomID, tl mautrix.SyncTimeline, since string) ([]*event.Event, bool) {
	evs := tl.Events
	for i := len(evs) - 1; i >= 0; i-- {
		if a.ownJoin(evs[i]) {
			return evs[i+1:], true
		}
	}
	if !tl.Limited || tl.PrevBatch == "" {
		return evs, true
	}
	var older []*event.Event
	from := tl.PrevBatch
	bo := a.backoff()
	for {
		var resp *mautrix.RespMessages
		err := a.retryTransient(ctx, bo, "page back through a room", func() (err error) {
			resp, err = a.cli.Messages(ctx, room, from, since, mautrix.DirectionBackward, nil, a.opts.TimelineLimit)
			return err
		})
		if ctx.Err() != nil {
			return nil, false
		}
		if err != nil {
			a.log.Warn("cannot page back through a room; the messages before the last sync are not sent to the bot",
				bridge.LogRoom, room, bridge.LogErr, err)
			break
		}
		joined := false
		for _, evt := range resp.Chunk {
			evt.RoomID = room
			prepare(evt)
			if joined = a.ownJoin(evt); joined {
				break
			}
			older = append(older, evt)
		}
		if joined || resp.End == "" || len(resp.Chunk) == 0 {
			break
		}
		if len(older) >= maxBackfill {
			a.log.Warn("too many messages since the last sync; the oldest are not sent to the bot", bridge.LogRoom, room, logCount, len(older))
			break
		}
		from = resp.End
	}
	slices.Reverse(older)
	a.log.Debug("paged back through messages the sync left out", bridge.LogRoom, room, logCount, len(older))
	return append(older, evs...), true
}

// prepare sets the class of an event fetched outside /sync and parses its
// content, as the syncer does for sync events.
func prepare(evt *event.Event) {
	evt.Type.Class = event.MessageEventType
	if evt.StateKey != nil {
		evt.Type.Class = event.StateEventType
	}
	if evt.Content.Parsed == nil {
		_ = evt.Content.ParseRaw(evt.Type)
	}
}

// ownJoin reports whether evt is the bot joining the room (not a change of
// its profile while joined).
func (a *Adapter) ownJoin(evt *event.Event) bool {
	if evt.Type.Type != event.StateMember.Type || evt.GetStateKey() != string(a.user) || membership(evt.Content) != event.MembershipJoin {
		return false
	}
	return evt.Unsigned.PrevContent == nil || membership(*evt.Unsigned.PrevContent) != event.MembershipJoin
}

func membership(c event.Content) event.Membership {
	m, _ := c.Raw["membership"].(string)
	return event.Membership(m)
}

// invited joins a room the bot was invited to when Admit lets the inviter
// talk to a bot there, or rejects the invite. It returns false when ctx
// ended first.
func (a *Adapter) invited(ctx context.Context, room id.RoomID, inv *mautrix.SyncInvitedRoom) bool {
	var me *event.Event
	alias := ""
	for _, evt := range inv.State.Events {
		switch evt.Type.Type {
		case event.StateMember.Type:
			if evt.GetStateKey() == string(a.user) {
				me = evt
			}
		case event.StateCanonicalAlias.Type:
			alias, _ = evt.Content.Raw["alias"].(string)
		}
	}
	if me == nil || membership(me.Content) != event.MembershipInvite {
		return true
	}
	direct, _ := me.Content.Raw["is_direct"].(bool)
	alias = a.confirmAlias(ctx, room, alias)
	log := a.log.With(bridge.LogRoom, room, logInviter, me.Sender)
	asked := bridge.Inbound{
		Room:     bridge.RoomKey{Platform: Platform, Room: string(room)},
		RoomName: alias,
		Sender:   bridge.Sender{ID: string(me.Sender)},
		DM:       direct,
	}
	if a.opts.Admit != nil && !a.opts.Admit(asked) {
		log.Info("invite rejected: no route lets this inviter or room use a bot")
		if _, err := a.cli.LeaveRoom(ctx, room, &mautrix.ReqLeave{Reason: "no bot answers in this room"}); err != nil {
			log.Warn("reject invite", bridge.LogErr, err)
		}
		return true
	}
	err := a.retryTransient(ctx, a.backoff(), "join a room on invite", func() error {
		_, err := a.cli.JoinRoomByID(ctx, room)
		return err
	})
	switch {
	case ctx.Err() != nil:
		return false
	case err != nil:
		log.Warn("cannot join the room the bot was invited to", bridge.LogErr, err)
	default:
		a.mu.Lock()
		delete(a.removed, room)
		a.mu.Unlock()
		log.Info("joined a room on invite", logDirect, direct)
	}
	return true
}

// left notes that someone else removed the bot from a room.
func (a *Adapter) left(room id.RoomID, lr *mautrix.SyncLeftRoom) {
	var me *event.Event
	for _, evt := range slices.Concat(lr.State.Events, lr.Timeline.Events) {
		if evt.Type.Type == event.StateMember.Type && evt.GetStateKey() == string(a.user) {
			me = evt
		}
	}
	if me == nil || me.Sender == a.user {
		return
	}
	reason := removal(me)
	a.mu.Lock()
	a.removed[room] = reason
	a.mu.Unlock()
	a.log.Warn("the bot was removed from a room; its replies there wait for it to be invited again, for a while",
		bridge.LogRoom, room, logReason, reason)
}

// removal describes the event that took the bot out of a room.
func removal(evt *event.Event) string {
	verb := "removed"
	switch membership(evt.Content) {
	case event.MembershipBan:
		verb = "banned"
	case event.MembershipLeave:
		if evt.Sender == id.UserID(evt.GetStateKey()) {
			verb = "left"
		}
	}
	reason := verb + " by " + string(evt.Sender)
	if r, _ := evt.Content.Raw["reason"].(string); r != "" {
		reason += ": " + r
	}
	return reason
}

// markRead queues a read receipt for evt, sent by readLoop.
func (a *Adapter) markRead(room id.RoomID, evt id.EventID) {
	a.mu.Lock()
	a.reads[room] = evt
	a.mu.Unlock()
	select {
	case a.readWake <- struct{}{}:
	default:
	}
}

// readLoop sends read receipts for what the bridge stored, the newest per
// room, off the sync loop.
func (a *Adapter) readLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.readWake:
		}
		a.mu.Lock()
		reads := a.reads
		a.reads = make(map[id.RoomID]id.EventID)
		a.mu.Unlock()
		for room, evt := range reads {
			rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := a.cli.MarkRead(rctx, room, evt)
			cancel()
			if err != nil && ctx.Err() == nil {
				a.log.Debug("read receipt", bridge.LogRoom, room, logEvent, evt, bridge.LogErr, err)
			}
		}
	}
}

// backoff returns the waits of the adapter's retry loops, from RetryMin to
// RetryMax.
func (a *Adapter) backoff() *retry.Backoff {
	return retry.Policy{Min: a.opts.RetryMin, Max: a.opts.RetryMax}.New()
}

// retry runs fn until it succeeds, with the adapter's backoff, logging
// failures. It returns false when ctx ended first.
func (a *Adapter) retry(ctx context.Context, what string, fn func() error) bool {
	return retry.Until(ctx, retry.Policy{Min: a.opts.RetryMin, Max: a.opts.RetryMax}, fn, func(_ int, err error, d time.Duration) {
		a.logLimited(slog.LevelWarn, what, what+" failed; retrying", bridge.LogErr, err, bridge.LogWait, d)
	}) == nil
}

// retryTransient runs fn until it succeeds or fails in a way retrying does
// not fix (a 4xx answer), with backoff; it returns fn's last error, or
// ctx's.
func (a *Adapter) retryTransient(ctx context.Context, bo *retry.Backoff, what string, fn func() error) error {
	for {
		err := fn()
		if err == nil || !transient(err) {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		d := bo.Next(err)
		a.logLimited(slog.LevelWarn, what, what+" failed; retrying", bridge.LogErr, err, bridge.LogWait, d)
		if !sleep(ctx, d) {
			return ctx.Err()
		}
	}
}

// transient reports whether a failed request may work when tried again:
// anything but a 4xx answer other than 408 and 429.
func transient(err error) bool {
	var he mautrix.HTTPError
	if !errors.As(err, &he) || he.Response == nil {
		return true
	}
	s := he.Response.StatusCode
	return s < 400 || s >= 500 || s == http.StatusRequestTimeout || s == http.StatusTooManyRequests
}

// sleep waits d or until ctx ends; it returns false when ctx ended.
func sleep(ctx context.Context, d time.Duration) bool { return retry.Wait(ctx, d) == nil }
