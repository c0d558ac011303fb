package chat

import (
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Sentinel errors matched by errors.Is against an *Error (by HTTP status and
// API error type) and against the client's own checks.
var (
	ErrNotFound     = errors.New("not found")
	ErrUnauthorized = errors.New("unauthorized")
	ErrForbidden    = errors.New("forbidden")
	ErrConflict     = errors.New("conflict")
	ErrRateLimited  = errors.New("rate limited")
	// ErrInvalidPayload is declared in payload.go; a 400 answer matches it too.
)

// Error is an error answer of the Chat API.
type Error struct {
	// Status is the HTTP status code of the answer.
	Status int
	// Code, Type, Message and ID come from the JSON error body
	// {"id","code","type","message"}. Validation errors carry only Message;
	// a plain-text body ends up in Message with an empty Type.
	Code    int
	Type    string
	Message string
	ID      string
	// RetryAfter is the server's Retry-After, when it sent one.
	RetryAfter time.Duration
	// Op is the operation that failed, such as "createMessage".
	Op string
}

// RetryDelay returns the server's Retry-After, so that retry.Backoff waits
// at least that long.
func (e *Error) RetryDelay() time.Duration { return e.RetryAfter }

// Error returns "chat: <op>: <status> <type>: <message>".
func (e *Error) Error() string {
	typ := e.Type
	if typ == "" {
		typ = http.StatusText(e.Status)
	}
	msg := e.Message
	if msg == "" {
		msg = "(no message)"
	}
	s := fmt.Sprintf("chat: %s: %d %s: %s", e.Op, e.Status, typ, msg)
	if e.ID != "" {
		s += " (" + e.ID + ")"
	}
	return s
}

// Is matches the sentinel errors by status and API error type.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrNotFound:
		return e.Status == http.StatusNotFound
	case ErrUnauthorized:
		return e.Status == http.StatusUnauthorized
	case ErrForbidden:
		return e.Status == http.StatusForbidden
	case ErrConflict:
		return e.Status == http.StatusConflict
	case ErrRateLimited:
		return e.Status == http.StatusTooManyRequests
	case ErrInvalidPayload:
		return e.Status == http.StatusBadRequest || e.Status == http.StatusRequestEntityTooLarge
	}
	return false
}

// Temporary reports whether the failure may go away by itself: 429, 5xx and
// 408.
func (e *Error) Temporary() bool {
	return e.Status == http.StatusTooManyRequests || e.Status == http.StatusRequestTimeout || e.Status >= 500
}
