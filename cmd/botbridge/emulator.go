package main

import (
	"context"
	"encoding/pem"
	"fmt"
	"io"
	"net/url"
	"os"

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
	webhookURL := fs.String("webhook-url", "", "POST every signal of every conversation to `URL`/ (a trailing slash is added), once, as the Chat integration's Webhook URL does")
	webhookSecret := fs.String("webhook-secret", "", "`secret` sent with each webhook in the x-secret-key header (the integration's Webhook Secret)")
	webhookDrop := fs.Float64("webhook-drop", 0, "`fraction` of webhooks (0 to 1) dropped at random, to test a receiver that must make up for lost ones")
	useTLS := fs.Bool("tls", false, "serve HTTPS, HTTP/2 and HTTP/1.1, with a self-signed certificate generated at start for localhost, 127.0.0.1, ::1 and the -addr host")
	certFile := fs.String("tls-cert", "", "with -tls, write the generated certificate (PEM) to `file`, for clients to trust")
	h2c := fs.Bool("h2c", false, "on plain HTTP, accept HTTP/2 with prior knowledge (h2c) besides HTTP/1.1")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	switch {
	case *useTLS && *h2c:
		return fmt.Errorf("%w: -h2c is for plain HTTP; with -tls, HTTP/2 is negotiated", errUsage)
	case *certFile != "" && !*useTLS:
		return fmt.Errorf("%w: -tls-cert needs -tls", errUsage)
	case *webhookSecret != "" && *webhookURL == "":
		return fmt.Errorf("%w: -webhook-secret needs -webhook-url", errUsage)
	case !(*webhookDrop >= 0 && *webhookDrop <= 1):
		return fmt.Errorf("%w: -webhook-drop %v: want a fraction from 0 to 1", errUsage, *webhookDrop)
	}
	if *webhookURL != "" {
		if u, err := url.Parse(*webhookURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("%w: -webhook-url %q: want an absolute http or https URL, such as the bridge's http://HOST:PORT/botpress/BOT", errUsage, *webhookURL)
		}
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
		WebhookID:       *webhookID,
		EncryptionKey:   *key,
		Bot:             bot,
		StatePath:       *data,
		Logger:          log,
		TLS:             *useTLS,
		H2C:             *h2c,
		WebhookURL:      *webhookURL,
		WebhookSecret:   *webhookSecret,
		WebhookDropRate: *webhookDrop,
	})
	if err != nil {
		return err
	}
	if err := srv.Start(*addr); err != nil {
		srv.Close()
		return err
	}
	if *certFile != "" {
		pemCert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
		if err := os.WriteFile(*certFile, pemCert, 0o644); err != nil {
			srv.Close()
			return fmt.Errorf("-tls-cert: %w", err)
		}
	}
	fmt.Fprintln(stdout, srv.URL())
	mode := "createUser mode (no encryption key)"
	if *key != "" {
		mode = "manual mode (user keys signed with the encryption key)"
	}
	proto := "HTTP/1.1"
	switch {
	case *useTLS:
		proto = "HTTPS (HTTP/2, HTTP/1.1)"
	case *h2c:
		proto = "HTTP/1.1 and h2c"
	}
	attrs := []any{"url", srv.URL(), "bot", *botName, "auth", mode, "protocol", proto}
	if *webhookURL != "" {
		attrs = append(attrs, "webhook_url", *webhookURL, "webhook_secret", *webhookSecret != "", "webhook_drop", *webhookDrop)
	}
	log.Info("Chat API emulator listening", attrs...)
	<-ctx.Done()
	log.Info("stopping", "webhooks", fmt.Sprintf("%+v", srv.WebhookStats()))
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
