// Package slack connects the bridge to Slack: events come in over Socket Mode
// or the Events API over HTTP, replies go out through the Web API as Block Kit
// messages and file uploads, with per-channel pacing, rate-limit handling,
// thinking indicators, streamed replies and button clicks. It uses slack-go.
package slack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
	slackapi "github.com/slack-go/slack"

	"github.com/botbridge/botbridge/bridge"
	bridgemedia "github.com/botbridge/botbridge/bridge/media"
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

// Config configures an Adapter. BotToken is required; AppToken in socket
// mode, SigningSecret in HTTP mode.
type Config struct {
	// BotToken is the bot token, xoxb-….
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
// also serve EventsHandler.
type Adapter struct {
	cfg     Config
	api     *slackapi.Client
	log     *slog.Logger
	now     func() time.Time
	fetch   *bridgemedia.Fetcher // the bot's files, guarded against private addresses
	private *http.Client         // Slack's own file URLs, which need the bot token

	// Set by Run.
	mu   sync.Mutex
	self identity
	// known is closed once self is set.
	known     chan struct{}
	knownOnce sync.Once
	handler   bridge.Handler
	bg        context.Context // background work of Run (name lookups, message updates)
	wg        sync.WaitGroup

	connected  atomic.Bool
	statusFail atomic.Bool // assistant.threads.setStatus failed: use reactions
	noStream   atomic.Bool // chat.startStream is not available

	health  health
	logs    limiter
	users   cache[userInfo]
	chans   cache[string]
	pace    pacer
	streams streamSet
}

// identity is who the bot is, from auth.test.
type identity struct {
	userID, botID, teamID string
	scopes                []string
}

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
	case !strings.HasPrefix(cfg.BotToken, "xoxb-"):
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
		cfg:   cfg,
		known: make(chan struct{}),
		api: slackapi.New(cfg.BotToken,
			slackapi.OptionAppLevelToken(cfg.AppToken),
			slackapi.OptionAPIURL(cfg.APIURL),
			slackapi.OptionHTTPClient(cfg.HTTPClient)),
		log: cfg.Logger.With(bridge.LogComponent, "slack"),
		now: cfg.Now,
	}
	stopped, cancel := context.WithCancel(context.Background())
	cancel()
	a.bg = stopped // no background work before Run
	a.fetch = bridgemedia.NewFetcher(bridgemedia.FetcherConfig{MaxBytes: cfg.MaxFileBytes, Timeout: cfg.DownloadTimeout,
		AllowPrivate: cfg.AllowPrivateURLs, Transport: cfg.HTTPClient.Transport})
	a.private = tokenClient(cfg.HTTPClient)
	a.logs.every = time.Minute
	a.users = cache[userInfo]{ttl: time.Hour, fetch: a.fetchUser}
	a.chans = cache[string]{ttl: time.Hour, fetch: a.fetchChannelName}
	a.pace.interval = cfg.PostInterval
	return a, nil
}

// Platform implements bridge.Adapter.
func (a *Adapter) Platform() bridge.Platform { return Platform }

// Run implements bridge.Adapter: it learns the bot's identity (auth.test,
// retried slowly while the token is refused), then receives events over
// Socket Mode, or in HTTP mode lets EventsHandler hand them over, until ctx
// ends. It returns nil then; it never fails for a transient cause.
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
	self, err := a.identify(ctx)
	if err != nil {
		return nil // ctx ended
	}
	a.mu.Lock()
	a.self = self
	a.handler = h
	a.mu.Unlock()
	a.knownOnce.Do(func() { close(a.known) })
	a.log.Info("connected to Slack", logTeam, self.teamID, logBotUser, self.userID, logMode, a.cfg.Mode)
	if a.cfg.Mode == ModeHTTP {
		a.connected.Store(true)
		<-ctx.Done()
		a.connected.Store(false)
		return nil
	}
	a.runSocket(ctx, h)
	return nil
}

// identify calls auth.test until it succeeds or ctx ends.
func (a *Adapter) identify(ctx context.Context) (identity, error) {
	b := a.backoff()
	for {
		var resp *slackapi.AuthTestResponse
		err := a.call(ctx, "auth.test", "", func(ctx context.Context) error {
			var err error
			resp, err = a.api.AuthTestContext(ctx)
			return err
		})
		if err == nil {
			id := identity{userID: resp.UserID, botID: resp.BotID, teamID: resp.TeamID}
			if s := resp.Header.Get("X-OAuth-Scopes"); s != "" {
				for sc := range strings.SplitSeq(s, ",") {
					id.scopes = append(id.scopes, strings.TrimSpace(sc))
				}
			}
			return id, nil
		}
		d := b.NextBackOff()
		a.logs.warn(a.log, "auth.test", "cannot reach Slack or the token is refused; retrying", bridge.LogErr, err, bridge.LogWait, d)
		if werr := sleep(ctx, d); werr != nil {
			return identity{}, werr
		}
	}
}

func (a *Adapter) backoff() *backoff.ExponentialBackOff {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = min(time.Second, a.cfg.RetryMax)
	b.MaxInterval = a.cfg.RetryMax
	b.MaxElapsedTime = 0
	b.Reset()
	return b
}

// whoami returns the bot's identity; empty before Run learned it.
func (a *Adapter) whoami() identity {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.self
}

// identified blocks until Run has learned the bot's identity, or ctx ends.
// Telling the bot's own posts from others' needs it.
func (a *Adapter) identified(ctx context.Context) (identity, error) {
	select {
	case <-a.known:
		return a.whoami(), nil
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
// wrong and how to fix it. It does no I/O.
func (a *Adapter) Ready() error {
	if a.whoami().userID == "" {
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

// hasScope reports whether the bot token was granted scope.
func (a *Adapter) hasScope(scope string) bool {
	return slices.Contains(a.whoami().scopes, scope)
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
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

// limiter rate-limits log lines that repeat in loops: the first of a kind is
// logged, then at most one per interval with the count of those skipped.
type limiter struct {
	every time.Duration
	mu    sync.Mutex
	kinds map[string]*seen
}

type seen struct {
	last    time.Time
	skipped int
}

func (l *limiter) allow(kind string) (int, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.kinds == nil {
		l.kinds = make(map[string]*seen)
	}
	now := time.Now()
	s := l.kinds[kind]
	if s == nil {
		if len(l.kinds) > 1000 {
			clear(l.kinds)
		}
		l.kinds[kind] = &seen{last: now}
		return 0, true
	}
	if now.Sub(s.last) < l.every {
		s.skipped++
		return 0, false
	}
	n := s.skipped
	s.last, s.skipped = now, 0
	return n, true
}

func (l *limiter) warn(log *slog.Logger, kind, msg string, args ...any) {
	if n, ok := l.allow(kind); ok {
		if n > 0 {
			args = append(args, logCount, n)
		}
		log.Warn(msg, args...)
	}
}
