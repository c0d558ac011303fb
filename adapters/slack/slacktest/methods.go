package slacktest

import (
	"encoding/json"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// The Web API methods. Each is an apiMethod: it runs with s.mu held.

func (s *Server) authTest(r *apiRequest) (obj, error) {
	out := obj{
		"url":                   r.base + "/",
		"team":                  "Slacktest",
		"user":                  s.opts.BotName,
		"team_id":               r.inst.teamID,
		"user_id":               r.inst.botUserID,
		"bot_id":                r.inst.botID,
		"is_enterprise_install": r.inst.orgWide,
	}
	if r.inst.enterprise != "" {
		out["enterprise_id"] = r.inst.enterprise
	}
	return out, nil
}

func (s *Server) appsConnectionsOpen(r *apiRequest) (obj, error) {
	if s.refuse {
		return nil, errCode("internal_error")
	}
	ticket := newUUID()
	s.tickets[ticket] = true
	u := "ws" + strings.TrimPrefix(r.base, "http") + "/link/?ticket=" + ticket + "&app_id=" + s.opts.AppID
	return obj{"url": u}, nil
}

func (s *Server) usersInfo(r *apiRequest) (obj, error) {
	u, ok := s.users[r.args.Get("user")]
	if !ok {
		return nil, errCode("user_not_found")
	}
	return obj{"user": s.userObject(u, r.args.Get("include_locale") == "true")}, nil
}

func (s *Server) conversationsInfo(r *apiRequest) (obj, error) {
	c, err := s.channelOf(r, r.args.Get("channel"), accessInfo)
	if err != nil {
		return nil, err
	}
	return obj{"channel": s.channelObject(c, r.args.Get("include_num_members") == "true", r.args.Get("include_locale") == "true")}, nil
}

func (s *Server) conversationsMembers(r *apiRequest) (obj, error) {
	c, err := s.channelOf(r, r.args.Get("channel"), accessInfo)
	if err != nil {
		return nil, err
	}
	members, next, err := page(c.Members, func(id string) string { return id }, "user", r.args.Get("cursor"), intArg(r.args, "limit", 100, 1000))
	if err != nil {
		return nil, err
	}
	return obj{"members": nonNil(members), "response_metadata": obj{"next_cursor": next}}, nil
}

// visible reports whether history and replies show m.
func visible(m *Message) bool { return !m.Deleted && m.EphemeralTo == "" }

// inRange applies the oldest, latest and inclusive arguments.
func inRange(ts string, args url.Values) bool {
	t := tsMicros(ts)
	incl := args.Get("inclusive") == "1" || args.Get("inclusive") == "true"
	if o := args.Get("oldest"); o != "" {
		if ot := tsMicros(o); t < ot || (t == ot && !incl) {
			return false
		}
	}
	if l := args.Get("latest"); l != "" {
		if lt := tsMicros(l); t > lt || (t == lt && !incl) {
			return false
		}
	}
	return true
}

func (s *Server) conversationsHistory(r *apiRequest) (obj, error) {
	c, err := s.channelOf(r, r.args.Get("channel"), accessHistory)
	if err != nil {
		return nil, err
	}
	var msgs []*Message
	all := s.st.Messages[c.ID]
	for i := len(all) - 1; i >= 0; i-- {
		m := &all[i]
		reply := m.ThreadTS != "" && m.ThreadTS != m.TS
		if visible(m) && (!reply || m.ReplyBroadcast) && inRange(m.TS, r.args) {
			msgs = append(msgs, m)
		}
	}
	return s.messagePage(r, msgs, 100)
}

func (s *Server) conversationsReplies(r *apiRequest) (obj, error) {
	c, err := s.channelOf(r, r.args.Get("channel"), accessHistory)
	if err != nil {
		return nil, err
	}
	root := s.threadParent(c.ID, r.args.Get("ts"))
	if root == "" {
		return nil, errCode("thread_not_found")
	}
	thread := s.st.Thread(c.ID, root)
	if len(thread) == 0 {
		return nil, errCode("thread_not_found")
	}
	msgs := thread[:1]
	for _, m := range thread[1:] {
		if inRange(m.TS, r.args) {
			msgs = append(msgs, m)
		}
	}
	return s.messagePage(r, msgs, 1000)
}

func (s *Server) messagePage(r *apiRequest, msgs []*Message, def int) (obj, error) {
	pg, next, err := page(msgs, func(m *Message) string { return m.TS }, "next_ts", r.args.Get("cursor"), intArg(r.args, "limit", def, 1000))
	if err != nil {
		return nil, err
	}
	withMeta := r.args.Get("include_all_metadata") == "1" || r.args.Get("include_all_metadata") == "true"
	out := make([]obj, 0, len(pg))
	for _, m := range pg {
		out = append(out, s.messageObject(r.base, m, false, withMeta))
	}
	return obj{
		"messages":          out,
		"has_more":          next != "",
		"pin_count":         0,
		"response_metadata": obj{"next_cursor": next},
	}, nil
}

// post records a message of the bot. The caller holds s.mu.
func (s *Server) post(m Message) *Message {
	m.TS = s.nextTS()
	for _, id := range m.Files {
		if f, ok := s.st.Files[id]; ok {
			f.Shares = append(f.Shares, Share{Channel: m.Channel, TS: m.TS, ThreadTS: m.ThreadTS})
			s.st.Files[id] = f
		}
	}
	return s.st.add(m)
}

func (s *Server) chatPostMessage(r *apiRequest) (obj, error) {
	c, err := s.channelOf(r, r.args.Get("channel"), accessWrite)
	if err != nil {
		return nil, err
	}
	m, err := s.botMessage(r.inst, c, r.args)
	if err != nil {
		return nil, err
	}
	m.ThreadTS = s.threadParent(c.ID, r.args.Get("thread_ts"))
	p := s.post(m)
	return obj{"channel": c.ID, "ts": p.TS, "message": s.messageObject(r.base, p, false, true)}, nil
}

func (s *Server) chatPostEphemeral(r *apiRequest) (obj, error) {
	c, err := s.channelOf(r, r.args.Get("channel"), accessWrite)
	if err != nil {
		return nil, err
	}
	user := r.args.Get("user")
	if _, ok := s.users[user]; !ok {
		return nil, errCode("user_not_found")
	}
	if !slices.Contains(c.Members, user) {
		return nil, errCode("user_not_in_channel")
	}
	m, err := s.botMessage(r.inst, c, r.args)
	if err != nil {
		return nil, err
	}
	m.EphemeralTo = user
	m.ThreadTS = s.threadParent(c.ID, r.args.Get("thread_ts"))
	p := s.post(m)
	return obj{"message_ts": p.TS}, nil
}

// ownMessage finds a message of the bot for chat.update, chat.delete and the
// stream methods. The caller holds s.mu.
func (s *Server) ownMessage(r *apiRequest, notOwn string) (*Channel, *Message, error) {
	c, err := s.channelOf(r, r.args.Get("channel"), accessWrite)
	if err != nil {
		return nil, nil, err
	}
	m := s.st.Message(c.ID, r.args.Get("ts"))
	if m == nil || !visible(m) {
		return nil, nil, errCode("message_not_found")
	}
	if m.BotID != r.inst.botID {
		return nil, nil, errCode(notOwn)
	}
	return c, m, nil
}

func (s *Server) chatUpdate(r *apiRequest) (obj, error) {
	c, m, err := s.ownMessage(r, "cant_update_message")
	if err != nil {
		return nil, err
	}
	next := *m
	if r.args.Has("text") {
		next.Text = r.args.Get("text")
	}
	if r.args.Has("blocks") {
		if next.Blocks, err = s.blocksArg(r.args, "blocks"); err != nil {
			return nil, err
		}
	}
	if r.args.Has("attachments") {
		if next.Attachments, err = jsonArrayArg(r.args, "attachments", "invalid_attachments"); err != nil {
			return nil, err
		}
	}
	if r.args.Has("metadata") {
		if next.Metadata, err = metadataArg(r.args); err != nil {
			return nil, err
		}
	}
	if next.Text == "" && isEmptyJSONArray(next.Blocks) && isEmptyJSONArray(next.Attachments) {
		return nil, errCode("no_text")
	}
	if utf8.RuneCountInString(next.Text) > MaxMessageText {
		return nil, errCode("msg_too_long")
	}
	m.Text, m.Blocks, m.Attachments, m.Metadata = next.Text, next.Blocks, next.Attachments, next.Metadata
	m.Updates = append(m.Updates, Update{TS: s.nextTS(), Text: m.Text, Blocks: m.Blocks, Metadata: m.Metadata, Time: s.now()})
	return obj{"channel": c.ID, "ts": m.TS, "text": m.Text, "message": s.messageObject(r.base, m, false, true)}, nil
}

func (s *Server) chatDelete(r *apiRequest) (obj, error) {
	c, m, err := s.ownMessage(r, "cant_delete_message")
	if err != nil {
		return nil, err
	}
	m.Deleted = true
	return obj{"channel": c.ID, "ts": m.TS}, nil
}

func (s *Server) chatStartStream(r *apiRequest) (obj, error) {
	c, err := s.channelOf(r, r.args.Get("channel"), accessWrite)
	if err != nil {
		return nil, err
	}
	st := &Stream{
		Active:          true,
		Started:         s.now(),
		RecipientUserID: r.args.Get("recipient_user_id"),
		RecipientTeamID: r.args.Get("recipient_team_id"),
	}
	if c.Type != IM {
		switch {
		case st.RecipientUserID == "":
			return nil, errCode("missing_recipient_user_id")
		case st.RecipientTeamID == "":
			return nil, errCode("missing_recipient_team_id")
		}
	}
	md := r.args.Get("markdown_text")
	if err := s.appendStream(st, md, r.args); err != nil {
		return nil, err
	}
	p := s.post(Message{
		Channel:  c.ID,
		ThreadTS: s.threadParent(c.ID, r.args.Get("thread_ts")),
		User:     r.inst.botUserID,
		BotID:    r.inst.botID,
		Text:     md,
		Stream:   st,
	})
	return obj{"channel": c.ID, "ts": p.TS}, nil
}

// appendStream checks and records one markdown_text and chunks argument of a
// stream method.
func (s *Server) appendStream(st *Stream, md string, args url.Values) error {
	if utf8.RuneCountInString(md) > 12000 {
		return errCode("msg_too_long")
	}
	chunks, err := jsonArrayArg(args, "chunks", "invalid_chunks")
	if err != nil {
		return err
	}
	st.Appends = append(st.Appends, md)
	if chunks != nil {
		st.Chunks = append(st.Chunks, chunks)
	}
	return nil
}

// streaming finds a message still streaming for chat.appendStream and
// chat.stopStream. The caller holds s.mu.
func (s *Server) streaming(r *apiRequest) (*Channel, *Message, error) {
	c, m, err := s.ownMessage(r, "message_not_owned_by_app")
	if err != nil {
		return nil, nil, err
	}
	if m.Stream == nil || !m.Stream.Active {
		return nil, nil, errCode("message_not_in_streaming_state")
	}
	if s.now().Sub(m.Stream.Started) > StreamLifetime {
		m.Stream.Active = false
		return nil, nil, errCode("message_not_in_streaming_state")
	}
	return c, m, nil
}

func (s *Server) chatAppendStream(r *apiRequest) (obj, error) {
	c, m, err := s.streaming(r)
	if err != nil {
		return nil, err
	}
	md := r.args.Get("markdown_text")
	if err := s.appendStream(m.Stream, md, r.args); err != nil {
		return nil, err
	}
	m.Text += md
	return obj{"channel": c.ID, "ts": m.TS}, nil
}

func (s *Server) chatStopStream(r *apiRequest) (obj, error) {
	c, m, err := s.streaming(r)
	if err != nil {
		return nil, err
	}
	md := r.args.Get("markdown_text")
	if err := s.appendStream(m.Stream, md, r.args); err != nil {
		return nil, err
	}
	blocks, err := s.blocksArg(r.args, "blocks")
	if err != nil {
		return nil, err
	}
	meta, err := metadataArg(r.args)
	if err != nil {
		return nil, err
	}
	m.Text += md
	if blocks != nil {
		m.Blocks = blocks
	}
	if meta != nil {
		m.Metadata = meta
	}
	m.Stream.Active = false
	return obj{"channel": c.ID, "ts": m.TS, "message": s.messageObject(r.base, m, false, true)}, nil
}

// reactionTarget finds the message of reactions.add and reactions.remove.
// The caller holds s.mu.
func (s *Server) reactionTarget(r *apiRequest) (*Message, string, error) {
	channel, ts := r.args.Get("channel"), r.args.Get("timestamp")
	if channel == "" || ts == "" {
		return nil, "", errCode("no_item_specified")
	}
	name := strings.Trim(r.args.Get("name"), ":")
	if name == "" {
		return nil, "", errCode("invalid_name")
	}
	c, err := s.channelOf(r, channel, accessHistory)
	if err != nil {
		return nil, "", err
	}
	m := s.st.Message(c.ID, ts)
	if m == nil || !visible(m) {
		return nil, "", errCode("message_not_found")
	}
	return m, name, nil
}

func (s *Server) reactionsAdd(r *apiRequest) (obj, error) {
	m, name, err := s.reactionTarget(r)
	if err != nil {
		return nil, err
	}
	i := slices.IndexFunc(m.Reactions, func(re Reaction) bool { return re.Name == name })
	switch {
	case i < 0:
		m.Reactions = append(m.Reactions, Reaction{Name: name, Users: []string{r.inst.botUserID}})
	case slices.Contains(m.Reactions[i].Users, r.inst.botUserID):
		return nil, errCode("already_reacted")
	default:
		m.Reactions[i].Users = append(m.Reactions[i].Users, r.inst.botUserID)
	}
	return obj{}, nil
}

func (s *Server) reactionsRemove(r *apiRequest) (obj, error) {
	m, name, err := s.reactionTarget(r)
	if err != nil {
		return nil, err
	}
	i := slices.IndexFunc(m.Reactions, func(re Reaction) bool { return re.Name == name })
	if i < 0 || !slices.Contains(m.Reactions[i].Users, r.inst.botUserID) {
		return nil, errCode("no_reaction")
	}
	users := slices.DeleteFunc(slices.Clone(m.Reactions[i].Users), func(u string) bool { return u == r.inst.botUserID })
	if len(users) == 0 {
		m.Reactions = slices.Delete(m.Reactions, i, i+1)
	} else {
		m.Reactions[i].Users = users
	}
	return obj{}, nil
}

func (s *Server) filesGetUploadURLExternal(r *apiRequest) (obj, error) {
	name := r.args.Get("filename")
	if name == "" {
		return nil, errInvalidArguments("missing required field: filename")
	}
	length, err := strconv.Atoi(r.args.Get("length"))
	if err != nil || length <= 0 {
		return nil, errInvalidArguments("missing required field: length")
	}
	f := File{
		ID:       s.newID("F"),
		Name:     name,
		Title:    name,
		Mimetype: mimeByName(name),
		User:     r.inst.botUserID,
		Length:   length,
		AltText:  r.args.Get("alt_txt"),
		Created:  s.now(),
	}
	f.URLPrivate, f.URLPrivateDownload = s.fileURLs(r.base, f.ID, f.Name)
	s.st.Files[f.ID] = f
	secret := randomToken(40)
	s.uploads[secret] = f.ID
	return obj{"upload_url": r.base + "/upload/v1/" + secret, "file_id": f.ID}, nil
}

func (s *Server) filesCompleteUploadExternal(r *apiRequest) (obj, error) {
	var summaries []struct {
		ID    string `json:"id"`
		Title string `json:"title"`
	}
	if err := json.Unmarshal([]byte(r.args.Get("files")), &summaries); err != nil || len(summaries) == 0 {
		return nil, errInvalidArguments("missing required field: files")
	}
	if len(summaries) > MaxSharedFiles {
		return nil, errCode("internal_error")
	}
	for _, sum := range summaries {
		if f, ok := s.st.Files[sum.ID]; !ok || !f.Uploaded || f.User != r.inst.botUserID {
			return nil, errCode("file_not_found")
		}
	}
	var targets []string
	if ch := r.args.Get("channel_id"); ch != "" {
		targets = append(targets, ch)
	}
	if chs := r.args.Get("channels"); chs != "" {
		targets = append(targets, strings.Split(chs, ",")...)
	}
	var channels []*Channel
	for _, t := range targets {
		c, err := s.channelOf(r, t, accessWrite)
		if err != nil {
			return nil, err
		}
		channels = append(channels, c)
	}
	var blocks json.RawMessage
	if r.args.Get("initial_comment") == "" {
		var err error
		if blocks, err = s.blocksArg(r.args, "blocks"); err != nil {
			return nil, err
		}
	}
	out := make([]obj, 0, len(summaries))
	ids := make([]string, 0, len(summaries))
	for _, sum := range summaries {
		f := s.st.Files[sum.ID]
		if sum.Title != "" {
			f.Title = sum.Title
		}
		f.Completed = true
		s.st.Files[f.ID] = f
		ids = append(ids, f.ID)
		out = append(out, obj{"id": f.ID, "title": f.Title})
	}
	for _, c := range channels {
		s.post(Message{
			Channel:  c.ID,
			ThreadTS: s.threadParent(c.ID, r.args.Get("thread_ts")),
			User:     r.inst.botUserID,
			BotID:    r.inst.botID,
			Text:     r.args.Get("initial_comment"),
			Blocks:   blocks,
			Files:    slices.Clone(ids),
		})
	}
	return obj{"files": out}, nil
}

func (s *Server) filesInfo(r *apiRequest) (obj, error) {
	f, ok := s.st.Files[r.args.Get("file")]
	if !ok || !f.Completed {
		return nil, errCode("file_not_found")
	}
	return obj{
		"file":              s.fileObject(r.base, f, true),
		"comments":          []obj{},
		"response_metadata": obj{"next_cursor": ""},
	}, nil
}

func (s *Server) assistantThreadsSetStatus(r *apiRequest) (obj, error) {
	channel, thread := r.args.Get("channel_id"), r.args.Get("thread_ts")
	if channel == "" {
		return nil, errInvalidArguments("missing required field: channel_id")
	}
	if thread == "" {
		return nil, errInvalidArguments("missing required field: thread_ts")
	}
	if _, err := s.channelOf(r, channel, accessWrite); err != nil {
		return nil, err
	}
	st := Status{Channel: channel, ThreadTS: thread, Status: r.args.Get("status"), Time: s.now()}
	if lm := r.args.Get("loading_messages"); lm != "" {
		st.LoadingMessages = strings.Split(lm, ",")
	}
	s.st.Statuses = append(s.st.Statuses, st)
	return obj{}, nil
}
