package slack

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	slackapi "github.com/slack-go/slack"

	"github.com/botbridge/botbridge/bridge"
	"github.com/botbridge/botbridge/chat"
)

// metaEventType marks the bridge's posts in Slack's message metadata; the
// payload carries the Chat API message id and the part, so that after a
// crash the adapter finds what it had posted (FindSent).
const metaEventType = "botbridge_reply"

// findWindow is how far before a bot message's time FindSent looks, for the
// clocks of Botpress and Slack to disagree a little.
const findWindow = 5 * time.Minute

func metadata(id chat.MessageID, part, parts int) slackapi.SlackMetadata {
	return slackapi.SlackMetadata{EventType: metaEventType, EventPayload: map[string]any{"id": string(id), "part": part, "parts": parts}}
}

func slackBlocks(bs []block) []slackapi.Block {
	out := make([]slackapi.Block, len(bs))
	for i, b := range bs {
		out[i] = b
	}
	return out
}

// place is a room of the bridge resolved to its workspace: where a call
// acts.
type place struct {
	ws *workspace
	// room is the bridge's room id (pacing, health, logs); channel and
	// thread are Slack's.
	room    string
	channel string
	thread  string
}

// place resolves room; a room of a workspace the app left fails with
// bridge.Permanent.
func (a *Adapter) place(room bridge.RoomKey) (place, error) {
	ws, channel, err := a.split(room.Room)
	if err != nil {
		return place{}, err
	}
	return place{ws: ws, room: room.Room, channel: channel, thread: room.Thread}, nil
}

// Send implements bridge.Adapter: it renders out's payload into one or more
// Slack messages and posts those out.Posted does not hold into out.Room
// (thread included), paced per channel and waiting out rate limits, with
// the workspace's token and under the bot's name and icon (Config.Bots).
// An ephemeral out is posted with chat.postEphemeral to out.ReplyToUser,
// its files as links. It returns the ts of each part (or the file id of an
// upload Slack has not shared yet); on failure, the parts posted so far.
// Refusals that retrying cannot fix are wrapped with bridge.Permanent.
func (a *Adapter) Send(ctx context.Context, out bridge.Outbound) (bridge.Parts, error) {
	if out.Room.Room == "" {
		return nil, bridge.Permanent(errors.New("slack: send: no channel"))
	}
	pl, err := a.place(out.Room)
	if err != nil {
		return nil, err
	}
	posts := render(out.Payload)
	ids := make(bridge.Parts, len(posts))
	if len(out.Posted) == len(posts) {
		copy(ids, out.Posted)
	}
	for i, p := range posts {
		if ids[i] != "" {
			continue
		}
		id, err := a.sendPost(ctx, pl, out, p, i, len(posts))
		if err != nil {
			return ids, err
		}
		ids[i] = id
	}
	return ids, nil
}

func (a *Adapter) sendPost(ctx context.Context, pl place, out bridge.Outbound, p post, part, parts int) (string, error) {
	if out.Ephemeral && out.ReplyToUser != "" {
		return a.postEphemeral(ctx, pl, out, p.withLinks())
	}
	if len(p.media) > 0 {
		return a.upload(ctx, pl, out, p, part, parts)
	}
	ts, err := a.postMessage(ctx, pl, out.Bot, p, metadata(out.ID, part, parts))
	if err != nil && imageRefused(err) {
		a.log.Info("Slack cannot fetch an image of the bot; uploading it instead", bridge.LogRoom, out.Room.String())
		return a.upload(ctx, pl, out, p.imagesAsMedia(), part, parts)
	}
	return ts, err
}

// as returns the options that post as bot: its name and icon.
func (a *Adapter) as(bot string) []slackapi.MsgOption {
	id := a.cfg.Bots[bot]
	var opts []slackapi.MsgOption
	if id.Name != "" {
		opts = append(opts, slackapi.MsgOptionUsername(id.Name))
	}
	if id.IconURL != "" {
		opts = append(opts, slackapi.MsgOptionIconURL(id.IconURL))
	}
	return opts
}

func (a *Adapter) postMessage(ctx context.Context, pl place, bot string, p post, meta slackapi.SlackMetadata) (string, error) {
	opts := []slackapi.MsgOption{slackapi.MsgOptionText(p.text, false), slackapi.MsgOptionMetadata(meta)}
	if len(p.blocks) > 0 {
		opts = append(opts, slackapi.MsgOptionBlocks(slackBlocks(p.blocks)...))
	}
	if pl.thread != "" {
		opts = append(opts, slackapi.MsgOptionTS(pl.thread))
	}
	opts = append(opts, a.as(bot)...)
	var ts string
	err := a.postCall(ctx, pl.ws, "chat.postMessage", pl.room, func(ctx context.Context) error {
		var err error
		_, ts, err = pl.ws.api.PostMessageContext(ctx, pl.channel, opts...)
		return err
	})
	return ts, err
}

// postEphemeral posts p for out.ReplyToUser alone. Ephemeral messages carry
// no metadata and are not in the history, so FindSent cannot find them.
func (a *Adapter) postEphemeral(ctx context.Context, pl place, out bridge.Outbound, p post) (string, error) {
	opts := []slackapi.MsgOption{slackapi.MsgOptionText(p.text, false)}
	if len(p.blocks) > 0 {
		opts = append(opts, slackapi.MsgOptionBlocks(slackBlocks(p.blocks)...))
	}
	if pl.thread != "" {
		opts = append(opts, slackapi.MsgOptionTS(pl.thread))
	}
	opts = append(opts, a.as(out.Bot)...)
	var ts string
	err := a.postCall(ctx, pl.ws, "chat.postEphemeral", pl.room, func(ctx context.Context) error {
		var err error
		ts, err = pl.ws.api.PostEphemeralContext(ctx, pl.channel, out.ReplyToUser, opts...)
		return err
	})
	return ts, err
}

// imageRefused reports whether Slack refused blocks because it could not
// download an image of them.
func imageRefused(err error) bool {
	var se slackapi.SlackErrorResponse
	if !errors.As(err, &se) || se.Err != "invalid_blocks" {
		return false
	}
	for _, m := range se.ResponseMetadata.Messages {
		if strings.Contains(m, "image") {
			return true
		}
	}
	for _, e := range se.Errors {
		if e.Message != nil && strings.Contains(*e.Message, "image") {
			return true
		}
	}
	return false
}

// imagesAsMedia moves the post's images into uploads, for when Slack cannot
// fetch them. Images beyond the maxFiles a message shares are shown as
// links; the images beside cards are uploaded while there is room, else
// left out (the card keeps its text).
func (p post) imagesAsMedia() post {
	out := post{text: p.text, media: slices.Clone(p.media)}
	for i, b := range p.blocks {
		if b.BlockType() == "image" {
			u, _ := b["image_url"].(string)
			if m := imageMedia(u); len(out.media) < maxFiles {
				out.media = append(out.media, m)
			} else {
				out.blocks = append(out.blocks, m.link())
			}
			continue
		}
		if acc, ok := b["accessory"].(block); ok && acc.BlockType() == "image" {
			b = cloneBlock(b)
			delete(b, "accessory")
			// Room is kept for a link for each file (post.fits), counting
			// the blocks still to come.
			if u, _ := acc["image_url"].(string); len(out.media) < maxFiles && len(out.blocks)+len(out.media)+len(p.blocks)-i < maxPostBlocks {
				out.media = append(out.media, imageMedia(u))
			}
		}
		out.blocks = append(out.blocks, b)
	}
	return out
}

func cloneBlock(b block) block { return maps.Clone(b) }

// upload downloads the post's files and uploads them with Slack's external
// upload flow, shared in one message with the post's blocks. A file that
// cannot be downloaded is shown as a link instead. It returns the ts of the
// message, or the id of the first file when Slack has not shared it yet.
func (a *Adapter) upload(ctx context.Context, pl place, out bridge.Outbound, p post, part, parts int) (string, error) {
	blocks := slices.Clone(p.blocks)
	var files []slackapi.FileSummary
	for _, m := range p.media {
		f, err := a.fetch.Fetch(ctx, m.url, m.name)
		if err != nil {
			if ctx.Err() != nil {
				return "", ctx.Err()
			}
			a.logs.Warn(a.log, "fetch-media", "cannot download a file of the bot; posting a link to it instead",
				bridge.LogRoom, out.Room.String(), bridge.LogErr, err)
			blocks = append(blocks, m.link())
			continue
		}
		id, err := a.uploadFile(ctx, pl, f.Name, f.Data)
		if err != nil {
			return "", err
		}
		files = append(files, slackapi.FileSummary{ID: id, Title: m.title})
	}
	if len(blocks) > maxBlocks {
		blocks = blocks[:maxBlocks]
	}
	if len(files) == 0 {
		return a.postMessage(ctx, pl, out.Bot, post{text: p.text, blocks: blocks}, metadata(out.ID, part, parts))
	}
	params := slackapi.CompleteUploadExternalParameters{Files: files, Channel: pl.channel, ThreadTimestamp: pl.thread}
	if len(blocks) > 0 {
		params.Blocks = slackapi.Blocks{BlockSet: slackBlocks(blocks)}
	}
	err := a.postCall(ctx, pl.ws, "files.completeUploadExternal", pl.room, func(ctx context.Context) error {
		_, err := pl.ws.api.CompleteUploadExternalContext(ctx, params)
		return err
	})
	if err != nil {
		return "", err
	}
	return a.shareTS(ctx, pl, files[0].ID), nil
}

// uploadFile does the first two steps of the external upload flow.
func (a *Adapter) uploadFile(ctx context.Context, pl place, name string, data []byte) (string, error) {
	var u *slackapi.GetUploadURLExternalResponse
	err := a.call(ctx, pl.ws, "files.getUploadURLExternal", pl.room, func(ctx context.Context) error {
		var err error
		u, err = pl.ws.api.GetUploadURLExternalContext(ctx, slackapi.GetUploadURLExternalParameters{FileName: name, FileSize: len(data)})
		return err
	})
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, a.cfg.DownloadTimeout+callTimeout)
	defer cancel()
	if err := pl.ws.api.UploadToURL(ctx, slackapi.UploadToURLParameters{UploadURL: u.UploadURL, Reader: bytes.NewReader(data), Filename: name}); err != nil {
		return "", fmt.Errorf("slack: upload %s: %w", name, err)
	}
	return u.FileID, nil
}

// shareTS returns the ts of the message that shared file in the channel,
// or the file's id when Slack does not show it yet.
func (a *Adapter) shareTS(ctx context.Context, pl place, file string) string {
	var f *slackapi.File
	err := a.optional(ctx, pl.ws, "files.info", pl.room, func(ctx context.Context) error {
		var err error
		f, _, _, err = pl.ws.api.GetFileInfoContext(ctx, file, 1, 1)
		return err
	})
	if err != nil {
		return file
	}
	for _, shares := range []map[string][]slackapi.ShareFileInfo{f.Shares.Public, f.Shares.Private} {
		if s := shares[pl.channel]; len(s) > 0 {
			return s[len(s)-1].Ts
		}
	}
	return file
}

// Edit implements bridge.Editor: it updates each part of the message with
// the matching part of p's rendering, deletes parts p no longer needs and
// posts those it needs beyond them. Files cannot be edited; p's files are
// shown as links. It blocks on Slack and returns its refusal, with the parts
// the message has at that point.
func (a *Adapter) Edit(ctx context.Context, room bridge.RoomKey, posted bridge.Parts, p chat.Payload) (bridge.Parts, error) {
	pl, err := a.place(room)
	if err != nil {
		return posted, err
	}
	posts := render(p)
	var now bridge.Parts
	for i, id := range posted {
		if i >= len(posts) {
			if err := a.deleteOne(ctx, pl, id); err != nil {
				return append(now, posted[i:]...), err
			}
			continue
		}
		now = append(now, id)
		if isFileID(id) || id == "" {
			continue
		}
		if err := a.update(ctx, pl, id, posts[i].withLinks()); err != nil {
			return append(now, posted[i+1:]...), err
		}
	}
	for _, extra := range posts[min(len(posted), len(posts)):] {
		// Edit does not know the bot: an extra part shows the app's name.
		id, err := a.postMessage(ctx, pl, "", extra.withLinks(), metadata(chat.MessageID("edit-"+posted.First()), 0, 1))
		if err != nil {
			return now, err
		}
		now = append(now, id)
	}
	return now, nil
}

// withLinks shows the post's files as links, for an update.
func (p post) withLinks() post {
	out := post{text: p.text, blocks: slices.Clone(p.blocks)}
	for _, m := range p.media {
		out.blocks = append(out.blocks, m.link())
	}
	if len(out.blocks) > maxBlocks {
		out.blocks = out.blocks[:maxBlocks]
	}
	return out
}

func (a *Adapter) update(ctx context.Context, pl place, ts string, p post) error {
	return a.call(ctx, pl.ws, "chat.update", pl.room, func(ctx context.Context) error {
		_, _, _, err := pl.ws.api.UpdateMessageContext(ctx, pl.channel, ts,
			slackapi.MsgOptionText(p.text, false), slackapi.MsgOptionBlocks(slackBlocks(p.blocks)...))
		return err
	})
}

// Delete implements bridge.Deleter: it deletes every part of the message;
// parts already gone are not an error. It blocks on Slack.
func (a *Adapter) Delete(ctx context.Context, room bridge.RoomKey, posted bridge.Parts) error {
	pl, err := a.place(room)
	if err != nil {
		return err
	}
	for _, id := range posted {
		if id == "" {
			continue
		}
		if err := a.deleteOne(ctx, pl, id); err != nil {
			return err
		}
	}
	return nil
}

func (a *Adapter) deleteOne(ctx context.Context, pl place, id string) error {
	var err error
	if isFileID(id) {
		err = a.call(ctx, pl.ws, "files.delete", pl.room, func(ctx context.Context) error { return pl.ws.api.DeleteFileContext(ctx, id) })
	} else {
		err = a.call(ctx, pl.ws, "chat.delete", pl.room, func(ctx context.Context) error {
			_, _, err := pl.ws.api.DeleteMessageContext(ctx, pl.channel, id)
			return err
		})
	}
	switch errorCode(err) {
	case "message_not_found", "file_not_found", "file_deleted":
		return nil
	}
	return err
}

func isFileID(id string) bool { return strings.HasPrefix(id, "F") }

// FindSent implements bridge.Recoverer: it looks among the bot's recent
// messages of out.Room (the thread, or the channel) for the parts of out,
// which Send marks with message metadata. The bot's posts are known by its
// bot id (or user), whatever name and icon they carry (Config.Bots). Parts
// uploaded as files carry no metadata; they are recognised by the titles of
// their files. An ephemeral out is never found: such messages are in no
// history. It reads the channel's history and returns Slack's error when it
// cannot.
func (a *Adapter) FindSent(ctx context.Context, out bridge.Outbound) (bridge.Parts, error) {
	if out.Ephemeral {
		return nil, nil
	}
	pl, err := a.place(out.Room)
	if err != nil {
		return nil, err
	}
	self, err := a.identified(ctx, pl.ws)
	if err != nil {
		return nil, err
	}
	posts := render(out.Payload)
	oldest := ""
	if !out.Time.IsZero() {
		oldest = strconv.FormatInt(out.Time.Add(-findWindow).Unix(), 10) + ".000000"
	}
	msgs, err := a.recent(ctx, pl, oldest)
	if err != nil {
		return nil, err
	}
	own := func(m slackapi.Message) bool {
		return m.BotID != "" && m.BotID == self.botID || m.User != "" && m.User == self.userID
	}
	found := make(bridge.Parts, len(posts))
	used := map[string]bool{}
	for _, m := range msgs {
		if !own(m) || m.Metadata.EventType != metaEventType {
			continue
		}
		id, _ := m.Metadata.EventPayload["id"].(string)
		part, _ := m.Metadata.EventPayload["part"].(float64)
		if id == string(out.ID) && int(part) >= 0 && int(part) < len(found) {
			found[int(part)] = m.Timestamp
			used[m.Timestamp] = true
		}
	}
	for i, p := range posts {
		if found[i] != "" || len(p.media) == 0 {
			continue
		}
		for _, m := range msgs {
			if own(m) && !used[m.Timestamp] && m.Metadata.EventType == "" && sameFiles(m.Files, p.media) {
				found[i] = m.Timestamp
				used[m.Timestamp] = true
				break
			}
		}
	}
	return found, nil
}

// sameFiles reports whether the files of a message are those of a part: each
// is one of the part's, by the title the adapter gave it (the name only when
// Slack shows no title). Names alone would mix up the parts of a reply whose
// files share a name.
func sameFiles(fs []slackapi.File, ms []media) bool {
	if len(fs) == 0 || len(fs) > len(ms) {
		return false
	}
	for _, f := range fs {
		if !slices.ContainsFunc(ms, func(m media) bool { return m.title == f.Title || f.Title == "" && m.name == f.Name }) {
			return false
		}
	}
	return true
}

// recent returns the messages of a thread, or of a channel's top level,
// since oldest (a ts; "" for no bound), newest first or oldest first as
// Slack gives them, with their metadata.
func (a *Adapter) recent(ctx context.Context, pl place, oldest string) ([]slackapi.Message, error) {
	const pages, limit = 5, 200
	var out []slackapi.Message
	cursor := ""
	for range pages {
		var (
			msgs []slackapi.Message
			next string
		)
		method := "conversations.history"
		if pl.thread != "" {
			method = "conversations.replies"
		}
		err := a.call(ctx, pl.ws, method, pl.room, func(ctx context.Context) error {
			if pl.thread != "" {
				var err error
				msgs, _, next, err = pl.ws.api.GetConversationRepliesContext(ctx, &slackapi.GetConversationRepliesParameters{
					ChannelID: pl.channel, Timestamp: pl.thread, Cursor: cursor, Oldest: oldest, Limit: limit, IncludeAllMetadata: true})
				return err
			}
			resp, err := pl.ws.api.GetConversationHistoryContext(ctx, &slackapi.GetConversationHistoryParameters{
				ChannelID: pl.channel, Cursor: cursor, Oldest: oldest, Limit: limit, IncludeAllMetadata: true})
			if resp != nil {
				msgs, next = resp.Messages, resp.ResponseMetaData.NextCursor
			}
			return err
		})
		if err != nil {
			return nil, err
		}
		out = append(out, msgs...)
		if next == "" {
			break
		}
		cursor = next
	}
	return out, nil
}
