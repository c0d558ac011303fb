// Package matrixtest runs a real Dendrite homeserver for integration tests.
//
// Start builds Dendrite once per machine (see Binaries), configures it in a
// directory the caller owns, and serves it on a free loopback port with
// federation off and registration closed; users are made through the shared
// secret (Register, Client). The homeserver keeps all its state in that
// directory (SQLite in WAL mode, JetStream on disk), so Restart and Kill
// behave like those of a deployed server. Dendrite's output goes to
// dendrite.log in the directory; LogTail returns its end for failure messages.
package matrixtest

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	mathrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"
	"maunium.net/go/mautrix/synapseadmin"
)

const (
	// startTimeout bounds one start; Dendrite is usually up in about a second.
	startTimeout = 60 * time.Second
	// stopTimeout is how long Stop waits after SIGTERM before SIGKILL.
	stopTimeout = 15 * time.Second
	// logTailLines is how much of the log a start error carries.
	logTailLines = 40
)

// Homeserver is a Dendrite process serving one directory on a loopback port.
// Its methods may be called from several goroutines; Register and Client
// simply fail while a Restart has it down. Two Homeservers must not serve one
// directory at the same time.
type Homeserver struct {
	// URL is the base URL of the client-server API, http://127.0.0.1:PORT.
	// It stays the same across Restart.
	URL string
	// ServerName is the server part of user ids ("localhost").
	ServerName string
	// Dir holds the config (dendrite.yaml), the signing key, the databases,
	// JetStream, media and dendrite.log.
	Dir string

	bin      string
	addr     string
	settings []setting
	http     *http.Client

	secret string // shared registration secret, read from the config

	mu   sync.Mutex // serialises start, Stop, Kill and Restart
	proc *process   // nil when stopped
}

// process is one run of the dendrite binary.
type process struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
	err  error         // cmd.Wait's result, set before done is closed
}

// Option changes how Start configures Dendrite.
type Option func(*Homeserver)

// WithConfig sets a value in dendrite.yaml at a dotted path, for example
// WithConfig("client_api.rate_limiting.enabled", true). It is applied on
// every start, after the harness's own settings, so it can override them.
func WithConfig(path string, value any) Option {
	return func(h *Homeserver) { h.settings = append(h.settings, setting{path, value}) }
}

// Start runs Dendrite on dir and returns once its client API answers. On the
// first start in dir it generates a signing key and a config; later starts
// reuse them, so a new Homeserver can take over the state of a stopped one.
// It blocks while Binaries builds Dendrite on first use. ctx bounds only the
// start: the process runs until Stop or Kill. On failure the error carries
// the end of Dendrite's log.
func Start(ctx context.Context, dir string, opts ...Option) (*Homeserver, error) {
	bin, err := Binaries(ctx)
	if err != nil {
		return nil, err
	}
	if dir, err = filepath.Abs(dir); err != nil {
		return nil, fmt.Errorf("start dendrite: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("start dendrite: %w", err)
	}
	h := &Homeserver{Dir: dir, bin: bin, http: &http.Client{}}
	for _, opt := range opts {
		opt(h)
	}
	for attempt := 1; ; attempt++ {
		addr, err := pickAddr()
		if err != nil {
			return nil, fmt.Errorf("start dendrite: %w", err)
		}
		h.addr, h.URL = addr, "http://"+addr
		cfg, err := h.start(ctx)
		if errors.Is(err, errPortTaken) && attempt < portAttempts {
			continue // another process took the port first: try another
		}
		if err != nil {
			return nil, err
		}
		h.ServerName, h.secret = cfg.serverName, cfg.secret
		return h, nil
	}
}

// startMarker begins the line the log gets at each start.
const startMarker = "--- matrixtest: starting dendrite"

// portAttempts bounds the ports Start tries when Dendrite finds its port
// taken.
const portAttempts = 5

// errPortTaken is a start that failed because another process had bound
// Dendrite's port.
var errPortTaken = errors.New("the port was taken by another process")

// freeLoopbackAddr finds a free loopback port for Dendrite, which binds it a
// moment later: it takes a port number on the command line, not a listener.
// The port is picked at random below the kernel's range of ephemeral ports,
// which it hands out to listeners on port 0 and to the local end of every
// connection: in that range, a connection of any test could take the port
// between this check and Dendrite's bind, or between a Stop and the start
// of a Restart, which keeps the port. Below it only a harness picking
// ports as this one does can, and Start then tries another port.
func freeLoopbackAddr() (string, error) {
	if low := ephemeralLow(); low > minPort+1000 {
		for range 100 {
			l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(minPort+mathrand.IntN(low-minPort))))
			if err != nil {
				continue // in use
			}
			addr := l.Addr().String()
			return addr, l.Close()
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := l.Addr().String()
	return addr, l.Close()
}

// pickAddr is freeLoopbackAddr; a test replaces it to hand Start a port
// taken.
var pickAddr = freeLoopbackAddr

// minPort is the lowest port freeLoopbackAddr picks: above the ports of
// well-known services.
const minPort = 10000

// ephemeralLow returns the first port of the kernel's ephemeral range
// (Linux's default is 32768), or 0 when it cannot be read.
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0
	}
	low, err := strconv.Atoi(f[0])
	if err != nil {
		return 0
	}
	return low
}

// start prepares Dir and runs Dendrite until its client API answers. The
// caller holds h.mu or is Start, before h is shared.
func (h *Homeserver) start(ctx context.Context) (serverConfig, error) {
	cfg, err := prepare(ctx, h.bin, h.Dir, h.settings)
	if err != nil {
		return serverConfig{}, fmt.Errorf("start dendrite: %w", err)
	}

	logf, err := os.OpenFile(filepath.Join(h.Dir, logFile), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return serverConfig{}, fmt.Errorf("start dendrite: %w", err)
	}
	fmt.Fprintf(logf, "%s %s on %s at %s\n", startMarker, DendriteVersion, h.addr, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(filepath.Join(h.bin, "dendrite"),
		"-config", filepath.Join(h.Dir, configFile),
		"-http-bind-address", h.addr,
	)
	cmd.Dir = h.Dir
	// An *os.File is handed to the child as is: no copying goroutines, and
	// output written just before a crash is not lost.
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = sysProcAttr()
	err = cmd.Start()
	logf.Close()
	if err != nil {
		return serverConfig{}, fmt.Errorf("start dendrite: %w", err)
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()

	if err := h.waitUp(ctx, p); err != nil {
		p.cmd.Process.Kill()
		<-p.done
		tail := h.LogTail(logTailLines)
		run := tail // this start's part of the log
		if i := strings.LastIndex(tail, startMarker); i >= 0 {
			run = tail[i:]
		}
		if strings.Contains(run, "bind: address already in use") {
			err = fmt.Errorf("%w: %s: %w", errPortTaken, h.addr, err)
		}
		return serverConfig{}, fmt.Errorf("start dendrite: %w\n--- last lines of %s:\n%s", err, filepath.Join(h.Dir, logFile), tail)
	}
	h.proc = p
	return cfg, nil
}

// waitUp polls /_matrix/client/versions until it answers 200, the process
// exits, or the start deadline passes.
func (h *Homeserver) waitUp(ctx context.Context, p *process) error {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if h.answers(ctx) {
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("dendrite exited during start: %v", p.err)
		case <-ctx.Done():
			return fmt.Errorf("client API not up: %w", ctx.Err())
		case <-tick.C:
		}
	}
}

func (h *Homeserver) answers(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.URL+"/_matrix/client/versions", nil)
	if err != nil {
		return false
	}
	resp, err := h.http.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// exitedEarly reports a process that ended without being asked to.
func exitedEarly(p *process) error {
	select {
	case <-p.done:
		return fmt.Errorf("dendrite had exited by itself: %v", exitStatus(p.err))
	default:
		return nil
	}
}

func exitStatus(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// Stop sends SIGTERM and waits for Dendrite to exit, sending SIGKILL if it has
// not exited after 15s. It returns an error if Dendrite had already exited on
// its own (a crash the test should hear about) or had to be killed. Stopping a
// stopped homeserver does nothing.
//
// Any exit after SIGTERM counts as stopped: Dendrite v0.15.2 sometimes panics
// while shutting down, when a JetStream consumer's database write fails with
// "context canceled". That exit is no worse than Kill: the unacknowledged
// message is redelivered at the next start.
func (h *Homeserver) Stop() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.stop()
}

func (h *Homeserver) stop() error {
	p := h.proc
	if p == nil {
		return nil
	}
	h.proc = nil
	if err := exitedEarly(p); err != nil {
		return fmt.Errorf("stop dendrite: %w", err)
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("stop dendrite: %w", err)
	}
	timer := time.NewTimer(stopTimeout)
	defer timer.Stop()
	select {
	case <-p.done:
		return nil
	case <-timer.C:
		p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("stop dendrite: still running %s after SIGTERM; killed", stopTimeout)
	}
}

// Kill sends SIGKILL and waits for the process to end, as a crash or power
// loss would stop it; Restart then recovers from what is on disk. It returns
// an error if Dendrite had already exited on its own. Killing a stopped
// homeserver does nothing.
func (h *Homeserver) Kill() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	p := h.proc
	if p == nil {
		return nil
	}
	h.proc = nil
	if err := exitedEarly(p); err != nil {
		return fmt.Errorf("kill dendrite: %w", err)
	}
	if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("kill dendrite: %w", err)
	}
	<-p.done
	return nil
}

// Restart stops Dendrite (see Stop; nothing to do after Kill) and starts it
// again on the same directory and port, returning once it answers. Access
// tokens, users, rooms and events survive. Stop's error is returned without
// starting again.
func (h *Homeserver) Restart(ctx context.Context) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.stop(); err != nil {
		return fmt.Errorf("restart: %w", err)
	}
	if _, err := h.start(ctx); err != nil {
		return fmt.Errorf("restart: %w", err)
	}
	return nil
}

// Register creates a user through shared-secret registration
// (/_synapse/admin/v1/register) and returns its id with the access token and
// device of the session Dendrite opens for it (every such session has the
// device id "shared_secret_registration"). Dendrite lowercases localpart.
// It fails if the user exists or the password is shorter than 8 characters.
func (h *Homeserver) Register(ctx context.Context, localpart, password string, admin bool) (userID id.UserID, accessToken string, deviceID id.DeviceID, err error) {
	cli, err := h.newClient()
	if err != nil {
		return "", "", "", fmt.Errorf("register %s: %w", localpart, err)
	}
	resp, err := (&synapseadmin.Client{Client: cli}).SharedSecretRegister(ctx, h.secret, synapseadmin.ReqSharedSecretRegister{
		Username: localpart,
		Password: password,
		Admin:    admin,
	})
	if err != nil {
		return "", "", "", fmt.Errorf("register %s: %w", localpart, err)
	}
	return resp.UserID, resp.AccessToken, resp.DeviceID, nil
}

// Client registers localpart with a random password and returns a mautrix
// client logged in as that user on a new device of its own, as a real client
// would be. The client has mautrix's defaults (in-memory sync store, default
// syncer, no crypto).
func (h *Homeserver) Client(ctx context.Context, localpart string) (*mautrix.Client, error) {
	password := rand.Text()
	if _, _, _, err := h.Register(ctx, localpart, password, false); err != nil {
		return nil, err
	}
	cli, err := h.newClient()
	if err != nil {
		return nil, fmt.Errorf("client %s: %w", localpart, err)
	}
	_, err = cli.Login(ctx, &mautrix.ReqLogin{
		Type:                     mautrix.AuthTypePassword,
		Identifier:               mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: localpart},
		Password:                 password,
		InitialDeviceDisplayName: "matrixtest",
		StoreCredentials:         true,
	})
	if err != nil {
		return nil, fmt.Errorf("client %s: login: %w", localpart, err)
	}
	return cli, nil
}

func (h *Homeserver) newClient() (*mautrix.Client, error) {
	cli, err := mautrix.NewClient(h.URL, "", "")
	if err != nil {
		return nil, err
	}
	// A client of its own rather than mautrix's default with a 180s timeout:
	// callers bound requests with their contexts.
	cli.Client = &http.Client{}
	return cli, nil
}

// LogTail returns the last n lines of dendrite.log, which holds Dendrite's
// output across all its starts in Dir, each start marked by a "--- matrixtest"
// line. It is meant for test failure messages.
func (h *Homeserver) LogTail(n int) string {
	const window = 256 << 10
	f, err := os.Open(filepath.Join(h.Dir, logFile))
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	off := max(fi.Size()-window, 0)
	buf := make([]byte, fi.Size()-off)
	if _, err := f.ReadAt(buf, off); err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(buf), "\n"), "\n")
	if off > 0 && len(lines) > 1 {
		lines = lines[1:] // cut mid-line by the window
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
