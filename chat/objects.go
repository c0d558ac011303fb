package chat

import (
	"encoding/json"
	"fmt"
	"time"
)

// User is a Chat API user.
type User struct {
	ID         UserID    `json:"id"`
	Name       string    `json:"name,omitempty"`
	PictureURL string    `json:"pictureUrl,omitempty"`
	Profile    string    `json:"profile,omitempty"`
	CreatedAt  time.Time `json:"createdAt"`
	UpdatedAt  time.Time `json:"updatedAt"`
}

// Conversation is a Chat API conversation. Owner and participants are not
// part of it on the wire.
type Conversation struct {
	ID        ConversationID `json:"id"`
	CreatedAt time.Time      `json:"createdAt"`
	UpdatedAt time.Time      `json:"updatedAt"`
}

// Message is a message of a conversation.
type Message struct {
	ID             MessageID      `json:"id"`
	CreatedAt      time.Time      `json:"createdAt"`
	Payload        Payload        `json:"payload"`
	UserID         UserID         `json:"userId"`
	ConversationID ConversationID `json:"conversationId"`
	// Metadata travels beside the payload; nil when absent.
	Metadata map[string]any `json:"metadata,omitempty"`
}

// messageJSON is the wire form of a Message for encoding.
type messageJSON struct {
	ID             MessageID      `json:"id"`
	CreatedAt      string         `json:"createdAt"`
	Payload        Payload        `json:"payload"`
	UserID         UserID         `json:"userId"`
	ConversationID ConversationID `json:"conversationId"`
	Metadata       map[string]any `json:"metadata,omitempty"`
}

func (m Message) wire() messageJSON {
	return messageJSON{m.ID, Timestamp(m.CreatedAt), m.Payload, m.UserID, m.ConversationID, m.Metadata}
}

// MarshalJSON encodes the message with its time in the service's format
// (UTC, milliseconds, Z), which the official client requires.
func (m Message) MarshalJSON() ([]byte, error) { return json.Marshal(m.wire()) }

// MarshalJSON encodes the user with its times in the service's format.
func (u User) MarshalJSON() ([]byte, error) {
	type fields User
	return json.Marshal(struct {
		fields
		CreatedAt string `json:"createdAt"`
		UpdatedAt string `json:"updatedAt"`
	}{fields(u), Timestamp(u.CreatedAt), Timestamp(u.UpdatedAt)})
}

// MarshalJSON encodes the conversation with its times in the service's
// format.
func (c Conversation) MarshalJSON() ([]byte, error) {
	type fields Conversation
	return json.Marshal(struct {
		fields
		CreatedAt string `json:"createdAt"`
		UpdatedAt string `json:"updatedAt"`
	}{fields(c), Timestamp(c.CreatedAt), Timestamp(c.UpdatedAt)})
}

// messageWire is Message with the payload left raw for decoding.
type messageWire struct {
	ID             MessageID       `json:"id"`
	CreatedAt      time.Time       `json:"createdAt"`
	Payload        json.RawMessage `json:"payload"`
	UserID         UserID          `json:"userId"`
	ConversationID ConversationID  `json:"conversationId"`
	Metadata       map[string]any  `json:"metadata,omitempty"`
}

// UnmarshalJSON decodes the payload with DecodePayload, so unknown payload
// types arrive as RawPayload instead of failing the whole message.
func (m *Message) UnmarshalJSON(data []byte) error {
	var w messageWire
	if err := json.Unmarshal(data, &w); err != nil {
		return err
	}
	*m = Message{ID: w.ID, CreatedAt: w.CreatedAt, UserID: w.UserID, ConversationID: w.ConversationID, Metadata: w.Metadata}
	if len(w.Payload) == 0 || string(w.Payload) == "null" {
		return fmt.Errorf("message %s: no payload", w.ID)
	}
	p, err := DecodePayload(w.Payload)
	if err != nil {
		return fmt.Errorf("message %s: %w", w.ID, err)
	}
	m.Payload = p
	return nil
}

// Event is a custom event of a conversation. ID is empty for events pushed by
// the bot.
type Event struct {
	ID             EventID         `json:"id"`
	CreatedAt      time.Time       `json:"createdAt"`
	Payload        json.RawMessage `json:"payload"`
	ConversationID ConversationID  `json:"conversationId"`
	UserID         UserID          `json:"userId"`
}

// Timestamp formats t the way the service does: UTC, millisecond precision,
// with a Z suffix (the official client rejects offsets such as +00:00).
func Timestamp(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.000Z")
}
