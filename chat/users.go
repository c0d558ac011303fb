package chat

import (
	"context"
	"fmt"
	"net/http"
	"unicode/utf8"
)

// UserProfile holds the user fields a caller may set. Empty fields are not
// sent, so the server leaves them alone.
type UserProfile struct {
	Name       string `json:"name,omitempty"`
	PictureURL string `json:"pictureUrl,omitempty"`
	// Profile is free text of at most MaxProfileLength characters.
	Profile string `json:"profile,omitempty"`
}

func (p UserProfile) validate() error {
	if n := utf8.RuneCountInString(p.Profile); n > MaxProfileLength {
		return fmt.Errorf("%w: profile is %d characters, the limit is %d", ErrInvalidPayload, n, MaxProfileLength)
	}
	return nil
}

// CreateUserRequest is the input of CreateUser. ID is optional: empty lets
// the server generate one.
type CreateUserRequest struct {
	ID         UserID `json:"id,omitempty"`
	Name       string `json:"name,omitempty"`
	PictureURL string `json:"pictureUrl,omitempty"`
	Profile    string `json:"profile,omitempty"`
}

type userBody struct {
	User User `json:"user"`
}

// CreateUser creates a user in the shared-key mode and returns it with the
// key the server signed for it; keep the key, it is the only way to act as
// that user. It blocks for the round trip and is retried only with
// WithRetry. It fails before sending if ID or Profile break the server's
// rules, and otherwise returns an *Error (401 when the bot uses an
// encryption key, 409 when ID is taken) or a network error.
func (c *Client) CreateUser(ctx context.Context, req CreateUserRequest, opts ...CallOption) (User, UserKey, error) {
	const op = "createUser"
	if req.ID != "" {
		if err := ValidateID(string(req.ID)); err != nil {
			return User{}, "", fmt.Errorf("chat: %s: user id: %w", op, err)
		}
	}
	if err := (UserProfile{Profile: req.Profile}).validate(); err != nil {
		return User{}, "", fmt.Errorf("chat: %s: %w", op, err)
	}
	var out struct {
		User User    `json:"user"`
		Key  UserKey `json:"key"`
	}
	err := c.do(ctx, &call{op: op, method: http.MethodPost, path: "/users", body: req, opts: opts}, &out)
	if err != nil {
		return User{}, "", err
	}
	if out.Key == "" {
		return User{}, "", fmt.Errorf("chat: %s: the answer holds no key", op)
	}
	return out.User, out.Key, nil
}

// GetOrCreateUser returns the user named by key, creating it if needed, and
// updates the non-empty fields of p. This is how keys made by a Signer come
// into use. It blocks for the round trip (retried: it is idempotent) and
// returns an *Error (401 for a key the server cannot verify) or a network
// error; an overlong profile fails before sending.
func (c *Client) GetOrCreateUser(ctx context.Context, key UserKey, p UserProfile) (User, error) {
	const op = "getOrCreateUser"
	if err := p.validate(); err != nil {
		return User{}, fmt.Errorf("chat: %s: %w", op, err)
	}
	var out userBody
	err := c.do(ctx, &call{op: op, method: http.MethodPost, path: "/users/get-or-create", key: key, needsKey: true, body: p, idempotent: true}, &out)
	return out.User, err
}

// GetUser returns the user named by key. It blocks for the round trip and
// returns an *Error (ErrNotFound, ErrUnauthorized) or a network error.
func (c *Client) GetUser(ctx context.Context, key UserKey) (User, error) {
	var out userBody
	err := c.do(ctx, &call{op: "getUser", method: http.MethodGet, path: "/users/me", key: key, needsKey: true, idempotent: true}, &out)
	return out.User, err
}

// UpdateUser sets the non-empty fields of p on the user named by key and
// returns the updated user. It blocks for the round trip and returns an
// *Error or a network error; an overlong profile fails before sending.
func (c *Client) UpdateUser(ctx context.Context, key UserKey, p UserProfile) (User, error) {
	const op = "updateUser"
	if err := p.validate(); err != nil {
		return User{}, fmt.Errorf("chat: %s: %w", op, err)
	}
	var out userBody
	err := c.do(ctx, &call{op: op, method: http.MethodPut, path: "/users/me", key: key, needsKey: true, body: p, idempotent: true}, &out)
	return out.User, err
}

// DeleteUser deletes the user named by key; the key is useless afterwards.
// It blocks for the round trip and returns an *Error or a network error. A
// retry after a lost answer may report ErrNotFound for a user that is gone.
func (c *Client) DeleteUser(ctx context.Context, key UserKey) error {
	return c.do(ctx, &call{op: "deleteUser", method: http.MethodDelete, path: "/users/me", key: key, needsKey: true, idempotent: true}, nil)
}
