package slack

import (
	"context"

	slackapi "github.com/slack-go/slack"

	"github.com/botbridge/botbridge/bridge"
)

// thinkingStatus is the assistant thread status shown while the bot works.
const thinkingStatus = "is thinking…"

// Typing implements bridge.Typer: it shows (on) or hides (off) that the bot
// is working on an answer to the message t.MessageID: the assistant thread
// status in threads when the app has Slack's agent features, else a
// reaction on the message. It does I/O; its errors are for logging only.
func (a *Adapter) Typing(ctx context.Context, t bridge.ReplyTarget, on bool) error {
	if t.Room.Room == "" {
		return nil
	}
	pl, err := a.place(t.Room)
	if err != nil {
		return err
	}
	switch a.thinking(pl.ws, t) {
	case ThinkingStatus:
		thread := nonEmpty(t.Room.Thread, t.MessageID)
		if thread == "" {
			return nil
		}
		status := ""
		if on {
			status = thinkingStatus
		}
		err := a.optional(ctx, pl.ws, "assistant.threads.setStatus", pl.room, func(ctx context.Context) error {
			return pl.ws.api.SetAssistantThreadsStatusContext(ctx, slackapi.AssistantThreadsSetStatusParameters{
				ChannelID: pl.channel, ThreadTS: thread, Status: status})
		})
		if err == nil || a.cfg.Thinking == ThinkingStatus || ctx.Err() != nil {
			return err
		}
		if !a.statusFail.Swap(true) {
			a.log.Info("the assistant thread status is not available; showing a reaction instead", bridge.LogErr, err)
		}
		return a.react(ctx, pl, t, on)
	case ThinkingReaction:
		return a.react(ctx, pl, t, on)
	}
	return nil
}

// thinking picks the indicator for t in ws.
func (a *Adapter) thinking(ws *workspace, t bridge.ReplyTarget) Thinking {
	switch a.cfg.Thinking {
	case ThinkingAuto:
		if t.Room.Thread != "" && !a.statusFail.Load() && a.whoami(ws).hasScope("assistant:write") {
			return ThinkingStatus
		}
		return ThinkingReaction
	default:
		return a.cfg.Thinking
	}
}

func (a *Adapter) react(ctx context.Context, pl place, t bridge.ReplyTarget, on bool) error {
	if t.MessageID == "" {
		return nil
	}
	item := slackapi.NewRefToMessage(pl.channel, t.MessageID)
	var err error
	if on {
		err = a.optional(ctx, pl.ws, "reactions.add", pl.room, func(ctx context.Context) error {
			return pl.ws.api.AddReactionContext(ctx, a.cfg.ThinkingEmoji, item)
		})
	} else {
		err = a.optional(ctx, pl.ws, "reactions.remove", pl.room, func(ctx context.Context) error {
			return pl.ws.api.RemoveReactionContext(ctx, a.cfg.ThinkingEmoji, item)
		})
	}
	switch errorCode(err) {
	case "already_reacted", "no_reaction", "message_not_found":
		return nil
	}
	return err
}
