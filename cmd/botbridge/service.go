package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"regexp"
	"sync"
	"time"

	"golang.org/x/net/netutil"

	"github.com/botbridge/botbridge/bridge"
	"github.com/botbridge/botbridge/bridge/media"
	"github.com/botbridge/botbridge/chat"
)

// Service is the whole botbridge process: store, Chat API clients, adapters,
// engine and HTTP listeners, built from a Config. Its parts are exported so
// that end-to-end tests can run it on a temporary directory and :0 ports.
type Service struct {
	Config   Config
	Log      *slog.Logger
	Store    Store
	Engine   *bridge.Engine
	Adapters []bridge.Adapter
	Metrics  *Metrics

	// Router routes messages to bots; the engine and the adapters that
	// check senders before a message exists (Matrix invites) share it.
	Router *bridge.Router

	// bots are the Chat API clients by bot name, for readiness.
	bots  map[string]*chat.Client
	ready readiness

	// routes are HTTP handlers of adapters (the Slack Events API), served on
	// the public listener; builders of adapters add them.
	routes map[string]http.Handler

	// public serves what the outside needs (file links, the platforms'
	// webhooks) on http.addr; admin serves health and metrics on
	// http.admin_addr. Either is nil when its address is empty.
	public, admin *listener
}

// listener is one of the service's HTTP listeners.
type listener struct {
	name string // public or admin, for the log
	ln   net.Listener
	srv  *http.Server
}

// NewService opens the store and builds every part from cfg. extra adapters
// (the console, tests' own) run beside the ones cfg enables. The caller must
// Close the service.
func NewService(ctx context.Context, cfg Config, log *slog.Logger, extra ...bridge.Adapter) (*Service, error) {
	s := &Service{Config: cfg, Log: log, routes: map[string]http.Handler{}, bots: map[string]*chat.Client{}}
	st, err := OpenStore(ctx, cfg.Store)
	if err != nil {
		return nil, err
	}
	s.Store = st
	s.Metrics = NewMetrics(st.Stats)
	if err := s.build(ctx, extra); err != nil {
		st.Close()
		return nil, err
	}
	return s, nil
}

func (s *Service) build(ctx context.Context, extra []bridge.Adapter) error {
	cfg := s.Config
	var bots []bridge.BotSpec
	for _, bc := range cfg.Bots {
		base, err := bc.BaseURL()
		if err != nil {
			return fmt.Errorf("bot %s: %w", bc.Name, err)
		}
		client, err := chat.NewClient(base, chat.WithLogger(s.Log.With(bridge.LogBot, bc.Name)),
			chat.WithObserver(s.Metrics.ChatObserver(bc.Name)))
		if err != nil {
			return fmt.Errorf("bot %s: %w", bc.Name, err)
		}
		s.bots[bc.Name] = client
		spec := bridge.BotSpec{Name: bc.Name, API: client, WebhookSecret: bc.WebhookSecret, Notify: bridge.Notify(bc.Events)}
		if bc.EncryptionKey != "" {
			if spec.Signer, err = chat.NewSigner(bc.EncryptionKey); err != nil {
				return fmt.Errorf("bot %s: %w", bc.Name, err)
			}
		}
		bots = append(bots, spec)
	}
	var err error
	if s.Router, err = bridge.NewRouter(cfg.BridgeRoutes(), cfg.botNames()); err != nil {
		return err
	}
	adapters, err := s.platformAdapters(ctx)
	if err != nil {
		return err
	}
	s.Adapters = append(adapters, extra...)
	if len(s.Adapters) == 0 {
		return errors.New("no platform is enabled: configure slack or matrix (see config.example.yaml)")
	}

	// linker stays a nil interface without a public URL: a nil *media.Links
	// in it would not be nil to the engine.
	var (
		files  *media.Links
		linker bridge.FileLinker
	)
	if cfg.HTTP.PublicURL != "" {
		secret, err := s.fileSecret(ctx)
		if err != nil {
			return err
		}
		openers := map[bridge.Platform]bridge.FileOpener{}
		for _, a := range s.Adapters {
			if o, ok := a.(bridge.FileOpener); ok {
				openers[a.Platform()] = o
			}
		}
		files, err = media.NewLinks(media.LinksConfig{BaseURL: cfg.HTTP.PublicURL, Secret: secret, Openers: openers,
			Logger: s.Log.With(bridge.LogComponent, "files")})
		if err != nil {
			return err
		}
		linker = files
	}
	s.Engine, err = bridge.New(bridge.Config{
		Store:           s.Store,
		Bots:            bots,
		Router:          s.Router,
		Adapters:        s.Adapters,
		Files:           linker,
		Metrics:         s.Metrics,
		Logger:          s.Log,
		Workers:         cfg.Bridge.Workers,
		ListenerIdle:    cfg.Bridge.ListenerIdle,
		WatchWindow:     cfg.Bridge.WatchWindow,
		MaxStreams:      cfg.Bridge.MaxStreams,
		SweepBudget:     cfg.Bridge.SweepBudget,
		SweepInterval:   cfg.Bridge.SweepInterval,
		WebhookTimeout:  cfg.Bridge.WebhookTimeout,
		StreamThrottle:  cfg.Bridge.StreamThrottle,
		TypingTimeout:   cfg.Bridge.TypingTimeout,
		Retention:       cfg.Bridge.Retention,
		ForgetIdle:      cfg.Bridge.ForgetIdle,
		NoAccessTimeout: cfg.Bridge.NoAccessTimeout,
		OfferTTL:        cfg.Bridge.OfferTTL,
		DrainTimeout:    cfg.Bridge.DrainTimeout,
		Replica:         replicaName(cfg.Store),
		LeaseTTL:        cfg.Bridge.LeaseTTL,
		LeaseRenew:      cfg.Bridge.LeaseRenew,
	})
	if err != nil {
		return err
	}
	for _, b := range cfg.Bots {
		if b.WebhookSecret != "" {
			s.routes[bridge.WebhookPath] = s.Engine.WebhookHandler()
			if cfg.HTTP.Addr == "" {
				return fmt.Errorf("http.addr: must be set: bot %s has a webhook_secret, and its webhooks come to the public HTTP listener", b.Name)
			}
		}
	}
	if len(s.routes) > 0 && cfg.HTTP.Addr == "" {
		return errors.New("http.addr: must be set: the Slack Events API needs the public HTTP listener")
	}
	if cfg.HTTP.Addr != "" {
		ln, err := listen("http.addr", cfg.HTTP.Addr, cfg.HTTP.MaxConnections)
		if err != nil {
			return err
		}
		s.public = &listener{name: "public", ln: ln, srv: s.newHTTPServer(s.publicHandler(files))}
	}
	if cfg.HTTP.AdminAddr != "" {
		ln, err := listen("http.admin_addr", cfg.HTTP.AdminAddr, cfg.HTTP.MaxConnections)
		if err != nil {
			if s.public != nil {
				s.public.ln.Close()
			}
			return err
		}
		s.admin = &listener{name: "admin", ln: ln, srv: s.newHTTPServer(s.adminHandler())}
	}
	return nil
}

// replicaName names this run of the process among the replicas that share
// a PostgreSQL store: the host's name and a random suffix, new at each
// start, so that a restarted replica never takes for its own the leases of
// the run before it (which may only be stalled). A SQLite store is one
// process's: "" lets the engine name it "local", and a restarted process
// takes its leases back at once.
func replicaName(st StoreConfig) string {
	if st.Driver != DriverPostgres {
		return ""
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "botbridge"
	}
	b := make([]byte, 4)
	rand.Read(b)
	return host + "-" + hex.EncodeToString(b)
}

// listen opens a TCP listener at addr, the value of the config key field,
// that holds at most maxConns connections open: past them, new connections
// wait in the kernel's accept queue until one closes.
func listen(field, addr string, maxConns int) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s: %w: give a free host:port", field, err)
	}
	return netutil.LimitListener(ln, maxConns), nil
}

// newHTTPServer returns a server of h with the limits of the http section:
// a request must arrive within ReadTimeout, its answer leave within
// WriteTimeout (file links have FileTimeout), an idle connection closes
// after IdleTimeout, and headers are capped.
func (s *Service) newHTTPServer(h http.Handler) *http.Server {
	c := s.Config.HTTP
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: c.ReadHeaderTimeout,
		ReadTimeout:       c.ReadTimeout,
		WriteTimeout:      c.WriteTimeout,
		IdleTimeout:       c.IdleTimeout,
		MaxHeaderBytes:    c.MaxHeaderKB << 10,
		ErrorLog:          slog.NewLogLogger(s.Log.With(bridge.LogComponent, "http").Handler(), slog.LevelWarn),
	}
}

// streaming gives h, whose answer streams (a file link), d from now to
// answer instead of the server's WriteTimeout, which would cut a large file
// short. ReadTimeout needs no change: a file link is a GET without a body,
// and net/http clears the read deadline once the request has been read.
func streaming(d time.Duration, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.NewResponseController(w).SetWriteDeadline(time.Now().Add(d))
		h.ServeHTTP(w, r)
	})
}

// platformAdapters builds the adapters the configuration enables.
func (s *Service) platformAdapters(ctx context.Context) ([]bridge.Adapter, error) {
	var out []bridge.Adapter
	for _, build := range []func(context.Context) (bridge.Adapter, error){s.slackAdapter, s.matrixAdapter} {
		a, err := build(ctx)
		if err != nil {
			return nil, err
		}
		if a != nil {
			out = append(out, a)
		}
	}
	return out, nil
}

// fileSecret returns the key that seals file links, made once and kept in
// the store so that links survive restarts (replicas must share it).
func (s *Service) fileSecret(ctx context.Context) ([]byte, error) {
	const name = "files.secret"
	v, err := s.Store.Cursor(ctx, name)
	if err != nil {
		return nil, err
	}
	if v == "" {
		b := make([]byte, 32)
		rand.Read(b)
		v = hex.EncodeToString(b)
		if err := s.Store.SetCursor(ctx, name, v); err != nil {
			return nil, err
		}
	}
	return hex.DecodeString(v)
}

// HTTPAddr returns the address the public listener is bound to, or "".
func (s *Service) HTTPAddr() string { return s.public.addr() }

// AdminAddr returns the address the admin listener is bound to, or "".
func (s *Service) AdminAddr() string { return s.admin.addr() }

func (l *listener) addr() string {
	if l == nil {
		return ""
	}
	return l.ln.Addr().String()
}

// filesHealthPath answers "ok" on the public listener, under the prefix a
// reverse proxy passes for file links, so that check-config -online can
// tell that http.public_url reaches botbridge. A file link's sealed token is
// far longer than "healthz", so no link can take this path.
const filesHealthPath = media.FilesPath + "healthz"

// publicHandler serves what must be reachable from outside: file links and
// the adapters' and bots' webhooks. Never health or metrics: those are the
// admin listener's.
func (s *Service) publicHandler(files *media.Links) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+filesHealthPath, healthz)
	if files != nil {
		mux.Handle(media.FilesPath, streaming(s.Config.HTTP.FileTimeout, files))
	}
	for pattern, h := range s.routes {
		mux.Handle(pattern, h)
	}
	return mux
}

// adminHandler serves health and metrics, for the operator's probes and
// Prometheus.
func (s *Service) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", healthz)
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.Handle("GET /metrics", s.Metrics.Handler())
	return mux
}

// healthz answers 200 "ok" while the process runs.
func healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintln(w, "ok")
}

// readyz answers 200 when the store can be read and written, every adapter
// is connected and every bot's Chat API answers, else 503; the JSON body
// says which part is not ready and what to check, without the addresses
// that errors carry (the log has those).
func (s *Service) readyz(w http.ResponseWriter, r *http.Request) {
	checks, ready := s.ready.check(r.Context(), s)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if !ready {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	json.NewEncoder(w).Encode(map[string]any{"ready": ready, "checks": checks, "leases": leasesBody(s.Engine.Leases())})
}

// leasesBody is what /readyz shows of the replica's leases: its name, the
// replicas alive, and the leases it holds with the time left on each.
func leasesBody(st bridge.LeasesStatus) map[string]any {
	held := make([]string, 0, len(st.Held))
	for _, l := range st.Held {
		held = append(held, fmt.Sprintf("%s (%s left)", l.Name, l.Left.Round(100*time.Millisecond)))
	}
	body := map[string]any{"replica": st.Owner, "replicas": st.Replicas, "held": held}
	if !st.Renewed.IsZero() {
		body["renewed_ago"] = time.Since(st.Renewed).Round(100 * time.Millisecond).String()
	}
	return body
}

// readiness runs the checks of /readyz. It reuses the store's result for
// storeCheckTTL, as the check writes, and the bots' for botCheckTTL, so that
// frequent probes become neither store writes nor Chat API traffic. It logs
// a part's error when its state changes.
type readiness struct {
	mu       sync.Mutex
	storeAt  time.Time
	storeErr error
	botsAt   time.Time
	botErrs  map[string]error
	// logged is the last state logged of each check, "ok" or its error.
	logged map[string]string
}

const (
	// storeCheckTTL is how long the store's check (a write) is reused.
	storeCheckTTL = 2 * time.Second
	// botCheckTTL is how long a bot's reachability is reused.
	botCheckTTL = 15 * time.Second
	// checkTimeout bounds the checks of one probe.
	checkTimeout = 5 * time.Second
)

func (rd *readiness) check(ctx context.Context, s *Service) (map[string]string, bool) {
	// The checks' results are shared with other probes: a probe that hangs
	// up must not cut them short.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), checkTimeout)
	defer cancel()
	rd.mu.Lock()
	defer rd.mu.Unlock()
	log := s.Log.With(bridge.LogComponent, "readyz")
	checks := map[string]string{}
	ready := true
	// set records a check: ok, or the public text of its error, and logs
	// the error itself when the check's state changed.
	set := func(name string, err error, public string, attrs ...any) {
		state := "ok"
		if err != nil {
			state, ready = err.Error(), false
		}
		checks[name] = "ok"
		if err != nil {
			checks[name] = public
		}
		if rd.logged == nil {
			rd.logged = map[string]string{}
		}
		if prev, seen := rd.logged[name]; prev != state && (seen || err != nil) {
			if err != nil {
				log.Warn("not ready: "+name, append(attrs, bridge.LogErr, err)...)
			} else {
				log.Info("ready again: "+name, attrs...)
			}
		}
		rd.logged[name] = state
	}

	if rd.storeAt.IsZero() || time.Since(rd.storeAt) > storeCheckTTL {
		rd.storeErr = s.Store.Ping(ctx)
		rd.storeAt = time.Now()
	}
	set("store", rd.storeErr, redact(rd.storeErr)+": check the disk and store.path; the log has the details")
	// The leases: a replica that cannot renew them for their time to live
	// has stopped its work (the store check says why).
	lst := s.Engine.Leases()
	var leaseErr error
	if lst.Err != nil && time.Since(lst.Renewed) > s.leaseTTL() {
		leaseErr = fmt.Errorf("cannot renew the leases: %w", lst.Err)
	}
	set("leases", leaseErr, "this replica cannot renew its leases and has stopped its work: check the store", "replica", lst.Owner)
	for _, a := range s.Adapters {
		if s.Engine.Standby(a.Platform()) {
			// Another replica runs it (the Matrix sync loop runs in one at
			// a time); this one takes over when that one stops.
			checks["adapter."+string(a.Platform())] = "standby"
			continue
		}
		var err error
		if c, ok := a.(bridge.Checker); ok {
			err = c.Ready()
		}
		set("adapter."+string(a.Platform()), err, redact(err), bridge.LogPlatform, a.Platform())
	}
	if rd.botErrs == nil || time.Since(rd.botsAt) > botCheckTTL {
		rd.botErrs = map[string]error{}
		for name, c := range s.bots {
			rd.botErrs[name] = c.Hello(ctx)
		}
		rd.botsAt = time.Now()
	}
	for i, b := range s.Config.Bots {
		err, ok := rd.botErrs[b.Name]
		if !ok {
			continue
		}
		set("bot."+b.Name, err, botNotReady(fmt.Sprintf("bots[%d]", i), err), bridge.LogBot, b.Name)
	}
	return checks, ready
}

// leaseTTL is the leases' time to live.
func (s *Service) leaseTTL() time.Duration {
	if d := s.Config.Bridge.LeaseTTL; d > 0 {
		return d
	}
	return bridge.DefaultLeaseTTL
}

// botNotReady says why a bot's Chat API check failed and what to check,
// without the URL, which holds the webhook id.
func botNotReady(field string, err error) string {
	if e, ok := errors.AsType[*chat.Error](err); ok {
		return fmt.Sprintf("the Chat API answered %d %s: check %s.url and Botpress; the log has the details", e.Status, http.StatusText(e.Status), field)
	}
	return fmt.Sprintf("the Chat API does not answer (%s): check %s.url and the network; the log has the details", redact(err), field)
}

// Patterns of what /readyz must not show of an error: URLs (they can hold a
// webhook id), IP addresses, host:port, and hosts named in DNS and TLS
// errors.
var (
	redactURL      = regexp.MustCompile(`[A-Za-z][A-Za-z0-9+.-]*://[^\s"'<>]*[^\s"'<>:.,;)]`)
	redactIPv6     = regexp.MustCompile(`\[[0-9A-Fa-f:.%]+\](:\d+)?`)
	redactHostPort = regexp.MustCompile(`\b[A-Za-z0-9][A-Za-z0-9.-]*:\d{1,5}\b`)
	redactIPv4     = regexp.MustCompile(`\b\d{1,3}(\.\d{1,3}){3}\b`)
	redactLookup   = regexp.MustCompile(`\blookup [^\s:]+`)
	redactCert     = regexp.MustCompile(`certificate is valid for [^:]*`)
)

// redact returns err's text without the addresses it names, or "" for nil.
func redact(err error) string {
	if err == nil {
		return ""
	}
	t := err.Error()
	t = redactURL.ReplaceAllString(t, "…")
	t = redactIPv6.ReplaceAllString(t, "…")
	t = redactHostPort.ReplaceAllString(t, "…")
	t = redactIPv4.ReplaceAllString(t, "…")
	t = redactLookup.ReplaceAllString(t, "lookup …")
	t = redactCert.ReplaceAllString(t, "certificate is not valid for this host")
	return t
}

// Run runs the engine and the HTTP listeners until ctx ends, then drains
// and returns nil; it returns an error when a part fails for good.
func (s *Service) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	httpErr := make(chan error, 2)
	for _, l := range s.listeners() {
		wg.Go(func() {
			if err := l.srv.Serve(l.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				httpErr <- fmt.Errorf("http %s listener: %w", l.name, err)
			}
		})
		s.Log.Info("http listener started", "listener", l.name, "addr", l.addr())
	}
	if a := s.AdminAddr(); a != "" && !isLoopback(a) {
		s.Log.Warn("the admin listener (/metrics, /readyz) is not on a loopback address: it has no authentication, keep it off public networks", "addr", a)
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	engineErr := make(chan error, 1)
	wg.Go(func() { engineErr <- s.Engine.Run(runCtx) })
	var err error
	select {
	case err = <-engineErr:
	case err = <-httpErr:
		cancel()
		<-engineErr
	}
	shutdown, done := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	for _, l := range s.listeners() {
		l.srv.Shutdown(shutdown)
	}
	done()
	wg.Wait()
	return err
}

// listeners returns the listeners that are configured.
func (s *Service) listeners() []*listener {
	var out []*listener
	for _, l := range []*listener{s.public, s.admin} {
		if l != nil {
			out = append(out, l)
		}
	}
	return out
}

// isLoopback reports whether the host of addr is a loopback address.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Close closes the store (and the HTTP listeners if Run never ran).
func (s *Service) Close() error {
	for _, l := range s.listeners() {
		l.ln.Close()
	}
	return s.Store.Close()
}
