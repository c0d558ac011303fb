package chat_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/botbridge/botbridge/chat"
)

func TestTimesEncodeInTheServiceFormat(t *testing.T) {
	at := time.Date(2026, 11, 22, 19, 42, 20, 410000000, time.FixedZone("CET", 3600))
	const want = `"2026-11-22T18:42:20.410Z"`
	for name, v := range map[string]any{
		"message":        chat.Message{ID: "m", CreatedAt: at, Payload: chat.Text{Text: "x"}},
		"message signal": chat.MessageCreated{Message: chat.Message{ID: "m", CreatedAt: at, Payload: chat.Text{Text: "x"}}, IsBot: true},
		"delta":          chat.MessageStreamDelta{StreamID: "s", CreatedAt: at},
		"user":           chat.User{ID: "u", CreatedAt: at, UpdatedAt: at},
		"conversation":   chat.Conversation{ID: "c", CreatedAt: at, UpdatedAt: at},
	} {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), `"createdAt":`+want) || strings.Count(string(b), "createdAt") != 1 {
			t.Errorf("%s encodes as %s; want createdAt %s", name, b, want)
		}
	}
}
