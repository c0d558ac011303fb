// Package slacktest is a fake Slack for tests. It speaks Slack's real
// protocols over loopback: the Web API under /api/ (form, multipart or JSON
// bodies, bot and app tokens, Slack's error bodies, 429 with Retry-After),
// Socket Mode over a real websocket (hello, ping frames, envelopes, acks,
// disconnect requests), the external file upload flow, private file URLs that
// need the bot token, and block action response_urls. It also signs and posts
// Events API and interactivity requests for apps that use HTTP instead of
// Socket Mode.
//
// Tests set the scene (users, channels, messages, files, workspaces), change
// it as people would (invite or remove the bot, archive and unarchive
// channels, react, type slash commands, open the Home tab or an assistant
// thread, install and uninstall the app), inject faults (rate limits,
// failing methods, refused or dropped connections, images Slack cannot
// fetch, unacknowledged envelopes delivered again), send envelopes built by
// the event helpers, and wait on the recorded State with WaitFor or WaitAck
// instead of sleeping. Every method is safe for concurrent use.
//
// Several workspaces: the app is installed in the workspace of Options
// (TeamID, BotToken) from the start; teams added with AddTeam install it
// through OAuth v2 (the /oauth/v2/authorize page, then oauth.v2.access),
// in one team or org-wide for an Enterprise Grid org. Each install has its
// own bot token, bot user and bot id; a token reaches only the channels of
// the teams its install serves, events name the team (and enterprise) of
// their channel, and Uninstall revokes a token (token_revoked).
//
// Web API methods: auth.test, apps.connections.open, oauth.v2.access,
// users.info, conversations.info, conversations.members,
// conversations.history, conversations.replies, chat.postMessage,
// chat.update, chat.delete, chat.postEphemeral, chat.startStream,
// chat.appendStream, chat.stopStream, reactions.add, reactions.remove,
// files.getUploadURLExternal, files.completeUploadExternal, files.info,
// views.publish, assistant.threads.setStatus,
// assistant.threads.setSuggestedPrompts and assistant.threads.setTitle.
// Any other method answers unknown_method. Messages are held to Slack's
// documented limits (50 blocks, 25 elements per actions block, 100 options
// per menu, 3,000 characters of section text, 40,000 of message text; see
// MaxBlocks), refused with Slack's error codes and explanations.
//
// Known differences from Slack: files.completeUploadExternal shares a file at
// once (Slack does it shortly after answering); events_api envelopes that are
// not acked are redelivered only when Options.RedeliverAfter is set (else send
// the retry with Send and RetryAttempt); and the bot's own posts are not
// echoed as message events on their own (send MessageEvent of the recorded
// message to test that the app ignores them).
package slacktest

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// Defaults of Options.
const (
	DefaultBotToken     = "xoxb-0000000001-0000000002-fakebottoken"
	DefaultAppToken     = "xapp-1-A0000APP1-0000000003-fakeapptoken"
	DefaultBotUserID    = "U0000BOT1"
	DefaultBotID        = "B0000BOT1"
	DefaultTeamID       = "T0000TEAM"
	DefaultAppID        = "A0000APP1"
	DefaultBotName      = "botbridge"
	DefaultPingInterval = 10 * time.Second
	DefaultClientID     = "0000000000.0000000001"
	DefaultClientSecret = "fakeclientsecret"
)

// MaxRetryAttempts is how many times Slack delivers an unacknowledged event
// again.
const MaxRetryAttempts = 3

// StreamLifetime is how long after chat.startStream a streamed message still
// accepts appends; later calls answer message_not_in_streaming_state, as
// Slack does.
const StreamLifetime = 5 * time.Minute

// Envelope types of Socket Mode.
const (
	EventsAPI     = "events_api"
	Interactive   = "interactive"
	SlashCommands = "slash_commands"
)

// Reasons of a Socket Mode disconnect message.
const (
	ReasonRefreshRequested = "refresh_requested"
	ReasonLinkDisabled     = "link_disabled"
	ReasonWarning          = "warning"
)

// Log attribute keys.
const (
	logErr    = "err"
	logMethod = "method"
	logConn   = "conn"
)

// DefaultScopes returns the bot scopes granted when Options.Scopes is nil:
// what a bot reading and writing messages, reactions and files in every kind
// of conversation needs. chat:write.public is not among them, so posting in a
// public channel the bot is not a member of answers not_in_channel.
func DefaultScopes() []string {
	return []string{
		"app_mentions:read", "assistant:write",
		"channels:history", "channels:read", "chat:write",
		"files:read", "files:write",
		"groups:history", "groups:read", "im:history", "im:read",
		"mpim:history", "mpim:read", "reactions:read", "reactions:write",
		"users:read",
	}
}

// Options configures a Server. The zero value is a valid configuration.
type Options struct {
	// BotToken is the bot token (xoxb-) every Web API method but
	// apps.connections.open accepts; default DefaultBotToken.
	BotToken string
	// AppToken is the app-level token (xapp-) apps.connections.open accepts;
	// default DefaultAppToken.
	AppToken string
	// SigningSecret signs what PostEvent and PostInteraction send; default
	// empty (an empty key still gives a valid HMAC).
	SigningSecret string
	// BotUserID, BotID, TeamID and AppID identify the bot; defaults
	// DefaultBotUserID, DefaultBotID, DefaultTeamID and DefaultAppID.
	BotUserID string
	BotID     string
	TeamID    string
	AppID     string
	// BotName is the bot user's name; default DefaultBotName.
	BotName string
	// ClientID and ClientSecret are the app's OAuth credentials, which
	// /oauth/v2/authorize and oauth.v2.access check; defaults
	// DefaultClientID and DefaultClientSecret.
	ClientID     string
	ClientSecret string
	// Scopes are the bot token's OAuth scopes: a method needing another one
	// answers missing_scope with needed and provided. Nil means
	// DefaultScopes().
	Scopes []string
	// PingInterval is the time between websocket pings on a Socket Mode
	// connection (the first is sent right after hello); default 10s.
	// slack-go's socketmode client reconnects when it sees no ping for 30s.
	PingInterval time.Duration
	// RedeliverAfter, when positive, makes the fake behave as Slack does with
	// an events_api envelope that is not acked: after this long it sends the
	// payload again in a new envelope with retry_attempt one higher and
	// retry_reason "timeout", up to MaxRetryAttempts. Slack waits about 3
	// seconds; zero sends every envelope once.
	RedeliverAfter time.Duration
	// Spread makes Send give each envelope to the next open Socket Mode
	// connection in turn, as Slack spreads an app's events over its
	// connections (several replicas of an app each hold one); default: the
	// newest connection.
	Spread bool
	// Logger receives the fake's logs; nil discards them.
	Logger *slog.Logger
	// Now is the clock for message timestamps, event times, signatures and
	// stream lifetimes; default time.Now.
	Now func() time.Time
}

// User is a workspace member known to users.info.
type User struct {
	// ID is the user id, such as "U012AB3CD".
	ID          string
	Name        string
	RealName    string
	DisplayName string
	Email       string
	// Image is the avatar URL, given for every image_* size.
	Image string
	// TZ is the IANA time zone; default "America/Los_Angeles".
	TZ      string
	IsBot   bool
	BotID   string
	Deleted bool
}

// ChannelType is a kind of conversation, spelled as Slack spells channel_type
// in message events.
type ChannelType string

// Kinds of conversations.
const (
	Public  ChannelType = "channel"
	Private ChannelType = "group"
	IM      ChannelType = "im"
	MPIM    ChannelType = "mpim"
)

// Channel is a conversation known to the fake.
type Channel struct {
	// ID is the conversation id: "C…" for channels, "G…" or "C…" for
	// private channels and group DMs, "D…" for DMs.
	ID string
	// Name is the channel name (without #); ignored for DMs.
	Name string
	// Type is the kind of conversation; default Public.
	Type ChannelType
	// Members are the member user ids. The bot is added when IsMember is
	// set; for a DM, User and the bot are the members.
	Members []string
	// IsMember reports that the bot is a member; DMs always have the bot.
	IsMember bool
	// User is the other party of a DM.
	User string
	// Team is the workspace of the conversation; default Options.TeamID.
	// Only an install serving it may use it (see Team).
	Team          string
	Topic         string
	Purpose       string
	IsArchived    bool
	Created       time.Time
	CreatorUserID string
}

// Server is the fake Slack. Create it with New, serve it with Start (or mount
// it: it is an http.Handler) and Close it.
type Server struct {
	opts     Options
	methods  map[string]apiMethod
	log      *slog.Logger
	now      func() time.Time
	client   *http.Client
	upgrader websocket.Upgrader

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	srvMu sync.Mutex
	srv   *http.Server
	ln    net.Listener

	mu           sync.Mutex
	closed       bool
	changed      chan struct{}
	st           State
	users        map[string]User
	channels     map[string]*Channel
	uploads      map[string]string // upload URL secret → file id
	responseURLs map[string]responseURL
	tickets      map[string]bool
	conns        map[int]*socketConn
	turn         int // of Spread
	refuse       bool
	refuseImage  func(url string) bool
	rateLimits   map[string]rateLimit
	failures     map[string]failure
	lastTS       int64 // microseconds of the last timestamp handed out
	seq          int   // for generated ids
	teams        map[string]Team
	installs     []*install          // in the order they were made
	tokens       map[string]*install // by bot token
	codes        map[string]grant    // OAuth codes not yet exchanged
}

type rateLimit struct {
	n          int
	retryAfter time.Duration
}

type failure struct {
	n    int
	code string
}

// responseURL is what a block action's response_url refers to.
type responseURL struct {
	channel   string
	messageTS string
	user      string
}

// New returns a Server configured by opts, not yet listening.
func New(opts Options) (*Server, error) {
	def := func(v *string, d string) {
		if *v == "" {
			*v = d
		}
	}
	def(&opts.BotToken, DefaultBotToken)
	def(&opts.AppToken, DefaultAppToken)
	def(&opts.BotUserID, DefaultBotUserID)
	def(&opts.BotID, DefaultBotID)
	def(&opts.TeamID, DefaultTeamID)
	def(&opts.AppID, DefaultAppID)
	def(&opts.BotName, DefaultBotName)
	def(&opts.ClientID, DefaultClientID)
	def(&opts.ClientSecret, DefaultClientSecret)
	switch {
	case !strings.HasPrefix(opts.BotToken, "xoxb-"):
		return nil, errors.New("slacktest: new: BotToken must start with xoxb-")
	case !strings.HasPrefix(opts.AppToken, "xapp-"):
		return nil, errors.New("slacktest: new: AppToken must start with xapp-")
	case opts.PingInterval < 0:
		return nil, errors.New("slacktest: new: PingInterval must not be negative")
	case opts.RedeliverAfter < 0:
		return nil, errors.New("slacktest: new: RedeliverAfter must not be negative")
	}
	if opts.Scopes == nil {
		opts.Scopes = DefaultScopes()
	}
	opts.Scopes = slices.Clone(opts.Scopes)
	if opts.PingInterval == 0 {
		opts.PingInterval = DefaultPingInterval
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		opts:         opts,
		methods:      methods(),
		log:          log.With("component", "slacktest"),
		now:          opts.Now,
		client:       &http.Client{},
		upgrader:     websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }},
		changed:      make(chan struct{}),
		users:        make(map[string]User),
		channels:     make(map[string]*Channel),
		uploads:      make(map[string]string),
		responseURLs: make(map[string]responseURL),
		tickets:      make(map[string]bool),
		conns:        make(map[int]*socketConn),
		rateLimits:   make(map[string]rateLimit),
		failures:     make(map[string]failure),
		teams:        make(map[string]Team),
		tokens:       make(map[string]*install),
		codes:        make(map[string]grant),
		st: State{
			Messages: make(map[string][]Message),
			Files:    make(map[string]File),
		},
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	home := &install{id: opts.TeamID, teamID: opts.TeamID, token: opts.BotToken, botUserID: opts.BotUserID,
		botID: opts.BotID, scopes: opts.Scopes}
	s.installs = append(s.installs, home)
	s.tokens[home.token] = home
	s.users[opts.BotUserID] = User{
		ID:       opts.BotUserID,
		Name:     opts.BotName,
		RealName: opts.BotName,
		IsBot:    true,
		BotID:    opts.BotID,
	}
	return s, nil
}

// Start listens on addr ("127.0.0.1:0" when empty) and serves in the
// background until Close.
func (s *Server) Start(addr string) error {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	s.srvMu.Lock()
	defer s.srvMu.Unlock()
	if s.srv != nil {
		return errors.New("slacktest: start: already started")
	}
	if s.ctx.Err() != nil {
		return errors.New("slacktest: start: server closed")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("slacktest: start: %w", err)
	}
	s.ln = ln
	s.srv = &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	s.wg.Go(func() {
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("serve", logErr, err)
		}
	})
	return nil
}

// URL returns the server's base URL, "http://127.0.0.1:PORT", after Start;
// it is empty before.
func (s *Server) URL() string {
	s.srvMu.Lock()
	defer s.srvMu.Unlock()
	if s.ln == nil {
		return ""
	}
	return "http://" + s.ln.Addr().String()
}

// APIURL returns the Web API base URL, URL()+"/api/", for
// slack.OptionAPIURL.
func (s *Server) APIURL() string { return s.URL() + "/api/" }

// Options returns the options in effect, defaults filled in.
func (s *Server) Options() Options {
	o := s.opts
	o.Scopes = slices.Clone(o.Scopes)
	return o
}

// Close closes every Socket Mode connection abruptly, stops the listener and
// waits for the server's goroutines. Calling it again does nothing.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	conns := make([]*socketConn, 0, len(s.conns))
	for _, c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()

	s.cancel()
	for _, c := range conns {
		_ = c.ws.Close()
	}
	s.srvMu.Lock()
	srv := s.srv
	s.srvMu.Unlock()
	var err error
	if srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err = srv.Shutdown(ctx); err != nil {
			err = errors.Join(err, srv.Close())
		}
		cancel()
	}
	s.wg.Wait()
	s.client.CloseIdleConnections()
	if err != nil {
		return fmt.Errorf("slacktest: close: %w", err)
	}
	return nil
}

// ServeHTTP serves the Web API (/api/), Socket Mode (/link/), uploads
// (/upload/), private files (/files-pri/) and response_urls (/actions/).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch p := r.URL.Path; {
	case strings.HasPrefix(p, "/api/"):
		s.serveAPI(w, r)
	case p == "/link" || p == "/link/":
		s.serveLink(w, r)
	case strings.HasPrefix(p, "/upload/v1/"):
		s.serveUpload(w, r)
	case strings.HasPrefix(p, "/files-pri/"):
		s.serveFile(w, r)
	case p == "/signin":
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = fmt.Fprint(w, "<!DOCTYPE html><html><body>Sign in to your workspace</body></html>")
	case strings.HasPrefix(p, "/actions/"), strings.HasPrefix(p, "/commands/"):
		s.serveResponseURL(w, r)
	case p == "/oauth/v2/authorize":
		s.serveAuthorize(w, r)
	default:
		http.NotFound(w, r)
	}
}

// AddUser adds or replaces a user.
func (s *Server) AddUser(u User) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.users[u.ID] = u
	s.notify()
}

// AddChannel adds or replaces a conversation.
func (s *Server) AddChannel(c Channel) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.Type == "" {
		c.Type = Public
	}
	if c.Team == "" {
		c.Team = s.opts.TeamID
	}
	bot := s.opts.BotUserID
	if in := s.installFor(c.Team); in != nil {
		bot = in.botUserID
	}
	c.Members = slices.Clone(c.Members)
	if c.Type == IM {
		c.IsMember = true
		c.Members = []string{c.User, bot}
	}
	if c.IsMember && !slices.Contains(c.Members, bot) {
		c.Members = append(c.Members, bot)
	}
	if c.Created.IsZero() {
		c.Created = s.now()
	}
	s.channels[c.ID] = &c
	s.notify()
}

// JoinChannel adds user to the members of channel (the bot too, when user is
// Options.BotUserID: an invitation of the bot) and records the channel_join
// message Slack posts, which it returns for MessageEvent. As on Slack, no one
// joins an archived channel or a DM.
func (s *Server) JoinChannel(channel, user string) (Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.memberChange(channel)
	if err != nil {
		return Message{}, fmt.Errorf("slacktest: join channel: %w", err)
	}
	if c.IsArchived {
		return Message{}, fmt.Errorf("slacktest: join channel: %s is archived", channel)
	}
	if !slices.Contains(c.Members, user) {
		c.Members = append(c.Members, user)
	}
	if s.isBotUser(user) {
		c.IsMember = true
	}
	return s.channelMessage(channel, user, "channel_join", "<@"+user+"> has joined the channel"), nil
}

// LeaveChannel removes user from the members of channel, as when they leave
// or are removed (the bot too, when user is Options.BotUserID: the bot is
// then refused with not_in_channel in a public channel and
// channel_not_found in a private one), and records the channel_leave
// message Slack posts, which it returns for MessageEvent.
func (s *Server) LeaveChannel(channel, user string) (Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.memberChange(channel)
	if err != nil {
		return Message{}, fmt.Errorf("slacktest: leave channel: %w", err)
	}
	if !slices.Contains(c.Members, user) {
		return Message{}, fmt.Errorf("slacktest: leave channel: %s is not in %s", user, channel)
	}
	s.leave(c, user)
	return s.channelMessage(channel, user, "channel_leave", "<@"+user+"> has left the channel"), nil
}

// ArchiveChannel archives channel as user and records the channel_archive
// message Slack posts, which it returns. As on Slack, archiving removes the
// bot from the channel: posting there answers is_archived, and after
// UnarchiveChannel not_in_channel until the bot is invited again
// (JoinChannel).
func (s *Server) ArchiveChannel(channel, user string) (Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.memberChange(channel)
	if err != nil {
		return Message{}, fmt.Errorf("slacktest: archive channel: %w", err)
	}
	if c.IsArchived {
		return Message{}, fmt.Errorf("slacktest: archive channel: %s is archived already", channel)
	}
	m := s.channelMessage(channel, user, "channel_archive", "<@"+user+"> archived the channel")
	c.IsArchived = true
	s.leave(c, s.opts.BotUserID)
	return m, nil
}

// UnarchiveChannel unarchives channel as user and records the
// channel_unarchive message Slack posts, which it returns. The bot is not a
// member again until it is invited (JoinChannel).
func (s *Server) UnarchiveChannel(channel, user string) (Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, err := s.memberChange(channel)
	if err != nil {
		return Message{}, fmt.Errorf("slacktest: unarchive channel: %w", err)
	}
	if !c.IsArchived {
		return Message{}, fmt.Errorf("slacktest: unarchive channel: %s is not archived", channel)
	}
	c.IsArchived = false
	return s.channelMessage(channel, user, "channel_unarchive", "<@"+user+"> un-archived the channel"), nil
}

// memberChange returns a channel whose members can change: not a DM. The
// caller holds s.mu.
func (s *Server) memberChange(channel string) (*Channel, error) {
	c, ok := s.channels[channel]
	switch {
	case !ok:
		return nil, fmt.Errorf("no channel %s", channel)
	case c.Type == IM:
		return nil, fmt.Errorf("%s is a DM", channel)
	}
	return c, nil
}

// leave removes user from c's members. The caller holds s.mu.
func (s *Server) leave(c *Channel, user string) {
	c.Members = slices.DeleteFunc(c.Members, func(m string) bool { return m == user })
	if s.isBotUser(user) {
		c.IsMember = false
	}
}

// channelMessage records a message Slack posts about a channel's members or
// state and returns it. The caller holds s.mu.
func (s *Server) channelMessage(channel, user, subtype, text string) Message {
	m := Message{Channel: channel, TS: s.nextTS(), User: user, Subtype: subtype, Text: text}
	s.st.add(m)
	s.notify()
	return m.clone()
}

// AddFile adds a file as if a user had uploaded it, and returns it with its
// id and private URLs (served by the fake; call Start first). Name, Mimetype
// and User should be set; Content is what downloads return.
func (s *Server) AddFile(f File) File {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f.ID == "" {
		f.ID = s.newID("F")
	}
	if f.Title == "" {
		f.Title = f.Name
	}
	if f.Mimetype == "" {
		f.Mimetype = "application/octet-stream"
	}
	if f.Created.IsZero() {
		f.Created = s.now()
	}
	f.Length = len(f.Content)
	f.Uploaded, f.Completed = true, true
	f.URLPrivate, f.URLPrivateDownload = s.fileURLs(s.URL(), f.ID, f.Name)
	f.Shares = slices.Clone(f.Shares)
	s.st.Files[f.ID] = f
	s.notify()
	return f
}

// AddMessage records a message posted by someone other than the bot (a user,
// or another app when BotID is set), so that history, replies and block
// actions see it. It fills TS (from the clock) and, for a user's message,
// ClientMsgID and rich text Blocks made from Text, and returns the message as
// recorded, ready for MessageEvent or AppMentionEvent.
func (s *Server) AddMessage(m Message) Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	m = m.clone()
	if m.TS == "" {
		m.TS = s.nextTS()
	}
	if m.User != "" && m.BotID == "" && m.Subtype == "" {
		if m.ClientMsgID == "" {
			m.ClientMsgID = newUUID()
		}
		if m.Blocks == nil && m.Text != "" {
			m.Blocks = richTextBlocks(m.Text)
		}
	}
	m.Blocks = s.withBlockIDs(m.Blocks)
	for _, id := range m.Files {
		if f, ok := s.st.Files[id]; ok {
			f.Shares = append(f.Shares, Share{Channel: m.Channel, TS: m.TS, ThreadTS: m.ThreadTS})
			s.st.Files[id] = f
		}
	}
	s.st.add(m)
	s.notify()
	return m.clone()
}

// EditMessage changes the text of a recorded message as its author would,
// and returns the message before and after, for MessageChangedEvent.
func (s *Server) EditMessage(channel, ts, text string) (prev, cur Message, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.st.Message(channel, ts)
	if m == nil || m.Deleted {
		return Message{}, Message{}, fmt.Errorf("slacktest: edit message: no message %s in %s", ts, channel)
	}
	prev = m.clone()
	m.Text = text
	if m.User != "" && m.BotID == "" {
		m.Blocks = s.withBlockIDs(richTextBlocks(text))
	}
	m.Updates = append(m.Updates, Update{TS: s.nextTS(), Text: m.Text, Blocks: m.Blocks, Metadata: m.Metadata, Time: s.now()})
	s.notify()
	return prev, m.clone(), nil
}

// DeleteMessage marks a recorded message deleted as its author would, and
// returns it as it was, for MessageDeletedEvent.
func (s *Server) DeleteMessage(channel, ts string) (Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.st.Message(channel, ts)
	if m == nil || m.Deleted {
		return Message{}, fmt.Errorf("slacktest: delete message: no message %s in %s", ts, channel)
	}
	prev := m.clone()
	m.Deleted = true
	s.notify()
	return prev, nil
}

// RateLimit makes the next n calls of method answer HTTP 429 with a
// Retry-After header (retryAfter rounded up to whole seconds) and
// {"ok":false,"error":"ratelimited"}. n <= 0 removes the limit.
func (s *Server) RateLimit(method string, n int, retryAfter time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n <= 0 {
		delete(s.rateLimits, method)
		return
	}
	s.rateLimits[method] = rateLimit{n: n, retryAfter: retryAfter}
}

// FailMethod makes the next n calls of method answer
// {"ok":false,"error":slackError} (with needed and provided for
// "missing_scope"). n <= 0 removes the failure.
func (s *Server) FailMethod(method, slackError string, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n <= 0 {
		delete(s.failures, method)
		return
	}
	s.failures[method] = failure{n: n, code: slackError}
}

// RefuseImages makes the methods that take blocks answer invalid_blocks
// with Slack's "downloading image failed" message when an image block or an
// image accessory has a URL refuse reports true for, as Slack does with an
// image it cannot fetch. nil accepts every image (the fake never fetches
// them).
func (s *Server) RefuseImages(refuse func(url string) bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refuseImage = refuse
}

// RefuseConnections makes apps.connections.open answer internal_error and
// the websocket endpoint refuse every ticket while refuse is true. Open
// connections are left alone; see DropConnections.
func (s *Server) RefuseConnections(refuse bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refuse = refuse
}

// Snapshot returns a deep copy of the recorded state.
func (s *Server) Snapshot() *State {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st.clone()
}

// WaitFor blocks until cond reports true or ctx ends, and returns ctx's error
// in the latter case. cond runs with the server locked, after every change:
// it must not call the Server's methods, and must not keep st or anything
// reachable from it (copy what it needs, or call Snapshot afterwards).
func (s *Server) WaitFor(ctx context.Context, cond func(st *State) bool) error {
	for {
		s.mu.Lock()
		ok := cond(&s.st)
		ch := s.changed
		s.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("slacktest: wait: %w", context.Cause(ctx))
		}
	}
}

// notify wakes up every WaitFor. The caller holds s.mu.
func (s *Server) notify() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// nextTS returns a new message timestamp from the clock, later than every
// one handed out before. The caller holds s.mu.
func (s *Server) nextTS() string {
	us := s.now().UnixMicro()
	if us <= s.lastTS {
		us = s.lastTS + 1
	}
	s.lastTS = us
	return fmt.Sprintf("%d.%06d", us/1e6, us%1e6)
}

// newID returns a new Slack-like id with prefix, such as "F0000000007". The
// caller holds s.mu.
func (s *Server) newID(prefix string) string {
	s.seq++
	return fmt.Sprintf("%s%010d", prefix, s.seq)
}

// newUUID returns a random version 4 UUID, the form of Slack's envelope ids.
func newUUID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// randomToken returns n random characters from [A-Za-z0-9].
func randomToken(n int) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}
