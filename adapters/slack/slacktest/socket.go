package slacktest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// writeTimeout bounds each websocket write, so a client that stopped reading
// cannot block the fake.
const writeTimeout = 10 * time.Second

// Envelope is a Socket Mode envelope for Send.
type Envelope struct {
	// Type is EventsAPI, Interactive or SlashCommands.
	Type string
	// EnvelopeID is generated (a UUID, as Slack's) when empty.
	EnvelopeID string
	// Payload is marshalled to JSON; a json.RawMessage or []byte is sent as
	// is.
	Payload any
	// AcceptsResponsePayload tells the client it may answer with a payload
	// in its ack.
	AcceptsResponsePayload bool
	// RetryAttempt and RetryReason describe a redelivery (Slack uses reasons
	// such as "timeout").
	RetryAttempt int
	RetryReason  string
}

// wireEnvelope is an envelope as Slack writes it on the socket.
type wireEnvelope struct {
	EnvelopeID             string          `json:"envelope_id"`
	Payload                json.RawMessage `json:"payload"`
	Type                   string          `json:"type"`
	AcceptsResponsePayload bool            `json:"accepts_response_payload"`
	RetryAttempt           int             `json:"retry_attempt"`
	RetryReason            string          `json:"retry_reason"`
}

type debugInfo struct {
	Host                      string `json:"host"`
	BuildNumber               int    `json:"build_number,omitempty"`
	ApproximateConnectionTime int    `json:"approximate_connection_time,omitempty"`
}

type helloMessage struct {
	Type           string    `json:"type"`
	NumConnections int       `json:"num_connections"`
	DebugInfo      debugInfo `json:"debug_info"`
	ConnectionInfo struct {
		AppID string `json:"app_id"`
	} `json:"connection_info"`
}

type disconnectMessage struct {
	Type      string    `json:"type"`
	Reason    string    `json:"reason"`
	DebugInfo debugInfo `json:"debug_info"`
}

// socketConn is one Socket Mode connection.
type socketConn struct {
	id int
	ws *websocket.Conn
	// wmu serialises data frames; gorilla allows one writer at a time, and
	// control frames (pings) may be written alongside.
	wmu  sync.Mutex
	done chan struct{}
}

func (c *socketConn) write(v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return c.writeRaw(data)
}

func (c *socketConn) writeRaw(data []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.ws.SetWriteDeadline(time.Now().Add(writeTimeout)); err != nil {
		return err
	}
	return c.ws.WriteMessage(websocket.TextMessage, data)
}

// appHost is the debug_info host of a connection, like Slack's
// "applink-7fc4fdbb64-4x5xq".
func appHost(id int) string {
	return "applink-slacktest-" + strconv.Itoa(id)
}

// serveLink accepts a Socket Mode websocket for a ticket handed out by
// apps.connections.open, once, and says hello.
func (s *Server) serveLink(w http.ResponseWriter, r *http.Request) {
	ticket := r.URL.Query().Get("ticket")
	s.mu.Lock()
	ok := s.tickets[ticket] && !s.refuse && !s.closed
	delete(s.tickets, ticket)
	s.mu.Unlock()
	if !ok {
		http.Error(w, "invalid or used ticket", http.StatusUnauthorized)
		return
	}
	ws, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		s.log.Debug("socket upgrade", logErr, err)
		return
	}

	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		_ = ws.Close()
		return
	}
	c := &socketConn{id: len(s.st.Connections) + 1, ws: ws, done: make(chan struct{})}
	hello := helloMessage{
		Type:           "hello",
		NumConnections: s.st.OpenConnections() + 1,
		DebugInfo:      debugInfo{Host: appHost(c.id), BuildNumber: 1, ApproximateConnectionTime: 18060},
	}
	hello.ConnectionInfo.AppID = s.opts.AppID
	// Register only after hello is out, so that no envelope can precede it.
	s.st.Connections = append(s.st.Connections, Connection{ID: c.id, Opened: s.now()})
	s.wg.Add(2)
	s.mu.Unlock()

	if err := c.write(hello); err != nil {
		s.log.Debug("socket hello", logConn, c.id, logErr, err)
	}
	s.mu.Lock()
	s.conns[c.id] = c
	s.st.Connections[c.id-1].Open = true
	closed := s.closed
	s.notify()
	s.mu.Unlock()
	if closed {
		// Close ran while hello was on its way and did not see this one.
		_ = ws.Close()
	}
	s.log.Debug("socket open", logConn, c.id)

	go s.readLoop(c)
	go s.pingLoop(c)
}

// readLoop reads acks until the connection ends.
func (s *Server) readLoop(c *socketConn) {
	defer s.wg.Done()
	defer s.endConn(c)
	c.ws.SetPongHandler(func(string) error {
		s.mu.Lock()
		s.st.Connections[c.id-1].Pongs++
		s.notify()
		s.mu.Unlock()
		return nil
	})
	for {
		_, data, err := c.ws.ReadMessage()
		if err != nil {
			s.log.Debug("socket read", logConn, c.id, logErr, err)
			return
		}
		var ack struct {
			EnvelopeID string          `json:"envelope_id"`
			Payload    json.RawMessage `json:"payload"`
		}
		if err := json.Unmarshal(data, &ack); err != nil || ack.EnvelopeID == "" {
			s.log.Warn("socket frame is not an ack", logConn, c.id, "frame", string(data))
			continue
		}
		if string(ack.Payload) == "null" {
			ack.Payload = nil
		}
		s.mu.Lock()
		s.st.Acks = append(s.st.Acks, Ack{EnvelopeID: ack.EnvelopeID, Payload: ack.Payload, Conn: c.id, Time: s.now()})
		s.notify()
		s.mu.Unlock()
	}
}

// pingLoop sends a ping right away and then every PingInterval, as Slack
// does; slack-go reconnects when pings stop.
func (s *Server) pingLoop(c *socketConn) {
	defer s.wg.Done()
	t := time.NewTicker(s.opts.PingInterval)
	defer t.Stop()
	for n := 1; ; n++ {
		if err := c.ws.WriteControl(websocket.PingMessage, []byte(strconv.Itoa(n)), time.Now().Add(writeTimeout)); err != nil {
			return
		}
		s.mu.Lock()
		s.st.Connections[c.id-1].Pings++
		s.notify()
		s.mu.Unlock()
		select {
		case <-t.C:
		case <-c.done:
			return
		case <-s.ctx.Done():
			return
		}
	}
}

// endConn closes a connection and records its end, once.
func (s *Server) endConn(c *socketConn) {
	s.mu.Lock()
	if _, ok := s.conns[c.id]; ok {
		delete(s.conns, c.id)
		rec := &s.st.Connections[c.id-1]
		rec.Open, rec.Closed = false, s.now()
		close(c.done)
		s.notify()
	}
	s.mu.Unlock()
	_ = c.ws.Close()
}

// openConns returns the open connections, oldest first.
func (s *Server) openConns() []*socketConn {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*socketConn
	for _, rec := range s.st.Connections {
		if c, ok := s.conns[rec.ID]; ok {
			out = append(out, c)
		}
	}
	return out
}

// currentConn waits for an open connection and returns the newest, or with
// Options.Spread the next in turn.
func (s *Server) currentConn(ctx context.Context) (*socketConn, error) {
	for {
		s.mu.Lock()
		var cur *socketConn
		for _, c := range s.conns {
			if cur == nil || c.id > cur.id {
				cur = c
			}
		}
		if s.opts.Spread && len(s.conns) > 1 {
			ids := make([]int, 0, len(s.conns))
			for id := range s.conns {
				ids = append(ids, id)
			}
			slices.Sort(ids)
			s.turn++
			cur = s.conns[ids[s.turn%len(ids)]]
		}
		ch, closed := s.changed, s.closed
		s.mu.Unlock()
		switch {
		case cur != nil:
			return cur, nil
		case closed:
			return nil, errors.New("server closed")
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		}
	}
}

// Send writes an envelope to the newest open Socket Mode connection, waiting
// for one while there is none (as Slack holds events until the app connects),
// and returns the envelope id. It fails when ctx ends first. With
// Options.RedeliverAfter, an events_api envelope not acked in time is sent
// again (see redeliver).
func (s *Server) Send(ctx context.Context, env Envelope) (string, error) {
	if env.Type == "" {
		return "", errors.New("slacktest: send: envelope type is empty")
	}
	payload, err := marshalPayload(env.Payload)
	if err != nil {
		return "", fmt.Errorf("slacktest: send: %w", err)
	}
	if env.EnvelopeID == "" {
		env.EnvelopeID = newUUID()
	}
	data, err := json.Marshal(wireEnvelope{
		EnvelopeID:             env.EnvelopeID,
		Payload:                payload,
		Type:                   env.Type,
		AcceptsResponsePayload: env.AcceptsResponsePayload,
		RetryAttempt:           env.RetryAttempt,
		RetryReason:            env.RetryReason,
	})
	if err != nil {
		return "", fmt.Errorf("slacktest: send: %w", err)
	}
	for {
		c, err := s.currentConn(ctx)
		if err != nil {
			return "", fmt.Errorf("slacktest: send: %w", err)
		}
		if err := c.writeRaw(data); err != nil {
			// The connection died under us; the next one gets the envelope.
			s.endConn(c)
			continue
		}
		s.mu.Lock()
		s.st.Envelopes = append(s.st.Envelopes, SentEnvelope{
			EnvelopeID:             env.EnvelopeID,
			Type:                   env.Type,
			Payload:                payload,
			AcceptsResponsePayload: env.AcceptsResponsePayload,
			RetryAttempt:           env.RetryAttempt,
			RetryReason:            env.RetryReason,
			Conn:                   c.id,
			Time:                   s.now(),
		})
		if env.Type == EventsAPI && s.opts.RedeliverAfter > 0 && env.RetryAttempt < MaxRetryAttempts && !s.closed {
			env.Payload = payload
			s.wg.Add(1)
			go s.redeliver(env)
		}
		s.notify()
		s.mu.Unlock()
		return env.EnvelopeID, nil
	}
}

// redeliver sends env again in a new envelope when it is not acked within
// Options.RedeliverAfter, as Slack retries events_api envelopes.
func (s *Server) redeliver(env Envelope) {
	defer s.wg.Done()
	t := time.NewTimer(s.opts.RedeliverAfter)
	defer t.Stop()
	select {
	case <-s.ctx.Done():
		return
	case <-t.C:
	}
	s.mu.Lock()
	acked := s.st.Acked(env.EnvelopeID)
	s.mu.Unlock()
	if acked {
		return
	}
	env.EnvelopeID = ""
	env.RetryAttempt++
	env.RetryReason = "timeout"
	if _, err := s.Send(s.ctx, env); err != nil {
		s.log.Debug("redeliver envelope", logErr, err)
	}
}

// SendEvent sends an envelope of envelopeType (EventsAPI, Interactive or
// SlashCommands) carrying payload, as Send does. accepts_response_payload is
// set for slash commands only.
func (s *Server) SendEvent(ctx context.Context, envelopeType string, payload any) (string, error) {
	return s.Send(ctx, Envelope{Type: envelopeType, Payload: payload, AcceptsResponsePayload: envelopeType == SlashCommands})
}

// WaitAck waits for the ack of an envelope and returns it.
func (s *Server) WaitAck(ctx context.Context, envelopeID string) (Ack, error) {
	var ack Ack
	err := s.WaitFor(ctx, func(st *State) bool {
		for _, a := range st.Acks {
			if a.EnvelopeID == envelopeID {
				ack = a
				return true
			}
		}
		return false
	})
	if err != nil {
		return Ack{}, fmt.Errorf("slacktest: wait ack %s: %w", envelopeID, err)
	}
	return ack, nil
}

// Disconnect writes {"type":"disconnect","reason":reason} to every open
// connection, and returns how many it reached. Slack-go's client reconnects
// on it. For ReasonLinkDisabled the fake then closes the connection, as Slack does;
// for the other reasons it leaves that to the client.
func (s *Server) Disconnect(reason string) int {
	n := 0
	for _, c := range s.openConns() {
		msg := disconnectMessage{Type: "disconnect", Reason: reason, DebugInfo: debugInfo{Host: appHost(c.id)}}
		if err := c.write(msg); err != nil {
			s.endConn(c)
			continue
		}
		n++
		if reason == ReasonLinkDisabled {
			_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(writeTimeout))
			s.endConn(c)
		}
	}
	return n
}

// DropConnections closes every open connection without a close frame, as a
// network failure would, and returns how many it closed.
func (s *Server) DropConnections() int {
	conns := s.openConns()
	for _, c := range conns {
		s.endConn(c)
	}
	return len(conns)
}

func marshalPayload(p any) (json.RawMessage, error) {
	switch v := p.(type) {
	case json.RawMessage:
		return v, nil
	case []byte:
		return v, nil
	}
	return json.Marshal(p)
}
