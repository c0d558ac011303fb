package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/botbridge/botbridge/adapters/slack/slacktest"
	"github.com/botbridge/botbridge/chat"
	"github.com/botbridge/botbridge/chat/chattest"
)

// The fault tests run the real botbridge binary, built once per test run,
// against the Chat API emulator and the fake Slack, which run in the test
// process and speak the real protocols over loopback.

// binary builds the botbridge command once, into binDir, as the README
// builds it: pure Go, with the goolm tag.
var binary = sync.OnceValues(func() (string, error) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	}
	path := filepath.Join(binDir, "botbridge")
	cmd := exec.Command(goTool, "build", "-tags", "goolm", "-o", path, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return path, nil
})

// binDir holds the binary; TestMain makes it and removes it.
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "botbridge-faults-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// encryptionKey is the Chat integration's key, which the bridge reads from
// its environment.
const encryptionKey = "fault-test-encryption-key"

// botName is the bot's name in the bridge's configuration.
const botName = "echo"

// world is everything around one bridge: the emulator with a recording echo
// bot, the fake Slack with a person in each channel, and a directory for
// the store and the configuration.
type world struct {
	t    *testing.T
	em   *chattest.Server
	fake *slacktest.Server
	bot  *echoBot
	acks *ackWatch
	dir  string
	hc   *http.Client
	logs *logSink
	runs int
}

// worldOptions shape a world.
type worldOptions struct {
	// channels are the public channels people talk in, one person each.
	channels []string
	// redeliverAfter is the fake's wait before it delivers an unacknowledged
	// envelope again (Slack's is about 3 s, then 1 and 5 minutes).
	redeliverAfter time.Duration
	// spread gives each event to the next Socket Mode connection in turn,
	// as Slack does with an app's several connections (replicas).
	spread bool
}

func newWorld(t *testing.T, o worldOptions) *world {
	t.Helper()
	w := &world{t: t, bot: newEchoBot(), dir: t.TempDir(), logs: &logSink{}, hc: &http.Client{Timeout: 10 * time.Second}}
	em, err := chattest.New(chattest.Options{EncryptionKey: encryptionKey, Bot: w.bot})
	if err != nil {
		t.Fatal(err)
	}
	if err := em.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { em.Close() })
	w.em = em
	fake, err := slacktest.New(slacktest.Options{RedeliverAfter: o.redeliverAfter, Spread: o.spread})
	if err != nil {
		t.Fatal(err)
	}
	if err := fake.Start(""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fake.Close() })
	w.fake = fake
	for _, ch := range o.channels {
		w.addChannel(ch)
	}
	w.acks = watchAcks(t, fake)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("bridge log, warnings and errors:\n%s", w.logs.summary())
		}
	})
	return w
}

// addChannel adds a public channel with the bot and one person in it.
func (w *world) addChannel(ch string) {
	w.fake.AddUser(slacktest.User{ID: userOf(ch), Name: strings.ToLower(ch), RealName: "Person of " + ch})
	w.fake.AddChannel(slacktest.Channel{ID: ch, Name: strings.ToLower(ch), Members: []string{userOf(ch)}, IsMember: true})
}

func userOf(ch string) string { return "U" + ch[1:] }

// config is the bridge's configuration file.
type config struct {
	maxSizeMB int
	// logLevel is the bridge's; default info.
	logLevel string
}

// writeConfig writes the configuration file and returns its path. Every
// room of the fake Slack is answered without a mention, one Botpress
// conversation per room, so that each room is one ordered stream.
func (w *world) writeConfig(c config) string {
	w.t.Helper()
	if c.logLevel == "" {
		c.logLevel = "info"
	}
	body := fmt.Sprintf(`log:
  level: %s
  format: json
store:
  path: %s
  max_size_mb: %d
http:
  addr: 127.0.0.1:0
  admin_addr: 127.0.0.1:0
bridge:
  drain_timeout: 2s
bots:
  - name: %s
    url: %s
    encryption_key: ${BOTBRIDGE_TEST_KEY}
routes:
  - bot: %s
    platform: slack
    answer: all
    scope: room
slack:
  bot_token: ${SLACK_BOT_TOKEN}
  app_token: ${SLACK_APP_TOKEN}
  api_url: %s
  post_interval: 1ms
`, c.logLevel, filepath.Join(w.dir, "botbridge.db"), c.maxSizeMB, botName, w.em.URL(), botName, w.fake.APIURL())
	path := filepath.Join(w.dir, "botbridge.yaml")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		w.t.Fatal(err)
	}
	return path
}

// proc is one run of the bridge process.
type proc struct {
	w    *world
	cmd  *exec.Cmd
	run  int
	addr string
	done chan struct{} // closed when the process has exited
	err  error         // of Wait, once done
}

// start runs the bridge on the configuration file and waits until its admin
// listener is up.
func (w *world) start(cfg string) *proc {
	w.t.Helper()
	bin, err := binary()
	if err != nil {
		w.t.Fatal(err)
	}
	w.runs++
	p := &proc{w: w, run: w.runs, done: make(chan struct{})}
	p.cmd = exec.Command(bin, "run", "-config", cfg)
	p.cmd.Env = w.env()
	addr := make(chan string, 1)
	p.cmd.Stderr = w.logs.writer(p.run, addr)
	if err := p.cmd.Start(); err != nil {
		w.t.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	w.t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
	})
	select {
	case p.addr = <-addr:
	case <-p.done:
		w.t.Fatalf("bridge run %d exited at start: %v", p.run, p.err)
	case <-time.After(30 * time.Second):
		w.t.Fatalf("bridge run %d: no admin listener after 30s", p.run)
	}
	return p
}

// runOnce runs the botbridge command to its end with the test's
// environment, and returns its exit code and output.
func (w *world) runOnce(ctx context.Context, args ...string) (int, string) {
	w.t.Helper()
	bin, err := binary()
	if err != nil {
		w.t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = w.env()
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		w.t.Fatalf("botbridge %v: %v", args, err)
	}
	return cmd.ProcessState.ExitCode(), string(out)
}

// env is the bridge's environment: the test's, with the secrets its
// configuration reads.
func (w *world) env() []string {
	o := w.fake.Options()
	return append(os.Environ(), "BOTBRIDGE_TEST_KEY="+encryptionKey,
		"SLACK_BOT_TOKEN="+o.BotToken, "SLACK_APP_TOKEN="+o.AppToken)
}

// kill ends the process with SIGKILL, as kill -9 does.
func (p *proc) kill() {
	p.w.t.Helper()
	if err := p.cmd.Process.Kill(); err != nil {
		p.w.t.Fatalf("kill: %v", err)
	}
	<-p.done
	p.w.logs.note(p.run, "killed with SIGKILL")
}

// stop sends SIGTERM and checks that the bridge drains and exits 0.
func (p *proc) stop() {
	p.w.t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		p.w.t.Fatalf("SIGTERM: %v", err)
	}
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		p.w.t.Fatalf("bridge run %d still running 30s after SIGTERM", p.run)
	}
	if p.err != nil {
		p.w.t.Errorf("bridge run %d after SIGTERM: %v (want exit 0)", p.run, p.err)
	}
}

// readiness is the answer of /readyz.
type readiness struct {
	Status int
	Ready  bool              `json:"ready"`
	Checks map[string]string `json:"checks"`
}

func (p *proc) readyz(ctx context.Context) (readiness, error) {
	var r readiness
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.addr+"/readyz", nil)
	if err != nil {
		return r, err
	}
	resp, err := p.w.hc.Do(req)
	if err != nil {
		return r, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return r, err
	}
	r.Status = resp.StatusCode
	if err := json.Unmarshal(body, &r); err != nil {
		return r, fmt.Errorf("/readyz body %q: %w", body, err)
	}
	return r, nil
}

// waitReady polls /readyz until ok reports true of its answer, and returns
// that answer, or the last one and an error when ctx ends first or the
// bridge exits.
func (p *proc) waitReady(ctx context.Context, ok func(readiness) bool) (readiness, error) {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var last readiness
	var lastErr error
	for {
		r, err := p.readyz(ctx)
		switch {
		case err != nil:
			if ctx.Err() == nil {
				lastErr = err
			}
		case ok(r):
			return r, nil
		default:
			last, lastErr = r, nil
		}
		select {
		case <-ctx.Done():
			if lastErr != nil {
				return last, fmt.Errorf("%w (last request: %v)", ctx.Err(), lastErr)
			}
			return last, ctx.Err()
		case <-p.done:
			return last, fmt.Errorf("the bridge exited: %v", p.err)
		case <-tick.C:
		}
	}
}

// mustBeReady waits until /readyz answers 200.
func (p *proc) mustBeReady(ctx context.Context) {
	p.w.t.Helper()
	if _, err := p.waitReady(ctx, isReady); err != nil {
		p.w.t.Fatalf("bridge run %d never ready: %v", p.run, err)
	}
}

func isReady(r readiness) bool { return r.Status == http.StatusOK && r.Ready }

// logSink keeps the bridge's log lines of every run.
type logSink struct {
	mu    sync.Mutex
	lines []logLine
}

type logLine struct {
	run   int
	level string
	msg   string
	raw   string
}

// writer returns the standard error of run: it keeps each line and sends
// the admin listener's address (of /readyz) on addr.
func (s *logSink) writer(run int, addr chan<- string) io.Writer {
	return &lineWriter{line: func(b []byte) {
		var rec struct {
			Level    string `json:"level"`
			Msg      string `json:"msg"`
			Addr     string `json:"addr"`
			Listener string `json:"listener"`
		}
		_ = json.Unmarshal(b, &rec)
		s.mu.Lock()
		s.lines = append(s.lines, logLine{run: run, level: rec.Level, msg: rec.Msg, raw: string(b)})
		s.mu.Unlock()
		if rec.Msg == "http listener started" && rec.Listener == "admin" {
			select {
			case addr <- rec.Addr:
			default:
			}
		}
	}}
}

func (s *logSink) note(run int, what string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lines = append(s.lines, logLine{run: run, level: "TEST", msg: what, raw: what})
}

// find returns the lines containing every one of the substrings.
func (s *logSink) find(subs ...string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, l := range s.lines {
		if !slices.ContainsFunc(subs, func(sub string) bool { return !strings.Contains(l.raw, sub) }) {
			out = append(out, fmt.Sprintf("run %d: %s", l.run, l.raw))
		}
	}
	return out
}

// anyOf returns the lines containing one of the substrings.
func (s *logSink) anyOf(subs ...string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, l := range s.lines {
		if slices.ContainsFunc(subs, func(sub string) bool { return strings.Contains(l.raw, sub) }) {
			out = append(out, fmt.Sprintf("run %d: %s", l.run, l.raw))
		}
	}
	return out
}

// summary returns the warnings and errors, each distinct message once with
// a count and its first line, the test's notes, and the first lines that
// are not log records (a panic's trace).
func (s *logSink) summary() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	type entry struct {
		first string
		n     int
	}
	var order []string
	seen := map[string]*entry{}
	raw := 0
	for _, l := range s.lines {
		if l.level == "" && raw < 200 {
			raw++
			l.level, l.msg = "RAW", fmt.Sprint(raw)
		}
		if l.level != "WARN" && l.level != "ERROR" && l.level != "TEST" && l.level != "RAW" {
			continue
		}
		k := l.level + " " + l.msg
		if l.level == "TEST" {
			k = fmt.Sprintf("%s %d %s", l.level, l.run, l.msg)
		}
		if e, ok := seen[k]; ok {
			e.n++
			continue
		}
		seen[k] = &entry{first: fmt.Sprintf("run %d: %s", l.run, l.raw), n: 1}
		order = append(order, k)
	}
	var b strings.Builder
	for _, k := range order {
		fmt.Fprintf(&b, "%5d× %s\n", seen[k].n, seen[k].first)
	}
	return b.String()
}

// lineWriter calls line with each complete line written to it.
type lineWriter struct {
	buf  []byte
	line func([]byte)
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		w.line(w.buf[:i])
		w.buf = w.buf[i+1:]
	}
}

// echoBot answers every text with the same text and records, for each
// message, how often it reached the bot and in which conversation.
type echoBot struct {
	mu    sync.Mutex
	calls map[string]int
	convs map[string]map[chat.ConversationID]bool // by room
}

func newEchoBot() *echoBot {
	return &echoBot{calls: map[string]int{}, convs: map[string]map[chat.ConversationID]bool{}}
}

func (b *echoBot) HandleMessage(ctx context.Context, r chattest.Replier, m chat.Message) {
	t, ok := m.Payload.(chat.Text)
	if !ok {
		return
	}
	b.mu.Lock()
	b.calls[label(t.Text)]++
	room := roomOf(t.Text)
	if b.convs[room] == nil {
		b.convs[room] = map[chat.ConversationID]bool{}
	}
	b.convs[room][m.ConversationID] = true
	b.mu.Unlock()
	_, _ = r.Reply(ctx, t)
}

// conversations returns the Botpress conversations the room's messages
// reached.
func (b *echoBot) conversations(room string) []chat.ConversationID {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []chat.ConversationID
	for id := range b.convs[room] {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

func (b *echoBot) callsOf(l string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.calls[l]
}

// Messages are "<channel> <seq>" with optional padding after; label is the
// first two words, roomOf the first.
func text(ch string, seq int, pad int) string {
	s := fmt.Sprintf("%s %04d", ch, seq)
	if pad > 0 {
		s += " " + strings.Repeat("x", pad)
	}
	return s
}

func label(text string) string {
	f := strings.Fields(text)
	if len(f) < 2 {
		return text
	}
	return f[0] + " " + f[1]
}

func roomOf(text string) string {
	room, _, _ := strings.Cut(text, " ")
	return room
}

// ackWatch follows the fake's Socket Mode traffic and tells which messages
// the bridge acknowledged, whichever envelope (first delivery or retry)
// carried them. It reads the fake's state incrementally from inside
// WaitFor, which runs it after every change.
type ackWatch struct {
	mu      sync.Mutex
	nEnv    int
	nAck    int
	envMsg  map[string]string // envelope id → message key
	early   map[string]bool   // acks read before their envelope was recorded
	sent    map[string]int    // message key → envelopes that carried it
	acked   map[string]bool
	waiters map[string]chan struct{}
}

func watchAcks(t *testing.T, fake *slacktest.Server) *ackWatch {
	a := &ackWatch{envMsg: map[string]string{}, early: map[string]bool{}, sent: map[string]int{},
		acked: map[string]bool{}, waiters: map[string]chan struct{}{}}
	ctx, cancel := context.WithCancel(context.WithoutCancel(t.Context()))
	done := make(chan struct{})
	go func() {
		defer close(done)
		fake.WaitFor(ctx, a.scan)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return a
}

func msgKey(channel, ts string) string { return channel + "/" + ts }

func (a *ackWatch) scan(st *slacktest.State) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	for ; a.nEnv < len(st.Envelopes); a.nEnv++ {
		env := st.Envelopes[a.nEnv]
		var cb struct {
			Event struct {
				Channel string `json:"channel"`
				TS      string `json:"ts"`
			} `json:"event"`
		}
		if env.Type != slacktest.EventsAPI || json.Unmarshal(env.Payload, &cb) != nil || cb.Event.TS == "" {
			continue
		}
		k := msgKey(cb.Event.Channel, cb.Event.TS)
		a.envMsg[env.EnvelopeID] = k
		a.sent[k]++
		if a.early[env.EnvelopeID] {
			delete(a.early, env.EnvelopeID)
			a.ack(k)
		}
	}
	for ; a.nAck < len(st.Acks); a.nAck++ {
		id := st.Acks[a.nAck].EnvelopeID
		if k, ok := a.envMsg[id]; ok {
			a.ack(k)
		} else {
			a.early[id] = true
		}
	}
	return false
}

// ack records the first acknowledgement of a message; a.mu must be held.
func (a *ackWatch) ack(k string) {
	if a.acked[k] {
		return
	}
	a.acked[k] = true
	if ch := a.waiters[k]; ch != nil {
		close(ch)
		delete(a.waiters, k)
	}
}

// wait returns a channel closed once the message is acknowledged.
func (a *ackWatch) wait(k string) <-chan struct{} {
	a.mu.Lock()
	defer a.mu.Unlock()
	ch := make(chan struct{})
	if a.acked[k] {
		close(ch)
		return ch
	}
	if old := a.waiters[k]; old != nil {
		return old
	}
	a.waiters[k] = ch
	return ch
}

func (a *ackWatch) isAcked(k string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.acked[k]
}

// refused returns the messages that were delivered more than once and are
// not acknowledged: the bridge did not take them.
func (a *ackWatch) refused() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []string
	for k, n := range a.sent {
		if n > 1 && !a.acked[k] {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// traffic is people talking in channels: each person sends a message,
// waits until the bridge acknowledges it (so that the order in which the
// bridge took the messages is the order they were said), waits pace, and
// sends the next.
type traffic struct {
	w    *world
	pad  int
	pace time.Duration

	mu   sync.Mutex
	sent map[string][]string // channel → texts, in order
	// pending is what each channel waits on to be acknowledged.
	pending map[string]string
	// gate holds the talk while a test holds it (hold, release).
	gate sync.RWMutex

	quit chan struct{}
	wg   sync.WaitGroup
	errs chan error
}

func (w *world) newTraffic(pace time.Duration, pad int) *traffic {
	return &traffic{w: w, pace: pace, pad: pad, sent: map[string][]string{},
		pending: map[string]string{}, quit: make(chan struct{}), errs: make(chan error, 100)}
}

// start makes people talk in the channels until stop.
func (tr *traffic) start(ctx context.Context, channels ...string) {
	for _, ch := range channels {
		tr.wg.Go(func() { tr.talk(ctx, ch) })
	}
}

func (tr *traffic) talk(ctx context.Context, ch string) {
	pace := time.NewTicker(tr.pace)
	defer pace.Stop()
	for seq := 1; ; seq++ {
		select {
		case <-tr.quit:
			return
		default:
		}
		tr.gate.RLock()
		err := tr.say(ctx, ch, seq)
		tr.gate.RUnlock()
		if err != nil {
			tr.errs <- err
			return
		}
		select {
		case <-tr.quit:
			return
		case <-ctx.Done():
			return
		case <-pace.C:
		}
	}
}

// hold pauses the talk once every message said is acknowledged; release
// lets it go on.
func (tr *traffic) hold()    { tr.gate.Lock() }
func (tr *traffic) release() { tr.gate.Unlock() }

// once makes the person of each channel say one message, each in its own
// goroutine; stop waits for them too.
func (tr *traffic) once(ctx context.Context, channels ...string) {
	for _, ch := range channels {
		tr.wg.Go(func() {
			if err := tr.say(ctx, ch, 1); err != nil {
				tr.errs <- err
			}
		})
	}
}

// say sends one message and waits for its acknowledgement.
func (tr *traffic) say(ctx context.Context, ch string, seq int) error {
	txt := text(ch, seq, tr.pad)
	m := tr.w.fake.AddMessage(slacktest.Message{Channel: ch, User: userOf(ch), Text: txt})
	k := msgKey(ch, m.TS)
	tr.mu.Lock()
	tr.sent[ch] = append(tr.sent[ch], txt)
	tr.pending[ch] = label(txt)
	tr.mu.Unlock()
	acked := tr.w.acks.wait(k)
	if _, err := tr.w.fake.SendEvent(ctx, slacktest.EventsAPI, tr.w.fake.MessageEvent(m)); err != nil {
		return fmt.Errorf("send %s: %w", label(txt), err)
	}
	select {
	case <-acked:
	case <-ctx.Done():
		return fmt.Errorf("%s never acknowledged: %w", label(txt), ctx.Err())
	}
	tr.mu.Lock()
	delete(tr.pending, ch)
	tr.mu.Unlock()
	return nil
}

// stop ends the talk once each channel's last message is acknowledged,
// failing the test when one is not within a minute.
func (tr *traffic) stop(ctx context.Context) {
	tr.w.t.Helper()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	close(tr.quit)
	done := make(chan struct{})
	go func() {
		tr.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		tr.mu.Lock()
		defer tr.mu.Unlock()
		tr.w.t.Fatalf("messages never acknowledged by the bridge: %v", tr.pending)
	}
	close(tr.errs)
	failed := false
	for err := range tr.errs {
		tr.w.t.Error(err)
		failed = true
	}
	if failed {
		tr.w.t.FailNow()
	}
}

// total returns how many messages were sent.
func (tr *traffic) total() int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	n := 0
	for _, s := range tr.sent {
		n += len(s)
	}
	return n
}

// waitAnswered waits until the bot has posted, in every channel, at least
// as many messages as people sent there; it fails the test when that takes
// more than two minutes (the bridge's longest retry wait is one).
func (w *world) waitAnswered(ctx context.Context, sent map[string][]string) {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	botID := w.fake.Options().BotID
	var short []string
	err := w.fake.WaitFor(ctx, func(st *slacktest.State) bool {
		short = short[:0]
		for ch, texts := range sent {
			n := 0
			for _, m := range st.Messages[ch] {
				if m.BotID == botID {
					n++
				}
			}
			if n < len(texts) {
				short = append(short, fmt.Sprintf("%s: %d of %d", ch, n, len(texts)))
			}
		}
		return len(short) == 0
	})
	if err != nil {
		slices.Sort(short)
		w.t.Fatalf("not every message was answered in Slack: %v (%v)", short, err)
	}
}

// verify checks that each message people sent reached the bot exactly once
// and in order, in one Botpress conversation per room, and that each answer
// was posted exactly once and in order in its Slack channel.
func (w *world) verify(sent map[string][]string) {
	w.t.Helper()
	st := w.fake.Snapshot()
	botID := w.fake.Options().BotID
	chans := make([]string, 0, len(sent))
	for ch := range sent {
		chans = append(chans, ch)
	}
	slices.Sort(chans)
	for _, ch := range chans {
		want := labels(sent[ch])
		var posted []string
		for _, m := range st.Messages[ch] {
			if m.BotID == botID && !m.Deleted {
				posted = append(posted, label(m.Text))
			}
		}
		if d := seqDiff(posted, want); d != "" {
			w.t.Errorf("Slack channel %s: the bot's posts are not each message once, in order: %s", ch, d)
			w.describeDoubles(st, ch, posted)
		}
		convs := w.bot.conversations(ch)
		if len(convs) != 1 {
			w.t.Errorf("room %s: messages reached the bot in %d Botpress conversations %v, want 1", ch, len(convs), convs)
		}
		var multi []string
		for _, l := range want {
			if n := w.bot.callsOf(l); n > 1 {
				multi = append(multi, fmt.Sprintf("%s×%d", l, n))
			}
		}
		if len(multi) > 0 {
			w.t.Errorf("room %s: the bot was asked more than once: %v", ch, multi)
		}
		for _, conv := range convs {
			var people, bot []string
			for _, m := range w.em.Messages(conv) {
				t, _ := m.Payload.(chat.Text)
				if m.UserID == w.em.BotUserID() {
					bot = append(bot, label(t.Text))
				} else {
					people = append(people, label(t.Text))
				}
			}
			if d := seqDiff(people, want); d != "" {
				w.t.Errorf("Botpress conversation %s of %s: the people's messages are not each once, in order: %s", conv, ch, d)
			}
			if d := seqDiff(bot, want); d != "" {
				w.t.Errorf("Botpress conversation %s of %s: the bot's answers are not each once, in order: %s", conv, ch, d)
			}
		}
	}
}

// describeDoubles logs the posts of the labels posted more than once, with
// their timestamps and metadata, to tell which run posted them.
func (w *world) describeDoubles(st *slacktest.State, ch string, posted []string) {
	n := map[string]int{}
	for _, l := range posted {
		n[l]++
	}
	ids := map[string]bool{}
	for _, m := range st.Messages[ch] {
		if m.BotID == w.fake.Options().BotID && n[label(m.Text)] > 1 {
			w.t.Logf("posted %q at ts %s, metadata %s", label(m.Text), m.TS, m.Metadata)
			var meta struct {
				Payload struct {
					ID string `json:"id"`
				} `json:"event_payload"`
			}
			if json.Unmarshal(m.Metadata, &meta) == nil && meta.Payload.ID != "" {
				ids[meta.Payload.ID] = true
			}
		}
	}
	// The Web API calls between the first and the last of these posts:
	// what the bridge asked Slack before posting again.
	var first, last string
	for _, m := range st.Messages[ch] {
		if m.BotID == w.fake.Options().BotID && n[label(m.Text)] > 1 {
			if first == "" {
				first = m.TS
			}
			last = m.TS
		}
	}
	var calls []string
	for _, c := range st.Calls {
		at := fmt.Sprintf("%d.%06d", c.Time.Unix(), c.Time.Nanosecond()/1000)
		if at >= first && at <= last && (c.Args.Get("channel") == ch || c.Method == "auth.test" || c.Method == "apps.connections.open") {
			calls = append(calls, fmt.Sprintf("%s %s channel=%s %s", at, c.Method, c.Args.Get("channel"), c.Error))
		}
	}
	w.t.Logf("Web API calls between the posts:\n%s", strings.Join(calls, "\n"))
	for id := range ids {
		w.t.Logf("bridge log of %s and of the restarts:\n%s", id,
			strings.Join(w.logs.anyOf(id, "killed with SIGKILL", "botbridge starting", "connected to Slack"), "\n"))
	}
}

func labels(texts []string) []string {
	out := make([]string, len(texts))
	for i, t := range texts {
		out[i] = label(t)
	}
	return out
}

// seqDiff describes how got differs from want: what is missing, doubled,
// unexpected, or the first place the order differs; "" when equal.
func seqDiff(got, want []string) string {
	if slices.Equal(got, want) {
		return ""
	}
	count := map[string]int{}
	for _, g := range got {
		count[g]++
	}
	wanted := map[string]bool{}
	var missing, doubled, extra []string
	for _, x := range want {
		wanted[x] = true
		switch n := count[x]; {
		case n == 0:
			missing = append(missing, x)
		case n > 1:
			doubled = append(doubled, fmt.Sprintf("%s×%d", x, n))
		}
	}
	for _, g := range got {
		if !wanted[g] {
			extra = append(extra, g)
		}
	}
	var parts []string
	add := func(name string, xs []string) {
		if len(xs) > 0 {
			if len(xs) > 20 {
				xs = append(xs[:20:20], fmt.Sprintf("… %d more", len(xs)-20))
			}
			parts = append(parts, fmt.Sprintf("%s %v", name, xs))
		}
	}
	add("missing", missing)
	add("doubled", doubled)
	add("unexpected", extra)
	if len(parts) == 0 {
		for i := range got {
			if got[i] != want[i] {
				lo, hi := max(0, i-2), min(len(got), i+3)
				parts = append(parts, fmt.Sprintf("out of order at %d: got %v, want %v", i, got[lo:hi], want[lo:min(len(want), hi)]))
				break
			}
		}
	}
	return fmt.Sprintf("%d of %d: %s", len(got), len(want), strings.Join(parts, "; "))
}

// during lets the traffic flow for d; it fails the test when ctx ends
// first.
func during(t *testing.T, ctx context.Context, d time.Duration) {
	t.Helper()
	select {
	case <-time.After(d):
	case <-ctx.Done():
		t.Fatalf("test deadline: %v", ctx.Err())
	}
}
