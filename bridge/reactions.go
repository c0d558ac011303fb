package bridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/botbridge/botbridge/chat"
)

// Post is a bot message as the bridge posted it on a platform: the delivery
// one of its parts belongs to. The store finds it by the platform id of any
// of its parts, so that a reaction to the message reaches the bot in the
// conversation that sent it.
type Post struct {
	// MessageID is the Chat API id of the bot message.
	MessageID    chat.MessageID
	Conversation int64
	Bot          string
	// Target is where it was posted, thread included.
	Target ReplyTarget
}

// reaction stores a person's reaction to a message of the bot in the
// conversation of that message (the conversation's generation that sent
// it, even after a reset), so that feedback such as 👍 or 👎 reaches the bot
// where the message came from. A reaction to any other message costs one
// indexed read and is ignored. The route of the room must let the person
// talk to a bot (Router.Admits); its mention policy does not apply.
func (it *intake) reaction(ctx context.Context, in Inbound, log *slog.Logger) error {
	if in.Reaction.MessageID == "" {
		log.Debug("reaction without a message ignored")
		return nil
	}
	p, err := it.store.Post(ctx, in.Room.Top(), in.Reaction.MessageID)
	switch {
	case errors.Is(err, ErrNotFound):
		log.Debug("reaction ignored", "reason", errNoPost)
		return nil
	case err != nil:
		return fmt.Errorf("handle reaction: %w", err)
	}
	route, ok := it.router.Match(in)
	if !ok {
		log.Debug("no route for room; reaction ignored")
		return nil
	}
	if reason, refused := route.refuses(in); refused {
		log.Debug("reaction ignored", "reason", reason)
		return nil
	}
	// The reaction belongs where the message was posted: its thread.
	in.Room = p.Target.Room
	r := *in.Reaction
	r.ChatMessageID = p.MessageID
	in.Reaction = &r
	item, created, err := it.store.EnqueueInboundTo(ctx, p.Conversation, in)
	if err != nil {
		return fmt.Errorf("handle reaction: %w", err)
	}
	if !created {
		log.Debug("duplicate event; already stored")
		it.metrics.Inbound(in.Room.Platform, p.Bot, "duplicate")
		return nil
	}
	it.metrics.Inbound(in.Room.Platform, p.Bot, "stored")
	log.Debug("reaction stored", LogConversation, item.Conversation, LogBot, p.Bot, LogMessage, string(p.MessageID))
	it.sender.Queue(item)
	return nil
}
