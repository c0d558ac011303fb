package chat_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/botbridge/botbridge/chat"
	"github.com/botbridge/botbridge/chat/chattest"
)

// emulatorChildEnv makes the test binary run only an emulator: the memory
// benchmark measures the client in a process of its own.
const emulatorChildEnv = "CHAT_TEST_EMULATOR_CHILD"

func TestMain(m *testing.M) {
	if proto := os.Getenv(emulatorChildEnv); proto != "" {
		os.Exit(runEmulatorChild(proto))
	}
	os.Exit(m.Run())
}

// runEmulatorChild serves the emulator over plain HTTP/1.1 ("h1"), HTTP/2
// without TLS ("h2c") or HTTPS with HTTP/2 ("tls"), prints the base URL (and
// for tls a second line, the certificate in base64 DER), and runs until stdin
// closes.
func runEmulatorChild(proto string) int {
	srv, err := chattest.New(chattest.Options{EncryptionKey: emulatorKey, H2C: proto == "h2c", TLS: proto == "tls"})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer srv.Close()
	if err := srv.Start("127.0.0.1:0"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println(srv.URL())
	if proto == "tls" {
		fmt.Println(base64.StdEncoding.EncodeToString(srv.Certificate().Raw))
	}
	io.Copy(io.Discard, os.Stdin)
	return 0
}

// startEmulatorProcess runs the emulator in a child process and returns a
// client of it with the default transport, trusting its certificate or
// speaking h2c as proto needs.
func startEmulatorProcess(b *testing.B, proto string) *chat.Client {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), emulatorChildEnv+"="+proto)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		stdin.Close()
		cmd.Wait()
	})
	out := bufio.NewReader(stdout)
	line, err := out.ReadString('\n')
	if err != nil {
		b.Fatalf("emulator child: %v", err)
	}
	var opts []chat.Option
	switch proto {
	case "h2c":
		opts = append(opts, chat.WithUnencryptedHTTP2())
	case "tls":
		certLine, err := out.ReadString('\n')
		if err != nil {
			b.Fatalf("emulator child: %v", err)
		}
		der, err := base64.StdEncoding.DecodeString(strings.TrimSpace(certLine))
		if err != nil {
			b.Fatal(err)
		}
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			b.Fatal(err)
		}
		pool := x509.NewCertPool()
		pool.AddCert(cert)
		opts = append(opts, chat.WithTLSConfig(&tls.Config{RootCAs: pool}))
	}
	c, err := chat.NewClient(strings.TrimSpace(line), opts...)
	if err != nil {
		b.Fatal(err)
	}
	return c
}

// BenchmarkRoundTrip measures one user message through createMessage until
// the echo bot's reply arrives on the open stream: client and emulator in
// one process, over loopback HTTP.
func BenchmarkRoundTrip(b *testing.B) {
	srv, err := chattest.New(chattest.Options{Bot: chattest.EchoBot(), EncryptionKey: emulatorKey})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { srv.Close() })
	if err := srv.Start("127.0.0.1:0"); err != nil {
		b.Fatal(err)
	}
	c, err := chat.NewClient(srv.URL())
	if err != nil {
		b.Fatal(err)
	}
	ctx := b.Context()
	signer, _ := chat.NewSigner(emulatorKey)
	key, _ := signer.Key("bench")
	if _, err := c.GetOrCreateUser(ctx, key, chat.UserProfile{}); err != nil {
		b.Fatal(err)
	}
	conv, err := c.GetOrCreateConversation(ctx, key, "bench")
	if err != nil {
		b.Fatal(err)
	}
	replies := make(chan chat.MessageCreated, 16)
	connected := make(chan struct{}, 1)
	lctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- c.Listen(lctx, key, conv.ID, chat.ListenHandler{
			OnConnect: func(context.Context) { connected <- struct{}{} },
			OnSignal: func(_ context.Context, s chat.Signal) {
				if m, ok := s.(chat.MessageCreated); ok && m.IsBot {
					replies <- m
				}
			},
		})
	}()
	<-connected
	req := chat.CreateMessageRequest{ConversationID: conv.ID, Payload: chat.Text{Text: "ping pong"}}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.CreateMessage(ctx, key, req); err != nil {
			b.Fatal(err)
		}
		select {
		case <-replies:
		case <-time.After(10 * time.Second):
			b.Fatal("no bot reply")
		}
	}
	b.StopTimer()
	cancel()
	<-done
}

// BenchmarkIdleListenerMemory opens b.N idle streams against the emulator
// in a child process and reports what each costs the client: heap and stack
// in use, and goroutines (the Listen goroutine included). ns/op is the time
// to open one stream. Each sub-benchmark uses the client's default
// transport: "http1" over loopback HTTP/1.1, one connection per stream;
// "http2" over TLS, where HTTP/2 is negotiated as with Botpress Cloud and the
// streams are multiplexed (250 per connection, the emulator's limit); "h2c"
// the same without TLS. The figure is 10,000 open streams:
//
//	go test -tags goolm -run '^$' -bench IdleListenerMemory -benchtime=10000x ./chat/
func BenchmarkIdleListenerMemory(b *testing.B) {
	for _, proto := range []struct{ name, child string }{{"http1", "h1"}, {"http2", "tls"}, {"h2c", "h2c"}} {
		b.Run(proto.name, func(b *testing.B) {
			c := startEmulatorProcess(b, proto.child)
			ctx := b.Context()
			key := keyFor(b, emulatorKey, "idle")
			if _, err := c.GetOrCreateUser(ctx, key, chat.UserProfile{}); err != nil {
				b.Fatal(err)
			}
			conv, err := c.GetOrCreateConversation(ctx, key, "idle")
			if err != nil {
				b.Fatal(err)
			}
			idleListeners(b, c, key, conv.ID)
		})
	}
}

func idleListeners(b *testing.B, c *chat.Client, key chat.UserKey, conv chat.ConversationID) {
	ctx := b.Context()
	connected := make(chan struct{}, 64)
	h := chat.ListenHandler{
		OnConnect: func(context.Context) { connected <- struct{}{} },
		OnSignal:  func(context.Context, chat.Signal) {},
	}

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	g0 := runtime.NumGoroutine()

	lctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	b.ResetTimer()
	for range b.N {
		wg.Go(func() { c.Listen(lctx, key, conv, h) })
		<-connected
	}
	b.StopTimer()

	runtime.GC()
	runtime.ReadMemStats(&after)
	g1 := runtime.NumGoroutine()
	n := float64(b.N)
	heap := float64(int64(after.HeapInuse)-int64(before.HeapInuse)) / n
	stack := float64(int64(after.StackInuse)-int64(before.StackInuse)) / n
	b.ReportMetric(heap+stack, "B/listener")
	b.ReportMetric(heap, "heapB/listener")
	b.ReportMetric(stack, "stackB/listener")
	b.ReportMetric(float64(g1-g0)/n, "goroutines/listener")
	cancel()
	wg.Wait()
}
