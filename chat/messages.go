package chat

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
)

// CreateMessageRequest is the input of CreateMessage.
type CreateMessageRequest struct {
	ConversationID ConversationID
	Payload        Payload
	// Metadata travels beside the payload and comes back on the message and
	// its signals; it must encode to JSON. Nil sends none.
	Metadata map[string]any
}

type messageBody struct {
	Message Message `json:"message"`
}

// CreateMessage sends a message as the key's user, who must take part in the
// conversation, and returns it as stored; the bot's answers arrive later
// through Listen or ListMessages. The payload is checked with
// ValidatePayload and the body against MaxRequestBytes before sending. It
// blocks for the round trip and is retried only with WithRetry (a lost answer
// would make a retry send the message twice; metadata lets a caller find out
// with ListMessages). It returns an *Error (ErrForbidden for a
// non-participant, ErrInvalidPayload) or a network error.
func (c *Client) CreateMessage(ctx context.Context, key UserKey, req CreateMessageRequest, opts ...CallOption) (Message, error) {
	const op = "createMessage"
	if err := requireID("conversation id", req.ConversationID); err != nil {
		return Message{}, fmt.Errorf("chat: %s: %w", op, err)
	}
	if err := ValidatePayload(req.Payload); err != nil {
		return Message{}, fmt.Errorf("chat: %s: %w", op, err)
	}
	var meta json.RawMessage
	if req.Metadata != nil {
		b, err := json.Marshal(req.Metadata)
		if err != nil {
			return Message{}, fmt.Errorf("chat: %s: %w: metadata: %v", op, ErrInvalidPayload, err)
		}
		meta = b
	}
	body := struct {
		ConversationID ConversationID  `json:"conversationId"`
		Payload        Payload         `json:"payload"`
		Metadata       json.RawMessage `json:"metadata,omitempty"`
	}{req.ConversationID, req.Payload, meta}
	var out messageBody
	err := c.do(ctx, &call{op: op, method: http.MethodPost, path: "/messages", key: key, needsKey: true, body: body, opts: opts}, &out)
	return out.Message, err
}

// GetMessage returns a message of a conversation the key's user takes part
// in. The real server reports the caller as the sender (spec §13 quirk 3);
// ListMessages and signals carry the real sender. It blocks for the round
// trip and returns an *Error (ErrNotFound, ErrForbidden) or a network error.
func (c *Client) GetMessage(ctx context.Context, key UserKey, id MessageID) (Message, error) {
	const op = "getMessage"
	if err := requireID("message id", id); err != nil {
		return Message{}, fmt.Errorf("chat: %s: %w", op, err)
	}
	var out messageBody
	err := c.do(ctx, &call{op: op, method: http.MethodGet, path: "/messages/" + seg(id), key: key, needsKey: true, idempotent: true}, &out)
	return out.Message, err
}

// DeleteMessage deletes a message; only its sender may. It blocks for the
// round trip and returns an *Error (ErrForbidden, ErrNotFound) or a network
// error. A retry after a lost answer may report ErrNotFound for a message
// that is gone.
func (c *Client) DeleteMessage(ctx context.Context, key UserKey, id MessageID) error {
	const op = "deleteMessage"
	if err := requireID("message id", id); err != nil {
		return fmt.Errorf("chat: %s: %w", op, err)
	}
	return c.do(ctx, &call{op: op, method: http.MethodDelete, path: "/messages/" + seg(id), key: key, needsKey: true, idempotent: true}, nil)
}
