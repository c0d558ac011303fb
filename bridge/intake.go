package bridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/botbridge/botbridge/chat"
)

// intake is the first part of the bridge: it routes what people say and
// stores what the bot answers, before the adapter acknowledges it to the
// platform. It implements Handler. Its state is the store's; it hands new
// work to the sender (an inbound to send) and to the poster (the notice of
// a reset).
type intake struct {
	router  *Router
	store   IntakeStore
	sender  interface{ Queue(it OutboxItem) }
	poster  interface{ Deliver(d Delivery) }
	texts   map[Platform]bool // platforms whose people answer choices by text
	metrics Metrics
	log     *slog.Logger
	now     func() time.Time
}

var _ Handler = (*intake)(nil)

// HandleInbound implements Handler: it routes in and, when the bot answers
// it, stores it in the outbox. It returns nil when in was stored, was a
// duplicate, or was ignored; an error when it could not be stored.
func (it *intake) HandleInbound(ctx context.Context, in Inbound) error {
	if in.Key == "" || in.Room.Platform == "" || in.Room.Room == "" {
		it.log.Warn("inbound without event key or room ignored", LogRoom, in.Room.String(), LogEventKey, string(in.Key))
		return nil
	}
	log := it.log.With(LogRoom, in.Room.String(), LogEventKey, string(in.Key))
	if in.Reaction != nil {
		return it.reaction(ctx, in, log)
	}
	route, ok := it.router.Match(in)
	if !ok {
		log.Debug("no route for room; ignored")
		return nil
	}
	if reason, refused := route.refuses(in); refused {
		log.Debug("not answered", "reason", reason)
		return nil
	}
	if reason, skipped := route.admit(&in); skipped {
		log.Debug("not answered", "reason", reason)
		return nil
	}
	// Only now, with the sender known to be someone the route lets talk to
	// the bot, may the message answer a choice.
	if err := it.answer(ctx, route, &in); err != nil {
		return fmt.Errorf("handle inbound: %w", err)
	}
	engaged := false
	if route.NeedsThreadState(in) {
		var err error
		if engaged, err = it.store.ThreadEngaged(ctx, route.Bot, in.Room); err != nil {
			return fmt.Errorf("handle inbound: %w", err)
		}
	}
	d := route.Decide(in, engaged)
	if !d.Answer {
		log.Debug("not answered", "reason", d.Reason)
		return nil
	}
	if d.Reset {
		return it.reset(ctx, d, in, log)
	}
	item, created, err := it.store.EnqueueInbound(ctx, d.Key, in, d.Engage)
	if err != nil {
		return fmt.Errorf("handle inbound: %w", err)
	}
	if !created {
		log.Debug("duplicate event; already stored")
		it.metrics.Inbound(in.Room.Platform, route.Bot, "duplicate")
		return nil
	}
	it.metrics.Inbound(in.Room.Platform, route.Bot, "stored")
	log.Debug("inbound stored", LogConversation, item.Conversation, LogBot, route.Bot)
	it.sender.Queue(item)
	return nil
}

// answer turns in into the answer to the choice standing in its room, on
// platforms where people answer by typing a number or a label.
func (it *intake) answer(ctx context.Context, route Route, in *Inbound) error {
	if !it.texts[in.Room.Platform] || in.Action != nil || len(in.Files) > 0 || strings.TrimSpace(in.Text) == "" {
		return nil
	}
	o, err := it.store.Offer(ctx, in.Room)
	switch {
	case errors.Is(err, ErrNotFound):
		return nil
	case err != nil:
		return err
	case o.Bot != route.Bot:
		return nil // another bot's choice
	}
	if i, ok := pickOption(o.Options, in.Text); ok {
		in.Action = &Action{Value: o.Options[i].Value, Label: o.Options[i].Label, MessageID: o.MessageID}
	}
	return nil
}

// pickOption matches text against options: their number from 1, or a label
// (case and surrounding space ignored).
func pickOption(opts []chat.ChoiceOption, text string) (int, bool) {
	text = strings.TrimSpace(text)
	if i, err := strconv.Atoi(strings.TrimSuffix(text, ".")); err == nil {
		return i - 1, i >= 1 && i <= len(opts)
	}
	for i, o := range opts {
		if strings.EqualFold(o.Label, text) {
			return i, true
		}
	}
	return 0, false
}

// reset starts a new conversation for d.Key and tells the room, once per
// event: a reset is stored like any inbound event, with its notice.
func (it *intake) reset(ctx context.Context, d Decision, in Inbound, log *slog.Logger) error {
	t := d.ReplyTarget(in)
	notice := Delivery{
		MessageID: chat.MessageID("notice-reset-" + string(in.Room.Platform) + "-" + string(in.Key)),
		Bot:       d.Key.Bot,
		Target:    t,
		Payload:   chat.Text{Text: "Started a new conversation."},
		CreatedAt: it.now(),
	}
	stored, created, err := it.store.ResetConversation(ctx, d.Key, in, notice)
	if err != nil {
		return fmt.Errorf("reset conversation: %w", err)
	}
	if !created {
		log.Debug("duplicate reset; already done")
		it.metrics.Inbound(in.Room.Platform, d.Key.Bot, "duplicate")
		return nil
	}
	it.metrics.Inbound(in.Room.Platform, d.Key.Bot, "stored")
	log.Info("conversation reset", LogConversation, stored.Conversation, LogBot, d.Key.Bot)
	it.poster.Deliver(stored)
	return nil
}
