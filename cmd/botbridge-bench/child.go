package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/botbridge/botbridge/chat/chattest"
)

// childEnv, set to childEmulator, makes the bench binary (or its test
// binary) serve the emulator instead of benchmarking, so that the emulator's
// memory and goroutines are not counted as the bridge's.
const (
	childEnv      = "BOTBRIDGE_BENCH_CHILD"
	childEmulator = "emulator"
)

// benchKey is the encryption key of the emulated bot; the bridge signs user
// keys with it.
const benchKey = "botbridge-bench-encryption-key"

// childAddrs is the first line the child prints: where its Chat API and its
// control endpoints are.
type childAddrs struct {
	API     string `json:"api"`
	Control string `json:"control"`
}

// childStats is what the control endpoint /stats answers.
type childStats struct {
	Streams  int `json:"streams"`
	Requests int `json:"requests"`
}

// runChild serves the emulator with the echo bot over loopback, prints its
// addresses as one JSON line on stdout and runs until stdin closes (the
// parent ended or is done). Beside the Chat API it serves controls: GET
// /stats, POST /down (every API request fails with 503, as Botpress would
// during an outage) and POST /up.
func runChild(stdin io.Reader, stdout, stderr io.Writer) int {
	fail := func(err error) int {
		fmt.Fprintln(stderr, "botbridge-bench emulator:", err)
		return 1
	}
	em, err := chattest.New(chattest.Options{EncryptionKey: benchKey, Bot: chattest.EchoBot()})
	if err != nil {
		return fail(err)
	}
	defer em.Close()
	if err := em.Start("127.0.0.1:0"); err != nil {
		return fail(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, _ *http.Request) {
		json.NewEncoder(w).Encode(childStats{Streams: em.OpenStreams(), Requests: em.Requests()})
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
	if err := json.NewEncoder(stdout).Encode(childAddrs{API: em.URL(), Control: "http://" + ln.Addr().String()}); err != nil {
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

// startEmulator re-executes this binary as the emulator child and waits for
// its addresses.
func startEmulator(ctx context.Context, stderr io.Writer) (*emulator, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("start emulator: %w", err)
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), childEnv+"="+childEmulator)
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

func (e *emulator) control(ctx context.Context, method, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, e.Control+path, nil)
	if err != nil {
		return err
	}
	resp, err := e.hc.Do(req)
	if err != nil {
		return fmt.Errorf("emulator %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("emulator %s: %s", path, resp.Status)
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
	return e.control(ctx, http.MethodPost, path, nil)
}

func (e *emulator) stats(ctx context.Context) (childStats, error) {
	var s childStats
	err := e.control(ctx, http.MethodGet, "/stats", &s)
	return s, err
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
