package slack

import (
	"context"
	"errors"
	"sync"

	slackapi "github.com/slack-go/slack"

	"github.com/botbridge/botbridge/bridge"
	"github.com/botbridge/botbridge/chat"
)

// streamingSuffix marks a posted message that is still growing.
const streamingSuffix = " …"

// noStreamCodes say that Slack's chat streaming is not available to the app
// at all; the adapter then posts and updates streamed replies.
var noStreamCodes = map[string]bool{
	"unknown_method": true, "method_deprecated": true, "not_allowed": true, "feature_not_enabled": true,
	"not_supported": true, "team_not_allowed": true, "enterprise_not_allowed": true, "not_allowed_token_type": true,
}

// streamSet holds the replies being streamed, by platform id.
type streamSet struct {
	mu sync.Mutex
	m  map[string]*liveStream
}

// liveStream is one streamed reply. The bridge calls a stream's methods one
// at a time, on its room's queue; mu orders them for the race detector
// across the queue's goroutines.
type liveStream struct {
	mu     sync.Mutex
	native bool   // a chat.startStream message, else a posted one updated
	text   string // what Slack shows so far
}

func (s *streamSet) put(id string, ls *liveStream) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = make(map[string]*liveStream)
	}
	s.m[id] = ls
}

func (s *streamSet) get(id string) *liveStream {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[id]
}

func (s *streamSet) take(id string) *liveStream {
	s.mu.Lock()
	defer s.mu.Unlock()
	ls := s.m[id]
	delete(s.m, id)
	return ls
}

// StartStream implements bridge.Streamer: in a thread, it starts one of
// Slack's streamed messages (chat.startStream) with text; elsewhere, or when
// the app cannot stream, it posts text as a message that AppendStream
// updates. It blocks on Slack and returns the message's ts.
func (a *Adapter) StartStream(ctx context.Context, out bridge.Outbound, text string) (string, error) {
	pl, err := a.place(out.Room)
	if err != nil {
		return "", err
	}
	self := a.whoami(pl.ws)
	channel := pl.channel
	dm := len(channel) > 0 && channel[0] == 'D'
	if !a.cfg.NoStreaming && !a.noStream.Load() && out.Room.Thread != "" && self.teamID != "" && (dm || out.ReplyToUser != "") {
		opts := []slackapi.MsgOption{slackapi.MsgOptionMarkdownText(text), slackapi.MsgOptionTS(out.Room.Thread)}
		if out.ReplyToUser != "" {
			opts = append(opts, slackapi.MsgOptionRecipientUserID(out.ReplyToUser), slackapi.MsgOptionRecipientTeamID(self.teamID))
		}
		var ts string
		err := a.postCall(ctx, pl.ws, "chat.startStream", pl.room, func(ctx context.Context) error {
			var err error
			_, ts, err = pl.ws.api.StartStreamContext(ctx, channel, opts...)
			return err
		})
		switch code := errorCode(err); {
		case err == nil:
			a.streams.put(ts, &liveStream{native: true, text: text})
			return ts, nil
		case ctx.Err() != nil || code == "":
			return "", err
		case noStreamCodes[code]:
			if !a.noStream.Swap(true) {
				a.log.Info("Slack's chat streaming is not available to this app; streamed replies are posted and updated", logCode, code)
			}
		default:
			a.log.Debug("cannot stream this reply; posting and updating it", logCode, code)
		}
	}
	ts, err := a.postMessage(ctx, pl, out.Bot, post{text: mrkdwn(text) + streamingSuffix}, metadata(out.ID, 0, 1))
	if err != nil {
		return "", err
	}
	a.streams.put(ts, &liveStream{text: text})
	return ts, nil
}

// AppendStream implements bridge.Streamer: it adds text to the streamed
// reply platformID, blocking on Slack.
func (a *Adapter) AppendStream(ctx context.Context, room bridge.RoomKey, platformID, text string) error {
	ls := a.streams.get(platformID)
	if ls == nil {
		return errors.New("slack: append to a stream that is not open")
	}
	pl, err := a.place(room)
	if err != nil {
		return err
	}
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if ls.native {
		err := a.call(ctx, pl.ws, "chat.appendStream", pl.room, func(ctx context.Context) error {
			_, _, err := pl.ws.api.AppendStreamContext(ctx, pl.channel, platformID, slackapi.MsgOptionMarkdownText(text))
			return err
		})
		if errorCode(err) != "message_not_in_streaming_state" {
			if err == nil {
				ls.text += text
			}
			return err
		}
		// Slack ended the stream (it lives a few minutes): go on updating.
		ls.native = false
	}
	if err := a.update(ctx, pl, platformID, post{text: mrkdwn(ls.text+text) + streamingSuffix}); err != nil {
		return err
	}
	ls.text += text
	return nil
}

// StopStream implements bridge.Streamer: it ends the streamed reply and
// replaces its content with the final payload when that differs from what
// was streamed. It blocks on Slack.
func (a *Adapter) StopStream(ctx context.Context, room bridge.RoomKey, platformID string, final chat.Payload) (bridge.Parts, error) {
	ls := a.streams.take(platformID)
	if ls != nil {
		ls.mu.Lock()
		defer ls.mu.Unlock()
	}
	if ls != nil && ls.native {
		pl, err := a.place(room)
		if err != nil {
			return bridge.Parts{platformID}, err
		}
		err = a.call(ctx, pl.ws, "chat.stopStream", pl.room, func(ctx context.Context) error {
			_, _, err := pl.ws.api.StopStreamContext(ctx, pl.channel, platformID)
			return err
		})
		if err != nil && errorCode(err) != "message_not_in_streaming_state" {
			return bridge.Parts{platformID}, err
		}
		if textOf(final) == ls.text {
			return bridge.Parts{platformID}, nil
		}
	}
	return a.Edit(ctx, room, bridge.Parts{platformID}, final)
}

func textOf(p chat.Payload) string {
	switch p := p.(type) {
	case chat.Text:
		return p.Text
	case chat.Markdown:
		return p.Markdown
	}
	return "\x00" // never equal to streamed text
}
