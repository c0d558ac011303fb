package slacktest

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"mime"
	"path"
	"regexp"
	"slices"
	"strings"
	"time"
)

// messageObject renders a message as Slack does in Web API answers
// (event=false: with reactions and thread summaries) or in message events
// (event=true). withMeta adds metadata, which history and replies only show
// when asked with include_all_metadata. The caller holds s.mu.
func (s *Server) messageObject(base string, m *Message, event, withMeta bool) obj {
	o := obj{"type": "message", "ts": m.TS, "text": m.Text}
	reply := m.ThreadTS != "" && m.ThreadTS != m.TS
	sub := m.Subtype
	switch {
	case sub != "":
	case reply && m.ReplyBroadcast:
		sub = "thread_broadcast"
	case len(m.Files) > 0 && m.BotID == "":
		sub = "file_share"
	case m.BotID != "" && m.User == "":
		sub = "bot_message"
	}
	if sub != "" {
		o["subtype"] = sub
	}
	if m.User != "" {
		o["user"] = m.User
		o["team"] = s.opts.TeamID
	}
	if m.BotID != "" {
		o["bot_id"] = m.BotID
		if s.isBotID(m.BotID) {
			o["app_id"] = s.opts.AppID
			o["bot_profile"] = s.botProfile()
		}
	}
	if m.Username != "" {
		o["username"] = m.Username
	}
	if m.IconURL != "" {
		o["icons"] = obj{"image_48": m.IconURL}
	}
	if m.ClientMsgID != "" {
		o["client_msg_id"] = m.ClientMsgID
	}
	if m.Blocks != nil {
		o["blocks"] = m.Blocks
	}
	if m.Attachments != nil {
		o["attachments"] = m.Attachments
	}
	if withMeta && m.Metadata != nil {
		o["metadata"] = m.Metadata
	}
	if len(m.Files) > 0 {
		files := make([]obj, 0, len(m.Files))
		for _, id := range m.Files {
			if f, ok := s.st.Files[id]; ok {
				files = append(files, s.fileObject(base, f, false))
			}
		}
		o["files"] = files
		o["upload"] = m.BotID == ""
		o["display_as_bot"] = false
	}
	if n := len(m.Updates); n > 0 {
		o["edited"] = obj{"user": m.User, "ts": m.Updates[n-1].TS}
	}
	if reply {
		o["thread_ts"] = m.ThreadTS
		if p := s.st.Message(m.Channel, m.ThreadTS); p != nil && p.User != "" {
			o["parent_user_id"] = p.User
		}
	} else if !event {
		if thread := s.st.Thread(m.Channel, m.TS); len(thread) > 1 {
			var users []string
			for _, r := range thread[1:] {
				if !slices.Contains(users, r.User) {
					users = append(users, r.User)
				}
			}
			o["thread_ts"] = m.TS
			o["reply_count"] = len(thread) - 1
			o["reply_users_count"] = len(users)
			o["latest_reply"] = thread[len(thread)-1].TS
			o["reply_users"] = users
			o["is_locked"] = false
			o["subscribed"] = false
		}
	}
	if !event && len(m.Reactions) > 0 {
		rs := make([]obj, 0, len(m.Reactions))
		for _, r := range m.Reactions {
			rs = append(rs, obj{"name": r.Name, "users": r.Users, "count": len(r.Users)})
		}
		o["reactions"] = rs
	}
	return o
}

// botProfile is the bot_profile of the bot's messages.
func (s *Server) botProfile() obj {
	return obj{
		"id":      s.opts.BotID,
		"app_id":  s.opts.AppID,
		"name":    s.opts.BotName,
		"icons":   obj{"image_36": "", "image_48": "", "image_72": ""},
		"deleted": false,
		"updated": 0,
		"team_id": s.opts.TeamID,
	}
}

// userObject renders a user as users.info does. Email needs the
// users:read.email scope, as on Slack.
func (s *Server) userObject(u User, locale bool) obj {
	tz := u.TZ
	if tz == "" {
		tz = "America/Los_Angeles"
	}
	label, offset := "UTC", 0
	if loc, err := time.LoadLocation(tz); err == nil {
		label, offset = s.now().In(loc).Zone()
	}
	first, last, _ := strings.Cut(u.RealName, " ")
	sum := md5.Sum([]byte(u.ID))
	profile := obj{
		"title":                     "",
		"phone":                     "",
		"skype":                     "",
		"real_name":                 u.RealName,
		"real_name_normalized":      u.RealName,
		"display_name":              u.DisplayName,
		"display_name_normalized":   u.DisplayName,
		"fields":                    obj{},
		"status_text":               "",
		"status_emoji":              "",
		"status_emoji_display_info": []obj{},
		"status_expiration":         0,
		"avatar_hash":               hex.EncodeToString(sum[:6]),
		"first_name":                first,
		"last_name":                 last,
		"status_text_canonical":     "",
		"team":                      s.opts.TeamID,
	}
	for _, size := range []string{"24", "32", "48", "72", "192", "512"} {
		profile["image_"+size] = u.Image
	}
	if u.Email != "" && !u.IsBot && slices.Contains(s.opts.Scopes, "users:read.email") {
		profile["email"] = u.Email
	}
	if u.IsBot {
		profile["bot_id"] = u.BotID
		profile["always_active"] = true
		if u.BotID == s.opts.BotID {
			profile["api_app_id"] = s.opts.AppID
		}
	}
	o := obj{
		"id":                         u.ID,
		"team_id":                    s.opts.TeamID,
		"name":                       u.Name,
		"deleted":                    u.Deleted,
		"color":                      "9f69e7",
		"real_name":                  u.RealName,
		"tz":                         tz,
		"tz_label":                   label,
		"tz_offset":                  offset,
		"profile":                    profile,
		"is_admin":                   false,
		"is_owner":                   false,
		"is_primary_owner":           false,
		"is_restricted":              false,
		"is_ultra_restricted":        false,
		"is_bot":                     u.IsBot,
		"is_app_user":                false,
		"updated":                    s.now().Unix(),
		"is_email_confirmed":         !u.IsBot,
		"who_can_share_contact_card": "EVERYONE",
	}
	if locale {
		o["locale"] = "en-US"
	}
	return o
}

// channelObject renders a conversation as conversations.info does.
func (s *Server) channelObject(c *Channel, numMembers, locale bool) obj {
	created := c.Created.Unix()
	var o obj
	if c.Type == IM {
		o = obj{
			"id":              c.ID,
			"created":         created,
			"is_archived":     false,
			"is_im":           true,
			"is_org_shared":   false,
			"context_team_id": s.opts.TeamID,
			"updated":         c.Created.UnixMilli(),
			"user":            c.User,
			"is_user_deleted": false,
			"priority":        0,
			"is_open":         true,
			"last_read":       "0000000000.000000",
		}
	} else {
		legacyGroup := c.Type == Private && strings.HasPrefix(c.ID, "G")
		o = obj{
			"id":                         c.ID,
			"name":                       c.Name,
			"is_channel":                 c.Type == Public || (c.Type == Private && !legacyGroup),
			"is_group":                   legacyGroup,
			"is_im":                      false,
			"is_mpim":                    c.Type == MPIM,
			"is_private":                 c.Type != Public,
			"created":                    created,
			"is_archived":                c.IsArchived,
			"is_general":                 false,
			"unlinked":                   0,
			"name_normalized":            c.Name,
			"is_shared":                  false,
			"is_org_shared":              false,
			"is_pending_ext_shared":      false,
			"pending_shared":             []string{},
			"context_team_id":            s.opts.TeamID,
			"updated":                    c.Created.UnixMilli(),
			"parent_conversation":        nil,
			"creator":                    c.CreatorUserID,
			"is_ext_shared":              false,
			"shared_team_ids":            []string{s.opts.TeamID},
			"pending_connected_team_ids": []string{},
			"is_member":                  c.IsMember,
			"topic":                      obj{"value": c.Topic, "creator": "", "last_set": 0},
			"purpose":                    obj{"value": c.Purpose, "creator": "", "last_set": 0},
			"previous_names":             []string{},
		}
	}
	if numMembers {
		o["num_members"] = len(c.Members)
	}
	if locale {
		o["locale"] = "en-US"
	}
	return o
}

// fileObject renders a file as Slack does in messages and (full) in
// files.info, with its shares. The caller holds s.mu.
func (s *Server) fileObject(base string, f File, full bool) obj {
	ft, pretty := fileType(f.Name, f.Mimetype)
	priv, download := s.fileURLs(base, f.ID, f.Name)
	size := len(f.Content)
	if !f.Uploaded {
		size = f.Length
	}
	public := slices.ContainsFunc(f.Shares, func(sh Share) bool { return s.channelType(sh.Channel) == Public })
	o := obj{
		"id":                   f.ID,
		"created":              f.Created.Unix(),
		"timestamp":            f.Created.Unix(),
		"name":                 f.Name,
		"title":                f.Title,
		"mimetype":             f.Mimetype,
		"filetype":             ft,
		"pretty_type":          pretty,
		"user":                 f.User,
		"user_team":            s.opts.TeamID,
		"editable":             false,
		"size":                 size,
		"mode":                 "hosted",
		"is_external":          false,
		"external_type":        "",
		"is_public":            public,
		"public_url_shared":    false,
		"display_as_bot":       false,
		"username":             "",
		"url_private":          priv,
		"url_private_download": download,
		"permalink":            base + "/files/" + f.User + "/" + f.ID + "/" + f.Name,
		"permalink_public":     base + "/" + s.opts.TeamID + "-" + f.ID + "-" + f.Name,
		"has_rich_preview":     false,
		"file_access":          "visible",
	}
	if f.AltText != "" {
		o["alt_txt"] = f.AltText
	}
	if !full {
		return o
	}
	channels, groups, ims := []string{}, []string{}, []string{}
	shares := obj{}
	for _, sh := range f.Shares {
		kind := "private"
		switch s.channelType(sh.Channel) {
		case Public:
			kind = "public"
			channels = appendUnique(channels, sh.Channel)
		case IM:
			ims = appendUnique(ims, sh.Channel)
		default:
			groups = appendUnique(groups, sh.Channel)
		}
		info := obj{
			"reply_users":       []string{},
			"reply_users_count": 0,
			"reply_count":       0,
			"ts":                sh.TS,
			"team_id":           s.opts.TeamID,
			"share_user_id":     f.User,
		}
		if c, ok := s.channels[sh.Channel]; ok {
			info["channel_name"] = c.Name
		}
		if sh.ThreadTS != "" {
			info["thread_ts"] = sh.ThreadTS
		}
		byKind, _ := shares[kind].(obj)
		if byKind == nil {
			byKind = obj{}
			shares[kind] = byKind
		}
		list, _ := byKind[sh.Channel].([]obj)
		byKind[sh.Channel] = append(list, info)
	}
	o["channels"], o["groups"], o["ims"] = channels, groups, ims
	o["shares"] = shares
	o["comments_count"] = 0
	return o
}

func appendUnique(list []string, v string) []string {
	if slices.Contains(list, v) {
		return list
	}
	return append(list, v)
}

// fileType returns Slack's filetype and pretty_type of a file.
func fileType(name, mimetype string) (string, string) {
	ext := strings.TrimPrefix(strings.ToLower(path.Ext(name)), ".")
	switch ext {
	case "jpeg":
		ext = "jpg"
	case "txt", "":
		if ext == "txt" || strings.HasPrefix(mimetype, "text/") {
			return "text", "Plain Text"
		}
		return "binary", "Binary"
	case "md":
		return "markdown", "Markdown (raw)"
	}
	return ext, strings.ToUpper(ext)
}

// mimeByName guesses a file's type from its name, as Slack does for uploads.
func mimeByName(name string) string {
	if t := mime.TypeByExtension(path.Ext(name)); t != "" {
		t, _, _ = strings.Cut(t, ";")
		return t
	}
	return "application/octet-stream"
}

// mentionRE matches Slack's markup: <@U123>, <#C123|name>, <!here>,
// <https://example.com|label>.
var mentionRE = regexp.MustCompile(`<([@#!]?)([^>|]+)(?:\|([^>]*))?>`)

// richTextBlocks returns the rich_text block Slack's clients send along with
// a message's text.
func richTextBlocks(text string) json.RawMessage {
	var elems []obj
	addText := func(t string) {
		t = strings.NewReplacer("&lt;", "<", "&gt;", ">", "&amp;", "&").Replace(t)
		if t != "" {
			elems = append(elems, obj{"type": "text", "text": t})
		}
	}
	last := 0
	for _, loc := range mentionRE.FindAllStringSubmatchIndex(text, -1) {
		addText(text[last:loc[0]])
		last = loc[1]
		kind, target := text[loc[2]:loc[3]], text[loc[4]:loc[5]]
		label := ""
		if loc[6] >= 0 {
			label = text[loc[6]:loc[7]]
		}
		switch kind {
		case "@":
			elems = append(elems, obj{"type": "user", "user_id": target})
		case "#":
			elems = append(elems, obj{"type": "channel", "channel_id": target})
		case "!":
			elems = append(elems, obj{"type": "broadcast", "range": target})
		default:
			link := obj{"type": "link", "url": target}
			if label != "" {
				link["text"] = label
			}
			elems = append(elems, link)
		}
	}
	addText(text[last:])
	if elems == nil {
		elems = []obj{}
	}
	blocks := []obj{{
		"type":     "rich_text",
		"elements": []obj{{"type": "rich_text_section", "elements": elems}},
	}}
	out, _ := json.Marshal(blocks)
	return out
}

// withBlockIDs gives every block without a block_id a random one, as Slack
// does when it stores a message. Blocks that have one keep their bytes.
func (s *Server) withBlockIDs(blocks json.RawMessage) json.RawMessage {
	var raw []json.RawMessage
	if blocks == nil || json.Unmarshal(blocks, &raw) != nil {
		return blocks
	}
	changed := false
	for i, b := range raw {
		var fields map[string]json.RawMessage
		if json.Unmarshal(b, &fields) != nil {
			continue
		}
		if _, ok := fields["block_id"]; ok {
			continue
		}
		id, _ := json.Marshal(randomToken(5))
		fields["block_id"] = id
		raw[i], _ = json.Marshal(fields)
		changed = true
	}
	if !changed {
		return blocks
	}
	var buf bytes.Buffer
	buf.WriteByte('[')
	for i, b := range raw {
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.Write(b)
	}
	buf.WriteByte(']')
	return buf.Bytes()
}
