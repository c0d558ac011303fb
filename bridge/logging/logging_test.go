package logging_test

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/botbridge/botbridge/bridge/logging"
)

func TestLimiterLetsOneLineAMinuteThroughAndCountsTheRest(t *testing.T) {
	now := time.Unix(1000, 0)
	l := &logging.Limiter{Now: func() time.Time { return now }}
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	for range 5 {
		l.Warn(log, "down", "platform down")
	}
	l.Warn(log, "other", "something else")
	now = now.Add(time.Minute)
	l.Warn(log, "down", "platform down")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d lines, want 3:\n%s", len(lines), buf.String())
	}
	if strings.Contains(lines[0], "suppressed") || !strings.Contains(lines[2], "suppressed=4") {
		t.Errorf("lines:\n%s\nwant the third to count the 4 held back", buf.String())
	}
}
