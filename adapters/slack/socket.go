package slack

import (
	"context"
	"errors"
	"io"
	"log"
	"time"

	slackapi "github.com/slack-go/slack"
	"github.com/slack-go/slack/socketmode"

	"github.com/botbridge/botbridge/bridge"
	"github.com/botbridge/botbridge/bridge/retry"
)

// shortConnection is how long a Socket Mode connection must last to count
// as healthy; connections that end sooner, one after another, make the
// adapter wait before reconnecting so that it never spins.
const shortConnection = 30 * time.Second

// runSocket receives events over Socket Mode until ctx ends. slack-go's
// client reconnects on its own after a disconnect request, a dropped socket
// or a failed apps.connections.open; it gives up only when Slack refuses the
// app token, and this loop then tries again with a slowly growing backoff.
func (a *Adapter) runSocket(ctx context.Context, h bridge.Handler) {
	client := socketmode.New(a.api, socketmode.OptionLog(log.New(io.Discard, "", 0)))
	done := make(chan struct{})
	go func() {
		defer close(done)
		b := a.backoff()
		for ctx.Err() == nil {
			err := client.RunContext(ctx)
			if ctx.Err() != nil {
				return
			}
			a.connected.Store(false)
			err = a.socketError(err)
			d := b.Next(nil)
			a.logs.Warn(a.log, "socket-run", "Socket Mode stopped; reconnecting", bridge.LogErr, err, bridge.LogWait, d)
			if retry.Wait(ctx, d) != nil {
				return
			}
		}
	}()
	var (
		opened time.Time
		short  int
		lanes  = newLanes()
	)
	defer lanes.wait()
	for {
		var ev socketmode.Event
		select {
		case <-ctx.Done():
			<-done
			a.connected.Store(false)
			return
		case ev = <-client.Events:
		}
		switch ev.Type {
		case socketmode.EventTypeConnecting:
			if a.connected.Swap(false) { // a connection just ended
				if time.Since(opened) < shortConnection {
					short++
				} else {
					short = 0
				}
			}
			if short > 1 {
				d := min(time.Duration(short-1)*time.Second, time.Minute)
				a.logs.Warn(a.log, "socket-flap", "Socket Mode connections keep dropping; waiting before reconnecting", bridge.LogWait, d)
				if retry.Wait(ctx, d) != nil {
					continue
				}
			}
		case socketmode.EventTypeConnected:
			opened = time.Now()
			a.connected.Store(true)
			if a.health.clear(func(k string) bool { return k == "socket" }) {
				a.log.Info("Socket Mode connected again")
			} else {
				a.log.Debug("Socket Mode connected")
			}
		case socketmode.EventTypeConnectionError:
			if ce, ok := ev.Data.(*slackapi.ConnectionErrorEvent); ok {
				a.logs.Warn(a.log, "socket-connect", "cannot open a Socket Mode connection; retrying", bridge.LogErr, a.socketError(ce.ErrorObj), logAttempt, ce.Attempt)
			}
		case socketmode.EventTypeDisconnect:
			a.log.Debug("Slack asked to reconnect")
		case socketmode.EventTypeEventsAPI:
			if ev.Request == nil {
				continue
			}
			req := ev.Request
			e := decodeEnvelope(req.Payload)
			lanes.run(e.lane, func() {
				after, err := a.handleEvent(ctx, h, e)
				if err != nil {
					// Not acknowledged: Slack delivers it again.
					a.logs.Warn(a.log, "handle", "event not stored; Slack will deliver it again", bridge.LogErr, err,
						logEnvelope, req.EnvelopeID, logAttempt, req.RetryAttempt)
					return
				}
				a.ack(ctx, client, req, nil)
				if after != nil {
					a.goBackground(after)
				}
			})
		case socketmode.EventTypeInteractive:
			if ev.Request == nil {
				continue
			}
			req := ev.Request
			lanes.run(channelOf(req.Payload), func() {
				after, err := a.handleInteraction(ctx, h, req.Payload)
				if err != nil {
					a.logs.Warn(a.log, "handle", "click not stored", bridge.LogErr, err, logEnvelope, req.EnvelopeID)
					return
				}
				a.ack(ctx, client, req, nil)
				if after != nil {
					a.goBackground(after)
				}
			})
		case socketmode.EventTypeSlashCommand:
			if ev.Request == nil {
				continue
			}
			var answer any
			if c, ok := ev.Data.(slackapi.SlashCommand); ok {
				if ans := a.handleCommand(ctx, h, c); ans != nil {
					answer = ans
				}
			}
			a.ack(ctx, client, ev.Request, answer)
		}
	}
}

// ackWait bounds the wait to queue an acknowledgement. slack-go sends them
// only while connected; an ack that cannot be queued is dropped, and Slack
// delivers the event again, which the store de-duplicates.
const ackWait = time.Second

func (a *Adapter) ack(ctx context.Context, client *socketmode.Client, req *socketmode.Request, payload any) {
	ctx, cancel := context.WithTimeout(ctx, ackWait)
	defer cancel()
	if err := client.AckCtx(ctx, req.EnvelopeID, payload); err != nil {
		a.logs.Warn(a.log, "ack", "could not acknowledge an envelope; Slack will deliver it again", logEnvelope, req.EnvelopeID, bridge.LogErr, err)
	}
}

// socketError explains a Socket Mode failure; refusals of the app token
// are kept for Ready.
func (a *Adapter) socketError(err error) error {
	if err == nil {
		return errors.New("connection ended")
	}
	code := err.Error()
	var se slackapi.SlackErrorResponse
	if errors.As(err, &se) {
		code = se.Err
	}
	if authCodes[code] {
		problem := errors.New("slack: " + code + ": check slack.app_token (an app-level token with the connections:write scope, and Socket Mode enabled in the app)")
		if a.health.set("socket", problem) {
			a.log.Error("Slack refused the app token; fix the configuration", bridge.LogErr, problem)
		}
		return problem
	}
	return err
}
