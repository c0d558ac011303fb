package main

import (
	"context"
	"fmt"
	"io"

	"github.com/botbridge/botbridge/chat/chattest"
)

// cmdEmulator runs the Chat API emulator until ctx ends.
func cmdEmulator(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs := newFlags("emulator", stderr)
	addr := fs.String("addr", "127.0.0.1:8080", "`host:port` to listen on; port 0 picks a free one")
	webhookID := fs.String("webhook-id", chattest.DefaultWebhookID, "webhook `id`: the first path segment of the API")
	key := fs.String("encryption-key", "", "encryption `key` for user keys (manual mode); empty: createUser mode")
	botName := fs.String("bot", "demo", "the bot that answers: demo, echo or none")
	data := fs.String("data", "", "JSON `file` that keeps users, conversations and messages across restarts")
	level := fs.String("log-level", "info", "log level: debug, info, warn or error")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	bot, err := emulatorBot(*botName)
	if err != nil {
		return err
	}
	log, err := newLogger(stderr, *level, "text")
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	srv, err := chattest.New(chattest.Options{
		WebhookID:     *webhookID,
		EncryptionKey: *key,
		Bot:           bot,
		StatePath:     *data,
		Logger:        log,
	})
	if err != nil {
		return err
	}
	if err := srv.Start(*addr); err != nil {
		srv.Close()
		return err
	}
	fmt.Fprintln(stdout, srv.URL())
	mode := "createUser mode (no encryption key)"
	if *key != "" {
		mode = "manual mode (user keys signed with the encryption key)"
	}
	log.Info("Chat API emulator listening", "url", srv.URL(), "bot", *botName, "auth", mode)
	<-ctx.Done()
	log.Info("stopping")
	return srv.Close()
}

func emulatorBot(name string) (chattest.Bot, error) {
	switch name {
	case "demo":
		return chattest.DemoBot(), nil
	case "echo":
		return chattest.EchoBot(), nil
	case "none":
		return nil, nil
	}
	return nil, fmt.Errorf("%w: -bot %q: want demo, echo or none", errUsage, name)
}
