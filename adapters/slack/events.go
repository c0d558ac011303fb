package slack

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/botbridge/botbridge/bridge"
)

// Limits of the Events API handler.
const (
	// maxEventBytes caps a request body; Slack's events, even with a
	// message's blocks, are far smaller.
	maxEventBytes = 1 << 20
	// maxClockSkew is how far a request's timestamp may be from the clock,
	// as Slack advises, against replays.
	maxClockSkew = 5 * time.Minute
)

// EventsHandler returns the handler of the Events API request URL (and the
// interactivity request URL, which may be the same): it checks Slack's
// signature in constant time over the raw body and refuses timestamps more
// than 5 minutes off, answers url_verification, and hands events and clicks
// to the bridge, answering 200 once they are stored and 500 when they could
// not be (Slack then delivers them again). It answers 503 until Run knows
// who the bot is.
func (a *Adapter) EventsHandler() http.Handler {
	return http.HandlerFunc(a.serveEvents)
}

func (a *Adapter) serveEvents(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxEventBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			http.Error(w, "request too large", http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "cannot read the request", http.StatusBadRequest)
		return
	}
	if err := a.verify(r.Header, body); err != nil {
		a.logs.warn(a.log, "signature", "Events API request refused", bridge.LogErr, err, logRemote, r.RemoteAddr)
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch ct {
	case "application/json":
		a.serveEvent(w, r, body)
	case "application/x-www-form-urlencoded":
		a.serveInteraction(w, r, body)
	default:
		http.Error(w, "unsupported content type", http.StatusUnsupportedMediaType)
	}
}

func (a *Adapter) serveEvent(w http.ResponseWriter, r *http.Request, body []byte) {
	var cb eventCallback
	if err := json.Unmarshal(body, &cb); err != nil {
		http.Error(w, "malformed event", http.StatusBadRequest)
		return
	}
	if cb.Type == "url_verification" {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, cb.Challenge)
		return
	}
	h := a.running()
	if h == nil {
		http.Error(w, errNotRunning.Error(), http.StatusServiceUnavailable)
		return
	}
	if err := a.handleEvent(r.Context(), h, body); err != nil {
		a.logs.warn(a.log, "handle", "event not stored; Slack will deliver it again", bridge.LogErr, err,
			logAttempt, r.Header.Get("X-Slack-Retry-Num"))
		http.Error(w, "not stored; try again", http.StatusInternalServerError)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// serveInteraction handles a form body: block actions arrive as payload=…;
// other forms (slash commands) are acknowledged and ignored.
func (a *Adapter) serveInteraction(w http.ResponseWriter, r *http.Request, body []byte) {
	form, err := url.ParseQuery(string(body))
	if err != nil {
		http.Error(w, "malformed form", http.StatusBadRequest)
		return
	}
	payload := form.Get("payload")
	if payload == "" {
		w.WriteHeader(http.StatusOK)
		return
	}
	h := a.running()
	if h == nil {
		http.Error(w, errNotRunning.Error(), http.StatusServiceUnavailable)
		return
	}
	after, err := a.handleInteraction(r.Context(), h, json.RawMessage(payload))
	if err != nil {
		a.logs.warn(a.log, "handle", "click not stored", bridge.LogErr, err)
		http.Error(w, "not stored; try again", http.StatusInternalServerError)
		return
	}
	w.WriteHeader(http.StatusOK)
	if after != nil {
		a.goBackground(after)
	}
}

// running returns the handler once Run knows who the bot is.
func (a *Adapter) running() bridge.Handler {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.self.userID == "" || a.bg.Err() != nil {
		return nil
	}
	return a.handler
}

var (
	errNoSignature   = errors.New("missing X-Slack-Signature or X-Slack-Request-Timestamp")
	errStale         = errors.New("request timestamp is more than 5 minutes off")
	errBadSignature  = errors.New("bad signature")
	errBadTimestamp  = errors.New("bad X-Slack-Request-Timestamp")
	signatureVersion = "v0"
)

// verify checks a request's signature: v0=hex(HMAC-SHA256(signing secret,
// "v0:" + timestamp + ":" + body)), with a timestamp near the clock.
func (a *Adapter) verify(h http.Header, body []byte) error {
	tsHeader, sig := h.Get("X-Slack-Request-Timestamp"), h.Get("X-Slack-Signature")
	if tsHeader == "" || sig == "" {
		return errNoSignature
	}
	ts, err := strconv.ParseInt(tsHeader, 10, 64)
	if err != nil {
		return errBadTimestamp
	}
	if d := a.now().Sub(time.Unix(ts, 0)); d > maxClockSkew || d < -maxClockSkew {
		return errStale
	}
	mac := hmac.New(sha256.New, []byte(a.cfg.SigningSecret))
	mac.Write([]byte(signatureVersion + ":" + tsHeader + ":"))
	mac.Write(body)
	want := signatureVersion + "=" + hex.EncodeToString(mac.Sum(nil))
	if !hmac.Equal([]byte(want), []byte(sig)) {
		return errBadSignature
	}
	return nil
}
