package bridgetest

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/botbridge/botbridge/bridge"
	"github.com/botbridge/botbridge/chat"
	"github.com/botbridge/botbridge/chat/chattest"
)

// EncryptionKey is the encryption key of the Botpress bots StartBotpress
// starts.
const EncryptionKey = "bridgetest-encryption-key"

// Botpress is a Chat API emulator for a test, with a client of it and a
// signer of its users' keys.
type Botpress struct {
	Server *chattest.Server
	Client *chat.Client
	Signer *chat.Signer
}

// StartBotpress starts an emulator in manual mode (EncryptionKey) with bot,
// closed when the test ends; it fails the test on error.
func StartBotpress(t testing.TB, bot chattest.Bot) *Botpress {
	t.Helper()
	em, err := chattest.New(chattest.Options{EncryptionKey: EncryptionKey, Bot: bot})
	if err != nil {
		t.Fatal(err)
	}
	if err := em.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { em.Close() })
	client, err := chat.NewClient(em.URL())
	if err != nil {
		t.Fatal(err)
	}
	signer, err := chat.NewSigner(EncryptionKey)
	if err != nil {
		t.Fatal(err)
	}
	return &Botpress{Server: em, Client: client, Signer: signer}
}

// Bot returns the bot's spec for an Engine, under name.
func (b *Botpress) Bot(name string) bridge.BotSpec {
	return bridge.BotSpec{Name: name, API: b.Client, Signer: b.Signer}
}

// Config returns an Engine configuration for tests: the store, the bots
// and adapters given, one route to the first bot, logs to the test, and
// retries and throttles short enough for tests.
func Config(t testing.TB, st bridge.Store, bots []bridge.BotSpec, adapters ...bridge.Adapter) bridge.Config {
	return bridge.Config{
		Store:          st,
		Bots:           bots,
		Router:         Router(t, []bridge.Route{{Bot: bots[0].Name}}, bots...),
		Adapters:       adapters,
		Logger:         Logger(t),
		RetryMin:       5 * time.Millisecond,
		RetryMax:       100 * time.Millisecond,
		StreamThrottle: 5 * time.Millisecond,
		DrainTimeout:   2 * time.Second,
	}
}

// Router returns the router of routes to bots; it fails the test when the
// routes are wrong.
func Router(t testing.TB, routes []bridge.Route, bots ...bridge.BotSpec) *bridge.Router {
	t.Helper()
	var names []string
	for _, b := range bots {
		names = append(names, b.Name)
	}
	r, err := bridge.NewRouter(routes, names)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// RunEngine builds an Engine from cfg and runs it until stop is called or
// the test ends; a Run that fails or does not stop within 10 s fails the
// test. stop may be called more than once.
func RunEngine(t testing.TB, cfg bridge.Config) (eng *bridge.Engine, stop func()) {
	t.Helper()
	eng, err := bridge.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(t.Context()))
	done := make(chan error, 1)
	go func() { done <- eng.Run(ctx) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("engine Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("the engine did not stop within 10 s")
		}
	}
	t.Cleanup(stop)
	return eng, stop
}

// Logger returns a logger that writes every level to the test's log.
func Logger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(logWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type logWriter struct{ t testing.TB }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// RunAdapter runs a with h until the test ends; a Run that fails, or does
// not return within 20 s of its context ending, fails the test.
func RunAdapter(t testing.TB, a bridge.Adapter, h bridge.Handler) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.WithoutCancel(t.Context()))
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx, h) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run returned %v after its context ended; want nil", err)
			}
		case <-time.After(20 * time.Second):
			t.Error("Run did not return within 20 s of its context ending")
		}
	})
}
