package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/botbridge/botbridge/adapters/slack"
	"github.com/botbridge/botbridge/bridge"
	"github.com/botbridge/botbridge/store"
)

// SlackConfig configures the Slack adapter; see config.example.yaml. Slack
// is on when bot_token (or client_id) is set.
type SlackConfig struct {
	// Mode is socket (Socket Mode, no inbound port) or http (the Events
	// API on the HTTP listener); default socket.
	Mode          string `yaml:"mode"`
	BotToken      string `yaml:"bot_token" secret:"true"`      // xoxb-…
	AppToken      string `yaml:"app_token" secret:"true"`      // xapp-…, socket mode
	SigningSecret string `yaml:"signing_secret" secret:"true"` // http mode
	// EventsPath is where the HTTP listener takes Slack's events and
	// clicks in http mode; default /slack/events.
	EventsPath string `yaml:"events_path"`
	APIURL     string `yaml:"api_url"` // default https://slack.com/api/
	// PostInterval spaces posts in one channel; default 1s.
	PostInterval time.Duration `yaml:"post_interval"`
	// Thinking is auto, status, reaction or off; default auto.
	Thinking      string `yaml:"thinking"`
	ThinkingEmoji string `yaml:"thinking_emoji"` // default eyes
	// Streaming uses Slack's chat streaming for streamed replies; default
	// true.
	Streaming *bool `yaml:"streaming"`
	// MaxFileMB caps files downloaded in either direction, in megabytes;
	// default 20.
	MaxFileMB       int           `yaml:"max_file_mb"`
	DownloadTimeout time.Duration `yaml:"download_timeout"` // default 30s
	// AllowPrivateURLs lets the bot's files come from private addresses.
	AllowPrivateURLs bool `yaml:"allow_private_urls"`
	// Commands are the app's slash commands.
	Commands []SlackCommandConfig `yaml:"commands"`
	// HomeText is the App Home tab's "how to talk to me" text (Markdown);
	// empty: a default with the commands.
	HomeText string `yaml:"home_text"`
	// ClientID and ClientSecret turn on several workspaces: they install
	// the app at /slack/install on the HTTP listener.
	ClientID     string `yaml:"client_id"`
	ClientSecret string `yaml:"client_secret" secret:"true"`
	// TokenKey seals the workspaces' bot tokens in the store: 32 characters
	// or more of a secret.
	TokenKey string `yaml:"token_key" secret:"true"`
	// Scopes are the bot scopes an install asks for; default the
	// manifest's.
	Scopes []string `yaml:"scopes"`
}

// SlackCommandConfig is one slash command of the app.
type SlackCommandConfig struct {
	Name        string `yaml:"name"`
	Description string `yaml:"description"`
	// Reset makes the command start a new conversation.
	Reset bool `yaml:"reset"`
	// Bot is the bot the command asks; empty: the route's.
	Bot string `yaml:"bot"`
}

// Paths of the install flow on the HTTP listener.
const (
	SlackInstallPath  = "/slack/install"
	SlackCallbackPath = "/slack/oauth/callback"
)

// Installed workspaces are kept in the store.
var _ slack.Installs = (*store.DB)(nil)

// DefaultSlackEventsPath is where the Events API requests arrive by default.
const DefaultSlackEventsPath = "/slack/events"

func (c SlackConfig) enabled() bool {
	return c.BotToken != "" || c.AppToken != "" || c.SigningSecret != "" || c.ClientID != ""
}

func (c SlackConfig) mode() slack.Mode {
	if c.Mode == "" {
		return slack.ModeSocket
	}
	return slack.Mode(c.Mode)
}

func (c SlackConfig) eventsPath() string {
	if c.EventsPath == "" {
		return DefaultSlackEventsPath
	}
	return c.EventsPath
}

// validate checks the slack section; each error names its field.
func (c SlackConfig) validate() []error {
	if !c.enabled() {
		return nil
	}
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	switch {
	case c.BotToken == "" && c.ClientID == "":
		add("slack.bot_token: missing; give the bot token (xoxb-…) from the app's OAuth & Permissions page (or slack.client_id for workspaces that install the app), or leave the slack section empty")
	case c.BotToken != "" && !strings.HasPrefix(c.BotToken, "xoxb-"):
		add("slack.bot_token: must start with xoxb- (the Bot User OAuth Token)")
	}
	if c.ClientID != "" {
		if c.ClientSecret == "" {
			add("slack.client_secret: missing; give the app's Client Secret (Basic Information page) with slack.client_id")
		}
		if len(c.TokenKey) < 32 {
			add("slack.token_key: needs 32 characters or more of a secret to seal the workspaces' tokens (openssl rand -hex 32); keep it: without it the tokens must be installed again")
		}
	} else if c.ClientSecret != "" || c.TokenKey != "" {
		add("slack.client_id: missing; client_secret and token_key are for several workspaces, which need the app's Client ID")
	}
	seen := map[string]bool{}
	for i, cmd := range c.Commands {
		field := fmt.Sprintf("slack.commands[%d].name", i)
		switch {
		case !strings.HasPrefix(cmd.Name, "/") || strings.ContainsAny(cmd.Name, " \t"):
			add("%s: %q must be a slash command such as /ask", field, cmd.Name)
		case seen[cmd.Name]:
			add("%s: %s is listed twice", field, cmd.Name)
		}
		seen[cmd.Name] = true
		if cmd.Reset && cmd.Bot != "" {
			add("slack.commands[%d]: a reset command asks no bot; leave bot out", i)
		}
	}
	switch c.mode() {
	case slack.ModeSocket:
		if !strings.HasPrefix(c.AppToken, "xapp-") {
			add("slack.app_token: must start with xapp- (an app-level token with connections:write) in socket mode")
		}
	case slack.ModeHTTP:
		if c.SigningSecret == "" {
			add("slack.signing_secret: missing; http mode needs the app's Signing Secret (Basic Information page)")
		}
		if !strings.HasPrefix(c.eventsPath(), "/") {
			add("slack.events_path: %q must start with /", c.EventsPath)
		}
	default:
		add("slack.mode: %q is not socket or http", c.Mode)
	}
	if c.APIURL != "" {
		if err := checkURL(c.APIURL); err != nil {
			add("slack.api_url: %v", err)
		}
	}
	switch slack.Thinking(c.Thinking) {
	case "", slack.ThinkingAuto, slack.ThinkingStatus, slack.ThinkingReaction, slack.ThinkingOff:
	default:
		add("slack.thinking: %q is not auto, status, reaction or off", c.Thinking)
	}
	if c.PostInterval < 0 {
		add("slack.post_interval: must not be negative")
	}
	if c.DownloadTimeout < 0 {
		add("slack.download_timeout: must not be negative")
	}
	if c.MaxFileMB < 0 {
		add("slack.max_file_mb: must not be negative")
	}
	return errs
}

// validateSlackAcross checks what the slack section needs of the others:
// the public URL of the install flow, the bots the commands name.
func (c *Config) validateSlackAcross(bots map[string]bool) []error {
	if !c.Slack.enabled() {
		return nil
	}
	var errs []error
	if c.Slack.ClientID != "" && c.HTTP.PublicURL == "" {
		errs = append(errs, fmt.Errorf("slack.client_id: needs http.public_url, where Slack sends people back after they install the app (add <public_url>%s to the app's redirect URLs)", SlackCallbackPath))
	}
	for i, cmd := range c.Slack.Commands {
		if cmd.Bot != "" && !bots[cmd.Bot] {
			errs = append(errs, fmt.Errorf("slack.commands[%d].bot: no bot named %q", i, cmd.Bot))
		}
	}
	return errs
}

// validateIdentity checks how the bot shows and is told of events; field
// names the bot.
func (b BotConfig) validateIdentity(field string) []error {
	var errs []error
	if len([]rune(b.DisplayName)) > 80 {
		errs = append(errs, fmt.Errorf("%s.display_name: Slack takes at most 80 characters", field))
	}
	if b.IconURL != "" {
		if err := checkURL(b.IconURL); err != nil {
			errs = append(errs, fmt.Errorf("%s.icon_url: %v", field, err))
		}
	}
	if !bridge.Notify(b.Events).Valid() {
		errs = append(errs, fmt.Errorf("%s.events: %q is not message or event", field, b.Events))
	}
	return errs
}

// prompts turns the configured prompts into the route's.
func prompts(ps []PromptConfig) []bridge.Prompt {
	var out []bridge.Prompt
	for _, p := range ps {
		out = append(out, bridge.Prompt{Title: p.Title, Message: p.Message})
	}
	return out
}

// slackAdapter builds the Slack adapter when the configuration enables it,
// else returns nil. In http mode it adds the Events API handler to the
// HTTP listener's routes.
func (s *Service) slackAdapter(ctx context.Context) (bridge.Adapter, error) {
	c := s.Config.Slack
	if !c.enabled() {
		return nil, nil
	}
	cfg := slack.Config{
		BotToken:         c.BotToken,
		AppToken:         c.AppToken,
		SigningSecret:    c.SigningSecret,
		Mode:             c.mode(),
		APIURL:           c.APIURL,
		PostInterval:     c.PostInterval,
		Thinking:         slack.Thinking(c.Thinking),
		ThinkingEmoji:    c.ThinkingEmoji,
		NoStreaming:      c.Streaming != nil && !*c.Streaming,
		MaxFileBytes:     int64(c.MaxFileMB) << 20,
		DownloadTimeout:  c.DownloadTimeout,
		AllowPrivateURLs: c.AllowPrivateURLs,
		Logger:           s.Log,
		OnRateLimit: func(_ string, wait time.Duration) {
			s.Metrics.RateLimited(bridge.PlatformSlack, wait)
		},
		Router:   s.Router,
		Bots:     map[string]slack.BotIdentity{},
		HomeText: c.HomeText,
	}
	for _, b := range s.Config.Bots {
		cfg.Bots[b.Name] = slack.BotIdentity{Name: b.DisplayName, IconURL: b.IconURL, Description: b.Description}
	}
	for _, cmd := range c.Commands {
		cfg.Commands = append(cfg.Commands, slack.Command{Name: cmd.Name, Description: cmd.Description, Reset: cmd.Reset, Bot: cmd.Bot})
	}
	if c.ClientID != "" {
		cfg.ClientID, cfg.ClientSecret, cfg.TokenKey, cfg.Scopes = c.ClientID, c.ClientSecret, c.TokenKey, c.Scopes
		cfg.RedirectURL = strings.TrimRight(s.Config.HTTP.PublicURL, "/") + SlackCallbackPath
		cfg.Installs = s.Store
	}
	if c.mode() == slack.ModeSocket {
		cfg.SigningSecret = ""
	} else {
		cfg.AppToken = ""
	}
	a, err := slack.New(cfg)
	if err != nil {
		return nil, err
	}
	if c.mode() == slack.ModeHTTP {
		s.routes["POST "+c.eventsPath()] = a.EventsHandler()
	}
	if c.ClientID != "" {
		s.routes["GET "+SlackInstallPath] = a.InstallHandler()
		s.routes["GET "+SlackCallbackPath] = a.CallbackHandler()
	}
	return a, nil
}
