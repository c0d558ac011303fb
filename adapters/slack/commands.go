package slack

import (
	"context"
	"fmt"
	"strings"

	slackapi "github.com/slack-go/slack"

	"github.com/botbridge/botbridge/bridge"
)

// commandAnswer is the body of a slash command's acknowledgement: a
// message only the person sees, or nothing.
type commandAnswer struct {
	ResponseType string `json:"response_type"`
	Text         string `json:"text"`
}

// handleCommand hands a slash command to h: its text goes to the bot in the
// conversation the route gives the channel or DM, and the route says where
// the answers go (routes[].command_replies). It returns what to answer in
// the acknowledgement, which must leave within Slack's 3 seconds: nothing
// once the command is stored (the answers come as messages), or a line
// that says why the command was not taken. Slack does not deliver a
// command again, so the acknowledgement always goes, and the key is the
// command's trigger_id.
func (a *Adapter) handleCommand(ctx context.Context, h bridge.Handler, c slackapi.SlashCommand) *commandAnswer {
	conf, known := a.commands[c.Command]
	if !known {
		a.logs.Warn(a.log, "command:"+c.Command, "a slash command botbridge does not know; add it to slack.commands", "command", c.Command)
		return &commandAnswer{ResponseType: "ephemeral", Text: "botbridge does not know " + c.Command + ": add it to slack.commands."}
	}
	ws := a.eventWorkspace(c.TeamID, c.EnterpriseID)
	if ws == nil || c.ChannelID == "" || c.UserID == "" {
		return &commandAnswer{ResponseType: "ephemeral", Text: "The app is not installed in this workspace."}
	}
	// Names and storing share one deadline, for the acknowledgement to
	// leave in time.
	ctx, cancel := context.WithTimeout(ctx, handleTimeout)
	defer cancel()
	self := a.whoami(ws)
	id := nonEmpty(c.TriggerID, fmt.Sprintf("%d", a.now().UnixNano()))
	text := strings.TrimSpace(c.Text)
	if text == "" && !conf.Reset {
		text = c.Command
	}
	in := bridge.Inbound{
		Key:     bridge.EventKey(nonEmpty(c.TeamID, self.teamID) + "/" + c.ChannelID + "/command/" + id),
		Room:    bridge.RoomKey{Platform: Platform, Room: ws.roomID(c.ChannelID)},
		DM:      strings.HasPrefix(c.ChannelID, "D"),
		Text:    text,
		Command: &bridge.Command{Name: c.Command, Reset: conf.Reset, Bot: conf.Bot},
		Time:    a.now(),
		Team:    ws.team(),
	}
	lctx, lcancel := context.WithTimeout(ctx, a.cfg.LookupWait)
	u := a.user(lctx, ws, c.UserID)
	in.Sender = bridge.Sender{ID: c.UserID, Name: nonEmpty(u.name, c.UserName), AvatarURL: u.avatar, Bot: u.bot}
	if !in.DM {
		if name := nonEmpty(a.channelName(lctx, ws, c.ChannelID), strings.TrimPrefix(c.ChannelName, "#")); name != "" && name != "directmessage" && name != "privategroup" {
			in.RoomName = "#" + name
		}
	}
	lcancel()
	if err := h.HandleInbound(ctx, in); err != nil {
		a.logs.Warn(a.log, "handle", "slash command not stored", bridge.LogErr, err, "command", c.Command)
		return &commandAnswer{ResponseType: "ephemeral", Text: "botbridge could not take the command right now; try again in a moment."}
	}
	return nil
}
