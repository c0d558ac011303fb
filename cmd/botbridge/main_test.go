package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/botbridge/botbridge/bridge"
	"github.com/botbridge/botbridge/bridge/bridgetest"
	"github.com/botbridge/botbridge/chat"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func runMain(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut lockedBuffer
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	code = Main(ctx, args, strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestDemoAnswersEveryPayloadTypeOnTheConsole(t *testing.T) {
	input := "hello there\ntext\nmarkdown\nimage\naudio\nvideo\nfile\nlocation\ncard\ncarousel\nchoice\ndropdown\nbloc\nstream\n"
	code, out, errOut := runMain(t, input, "demo")
	if code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, errOut)
	}
	for _, want := range []string{"bot> hello there", "[image] http", "[audio] http", "[video] http", "[file] ", "[location] ",
		"1. ", "(answer with a number or a label)", "word by word"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	for l := range strings.SplitSeq(strings.TrimSpace(out), "\n") {
		if !strings.HasPrefix(l, "bot> ") {
			t.Errorf("output line %q does not start with \"bot> \"", l)
		}
	}
}

func TestDemoResumesTheConversationWithData(t *testing.T) {
	dir := t.TempDir()
	if code, out, errOut := runMain(t, "first\n", "demo", "-data", dir, "-bot", "echo"); code != 0 || !strings.Contains(out, "bot> first") {
		t.Fatalf("first run: exit %d, out %q, stderr %s", code, out, errOut)
	}
	code, out, errOut := runMain(t, "second\n", "demo", "-data", dir, "-bot", "echo", "-log-level", "info")
	if code != 0 || !strings.Contains(out, "bot> second") {
		t.Fatalf("second run: exit %d, out %q, stderr %s", code, out, errOut)
	}
	if strings.Contains(out, "bot> first") {
		t.Errorf("the first run's reply was posted again: %q", out)
	}
	if !strings.Contains(errOut, "conversations=1") {
		t.Errorf("second run did not resume the conversation; log:\n%s", errOut)
	}
	if strings.Contains(errOut, "conversation created") {
		t.Errorf("second run created a new conversation; log:\n%s", errOut)
	}
}

func TestEmulatorPrintsItsURLFirstAndStopsOnSignal(t *testing.T) {
	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan int, 1)
	go func() {
		done <- Main(ctx, []string{"emulator", "-addr", "127.0.0.1:0", "-webhook-id", "wh", "-bot", "echo"}, strings.NewReader(""), pw, io.Discard)
		pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	base := strings.TrimSpace(line)
	if !strings.HasPrefix(base, "http://127.0.0.1:") || !strings.HasSuffix(base, "/wh") {
		t.Fatalf("first line %q is not the base URL", line)
	}
	c, err := chat.NewClient(base)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Hello(t.Context()); err != nil {
		t.Fatalf("emulator at %s does not answer: %v", base, err)
	}
	_, key, err := c.CreateUser(t.Context(), chat.CreateUserRequest{})
	if err != nil || key == "" {
		t.Fatalf("createUser: %v", err)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("exit %d after the signal, want 0", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("emulator did not stop")
	}
}

func TestCommandLineErrors(t *testing.T) {
	cases := []struct {
		args []string
		code int
		want string
	}{
		{nil, exitUsage, "Usage"},
		{[]string{"frobnicate"}, exitUsage, "unknown command"},
		{[]string{"demo", "-bot", "eliza"}, exitUsage, "want demo, echo or none"},
		{[]string{"run", "-config", "/nonexistent/botbridge.yaml"}, 1, "no such file"},
		{[]string{"check-config", "-config", writeFile(t, "bots:\n  - name: x\n")}, 1, "bots[0]: url: missing"},
		{[]string{"version", "extra"}, exitUsage, "unexpected argument"},
	}
	for _, c := range cases {
		code, out, errOut := runMain(t, "", c.args...)
		if code != c.code || !strings.Contains(out+errOut, c.want) {
			t.Errorf("%v: exit %d, output %q; want exit %d mentioning %q", c.args, code, out+errOut, c.code, c.want)
		}
	}
}

func TestCheckConfigAndVersion(t *testing.T) {
	path := writeFile(t, "bots:\n  - name: x\n    url: https://chat.botpress.cloud/abc\n")
	if code, out, errOut := runMain(t, "", "check-config", "-config", path); code != 0 || !strings.Contains(out, "ok") {
		t.Errorf("check-config: exit %d, %q %q", code, out, errOut)
	}
	if code, out, _ := runMain(t, "", "version"); code != 0 || !strings.HasPrefix(out, "botbridge ") {
		t.Errorf("version: exit %d, %q", code, out)
	}
}

// TestRunServesHealthAndStopsCleanly checks that the admin listener serves
// health and metrics, and the public one none of them.
func TestRunServesHealthAndStopsCleanly(t *testing.T) {
	dir := t.TempDir()
	em := startEmulator(t)
	cfg := defaults()
	cfg.Store.Path = filepath.Join(dir, "b.db")
	cfg.HTTP.Addr = "127.0.0.1:0"
	cfg.HTTP.AdminAddr = "127.0.0.1:0"
	cfg.HTTP.PublicURL = "https://botbridge.example"
	cfg.Bots = []BotConfig{{Name: "b", URL: em}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	svc, err := NewService(t.Context(), cfg, testLog(t), bridgetest.NewAdapter(bridge.PlatformConsole))
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	for _, c := range []struct {
		addr, path string
		want       int
	}{
		{svc.AdminAddr(), "/healthz", http.StatusOK},
		{svc.AdminAddr(), "/readyz", http.StatusOK},
		{svc.AdminAddr(), "/metrics", http.StatusOK},
		{svc.AdminAddr(), "/files/healthz", http.StatusNotFound},
		{svc.HTTPAddr(), "/files/healthz", http.StatusOK},
		{svc.HTTPAddr(), "/healthz", http.StatusNotFound},
		{svc.HTTPAddr(), "/readyz", http.StatusNotFound},
		{svc.HTTPAddr(), "/metrics", http.StatusNotFound},
	} {
		resp, err := http.Get("http://" + c.addr + c.path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.want {
			listener := "public"
			if c.addr == svc.AdminAddr() {
				listener = "admin"
			}
			t.Errorf("%s on the %s listener: %s, want %d", c.path, listener, resp.Status, c.want)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
}

func writeFile(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "botbridge.yaml")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
