// Package chattest is an in-process emulator of the Botpress Chat API that
// speaks the real wire protocol over HTTP: the 21 operations, both ways of
// authenticating, server-sent event streams with every realtime signal,
// webhooks of every signal to a Webhook URL, and the service's error bodies
// and quirks as described in spec/chat-api.md.
//
// It speaks HTTP/1.1, and on request HTTP/2 as well (Options.TLS, with a
// generated certificate, or Options.H2C without TLS), so that tests and
// benchmarks can measure streams multiplexed over one connection as against
// Botpress Cloud.
//
// It serves tests (with controls to inject latency, failures, stream cuts and
// lost webhooks) and `botbridge demo` / `botbridge emulator` (with a
// pluggable Bot and an optional state file).
//
// Differences from the real service, on purpose: message_deleted carries the
// ids the API shows (quirk 4 is not copied), getMessage reports the real sender
// (quirk 3 is not copied), and getOrCreateConversation answers 409 instead of
// creating a second conversation when it is given the generated id of a
// conversation created without a chosen id.
package chattest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/botbridge/botbridge/chat"
	"github.com/golang-jwt/jwt/v5"
)

// Defaults of Options.
const (
	DefaultWebhookID    = "local"
	DefaultPageSize     = 20
	DefaultKeepAlive    = 30 * time.Second
	DefaultStreamBuffer = 1024
)

// closeGrace is how long Close lets requests in flight finish.
const closeGrace = 500 * time.Millisecond

// Log attribute keys.
const (
	logConversation = "conversation"
	logUser         = "user"
	logErr          = "err"
	logPath         = "path"
	logMethod       = "method"
	logStatus       = "status"
	logMessage      = "message"
	logType         = "type"
	logQueued       = "queued"
	logDiscarded    = "discarded"
)

// Options configures a Server. The zero value is a shared-mode emulator with
// no bot, under the webhook id "local".
type Options struct {
	// WebhookID is the first path segment of every route; default "local".
	WebhookID string
	// EncryptionKey, when set, selects manual mode: users come into existence
	// through getOrCreateUser with HS256 keys signed by this key, and
	// createUser is refused with 401. Empty selects shared mode, where the
	// emulator signs keys with a random secret of its own.
	EncryptionKey string
	// Bot answers user messages; nil means no bot.
	Bot Bot
	// StatePath is an optional JSON file holding users, conversations,
	// messages, events and the shared-mode secret. New loads it; every change
	// is written back (temp file + rename) shortly after it happens and
	// Close writes it a last time.
	StatePath string
	// PageSize is the number of items per page of the list operations;
	// default 20.
	PageSize int
	// KeepAlive is the longest silence on an event stream before a
	// `data: ping` frame is sent; pings go to streams that have been silent
	// for at least half of it. Default 30s.
	KeepAlive time.Duration
	// StreamBuffer is how many frames may wait for a slow stream consumer
	// before that stream is cut (its client reconnects and catches up with
	// listMessages); default 1024.
	StreamBuffer int
	// Now is the clock for timestamps, key expiry and FailRequests; default
	// time.Now.
	Now func() time.Time
	// Logger receives the emulator's logs; nil discards them.
	Logger *slog.Logger

	// TLS makes Start serve HTTPS with a self-signed certificate generated
	// for localhost, 127.0.0.1, ::1 and the host Start is given, offering
	// HTTP/2 and HTTP/1.1 by ALPN, as Botpress Cloud does. Certificate
	// returns the certificate for clients to trust, and Client a client
	// that trusts it.
	TLS bool
	// H2C makes Start accept, besides HTTP/1.1, HTTP/2 without TLS from
	// clients that speak it from the first byte (prior knowledge, h2c), so
	// that HTTP/2 can be measured without TLS. Not with TLS.
	H2C bool

	// WebhookURL, when set, makes the emulator POST every signal of every
	// conversation (user and bot messages alike, message_stream_* included)
	// to this URL with a trailing slash appended, as the Chat integration
	// does with its Webhook URL (spec §10): the body is the signal's JSON
	// exactly as on the event stream, Content-Type application/json. Fire
	// and forget: no retry, the answer is ignored, failures are logged. A
	// conversation's signals go one at a time, in publication order (the
	// next POST when the previous one was answered or failed); conversations
	// go in parallel. SetWebhook changes it later.
	WebhookURL string
	// WebhookSecret, when set, goes with every webhook in the x-secret-key
	// header.
	WebhookSecret string
	// WebhookTimeout bounds each webhook POST, connecting included; default
	// 10s.
	WebhookTimeout time.Duration
	// WebhookConcurrency is the most webhook POSTs in flight at once;
	// default 32.
	WebhookConcurrency int
	// WebhookQueue is the most signals waiting for the receiver (in flight
	// included); beyond it signals are discarded and counted in
	// WebhookStats.Discarded. Default 100000.
	WebhookQueue int
	// WebhookDropRate is the fraction of webhooks (0 to 1) dropped at random
	// and never sent, to test a receiver that must make up for lost ones.
	// See also DropWebhooks and DropWebhooksUntil.
	WebhookDropRate float64
}

// Server is a running emulator. It is safe for concurrent use. Close it to
// stop its goroutines and write its state file.
type Server struct {
	webhookID string
	pageSize  int
	keepAlive time.Duration
	streamBuf int
	now       func() time.Time
	log       *slog.Logger
	bot       Bot
	statePath string
	tls, h2c  bool
	manual    bool
	secret    []byte
	parser    *jwt.Parser
	routes    []route
	epoch     time.Time // origin of the monotonic stream clock

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex // guards st, botq, closed; held while signals are published so they keep state order
	st      *state
	botq    map[chat.ConversationID]*botQueue
	closed  bool
	saveReq chan struct{}

	hub      hub
	webhooks webhooks

	ctlMu    sync.Mutex
	latency  time.Duration
	failAll  failure
	failN    int
	failNext failure

	requests atomic.Int64
	conns    atomic.Int64
	active   atomic.Int64  // requests being served
	closing  atomic.Bool   // Close waits for active to reach 0
	idle     chan struct{} // signalled when active reaches 0 while closing

	srvMu     sync.Mutex
	srv       *http.Server
	ln        net.Listener
	cert      *x509.Certificate
	client    *http.Client
	closeOnce sync.Once
	closeErr  error
}

type failure struct {
	status     int
	retryAfter time.Duration
	until      time.Time
}

// New returns a Server with its background goroutines (keepalive, state
// writer) running. It loads Options.StatePath when the file exists. The caller
// serves it with Start or mounts it (it is an http.Handler), and must Close it.
func New(opts Options) (*Server, error) {
	s := &Server{
		webhookID: opts.WebhookID,
		pageSize:  opts.PageSize,
		keepAlive: opts.KeepAlive,
		streamBuf: opts.StreamBuffer,
		now:       opts.Now,
		log:       opts.Logger,
		bot:       opts.Bot,
		statePath: opts.StatePath,
		tls:       opts.TLS,
		h2c:       opts.H2C,
		manual:    opts.EncryptionKey != "",
		botq:      make(map[chat.ConversationID]*botQueue),
		saveReq:   make(chan struct{}, 1),
		idle:      make(chan struct{}, 1),
		epoch:     time.Now(),
	}
	if s.tls && s.h2c {
		return nil, errors.New("chattest: Options.H2C is for plain HTTP; with TLS, HTTP/2 is negotiated")
	}
	if s.webhookID == "" {
		s.webhookID = DefaultWebhookID
	}
	if s.pageSize <= 0 {
		s.pageSize = DefaultPageSize
	}
	if s.keepAlive <= 0 {
		s.keepAlive = DefaultKeepAlive
	}
	if s.streamBuf <= 0 {
		s.streamBuf = DefaultStreamBuffer
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.log = s.log.With("component", "chattest")
	if err := s.webhooks.init(opts); err != nil {
		return nil, fmt.Errorf("chattest: %w", err)
	}

	st, err := loadState(s.statePath)
	if err != nil {
		return nil, fmt.Errorf("chattest: %w", err)
	}
	if st == nil {
		st = newState()
	}
	if st.botUser == "" {
		st.botUser = chat.UserID(newID("user"))
		t := s.stamp()
		st.users[st.botUser] = &user{ID: st.botUser, Name: "Bot", CreatedAt: t, UpdatedAt: t}
	}
	if s.manual {
		s.secret = []byte(opts.EncryptionKey)
	} else {
		if len(st.secret) == 0 {
			st.secret = randomBytes(32)
		}
		s.secret = st.secret
	}
	s.st = st
	s.parser = jwt.NewParser(jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}), jwt.WithTimeFunc(s.now))
	s.routes = s.routeTable()
	s.hub.init()
	s.ctx, s.cancel = context.WithCancel(context.Background())

	s.wg.Add(2)
	go s.keepAliveLoop()
	go s.saveLoop()
	return s, nil
}

// Start listens on addr (such as "127.0.0.1:0") and serves in the background
// until Close: plain HTTP/1.1, or as Options.TLS and Options.H2C say.
func (s *Server) Start(addr string) error {
	s.srvMu.Lock()
	defer s.srvMu.Unlock()
	if s.srv != nil {
		return errors.New("chattest: start: already started")
	}
	if s.ctx.Err() != nil {
		return errors.New("chattest: start: server closed")
	}
	srv := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		ConnState: func(_ net.Conn, st http.ConnState) {
			if st == http.StateNew {
				s.conns.Add(1)
			}
		},
		Protocols: new(http.Protocols),
	}
	srv.Protocols.SetHTTP1(true)
	tr := &http.Transport{ForceAttemptHTTP2: true}
	switch {
	case s.tls:
		host, _, _ := net.SplitHostPort(addr)
		cert, leaf, err := selfSigned(host)
		if err != nil {
			return fmt.Errorf("chattest: start: %w", err)
		}
		srv.Protocols.SetHTTP2(true)
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		pool := x509.NewCertPool()
		pool.AddCert(leaf)
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		s.cert = leaf
	case s.h2c:
		srv.Protocols.SetUnencryptedHTTP2(true)
		tr.Protocols = new(http.Protocols)
		tr.Protocols.SetUnencryptedHTTP2(true)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("chattest: start: %w", err)
	}
	s.ln, s.srv, s.client = ln, srv, &http.Client{Transport: tr}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		var err error
		if s.tls {
			err = srv.ServeTLS(ln, "", "")
		} else {
			err = srv.Serve(ln)
		}
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("serve", logErr, err)
		}
	}()
	return nil
}

// URL returns the base URL of the API, "http://127.0.0.1:PORT/{WebhookID}"
// (https with Options.TLS), after Start; it is empty before.
func (s *Server) URL() string {
	s.srvMu.Lock()
	defer s.srvMu.Unlock()
	if s.ln == nil {
		return ""
	}
	scheme := "http://"
	if s.tls {
		scheme = "https://"
	}
	return scheme + s.ln.Addr().String() + "/" + s.webhookID
}

// Certificate returns the self-signed certificate served with Options.TLS,
// after Start, for clients to trust (add it to a tls.Config's RootCAs); nil
// otherwise.
func (s *Server) Certificate() *x509.Certificate {
	s.srvMu.Lock()
	defer s.srvMu.Unlock()
	return s.cert
}

// Client returns, after Start, an HTTP client for the emulator that speaks
// what it serves: HTTP/2 over TLS trusting Certificate with Options.TLS,
// HTTP/2 with prior knowledge with Options.H2C, HTTP/1.1 otherwise. Close
// closes its idle connections. It is nil before Start.
func (s *Server) Client() *http.Client {
	s.srvMu.Lock()
	defer s.srvMu.Unlock()
	return s.client
}

// Connections returns how many connections the server accepted since Start,
// whatever protocol they then spoke.
func (s *Server) Connections() int { return int(s.conns.Load()) }

// WebhookID returns the webhook id the routes are served under.
func (s *Server) WebhookID() string { return s.webhookID }

// Close cuts every stream, stops the listener and the bots, waits for the
// emulator's goroutines and writes the state file. It returns the error of
// that last write. Calling it again returns the same result.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		s.cancel()
		s.hub.endAll(endCut)
		s.srvMu.Lock()
		srv, client := s.srv, s.client
		s.srvMu.Unlock()
		if srv != nil {
			// Requests in flight get a moment to finish, then every
			// connection is closed. (Shutdown would wait longer: 5 s for a
			// connection that was opened but never sent a request, and over
			// HTTP/2 a second after its GOAWAY for the client to hang up.)
			s.closing.Store(true)
			if s.active.Load() > 0 {
				t := time.NewTimer(closeGrace)
				select {
				case <-s.idle:
				case <-t.C:
				}
				t.Stop()
			}
			_ = srv.Close()
		}
		s.wg.Wait()
		s.webhooks.client.CloseIdleConnections()
		if client != nil {
			client.CloseIdleConnections()
		}
		s.closeErr = s.save()
	})
	return s.closeErr
}

// BotUserID returns the id of the bot's user, the sender of every bot message.
func (s *Server) BotUserID() chat.UserID {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st.botUser
}

// SetLatency delays every API answer by d (stream frames are not delayed);
// zero removes the delay.
func (s *Server) SetLatency(d time.Duration) {
	s.ctlMu.Lock()
	s.latency = d
	s.ctlMu.Unlock()
}

// FailRequests makes every API request (listen and hello included, OPTIONS
// excluded) fail with status until Now() reaches until. A positive retryAfter
// is sent as Retry-After in whole seconds, rounded up. A zero until stops the
// failures.
func (s *Server) FailRequests(status int, retryAfter time.Duration, until time.Time) {
	s.ctlMu.Lock()
	s.failAll = failure{status: status, retryAfter: retryAfter, until: until}
	s.ctlMu.Unlock()
}

// FailNext makes the next n API requests fail with status, as FailRequests
// does. It takes precedence over FailRequests; n <= 0 cancels it.
func (s *Server) FailNext(n int, status int, retryAfter time.Duration) {
	s.ctlMu.Lock()
	s.failN = max(n, 0)
	s.failNext = failure{status: status, retryAfter: retryAfter}
	s.ctlMu.Unlock()
}

// CutStreams closes every open event stream abruptly (the connection is
// dropped without the end of the chunked body) and returns how many it cut.
func (s *Server) CutStreams() int { return s.hub.endAll(endCut) }

// OpenStreams returns the number of open event streams.
func (s *Server) OpenStreams() int { return s.hub.count() }

// Requests returns how many requests reached the API routes so far, failed
// ones included and OPTIONS excluded.
func (s *Server) Requests() int { return int(s.requests.Load()) }

// Messages returns the messages of a conversation, oldest first; nil for an
// unknown conversation.
func (s *Server) Messages(conv chat.ConversationID) []chat.Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.st.convs[conv]
	if c == nil {
		return nil
	}
	out := make([]chat.Message, 0, len(c.messages))
	for _, m := range c.messages {
		out = append(out, m.chat())
	}
	return out
}

// PushBotMessage stores a message from the bot in conv and emits its
// message_created signal with isBot true, as a bot reply would. It does not
// run the bot. A chat.RawPayload is sent as is, to stand for a payload type
// newer than the client knows. It fails for an invalid payload
// (chat.ErrInvalidPayload) or an unknown conversation (chat.ErrNotFound).
func (s *Server) PushBotMessage(ctx context.Context, conv chat.ConversationID, p chat.Payload) (chat.Message, error) {
	m, err := s.botMessage(ctx, conv, p, nil)
	if err != nil {
		return chat.Message{}, fmt.Errorf("push bot message: %w", err)
	}
	return m, nil
}

// botMessage stores a bot message and publishes it. When before is not nil it
// is called with the stored message under the state lock, to publish signals
// that must directly precede message_created.
func (s *Server) botMessage(ctx context.Context, conv chat.ConversationID, p chat.Payload, before func(*message)) (chat.Message, error) {
	if err := ctx.Err(); err != nil {
		return chat.Message{}, err
	}
	raw, err := encodeBotPayload(p)
	if err != nil {
		return chat.Message{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.st.convs[conv]
	if c == nil {
		return chat.Message{}, fmt.Errorf("conversation %s: %w", conv, chat.ErrNotFound)
	}
	m := s.st.addMessage(c, s.st.botUser, raw, nil, s.stamp())
	if before != nil {
		before(m)
	}
	s.publish(conv, chat.SignalMessageCreated, messageCreatedJSON{messageJSON: m.json(), IsBot: true})
	s.changed()
	return m.chat(), nil
}

func encodeBotPayload(p chat.Payload) (json.RawMessage, error) {
	// A RawPayload stands for a type newer than this package knows: a bot
	// may send it, so that tests can see what clients make of it.
	if raw, ok := p.(chat.RawPayload); ok {
		var probe struct {
			Type string `json:"type"`
		}
		if err := json.Unmarshal(raw.JSON, &probe); err != nil || probe.Type == "" {
			return nil, fmt.Errorf("%w: a raw payload must be a JSON object with a type", chat.ErrInvalidPayload)
		}
		return raw.JSON, nil
	}
	if err := chat.ValidatePayload(p); err != nil {
		return nil, err
	}
	raw, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", chat.ErrInvalidPayload, err)
	}
	return raw, nil
}

// changed asks the state writer to save. Callers hold s.mu.
func (s *Server) changed() {
	if s.statePath == "" {
		return
	}
	select {
	case s.saveReq <- struct{}{}:
	default:
	}
}

// saveLoop writes the state file after changes, one write at a time; changes
// made during a write are saved by the next one. A failure is logged once
// until it changes or the writes succeed again.
func (s *Server) saveLoop() {
	defer s.wg.Done()
	var failing string
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-s.saveReq:
			err := s.save()
			switch {
			case err != nil && err.Error() != failing:
				failing = err.Error()
				s.log.Error("save state", logErr, err)
			case err == nil && failing != "":
				failing = ""
				s.log.Info("state saved again")
			}
		}
	}
}

// save writes the state file, if there is one.
func (s *Server) save() error {
	if s.statePath == "" {
		return nil
	}
	s.mu.Lock()
	data, err := s.st.marshal()
	s.mu.Unlock()
	if err != nil {
		return fmt.Errorf("chattest: save state: %w", err)
	}
	if err := writeFileAtomic(s.statePath, data); err != nil {
		return fmt.Errorf("chattest: save state: %w", err)
	}
	return nil
}

// injectedFailure returns the failure to answer the current request with, if
// any, and the latency to apply.
func (s *Server) injectedFailure() (failure, bool, time.Duration) {
	s.ctlMu.Lock()
	defer s.ctlMu.Unlock()
	if s.failN > 0 {
		s.failN--
		return s.failNext, true, s.latency
	}
	if !s.failAll.until.IsZero() && s.now().Before(s.failAll.until) {
		return s.failAll, true, s.latency
	}
	return failure{}, false, s.latency
}

// wait blocks for d or until the request or the server ends.
func (s *Server) wait(r *http.Request, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
		return false
	case <-s.ctx.Done():
		return false
	}
}

// stamp returns the time to record for a change: UTC with millisecond
// precision, so that the Go API (Messages) and the wire agree.
func (s *Server) stamp() time.Time { return s.now().UTC().Truncate(time.Millisecond) }
