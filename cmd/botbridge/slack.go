package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/botbridge/botbridge/adapters/slack"
	"github.com/botbridge/botbridge/bridge"
)

// SlackConfig configures the Slack adapter; see config.example.yaml. Slack
// is on when bot_token is set.
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
}

// DefaultSlackEventsPath is where the Events API requests arrive by default.
const DefaultSlackEventsPath = "/slack/events"

func (c SlackConfig) enabled() bool {
	return c.BotToken != "" || c.AppToken != "" || c.SigningSecret != ""
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
	case c.BotToken == "":
		add("slack.bot_token: missing; give the bot token (xoxb-…) from the app's OAuth & Permissions page, or leave the slack section empty")
	case !strings.HasPrefix(c.BotToken, "xoxb-"):
		add("slack.bot_token: must start with xoxb- (the Bot User OAuth Token)")
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
	return a, nil
}
