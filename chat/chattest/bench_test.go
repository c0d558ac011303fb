package chattest_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/botbridge/botbridge/chat"
	"github.com/botbridge/botbridge/chat/chattest"
)

// benchStream opens a stream and returns a channel that receives every bot
// message_created frame's data.
func benchStream(b *testing.B, e *env, key chat.UserKey, conv chat.ConversationID) <-chan []byte {
	req, err := http.NewRequestWithContext(b.Context(), "GET", e.url+"/conversations/"+string(conv)+"/listen", nil)
	if err != nil {
		b.Fatal(err)
	}
	req.Header.Set("x-user-key", string(key))
	res, err := e.hc.Do(req)
	if err != nil || res.StatusCode != 200 {
		b.Fatalf("listen: %v %v", res, err)
	}
	out := make(chan []byte, 16)
	go func() {
		defer res.Body.Close()
		defer close(out)
		br := bufio.NewReaderSize(res.Body, 64<<10)
		for {
			line, err := br.ReadSlice('\n')
			if err != nil {
				return
			}
			if d, ok := bytes.CutPrefix(line, []byte("data: ")); ok && bytes.Contains(d, []byte(`"isBot":true`)) {
				out <- bytes.Clone(d)
			}
		}
	}()
	return out
}

// post sends createMessage with a preencoded body and discards the answer.
func post(ctx context.Context, e *env, key chat.UserKey, body string) error {
	req, err := http.NewRequestWithContext(ctx, "POST", e.url+"/messages", strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("x-user-key", string(key))
	res, err := e.hc.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode != 200 {
		return fmt.Errorf("status %d", res.StatusCode)
	}
	return nil
}

// BenchmarkEchoRoundTrip measures createMessage over HTTP until the echo
// bot's reply is read from the conversation's event stream, one at a time.
func BenchmarkEchoRoundTrip(b *testing.B) {
	e := newEnv(b, chattest.Options{Bot: chattest.EchoBot()})
	_, key := e.createUser("alice")
	conv := e.createConv(key, "c1")
	replies := benchStream(b, e, key, conv)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		text := fmt.Sprint("m", i)
		i++
		if err := post(b.Context(), e, key, `{"conversationId":"c1","payload":{"type":"text","text":"`+text+`"}}`); err != nil {
			b.Fatal(err)
		}
		d, ok := <-replies
		if !ok || !bytes.Contains(d, []byte(`"text":"`+text+`"`)) {
			b.Fatalf("reply %s for %s", d, text)
		}
	}
}

// BenchmarkEchoRoundTripParallel runs the round trip in many conversations at
// once, one user, stream and conversation per goroutine.
func BenchmarkEchoRoundTripParallel(b *testing.B) {
	e := newEnv(b, chattest.Options{Bot: chattest.EchoBot()})
	e.hc = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
	const parallelism = 8
	type lane struct {
		key     chat.UserKey
		body    string
		replies <-chan []byte
	}
	lanes := make([]lane, parallelism*runtime.GOMAXPROCS(0))
	for i := range lanes {
		_, key := e.createUser(fmt.Sprint("u", i))
		conv := e.createConv(key, fmt.Sprint("c", i))
		lanes[i] = lane{key, `{"conversationId":"` + string(conv) + `","payload":{"type":"text","text":"hi"}}`, benchStream(b, e, key, conv)}
	}
	var next atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(parallelism)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		l := lanes[next.Add(1)-1]
		for pb.Next() {
			if err := post(b.Context(), e, l.key, l.body); err != nil {
				b.Error(err)
				return
			}
			if _, ok := <-l.replies; !ok {
				b.Error("stream ended")
				return
			}
		}
	})
}

// BenchmarkIdleStreams opens one more idle stream per iteration, each from a
// bare TCP connection that keeps no buffer, and reports what an open stream
// costs the process: heap bytes and goroutines per stream (the emulator's
// side and net/http's, plus one client socket).
func BenchmarkIdleStreams(b *testing.B) {
	e := newEnv(b, chattest.Options{})
	_, key := e.createUser("alice")
	e.createConv(key, "c1")
	addr := strings.TrimPrefix(strings.TrimSuffix(e.url, "/local"), "http://")
	request := "GET /local/conversations/c1/listen HTTP/1.1\r\nHost: x\r\nx-user-key: " + string(key) + "\r\n\r\n"
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	g0 := runtime.NumGoroutine()
	var d net.Dialer
	for b.Loop() {
		c, err := d.DialContext(b.Context(), "tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		conns = append(conns, c)
		if _, err := io.WriteString(c, request); err != nil {
			b.Fatal(err)
		}
		res, err := http.ReadResponse(bufio.NewReaderSize(c, 512), nil)
		if err != nil || res.StatusCode != 200 {
			b.Fatalf("listen: %v %v", res, err)
		}
	}
	b.StopTimer()
	runtime.GC()
	runtime.ReadMemStats(&after)
	n := float64(len(conns))
	b.ReportMetric(float64(after.HeapInuse+after.StackInuse-before.HeapInuse-before.StackInuse)/n, "B/stream")
	b.ReportMetric(float64(runtime.NumGoroutine()-g0)/n, "goroutines/stream")
	if got := e.s.OpenStreams(); got != len(conns) {
		b.Fatalf("OpenStreams %d, want %d", got, len(conns))
	}
}
