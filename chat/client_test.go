package chat_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/botbridge/botbridge/chat"
)

func TestNewClient(t *testing.T) {
	tests := []struct {
		name    string
		url     string
		wantErr bool
	}{
		{name: "https base with webhook id is accepted", url: "https://chat.botpress.cloud/abc-123"},
		{name: "trailing slash is accepted", url: "http://127.0.0.1:8080/local/"},
		{name: "bare host is accepted", url: "http://localhost:1"},
		{name: "ftp is refused", url: "ftp://chat.botpress.cloud/x", wantErr: true},
		{name: "relative url is refused", url: "/abc", wantErr: true},
		{name: "missing host is refused", url: "https:///abc", wantErr: true},
		{name: "credentials are refused", url: "https://u:p@chat.botpress.cloud/abc", wantErr: true},
		{name: "query is refused", url: "https://chat.botpress.cloud/abc?x=1", wantErr: true},
		{name: "fragment is refused", url: "https://chat.botpress.cloud/abc#x", wantErr: true},
		{name: "garbage is refused", url: "http://[::1", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := chat.NewClient(tt.url)
			if (err != nil) != tt.wantErr {
				t.Fatalf("NewClient(%q) error = %v, wantErr %v", tt.url, err, tt.wantErr)
			}
		})
	}
	t.Run("http client with a Timeout is refused", func(t *testing.T) {
		if _, err := chat.NewClient("http://localhost:1", chat.WithHTTPClient(&http.Client{Timeout: time.Minute})); err == nil {
			t.Fatal("NewClient accepted an http.Client with a Timeout")
		}
	})
}

func TestErrorMapping(t *testing.T) {
	now := time.Date(2026, 11, 22, 18, 0, 0, 0, time.UTC)
	tests := []struct {
		name     string
		status   int
		header   map[string]string
		body     string
		want     chat.Error
		sentinel error
	}{
		{
			name:   "api error body fills every field",
			status: 404, body: `{"id":"err_20261122184220x9AA7367B","code":404,"type":"ResourceNotFound","message":"Message m1 not found"}`,
			want:     chat.Error{Status: 404, Code: 404, Type: "ResourceNotFound", Message: "Message m1 not found", ID: "err_20261122184220x9AA7367B"},
			sentinel: chat.ErrNotFound,
		},
		{
			name:   "validation body keeps the message",
			status: 400, body: `{"message":"must have required property 'x-user-key'"}`,
			want:     chat.Error{Status: 400, Message: "must have required property 'x-user-key'"},
			sentinel: chat.ErrInvalidPayload,
		},
		{
			name:   "plain text body becomes the message",
			status: 500, body: "TypeError: cannot read properties of undefined\n",
			want: chat.Error{Status: 500, Message: "TypeError: cannot read properties of undefined"},
		},
		{
			name:   "unauthorized matches ErrUnauthorized",
			status: 401, body: `{"id":"err_1","code":401,"type":"Unauthorized","message":"Invalid user key"}`,
			want:     chat.Error{Status: 401, Code: 401, Type: "Unauthorized", Message: "Invalid user key", ID: "err_1"},
			sentinel: chat.ErrUnauthorized,
		},
		{
			name:   "forbidden matches ErrForbidden",
			status: 403, body: `{"id":"err_2","code":403,"type":"Forbidden","message":"You are not a participant in this conversation"}`,
			want:     chat.Error{Status: 403, Code: 403, Type: "Forbidden", Message: "You are not a participant in this conversation", ID: "err_2"},
			sentinel: chat.ErrForbidden,
		},
		{
			name:   "already exists matches ErrConflict",
			status: 409, body: `{"id":"err_3","code":409,"type":"AlreadyExists","message":"User with id u1 already exists"}`,
			want:     chat.Error{Status: 409, Code: 409, Type: "AlreadyExists", Message: "User with id u1 already exists", ID: "err_3"},
			sentinel: chat.ErrConflict,
		},
		{
			name:   "retry-after in seconds is read",
			status: 429, header: map[string]string{"Retry-After": "7"}, body: `{"id":"err_4","code":429,"type":"RateLimited","message":"slow down"}`,
			want:     chat.Error{Status: 429, Code: 429, Type: "RateLimited", Message: "slow down", ID: "err_4", RetryAfter: 7 * time.Second},
			sentinel: chat.ErrRateLimited,
		},
		{
			name:   "retry-after as http date is read against the clock",
			status: 503, header: map[string]string{"Retry-After": now.Add(90 * time.Second).Format(http.TimeFormat)}, body: "upstream unavailable",
			want: chat.Error{Status: 503, Message: "upstream unavailable", RetryAfter: 90 * time.Second},
		},
		{
			name:   "retry-after in the past is zero",
			status: 503, header: map[string]string{"Retry-After": now.Add(-time.Minute).Format(http.TimeFormat)},
			want: chat.Error{Status: 503},
		},
		{
			name:   "2xx with an error code becomes that error",
			status: 200, body: `{"id":"err_5","code":403,"type":"Forbidden","message":"nope"}`,
			want:     chat.Error{Status: 403, Code: 403, Type: "Forbidden", Message: "nope", ID: "err_5"},
			sentinel: chat.ErrForbidden,
		},
		{
			name:   "2xx with only a numeric code becomes an error",
			status: 200, body: `{"code":502}`,
			want: chat.Error{Status: 502, Code: 502},
		},
		{
			name:   "echoed user key is redacted",
			status: 401, body: `{"message":"bad key ` + string(testKey) + `"}`,
			want:     chat.Error{Status: 401, Message: "bad key [redacted user key]"},
			sentinel: chat.ErrUnauthorized,
		},
		{
			name:   "long plain text is cut",
			status: 502, body: strings.Repeat("x", 2000),
			want: chat.Error{Status: 502, Message: strings.Repeat("x", 512) + "…"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t, func(w http.ResponseWriter, r *http.Request) {
				for k, v := range tt.header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(tt.status)
				io.WriteString(w, tt.body)
			})
			c := newClient(t, f.URL, nil, nil, chat.WithClock(chat.Clock{Now: func() time.Time { return now }}), chat.WithRetry(chat.RetryPolicy{MaxAttempts: 1}))
			_, err := c.GetUser(t.Context(), testKey)
			var e *chat.Error
			if !errors.As(err, &e) {
				t.Fatalf("GetUser error = %v (%T), want *chat.Error", err, err)
			}
			want := tt.want
			want.Op = "getUser"
			if *e != want {
				t.Errorf("error = %#v\nwant    %#v", *e, want)
			}
			if tt.sentinel != nil && !errors.Is(err, tt.sentinel) {
				t.Errorf("errors.Is(%v, %v) = false", err, tt.sentinel)
			}
			if strings.Contains(err.Error(), string(testKey)) {
				t.Errorf("error text reveals the user key: %v", err)
			}
		})
	}
}

func TestSuccessAnswers(t *testing.T) {
	t.Run("any 2xx is success whatever the content type", func(t *testing.T) {
		f := newFake(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			w.WriteHeader(http.StatusCreated)
			io.WriteString(w, `{"user":{"id":"u1","name":"Ann","createdAt":"2026-11-22T18:42:20.417Z","updatedAt":"2026-11-22T18:42:20.417Z"}}`)
		})
		u, err := newClient(t, f.URL, nil, nil).GetUser(t.Context(), testKey)
		if err != nil {
			t.Fatal(err)
		}
		if u.ID != "u1" || u.Name != "Ann" || u.CreatedAt.IsZero() {
			t.Errorf("user = %+v", u)
		}
	})
	t.Run("2xx that is not json fails to decode", func(t *testing.T) {
		f := newFake(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "<html>proxy</html>") })
		_, err := newClient(t, f.URL, nil, nil).GetUser(t.Context(), testKey)
		var e *chat.Error
		if err == nil || errors.As(err, &e) {
			t.Fatalf("error = %v, want a decode error", err)
		}
	})
	t.Run("oversized answer is refused", func(t *testing.T) {
		f := newFake(t, func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, `{"user":{"id":"u1","name":"`)
			chunk := strings.Repeat("x", 1<<20)
			for range 17 {
				io.WriteString(w, chunk)
			}
			io.WriteString(w, `"}}`)
		})
		_, err := newClient(t, f.URL, nil, nil).GetUser(t.Context(), testKey)
		if err == nil || !strings.Contains(err.Error(), "larger than") {
			t.Fatalf("error = %v, want a size error", err)
		}
	})
	t.Run("hello accepts a plain text greeting", func(t *testing.T) {
		var path string
		f := newFake(t, func(w http.ResponseWriter, r *http.Request) {
			path = r.URL.Path
			io.WriteString(w, "Hello, Botpress User 🤖")
		})
		if err := newClient(t, f.URL+"/wh", nil, nil).Hello(t.Context()); err != nil {
			t.Fatal(err)
		}
		if path != "/wh/hello/" {
			t.Errorf("path = %q, want /wh/hello/", path)
		}
	})
}

// TestClientSideChecks checks that bad input is refused before any request
// leaves the client.
func TestClientSideChecks(t *testing.T) {
	f := newFake(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) })
	c := newClient(t, f.URL, nil, nil)
	ctx := t.Context()
	big := strings.Repeat("x", chat.MaxPayloadBytes)
	tests := []struct {
		name string
		call func() error
		want error
	}{
		{"user id with a space is refused", func() error {
			_, _, err := c.CreateUser(ctx, chat.CreateUserRequest{ID: "a b"})
			return err
		}, chat.ErrInvalidID},
		{"user id of 71 characters is refused", func() error {
			_, _, err := c.CreateUser(ctx, chat.CreateUserRequest{ID: chat.UserID(strings.Repeat("u", 71))})
			return err
		}, chat.ErrInvalidID},
		{"profile of 1001 characters is refused on create", func() error {
			_, _, err := c.CreateUser(ctx, chat.CreateUserRequest{Profile: strings.Repeat("é", 1001)})
			return err
		}, chat.ErrInvalidPayload},
		{"profile of 1001 characters is refused on getOrCreate", func() error {
			_, err := c.GetOrCreateUser(ctx, testKey, chat.UserProfile{Profile: strings.Repeat("p", 1001)})
			return err
		}, chat.ErrInvalidPayload},
		{"profile of 1001 characters is refused on update", func() error {
			_, err := c.UpdateUser(ctx, testKey, chat.UserProfile{Profile: strings.Repeat("p", 1001)})
			return err
		}, chat.ErrInvalidPayload},
		{"missing key is refused", func() error {
			_, err := c.GetUser(ctx, "")
			return err
		}, chat.ErrNoKey},
		{"conversation id with a dot is refused on create", func() error {
			_, err := c.CreateConversation(ctx, testKey, "a.b")
			return err
		}, chat.ErrInvalidID},
		{"empty id is refused on getOrCreate", func() error {
			_, err := c.GetOrCreateConversation(ctx, testKey, "")
			return err
		}, chat.ErrInvalidID},
		{"empty conversation id is refused on get", func() error {
			_, err := c.GetConversation(ctx, testKey, "")
			return err
		}, chat.ErrInvalidID},
		{"empty conversation id is refused on delete", func() error {
			return c.DeleteConversation(ctx, testKey, "")
		}, chat.ErrInvalidID},
		{"empty user id is refused on addParticipant", func() error {
			_, err := c.AddParticipant(ctx, testKey, "c1", "")
			return err
		}, chat.ErrInvalidID},
		{"empty user id is refused on getParticipant", func() error {
			_, err := c.GetParticipant(ctx, testKey, "c1", "")
			return err
		}, chat.ErrInvalidID},
		{"empty conversation id is refused on removeParticipant", func() error {
			return c.RemoveParticipant(ctx, testKey, "", "u1")
		}, chat.ErrInvalidID},
		{"empty conversation id is refused on listMessages", func() error {
			_, _, err := c.ListMessagesPage(ctx, testKey, "", "")
			return err
		}, chat.ErrInvalidID},
		{"empty conversation id is refused on createMessage", func() error {
			_, err := c.CreateMessage(ctx, testKey, chat.CreateMessageRequest{Payload: chat.Text{Text: "hi"}})
			return err
		}, chat.ErrInvalidID},
		{"empty text is refused", func() error {
			_, err := c.CreateMessage(ctx, testKey, chat.CreateMessageRequest{ConversationID: "c1", Payload: chat.Text{}})
			return err
		}, chat.ErrInvalidPayload},
		{"missing payload is refused", func() error {
			_, err := c.CreateMessage(ctx, testKey, chat.CreateMessageRequest{ConversationID: "c1"})
			return err
		}, chat.ErrInvalidPayload},
		{"payload over 128 KB is refused", func() error {
			_, err := c.CreateMessage(ctx, testKey, chat.CreateMessageRequest{ConversationID: "c1", Payload: chat.Text{Text: big}})
			return err
		}, chat.ErrInvalidPayload},
		{"metadata that cannot be encoded is refused", func() error {
			_, err := c.CreateMessage(ctx, testKey, chat.CreateMessageRequest{ConversationID: "c1", Payload: chat.Text{Text: "hi"}, Metadata: map[string]any{"c": make(chan int)}})
			return err
		}, chat.ErrInvalidPayload},
		{"body over 1 MB is refused", func() error {
			_, err := c.CreateMessage(ctx, testKey, chat.CreateMessageRequest{ConversationID: "c1", Payload: chat.Text{Text: "hi"}, Metadata: map[string]any{"blob": strings.Repeat("m", chat.MaxRequestBytes)}})
			return err
		}, chat.ErrInvalidPayload},
		{"empty message id is refused", func() error {
			_, err := c.GetMessage(ctx, testKey, "")
			return err
		}, chat.ErrInvalidID},
		{"empty message id is refused on delete", func() error {
			return c.DeleteMessage(ctx, testKey, "")
		}, chat.ErrInvalidID},
		{"event payload that is an array is refused", func() error {
			_, err := c.CreateEvent(ctx, testKey, "c1", []int{1})
			return err
		}, chat.ErrInvalidPayload},
		{"event payload that is a string is refused", func() error {
			_, err := c.CreateEvent(ctx, testKey, "c1", "hello")
			return err
		}, chat.ErrInvalidPayload},
		{"event payload that cannot be encoded is refused", func() error {
			_, err := c.CreateEvent(ctx, testKey, "c1", map[string]any{"f": func() {}})
			return err
		}, chat.ErrInvalidPayload},
		{"empty event id is refused", func() error {
			_, err := c.GetEvent(ctx, testKey, "")
			return err
		}, chat.ErrInvalidID},
		{"listen without key is refused", func() error {
			return c.Listen(ctx, "", "c1", chat.ListenHandler{OnSignal: func(context.Context, chat.Signal) {}})
		}, chat.ErrNoKey},
		{"listen without conversation is refused", func() error {
			return c.Listen(ctx, testKey, "", chat.ListenHandler{OnSignal: func(context.Context, chat.Signal) {}})
		}, chat.ErrInvalidID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if !errors.Is(err, tt.want) {
				t.Fatalf("error = %v, want %v", err, tt.want)
			}
		})
	}
	t.Run("listen without OnSignal is refused", func(t *testing.T) {
		if err := c.Listen(ctx, testKey, "c1", chat.ListenHandler{}); err == nil {
			t.Fatal("Listen without OnSignal succeeded")
		}
	})
	if n := f.hits.Load(); n != 0 {
		t.Errorf("%d requests reached the server, want none", n)
	}

	t.Run("profile of 1000 multibyte characters is sent", func(t *testing.T) {
		before := f.hits.Load()
		_, err := c.GetOrCreateUser(ctx, testKey, chat.UserProfile{Profile: strings.Repeat("é", 1000)})
		var e *chat.Error
		if !errors.As(err, &e) || e.Status != http.StatusTeapot {
			t.Fatalf("error = %v, want the server's 418", err)
		}
		if f.hits.Load() != before+1 {
			t.Errorf("request was not sent")
		}
	})
}

// seen is what a fake server saw of one request.
type seen struct {
	method, rawPath, query, body string
	header                       http.Header
}

func TestRequestShape(t *testing.T) {
	var (
		mu   sync.Mutex
		reqs []seen
	)
	f := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		reqs = append(reqs, seen{r.Method, r.URL.EscapedPath(), r.URL.RawQuery, string(b), r.Header.Clone()})
		mu.Unlock()
		io.WriteString(w, `{}`)
	})
	c := newClient(t, f.URL+"/wh-1", nil, nil, chat.WithUserAgent("test-agent/2"))
	ctx := t.Context()
	last := func() seen {
		mu.Lock()
		defer mu.Unlock()
		return reqs[len(reqs)-1]
	}
	check := func(t *testing.T, method, path, query string) seen {
		t.Helper()
		s := last()
		if s.method != method || s.rawPath != path || s.query != query {
			t.Errorf("request = %s %s?%s, want %s %s?%s", s.method, s.rawPath, s.query, method, path, query)
		}
		if got := s.header.Get("x-user-key"); got != string(testKey) {
			t.Errorf("x-user-key = %q", got)
		}
		if got := s.header.Get("User-Agent"); got != "test-agent/2" {
			t.Errorf("User-Agent = %q", got)
		}
		return s
	}

	t.Run("ids are escaped in paths", func(t *testing.T) {
		c.GetParticipant(ctx, testKey, `team/a b`, `u\1?`)
		check(t, "GET", "/wh-1/conversations/team%2Fa%20b/participants/u%5C1%3F", "")
	})
	t.Run("next token is encoded in the query", func(t *testing.T) {
		const token = "a+b/c d&e=f"
		c.ListMessagesPage(ctx, testKey, "c1", token)
		s := check(t, "GET", "/wh-1/conversations/c1/messages", "nextToken=a%2Bb%2Fc+d%26e%3Df")
		if s.body != "" {
			t.Errorf("GET carries a body: %q", s.body)
		}
	})
	t.Run("message body is json with payload type and metadata", func(t *testing.T) {
		c.CreateMessage(ctx, testKey, chat.CreateMessageRequest{ConversationID: "c1", Payload: chat.Text{Text: "hi"}, Metadata: map[string]any{"k": "v"}})
		s := check(t, "POST", "/wh-1/messages", "")
		if got := s.header.Get("Content-Type"); got != "application/json" {
			t.Errorf("Content-Type = %q", got)
		}
		if want := `{"conversationId":"c1","payload":{"type":"text","text":"hi"},"metadata":{"k":"v"}}`; s.body != want {
			t.Errorf("body = %s\nwant   %s", s.body, want)
		}
	})
	t.Run("empty profile fields are not sent", func(t *testing.T) {
		c.UpdateUser(ctx, testKey, chat.UserProfile{Name: "Ann"})
		if s := check(t, "PUT", "/wh-1/users/me", ""); s.body != `{"name":"Ann"}` {
			t.Errorf("body = %s", s.body)
		}
	})
	t.Run("generated conversation id sends an empty body", func(t *testing.T) {
		c.CreateConversation(ctx, testKey, "")
		if s := check(t, "POST", "/wh-1/conversations", ""); s.body != `{}` {
			t.Errorf("body = %s", s.body)
		}
	})
	t.Run("event payload is passed through", func(t *testing.T) {
		c.CreateEvent(ctx, testKey, "c1", json.RawMessage(` {"clicked":"yes"}`))
		if s := check(t, "POST", "/wh-1/events", ""); s.body != `{"conversationId":"c1","payload":{"clicked":"yes"}}` {
			t.Errorf("body = %s", s.body)
		}
	})
	t.Run("createUser sends no key", func(t *testing.T) {
		c.CreateUser(ctx, chat.CreateUserRequest{ID: "u1", Name: "Ann"})
		s := last()
		if s.header.Get("x-user-key") != "" || s.rawPath != "/wh-1/users" || s.body != `{"id":"u1","name":"Ann"}` {
			t.Errorf("request = %+v", s)
		}
	})
}

func TestRetries(t *testing.T) {
	policy := chat.RetryPolicy{MaxAttempts: 4, InitialInterval: 100 * time.Millisecond, MaxInterval: 250 * time.Millisecond, MaxRetryAfter: 20 * time.Second}
	// failing answers status for the first n requests, then succeeds.
	failing := func(t *testing.T, n int, status int, header map[string]string) *fake {
		var mu sync.Mutex
		count := 0
		return newFake(t, func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			count++
			fail := count <= n
			mu.Unlock()
			if fail {
				for k, v := range header {
					w.Header().Set(k, v)
				}
				w.WriteHeader(status)
				fmt.Fprintf(w, `{"id":"err_x","code":%d,"type":"Internal","message":"try again"}`, status)
				return
			}
			io.WriteString(w, `{"user":{"id":"u1"},"message":{"id":"m1","conversationId":"c1","userId":"u1","createdAt":"2026-11-22T18:42:20.417Z","payload":{"type":"text","text":"hi"}}}`)
		})
	}
	msg := chat.CreateMessageRequest{ConversationID: "c1", Payload: chat.Text{Text: "hi"}}

	t.Run("5xx storm on a GET is retried with capped backoff", func(t *testing.T) {
		f := failing(t, 3, 503, nil)
		var w waits
		if _, err := newClient(t, f.URL, &w, nil, chat.WithRetry(policy)).GetUser(t.Context(), testKey); err != nil {
			t.Fatal(err)
		}
		if f.hits.Load() != 4 {
			t.Errorf("attempts = %d, want 4", f.hits.Load())
		}
		got := w.all()
		if len(got) != 3 {
			t.Fatalf("waits = %v, want 3", got)
		}
		// Jitter is ±50% around 100, 200, 250 (capped) ms, and no wait exceeds MaxInterval.
		for i, base := range []time.Duration{100, 200, 250} {
			base *= time.Millisecond
			if got[i] < base/2 || got[i] > min(base*3/2, policy.MaxInterval) {
				t.Errorf("wait %d = %v, want within [%v, %v]", i, got[i], base/2, min(base*3/2, policy.MaxInterval))
			}
		}
	})
	t.Run("persistent 5xx gives up after MaxAttempts", func(t *testing.T) {
		f := failing(t, 100, 502, nil)
		var w waits
		_, err := newClient(t, f.URL, &w, nil, chat.WithRetry(policy)).GetUser(t.Context(), testKey)
		var e *chat.Error
		if !errors.As(err, &e) || e.Status != 502 {
			t.Fatalf("error = %v, want the 502", err)
		}
		if f.hits.Load() != 4 || len(w.all()) != 3 {
			t.Errorf("attempts = %d, waits = %v", f.hits.Load(), w.all())
		}
	})
	t.Run("429 waits for Retry-After", func(t *testing.T) {
		f := failing(t, 1, 429, map[string]string{"Retry-After": "3"})
		var w waits
		if _, err := newClient(t, f.URL, &w, nil, chat.WithRetry(policy)).GetUser(t.Context(), testKey); err != nil {
			t.Fatal(err)
		}
		if got := w.all(); !slices.Equal(got, []time.Duration{3 * time.Second}) {
			t.Errorf("waits = %v, want [3s]", got)
		}
	})
	t.Run("Retry-After beyond MaxRetryAfter is capped", func(t *testing.T) {
		f := failing(t, 1, 429, map[string]string{"Retry-After": "3600"})
		var w waits
		if _, err := newClient(t, f.URL, &w, nil, chat.WithRetry(policy)).GetUser(t.Context(), testKey); err != nil {
			t.Fatal(err)
		}
		if got := w.all(); !slices.Equal(got, []time.Duration{policy.MaxRetryAfter}) {
			t.Errorf("waits = %v, want [%v]", got, policy.MaxRetryAfter)
		}
	})
	t.Run("408 is retried", func(t *testing.T) {
		f := failing(t, 1, 408, nil)
		if _, err := newClient(t, f.URL, &waits{}, nil).GetUser(t.Context(), testKey); err != nil {
			t.Fatal(err)
		}
		if f.hits.Load() != 2 {
			t.Errorf("attempts = %d, want 2", f.hits.Load())
		}
	})
	t.Run("4xx is not retried", func(t *testing.T) {
		f := failing(t, 1, 404, nil)
		var w waits
		_, err := newClient(t, f.URL, &w, nil).GetUser(t.Context(), testKey)
		if !errors.Is(err, chat.ErrNotFound) || f.hits.Load() != 1 || len(w.all()) != 0 {
			t.Errorf("error = %v, attempts = %d, waits = %v", err, f.hits.Load(), w.all())
		}
	})
	t.Run("createMessage is not retried by default", func(t *testing.T) {
		f := failing(t, 1, 503, nil)
		_, err := newClient(t, f.URL, &waits{}, nil).CreateMessage(t.Context(), testKey, msg)
		var e *chat.Error
		if !errors.As(err, &e) || e.Status != 503 || f.hits.Load() != 1 {
			t.Errorf("error = %v, attempts = %d", err, f.hits.Load())
		}
	})
	t.Run("createMessage with WithRetry is retried", func(t *testing.T) {
		f := failing(t, 2, 503, nil)
		m, err := newClient(t, f.URL, &waits{}, nil).CreateMessage(t.Context(), testKey, msg, chat.WithRetry())
		if err != nil || m.ID != "m1" || f.hits.Load() != 3 {
			t.Errorf("message = %+v, error = %v, attempts = %d", m, err, f.hits.Load())
		}
	})
	t.Run("per-call policy overrides the client's", func(t *testing.T) {
		f := failing(t, 100, 503, nil)
		newClient(t, f.URL, &waits{}, nil).CreateMessage(t.Context(), testKey, msg, chat.WithRetry(chat.RetryPolicy{MaxAttempts: 2}))
		if f.hits.Load() != 2 {
			t.Errorf("attempts = %d, want 2", f.hits.Load())
		}
	})
	t.Run("MaxAttempts 1 disables retries", func(t *testing.T) {
		f := failing(t, 1, 503, nil)
		newClient(t, f.URL, &waits{}, nil, chat.WithRetry(chat.RetryPolicy{MaxAttempts: 1})).GetUser(t.Context(), testKey)
		if f.hits.Load() != 1 {
			t.Errorf("attempts = %d, want 1", f.hits.Load())
		}
	})
	t.Run("cut connection on a GET is retried", func(t *testing.T) {
		var mu sync.Mutex
		first := true
		f := newFake(t, func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			cut := first
			first = false
			mu.Unlock()
			if cut {
				conn, _, err := http.NewResponseController(w).Hijack()
				if err == nil {
					conn.Close()
				}
				return
			}
			io.WriteString(w, `{"user":{"id":"u1"}}`)
		})
		var w waits
		u, err := newClient(t, f.URL, &w, nil).GetUser(t.Context(), testKey)
		if err != nil || u.ID != "u1" || len(w.all()) != 1 {
			t.Errorf("user = %+v, error = %v, waits = %v", u, err, w.all())
		}
	})
	t.Run("cut connection on createMessage is reported with the op", func(t *testing.T) {
		f := newFake(t, func(w http.ResponseWriter, r *http.Request) {
			if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
				conn.Close()
			}
		})
		_, err := newClient(t, f.URL+"/secret-webhook", &waits{}, nil).CreateMessage(t.Context(), testKey, msg)
		if err == nil || !strings.HasPrefix(err.Error(), "chat: createMessage: POST /messages: ") {
			t.Fatalf("error = %v", err)
		}
		if strings.Contains(err.Error(), "secret-webhook") {
			t.Errorf("network error reveals the base url: %v", err)
		}
		if f.hits.Load() != 1 {
			t.Errorf("attempts = %d, want 1", f.hits.Load())
		}
	})
	t.Run("slow attempt times out and is retried", func(t *testing.T) {
		var mu sync.Mutex
		first := true
		f := newFake(t, func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			hang := first
			first = false
			mu.Unlock()
			if hang {
				<-r.Context().Done()
				return
			}
			io.WriteString(w, `{"user":{"id":"u1"}}`)
		})
		u, err := newClient(t, f.URL, &waits{}, nil, chat.WithRequestTimeout(50*time.Millisecond)).GetUser(t.Context(), testKey)
		if err != nil || u.ID != "u1" {
			t.Errorf("user = %+v, error = %v", u, err)
		}
	})
	t.Run("cancel during the wait ends the call", func(t *testing.T) {
		f := failing(t, 100, 503, nil)
		ctx, cancel := context.WithCancel(t.Context())
		c := newClient(t, f.URL, nil, nil, chat.WithClock(chat.Clock{Wait: func(ctx context.Context, d time.Duration) error {
			cancel()
			return ctx.Err()
		}}))
		_, err := c.GetUser(ctx, testKey)
		var e *chat.Error
		if !errors.Is(err, context.Canceled) || !errors.As(err, &e) || e.Status != 503 {
			t.Errorf("error = %v, want context.Canceled wrapping the 503", err)
		}
		if f.hits.Load() != 1 {
			t.Errorf("attempts = %d, want 1", f.hits.Load())
		}
	})
}
