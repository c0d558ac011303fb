package chat_test

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/botbridge/botbridge/chat"
	"github.com/botbridge/botbridge/chat/chattest"
)

// http2Client returns a client of srv with the default transport, set up for
// the HTTP/2 srv serves. Reconnects do not wait.
func http2Client(t *testing.T, srv *chattest.Server, opts chattest.Options) *chat.Client {
	t.Helper()
	var w waits
	if opts.TLS {
		pool := x509.NewCertPool()
		pool.AddCert(srv.Certificate())
		return newClient(t, srv.URL(), &w, nil, chat.WithTLSConfig(&tls.Config{RootCAs: pool}))
	}
	return newClient(t, srv.URL(), &w, nil, chat.WithUnencryptedHTTP2())
}

// TestListenersShareOneHTTP2Connection starts many listeners at once with
// the client's default transport: over HTTP/2 (TLS as against Botpress Cloud,
// or h2c) every stream and call travels on one connection, signals arrive,
// and the streams come back on it after a cut.
func TestListenersShareOneHTTP2Connection(t *testing.T) {
	const n = 40
	for name, opts := range map[string]chattest.Options{"tls": {TLS: true}, "h2c": {H2C: true}} {
		t.Run(name, func(t *testing.T) {
			opts.EncryptionKey = emulatorKey
			srv := startEmulator(t, opts)
			c := http2Client(t, srv, opts)
			ctx := t.Context()
			if err := c.Hello(ctx); err != nil {
				t.Fatal(err)
			}
			key := keyFor(t, emulatorKey, "many")
			try(c.GetOrCreateUser(ctx, key, chat.UserProfile{})).must(t)
			ls := make([]*listening, n)
			convs := make([]chat.ConversationID, n)
			for i := range n {
				convs[i] = try(c.GetOrCreateConversation(ctx, key, chat.ConversationID(fmt.Sprint("c", i)))).must(t).ID
			}
			for i := range n {
				ls[i] = listen(t, c, key, convs[i])
			}
			for _, l := range ls {
				recv(t, l.connects, "connect")
			}
			if open := srv.OpenStreams(); open != n {
				t.Errorf("%d streams open, want %d", open, n)
			}
			for i, l := range ls {
				pushed := try(srv.PushBotMessage(ctx, convs[i], chat.Text{Text: fmt.Sprint("to ", i)})).must(t)
				if m := next[chat.MessageCreated](t, l); m.ID != pushed.ID {
					t.Errorf("listener %d got %s, want %s", i, m.ID, pushed.ID)
				}
			}
			srv.CutStreams()
			for _, l := range ls {
				recv(t, l.drops, "disconnect")
				recv(t, l.connects, "reconnect")
			}
			if got := srv.Connections(); got != 1 {
				t.Errorf("the emulator accepted %d connections for %d listeners, their calls and their reconnects; want 1", got, n)
			}
		})
	}
}

func TestHTTP2Options(t *testing.T) {
	t.Run("the default transport falls back to HTTP/1.1 on an h2c server", func(t *testing.T) {
		srv := startEmulator(t, chattest.Options{H2C: true})
		c := newClient(t, srv.URL(), nil, nil)
		if _, _, err := c.CreateUser(t.Context(), chat.CreateUserRequest{}); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("h2c has no effect on https", func(t *testing.T) {
		srv := startEmulator(t, chattest.Options{TLS: true})
		pool := x509.NewCertPool()
		pool.AddCert(srv.Certificate())
		c := newClient(t, srv.URL(), nil, nil, chat.WithUnencryptedHTTP2(), chat.WithTLSConfig(&tls.Config{RootCAs: pool}))
		if err := c.Hello(t.Context()); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("the caller's TLS config is not changed", func(t *testing.T) {
		srv := startEmulator(t, chattest.Options{TLS: true})
		pool := x509.NewCertPool()
		pool.AddCert(srv.Certificate())
		cfg := &tls.Config{RootCAs: pool}
		c := newClient(t, srv.URL(), nil, nil, chat.WithTLSConfig(cfg))
		if err := c.Hello(t.Context()); err != nil {
			t.Fatal(err)
		}
		if len(cfg.NextProtos) != 0 {
			t.Errorf("NextProtos of the caller's config became %v", cfg.NextProtos)
		}
	})
	t.Run("not with WithHTTPClient", func(t *testing.T) {
		for _, o := range []chat.Option{chat.WithTLSConfig(&tls.Config{}), chat.WithUnencryptedHTTP2()} {
			_, err := chat.NewClient("https://x.test/w", chat.WithHTTPClient(&http.Client{}), o)
			if err == nil || !strings.Contains(err.Error(), "WithHTTPClient") {
				t.Errorf("NewClient: %v, want an error naming WithHTTPClient", err)
			}
		}
	})
}
