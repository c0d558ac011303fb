package slack

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"

	slackapi "github.com/slack-go/slack"

	"github.com/botbridge/botbridge/bridge"
)

// homeEvent is app_home_opened.
type homeEvent struct {
	User    string `json:"user"`
	Channel string `json:"channel"`
	Tab     string `json:"tab"`
	View    *struct {
		PrivateMetadata string `json:"private_metadata"`
	} `json:"view"`
}

// homeOpened returns the work that shows the Home tab to a person who
// opened it, once the event is acknowledged: the name and description of
// the bot the route of the person's DM names (Config.Bots), and how to talk
// to it (Config.HomeText, or the DM, mentions and the commands). The view's
// private_metadata holds a hash of what it shows, so that opening the tab
// again publishes nothing new.
func (a *Adapter) homeOpened(ws *workspace, cb eventCallback) func(context.Context) {
	var ev homeEvent
	if err := json.Unmarshal(cb.Event, &ev); err != nil || ev.Tab != "home" || ev.User == "" {
		return nil
	}
	bot := ""
	if a.cfg.Router != nil && ev.Channel != "" {
		route, ok := a.cfg.Router.Match(bridge.Inbound{Room: bridge.RoomKey{Platform: Platform, Room: ws.roomID(ev.Channel)},
			DM: true, Sender: bridge.Sender{ID: ev.User}, Team: ws.team()})
		if ok {
			bot = route.Bot
		}
	}
	blocks, hash := a.homeView(bot)
	if ev.View != nil && ev.View.PrivateMetadata == hash {
		return nil
	}
	room := ws.roomID(ev.Channel)
	return func(ctx context.Context) {
		req := slackapi.PublishViewContextRequest{UserID: ev.User, View: slackapi.HomeTabViewRequest{
			Type: slackapi.VTHomeTab, Blocks: slackapi.Blocks{BlockSet: slackBlocks(blocks)}, PrivateMetadata: hash}}
		err := a.optional(ctx, ws, "views.publish", room, func(ctx context.Context) error {
			_, err := ws.api.PublishViewContext(ctx, req)
			return err
		})
		if err != nil {
			a.logs.Warn(a.log, "home", "could not publish the Home tab", bridge.LogErr, err)
		}
	}
}

// homeView returns the blocks of the Home tab for bot (empty: none known)
// and a hash of them.
func (a *Adapter) homeView(bot string) ([]block, string) {
	id := a.cfg.Bots[bot]
	name := nonEmpty(id.Name, bot, "This app")
	blocks := []block{{"type": "header", "text": block{"type": "plain_text", "text": truncate(name, 150)}}}
	if id.Description != "" {
		blocks = append(blocks, section(truncate(mrkdwn(id.Description), maxSectionRunes)))
	}
	how := mrkdwn(a.cfg.HomeText)
	if strings.TrimSpace(a.cfg.HomeText) == "" {
		how = "Send me a direct message in the *Messages* tab, or mention me in a channel I am in (invite me with `/invite`)."
	}
	blocks = append(blocks, block{"type": "divider"}, section(truncate("*How to talk to me*\n"+how, maxSectionRunes)))
	if len(a.cfg.Commands) > 0 {
		var b strings.Builder
		b.WriteString("*Commands*")
		for _, c := range a.cfg.Commands {
			b.WriteString("\n• `" + escape(c.Name) + "`")
			if c.Description != "" {
				b.WriteString(" — " + escape(c.Description))
			}
		}
		blocks = append(blocks, section(truncate(b.String(), maxSectionRunes)))
	}
	raw, _ := json.Marshal(blocks)
	sum := sha256.Sum256(raw)
	return blocks, "botbridge-home-" + hex.EncodeToString(sum[:8])
}
