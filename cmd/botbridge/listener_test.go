package main

import (
	"bufio"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/botbridge/botbridge/adapters/slack/slacktest"
	"github.com/botbridge/botbridge/bridge"
	"github.com/botbridge/botbridge/bridge/bridgetest"
	"github.com/botbridge/botbridge/bridge/media"
)

// httpService runs a service whose HTTP listener takes Slack's Events API
// (a fake Slack in http mode) and serves the file links of an in-memory
// adapter, with the http section changed by set, until the test ends.
func httpService(t *testing.T, set func(*HTTPConfig)) (*Service, *bridgetest.Adapter) {
	t.Helper()
	fake, err := slacktest.New(slacktest.Options{SigningSecret: "signing-secret"})
	if err != nil {
		t.Fatal(err)
	}
	if err := fake.Start(""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fake.Close() })
	o := fake.Options()
	cfg := defaults()
	cfg.Store.Path = filepath.Join(t.TempDir(), "b.db")
	cfg.HTTP.Addr = "127.0.0.1:0"
	cfg.HTTP.AdminAddr = "127.0.0.1:0"
	cfg.HTTP.PublicURL = "http://127.0.0.1"
	cfg.Bots = []BotConfig{{Name: "b", URL: startEmulator(t)}}
	cfg.Slack = SlackConfig{Mode: "http", BotToken: o.BotToken, SigningSecret: o.SigningSecret, APIURL: fake.APIURL()}
	set(&cfg.HTTP)
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ad := bridgetest.NewAdapter(bridge.PlatformConsole)
	svc, err := NewService(t.Context(), cfg, testLog(t), ad)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(t.Context()))
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		svc.Close()
	})
	return svc, ad
}

// dial opens a raw TCP connection to addr.
func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// roundTrip sends a GET of path on c and reads the answer, keeping the
// connection open.
func roundTrip(t *testing.T, c net.Conn, r *bufio.Reader, path string) int {
	t.Helper()
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: botbridge\r\n\r\n", path); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// waitClosed reads c until the server closes it, and fails the test if it
// is still open after 20 s.
func waitClosed(t *testing.T, c net.Conn, r io.Reader) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	_, err := io.Copy(io.Discard, r)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("the server kept the connection open for 20 s")
	}
}

func TestHTTPListenerLimits(t *testing.T) {
	t.Run("a request body sent a byte at a time is cut off", func(t *testing.T) {
		svc, _ := httpService(t, func(h *HTTPConfig) { h.ReadTimeout = 500 * time.Millisecond })
		c := dial(t, svc.HTTPAddr())
		const size = 100_000 // 100 s at 1 byte a millisecond
		if _, err := fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: botbridge\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n{",
			DefaultSlackEventsPath, size); err != nil {
			t.Fatal(err)
		}
		closed := make(chan struct{})
		go func() {
			io.Copy(io.Discard, c)
			close(closed)
		}()
		deadline := time.After(20 * time.Second)
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for sent := 1; ; sent++ {
			select {
			case <-closed:
				t.Logf("cut off after %d bytes of %d", sent, size)
				return
			case <-deadline:
				t.Fatalf("the server still reads the body after 20 s (%d bytes)", sent)
			case <-tick.C:
			}
			if sent == size {
				t.Fatal("the server read the whole trickled body")
			}
			if _, err := c.Write([]byte(" ")); err != nil {
				t.Logf("cut off after %d bytes of %d: %v", sent, size, err)
				return
			}
		}
	})

	t.Run("an idle keep-alive connection is closed", func(t *testing.T) {
		svc, _ := httpService(t, func(h *HTTPConfig) { h.IdleTimeout = 500 * time.Millisecond })
		c := dial(t, svc.HTTPAddr())
		r := bufio.NewReader(c)
		if code := roundTrip(t, c, r, media.FilesPath+"nothing"); code != http.StatusNotFound {
			t.Fatalf("GET %snothing: %d, want 404", media.FilesPath, code)
		}
		waitClosed(t, c, r)
	})

	t.Run("headers past max_header_kb get 431", func(t *testing.T) {
		svc, _ := httpService(t, func(h *HTTPConfig) { h.MaxHeaderKB = 1 })
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+svc.HTTPAddr()+media.FilesPath+"x", nil)
		req.Header.Set("X-Padding", strings.Repeat("a", 16<<10))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("16 KiB of headers: %d, want 431", resp.StatusCode)
		}
	})

	t.Run("connections past max_connections wait for one to close", func(t *testing.T) {
		svc, _ := httpService(t, func(h *HTTPConfig) { h.MaxConnections = 2 })
		var held []net.Conn
		for range 2 {
			c := dial(t, svc.HTTPAddr())
			roundTrip(t, c, bufio.NewReader(c), media.FilesPath+"x") // accepted, then idle
			held = append(held, c)
		}
		c := dial(t, svc.HTTPAddr())
		r := bufio.NewReader(c)
		if _, err := fmt.Fprintf(c, "GET %sx HTTP/1.1\r\nHost: botbridge\r\n\r\n", media.FilesPath); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		var ne net.Error
		if _, err := r.Peek(1); !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("a third connection was served while two were open (%v)", err)
		}
		held[0].Close()
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		resp, err := http.ReadResponse(r, nil)
		if err != nil {
			t.Fatalf("the waiting connection was not served once one closed: %v", err)
		}
		resp.Body.Close()
	})

	t.Run("a file link slower than write_timeout is served whole", func(t *testing.T) {
		svc, ad := httpService(t, func(h *HTTPConfig) {
			h.ReadTimeout = 300 * time.Millisecond
			h.WriteTimeout = 300 * time.Millisecond
		})
		const size = 16 << 20 // more than the socket buffers hold
		ad.AddFile("big", make([]byte, size))
		v, err := svc.Store.Cursor(t.Context(), "files.secret")
		if err != nil {
			t.Fatal(err)
		}
		secret, err := hex.DecodeString(v)
		if err != nil {
			t.Fatal(err)
		}
		links, err := media.NewLinks(media.LinksConfig{BaseURL: "http://" + svc.HTTPAddr(), Secret: secret})
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.Get(links.URL(bridge.PlatformConsole, bridge.File{Ref: "big", Name: "big.bin"}))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("file link: %d", resp.StatusCode)
		}
		// Read 64 KiB every 5 ms: about 1.3 s for the file, four times
		// write_timeout.
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		var n int64
		for {
			<-tick.C
			k, err := io.CopyN(io.Discard, resp.Body, 64<<10)
			n += k
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("the download broke after %d of %d bytes: %v", n, size, err)
			}
		}
		if n != size {
			t.Errorf("got %d bytes of %d", n, size)
		}
	})
}
