package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/botbridge/botbridge/adapters/console"
	"github.com/botbridge/botbridge/chat/chattest"
)

// demoDrain is how long demo waits, after its input ends, for the answers to
// what was sent.
const demoDrain = 10 * time.Second

// cmdDemo runs the bridge with the console adapter, against the built-in
// emulator and its demo bot, or against a real bot given by flags or the
// environment.
func cmdDemo(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlags("demo", stderr)
	data := fs.String("data", "", "`dir`ectory for the bridge store and the emulator's state, so that a second run resumes the conversation; default: a temporary directory")
	apiURL := fs.String("url", "", "Chat API `URL` of a real bot: the full base URL, or the API URL with -webhook-id (default: $BOTPRESS_URL)")
	webhookID := fs.String("webhook-id", "", "webhook `id` of a real bot (default: $BOTPRESS_WEBHOOK_ID)")
	key := fs.String("encryption-key", "", "encryption `key` of the bot's Chat integration, if it has one (default: $BOTPRESS_ENCRYPTION_KEY)")
	botName := fs.String("bot", "demo", "emulated bot: demo or echo")
	level := fs.String("log-level", "warn", "log level: debug, info, warn or error")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	// The environment is read only now: a default taken from it would be
	// printed by -h and in usage errors, and these are secrets.
	flagsFromEnv(fs, map[string]string{"url": "BOTPRESS_URL", "webhook-id": "BOTPRESS_WEBHOOK_ID", "encryption-key": "BOTPRESS_ENCRYPTION_KEY"})
	log, err := newLogger(stderr, *level, "text")
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}

	dir := *data
	if dir == "" {
		tmp, err := os.MkdirTemp("", "botbridge-demo-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	} else if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("-data: %w", err)
	}

	bot := BotConfig{Name: "demo", EncryptionKey: *key}
	switch {
	case *apiURL != "" || *webhookID != "":
		if *webhookID != "" {
			bot.WebhookID, bot.APIURL = *webhookID, *apiURL
		} else {
			bot.URL = *apiURL
		}
		if _, err := bot.BaseURL(); err != nil {
			return fmt.Errorf("%w: %v", errUsage, err)
		}
	default:
		emBot, err := emulatorBot(*botName)
		if err != nil {
			return err
		}
		if emBot == nil {
			return fmt.Errorf("%w: -bot none makes no sense in a demo", errUsage)
		}
		em, err := chattest.New(chattest.Options{
			WebhookID:     "demo",
			EncryptionKey: *key,
			Bot:           emBot,
			StatePath:     filepath.Join(dir, "emulator.json"),
			Logger:        log.With("component", "emulator"),
		})
		if err != nil {
			return fmt.Errorf("emulator: %w", err)
		}
		defer em.Close()
		if err := em.Start("127.0.0.1:0"); err != nil {
			return fmt.Errorf("emulator: %w", err)
		}
		bot.URL = em.URL()
	}

	cfg := defaults()
	cfg.Store.Path = filepath.Join(dir, "botbridge.db")
	cfg.Bots = []BotConfig{bot}
	cfg.Bridge.StreamThrottle = 200 * time.Millisecond
	cfg.HTTP.AdminAddr = "" // a demo opens no port
	if err := cfg.Validate(); err != nil {
		return err
	}
	con := console.New(console.Config{In: stdin, Out: stdout, Logger: log})
	svc, err := NewService(ctx, cfg, log, con)
	if err != nil {
		return err
	}
	defer svc.Close()

	if f, ok := stdin.(*os.File); ok && isTerminal(f) {
		fmt.Fprintln(stderr, "botbridge demo: type a message and press Enter; the bot's answers start with \"bot> \".")
		if bot.URL != "" && *apiURL == "" {
			fmt.Fprintf(stderr, "The demo bot knows: %s, !reset; %s. Ctrl-D quits.\n", chattest.DemoKeywords, chattest.DemoLaterHelp)
		}
	}

	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- svc.Run(runCtx) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	case <-con.EOF():
		// Input ended: wait for the answers to what was sent, then stop.
		wait, cancel := context.WithTimeout(ctx, demoDrain)
		err := svc.Engine.WaitIdle(wait, 500*time.Millisecond)
		cancel()
		if err != nil && !errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			log.Warn("waiting for answers", "err", err)
		} else if errors.Is(err, context.DeadlineExceeded) {
			log.Warn("stopped waiting for answers", "after", demoDrain)
		}
	}
	stop()
	return <-done
}

// isTerminal reports whether f is a character device (a terminal), to show
// the welcome text only to people.
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// flagsFromEnv sets each flag of vars (flag name to environment variable)
// that the command line did not set to the variable's value, when it is
// set.
func flagsFromEnv(fs *flag.FlagSet, vars map[string]string) {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	for name, env := range vars {
		if v, ok := os.LookupEnv(env); ok && !given[name] {
			fs.Set(name, v)
		}
	}
}
