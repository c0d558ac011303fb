package bridgetest

import (
	"testing"
	"time"

	"github.com/botbridge/botbridge/bridge/render"
	"github.com/botbridge/botbridge/chat"
)

// WaitTimeout bounds WaitFor.
const WaitTimeout = 30 * time.Second

// WaitFor polls cond every few milliseconds until it holds, and fails the
// test when it does not within WaitTimeout; for state that has no event to
// wait on (counters, a store's rows). It must be called from the test's
// goroutine.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(WaitTimeout)
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", WaitTimeout, what)
		}
		<-tick.C
	}
}

// Text returns what a payload says: the text of a text or markdown payload,
// else its plain-text rendering.
func Text(p chat.Payload) string {
	switch p := p.(type) {
	case chat.Text:
		return p.Text
	case chat.Markdown:
		return p.Markdown
	}
	return render.PlainText(p)
}
