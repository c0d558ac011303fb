package chat_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/botbridge/botbridge/chat"
)

// waits records the delays the client asks for and returns at once, so that
// retry and reconnect tests neither sleep nor depend on jitter.
type waits struct {
	mu sync.Mutex
	d  []time.Duration
}

func (w *waits) wait(ctx context.Context, d time.Duration) error {
	w.mu.Lock()
	w.d = append(w.d, d)
	w.mu.Unlock()
	return ctx.Err()
}

func (w *waits) all() []time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]time.Duration(nil), w.d...)
}

// syncBuffer is a log sink safe for the client's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// fake is an httptest server that counts requests and lets each test script
// the answers.
type fake struct {
	*httptest.Server
	hits atomic.Int64
}

func newFake(t *testing.T, h http.HandlerFunc) *fake {
	t.Helper()
	f := &fake{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.hits.Add(1)
		h(w, r)
	}))
	t.Cleanup(f.Close)
	return f
}

// newClient returns a client for base whose waits are recorded in w (w may be
// nil) and whose logs go to logs (may be nil).
func newClient(t *testing.T, base string, w *waits, logs *syncBuffer, opts ...chat.Option) *chat.Client {
	t.Helper()
	clk := chat.Clock{}
	if w != nil {
		clk.Wait = w.wait
	}
	all := []chat.Option{chat.WithClock(clk)}
	if logs != nil {
		all = append(all, chat.WithLogger(slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))))
	}
	c, err := chat.NewClient(base, append(all, opts...)...)
	if err != nil {
		t.Fatalf("NewClient(%q): %v", base, err)
	}
	return c
}

// recv waits for one value on ch, failing the test after a generous
// deadline.
func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		var zero T
		return zero
	}
}

const testKey = chat.UserKey("eyJhbGciOiJIUzI1NiJ9.eyJpZCI6InUxIn0.c2VjcmV0LWtleS1zaWduYXR1cmU")
