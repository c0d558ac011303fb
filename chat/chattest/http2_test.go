package chattest_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/botbridge/botbridge/chat"
	"github.com/botbridge/botbridge/chat/chattest"
)

// http2Modes are the two ways the emulator serves HTTP/2.
var http2Modes = map[string]chattest.Options{
	"h2c": {H2C: true},
	"tls": {TLS: true},
}

// proto sends GET /hello/ with hc and returns the answer's protocol.
func (e *env) proto(t *testing.T, hc *http.Client) (string, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), "GET", e.url+"/hello/", nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := hc.Do(req)
	if err != nil {
		return "", err
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return "", fmt.Errorf("status %d", res.StatusCode)
	}
	return res.Proto, nil
}

// TestStreamsShareOneHTTP2Connection opens many streams, of several users,
// through the emulator's client: over HTTP/2 they all travel on the one
// connection that the first request opened, and each gets its signals.
func TestStreamsShareOneHTTP2Connection(t *testing.T) {
	const n = 24
	for name, opts := range http2Modes {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, opts)
			if p, err := e.proto(t, e.hc); err != nil || p != "HTTP/2.0" {
				t.Fatalf("hello over %s, %v; want HTTP/2.0", p, err)
			}
			streams := make([]*sse, n)
			keys := make([]chat.UserKey, n)
			for i := range n {
				if i%3 == 0 {
					_, keys[i] = e.createUser("")
				} else {
					keys[i] = keys[i-i%3]
				}
				conv := e.createConv(keys[i], fmt.Sprint("c", i))
				streams[i] = e.listen(keys[i], conv)
			}
			if open := e.s.OpenStreams(); open != n {
				t.Errorf("%d streams open, want %d", open, n)
			}
			for i, st := range streams {
				m := e.sendText(keys[i], chat.ConversationID(fmt.Sprint("c", i)), fmt.Sprint("to ", i))
				var got messageOut
				st.nextOf(t, chat.SignalMessageCreated).decode(t, &got)
				if got.ID != m.ID {
					t.Errorf("stream %d got %s, want %s", i, got.ID, m.ID)
				}
			}
			if c := e.s.Connections(); c != 1 {
				t.Errorf("the emulator accepted %d connections for %d streams and their requests, want 1", c, n)
			}
		})
	}
	t.Run("h1 for comparison: one connection per stream", func(t *testing.T) {
		e := newEnvOver(t, chattest.Options{}, "h1")
		_, key := e.createUser("alice")
		for i := range 3 {
			e.listen(key, e.createConv(key, fmt.Sprint("c", i)))
		}
		if c := e.s.Connections(); c < 3 {
			t.Errorf("%d connections for 3 HTTP/1.1 streams", c)
		}
	})
}

// TestSignalsOverHTTP2AsOverHTTP1 runs the same conversation over each
// protocol: the same signals arrive in the same order, a removed participant's
// stream ends cleanly, and a cut stream ends abruptly.
func TestSignalsOverHTTP2AsOverHTTP1(t *testing.T) {
	run := func(t *testing.T, opts chattest.Options) []string {
		opts.Bot = streamBot()
		e := newEnvOver(t, opts, "h1")
		_, alice := e.createUser("alice")
		bob, bobKey := e.createUser("bob")
		conv := e.createConv(alice, "c1")
		st := e.listen(alice, conv)
		var types []string
		next := func() signal {
			s := st.next(t)
			types = append(types, s.Type)
			return s
		}
		until := func(typ string, bot bool) {
			for {
				s := next()
				if s.Type == typ && (typ != chat.SignalMessageCreated || strings.Contains(string(s.Data), `"isBot":true`) == bot) {
					return
				}
			}
		}
		e.addParticipant(alice, conv, bob)
		until(chat.SignalParticipantAdded, false)
		bobs := e.listen(bobKey, conv)
		hello := e.sendText(alice, conv, "hello")
		until(chat.SignalMessageCreated, false)
		e.sendText(alice, conv, "stream")
		until(chat.SignalMessageCreated, true)
		e.sendText(alice, conv, "abort")
		until(chat.SignalMessageStreamAbort, false)
		e.sendText(alice, conv, "event")
		until(chat.SignalEventCreated, false)
		e.do("DELETE", "/messages/"+string(hello.ID), alice, nil).ok(t, nil)
		until(chat.SignalMessageDeleted, false)
		e.do("DELETE", "/conversations/c1/participants/"+string(bob), alice, nil).ok(t, nil)
		until(chat.SignalParticipantRemoved, false)
		if err := bobs.ended(t); err != io.EOF {
			t.Errorf("a removed participant's stream ended with %v, want a clean end", err)
		}
		e.s.CutStreams()
		if err := st.ended(t); !abrupt(err) {
			t.Errorf("a cut stream ended with %v, want an abrupt end", err)
		}
		return types
	}
	want := run(t, chattest.Options{})
	for name, opts := range http2Modes {
		t.Run(name, func(t *testing.T) {
			if got := run(t, opts); strings.Join(got, " ") != strings.Join(want, " ") {
				t.Errorf("signals over %s:\n%v\nover HTTP/1.1:\n%v", name, got, want)
			}
		})
	}
}

func TestKeepAliveOverHTTP2(t *testing.T) {
	for name, opts := range http2Modes {
		t.Run(name, func(t *testing.T) {
			opts.KeepAlive = 50 * time.Millisecond
			e := newEnv(t, opts)
			_, key := e.createUser("alice")
			st := e.listen(key, e.createConv(key, "c1"))
			for range 3 {
				if f := st.nextFrame(t); f.data != "ping" {
					t.Fatalf("frame %q on an idle stream, want ping", f.raw)
				}
			}
		})
	}
}

// TestHTTP1ClientsOfAnHTTP2Emulator: a client that speaks only HTTP/1.1 (the
// official Node client) is served as before, streams included.
func TestHTTP1ClientsOfAnHTTP2Emulator(t *testing.T) {
	for name, opts := range http2Modes {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, opts)
			tr := &http.Transport{} // a TLS config of its own turns HTTP/2 off
			if opts.TLS {
				pool := x509.NewCertPool()
				pool.AddCert(e.s.Certificate())
				tr.TLSClientConfig = &tls.Config{RootCAs: pool}
			}
			defer tr.CloseIdleConnections()
			h1 := &env{t: t, s: e.s, url: e.url, hc: &http.Client{Transport: tr}}
			if p, err := h1.proto(t, h1.hc); err != nil || p != "HTTP/1.1" {
				t.Fatalf("hello over %s, %v; want HTTP/1.1", p, err)
			}
			_, key := h1.createUser("alice")
			conv := h1.createConv(key, "c1")
			st := h1.listen(key, conv)
			m := h1.sendText(key, conv, "over HTTP/1.1")
			var got messageOut
			st.nextOf(t, chat.SignalMessageCreated).decode(t, &got)
			if got.ID != m.ID {
				t.Errorf("stream got %s, want %s", got.ID, m.ID)
			}
		})
	}
}

func TestTLSCertificate(t *testing.T) {
	e := newEnv(t, chattest.Options{TLS: true})
	if !strings.HasPrefix(e.url, "https://127.0.0.1:") {
		t.Errorf("URL %s, want https://127.0.0.1:…", e.url)
	}
	cert := e.s.Certificate()
	if cert == nil {
		t.Fatal("no certificate")
	}
	if err := cert.VerifyHostname("127.0.0.1"); err != nil {
		t.Error(err)
	}
	if err := cert.VerifyHostname("localhost"); err != nil {
		t.Error(err)
	}
	untrusting := &http.Client{Transport: &http.Transport{}}
	var unknown x509.UnknownAuthorityError
	if _, err := e.proto(t, untrusting); !errors.As(err, &unknown) {
		t.Errorf("a client that does not trust the certificate got %v, want an unknown authority", err)
	}
	if _, err := chattest.New(chattest.Options{TLS: true, H2C: true}); err == nil {
		t.Error("New took TLS and H2C together")
	}
	plain := newEnv(t, chattest.Options{H2C: true})
	if plain.s.Certificate() != nil || !strings.HasPrefix(plain.url, "http://") {
		t.Errorf("h2c emulator at %s with a certificate %v", plain.url, plain.s.Certificate())
	}
}
