// Package chat is a client of the Botpress Chat API (spec/chat-api.md): the
// 21 operations as typed methods of Client, user keys made by a Signer or
// returned by CreateUser, nextToken pagination as iterators, and Listen, which
// keeps a conversation's event stream open across failures.
//
// Every call takes a context and a user key. Transient failures (network
// errors, 408, 429, 5xx) of calls that are safe to repeat are retried with
// capped exponential backoff that honours Retry-After; creates are retried
// only when the caller passes WithRetry. API failures are *Error values that
// match ErrNotFound, ErrUnauthorized, ErrForbidden, ErrConflict,
// ErrRateLimited and ErrInvalidPayload with errors.Is. Bad input (ids, payloads,
// profile length, body size) is refused before anything is sent. User keys
// never appear in errors or logs.
package chat

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Limits the client enforces on its own side of the wire.
const (
	// MaxRequestBytes is the largest request body the client sends (the
	// Chat API's 1 MB limit, spec §12).
	MaxRequestBytes = 1 << 20
	// MaxResponseBytes is the most the client reads of one response body;
	// a larger answer fails the call instead of exhausting memory.
	MaxResponseBytes = 16 << 20
	// MaxProfileLength is the longest user profile, in characters, that the
	// server accepts.
	MaxProfileLength = 1000
)

// DefaultRequestTimeout bounds each attempt of a non-streaming call when the
// caller's context has no earlier deadline.
const DefaultRequestTimeout = 60 * time.Second

// DefaultUserAgent is the User-Agent header unless WithUserAgent changes it.
const DefaultUserAgent = "botbridge-chat/1"

// Log attribute keys.
const (
	logKeyComponent    = "component"
	logKeyOp           = "op"
	logKeyAttempt      = "attempt"
	logKeyWait         = "wait"
	logKeyErr          = "err"
	logKeyConversation = "conversation"
)

// Client talks to one Botpress Chat API endpoint (one bot's webhook). It is
// safe for concurrent use and holds no per-user state: every call takes the
// user's key. Create it with NewClient.
type Client struct {
	base      string // scheme://host/path without a trailing slash
	hc        *http.Client
	tls       *tls.Config // for the default transport
	h2c       bool        // the default transport speaks HTTP/2 to http:// bases
	log       *slog.Logger
	retry     RetryPolicy
	clock     Clock
	userAgent string
	timeout   time.Duration
	observe   func(RequestStats)
}

// RequestStats describes one HTTP request (one attempt) of a non-streaming
// call, for metrics.
type RequestStats struct {
	// Op is the operation, such as "createMessage".
	Op string
	// Status is the HTTP status, or 0 when no answer came (network error,
	// timeout, cancellation).
	Status int
	// Duration is the time from sending the request to reading the answer.
	Duration time.Duration
}

// WithObserver calls fn after every request of a non-streaming call, from
// the calling goroutine; fn must be fast and must not block.
func WithObserver(fn func(RequestStats)) Option {
	return clientOption(func(c *Client) { c.observe = fn })
}

// Clock is the client's source of time, replaceable in tests. A nil field
// uses the real clock. The idle timer of Listen uses the time package
// directly; testing/synctest fakes that one.
type Clock struct {
	// Now returns the current time; it is used to read HTTP-date
	// Retry-After values and to judge how long a stream stayed healthy.
	Now func() time.Time
	// Wait blocks for d or until ctx ends, whichever comes first, and
	// returns ctx's error in the second case. Every retry and reconnect
	// delay goes through it.
	Wait func(ctx context.Context, d time.Duration) error
}

// Option configures a Client in NewClient.
type Option interface {
	applyClient(*Client)
}

type clientOption func(*Client)

func (f clientOption) applyClient(c *Client) { f(c) }

// WithHTTPClient makes the client send its requests through hc. hc must not
// set Timeout, which would cut long-lived streams (NewClient refuses it);
// per-call deadlines come from the context and WithRequestTimeout.
func WithHTTPClient(hc *http.Client) Option {
	return clientOption(func(c *Client) { c.hc = hc })
}

// WithTLSConfig makes the default transport use a clone of cfg for TLS: for
// a Chat API behind a private certificate authority (cfg.RootCAs), such as
// the emulator's generated certificate. HTTP/2 is still negotiated. It cannot
// be combined with WithHTTPClient, which brings its own transport.
func WithTLSConfig(cfg *tls.Config) Option {
	return clientOption(func(c *Client) { c.tls = cfg })
}

// WithUnencryptedHTTP2 makes the default transport speak HTTP/2 from the
// first byte (prior knowledge, "h2c") to a base URL with the http scheme, so
// that every stream shares one connection as it does over TLS. The server
// must accept it: a server that speaks only HTTP/1.1 fails every call. No
// effect on https, where HTTP/2 is negotiated anyway. It cannot be combined
// with WithHTTPClient.
func WithUnencryptedHTTP2() Option {
	return clientOption(func(c *Client) { c.h2c = true })
}

// WithLogger sets the logger for retries, reconnects and skipped frames. The
// client adds component=chat. The default discards everything.
func WithLogger(l *slog.Logger) Option {
	return clientOption(func(c *Client) { c.log = l })
}

// WithClock replaces the client's clock, so that tests can observe and skip
// the waits between retries. Nil fields of clk keep the real clock.
func WithClock(clk Clock) Option {
	return clientOption(func(c *Client) {
		if clk.Now != nil {
			c.clock.Now = clk.Now
		}
		if clk.Wait != nil {
			c.clock.Wait = clk.Wait
		}
	})
}

// WithUserAgent sets the User-Agent header of every request.
func WithUserAgent(ua string) Option {
	return clientOption(func(c *Client) { c.userAgent = ua })
}

// WithRequestTimeout bounds each attempt of a non-streaming call (default
// DefaultRequestTimeout). Zero or less means no bound beyond the context.
func WithRequestTimeout(d time.Duration) Option {
	return clientOption(func(c *Client) { c.timeout = d })
}

// NewClient returns a client for the Chat API at baseURL, the full base
// including the webhook id (https://chat.botpress.cloud/{webhookId}). It does
// no I/O (see Hello) and fails only if baseURL is not an absolute http or
// https URL with a host, or carries credentials, a query or a fragment, or if
// the HTTP client of WithHTTPClient has a Timeout.
func NewClient(baseURL string, opts ...Option) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("chat: base url: %w", err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("chat: base url %q: scheme must be http or https", baseURL)
	case u.Host == "":
		return nil, fmt.Errorf("chat: base url %q: no host", baseURL)
	case u.User != nil:
		return nil, errors.New("chat: base url: must not contain credentials")
	case u.RawQuery != "" || u.Fragment != "" || u.ForceQuery:
		return nil, fmt.Errorf("chat: base url %q: must not have a query or fragment", baseURL)
	}
	c := &Client{
		base:      strings.TrimRight(u.String(), "/"),
		retry:     defaultRetryPolicy,
		clock:     Clock{Now: time.Now, Wait: wait},
		userAgent: DefaultUserAgent,
		timeout:   DefaultRequestTimeout,
	}
	for _, o := range opts {
		o.applyClient(c)
	}
	if c.hc == nil {
		c.hc = newHTTPClient(c.tls, c.h2c && u.Scheme == "http")
	} else if c.tls != nil || c.h2c {
		return nil, errors.New("chat: WithTLSConfig and WithUnencryptedHTTP2 set up the default transport; with WithHTTPClient, configure its transport instead")
	} else if c.hc.Timeout != 0 {
		return nil, errors.New("chat: the http.Client has a Timeout, which would cut event streams; use contexts and WithRequestTimeout")
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	c.log = c.log.With(logKeyComponent, "chat")
	c.retry = c.retry.withDefaults()
	return c, nil
}

// newHTTPClient returns the default HTTP client: bounded dials and TLS
// handshakes, a pool large enough for many concurrent calls to one host, and
// no overall Timeout because streams stay open for hours.
//
// Over HTTP/2 (negotiated over TLS, as Botpress Cloud offers it, or h2c with
// prior knowledge) every call and stream to the host shares one connection,
// up to the server's limit of concurrent streams (more connections are opened
// beyond it); an idle stream then costs its two goroutines (Listen's and the
// transport's) and a few KB. A connection silent for 30 s is pinged, and
// dropped with all its streams if no answer comes within 15 s, rather than
// each stream waiting out its own idle timeout. Over HTTP/1.1 each open
// stream holds a connection with its own read and write buffers; 1 KB instead
// of 4 KB each saves 6 KB per idle listener, and large bodies bypass the
// buffers anyway.
func newHTTPClient(tlsConfig *tls.Config, h2c bool) *http.Client {
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           d.DialContext,
		ForceAttemptHTTP2:     true, // despite the custom dialer
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		// Enough idle connections for the bridge's outbox workers (64 by
		// default) to reuse theirs under load instead of dialing anew.
		MaxIdleConns:        128,
		MaxIdleConnsPerHost: 128,
		IdleConnTimeout:     90 * time.Second,
		ReadBufferSize:      1 << 10,
		WriteBufferSize:     1 << 10,
		HTTP2: &http.HTTP2Config{
			SendPingTimeout: 30 * time.Second,
			PingTimeout:     15 * time.Second,
		},
	}
	if tlsConfig != nil {
		// The transport adds h2 to NextProtos in place.
		tr.TLSClientConfig = tlsConfig.Clone()
	}
	if h2c {
		tr.Protocols = new(http.Protocols)
		tr.Protocols.SetUnencryptedHTTP2(true)
	}
	return &http.Client{Transport: tr}
}

// wait is the real Clock.Wait.
func wait(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Hello checks that the endpoint answers, as the official client does before
// its first call: GET {base}/hello/ must return a 2xx. It blocks for the
// round trip (retried like any GET) and returns an *Error or a network error.
func (c *Client) Hello(ctx context.Context) error {
	return c.do(ctx, &call{op: "hello", method: http.MethodGet, path: "/hello/", idempotent: true}, nil)
}

// call describes one API operation.
type call struct {
	op         string
	method     string
	path       string // escaped, relative to the base
	query      url.Values
	key        UserKey
	needsKey   bool
	body       any
	idempotent bool // safe to send again after an ambiguous failure
	opts       []CallOption
}

// do runs the call with retries and decodes a 2xx JSON answer into out (when
// out is not nil).
func (c *Client) do(ctx context.Context, r *call, out any) error {
	if r.needsKey && r.key == "" {
		return fmt.Errorf("chat: %s: %w", r.op, ErrNoKey)
	}
	var body []byte
	if r.body != nil {
		b, err := json.Marshal(r.body)
		if err != nil {
			return fmt.Errorf("chat: %s: encode request: %w: %v", r.op, ErrInvalidPayload, err)
		}
		if len(b) > MaxRequestBytes {
			return fmt.Errorf("chat: %s: %w: request body is %d bytes, the limit is %d", r.op, ErrInvalidPayload, len(b), MaxRequestBytes)
		}
		body = b
	}
	var co callOptions
	for _, o := range r.opts {
		o.applyCall(&co)
	}
	policy := c.retry
	if co.policy != nil {
		policy = co.policy.withDefaults()
	}
	if !r.idempotent && !co.retry {
		policy.MaxAttempts = 1
	}
	return c.retrying(ctx, r.op, policy, func() error {
		if c.observe == nil {
			return c.attempt(ctx, r, body, out)
		}
		start := time.Now()
		err := c.attempt(ctx, r, body, out)
		st := RequestStats{Op: r.op, Duration: time.Since(start)}
		var e *Error
		switch {
		case err == nil:
			st.Status = http.StatusOK
		case errors.As(err, &e):
			st.Status = e.Status
		}
		c.observe(st)
		return err
	})
}

// attempt sends the request once.
func (c *Client) attempt(ctx context.Context, r *call, body []byte, out any) error {
	if c.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	u := c.base + r.path
	if len(r.query) > 0 {
		u += "?" + r.query.Encode()
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, u, rd)
	if err != nil {
		return fmt.Errorf("chat: %s: %w", r.op, err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.userAgent)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if r.key != "" {
		req.Header.Set("x-user-key", string(r.key))
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return c.netError(r, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBytes+1))
	if err != nil {
		return c.netError(r, err)
	}
	if len(data) > MaxResponseBytes {
		return fmt.Errorf("chat: %s: response larger than %d bytes", r.op, MaxResponseBytes)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return c.apiError(r.op, r.key, resp.StatusCode, resp.Header, data)
	}
	if e := c.errorIn2xx(r.op, r.key, resp.Header, data); e != nil {
		return e
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("chat: %s: decode response: %w", r.op, err)
	}
	return nil
}

// netError wraps a transport failure. The URL that net/http puts in its
// errors is replaced by method and path: the base holds the webhook id,
// which is as good as a credential.
func (c *Client) netError(r *call, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return &transportError{op: r.op, method: r.method, path: r.path, err: err}
}

// transportError is a failure below HTTP: dial, TLS, a cut connection, a
// per-attempt timeout. It is always worth another attempt.
type transportError struct {
	op, method, path string
	err              error
}

func (e *transportError) Error() string {
	return fmt.Sprintf("chat: %s: %s %s: %v", e.op, e.method, e.path, e.err)
}

func (e *transportError) Unwrap() error { return e.err }

// apiError builds the *Error of a non-2xx answer from a JSON error body, a
// {message} body or plain text.
func (c *Client) apiError(op string, key UserKey, status int, h http.Header, body []byte) *Error {
	e := &Error{Status: status, Op: op, RetryAfter: c.retryAfter(h)}
	var w errorBody
	if json.Unmarshal(body, &w) == nil {
		e.Code, _ = w.code()
		e.Type, e.Message, e.ID = w.Type, w.Message, w.ID
	} else {
		e.Message = plainText(body)
	}
	e.Message = redact(e.Message, key)
	return e
}

// errorIn2xx returns the *Error hidden in a 2xx answer whose body is an
// object with a numeric code in 400..599 (spec §11: the gateway does that).
func (c *Client) errorIn2xx(op string, key UserKey, h http.Header, body []byte) *Error {
	if !bytes.Contains(body, []byte(`"code"`)) {
		return nil
	}
	var w errorBody
	if json.Unmarshal(body, &w) != nil {
		return nil
	}
	code, ok := w.code()
	if !ok || code < 400 || code > 599 {
		return nil
	}
	return &Error{Status: code, Code: code, Type: w.Type, Message: redact(w.Message, key), ID: w.ID, Op: op, RetryAfter: c.retryAfter(h)}
}

// errorBody is the JSON error body; code stays raw because only a number
// counts.
type errorBody struct {
	ID      string          `json:"id"`
	Code    json.RawMessage `json:"code"`
	Type    string          `json:"type"`
	Message string          `json:"message"`
}

func (w errorBody) code() (int, bool) {
	var n float64
	if len(w.Code) == 0 || json.Unmarshal(w.Code, &n) != nil || n != float64(int(n)) {
		return 0, false
	}
	return int(n), true
}

// plainText turns a non-JSON error body into a one-line message of bounded
// length.
func plainText(body []byte) string {
	const max = 512
	s := strings.TrimSpace(string(body))
	if len(s) > max {
		s = s[:max] + "…"
	}
	return strings.Join(strings.Fields(strings.ToValidUTF8(s, "")), " ")
}

// redact removes the caller's key from text the server sent back, so that
// an echoing server cannot leak it into errors and logs.
func redact(s string, key UserKey) string {
	if key == "" || !strings.Contains(s, string(key)) {
		return s
	}
	return strings.ReplaceAll(s, string(key), key.String())
}

// ErrNoKey is matched by errors.Is when an operation that needs a user key
// is called without one.
var ErrNoKey = errors.New("no user key")

// requireID checks an id that goes into a path or body where the server may
// have generated it: only emptiness can be checked.
func requireID[T ~string](what string, id T) error {
	if id == "" {
		return fmt.Errorf("%w: %s is empty", ErrInvalidID, what)
	}
	return nil
}

// seg escapes one path segment.
func seg[T ~string](id T) string { return url.PathEscape(string(id)) }

// pageQuery returns the query of a list call.
func pageQuery(nextToken string) url.Values {
	if nextToken == "" {
		return nil
	}
	return url.Values{"nextToken": {nextToken}}
}
