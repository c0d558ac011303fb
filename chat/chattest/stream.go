package chattest

import (
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/botbridge/botbridge/chat"
)

// An open event stream costs one small goroutine, its connection and a few
// fields; no buffer while idle. Over HTTP/1.1, listenConversation hijacks the
// connection, so net/http's own goroutine and buffers for it go away, and
// writes the chunked body itself. The stream's goroutine sits in a read of the
// connection, which notices at once when the client goes away; a publisher
// queues frames (encoded once per signal, shared by every stream of the
// conversation) and wakes the goroutine by expiring that read. Over HTTP/2
// (where a stream is not a connection and cannot be hijacked) the handler's
// goroutine serves the stream and waits on a channel and the request's
// context instead. One ticker per server sends the keepalives.

// streamWriteTimeout bounds one batch of writes, so a consumer that stopped
// reading is dropped even when no new frame overflows its queue.
const streamWriteTimeout = time.Minute

// Stream end kinds.
const (
	endNone  = iota
	endClose // write what is queued, end the chunked body, close
	endCut   // close the connection without ending the body
)

// pingFrame is the keepalive, the literal text ping rather than JSON.
const pingFrame = "event: message\ndata: ping\n\n"

type stream struct {
	user chat.UserID
	conv chat.ConversationID
	conn net.Conn                 // HTTP/1.1: the hijacked connection; nil otherwise
	woke chan struct{}            // HTTP/2: wakes the handler; nil otherwise
	rc   *http.ResponseController // HTTP/2: to reset the stream from outside the handler

	mu     sync.Mutex
	queue  [][]byte
	ending int
	served bool // HTTP/2: the handler returned, rc is no longer usable

	lastWrite atomic.Int64 // nanoseconds since Server.epoch
}

// push queues a frame without blocking. It reports false when the queue is
// full, in which case the stream has been cut.
func (st *stream) push(frame []byte, limit int) bool {
	st.mu.Lock()
	if st.ending != endNone {
		st.mu.Unlock()
		return true
	}
	if len(st.queue) >= limit {
		st.endLocked(endCut)
		st.mu.Unlock()
		return false
	}
	st.queue = append(st.queue, frame)
	st.mu.Unlock()
	st.wake()
	return true
}

// wake makes the stream's goroutine look at the queue: it interrupts its read
// of the hijacked connection, or signals the handler.
func (st *stream) wake() {
	if st.conn == nil {
		select {
		case st.woke <- struct{}{}:
		default:
		}
		return
	}
	_ = st.conn.SetReadDeadline(time.Unix(1, 0))
}

func (st *stream) end(kind int) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.endLocked(kind)
}

func (st *stream) endLocked(kind int) bool {
	if st.ending != endNone {
		return false
	}
	st.ending = kind
	switch {
	case kind == endCut && st.conn != nil:
		_ = st.conn.Close()
	case kind == endCut && !st.served:
		// The handler may be blocked in a write to a client that does
		// not read (HTTP/2 flow control); a deadline in the past resets
		// the stream at once and fails that write.
		_ = st.rc.SetWriteDeadline(time.Unix(1, 0))
		st.wake()
	default:
		st.wake()
	}
	return true
}

// take returns the queued frames and how the stream must end, if it must.
func (st *stream) take() ([][]byte, int) {
	st.mu.Lock()
	defer st.mu.Unlock()
	q := st.queue
	st.queue = nil
	return q, st.ending
}

// write sends frames as one chunk of the chunked body of a hijacked
// connection, without copying them.
func (st *stream) write(frames [][]byte) error {
	n := 0
	for _, f := range frames {
		n += len(f)
	}
	bufs := make(net.Buffers, 0, len(frames)+2)
	bufs = append(bufs, strconv.AppendInt(make([]byte, 0, 18), int64(n), 16))
	bufs[0] = append(bufs[0], "\r\n"...)
	bufs = append(bufs, frames...)
	bufs = append(bufs, []byte("\r\n"))
	if err := st.conn.SetWriteDeadline(time.Now().Add(streamWriteTimeout)); err != nil {
		return err
	}
	_, err := bufs.WriteTo(st.conn)
	return err
}

func (st *stream) writeRaw(b []byte) error {
	if err := st.conn.SetWriteDeadline(time.Now().Add(streamWriteTimeout)); err != nil {
		return err
	}
	_, err := st.conn.Write(b)
	return err
}

// hub routes frames to streams by conversation and ends them by user.
type hub struct {
	mu     sync.Mutex
	byConv map[chat.ConversationID]map[*stream]struct{}
	byUser map[chat.UserID]map[*stream]struct{}
	n      int
}

func (h *hub) init() {
	h.byConv = make(map[chat.ConversationID]map[*stream]struct{})
	h.byUser = make(map[chat.UserID]map[*stream]struct{})
}

func (h *hub) add(st *stream) {
	h.mu.Lock()
	defer h.mu.Unlock()
	addTo(h.byConv, st.conv, st)
	addTo(h.byUser, st.user, st)
	h.n++
}

func (h *hub) remove(st *stream) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if removeFrom(h.byConv, st.conv, st) {
		removeFrom(h.byUser, st.user, st)
		h.n--
	}
}

func addTo[K comparable](m map[K]map[*stream]struct{}, k K, st *stream) {
	set := m[k]
	if set == nil {
		set = make(map[*stream]struct{})
		m[k] = set
	}
	set[st] = struct{}{}
}

func removeFrom[K comparable](m map[K]map[*stream]struct{}, k K, st *stream) bool {
	set := m[k]
	if _, ok := set[st]; !ok {
		return false
	}
	delete(set, st)
	if len(set) == 0 {
		delete(m, k)
	}
	return true
}

func (h *hub) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.n
}

// publish queues frame on every stream of conv and returns the streams that
// were cut for being too slow.
func (h *hub) publish(conv chat.ConversationID, frame []byte, limit int) []*stream {
	h.mu.Lock()
	defer h.mu.Unlock()
	var slow []*stream
	for st := range h.byConv[conv] {
		if !st.push(frame, limit) {
			slow = append(slow, st)
		}
	}
	return slow
}

// endUser ends every stream of a user, in every conversation.
func (h *hub) endUser(u chat.UserID, kind int) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for st := range h.byUser[u] {
		if st.end(kind) {
			n++
		}
	}
	return n
}

func (h *hub) endAll(kind int) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, set := range h.byConv {
		for st := range set {
			if st.end(kind) {
				n++
			}
		}
	}
	return n
}

// ping queues a keepalive on the streams silent since before idleSince and
// returns the streams cut for being too slow.
func (h *hub) ping(frame []byte, idleSince int64, limit int) []*stream {
	h.mu.Lock()
	defer h.mu.Unlock()
	var slow []*stream
	for _, set := range h.byConv {
		for st := range set {
			if st.lastWrite.Load() <= idleSince && !st.push(frame, limit) {
				slow = append(slow, st)
			}
		}
	}
	return slow
}

func (s *Server) clock() int64 { return int64(time.Since(s.epoch)) }

// keepAliveLoop pings every stream silent for half of KeepAlive, every half of
// KeepAlive, so that no stream is silent for longer than KeepAlive.
func (s *Server) keepAliveLoop() {
	defer s.wg.Done()
	half := max(s.keepAlive/2, time.Millisecond)
	t := time.NewTicker(half)
	defer t.Stop()
	ping := []byte(pingFrame) // shared by every stream, never modified
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
			s.logSlow(s.hub.ping(ping, s.clock()-int64(half), s.streamBuf))
		}
	}
}

func (s *Server) logSlow(slow []*stream) {
	for _, st := range slow {
		s.log.Warn("event stream cut: consumer too slow", logConversation, st.conv, logUser, st.user, logQueued, s.streamBuf)
	}
}

type messageCreatedJSON struct {
	messageJSON
	IsBot bool `json:"isBot"`
}

type eventCreatedJSON struct {
	ID             *chat.EventID       `json:"id"` // null for events pushed by the bot
	CreatedAt      string              `json:"createdAt"`
	Payload        json.RawMessage     `json:"payload"`
	ConversationID chat.ConversationID `json:"conversationId"`
	UserID         chat.UserID         `json:"userId"`
	IsBot          bool                `json:"isBot"`
}

type messageDeletedJSON struct {
	ID             chat.MessageID      `json:"id"`
	ConversationID chat.ConversationID `json:"conversationId"`
	UserID         chat.UserID         `json:"userId"`
}

type participantJSON struct {
	ConversationID chat.ConversationID `json:"conversationId"`
	ParticipantID  chat.UserID         `json:"participantId"`
}

type streamDeltaJSON struct {
	StreamID       string              `json:"streamId"`
	ConversationID chat.ConversationID `json:"conversationId"`
	UserID         chat.UserID         `json:"userId"`
	CreatedAt      string              `json:"createdAt"`
	Sequence       int                 `json:"sequence"`
	Delta          string              `json:"delta"`
}

type streamCompleteJSON struct {
	StreamID string      `json:"streamId"`
	Message  messageJSON `json:"message"`
}

type streamAbortJSON struct {
	StreamID       string              `json:"streamId"`
	ConversationID chat.ConversationID `json:"conversationId"`
}

// publish sends a signal to every stream of conv and to the webhook. Callers
// hold s.mu, so signals go out in the order of the changes they announce.
func (s *Server) publish(conv chat.ConversationID, typ string, data any) {
	b, err := json.Marshal(struct {
		Type string `json:"type"`
		Data any    `json:"data"`
	}{typ, data})
	if err != nil {
		// Only types of this package are published; they always encode.
		s.log.Error("encode signal", logType, typ, logErr, err)
		return
	}
	if !s.closed {
		s.enqueueWebhook(conv, b)
	}
	frame := make([]byte, 0, len(b)+len("event: message\ndata: \n\n"))
	frame = append(frame, "event: message\ndata: "...)
	frame = append(frame, b...)
	frame = append(frame, "\n\n"...)
	s.logSlow(s.hub.publish(conv, frame, s.streamBuf))
}

// streamHeader is the head of every stream's response. The body ends with the
// stream, so the connection is not reused.
const streamHeader = "HTTP/1.1 200 OK\r\n" +
	"Content-Type: text/event-stream\r\n" +
	"Cache-Control: no-cache\r\n" +
	"X-Accel-Buffering: no\r\n" +
	"Access-Control-Allow-Origin: *\r\n" +
	"Connection: close\r\n" +
	"Transfer-Encoding: chunked\r\n"

// runStream sends the response head at once (listenConversation resolves on
// it), then the stream's frames until it ends.
func (s *Server) runStream(st *stream) {
	defer s.wg.Done()
	defer s.hub.remove(st)
	defer st.conn.Close()
	head := streamHeader + "Date: " + time.Now().UTC().Format(http.TimeFormat) + "\r\n\r\n"
	if err := st.writeRaw([]byte(head)); err != nil {
		return
	}
	st.lastWrite.Store(s.clock())
	var rb [16]byte
	for {
		_ = st.conn.SetReadDeadline(time.Time{})
		frames, ending := st.take()
		switch {
		case ending == endCut:
			return
		case len(frames) > 0:
			if err := st.write(frames); err != nil {
				return
			}
			st.lastWrite.Store(s.clock())
			continue
		case ending == endClose:
			_ = st.writeRaw([]byte("0\r\n\r\n"))
			return
		}
		// Whatever a client sends after its request is ignored; an error
		// other than the expired deadline of wake means it went away.
		if _, err := st.conn.Read(rb[:]); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			return
		}
	}
}

// serveStream serves a stream from the handler's goroutine, where the
// connection cannot be hijacked (HTTP/2). A cut resets the HTTP/2 stream
// (http.ErrAbortHandler) rather than ending it cleanly.
func (s *Server) serveStream(w http.ResponseWriter, r *http.Request, st *stream) {
	defer s.wg.Done()
	defer s.hub.remove(st)
	defer func() {
		st.mu.Lock()
		st.served = true
		st.mu.Unlock()
	}()
	rc := st.rc
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if err := rc.Flush(); err != nil {
		return
	}
	st.lastWrite.Store(s.clock())
	for {
		frames, ending := st.take()
		switch {
		case ending == endCut:
			panic(http.ErrAbortHandler)
		case len(frames) > 0:
			// An HTTP/2 write deadline runs even while nothing is
			// written, so it is set for each batch and cleared after.
			_ = rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
			for _, f := range frames {
				if _, err := w.Write(f); err != nil {
					return
				}
			}
			if err := rc.Flush(); err != nil {
				return
			}
			_ = rc.SetWriteDeadline(time.Time{})
			st.lastWrite.Store(s.clock())
			continue
		case ending == endClose:
			return
		}
		select {
		case <-st.woke:
		case <-r.Context().Done():
			return
		}
	}
}
