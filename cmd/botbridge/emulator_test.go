package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/botbridge/botbridge/chat"
)

// runEmulatorCmd runs `botbridge emulator args...` until the test ends and
// returns the base URL it prints first.
func runEmulatorCmd(t *testing.T, args ...string) string {
	t.Helper()
	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan int, 1)
	go func() {
		done <- Main(ctx, append([]string{"emulator", "-addr", "127.0.0.1:0", "-log-level", "error"}, args...), strings.NewReader(""), pw, io.Discard)
		pw.Close()
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case code := <-done:
			if code != 0 {
				t.Errorf("emulator exited with %d", code)
			}
		case <-time.After(10 * time.Second):
			t.Error("emulator did not stop")
		}
	})
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatalf("emulator printed no URL: %v", err)
	}
	go io.Copy(io.Discard, pr)
	return strings.TrimSpace(line)
}

// helloProto returns the protocol of a GET /hello/ through hc.
func helloProto(t *testing.T, hc *http.Client, base string) string {
	t.Helper()
	res, err := hc.Get(base + "/hello/")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("hello: %s", res.Status)
	}
	return res.Proto
}

func TestEmulatorSendsWebhooks(t *testing.T) {
	type hit struct {
		path, secret string
		body         string
	}
	hits := make(chan hit, 16)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		hits <- hit{r.URL.Path, r.Header.Get("X-Secret-Key"), string(b)}
	}))
	defer recv.Close()
	base := runEmulatorCmd(t, "-bot", "echo", "-webhook-url", recv.URL+"/botpress/demo", "-webhook-secret", "s3cret")

	c, err := chat.NewClient(base)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	_, key, err := c.CreateUser(ctx, chat.CreateUserRequest{})
	if err != nil {
		t.Fatal(err)
	}
	conv, err := c.CreateConversation(ctx, key, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateMessage(ctx, key, chat.CreateMessageRequest{ConversationID: conv.ID, Payload: chat.Image{ImageURL: "https://x.test/cat.png"}}); err != nil {
		t.Fatal(err)
	}
	for i, isBot := range []string{`"isBot":false`, `"isBot":true`} {
		var h hit
		select {
		case h = <-hits:
		case <-time.After(10 * time.Second):
			t.Fatalf("%d webhooks, want the person's image and the bot's", i)
		}
		if h.path != "/botpress/demo/" || h.secret != "s3cret" || !strings.Contains(h.body, `"imageUrl":"https://x.test/cat.png"`) || !strings.Contains(h.body, isBot) {
			t.Errorf("webhook %d: %+v; want the image (%s) at /botpress/demo/ with the secret", i, h, isBot)
		}
	}
}

func TestEmulatorServesHTTP2(t *testing.T) {
	t.Run("-tls with the certificate written for clients", func(t *testing.T) {
		certFile := filepath.Join(t.TempDir(), "emulator.pem")
		base := runEmulatorCmd(t, "-tls", "-tls-cert", certFile)
		if !strings.HasPrefix(base, "https://127.0.0.1:") {
			t.Fatalf("URL %s, want https", base)
		}
		pemCert, err := os.ReadFile(certFile)
		if err != nil {
			t.Fatal(err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pemCert) {
			t.Fatalf("no certificate in %s", certFile)
		}
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}
		defer tr.CloseIdleConnections()
		if p := helloProto(t, &http.Client{Transport: tr}, base); p != "HTTP/2.0" {
			t.Errorf("hello over %s, want HTTP/2.0", p)
		}
	})
	t.Run("-h2c", func(t *testing.T) {
		base := runEmulatorCmd(t, "-h2c")
		tr := &http.Transport{Protocols: new(http.Protocols)}
		tr.Protocols.SetUnencryptedHTTP2(true)
		defer tr.CloseIdleConnections()
		if p := helloProto(t, &http.Client{Transport: tr}, base); p != "HTTP/2.0" {
			t.Errorf("hello over %s, want HTTP/2.0", p)
		}
		if p := helloProto(t, &http.Client{Transport: &http.Transport{}}, base); p != "HTTP/1.1" {
			t.Errorf("an HTTP/1.1 client got %s", p)
		}
	})
}

func TestEmulatorFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-tls", "-h2c"}, "-h2c is for plain HTTP"},
		{[]string{"-tls-cert", "x.pem"}, "-tls-cert needs -tls"},
		{[]string{"-webhook-secret", "s"}, "-webhook-secret needs -webhook-url"},
		{[]string{"-webhook-url", "ftp://x/y"}, "-webhook-url"},
		{[]string{"-webhook-url", "http://x/y", "-webhook-drop", "1.5"}, "-webhook-drop 1.5: want a fraction"},
	} {
		code, _, errOut := runMain(t, "", append([]string{"emulator", "-addr", "127.0.0.1:0"}, tc.args...)...)
		if code != exitUsage || !strings.Contains(errOut, tc.want) {
			t.Errorf("emulator %v: exit %d, stderr %q; want %d and %q", tc.args, code, errOut, exitUsage, tc.want)
		}
	}
}
