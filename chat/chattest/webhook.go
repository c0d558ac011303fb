package chattest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/botbridge/botbridge/chat"
)

// Webhook delivery, as the Chat integration does it with a Webhook URL (spec
// §10): every signal of every conversation is POSTed to the URL, once, fire
// and forget. Signals are queued when they are published (under the state
// lock, so in the order of the changes) and sent by a small pool of workers
// started on demand. A conversation's signals go one at a time, in order: the
// next POST of a conversation starts when the previous one was answered,
// failed or timed out. Different conversations go in parallel, at most
// WebhookConcurrency at once, taking turns. A receiver that is slow or dead
// therefore costs at most WebhookConcurrency goroutines and WebhookQueue
// queued signals; beyond that, signals are discarded (and counted), as the
// real service would lose them.

// Defaults of the webhook Options.
const (
	DefaultWebhookTimeout     = 10 * time.Second
	DefaultWebhookConcurrency = 32
	DefaultWebhookQueue       = 100_000
)

// maxWebhookAnswer is how much of a receiver's answer is read, so that the
// connection can be reused; the rest is dropped with the connection.
const maxWebhookAnswer = 64 << 10

// WebhookStats counts the webhooks of a Server since it started.
type WebhookStats struct {
	// Delivered counts POSTs answered with a 2xx status.
	Delivered int
	// Failed counts POSTs that got another status, an error or no answer
	// within WebhookTimeout. They are not retried.
	Failed int
	// Dropped counts signals the fault switches (WebhookDropRate,
	// DropWebhooks, DropWebhooksUntil) kept from being sent.
	Dropped int
	// Discarded counts signals thrown away because WebhookQueue signals
	// were already waiting for a slow receiver.
	Discarded int
	// Pending is the number of signals queued or being sent now.
	Pending int
}

// webhookTarget is where webhooks go; queued signals keep the target they
// were published under.
type webhookTarget struct {
	url    string // with the trailing slash
	secret string
}

type webhookItem struct {
	body   []byte // the signal's JSON, shared with the stream frames' source
	target *webhookTarget
}

// webhookConv is a conversation with signals waiting or being sent. It is in
// the ready list exactly when it has signals waiting and none in flight.
type webhookConv struct {
	pending []webhookItem
	busy    bool
}

type webhooks struct {
	client  *http.Client
	timeout time.Duration
	workers int // the most that run at once
	limit   int // the most signals queued

	mu        sync.Mutex
	target    *webhookTarget // nil: no webhooks
	dropRate  float64
	dropN     int
	dropUntil time.Time
	convs     map[chat.ConversationID]*webhookConv
	ready     []chat.ConversationID
	running   int
	stats     WebhookStats
	failing   string // the last failure logged, until a POST succeeds
}

// webhookURL checks a webhook URL and appends the trailing slash, as the
// integration's HTTP library (axios) does; "" stays "".
func webhookURL(raw string) (string, error) {
	if raw == "" {
		return "", nil
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("webhook url %q: want an absolute http or https URL", raw)
	}
	if !strings.HasSuffix(u.Path, "/") {
		u.Path += "/"
		if u.RawPath != "" {
			u.RawPath += "/"
		}
	}
	return u.String(), nil
}

func (w *webhooks) init(opts Options) error {
	w.timeout = opts.WebhookTimeout
	if w.timeout <= 0 {
		w.timeout = DefaultWebhookTimeout
	}
	w.workers = opts.WebhookConcurrency
	if w.workers <= 0 {
		w.workers = DefaultWebhookConcurrency
	}
	w.limit = opts.WebhookQueue
	if w.limit <= 0 {
		w.limit = DefaultWebhookQueue
	}
	w.convs = make(map[chat.ConversationID]*webhookConv)
	d := &net.Dialer{Timeout: w.timeout}
	w.client = &http.Client{
		Transport: &http.Transport{
			Proxy:               http.ProxyFromEnvironment,
			DialContext:         d.DialContext,
			MaxIdleConnsPerHost: w.workers,
			IdleConnTimeout:     90 * time.Second,
		},
		// The answer is ignored, redirects included.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	if err := w.setTarget(opts.WebhookURL, opts.WebhookSecret); err != nil {
		return err
	}
	return w.setDropRate(opts.WebhookDropRate)
}

func (w *webhooks) setTarget(rawURL, secret string) error {
	u, err := webhookURL(rawURL)
	if err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if u == "" {
		w.target = nil
	} else {
		w.target = &webhookTarget{url: u, secret: secret}
	}
	return nil
}

func (w *webhooks) setDropRate(f float64) error {
	if !(f >= 0 && f <= 1) {
		return fmt.Errorf("webhook drop rate %v: want a fraction from 0 to 1", f)
	}
	w.mu.Lock()
	w.dropRate = f
	w.mu.Unlock()
	return nil
}

// enqueueWebhook queues a signal of conv for the webhook, if there is one,
// and starts a worker when one is free. The caller holds the Server's state
// lock, which keeps a conversation's signals in publication order, and has
// checked that the Server is not closed.
func (s *Server) enqueueWebhook(conv chat.ConversationID, body []byte) {
	w := &s.webhooks
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case w.target == nil:
		return
	case w.dropN > 0:
		w.dropN--
		w.stats.Dropped++
		return
	case !w.dropUntil.IsZero() && s.now().Before(w.dropUntil),
		w.dropRate > 0 && rand.Float64() < w.dropRate:
		w.stats.Dropped++
		return
	case w.stats.Pending >= w.limit:
		if w.stats.Discarded == 0 || w.stats.Discarded%1000 == 0 {
			s.log.Warn("webhook discarded: the receiver is too slow", logConversation, conv, logQueued, w.stats.Pending, logDiscarded, w.stats.Discarded+1)
		}
		w.stats.Discarded++
		return
	}
	c := w.convs[conv]
	if c == nil {
		c = &webhookConv{}
		w.convs[conv] = c
		w.ready = append(w.ready, conv)
	}
	c.pending = append(c.pending, webhookItem{body: body, target: w.target})
	w.stats.Pending++
	if w.running < w.workers && len(w.ready) > 0 {
		w.running++
		s.wg.Add(1)
		go s.webhookWorker()
	}
}

// webhookWorker sends the next signal of the conversation at the head of the
// ready list, puts the conversation back at the tail if it has more, and
// exits when no conversation is ready.
func (s *Server) webhookWorker() {
	defer s.wg.Done()
	w := &s.webhooks
	for {
		w.mu.Lock()
		if len(w.ready) == 0 || s.ctx.Err() != nil {
			w.running--
			w.mu.Unlock()
			return
		}
		conv := w.ready[0]
		w.ready[0] = ""
		w.ready = w.ready[1:]
		if len(w.ready) == 0 {
			w.ready = w.ready[:0:0] // let the array go
		}
		c := w.convs[conv]
		it := c.pending[0]
		c.pending[0] = webhookItem{}
		c.pending = c.pending[1:]
		c.busy = true
		w.mu.Unlock()

		err := s.postWebhook(conv, it)

		w.mu.Lock()
		w.stats.Pending--
		c.busy = false
		if len(c.pending) > 0 {
			w.ready = append(w.ready, conv)
		} else {
			delete(w.convs, conv)
		}
		switch {
		case err == nil:
			w.stats.Delivered++
			if w.failing != "" {
				w.failing = ""
				s.log.Info("webhook delivered again")
			}
		case s.ctx.Err() != nil:
			// Closing: not the receiver's fault.
		default:
			w.stats.Failed++
			// One line per kind of failure; each failure at debug level.
			if msg := err.Error(); msg != w.failing {
				w.failing = msg
				s.log.Warn("webhook failed, not retried", logConversation, conv, logErr, err)
			} else {
				s.log.Debug("webhook failed, not retried", logConversation, conv, logErr, err)
			}
		}
		w.mu.Unlock()
	}
}

// postWebhook sends one signal and reads a little of the answer.
func (s *Server) postWebhook(conv chat.ConversationID, it webhookItem) error {
	w := &s.webhooks
	ctx, cancel := context.WithTimeout(s.ctx, w.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, it.target.url, bytes.NewReader(it.body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if it.target.secret != "" {
		req.Header.Set("x-secret-key", it.target.secret)
	}
	resp, err := w.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL may hold a token
		}
		return fmt.Errorf("post webhook: %w", err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxWebhookAnswer))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("post webhook: status %d", resp.StatusCode)
	}
	return nil
}

// SetWebhook points webhook delivery at rawURL (a trailing slash is appended
// when missing, as the service does) with secret sent as x-secret-key when
// not empty; an empty rawURL stops webhooks. Signals already queued still go
// where they were going. It fails for a URL that is not absolute http(s).
func (s *Server) SetWebhook(rawURL, secret string) error {
	if err := s.webhooks.setTarget(rawURL, secret); err != nil {
		return fmt.Errorf("chattest: %w", err)
	}
	return nil
}

// SetWebhookDropRate makes each webhook from now on be dropped (never sent)
// with probability f, a fraction from 0 to 1, as Options.WebhookDropRate.
func (s *Server) SetWebhookDropRate(f float64) error {
	if err := s.webhooks.setDropRate(f); err != nil {
		return fmt.Errorf("chattest: %w", err)
	}
	return nil
}

// DropWebhooks drops the next n webhooks (signals published from now on);
// n <= 0 cancels what is left of an earlier call. It takes precedence over
// the other switches.
func (s *Server) DropWebhooks(n int) {
	s.webhooks.mu.Lock()
	s.webhooks.dropN = max(n, 0)
	s.webhooks.mu.Unlock()
}

// DropWebhooksUntil drops every webhook published before Now() reaches
// until; a zero until stops it.
func (s *Server) DropWebhooksUntil(until time.Time) {
	s.webhooks.mu.Lock()
	s.webhooks.dropUntil = until
	s.webhooks.mu.Unlock()
}

// WebhookStats returns the webhook counters.
func (s *Server) WebhookStats() WebhookStats {
	s.webhooks.mu.Lock()
	defer s.webhooks.mu.Unlock()
	return s.webhooks.stats
}
