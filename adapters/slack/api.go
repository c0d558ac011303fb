package slack

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	slackapi "github.com/slack-go/slack"

	"github.com/botbridge/botbridge/bridge"
	"github.com/botbridge/botbridge/bridge/retry"
)

// callTimeout bounds one Web API call, so that a call Slack never answers
// cannot hold a room's queue.
const callTimeout = 30 * time.Second

// Slack error codes the adapter treats specially.
var (
	// authCodes say the token is not accepted: nothing works until the
	// configuration is fixed.
	authCodes = map[string]bool{
		"invalid_auth": true, "token_revoked": true, "token_expired": true, "account_inactive": true,
		"not_authed": true, "not_allowed_token_type": true, "org_login_required": true, "team_access_not_granted": true,
	}
	// noAccessCodes say that the bot cannot post in the conversation, for
	// now: it is not (any more) a member (removed, or never invited; Slack
	// answers channel_not_found for a private channel the bot is not in,
	// as for one deleted), the channel is archived (which also removes the
	// bot), or a setting or an admin keeps the bot from posting there.
	// People in the workspace can change that (invite the bot, unarchive
	// the channel, let the bot post), so these refusals are wrapped with
	// bridge.NoAccess: the bridge tries the reply again for a bounded time
	// before it gives it up. The values say what to do; %s is the channel.
	noAccessCodes = map[string]string{
		"not_in_channel":                      "invite the bot to channel %s (/invite @bot)",
		"channel_not_found":                   "channel %s is gone, or it is private and the bot is not in it: invite the bot (/invite @bot)",
		"invalid_channel":                     "channel %s is gone, or it is private and the bot is not in it: invite the bot (/invite @bot)",
		"is_archived":                         "channel %s is archived: unarchive it, then invite the bot again",
		"restricted_action":                   "a setting of the workspace or of channel %s keeps the bot from posting there",
		"restricted_action_read_only_channel": "channel %s is read-only: let the bot post there (channel settings)",
		"posting_to_channel_denied":           "the bot may not post in channel %s: let it post there (channel settings)",
		"restricted_action_thread_locked":     "the thread in channel %s is locked: unlock it",
		"ekm_access_denied":                   "the workspace's admins suspended posting in channel %s",
		"messages_tab_disabled":               "the app's Messages tab is off: turn it on (App Home) for the bot to answer in DMs",
	}
	// permanentCodes say that the same call will never succeed: the
	// request itself is refused (its content, or what it asks of the
	// message), so they are wrapped with bridge.Permanent. Replies are
	// rendered within Slack's limits (render), so a size refusal here is
	// one that splitting cannot fix.
	permanentCodes = map[string]bool{
		"msg_too_long": true, "msg_blocks_too_long": true, "no_text": true,
		"invalid_blocks": true, "invalid_blocks_format": true, "invalid_attachments": true, "too_many_attachments": true,
		"attachment_payload_limit_exceeded": true, "too_many_contact_cards": true, "markdown_text_conflict": true,
		"invalid_metadata_format": true, "invalid_metadata_schema": true, "metadata_too_large": true,
		"restricted_action_thread_only_channel": true, "restricted_action_non_threadable_channel": true,
		"cant_update_message": true, "cant_delete_message": true,
		"message_not_found": true, "edit_window_closed": true, "invalid_arguments": true, "user_not_in_channel": true,
		"team_not_found": true, "file_not_found": true, "file_deleted": true, "cannot_reply_to_message": true,
		"as_user_not_supported": true, "duplicate_channel_not_found": true, "invalid_ts_latest": true,
		"file_type_not_allowed": true, "file_uploads_except_images_disabled": true,
		"slack_connect_file_link_sharing_blocked": true, "slack_connect_canvas_sharing_blocked": true,
		"slack_connect_lists_sharing_blocked": true,
	}
)

// APIError is a Web API call Slack refused, with what to do about it when
// the adapter knows.
type APIError struct {
	// Method is the Web API method, such as "chat.postMessage".
	Method string
	// Code is Slack's error code, such as "missing_scope".
	Code string
	// Fix says how to fix the configuration, when that is the cause.
	Fix string
	// Err is slack-go's error.
	Err error
}

func (e *APIError) Error() string {
	s := "slack: " + e.Method + ": " + e.Code
	if e.Fix != "" {
		s += ": " + e.Fix
	}
	return s
}

// Unwrap returns slack-go's error.
func (e *APIError) Unwrap() error { return e.Err }

// errorCode returns Slack's error code of err, or "".
func errorCode(err error) string {
	var se slackapi.SlackErrorResponse
	if errors.As(err, &se) {
		return se.Err
	}
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.Code
	}
	return ""
}

// call runs one Web API call in workspace ws: it bounds it in time, waits
// out Slack's rate limits (Retry-After) and tries again, and turns Slack's
// refusals into errors that say what to fix and whether retrying can help.
// channel names the conversation the call acts in (the bridge's room id),
// for not_in_channel; posts are paced per channel when paced.
func (a *Adapter) call(ctx context.Context, ws *workspace, method, channel string, fn func(ctx context.Context) error) error {
	return a.callOpt(ctx, ws, method, channel, false, true, fn)
}

// postCall is call for methods that add a message to channel: paced.
func (a *Adapter) postCall(ctx context.Context, ws *workspace, method, channel string, fn func(ctx context.Context) error) error {
	return a.callOpt(ctx, ws, method, channel, true, true, fn)
}

// optional is call for features the bot works without (reactions, status):
// their failures are logged, never reported by Ready.
func (a *Adapter) optional(ctx context.Context, ws *workspace, method, channel string, fn func(ctx context.Context) error) error {
	return a.callOpt(ctx, ws, method, channel, false, false, fn)
}

func (a *Adapter) callOpt(ctx context.Context, ws *workspace, method, channel string, paced, vital bool, fn func(ctx context.Context) error) error {
	for attempt := 1; ; attempt++ {
		if paced {
			if err := a.pace.wait(ctx, channel); err != nil {
				return err
			}
		}
		cctx, cancel := context.WithTimeout(ctx, callTimeout)
		err := fn(cctx)
		cancel()
		var rl *slackapi.RateLimitedError
		if errors.As(err, &rl) {
			d := max(rl.RetryAfter, time.Second)
			if a.cfg.OnRateLimit != nil {
				a.cfg.OnRateLimit(method, d)
			}
			a.logs.Warn(a.log, "ratelimited:"+method, "Slack rate limit; waiting", logMethod, method, bridge.LogWait, d, logAttempt, attempt)
			if paced {
				a.pace.delay(channel, d)
				continue
			}
			if err := retry.Wait(ctx, d); err != nil {
				return err
			}
			continue
		}
		return a.check(ws, method, channel, vital, err)
	}
}

// check classifies the result of a call in ws and keeps the adapter's
// health. Slack's refusals become *APIError, wrapped with bridge.NoAccess
// when the bot cannot post in the channel (noAccessCodes) and with
// bridge.Permanent when the call can never succeed (permanentCodes); any
// other refusal (a configuration to fix, Slack's own trouble) is worth
// retrying. A workspace installed through OAuth that refuses its token is
// logged, not kept in the health: Slack tells of an uninstall with an
// event, and the other workspaces work on.
func (a *Adapter) check(ws *workspace, method, channel string, vital bool, err error) error {
	if err == nil {
		if a.health.clear(func(k string) bool {
			return k == "auth" || k == "method:"+method || channel != "" && k == "channel:"+channel
		}) {
			a.log.Info("Slack accepts the adapter's calls again", logMethod, method)
		}
		return nil
	}
	var se slackapi.SlackErrorResponse
	if !errors.As(err, &se) {
		return fmt.Errorf("slack: %s: %w", method, err)
	}
	ae := &APIError{Method: method, Code: se.Err, Err: err}
	var out error = ae
	key := ""
	switch {
	case authCodes[se.Err] && ws != nil && ws.id != "" && method != "apps.connections.open":
		ae.Fix = "the app lost access to workspace " + ws.id + ": install it there again (/slack/install)"
		a.logs.Warn(a.log, "auth:"+ws.id, "Slack refused a workspace's token", logMethod, method, logTeam, ws.id, bridge.LogErr, ae)
		return ae
	case authCodes[se.Err]:
		token := "slack.bot_token"
		if method == "apps.connections.open" {
			token = "slack.app_token"
		}
		ae.Fix = "check " + token + " (reinstall the app to get a new one if it was revoked)"
		key = "auth"
	case se.Err == "missing_scope":
		needed := se.Needed
		if needed == "" {
			needed = "the scope the method needs"
		}
		ae.Fix = "add the " + needed + " scope to the Slack app (OAuth & Permissions) and reinstall it"
		key = "method:" + method
	case noAccessCodes[se.Err] != "":
		ae.Fix = strings.ReplaceAll(noAccessCodes[se.Err], "%s", nonEmpty(channel, "?"))
		if se.Err != "not_in_channel" {
			return bridge.NoAccess(ae)
		}
		// Kept on /readyz until the bot posts there again, as the fix is
		// simple and only people can make it.
		key, out = "channel:"+channel, bridge.NoAccess(ae)
	case permanentCodes[se.Err]:
		if msgs := se.ResponseMetadata.Messages; len(msgs) > 0 {
			ae.Fix = strings.Join(msgs, "; ")
		}
		return bridge.Permanent(ae)
	default:
		return ae
	}
	problem := fmt.Errorf("slack: %s: %s", se.Err, ae.Fix)
	if !vital {
		a.logs.Warn(a.log, key, "Slack refused a call", logMethod, method, bridge.LogErr, problem)
		return out
	}
	if a.health.set(key, problem) {
		a.log.Error("Slack refused a call; fix the configuration", logMethod, method, logCode, se.Err, bridge.LogErr, problem)
	} else {
		a.log.Debug("Slack refused a call", logMethod, method, logCode, se.Err)
	}
	return out
}

// pacer spaces posts in each channel by interval, in the order they ask,
// and holds a channel after Slack rate-limited it.
type pacer struct {
	interval time.Duration
	mu       sync.Mutex
	next     map[string]time.Time // the next free slot of each channel
}

// wait blocks until the channel's next slot and reserves it.
func (p *pacer) wait(ctx context.Context, channel string) error {
	p.mu.Lock()
	if p.next == nil {
		p.next = make(map[string]time.Time)
	}
	now := time.Now()
	at := p.next[channel]
	if at.Before(now) {
		at = now
	}
	p.next[channel] = at.Add(p.interval)
	if len(p.next) > 4096 {
		for ch, t := range p.next {
			if t.Before(now) {
				delete(p.next, ch)
			}
		}
	}
	p.mu.Unlock()
	return retry.Wait(ctx, time.Until(at))
}

// delay keeps the channel's next slot at least d away.
func (p *pacer) delay(channel string, d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.next == nil {
		p.next = make(map[string]time.Time)
	}
	if at := time.Now().Add(d); p.next[channel].Before(at) {
		p.next[channel] = at
	}
}
