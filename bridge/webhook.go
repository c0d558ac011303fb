package bridge

import (
	"crypto/subtle"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/botbridge/botbridge/chat"
)

// WebhookPath is where the bridge takes the Chat integration's webhooks:
// WebhookPath + <bot name>, the URL to paste into the integration's Webhook
// URL with the bot's webhook secret.
const WebhookPath = "/botpress/"

// maxWebhookBytes bounds the body of a webhook: a signal carries one
// message, of at most 128 KB on the platform, and the Chat API takes 1 MB.
const maxWebhookBytes = 2 << 20

// hooks is the receiver's webhook side: the service POSTs every signal of
// every conversation of a bot to the bridge, once, without retry. A bot's
// webhooks are healthy while the messages the bridge sends come back as
// webhooks (the service sends the bridge's own messages too); when one does
// not within echoTimeout, they are down: the receiver opens streams and
// lists conversations again until webhooks arrive again.
type hooks struct {
	secrets map[string][]byte // by bot; bots without a webhook are absent
	timeout time.Duration

	mu     sync.Mutex
	expect map[chat.MessageID]echo
	early  map[chat.MessageID]time.Time // echoes that came before sent, kept until
	down   map[string]time.Time         // bots whose webhooks stopped, since when
}

// echo is a message the bridge sent that should come back as a webhook.
type echo struct {
	bot string
	by  time.Time
}

func (h *hooks) init(bots []BotSpec, timeout time.Duration) {
	h.secrets = make(map[string][]byte)
	for _, b := range bots {
		if b.WebhookSecret != "" {
			h.secrets[b.Name] = []byte(b.WebhookSecret)
		}
	}
	h.timeout = timeout
	h.expect = make(map[chat.MessageID]echo)
	h.early = make(map[chat.MessageID]time.Time)
	h.down = make(map[string]time.Time)
}

// healthy reports whether bot's messages come by webhook.
func (h *hooks) healthy(bot string) bool {
	if _, ok := h.secrets[bot]; !ok {
		return false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	_, down := h.down[bot]
	return !down
}

// sent records a message the bridge sent, whose webhook should come back.
// The webhook may come before the sender hears the service's answer: then
// it is expected no longer.
func (h *hooks) sent(bot string, msg chat.MessageID, now time.Time) {
	if _, ok := h.secrets[bot]; !ok || msg == "" {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, came := h.early[msg]; came {
		delete(h.early, msg)
		return
	}
	h.expect[msg] = echo{bot: bot, by: now.Add(h.timeout)}
}

// arrived records a webhook of bot carrying msg, a message of the bot
// (own false) or of a user, such as one the bridge sent (own true); it
// reports whether the bot's webhooks were down until now.
func (h *hooks) arrived(bot string, msg chat.MessageID, own bool, now time.Time) (back bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, expected := h.expect[msg]; expected {
		delete(h.expect, msg)
	} else if own && msg != "" {
		// Perhaps before the sender records it: remember it for as long
		// as an echo is waited for.
		h.early[msg] = now.Add(h.timeout)
	}
	if _, down := h.down[bot]; down {
		delete(h.down, bot)
		return true
	}
	return false
}

// overdue marks down the bots whose messages did not come back in time and
// returns them.
func (h *hooks) overdue(now time.Time) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	for id, until := range h.early {
		if !now.Before(until) {
			delete(h.early, id)
		}
	}
	var out []string
	for id, e := range h.expect {
		if now.Before(e.by) {
			continue
		}
		delete(h.expect, id)
		if _, down := h.down[e.bot]; !down {
			h.down[e.bot] = now
			out = append(out, e.bot)
		}
	}
	return out
}

// ServeHTTP takes a webhook at WebhookPath<bot>: 405 for other methods, 404
// for a bot without a webhook secret, 401 (and nothing done) for a wrong or
// missing x-secret-key, 413 for a body over the limit, 400 for one that is
// not a signal. A bot message of a conversation of the bridge is stored
// before the answer, 200; a failure to store it answers 503 (the service
// does not retry; the sweeps find it). Signals of conversations the bridge
// did not create are ignored with 200.
func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	name, ok := strings.CutPrefix(req.URL.Path, WebhookPath)
	if !ok || name == "" || strings.Contains(strings.TrimSuffix(name, "/"), "/") {
		http.NotFound(w, req)
		return
	}
	name = strings.TrimSuffix(name, "/")
	secret, known := r.hooks.secrets[name]
	if !known {
		http.NotFound(w, req)
		return
	}
	if req.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if subtle.ConstantTimeCompare([]byte(req.Header.Get("x-secret-key")), secret) != 1 {
		r.limiter.Warn(r.log, "webhook-secret-"+name, "webhook refused: its x-secret-key is not bots[].webhook_secret; check the secret in the Chat integration's settings",
			LogBot, name, "remote", req.RemoteAddr)
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, maxWebhookBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "cannot read the body", http.StatusBadRequest)
		return
	}
	s, err := chat.ParseSignal(body)
	if err != nil {
		r.limiter.Warn(r.log, "webhook-body-"+name, "webhook refused: the body is not a Chat API signal", LogBot, name, LogErr, err)
		http.Error(w, "not a signal", http.StatusBadRequest)
		return
	}
	if err := r.webhook(req.Context(), name, s); err != nil {
		r.log.Warn("store a bot message from a webhook; the next sweep of its conversation finds it", LogBot, name, LogErr, err)
		http.Error(w, "not stored; try again", http.StatusServiceUnavailable)
		return
	}
	w.WriteHeader(http.StatusOK)
}
