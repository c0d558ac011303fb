// Package slack connects the bridge to Slack: events come in over Socket Mode
// or the Events API over HTTP, replies go out through the Web API as Block Kit
// messages and file uploads, with per-channel pacing, rate-limit handling,
// thinking indicators, streamed replies and button clicks. Beyond messages it
// takes slash commands (commands.go), reactions to the bot's messages, people
// joining channels and the context of agent threads (appevents.go), shows the
// App Home tab (home.go), suggests prompts and titles agent threads, posts
// each bot under its own name and icon, and serves several workspaces that
// install the app through OAuth (workspaces.go, oauth.go). It uses slack-go.
package slack

import (
	"context"
	"crypto/cipher"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	slackapi "github.com/slack-go/slack"

	"github.com/botbridge/botbridge/bridge"
	"github.com/botbridge/botbridge/bridge/logging"
	bridgemedia "github.com/botbridge/botbridge/bridge/media"
	"github.com/botbridge/botbridge/bridge/retry"
)

// Platform is Slack's platform name.
const Platform = bridge.PlatformSlack

// Mode is how Slack delivers events.
type Mode string

// Modes.
const (
	// ModeSocket receives events over a Socket Mode websocket the adapter
	// opens: no inbound port is needed.
	ModeSocket Mode = "socket"
	// ModeHTTP receives events as signed HTTP requests (the Events API) on
	// the handler EventsHandler returns.
	ModeHTTP Mode = "http"
)

// Thinking says how the adapter shows that the bot is working on an answer.
type Thinking string

// Thinking indicators.
const (
	// ThinkingAuto uses the assistant thread status in threads when the app
	// has Slack's agent features (the assistant:write scope), and a
	// reaction everywhere else or when the status fails.
	ThinkingAuto Thinking = "auto"
	// ThinkingStatus always uses assistant.threads.setStatus.
	ThinkingStatus Thinking = "status"
	// ThinkingReaction adds a reaction to the person's message and removes
	// it when the reply comes.
	ThinkingReaction Thinking = "reaction"
	// ThinkingOff shows nothing.
	ThinkingOff Thinking = "off"
)

// DefaultAPIURL is Slack's Web API.
const DefaultAPIURL = "https://slack.com/api/"

// Config configures an Adapter. BotToken or ClientID (with the rest of the
// OAuth fields) is required; AppToken in socket mode, SigningSecret in HTTP
// mode.
type Config struct {
	// BotToken is the bot token, xoxb-…, of the workspace the app was
	// installed in by hand. Its rooms have Slack's own ids (C…).
	BotToken string
	// AppToken is the app-level token with connections:write, xapp-…, for
	// Socket Mode.
	AppToken string
	// SigningSecret checks the requests of the Events API.
	SigningSecret string
	// Mode is ModeSocket (the default) or ModeHTTP.
	Mode Mode
	// APIURL is the Web API base URL; default DefaultAPIURL.
	APIURL string
	// PostInterval is the least time between two posts in one channel
	// (Slack allows about one message per second per channel). Default 1s.
	PostInterval time.Duration
	// Thinking is the thinking indicator; default ThinkingAuto.
	Thinking Thinking
	// ThinkingEmoji is the reaction of ThinkingReaction, without colons;
	// default "eyes".
	ThinkingEmoji string
	// NoStreaming turns off Slack's native chat streaming; streamed replies
	// are then posted and updated with chat.update.
	NoStreaming bool
	// MaxFileBytes caps the files the adapter downloads: people's files it
	// hands to the bot and the bot's files it uploads. Default 20 MB.
	MaxFileBytes int64
	// DownloadTimeout bounds the download of one of the bot's files.
	// Default 30s.
	DownloadTimeout time.Duration
	// AllowPrivateURLs lets the adapter download the bot's files from
	// loopback and private addresses. Off by default, so that a bot's reply
	// cannot make the bridge fetch from its own network.
	AllowPrivateURLs bool
	// RetryMax caps the backoff between attempts to connect or to pass
	// Slack's authentication. Default 5 minutes.
	RetryMax time.Duration
	// LookupWait is how long handling an event waits for a user's or
	// channel's name before going on without it. Default 1s.
	LookupWait time.Duration
	// HTTPClient makes the Web API calls and file transfers; default a new
	// client. Its Timeout should be zero: calls are bounded by contexts.
	HTTPClient *http.Client
	// Logger receives the adapter's logs (component "slack"); default
	// discard.
	Logger *slog.Logger
	// Now is the wall clock, used to check the timestamps of Events API
	// requests; default time.Now.
	Now func() time.Time
	// OnRateLimit, if set, is called each time Slack answers 429 and the
	// adapter waits before trying method again; for metrics. It must not
	// block.
	OnRateLimit func(method string, wait time.Duration)

	// Router is the bridge's router, which the adapter asks for what a
	// route says outside messages: the suggested prompts of an agent
	// thread, the bot of the App Home tab. Nil: no prompts, and the Home tab
	// names no bot.
	Router *bridge.Router
	// Bots are the identities of the bots by name (bridge.Outbound.Bot):
	// their posts carry the name and icon (with the chat:write.customize
	// scope), and the Home tab shows them.
	Bots map[string]BotIdentity
	// Commands are the app's slash commands; a command not listed is
	// answered with a hint to add it.
	Commands []Command
	// HomeText is the Home tab's "how to talk to me" text, in Markdown;
	// empty: one made from the commands. The tab is published when
	// people open it (the app_home_opened event).
	HomeText string

	// Several workspaces (see workspaces.go): with ClientID, workspaces
	// install the app through OAuth v2 (InstallHandler, CallbackHandler)
	// and each one's bot token is kept sealed in Installs.
	ClientID     string
	ClientSecret string
	// TokenKey seals the workspaces' tokens and signs the OAuth state: at
	// least 32 characters of a secret (keys are derived from it with
	// HKDF-SHA256). Changing it makes the stored tokens unreadable: the
	// workspaces must install the app again.
	TokenKey string
	// RedirectURL is the OAuth redirect URL, the public address of
	// CallbackHandler; it must be among the app's redirect URLs.
	RedirectURL string
	// AuthorizeURL is Slack's authorize page; default APIURL's host with
	// /oauth/v2/authorize (https://slack.com/oauth/v2/authorize).
	AuthorizeURL string
	// Scopes are the bot scopes the install asks for; default
	// DefaultScopes().
	Scopes []string
	// Installs keeps the installed workspaces; required with ClientID.
	Installs Installs
	// InstallTTL is how long an install link stays valid, from
	// InstallHandler to CallbackHandler. Default 10 minutes.
	InstallTTL time.Duration
}

// BotIdentity is how a bot shows in Slack.
type BotIdentity struct {
	// Name is the name its posts carry (chat.postMessage username).
	Name string
	// IconURL is the picture its posts carry.
	IconURL string
	// Description says what the bot does, on the Home tab (Markdown).
	Description string
}

// Command is a slash command of the app.
type Command struct {
	// Name is the command, "/ask".
	Name string
	// Description says what it does, on the Home tab.
	Description string
	// Reset makes it start a new conversation instead of asking the bot.
	Reset bool
	// Bot is the name of the bot it asks (bridge.Command.Bot); empty: the
	// route's.
	Bot string
}

// Log attribute keys of the adapter, beside the bridge's.
const (
	logMethod   = "method"
	logCode     = "code"
	logEnvelope = "envelope"
	logAttempt  = "attempt"
	logChannel  = "channel"
	logCount    = "repeats"
	logTeam     = "team"
	logBotUser  = "bot_user"
	logMode     = "mode"
	logTS       = "ts"
	logRemote   = "remote"
)

// Adapter is the Slack adapter. Create it with New and Run it; in HTTP mode
// also serve EventsHandler, and with several workspaces InstallHandler and
// CallbackHandler.
type Adapter struct {
	cfg Config
	// api is the client of the app-level token (Socket Mode).
	api     *slackapi.Client
	log     *slog.Logger
	now     func() time.Time
	fetch   *bridgemedia.Fetcher // the bot's files, guarded against private addresses
	private *http.Client         // Slack's own file URLs, which need the bot token
	// home is the workspace of BotToken; nil without one.
	home *workspace
	// seal seals workspace tokens, stateKey signs OAuth states; nil
	// without ClientID.
	seal     cipher.AEAD
	stateKey []byte
	commands map[string]Command

	// Set by Run.
	mu sync.Mutex
	// spaces are the workspaces installed through OAuth, by id.
	spaces map[string]*workspace
	// known is closed once Run knows who the bot is in the workspaces.
	known     chan struct{}
	knownOnce sync.Once
	handler   bridge.Handler
	bg        context.Context // background work of Run (name lookups, message updates)
	wg        sync.WaitGroup

	connected  atomic.Bool
	statusFail atomic.Bool // assistant.threads.setStatus failed: use reactions
	noStream   atomic.Bool // chat.startStream is not available

	health  health
	logs    logging.Limiter
	users   cache[userInfo]
	chans   cache[string]
	pace    pacer
	streams streamSet
	threads threadSet
}

// identity is who the bot is in a workspace, from auth.test.
type identity struct {
	userID, botID, teamID string
	scopes                []string
}

// hasScope reports whether the bot token was granted scope.
func (id identity) hasScope(scope string) bool { return slices.Contains(id.scopes, scope) }

var (
	_ bridge.Adapter    = (*Adapter)(nil)
	_ bridge.Editor     = (*Adapter)(nil)
	_ bridge.Deleter    = (*Adapter)(nil)
	_ bridge.Typer      = (*Adapter)(nil)
	_ bridge.Streamer   = (*Adapter)(nil)
	_ bridge.FileOpener = (*Adapter)(nil)
	_ bridge.Recoverer  = (*Adapter)(nil)
	_ bridge.Checker    = (*Adapter)(nil)
)

// New checks cfg and returns an adapter, not yet connected. Its errors are
// configuration errors.
func New(cfg Config) (*Adapter, error) {
	if cfg.Mode == "" {
		cfg.Mode = ModeSocket
	}
	switch {
	case cfg.BotToken == "" && cfg.ClientID == "":
		return nil, errors.New("slack: no bot token and no OAuth client id: give one of them")
	case cfg.BotToken != "" && !strings.HasPrefix(cfg.BotToken, "xoxb-"):
		return nil, errors.New("slack: the bot token must start with xoxb-")
	case cfg.Mode == ModeSocket && !strings.HasPrefix(cfg.AppToken, "xapp-"):
		return nil, errors.New("slack: socket mode needs an app-level token starting with xapp-")
	case cfg.Mode == ModeHTTP && cfg.SigningSecret == "":
		return nil, errors.New("slack: http mode needs the signing secret")
	case cfg.Mode != ModeSocket && cfg.Mode != ModeHTTP:
		return nil, fmt.Errorf("slack: mode %q is not socket or http", cfg.Mode)
	}
	switch cfg.Thinking {
	case "":
		cfg.Thinking = ThinkingAuto
	case ThinkingAuto, ThinkingStatus, ThinkingReaction, ThinkingOff:
	default:
		return nil, fmt.Errorf("slack: thinking %q is not auto, status, reaction or off", cfg.Thinking)
	}
	if cfg.APIURL == "" {
		cfg.APIURL = DefaultAPIURL
	}
	if !strings.HasSuffix(cfg.APIURL, "/") {
		cfg.APIURL += "/"
	}
	if cfg.PostInterval <= 0 {
		cfg.PostInterval = time.Second
	}
	if cfg.ThinkingEmoji == "" {
		cfg.ThinkingEmoji = "eyes"
	}
	cfg.ThinkingEmoji = strings.Trim(cfg.ThinkingEmoji, ":")
	if cfg.MaxFileBytes <= 0 {
		cfg.MaxFileBytes = 20 << 20
	}
	if cfg.DownloadTimeout <= 0 {
		cfg.DownloadTimeout = 30 * time.Second
	}
	if cfg.RetryMax <= 0 {
		cfg.RetryMax = 5 * time.Minute
	}
	if cfg.LookupWait <= 0 {
		cfg.LookupWait = time.Second
	}
	if cfg.InstallTTL <= 0 {
		cfg.InstallTTL = 10 * time.Minute
	}
	if cfg.HTTPClient == nil {
		// Every Web API call goes to one host: keep enough connections to it
		// that busy rooms reuse them instead of paying a TLS handshake each.
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = 64
		cfg.HTTPClient = &http.Client{Transport: t}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	a := &Adapter{
		cfg:    cfg,
		known:  make(chan struct{}),
		spaces: make(map[string]*workspace),
		api: slackapi.New(cfg.BotToken,
			slackapi.OptionAppLevelToken(cfg.AppToken),
			slackapi.OptionAPIURL(cfg.APIURL),
			slackapi.OptionHTTPClient(cfg.HTTPClient)),
		log:      cfg.Logger.With(bridge.LogComponent, "slack"),
		now:      cfg.Now,
		commands: make(map[string]Command),
	}
	for _, c := range cfg.Commands {
		if !strings.HasPrefix(c.Name, "/") {
			return nil, fmt.Errorf("slack: command %q must start with /", c.Name)
		}
		a.commands[c.Name] = c
	}
	if cfg.BotToken != "" {
		a.home = a.newWorkspace("", cfg.BotToken)
	}
	if cfg.ClientID != "" {
		if err := a.initOAuth(); err != nil {
			return nil, err
		}
	}
	stopped, cancel := context.WithCancel(context.Background())
	cancel()
	a.bg = stopped // no background work before Run
	a.fetch = bridgemedia.NewFetcher(bridgemedia.FetcherConfig{MaxBytes: cfg.MaxFileBytes, Timeout: cfg.DownloadTimeout,
		AllowPrivate: cfg.AllowPrivateURLs, Transport: cfg.HTTPClient.Transport})
	a.private = tokenClient(cfg.HTTPClient)
	a.users = cache[userInfo]{ttl: time.Hour, fetch: a.fetchUser}
	a.chans = cache[string]{ttl: time.Hour, fetch: a.fetchChannelName}
	a.pace.interval = cfg.PostInterval
	return a, nil
}

// Platform implements bridge.Adapter.
func (a *Adapter) Platform() bridge.Platform { return Platform }

// Run implements bridge.Adapter: it learns the bot's identity in the
// configured workspace (auth.test, retried slowly while the token is
// refused) and loads the workspaces installed through OAuth, then receives
// events over Socket Mode, or in HTTP mode lets EventsHandler hand them
// over, until ctx ends. It returns nil then; it never fails for a transient
// cause.
func (a *Adapter) Run(ctx context.Context, h bridge.Handler) error {
	bg, cancel := context.WithCancel(ctx)
	a.mu.Lock()
	a.bg = bg
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		cancel()
		a.mu.Unlock()
		a.wg.Wait()
	}()
	if a.home != nil {
		self, err := a.identify(ctx, a.home)
		if err != nil {
			return nil // ctx ended
		}
		a.mu.Lock()
		a.home.self = self
		a.home.teamID = self.teamID
		a.mu.Unlock()
		a.log.Info("connected to Slack", logTeam, self.teamID, logBotUser, self.userID, logMode, a.cfg.Mode)
	}
	if a.cfg.Installs != nil {
		if err := a.loadWorkspaces(ctx); err != nil {
			return nil // ctx ended
		}
	}
	a.mu.Lock()
	a.handler = h
	a.mu.Unlock()
	a.knownOnce.Do(func() { close(a.known) })
	if a.cfg.Mode == ModeHTTP {
		a.connected.Store(true)
		<-ctx.Done()
		a.connected.Store(false)
		return nil
	}
	a.runSocket(ctx, h)
	return nil
}

// identify calls auth.test with ws's token until it succeeds or ctx ends.
func (a *Adapter) identify(ctx context.Context, ws *workspace) (identity, error) {
	b := a.backoff()
	for {
		id, err := a.authTest(ctx, ws)
		if err == nil {
			return id, nil
		}
		d := b.Next(nil)
		a.logs.Warn(a.log, "auth.test", "cannot reach Slack or the token is refused; retrying", bridge.LogErr, err, bridge.LogWait, d)
		if werr := retry.Wait(ctx, d); werr != nil {
			return identity{}, werr
		}
	}
}

// authTest asks Slack who the bot of ws is, and with which scopes.
func (a *Adapter) authTest(ctx context.Context, ws *workspace) (identity, error) {
	var resp *slackapi.AuthTestResponse
	err := a.call(ctx, ws, "auth.test", "", func(ctx context.Context) error {
		var err error
		resp, err = ws.api.AuthTestContext(ctx)
		return err
	})
	if err != nil {
		return identity{}, err
	}
	id := identity{userID: resp.UserID, botID: resp.BotID, teamID: resp.TeamID}
	if s := resp.Header.Get("X-OAuth-Scopes"); s != "" {
		for sc := range strings.SplitSeq(s, ",") {
			id.scopes = append(id.scopes, strings.TrimSpace(sc))
		}
	}
	return id, nil
}

// backoff returns the waits of the adapter's retry loops: from a second
// (or RetryMax when shorter) to RetryMax.
func (a *Adapter) backoff() *retry.Backoff {
	return retry.Policy{Min: min(time.Second, a.cfg.RetryMax), Max: a.cfg.RetryMax}.New()
}

// whoami returns the bot's identity in ws; empty before Run learned it.
func (a *Adapter) whoami(ws *workspace) identity {
	a.mu.Lock()
	defer a.mu.Unlock()
	return ws.self
}

// identified blocks until Run has learned who the bot is, or ctx ends, and
// returns its identity in ws. Telling the bot's own posts from others'
// needs it.
func (a *Adapter) identified(ctx context.Context, ws *workspace) (identity, error) {
	select {
	case <-a.known:
		return a.whoami(ws), nil
	case <-ctx.Done():
		return identity{}, fmt.Errorf("slack: waiting to learn who the bot is: %w", ctx.Err())
	}
}

// goBackground runs f beside Run's event handling, with Run's context; Run
// waits for it before it returns. It reports false, running nothing, when
// Run is not running.
func (a *Adapter) goBackground(f func(ctx context.Context)) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	ctx := a.bg
	if ctx.Err() != nil {
		return false
	}
	a.wg.Go(func() { f(ctx) })
	return true
}

// Ready implements bridge.Checker: nil when the adapter knows who it is,
// is connected (Socket Mode) and Slack accepts its calls; else what is
// wrong and how to fix it. A workspace installed through OAuth that
// refuses its token does not make the adapter unready: it is logged, and
// dropped when Slack says the app was uninstalled there. It does no I/O.
func (a *Adapter) Ready() error {
	if !a.started() {
		if err := a.health.err(); err != nil {
			return err
		}
		return errors.New("slack: connecting")
	}
	if !a.connected.Load() {
		if err := a.health.err(); err != nil {
			return err
		}
		return errors.New("slack: socket mode is not connected; reconnecting")
	}
	return a.health.err()
}

// started reports whether Run knows who the bot is and takes events.
func (a *Adapter) started() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.handler != nil
}

// health keeps what is wrong with the adapter's access to Slack, by
// problem, for Ready.
type health struct {
	mu       sync.Mutex
	problems map[string]error
}

// set records a problem; it reports whether it is new (to log it once).
func (h *health) set(key string, err error) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.problems == nil {
		h.problems = make(map[string]error)
	}
	old, ok := h.problems[key]
	h.problems[key] = err
	return !ok || old.Error() != err.Error()
}

// clear forgets the problems whose key matches; it reports whether there
// were any.
func (h *health) clear(match func(key string) bool) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := len(h.problems)
	for k := range h.problems {
		if match(k) {
			delete(h.problems, k)
		}
	}
	return len(h.problems) != n
}

func (h *health) err() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.problems) == 0 {
		return nil
	}
	keys := make([]string, 0, len(h.problems))
	for k := range h.problems {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	errs := make([]error, len(keys))
	for i, k := range keys {
		errs[i] = h.problems[k]
	}
	return errors.Join(errs...)
}
