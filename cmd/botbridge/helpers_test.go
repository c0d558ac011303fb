package main

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/botbridge/botbridge/chat/chattest"
)

// startEmulator starts a Chat API emulator with the echo bot and returns its
// base URL.
func startEmulator(t *testing.T) string {
	t.Helper()
	em, err := chattest.New(chattest.Options{Bot: chattest.EchoBot()})
	if err != nil {
		t.Fatal(err)
	}
	if err := em.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { em.Close() })
	return em.URL()
}

func testLog(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
