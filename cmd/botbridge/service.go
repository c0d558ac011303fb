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
	"sync"
	"time"

	"github.com/botbridge/botbridge/bridge"
	"github.com/botbridge/botbridge/bridge/media"
	"github.com/botbridge/botbridge/chat"
)

// Service is the whole botbridge process: store, Chat API clients, adapters,
// engine and HTTP listener, built from a Config. Its parts are exported so
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
	// the HTTP listener; builders of adapters add them.
	routes map[string]http.Handler

	httpLn  net.Listener
	httpSrv *http.Server
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
		spec := bridge.BotSpec{Name: bc.Name, API: client}
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
		Store:          s.Store,
		Bots:           bots,
		Router:         s.Router,
		Adapters:       s.Adapters,
		Files:          linker,
		Metrics:        s.Metrics,
		Logger:         s.Log,
		Workers:        cfg.Bridge.Workers,
		ListenerIdle:   cfg.Bridge.ListenerIdle,
		StreamThrottle: cfg.Bridge.StreamThrottle,
		TypingTimeout:  cfg.Bridge.TypingTimeout,
		Retention:      cfg.Bridge.Retention,
		DrainTimeout:   cfg.Bridge.DrainTimeout,
	})
	if err != nil {
		return err
	}
	if len(s.routes) > 0 && cfg.HTTP.Addr == "" {
		return errors.New("http.addr: must be set: the Slack Events API needs the HTTP listener")
	}
	if cfg.HTTP.Addr != "" {
		ln, err := net.Listen("tcp", cfg.HTTP.Addr)
		if err != nil {
			return fmt.Errorf("http.addr: %w", err)
		}
		s.httpLn = ln
		s.httpSrv = &http.Server{Handler: s.handler(files), ReadHeaderTimeout: 10 * time.Second}
	}
	return nil
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

// HTTPAddr returns the address the HTTP listener is bound to, or "".
func (s *Service) HTTPAddr() string {
	if s.httpLn == nil {
		return ""
	}
	return s.httpLn.Addr().String()
}

func (s *Service) handler(files *media.Links) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.Handle("GET /metrics", s.Metrics.Handler())
	if files != nil {
		mux.Handle(media.FilesPath, files)
	}
	for pattern, h := range s.routes {
		mux.Handle(pattern, h)
	}
	return mux
}

// readyz answers 200 when the store can be read and written, every adapter
// is connected and every bot's Chat API answers, else 503; the JSON body
// says which part is not ready and why.
func (s *Service) readyz(w http.ResponseWriter, r *http.Request) {
	checks, ready := s.ready.check(r.Context(), s)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if !ready {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	json.NewEncoder(w).Encode(map[string]any{"ready": ready, "checks": checks})
}

// readiness runs the checks of /readyz, reusing the bots' answers for a few
// seconds so that frequent probes do not become Chat API traffic.
type readiness struct {
	mu       sync.Mutex
	botsAt   time.Time
	botState map[string]string
}

// botCheckTTL is how long a bot's reachability is reused.
const botCheckTTL = 15 * time.Second

func (rd *readiness) check(ctx context.Context, s *Service) (map[string]string, bool) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	checks := map[string]string{}
	ready := true
	fail := func(name string, err error) {
		checks[name] = err.Error()
		ready = false
	}
	if err := s.Store.Ping(ctx); err != nil {
		fail("store", err)
	} else {
		checks["store"] = "ok"
	}
	for _, a := range s.Adapters {
		name := "adapter." + string(a.Platform())
		checks[name] = "ok"
		if c, ok := a.(bridge.Checker); ok {
			if err := c.Ready(); err != nil {
				fail(name, err)
			}
		}
	}
	rd.mu.Lock()
	defer rd.mu.Unlock()
	if rd.botState == nil || time.Since(rd.botsAt) > botCheckTTL {
		rd.botState = map[string]string{}
		for name, c := range s.bots {
			if err := c.Hello(ctx); err != nil {
				rd.botState[name] = fmt.Sprintf("the Chat API does not answer: %v", err)
			} else {
				rd.botState[name] = "ok"
			}
		}
		rd.botsAt = time.Now()
	}
	for name, state := range rd.botState {
		checks["bot."+name] = state
		if state != "ok" {
			ready = false
		}
	}
	return checks, ready
}

// Run runs the engine and the HTTP listener until ctx ends, then drains and
// returns nil; it returns an error when a part fails for good.
func (s *Service) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	httpErr := make(chan error, 1)
	if s.httpSrv != nil {
		wg.Go(func() {
			if err := s.httpSrv.Serve(s.httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				httpErr <- fmt.Errorf("http: %w", err)
			}
		})
		s.Log.Info("http listener started", "addr", s.HTTPAddr())
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
	if s.httpSrv != nil {
		shutdown, done := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		s.httpSrv.Shutdown(shutdown)
		done()
	}
	wg.Wait()
	return err
}

// Close closes the store (and the HTTP listener if Run never ran).
func (s *Service) Close() error {
	if s.httpLn != nil {
		s.httpLn.Close()
	}
	return s.Store.Close()
}
