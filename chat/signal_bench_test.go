package chat_test

import (
	"testing"

	"github.com/botbridge/botbridge/chat"
)

var frame = []byte(`{"type":"message_created","data":{"id":"msg_01M8477EJ14R6W7VR7WEZ04XWB","createdAt":"2026-11-23T12:48:51.780Z","payload":{"type":"text","text":"Hello there, how can I help you today?"},"userId":"bot_user","conversationId":"bb-slack-f35485f40627a5e102406d10b27ee45b","isBot":true}}`)

// BenchmarkParseSignal decodes a typical bot message frame.
func BenchmarkParseSignal(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := chat.ParseSignal(frame); err != nil {
			b.Fatal(err)
		}
	}
}
