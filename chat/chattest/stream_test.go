package chattest_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/botbridge/botbridge/bridge/bridgetest"
	"github.com/botbridge/botbridge/chat"
	"github.com/botbridge/botbridge/chat/chattest"
)

// TestStreamFrames reads a stream byte by byte over a raw TCP connection:
// status and headers come at once, before any event, and each signal is
// exactly "event: message\ndata: {json}\n\n".
func TestStreamFrames(t *testing.T) {
	if protocol() != "h1" {
		t.Skip("reads HTTP/1.1 from a raw TCP connection")
	}
	e := newEnv(t, chattest.Options{KeepAlive: time.Hour})
	_, key := e.createUser("alice")
	e.createConv(key, "c1")

	addr := strings.TrimPrefix(strings.TrimSuffix(e.url, "/local"), "http://")
	var d net.Dialer
	conn, err := d.DialContext(t.Context(), "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(wait)); err != nil {
		t.Fatal(err)
	}
	_, err = io.WriteString(conn, "GET /local/conversations/c1/listen HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\nx-user-key: "+string(key)+"\r\n\r\n")
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("no response headers before the first event: %v", err)
	}
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "text/event-stream" || res.Header.Get("Cache-Control") != "no-cache" {
		t.Errorf("status %d headers %v", res.StatusCode, res.Header)
	}
	m := e.sendText(key, "c1", "hello")
	body := bufio.NewReader(res.Body) // undoes the chunked encoding
	want := "event: message\ndata: "
	got := make([]byte, len(want))
	if _, err := io.ReadFull(body, got); err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Fatalf("frame starts %q, want %q", got, want)
	}
	data, err := body.ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(data, `{"type":"message_created","data":{"id":"`+string(m.ID)+`"`) {
		t.Errorf("data line %q", data)
	}
	if blank, err := body.ReadString('\n'); err != nil || blank != "\n" {
		t.Errorf("frame does not end with a blank line: %q %v", blank, err)
	}
}

func TestStreamSeesOnlyLaterSignals(t *testing.T) {
	e := newEnv(t, chattest.Options{})
	_, key := e.createUser("alice")
	conv := e.createConv(key, "c1")
	e.sendText(key, conv, "before")
	st := e.listen(key, conv)
	e.sendText(key, conv, "after")
	var m messageOut
	st.nextOf(t, chat.SignalMessageCreated).decode(t, &m)
	if !strings.Contains(string(m.Payload), "after") {
		t.Errorf("first signal is %s, want the message sent after listening", m.Payload)
	}
}

func TestListenRefusals(t *testing.T) {
	e := newEnv(t, chattest.Options{})
	_, alice := e.createUser("alice")
	_, carol := e.createUser("carol")
	e.createConv(alice, "c1")
	t.Run("non-participant gets 403", func(t *testing.T) {
		_, r := e.openStream(carol, "c1")
		r.apiErr(t, http.StatusForbidden, "Forbidden", "You are not a participant in this conversation")
	})
	t.Run("unknown conversation gets 403", func(t *testing.T) {
		_, r := e.openStream(alice, "nope")
		r.apiErr(t, http.StatusForbidden, "Forbidden", "")
	})
	t.Run("bad key gets 401", func(t *testing.T) {
		_, r := e.openStream("bad", "c1")
		r.apiErr(t, http.StatusUnauthorized, "Unauthorized", "Invalid user key")
	})
	if n := e.s.OpenStreams(); n != 0 {
		t.Errorf("%d streams open after refusals", n)
	}
}

func TestKeepAlive(t *testing.T) {
	e := newEnv(t, chattest.Options{KeepAlive: 50 * time.Millisecond})
	_, key := e.createUser("alice")
	e.createConv(key, "c1")
	st := e.listen(key, "c1")
	for range 3 {
		if f := st.nextFrame(t); f.data != "ping" {
			t.Fatalf("frame %q on an idle stream, want ping", f.raw)
		}
	}
}

// streamBot exercises every bot-side signal.
func streamBot() chattest.Bot {
	return chattest.BotFunc(func(ctx context.Context, r chattest.Replier, m chat.Message) {
		switch m.Payload.(chat.Text).Text {
		case "stream":
			_, _ = r.Stream(ctx, []string{"Hel", "lo"}, nil)
		case "abort":
			_ = r.AbortStream(ctx, []string{"par"})
		case "event":
			_ = r.SendEvent(ctx, map[string]any{"kind": "thinking"})
		}
	})
}

func TestStreamSignals(t *testing.T) {
	e := newEnv(t, chattest.Options{Bot: streamBot()})
	_, alice := e.createUser("alice")
	conv := e.createConv(alice, "c1")
	st := e.listen(alice, conv)
	bot := e.s.BotUserID()

	t.Run("a streamed reply is deltas, then complete, then message_created", func(t *testing.T) {
		e.sendText(alice, conv, "stream")
		st.nextOf(t, chat.SignalMessageCreated)
		var ids []string
		for i, want := range []string{"Hel", "lo"} {
			var d struct {
				StreamID       string
				ConversationID chat.ConversationID
				UserID         chat.UserID
				CreatedAt      string
				Sequence       int
				Delta          string
			}
			st.nextOf(t, chat.SignalMessageStreamDelta).decode(t, &d)
			if d.Delta != want || d.Sequence != i || d.ConversationID != conv || d.UserID != bot {
				t.Errorf("delta %d: %+v", i, d)
			}
			checkTimestamp(t, "createdAt", d.CreatedAt)
			ids = append(ids, d.StreamID)
		}
		var c struct {
			StreamID string
			Message  messageOut
		}
		st.nextOf(t, chat.SignalMessageStreamComplete).decode(t, &c)
		if c.StreamID != ids[0] || ids[1] != ids[0] || !sameJSON(c.Message.Payload, `{"type":"text","text":"Hello"}`) || c.Message.UserID != bot {
			t.Errorf("complete %+v after deltas of %v", c, ids)
		}
		var m messageOut
		st.nextOf(t, chat.SignalMessageCreated).decode(t, &m)
		if m.ID != c.Message.ID || !*m.IsBot {
			t.Errorf("message_created %+v after complete %+v", m, c.Message)
		}
	})
	t.Run("an aborted stream ends with message_stream_abort and stores nothing", func(t *testing.T) {
		before := len(e.s.Messages(conv))
		e.sendText(alice, conv, "abort")
		st.nextOf(t, chat.SignalMessageCreated)
		st.nextOf(t, chat.SignalMessageStreamDelta)
		var a struct {
			StreamID       string
			ConversationID chat.ConversationID
		}
		st.nextOf(t, chat.SignalMessageStreamAbort).decode(t, &a)
		if a.StreamID == "" || a.ConversationID != conv {
			t.Errorf("abort %+v", a)
		}
		e.sendText(alice, conv, "marker")
		if extra := st.untilMarker(t, "marker"); len(extra) != 0 {
			t.Errorf("signals after abort: %v", extra)
		}
		if n := len(e.s.Messages(conv)); n != before+2 {
			t.Errorf("%d messages, want %d (the two user messages)", n, before+2)
		}
	})
	t.Run("a bot event has a null id and isBot", func(t *testing.T) {
		e.sendText(alice, conv, "event")
		st.nextOf(t, chat.SignalMessageCreated)
		s := st.nextOf(t, chat.SignalEventCreated)
		if !strings.Contains(string(s.Data), `"id":null`) || !strings.Contains(string(s.Data), `"isBot":true`) || !strings.Contains(string(s.Data), string(bot)) {
			t.Errorf("bot event %s", s.Data)
		}
	})
}

func TestCutStreams(t *testing.T) {
	e := newEnv(t, chattest.Options{})
	_, key := e.createUser("alice")
	e.createConv(key, "c1")
	e.createConv(key, "c2")
	a := e.listen(key, "c1")
	b := e.listen(key, "c2")
	if n := e.s.OpenStreams(); n != 2 {
		t.Fatalf("OpenStreams %d, want 2", n)
	}
	if n := e.s.CutStreams(); n != 2 {
		t.Errorf("CutStreams %d, want 2", n)
	}
	for _, st := range []*sse{a, b} {
		if err := st.ended(t); !abrupt(err) {
			t.Errorf("cut stream ended with %v, want an abrupt end (unexpected EOF, or a reset HTTP/2 stream)", err)
		}
	}
	bridgetest.WaitFor(t, "no open streams", func() bool { return e.s.OpenStreams() == 0 })
	t.Run("a new stream works after a cut", func(t *testing.T) {
		st := e.listen(key, "c1")
		e.sendText(key, "c1", "again")
		st.nextOf(t, chat.SignalMessageCreated)
	})
}

// TestSlowConsumerIsCut fills the queue of a stream whose client does not
// read: the stream is cut and nothing else waits for it.
func TestSlowConsumerIsCut(t *testing.T) {
	e := newEnv(t, chattest.Options{StreamBuffer: 8})
	_, key := e.createUser("alice")
	conv := e.createConv(key, "c1")
	req, err := http.NewRequestWithContext(t.Context(), "GET", e.url+"/conversations/c1/listen", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("x-user-key", string(key))
	slow, err := e.hc.Do(req) // its body is not read until the end
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Body.Close()
	fast := e.listen(key, conv)
	big := strings.Repeat("x", 100_000)
	cut := false
	for i := 0; i < 2000 && !cut; i++ {
		if _, err := e.s.PushBotMessage(t.Context(), conv, chat.Text{Text: big}); err != nil {
			t.Fatal(err)
		}
		// The fast reader keeps up; the slow one stops reading.
		fast.nextOf(t, chat.SignalMessageCreated)
		cut = e.s.OpenStreams() == 1
	}
	if !cut {
		t.Fatal("the stream of a consumer that does not read was never cut")
	}
	if _, err := io.Copy(io.Discard, slow.Body); !abrupt(err) {
		t.Errorf("slow stream ended with %v, want an abrupt cut", err)
	}
	e.sendText(key, conv, "still served")
	fast.nextOf(t, chat.SignalMessageCreated)
}
