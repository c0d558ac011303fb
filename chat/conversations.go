package chat

import (
	"context"
	"fmt"
	"net/http"
)

type conversationBody struct {
	Conversation Conversation `json:"conversation"`
}

type participantBody struct {
	Participant User `json:"participant"`
}

// CreateConversation creates a conversation owned by the key's user, who
// becomes its first participant. An empty id lets the server generate one;
// any other id must pass ValidateID. It blocks for the round trip, is
// retried only with WithRetry, and returns an *Error (ErrConflict when id is
// taken) or a network error.
func (c *Client) CreateConversation(ctx context.Context, key UserKey, id ConversationID, opts ...CallOption) (Conversation, error) {
	const op = "createConversation"
	if id != "" {
		if err := ValidateID(string(id)); err != nil {
			return Conversation{}, fmt.Errorf("chat: %s: conversation id: %w", op, err)
		}
	}
	body := struct {
		ID ConversationID `json:"id,omitempty"`
	}{id}
	var out conversationBody
	err := c.do(ctx, &call{op: op, method: http.MethodPost, path: "/conversations", key: key, needsKey: true, body: body, opts: opts}, &out)
	return out.Conversation, err
}

// GetOrCreateConversation returns the conversation with the caller-chosen id,
// creating it for the key's user if it does not exist. id must pass
// ValidateID. It blocks for the round trip (retried: it is idempotent) and
// returns an *Error (ErrForbidden when someone else owns the conversation)
// or a network error.
func (c *Client) GetOrCreateConversation(ctx context.Context, key UserKey, id ConversationID) (Conversation, error) {
	const op = "getOrCreateConversation"
	if err := ValidateID(string(id)); err != nil {
		return Conversation{}, fmt.Errorf("chat: %s: conversation id: %w", op, err)
	}
	body := struct {
		ID ConversationID `json:"id"`
	}{id}
	var out conversationBody
	err := c.do(ctx, &call{op: op, method: http.MethodPost, path: "/conversations/get-or-create", key: key, needsKey: true, body: body, idempotent: true}, &out)
	return out.Conversation, err
}

// GetConversation returns the conversation if the key's user takes part in
// it. It blocks for the round trip and returns an *Error (ErrNotFound,
// ErrForbidden) or a network error.
func (c *Client) GetConversation(ctx context.Context, key UserKey, id ConversationID) (Conversation, error) {
	const op = "getConversation"
	if err := requireID("conversation id", id); err != nil {
		return Conversation{}, fmt.Errorf("chat: %s: %w", op, err)
	}
	var out conversationBody
	err := c.do(ctx, &call{op: op, method: http.MethodGet, path: "/conversations/" + seg(id), key: key, needsKey: true, idempotent: true}, &out)
	return out.Conversation, err
}

// DeleteConversation deletes the conversation and its messages; only its
// owner may. It blocks for the round trip and returns an *Error
// (ErrForbidden, ErrNotFound) or a network error. A retry after a lost
// answer may report ErrNotFound for a conversation that is gone.
func (c *Client) DeleteConversation(ctx context.Context, key UserKey, id ConversationID) error {
	const op = "deleteConversation"
	if err := requireID("conversation id", id); err != nil {
		return fmt.Errorf("chat: %s: %w", op, err)
	}
	return c.do(ctx, &call{op: op, method: http.MethodDelete, path: "/conversations/" + seg(id), key: key, needsKey: true, idempotent: true}, nil)
}

// AddParticipant adds user to the conversation and returns them; only the
// owner may. Adding is retried after transient failures because the outcome
// (user is a participant) does not depend on how often it is applied. It
// blocks for the round trip and returns an *Error (ErrForbidden,
// ErrNotFound) or a network error.
func (c *Client) AddParticipant(ctx context.Context, key UserKey, conv ConversationID, user UserID) (User, error) {
	const op = "addParticipant"
	if err := requireID("conversation id", conv); err != nil {
		return User{}, fmt.Errorf("chat: %s: %w", op, err)
	}
	if err := requireID("user id", user); err != nil {
		return User{}, fmt.Errorf("chat: %s: %w", op, err)
	}
	body := struct {
		UserID UserID `json:"userId"`
	}{user}
	var out participantBody
	err := c.do(ctx, &call{op: op, method: http.MethodPost, path: "/conversations/" + seg(conv) + "/participants", key: key, needsKey: true, body: body, idempotent: true}, &out)
	return out.Participant, err
}

// GetParticipant returns user if they take part in the conversation; only
// the owner may ask. It blocks for the round trip and returns an *Error
// (ErrNotFound, ErrForbidden) or a network error.
func (c *Client) GetParticipant(ctx context.Context, key UserKey, conv ConversationID, user UserID) (User, error) {
	const op = "getParticipant"
	if err := requireID("conversation id", conv); err != nil {
		return User{}, fmt.Errorf("chat: %s: %w", op, err)
	}
	if err := requireID("user id", user); err != nil {
		return User{}, fmt.Errorf("chat: %s: %w", op, err)
	}
	var out participantBody
	err := c.do(ctx, &call{op: op, method: http.MethodGet, path: "/conversations/" + seg(conv) + "/participants/" + seg(user), key: key, needsKey: true, idempotent: true}, &out)
	return out.Participant, err
}

// RemoveParticipant removes user from the conversation; only the owner may,
// and not themselves. The server closes every open stream of the removed
// user. It blocks for the round trip and returns an *Error (ErrForbidden,
// ErrNotFound, ErrInvalidPayload for the owner) or a network error.
func (c *Client) RemoveParticipant(ctx context.Context, key UserKey, conv ConversationID, user UserID) error {
	const op = "removeParticipant"
	if err := requireID("conversation id", conv); err != nil {
		return fmt.Errorf("chat: %s: %w", op, err)
	}
	if err := requireID("user id", user); err != nil {
		return fmt.Errorf("chat: %s: %w", op, err)
	}
	return c.do(ctx, &call{op: op, method: http.MethodDelete, path: "/conversations/" + seg(conv) + "/participants/" + seg(user), key: key, needsKey: true, idempotent: true}, nil)
}
