package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/botbridge/botbridge/chat"
	"github.com/botbridge/botbridge/chat/chattest"
)

// childEnv, set to childEmulator, makes the bench binary (or its test
// binary) serve the emulator instead of benchmarking, so that the emulator's
// memory and goroutines are not counted as the bridge's. childProtoEnv says
// what the child's Chat API speaks besides HTTP/1.1: "" nothing, protoTLS
// HTTPS with HTTP/2 negotiated (as Botpress Cloud), protoH2C HTTP/2 without
// TLS.
const (
	childEnv      = "BOTBRIDGE_BENCH_CHILD"
	childEmulator = "emulator"
	childProtoEnv = "BOTBRIDGE_BENCH_CHILD_PROTO"
	protoHTTP1    = ""
	protoTLS      = "tls"
	protoH2C      = "h2c"
)

// benchKey is the encryption key of the emulated bot; the bridge signs user
// keys with it.
const benchKey = "botbridge-bench-encryption-key"

// childAddrs is the first line the child prints: where its Chat API and its
// control endpoints are.
type childAddrs struct {
	API     string `json:"api"`
	Control string `json:"control"`
	// Cert is the PEM of the certificate the API serves with protoTLS.
	Cert string `json:"cert,omitempty"`
}

// childStats is what the control endpoint /stats answers.
type childStats struct {
	Streams  int `json:"streams"`
	Requests int `json:"requests"`
	// Connections counts the connections the Chat API accepted.
	Connections int                   `json:"connections"`
	Webhooks    chattest.WebhookStats `json:"webhooks"`
}

// webhookTarget is the body of POST /webhook: where the emulator sends its
// webhooks from now on ("" stops them).
type webhookTarget struct {
	URL    string `json:"url"`
	Secret string `json:"secret"`
}

// pushRequest is the body of POST /push: the bot sends text into each of
// the conversations, one after the other.
type pushRequest struct {
	Conversations []chat.ConversationID `json:"conversations"`
	Text          string                `json:"text"`
}

// pushAnswer is what POST /push answers: when each message was pushed (Unix
// nanoseconds of the machine's clock, just before the push), in the order
// of the request.
type pushAnswer struct {
	At []int64 `json:"at"`
}

// runChild serves the emulator with the echo bot over loopback, prints its
// addresses as one JSON line on stdout and runs until stdin closes (the
// parent ended or is done). proto is what the API speaks besides HTTP/1.1
// (protoHTTP1, protoTLS or protoH2C). Beside the Chat API it serves
// controls: GET /stats, POST /down (every API request fails with 503, as
// Botpress would during an outage), POST /up, POST /webhook (a
// webhookTarget) and POST /push (a pushRequest; the bot speaks late).
func runChild(proto string, stdin io.Reader, stdout, stderr io.Writer) int {
	fail := func(err error) int {
		fmt.Fprintln(stderr, "botbridge-bench emulator:", err)
		return 1
	}
	opts := chattest.Options{EncryptionKey: benchKey, Bot: chattest.EchoBot()}
	switch proto {
	case protoHTTP1:
	case protoTLS:
		opts.TLS = true
	case protoH2C:
		opts.H2C = true
	default:
		return fail(fmt.Errorf("%s=%q: want %q, %q or nothing", childProtoEnv, proto, protoTLS, protoH2C))
	}
	em, err := chattest.New(opts)
	if err != nil {
		return fail(err)
	}
	defer em.Close()
	if err := em.Start("127.0.0.1:0"); err != nil {
		return fail(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, _ *http.Request) {
		json.NewEncoder(w).Encode(childStats{Streams: em.OpenStreams(), Requests: em.Requests(), Connections: em.Connections(), Webhooks: em.WebhookStats()})
	})
	mux.HandleFunc("POST /webhook", func(w http.ResponseWriter, r *http.Request) {
		var t webhookTarget
		if err := json.NewDecoder(r.Body).Decode(&t); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if err := em.SetWebhook(t.URL, t.Secret); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
		}
	})
	mux.HandleFunc("POST /push", func(w http.ResponseWriter, r *http.Request) {
		var p pushRequest
		if err := json.NewDecoder(r.Body).Decode(&p); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		ans := pushAnswer{At: make([]int64, len(p.Conversations))}
		for i, conv := range p.Conversations {
			ans.At[i] = time.Now().UnixNano()
			if _, err := em.PushBotMessage(r.Context(), conv, chat.Text{Text: p.Text}); err != nil {
				http.Error(w, fmt.Sprintf("conversation %s: %v", conv, err), http.StatusInternalServerError)
				return
			}
		}
		json.NewEncoder(w).Encode(ans)
	})
	mux.HandleFunc("POST /down", func(w http.ResponseWriter, _ *http.Request) {
		em.FailRequests(http.StatusServiceUnavailable, 0, time.Now().Add(time.Hour))
	})
	mux.HandleFunc("POST /up", func(w http.ResponseWriter, _ *http.Request) {
		em.FailRequests(0, 0, time.Time{})
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fail(err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()
	addrs := childAddrs{API: em.URL(), Control: "http://" + ln.Addr().String()}
	if c := em.Certificate(); c != nil {
		addrs.Cert = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}))
	}
	if err := json.NewEncoder(stdout).Encode(addrs); err != nil {
		return fail(err)
	}
	io.Copy(io.Discard, stdin)
	return 0
}

// emulator is the parent's handle on the child process.
type emulator struct {
	childAddrs
	cmd   *exec.Cmd
	stdin io.Closer
	hc    *http.Client
}

// startEmulator re-executes this binary as the emulator child, its API
// speaking proto besides HTTP/1.1, and waits for its addresses.
func startEmulator(ctx context.Context, proto string, stderr io.Writer) (*emulator, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("start emulator: %w", err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), childEnv+"="+childEmulator, childProtoEnv+"="+proto)
	cmd.Stderr = stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("start emulator: %w", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("start emulator: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start emulator: %w", err)
	}
	e := &emulator{cmd: cmd, stdin: stdin, hc: &http.Client{Timeout: 10 * time.Second}}
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(stdout).ReadString('\n')
		line <- s
	}()
	select {
	case s := <-line:
		if err := json.Unmarshal([]byte(s), &e.childAddrs); err != nil || e.API == "" {
			e.close()
			return nil, fmt.Errorf("start emulator: the child said %q", strings.TrimSpace(s))
		}
	case <-ctx.Done():
		e.close()
		return nil, fmt.Errorf("start emulator: %w", ctx.Err())
	}
	return e, nil
}

// close ends the child: it exits when its stdin closes; it is killed if it
// does not within a few seconds.
func (e *emulator) close() {
	e.stdin.Close()
	done := make(chan struct{})
	go func() {
		e.cmd.Wait()
		close(done)
	}()
	t := time.NewTimer(5 * time.Second)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		e.cmd.Process.Kill()
		<-done
	}
}

// tlsConfig returns a TLS configuration that trusts the certificate the
// child's API serves, or nil when it serves none.
func (e *emulator) tlsConfig() (*tls.Config, error) {
	if e.Cert == "" {
		return nil, nil
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(e.Cert)) {
		return nil, errors.New("emulator: the child's certificate is not PEM")
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}

// control calls a control endpoint with in (if not nil) as its JSON body,
// and decodes the answer into out (if not nil).
func (e *emulator) control(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, e.Control+path, body)
	if err != nil {
		return err
	}
	resp, err := e.hc.Do(req)
	if err != nil {
		return fmt.Errorf("emulator %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
		return fmt.Errorf("emulator %s: %s: %s", path, resp.Status, strings.TrimSpace(string(msg)))
	}
	if out == nil {
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// setDown makes the emulated Botpress answer every request with 503 (down)
// or normally again.
func (e *emulator) setDown(ctx context.Context, down bool) error {
	path := "/up"
	if down {
		path = "/down"
	}
	return e.control(ctx, http.MethodPost, path, nil, nil)
}

func (e *emulator) stats(ctx context.Context) (childStats, error) {
	var s childStats
	err := e.control(ctx, http.MethodGet, "/stats", nil, &s)
	return s, err
}

// setWebhook makes the emulator POST its webhooks to url with secret; an
// empty url stops them.
func (e *emulator) setWebhook(ctx context.Context, url, secret string) error {
	return e.control(ctx, http.MethodPost, "/webhook", webhookTarget{URL: url, Secret: secret}, nil)
}

// push makes the bot send text into each conversation, and returns when
// each was sent.
func (e *emulator) push(ctx context.Context, convs []chat.ConversationID, text string) ([]time.Time, error) {
	var ans pushAnswer
	if err := e.control(ctx, http.MethodPost, "/push", pushRequest{Conversations: convs, Text: text}, &ans); err != nil {
		return nil, err
	}
	if len(ans.At) != len(convs) {
		return nil, fmt.Errorf("emulator /push: %d times for %d conversations", len(ans.At), len(convs))
	}
	at := make([]time.Time, len(convs))
	for i, ns := range ans.At {
		at[i] = time.Unix(0, ns)
	}
	return at, nil
}

// requests returns how many requests the emulator has answered, or 0 when
// it cannot tell.
func (b *bench) requests(ctx context.Context) int {
	s, err := b.emu.stats(ctx)
	if err != nil {
		return 0
	}
	return s.Requests
}

// waitStreams waits until the emulator holds at least n open streams and
// no request has come for a while (the listeners' catch-ups are done).
func (e *emulator) waitStreams(ctx context.Context, n int) error {
	const poll, quietPolls = 100 * time.Millisecond, 5
	tick := time.NewTicker(poll)
	defer tick.Stop()
	last, quiet := -1, 0
	for {
		s, err := e.stats(ctx)
		if err != nil {
			return err
		}
		if s.Streams >= n && s.Requests == last {
			quiet++
			if quiet >= quietPolls {
				return nil
			}
		} else {
			quiet = 0
		}
		last = s.Requests
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %d open streams (have %d): %w", n, s.Streams, ctx.Err())
		case <-tick.C:
		}
	}
}

// waitNoStreams waits until the emulator holds no open stream, for at most
// limit.
func (e *emulator) waitNoStreams(ctx context.Context, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		s, err := e.stats(ctx)
		if err != nil {
			return err
		}
		if s.Streams == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for the streams to close (%d open): %w", s.Streams, ctx.Err())
		case <-tick.C:
		}
	}
}

// annotate adds what the emulator counts to err, for a wait that failed.
func (e *emulator) annotate(ctx context.Context, err error) error {
	s, serr := e.stats(context.WithoutCancel(ctx))
	if serr != nil {
		return err
	}
	w := s.Webhooks
	return fmt.Errorf("%w; the emulator has %d streams open, answered %d requests, sent webhooks: %d delivered, %d failed, %d dropped, %d discarded, %d pending",
		err, s.Streams, s.Requests, w.Delivered, w.Failed, w.Dropped, w.Discarded, w.Pending)
}
