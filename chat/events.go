package chat

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
)

type eventBody struct {
	Event Event `json:"event"`
}

// CreateEvent sends a custom event to the bot in a conversation the key's
// user takes part in. payload must encode to a JSON object (a struct, a map
// or a json.RawMessage holding an object). It blocks for the round trip, is
// retried only with WithRetry, and returns an *Error (ErrForbidden) or a
// network error; a payload that is not an object fails before sending.
func (c *Client) CreateEvent(ctx context.Context, key UserKey, conv ConversationID, payload any, opts ...CallOption) (Event, error) {
	const op = "createEvent"
	if err := requireID("conversation id", conv); err != nil {
		return Event{}, fmt.Errorf("chat: %s: %w", op, err)
	}
	raw, err := json.Marshal(payload)
	if err != nil {
		return Event{}, fmt.Errorf("chat: %s: %w: %v", op, ErrInvalidPayload, err)
	}
	if raw = bytes.TrimSpace(raw); len(raw) == 0 || raw[0] != '{' {
		return Event{}, fmt.Errorf("chat: %s: %w: event payload must be a JSON object", op, ErrInvalidPayload)
	}
	body := struct {
		ConversationID ConversationID  `json:"conversationId"`
		Payload        json.RawMessage `json:"payload"`
	}{conv, raw}
	var out eventBody
	err = c.do(ctx, &call{op: op, method: http.MethodPost, path: "/events", key: key, needsKey: true, body: body, opts: opts}, &out)
	return out.Event, err
}

// GetEvent returns a custom event of a conversation the key's user takes
// part in. It blocks for the round trip and returns an *Error (ErrNotFound,
// ErrForbidden) or a network error.
func (c *Client) GetEvent(ctx context.Context, key UserKey, id EventID) (Event, error) {
	const op = "getEvent"
	if err := requireID("event id", id); err != nil {
		return Event{}, fmt.Errorf("chat: %s: %w", op, err)
	}
	var out eventBody
	err := c.do(ctx, &call{op: op, method: http.MethodGet, path: "/events/" + seg(id), key: key, needsKey: true, idempotent: true}, &out)
	return out.Event, err
}
