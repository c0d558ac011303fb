package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	slackapi "github.com/slack-go/slack"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/botbridge/botbridge/adapters/slack"
	"github.com/botbridge/botbridge/bridge/media"
	"github.com/botbridge/botbridge/chat"
)

// check is the result of one online check: what was checked, and nil or
// what is wrong and how to fix it.
type check struct {
	what string
	err  error
	// warn marks a failure that does not stop botbridge from working.
	warn bool
}

// onlineChecks checks every token and URL of cfg against the real services.
// It changes nothing there: it creates no user, device or message.
func onlineChecks(ctx context.Context, cfg Config) []check {
	var out []check
	add := func(what string, err error) { out = append(out, check{what: what, err: err}) }
	for i, b := range cfg.Bots {
		add(fmt.Sprintf("bots[%d] %s", i, b.Name), checkBot(ctx, b))
	}
	if cfg.Slack.enabled() {
		out = append(out, checkSlack(ctx, cfg.Slack)...)
	}
	if cfg.Matrix.HomeserverURL != "" {
		out = append(out, checkMatrix(ctx, cfg.Matrix)...)
	}
	if cfg.HTTP.PublicURL != "" {
		err := checkPublicURL(ctx, cfg.HTTP.PublicURL)
		out = append(out, check{what: "http.public_url", err: err, warn: true})
	}
	return out
}

// checkBot calls the bot's Chat API and, with an encryption key, shows the
// API a key signed with it: a refused key is a wrong encryption key.
func checkBot(ctx context.Context, b BotConfig) error {
	base, err := b.BaseURL()
	if err != nil {
		return err
	}
	c, err := chat.NewClient(base, chat.WithRetry(chat.RetryPolicy{MaxAttempts: 1}))
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := c.Hello(ctx); err != nil {
		return fmt.Errorf("the Chat API at %s does not answer (%v): check the url or webhook_id, and that the Chat integration is installed and enabled", redactBase(base), err)
	}
	if b.EncryptionKey == "" {
		return nil
	}
	signer, err := chat.NewSigner(b.EncryptionKey)
	if err != nil {
		return err
	}
	key, err := signer.Key("botbridge")
	if err != nil {
		return err
	}
	_, err = c.GetUser(ctx, key)
	switch {
	case err == nil, errors.Is(err, chat.ErrNotFound):
		return nil
	case errors.Is(err, chat.ErrUnauthorized):
		return errors.New("the Chat API refuses keys signed with encryption_key: copy the Encryption Key of the bot's Chat integration")
	}
	return fmt.Errorf("checking the encryption key: %w", err)
}

// redactBase shortens the webhook id of a Chat API base URL, which works as
// a credential in createUser mode, to its first characters.
func redactBase(base string) string {
	i := strings.LastIndexByte(base, '/')
	if i < 0 || len(base)-i-1 <= 4 {
		return base
	}
	return base[:i+1] + base[i+1:i+5] + "…"
}

// checkSlack checks the bot token with auth.test and, in Socket Mode, the
// app token with apps.connections.open (which only hands out a URL).
func checkSlack(ctx context.Context, c SlackConfig) []check {
	opts := []slackapi.Option{}
	if c.APIURL != "" {
		opts = append(opts, slackapi.OptionAPIURL(c.APIURL))
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	api := slackapi.New(c.BotToken, opts...)
	var out []check
	if c.BotToken == "" { // several workspaces only: their tokens are in the store
		return append(out, checkAppToken(ctx, c, opts)...)
	}
	auth, err := api.AuthTestContext(ctx)
	if err != nil {
		err = fmt.Errorf("auth.test: %w: check slack.bot_token (the Bot User OAuth Token, xoxb-…)", err)
	} else if auth.UserID == "" {
		err = errors.New("auth.test: the token is not a bot token: use the Bot User OAuth Token, xoxb-…")
	}
	out = append(out, check{what: "slack.bot_token", err: err})
	return append(out, checkAppToken(ctx, c, opts)...)
}

// checkAppToken checks the app token in Socket Mode with
// apps.connections.open (which only hands out a URL).
func checkAppToken(ctx context.Context, c SlackConfig, opts []slackapi.Option) []check {
	if c.mode() != slack.ModeSocket {
		return nil
	}
	app := slackapi.New(c.BotToken, append(opts, slackapi.OptionAppLevelToken(c.AppToken))...)
	_, _, err := app.StartSocketModeContext(ctx)
	if err != nil {
		err = fmt.Errorf("apps.connections.open: %w: check slack.app_token (an app-level token with connections:write, xapp-…) and that Socket Mode is on in the app", err)
	}
	return []check{{what: "slack.app_token", err: err}}
}

// checkMatrix checks that the homeserver URL serves the Matrix client API
// and, with an access token, that the homeserver accepts it for the
// configured user. A password is not tried: a login makes a new device.
func checkMatrix(ctx context.Context, c MatrixConfig) []check {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	client, err := mautrix.NewClient(c.HomeserverURL, id.UserID(c.UserID), c.AccessToken)
	if err != nil {
		return []check{{what: "matrix.homeserver_url", err: err}}
	}
	client.Client = &http.Client{}
	if _, err := client.Versions(ctx); err != nil {
		return []check{{what: "matrix.homeserver_url", err: fmt.Errorf("%s does not answer as a Matrix homeserver (GET /_matrix/client/versions: %v): give the client API's base URL", c.HomeserverURL, err)}}
	}
	out := []check{{what: "matrix.homeserver_url"}}
	switch {
	case c.AccessToken != "":
		who, err := client.Whoami(ctx)
		switch {
		case err != nil:
			err = fmt.Errorf("the homeserver refuses it (%v): make a new access token for the bot's account, or use matrix.password", err)
		case c.UserID != "" && who.UserID != id.UserID(c.UserID):
			err = fmt.Errorf("it belongs to %s, not to matrix.user_id %s", who.UserID, c.UserID)
		}
		out = append(out, check{what: "matrix.access_token", err: err})
	case c.Password != "":
		out = append(out, check{what: "matrix.password", warn: true,
			err: errors.New("not tried: a login would make a new device; botbridge logs in once at its first start and keeps that device")})
	}
	return out
}

// checkPublicURL asks the public listener's health answer under /files/
// through the public URL, the way the bot fetches file links.
func checkPublicURL(ctx context.Context, public string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	u := strings.TrimRight(public, "/") + filesHealthPath
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	hc := &http.Client{}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %w (fine if botbridge is not running yet; the bot fetches files from there)", u, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64))
	if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(body)) != "ok" {
		return fmt.Errorf("%s answered %s, not botbridge: point http.public_url at the listener of http.addr, through a proxy that passes %s", u, resp.Status, media.FilesPath)
	}
	return nil
}

// printChecks writes one line per check and reports whether all passed
// (warnings do not count).
func printChecks(w io.Writer, checks []check) bool {
	ok := true
	for _, c := range checks {
		switch {
		case c.err == nil:
			fmt.Fprintf(w, "ok    %s\n", c.what)
		case c.warn:
			fmt.Fprintf(w, "warn  %s: %v\n", c.what, c.err)
		default:
			ok = false
			fmt.Fprintf(w, "FAIL  %s: %v\n", c.what, c.err)
		}
	}
	return ok
}
