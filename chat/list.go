package chat

import (
	"context"
	"fmt"
	"iter"
	"net/http"
)

type pageMeta struct {
	NextToken string `json:"nextToken"`
}

// ListConversationsPage returns one page of the conversations the key's user
// owns (not those they merely take part in), newest first, and the token of
// the next page ("" on the last). Pass "" for the first page. It blocks for
// the round trip and returns an *Error or a network error.
func (c *Client) ListConversationsPage(ctx context.Context, key UserKey, nextToken string) ([]Conversation, string, error) {
	var out struct {
		Conversations []Conversation `json:"conversations"`
		Meta          pageMeta       `json:"meta"`
	}
	err := c.do(ctx, &call{op: "listConversations", method: http.MethodGet, path: "/conversations", query: pageQuery(nextToken), key: key, needsKey: true, idempotent: true}, &out)
	if err != nil {
		return nil, "", err
	}
	return out.Conversations, out.Meta.NextToken, nil
}

// ListMessagesPage returns one page of a conversation's messages, newest
// first as the server serves them, and the token of the next (older) page
// ("" on the last). Pass "" for the first page. It blocks for the round trip
// and returns an *Error (ErrForbidden for a non-participant) or a network
// error.
func (c *Client) ListMessagesPage(ctx context.Context, key UserKey, conv ConversationID, nextToken string) ([]Message, string, error) {
	const op = "listMessages"
	if err := requireID("conversation id", conv); err != nil {
		return nil, "", fmt.Errorf("chat: %s: %w", op, err)
	}
	var out struct {
		Messages []Message `json:"messages"`
		Meta     pageMeta  `json:"meta"`
	}
	err := c.do(ctx, &call{op: op, method: http.MethodGet, path: "/conversations/" + seg(conv) + "/messages", query: pageQuery(nextToken), key: key, needsKey: true, idempotent: true}, &out)
	if err != nil {
		return nil, "", err
	}
	return out.Messages, out.Meta.NextToken, nil
}

// ListParticipantsPage returns one page of a conversation's participants and
// the token of the next page ("" on the last). Pass "" for the first page.
// It blocks for the round trip and returns an *Error (ErrForbidden for a
// non-participant) or a network error.
func (c *Client) ListParticipantsPage(ctx context.Context, key UserKey, conv ConversationID, nextToken string) ([]User, string, error) {
	const op = "listParticipants"
	if err := requireID("conversation id", conv); err != nil {
		return nil, "", fmt.Errorf("chat: %s: %w", op, err)
	}
	var out struct {
		Participants []User   `json:"participants"`
		Meta         pageMeta `json:"meta"`
	}
	err := c.do(ctx, &call{op: op, method: http.MethodGet, path: "/conversations/" + seg(conv) + "/participants", query: pageQuery(nextToken), key: key, needsKey: true, idempotent: true}, &out)
	if err != nil {
		return nil, "", err
	}
	return out.Participants, out.Meta.NextToken, nil
}

// ListConversations iterates over every conversation the key's user owns,
// fetching pages as the loop needs them (see ListConversationsPage). A
// failure, including the end of ctx, is yielded once with a zero value and
// ends the iteration.
func (c *Client) ListConversations(ctx context.Context, key UserKey) iter.Seq2[Conversation, error] {
	return paginate(ctx, "listConversations", func(token string) ([]Conversation, string, error) {
		return c.ListConversationsPage(ctx, key, token)
	})
}

// ListMessages iterates over every message of the conversation, newest first
// as served, fetching pages as the loop needs them; stop early to read only
// recent history. A failure, including the end of ctx, is yielded once with
// a zero value and ends the iteration.
func (c *Client) ListMessages(ctx context.Context, key UserKey, conv ConversationID) iter.Seq2[Message, error] {
	return paginate(ctx, "listMessages", func(token string) ([]Message, string, error) {
		return c.ListMessagesPage(ctx, key, conv, token)
	})
}

// ListParticipants iterates over every participant of the conversation,
// fetching pages as the loop needs them. A failure, including the end of
// ctx, is yielded once with a zero value and ends the iteration.
func (c *Client) ListParticipants(ctx context.Context, key UserKey, conv ConversationID) iter.Seq2[User, error] {
	return paginate(ctx, "listParticipants", func(token string) ([]User, string, error) {
		return c.ListParticipantsPage(ctx, key, conv, token)
	})
}

// paginate walks nextToken pages until the server returns no token.
func paginate[T any](ctx context.Context, op string, page func(token string) ([]T, string, error)) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		var zero T
		token := ""
		for {
			items, next, err := page(token)
			if err != nil {
				yield(zero, err)
				return
			}
			for _, it := range items {
				if err := ctx.Err(); err != nil {
					yield(zero, fmt.Errorf("chat: %s: %w", op, err))
					return
				}
				if !yield(it, nil) {
					return
				}
			}
			if next == "" {
				return
			}
			if next == token {
				// A server that hands back the token it was given would loop forever.
				yield(zero, fmt.Errorf("chat: %s: the server repeated page token %q", op, next))
				return
			}
			token = next
		}
	}
}
