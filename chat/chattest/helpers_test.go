package chattest_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/botbridge/botbridge/chat"
	"github.com/botbridge/botbridge/chat/chattest"
	"github.com/golang-jwt/jwt/v5"
)

// wait is how long a test waits for something that should happen at once.
const wait = 10 * time.Second

// env is an emulator served over loopback HTTP.
type env struct {
	t   testing.TB
	s   *chattest.Server
	url string
	hc  *http.Client
}

// protocolEnv names the environment variable that runs the emulator's tests
// over another protocol: "h2c" (HTTP/2 without TLS) or "tls" (HTTPS, HTTP/2
// by ALPN); the default is plain HTTP/1.1. Tests that set a protocol keep it.
const protocolEnv = "CHATTEST_PROTOCOL"

// protocol returns the protocol the tests run over: "h1", "h2c" or "tls".
func protocol() string {
	if p := os.Getenv(protocolEnv); p != "" {
		return p
	}
	return "h1"
}

// newEnv starts an emulator and a client that speaks its protocol.
func newEnv(t testing.TB, opts chattest.Options) *env {
	t.Helper()
	return newEnvOver(t, opts, protocol())
}

// newEnvOver is newEnv over protocol p, unless opts sets one.
func newEnvOver(t testing.TB, opts chattest.Options, p string) *env {
	t.Helper()
	if !opts.H2C && !opts.TLS {
		switch p {
		case "h2c":
			opts.H2C = true
		case "tls":
			opts.TLS = true
		case "h1":
		default:
			t.Fatalf("%s=%q: want h1, h2c or tls", protocolEnv, p)
		}
	}
	s, err := chattest.New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := s.Start("127.0.0.1:0"); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return &env{t: t, s: s, url: s.URL(), hc: s.Client()}
}

type resp struct {
	status int
	header http.Header
	body   []byte
}

// do sends one request. body may be nil, a string or []byte (sent as is), or
// anything else (sent as JSON).
func (e *env) do(method, path string, key chat.UserKey, body any) resp {
	e.t.Helper()
	return e.doCtx(e.t.Context(), method, path, key, body)
}

func (e *env) doCtx(ctx context.Context, method, path string, key chat.UserKey, body any) resp {
	e.t.Helper()
	r, err := e.send(ctx, method, path, key, body)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	return r
}

func (e *env) send(ctx context.Context, method, path string, key chat.UserKey, body any) (resp, error) {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			return resp{}, err
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequestWithContext(ctx, method, e.url+path, rd)
	if err != nil {
		return resp{}, err
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("x-user-key", string(key))
	}
	res, err := e.hc.Do(req)
	if err != nil {
		return resp{}, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return resp{}, err
	}
	return resp{res.StatusCode, res.Header, b}, nil
}

// ok checks a 200 JSON answer and decodes it into v (if not nil).
func (r resp) ok(t testing.TB, v any) {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("status %d, want 200; body %s", r.status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	if v != nil {
		if err := json.Unmarshal(r.body, v); err != nil {
			t.Fatalf("decode %s: %v", r.body, err)
		}
	}
}

var errorIDPattern = regexp.MustCompile(`^err_\d{14}x[0-9A-F]{8}$`)

// apiErr checks an API error answer: status, the full body, and the message.
func (r resp) apiErr(t *testing.T, status int, typ, msg string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body %s", r.status, status, r.body)
	}
	var b map[string]any
	if err := json.Unmarshal(r.body, &b); err != nil {
		t.Fatalf("error body %s: %v", r.body, err)
	}
	if len(b) != 4 {
		t.Errorf("error body %s: want exactly id, code, type, message", r.body)
	}
	if id, _ := b["id"].(string); !errorIDPattern.MatchString(id) {
		t.Errorf("error id %q does not match %s", id, errorIDPattern)
	}
	if code, _ := b["code"].(float64); int(code) != status {
		t.Errorf("code %v, want %d", b["code"], status)
	}
	if b["type"] != typ {
		t.Errorf("type %v, want %s", b["type"], typ)
	}
	if msg != "" && b["message"] != msg {
		t.Errorf("message %q, want %q", b["message"], msg)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
}

// msgErr checks a {"message": ...} answer (validation failures, routing).
func (r resp) msgErr(t *testing.T, status int, msg string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body %s", r.status, status, r.body)
	}
	want, _ := json.Marshal(map[string]string{"message": msg})
	if !bytes.Equal(r.body, want) {
		t.Errorf("body %s, want %s", r.body, want)
	}
}

type userOut struct {
	ID         chat.UserID `json:"id"`
	Name       string      `json:"name"`
	PictureURL string      `json:"pictureUrl"`
	Profile    string      `json:"profile"`
	CreatedAt  string      `json:"createdAt"`
	UpdatedAt  string      `json:"updatedAt"`
}

type messageOut struct {
	ID             chat.MessageID      `json:"id"`
	CreatedAt      string              `json:"createdAt"`
	Payload        json.RawMessage     `json:"payload"`
	UserID         chat.UserID         `json:"userId"`
	ConversationID chat.ConversationID `json:"conversationId"`
	Metadata       map[string]any      `json:"metadata"`
	IsBot          *bool               `json:"isBot"`
}

type listOut struct {
	Conversations []struct {
		ID chat.ConversationID `json:"id"`
	} `json:"conversations"`
	Messages     []messageOut `json:"messages"`
	Participants []userOut    `json:"participants"`
	Meta         struct {
		NextToken *string `json:"nextToken"`
	} `json:"meta"`
}

// createUser creates a user in shared mode; an empty id lets the server choose.
func (e *env) createUser(id string) (chat.UserID, chat.UserKey) {
	e.t.Helper()
	body := map[string]any{}
	if id != "" {
		body["id"] = id
	}
	var out struct {
		User userOut      `json:"user"`
		Key  chat.UserKey `json:"key"`
	}
	e.do("POST", "/users", "", body).ok(e.t, &out)
	if out.Key == "" || out.User.ID == "" {
		e.t.Fatalf("createUser: empty user or key: %+v", out)
	}
	return out.User.ID, out.Key
}

func (e *env) createConv(key chat.UserKey, id string) chat.ConversationID {
	e.t.Helper()
	body := map[string]any{}
	if id != "" {
		body["id"] = id
	}
	var out struct {
		Conversation struct {
			ID chat.ConversationID `json:"id"`
		} `json:"conversation"`
	}
	e.do("POST", "/conversations", key, body).ok(e.t, &out)
	return out.Conversation.ID
}

func (e *env) addParticipant(key chat.UserKey, conv chat.ConversationID, u chat.UserID) {
	e.t.Helper()
	e.do("POST", "/conversations/"+string(conv)+"/participants", key, map[string]any{"userId": u}).ok(e.t, nil)
}

func (e *env) sendText(key chat.UserKey, conv chat.ConversationID, text string) messageOut {
	e.t.Helper()
	var out struct {
		Message messageOut `json:"message"`
	}
	e.do("POST", "/messages", key, map[string]any{
		"conversationId": conv, "payload": map[string]any{"type": "text", "text": text},
	}).ok(e.t, &out)
	return out.Message
}

// listAll pages through a list operation and returns every page.
func (e *env) listAll(key chat.UserKey, path string) []listOut {
	e.t.Helper()
	var pages []listOut
	token := ""
	for range 1000 {
		p := path
		if token != "" {
			p += "?nextToken=" + token
		}
		var out listOut
		e.do("GET", p, key, nil).ok(e.t, &out)
		pages = append(pages, out)
		if out.Meta.NextToken == nil {
			return pages
		}
		if *out.Meta.NextToken == "" {
			e.t.Fatalf("%s: empty nextToken must be omitted", path)
		}
		token = *out.Meta.NextToken
	}
	e.t.Fatalf("%s: no last page after 1000 pages", path)
	return nil
}

// signKey signs an HS256 user key for id with secret, as an integrator would.
func signKey(t testing.TB, secret string, claims jwt.MapClaims) chat.UserKey {
	t.Helper()
	k, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return chat.UserKey(k)
}

// Event streams, parsed by hand.

type frame struct {
	raw  string // the whole event block, blank line included
	data string
}

type sse struct {
	res    *http.Response
	frames chan frame
	end    chan error // io.EOF for a clean end of the body
	cancel context.CancelFunc
	schema *signalSchemas
}

// listen opens a stream and fails the test unless it is answered 200 with
// text/event-stream.
func (e *env) listen(key chat.UserKey, conv chat.ConversationID) *sse {
	e.t.Helper()
	st, r := e.openStream(key, conv)
	if st == nil {
		e.t.Fatalf("listen %s: status %d: %s", conv, r.status, r.body)
	}
	return st
}

// openStream opens a stream; on a non-200 answer it returns nil and the answer.
func (e *env) openStream(key chat.UserKey, conv chat.ConversationID) (*sse, resp) {
	e.t.Helper()
	ctx, cancel := context.WithCancel(e.t.Context())
	req, err := http.NewRequestWithContext(ctx, "GET", e.url+"/conversations/"+string(conv)+"/listen", nil)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Cache-Control", "no-cache")
	if key != "" {
		req.Header.Set("x-user-key", string(key))
	}
	// Do returns once the headers arrive: the emulator must flush them before
	// any event exists.
	timer := time.AfterFunc(wait, cancel)
	res, err := e.hc.Do(req)
	timer.Stop()
	if err != nil {
		cancel()
		e.t.Fatalf("listen %s: %v (headers not flushed at once?)", conv, err)
	}
	if res.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		cancel()
		return nil, resp{res.StatusCode, res.Header, b}
	}
	if ct := res.Header.Get("Content-Type"); ct != "text/event-stream" {
		e.t.Errorf("listen Content-Type %q, want text/event-stream", ct)
	}
	st := &sse{res: res, frames: make(chan frame, 4096), end: make(chan error, 1), cancel: cancel, schema: loadSchemas(e.t)}
	go st.read()
	e.t.Cleanup(st.close)
	return st, resp{}
}

func (st *sse) close() {
	st.cancel()
	st.res.Body.Close()
}

func (st *sse) read() {
	defer close(st.frames)
	br := bufio.NewReader(st.res.Body)
	var block strings.Builder
	var data string
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			if err == io.EOF && line == "" && block.Len() == 0 {
				st.end <- io.EOF
			} else if err == io.EOF {
				st.end <- io.ErrUnexpectedEOF
			} else {
				st.end <- err
			}
			return
		}
		block.WriteString(line)
		if line == "\n" {
			st.frames <- frame{raw: block.String(), data: data}
			block.Reset()
			data = ""
			continue
		}
		if d, ok := strings.CutPrefix(line, "data: "); ok {
			data = strings.TrimSuffix(d, "\n")
		}
	}
}

// nextFrame returns the next frame, pings included, after checking that it is
// exactly "event: message\ndata: ...\n\n".
func (st *sse) nextFrame(t *testing.T) frame {
	t.Helper()
	select {
	case f, ok := <-st.frames:
		if !ok {
			t.Fatalf("stream ended: %v", <-st.end)
		}
		if want := "event: message\ndata: " + f.data + "\n\n"; f.raw != want {
			t.Fatalf("frame %q, want the form %q", f.raw, want)
		}
		return f
	case <-time.After(wait):
		t.Fatalf("no frame within %v", wait)
	}
	return frame{}
}

// signal is a decoded signal of the wire.
type signal struct {
	Type string          `json:"type"`
	Data json.RawMessage `json:"data"`
	raw  []byte
}

func (s signal) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(s.Data, v); err != nil {
		t.Fatalf("decode %s: %v", s.Data, err)
	}
}

// next returns the next signal, skipping pings, after validating it against
// the JSON Schemas and parsing it with chat.ParseSignal.
func (st *sse) next(t *testing.T) signal {
	t.Helper()
	for {
		f := st.nextFrame(t)
		if f.data == "ping" {
			continue
		}
		var s signal
		if err := json.Unmarshal([]byte(f.data), &s); err != nil {
			t.Fatalf("signal %q: %v", f.data, err)
		}
		s.raw = []byte(f.data)
		if err := st.schema.check(s.Type, s.raw); err != nil {
			t.Fatalf("signal %s fails its schema: %v", f.data, err)
		}
		if _, err := chat.ParseSignal(s.raw); err != nil {
			t.Fatalf("chat.ParseSignal(%s): %v", f.data, err)
		}
		return s
	}
}

// nextOf returns the next signal and checks its type.
func (st *sse) nextOf(t *testing.T, typ string) signal {
	t.Helper()
	s := st.next(t)
	if s.Type != typ {
		t.Fatalf("signal %s, want type %s", s.raw, typ)
	}
	return s
}

// abrupt reports whether a stream ended without the end of its body: the
// connection dropped (HTTP/1.1) or the stream reset (HTTP/2).
func abrupt(err error) bool {
	return errors.Is(err, io.ErrUnexpectedEOF) || err != nil && strings.Contains(err.Error(), "stream error") && strings.Contains(err.Error(), "INTERNAL_ERROR")
}

// ended waits for the end of the stream, skipping frames, and returns how it
// ended: io.EOF for a clean end of the body.
func (st *sse) ended(t *testing.T) error {
	t.Helper()
	timeout := time.After(wait)
	for {
		select {
		case _, ok := <-st.frames:
			if !ok {
				return <-st.end
			}
		case <-timeout:
			t.Fatalf("stream still open after %v", wait)
		}
	}
}

// quiet checks that no signal arrives before a message the test sends itself
// as a marker: streams are ordered, so anything before the marker would show.
func (st *sse) untilMarker(t *testing.T, marker string) []signal {
	t.Helper()
	var got []signal
	for {
		s := st.next(t)
		if s.Type == chat.SignalMessageCreated {
			var m messageOut
			s.decode(t, &m)
			if strings.Contains(string(m.Payload), marker) {
				return got
			}
		}
		got = append(got, s)
	}
}

// clock is a settable time source for Options.Now.
type clock struct{ ns atomic.Int64 }

func newClock(t time.Time) *clock {
	c := &clock{}
	c.ns.Store(t.UnixNano())
	return c
}

func (c *clock) Now() time.Time          { return time.Unix(0, c.ns.Load()).UTC() }
func (c *clock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

var timestampPattern = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`)

func checkTimestamp(t *testing.T, field, v string) {
	t.Helper()
	if !timestampPattern.MatchString(v) {
		t.Errorf("%s %q is not UTC with milliseconds and Z", field, v)
	}
}
