package chat_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/botbridge/botbridge/chat"
)

const createdFrame = `{"type":"message_created","data":{"id":"%s","createdAt":"2026-11-22T18:42:20.417Z","payload":{"type":"text","text":"hi"},"userId":"bot","conversationId":"c1","isBot":true}}`

// sseFake serves scripted event streams; script gets the 1-based number of
// the connection and writes raw frames after the headers were flushed.
// Returning from script ends that stream.
func sseFake(t *testing.T, script func(n int, w io.Writer, flush func(), r *http.Request)) *fake {
	var conns atomic.Int64
	return newFake(t, func(w http.ResponseWriter, r *http.Request) {
		n := int(conns.Add(1))
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		rc := http.NewResponseController(w)
		rc.Flush()
		script(n, w, func() { rc.Flush() }, r)
	})
}

// events is what a ListenHandler saw, in order.
type events struct {
	ch chan string
}

func newEvents() *events { return &events{ch: make(chan string, 100)} }

func (e *events) handler() chat.ListenHandler {
	return chat.ListenHandler{
		OnConnect: func(context.Context) { e.ch <- "connect" },
		OnSignal: func(_ context.Context, s chat.Signal) {
			switch s := s.(type) {
			case chat.MessageCreated:
				e.ch <- "message " + string(s.ID)
			default:
				e.ch <- s.SignalType()
			}
		},
		OnDisconnect: func(err error, _ time.Duration) { e.ch <- "disconnect" },
	}
}

// expect reads the next events and compares them with want.
func (e *events) expect(t *testing.T, want ...string) {
	t.Helper()
	for _, w := range want {
		if got := recv(t, e.ch, w); got != w {
			t.Fatalf("event = %q, want %q", got, w)
		}
	}
}

func TestListenFrames(t *testing.T) {
	f := sseFake(t, func(n int, w io.Writer, flush func(), r *http.Request) {
		if n == 1 {
			for _, frame := range []string{
				"event: message\ndata: ping\n\n",
				"event: message\ndata: not json\n\n",
				"event: message\ndata: {\"type\":\"future_signal\",\"data\":{\"x\":1}}\n\n",
				"event: message\ndata: {\"type\":\"message_created\",\"data\":{\"id\":\"m0\"}}\n\n",
				"event: typing\ndata: " + fmt.Sprintf(createdFrame, "other-event-name") + "\n\n",
				": a comment\n\n",
				"event: message\ndata: " + fmt.Sprintf(createdFrame, "m1") + "\n\n",
				"data: " + fmt.Sprintf(createdFrame, "m2") + "\n\n",
				"event: message\ndata: {\"type\":\"participant_added\",\n" +
					"data: \"data\":{\"conversationId\":\"c1\",\"participantId\":\"u2\"}}\n\n",
			} {
				io.WriteString(w, frame)
			}
			flush()
			return // the server ends the stream
		}
		io.WriteString(w, "event: message\ndata: "+fmt.Sprintf(createdFrame, "m3")+"\n\n")
		flush()
		<-r.Context().Done()
	})
	var (
		w    waits
		logs syncBuffer
	)
	c := newClient(t, f.URL, &w, &logs)
	ev := newEvents()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- c.Listen(ctx, testKey, "c1", ev.handler()) }()

	ev.expect(t, "connect", "message m1", "message m2", "participant_added", "disconnect", "connect", "message m3")
	cancel()
	if err := recv(t, done, "Listen to return"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Listen = %v, want context.Canceled", err)
	}
	if got := w.all(); len(got) != 1 {
		t.Errorf("reconnect waits = %v, want one", got)
	}
	out := logs.String()
	if n := strings.Count(out, "skipped stream frame"); n != 1 {
		t.Errorf("skipped-frame log lines = %d, want 1 (rate limited):\n%s", n, out)
	}
	if strings.Contains(out, string(testKey)) {
		t.Errorf("logs reveal the user key:\n%s", out)
	}
}

func TestListenRefused(t *testing.T) {
	tests := []struct {
		name   string
		status int
		ctype  string
		body   string
		want   error
	}{
		{"401 stops with ErrUnauthorized", 401, "application/json", `{"id":"err_1","code":401,"type":"Unauthorized","message":"Invalid user key"}`, chat.ErrUnauthorized},
		{"403 stops with ErrForbidden", 403, "application/json", `{"id":"err_2","code":403,"type":"Forbidden","message":"You are not a participant in this conversation"}`, chat.ErrForbidden},
		{"404 stops with ErrNotFound", 404, "application/json", `{"message":"Route doesn't exist"}`, chat.ErrNotFound},
		{"2xx error body stops with its code", 200, "application/json", `{"id":"err_3","code":403,"type":"Forbidden","message":"no"}`, chat.ErrForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", tt.ctype)
				w.WriteHeader(tt.status)
				io.WriteString(w, tt.body)
			})
			connected := false
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			h := chat.ListenHandler{
				OnConnect: func(context.Context) { connected = true },
				OnSignal:  func(context.Context, chat.Signal) {},
				OnDisconnect: func(err error, _ time.Duration) {
					t.Errorf("reconnecting after %v", err)
					cancel()
				},
			}
			err := newClient(t, f.URL, &waits{}, nil).Listen(ctx, testKey, "c1", h)
			var e *chat.Error
			if !errors.Is(err, tt.want) || !errors.As(err, &e) || e.Op != "listen" {
				t.Fatalf("Listen = %v, want *Error matching %v", err, tt.want)
			}
			if connected || f.hits.Load() != 1 {
				t.Errorf("connected = %v, requests = %d; want no connect and one request", connected, f.hits.Load())
			}
		})
	}
}

func TestListenReconnects(t *testing.T) {
	t.Run("503 with Retry-After delays the reconnect", func(t *testing.T) {
		var conns atomic.Int64
		f := newFake(t, func(w http.ResponseWriter, r *http.Request) {
			switch conns.Add(1) {
			case 1:
				w.Header().Set("Retry-After", "12")
				w.WriteHeader(503)
				io.WriteString(w, "maintenance")
			case 2:
				w.Header().Set("Content-Type", "application/json")
				io.WriteString(w, `{"ok":true}`) // a 200 that is no stream: retried
			default:
				w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
				w.WriteHeader(200)
				http.NewResponseController(w).Flush()
				<-r.Context().Done()
			}
		})
		var w waits
		ev := newEvents()
		var reasons []error
		h := ev.handler()
		h.OnDisconnect = func(err error, d time.Duration) {
			reasons = append(reasons, err)
			ev.ch <- "disconnect"
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- newClient(t, f.URL, &w, nil).Listen(ctx, testKey, "c1", h) }()
		ev.expect(t, "disconnect", "disconnect", "connect")
		cancel()
		recv(t, done, "Listen to return")
		got := w.all()
		if len(got) != 2 || got[0] != 12*time.Second || got[1] > 3*time.Second {
			t.Errorf("waits = %v, want [12s, backoff ≤ 3s]", got)
		}
		var e *chat.Error
		if !errors.As(reasons[0], &e) || e.Status != 503 || e.RetryAfter != 12*time.Second {
			t.Errorf("first reason = %v", reasons[0])
		}
	})
	t.Run("backoff grows while the server is down and is capped", func(t *testing.T) {
		var conns atomic.Int64
		f := newFake(t, func(w http.ResponseWriter, r *http.Request) {
			conns.Add(1)
			w.WriteHeader(502)
		})
		var w waits
		ctx, cancel := context.WithCancel(t.Context())
		h := chat.ListenHandler{
			OnSignal:   func(context.Context, chat.Signal) {},
			MaxBackoff: 5 * time.Second,
			OnDisconnect: func(error, time.Duration) {
				if conns.Load() == 8 {
					cancel()
				}
			},
		}
		err := newClient(t, f.URL, &w, nil).Listen(ctx, testKey, "c1", h)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Listen = %v", err)
		}
		got := w.all()
		// Intervals 1, 2, 4, 5 (cap) s with ±50% jitter, never above the cap.
		for i, d := range got {
			base := min(time.Second<<i, 5*time.Second)
			if d < base/2 || d > min(base*3/2, 5*time.Second) {
				t.Errorf("wait %d = %v, want within [%v, %v]", i, d, base/2, min(base*3/2, 5*time.Second))
			}
		}
	})
	t.Run("cancel ends an idle stream promptly", func(t *testing.T) {
		f := sseFake(t, func(n int, w io.Writer, flush func(), r *http.Request) { <-r.Context().Done() })
		ev := newEvents()
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- newClient(t, f.URL, &waits{}, nil).Listen(ctx, testKey, "c1", ev.handler()) }()
		ev.expect(t, "connect")
		cancel()
		if err := recv(t, done, "Listen to return"); !errors.Is(err, context.Canceled) {
			t.Fatalf("Listen = %v", err)
		}
	})
}

// pipeNet serves raw HTTP over in-memory pipes, so that a synctest bubble
// can hold the whole connection and fake time can run the idle timer.
type pipeNet struct {
	serve func(n int, conn net.Conn)
	mu    sync.Mutex
	n     int
	wg    sync.WaitGroup
}

func (p *pipeNet) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	cli, srv := net.Pipe()
	p.mu.Lock()
	p.n++
	n := p.n
	p.mu.Unlock()
	p.wg.Go(func() {
		defer srv.Close()
		br := bufio.NewReader(srv)
		if _, err := http.ReadRequest(br); err != nil {
			return
		}
		p.serve(n, srv)
		io.Copy(io.Discard, br) // hold the stream until the client hangs up
	})
	return cli, nil
}

func TestListenIdleTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		pn := &pipeNet{serve: func(n int, conn net.Conn) {
			io.WriteString(conn, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n")
			if n == 1 {
				io.WriteString(conn, "event: message\ndata: ping\n\n")
				time.Sleep(40 * time.Second)
				io.WriteString(conn, "event: message\ndata: ping\n\n")
			}
			// Then silence.
		}}
		tr := &http.Transport{DialContext: pn.dial}
		defer tr.CloseIdleConnections()
		c, err := chat.NewClient("http://chat.test/wh", chat.WithHTTPClient(&http.Client{Transport: tr}))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		var (
			connects []time.Duration
			drops    []error
			dropAt   []time.Duration
		)
		h := chat.ListenHandler{
			OnConnect: func(context.Context) {
				connects = append(connects, time.Since(start))
				if len(connects) == 2 {
					cancel()
				}
			},
			OnSignal: func(context.Context, chat.Signal) {},
			OnDisconnect: func(err error, retryIn time.Duration) {
				drops = append(drops, err)
				dropAt = append(dropAt, time.Since(start))
			},
		}
		if err := c.Listen(ctx, testKey, "c1", h); !errors.Is(err, context.Canceled) {
			t.Fatalf("Listen = %v", err)
		}
		pn.wg.Wait()
		if len(drops) != 1 || !errors.Is(drops[0], chat.ErrIdleTimeout) {
			t.Fatalf("disconnects = %v, want one ErrIdleTimeout", drops)
		}
		// The second ping at 40 s restarted the 60 s timer.
		if dropAt[0] != 100*time.Second {
			t.Errorf("dropped after %v of fake time, want 100s", dropAt[0])
		}
		if len(connects) != 2 || connects[0] != 0 || connects[1] <= dropAt[0] {
			t.Errorf("connects at %v, want 0 and after the drop", connects)
		}
	})
}

func TestListenIdleBeforeHeaders(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		pn := &pipeNet{serve: func(n int, conn net.Conn) {
			if n > 1 {
				io.WriteString(conn, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n")
			}
			// The first connection never answers.
		}}
		tr := &http.Transport{DialContext: pn.dial}
		defer tr.CloseIdleConnections()
		c, err := chat.NewClient("http://chat.test/wh", chat.WithHTTPClient(&http.Client{Transport: tr}))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		var drops []error
		h := chat.ListenHandler{
			IdleTimeout:  5 * time.Second,
			OnConnect:    func(context.Context) { cancel() },
			OnSignal:     func(context.Context, chat.Signal) {},
			OnDisconnect: func(err error, _ time.Duration) { drops = append(drops, err) },
		}
		if err := c.Listen(ctx, testKey, "c1", h); !errors.Is(err, context.Canceled) {
			t.Fatalf("Listen = %v", err)
		}
		pn.wg.Wait()
		if len(drops) != 1 || !errors.Is(drops[0], chat.ErrIdleTimeout) {
			t.Fatalf("disconnects = %v, want one ErrIdleTimeout", drops)
		}
	})
}
