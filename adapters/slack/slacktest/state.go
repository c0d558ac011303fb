package slacktest

import (
	"encoding/json"
	"maps"
	"net/url"
	"slices"
	"time"
)

// State is what the fake has recorded: every Web API call, the messages of
// every channel, files, assistant statuses and the Socket Mode traffic.
// Server.WaitFor hands the live State to its condition; Server.Snapshot returns
// a deep copy.
type State struct {
	// Calls holds every Web API call in arrival order, failed ones included.
	Calls []Call
	// Messages holds the messages of each channel by channel id, in the order
	// they were posted (thread replies included), with deleted and ephemeral
	// ones kept and marked.
	Messages map[string][]Message
	// index is kept by the Server as it adds messages; a clone has none and
	// scans instead.
	index map[string]*channelIndex
	// Files holds every file by id.
	Files map[string]File
	// Statuses holds every assistant.threads.setStatus call that succeeded.
	Statuses []Status
	// Connections holds every Socket Mode connection, in the order they were
	// opened.
	Connections []Connection
	// Envelopes holds every envelope written to a Socket Mode connection.
	Envelopes []SentEnvelope
	// Acks holds every acknowledgement read from a Socket Mode connection.
	Acks []Ack
	// Views holds the Home tab published for each user (views.publish),
	// the latest one.
	Views map[string]View
	// Prompts holds every assistant.threads.setSuggestedPrompts call that
	// succeeded, and Titles every assistant.threads.setTitle.
	Prompts []SuggestedPrompts
	Titles  []Title
}

// View is a Home tab published with views.publish.
type View struct {
	// User sees it; Token published it.
	User  string
	Token string
	// Type is "home"; Blocks its blocks; PrivateMetadata and ExternalID as
	// given.
	Type            string
	Blocks          json.RawMessage
	PrivateMetadata string
	ExternalID      string
	// Hash is the view's hash Slack handed out; a publish with an older
	// hash fails with hash_conflict.
	Hash string
	Time time.Time
}

// SuggestedPrompts is one assistant.threads.setSuggestedPrompts call.
type SuggestedPrompts struct {
	Channel  string
	ThreadTS string
	Title    string
	Prompts  []Prompt
	Time     time.Time
}

// Prompt is a suggested prompt: what people see, and the message it sends.
type Prompt struct {
	Title   string `json:"title"`
	Message string `json:"message"`
}

// Title is one assistant.threads.setTitle call.
type Title struct {
	Channel  string
	ThreadTS string
	Title    string
	Time     time.Time
}

// Call is one Web API call as the fake saw it.
type Call struct {
	// Method is the Web API method, such as "chat.postMessage", or
	// "response_url" for a POST to a block action's response_url.
	Method string
	// Args are the arguments, whatever their encoding (query, form, multipart
	// or JSON); a JSON value that is not a string is kept as its JSON text.
	// The token is not among them.
	Args url.Values
	// Token is the token the call carried, from the Authorization header or
	// the token argument.
	Token string
	// JSON reports whether the body was JSON.
	JSON bool
	// Status is the HTTP status of the answer.
	Status int
	// Error is the Slack error code of the answer; empty when ok.
	Error string
	// Time is the fake's clock when the call arrived.
	Time time.Time
}

// Message is a message in a channel. The same type describes a message a test
// adds with Server.AddMessage; fields marked "set by the fake" are ignored
// there.
type Message struct {
	// Channel is the channel id.
	Channel string
	// TS is the message's timestamp (its id in the channel). AddMessage
	// generates one when it is empty.
	TS string
	// ThreadTS is the timestamp of the thread's parent for a reply; for a
	// parent with replies it is empty here (Slack shows it as thread_ts = ts).
	ThreadTS string
	// User is the author's user id; for messages of the bot it is
	// Options.BotUserID.
	User string
	// BotID is set for messages of an app or integration; with an empty
	// User it makes a legacy "bot_message".
	BotID string
	// Username is the display name given to chat.postMessage (kept with
	// the chat:write.customize scope only) or to a bot_message.
	Username string
	// IconURL is the icon_url given to chat.postMessage (kept with the
	// chat:write.customize scope only).
	IconURL string
	// Subtype is the message subtype, such as "channel_join"; empty for
	// ordinary messages.
	Subtype string
	// Text is the message's current text.
	Text string
	// Blocks, Attachments and Metadata are the current JSON arrays/object,
	// nil when absent. The fake gives a block_id to every block that has
	// none, as Slack does.
	Blocks      json.RawMessage
	Attachments json.RawMessage
	Metadata    json.RawMessage
	// Files are the ids of the files shared with the message.
	Files []string
	// ClientMsgID is the client's id of a user's message.
	ClientMsgID string
	// UnfurlLinks and UnfurlMedia are the flags given to chat.postMessage;
	// nil when not given.
	UnfurlLinks *bool
	UnfurlMedia *bool
	// ReplyBroadcast reports a thread reply also sent to the channel.
	ReplyBroadcast bool
	// EphemeralTo is the user who alone sees an ephemeral message.
	EphemeralTo string
	// Updates lists the edits (chat.update, response_url replacements,
	// Server.EditMessage), oldest first. Set by the fake.
	Updates []Update
	// Deleted reports a deleted message. Set by the fake.
	Deleted bool
	// Reactions lists the reactions on the message. Set by the fake.
	Reactions []Reaction
	// Stream is set for a message created by chat.startStream. Set by the
	// fake.
	Stream *Stream
}

// Update is one edit of a message, holding the content after the edit.
type Update struct {
	// TS is the edit's timestamp (edited.ts).
	TS       string
	Text     string
	Blocks   json.RawMessage
	Metadata json.RawMessage
	Time     time.Time
}

// Reaction is an emoji reaction and the users who added it.
type Reaction struct {
	Name  string
	Users []string
}

// Stream is the streaming state of a message created by chat.startStream.
type Stream struct {
	// Active reports that appends are still accepted: chat.stopStream was
	// not called and StreamLifetime has not passed since Started.
	Active bool
	// Started is when chat.startStream was called.
	Started time.Time
	// RecipientUserID and RecipientTeamID are the arguments of
	// chat.startStream.
	RecipientUserID string
	RecipientTeamID string
	// Appends holds the markdown_text of chat.startStream, each
	// chat.appendStream and chat.stopStream, in order, empty ones included.
	Appends []string
	// Chunks holds the chunks arguments, in order; nil entries for calls
	// without chunks are left out.
	Chunks []json.RawMessage
}

// File is a file known to the fake: one a test added, or one the bot
// uploaded through files.getUploadURLExternal.
type File struct {
	ID       string
	Name     string
	Title    string
	Mimetype string
	// User is the uploader.
	User string
	// Content holds the file's bytes.
	Content []byte
	// Length is the length given to files.getUploadURLExternal.
	Length int
	// AltText is the alt_txt given to files.getUploadURLExternal.
	AltText string
	Created time.Time
	// URLPrivate and URLPrivateDownload are served by the fake and need the
	// bot token, as Slack's do.
	URLPrivate         string
	URLPrivateDownload string
	// Uploaded reports that the bytes were received at the upload URL (or
	// that a test added the file).
	Uploaded bool
	// Completed reports that files.completeUploadExternal finished the
	// upload (or that a test added the file).
	Completed bool
	// Shares lists where the file was shared.
	Shares []Share
}

// Share is one sharing of a file into a channel.
type Share struct {
	Channel  string
	TS       string
	ThreadTS string
}

// Status is one assistant.threads.setStatus call.
type Status struct {
	Channel         string
	ThreadTS        string
	Status          string
	LoadingMessages []string
	Time            time.Time
}

// Connection is one Socket Mode websocket connection.
type Connection struct {
	// ID numbers connections from 1, in the order they were opened.
	ID int
	// Open reports that the connection has not been closed by either side.
	Open bool
	// Opened and Closed are the fake's clock when the hello was sent and
	// when the connection ended.
	Opened time.Time
	Closed time.Time
	// Pings and Pongs count websocket ping frames sent and pong frames
	// received.
	Pings int
	Pongs int
}

// SentEnvelope is an envelope written to a Socket Mode connection.
type SentEnvelope struct {
	EnvelopeID             string
	Type                   string
	Payload                json.RawMessage
	AcceptsResponsePayload bool
	RetryAttempt           int
	RetryReason            string
	// Conn is the Connection.ID it was written to.
	Conn int
	Time time.Time
}

// Ack is an acknowledgement read from a Socket Mode connection:
// {"envelope_id": "...", "payload": {...}}.
type Ack struct {
	EnvelopeID string
	// Payload is the response payload, nil when the ack had none.
	Payload json.RawMessage
	// Conn is the Connection.ID it was read from.
	Conn int
	Time time.Time
}

// Message returns the message with timestamp ts in channel, or nil.
func (st *State) Message(channel, ts string) *Message {
	msgs := st.Messages[channel]
	if ix, ok := st.index[channel]; ok {
		if i, ok := ix.byTS[ts]; ok && i < len(msgs) && msgs[i].TS == ts {
			return &msgs[i]
		}
		return nil
	}
	for i := len(msgs) - 1; i >= 0; i-- {
		if msgs[i].TS == ts {
			return &msgs[i]
		}
	}
	return nil
}

// Thread returns the thread whose parent has timestamp ts in channel: the
// parent first, then the replies in order; deleted and ephemeral messages are
// left out.
func (st *State) Thread(channel, ts string) []*Message {
	var out []*Message
	msgs := st.Messages[channel]
	keep := func(m *Message) {
		if !m.Deleted && m.EphemeralTo == "" {
			out = append(out, m)
		}
	}
	if ix, ok := st.index[channel]; ok {
		if i, ok := ix.byTS[ts]; ok {
			keep(&msgs[i]) // the parent
		}
		for _, i := range ix.replies[ts] {
			keep(&msgs[i])
		}
		return out
	}
	for i := range msgs {
		if m := &msgs[i]; m.TS == ts || m.ThreadTS == ts {
			keep(m)
		}
	}
	return out
}

// channelIndex finds a channel's messages by ts, and the replies of each
// thread, without scanning the channel (a fake Slack under load keeps
// thousands of messages in one channel).
type channelIndex struct {
	byTS    map[string]int
	replies map[string][]int // thread root ts → replies, in order
}

// add appends m to its channel's messages and returns the stored message.
func (st *State) add(m Message) *Message {
	msgs := append(st.Messages[m.Channel], m)
	st.Messages[m.Channel] = msgs
	i := len(msgs) - 1
	if st.index == nil {
		st.index = map[string]*channelIndex{}
	}
	ix := st.index[m.Channel]
	if ix == nil {
		ix = &channelIndex{byTS: map[string]int{}, replies: map[string][]int{}}
		for j := range msgs[:i] {
			ix.put(msgs[j], j)
		}
		st.index[m.Channel] = ix
	}
	ix.put(m, i)
	return &msgs[i]
}

func (ix *channelIndex) put(m Message, i int) {
	ix.byTS[m.TS] = i
	if m.ThreadTS != "" && m.ThreadTS != m.TS {
		ix.replies[m.ThreadTS] = append(ix.replies[m.ThreadTS], i)
	}
}

// CallsTo returns the calls of one Web API method, in order.
func (st *State) CallsTo(method string) []Call {
	var out []Call
	for _, c := range st.Calls {
		if c.Method == method {
			out = append(out, c)
		}
	}
	return out
}

// Acked reports whether an ack for envelopeID was read.
func (st *State) Acked(envelopeID string) bool {
	return slices.ContainsFunc(st.Acks, func(a Ack) bool { return a.EnvelopeID == envelopeID })
}

// OpenConnections returns the number of open Socket Mode connections.
func (st *State) OpenConnections() int {
	n := 0
	for _, c := range st.Connections {
		if c.Open {
			n++
		}
	}
	return n
}

// clone returns a deep copy of st. Recorded byte slices and JSON values are
// never changed in place, so they are shared.
func (st *State) clone() *State {
	out := &State{
		Calls:       slices.Clone(st.Calls),
		Messages:    make(map[string][]Message, len(st.Messages)),
		Files:       make(map[string]File, len(st.Files)),
		Statuses:    slices.Clone(st.Statuses),
		Connections: slices.Clone(st.Connections),
		Envelopes:   slices.Clone(st.Envelopes),
		Acks:        slices.Clone(st.Acks),
		Views:       maps.Clone(st.Views),
		Titles:      slices.Clone(st.Titles),
	}
	for _, p := range st.Prompts {
		p.Prompts = slices.Clone(p.Prompts)
		out.Prompts = append(out.Prompts, p)
	}
	for i := range out.Calls {
		out.Calls[i].Args = cloneValues(out.Calls[i].Args)
	}
	for i := range out.Statuses {
		out.Statuses[i].LoadingMessages = slices.Clone(out.Statuses[i].LoadingMessages)
	}
	for ch, msgs := range st.Messages {
		cp := make([]Message, len(msgs))
		for i := range msgs {
			cp[i] = msgs[i].clone()
		}
		out.Messages[ch] = cp
	}
	for id, f := range st.Files {
		f.Shares = slices.Clone(f.Shares)
		out.Files[id] = f
	}
	return out
}

func (m Message) clone() Message {
	m.Files = slices.Clone(m.Files)
	m.Updates = slices.Clone(m.Updates)
	m.Reactions = slices.Clone(m.Reactions)
	for i := range m.Reactions {
		m.Reactions[i].Users = slices.Clone(m.Reactions[i].Users)
	}
	if m.UnfurlLinks != nil {
		v := *m.UnfurlLinks
		m.UnfurlLinks = &v
	}
	if m.UnfurlMedia != nil {
		v := *m.UnfurlMedia
		m.UnfurlMedia = &v
	}
	if m.Stream != nil {
		s := *m.Stream
		s.Appends = slices.Clone(s.Appends)
		s.Chunks = slices.Clone(s.Chunks)
		m.Stream = &s
	}
	return m
}

func cloneValues(v url.Values) url.Values {
	if v == nil {
		return nil
	}
	out := maps.Clone(v)
	for k, vs := range out {
		out[k] = slices.Clone(vs)
	}
	return out
}
