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

	slackapi "github.com/slack-go/slack"

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
		a.logs.Warn(a.log, "signature", "Events API request refused", bridge.LogErr, err, logRemote, r.RemoteAddr)
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
	e := decodeEnvelope(body)
	if e.err != nil {
		http.Error(w, "malformed event", http.StatusBadRequest)
		return
	}
	if e.cb.Type == "url_verification" {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, e.cb.Challenge)
		return
	}
	h := a.running()
	if h == nil {
		http.Error(w, errNotRunning.Error(), http.StatusServiceUnavailable)
		return
	}
	after, err := a.handleEvent(r.Context(), h, e)
	if err != nil {
		a.logs.Warn(a.log, "handle", "event not stored; Slack will deliver it again", bridge.LogErr, err,
			logAttempt, r.Header.Get("X-Slack-Retry-Num"))
		http.Error(w, "not stored; try again", http.StatusInternalServerError)
		return
	}
	w.WriteHeader(http.StatusOK)
	if after != nil {
		a.goBackground(after)
	}
}

// serveInteraction handles a form body: block actions arrive as payload=…,
// slash commands as command=…; other forms are acknowledged and ignored.
func (a *Adapter) serveInteraction(w http.ResponseWriter, r *http.Request, body []byte) {
	form, err := url.ParseQuery(string(body))
	if err != nil {
		http.Error(w, "malformed form", http.StatusBadRequest)
		return
	}
	payload := form.Get("payload")
	if payload == "" && form.Get("command") == "" {
		w.WriteHeader(http.StatusOK)
		return
	}
	h := a.running()
	if payload == "" {
		a.serveCommand(w, r, h, form)
		return
	}
	if h == nil {
		http.Error(w, errNotRunning.Error(), http.StatusServiceUnavailable)
		return
	}
	after, err := a.handleInteraction(r.Context(), h, json.RawMessage(payload))
	if err != nil {
		a.logs.Warn(a.log, "handle", "click not stored", bridge.LogErr, err)
		http.Error(w, "not stored; try again", http.StatusInternalServerError)
		return
	}
	w.WriteHeader(http.StatusOK)
	if after != nil {
		a.goBackground(after)
	}
}

// serveCommand answers a slash command within Slack's 3 seconds: 200 with
// no body once it is stored, or with a line for the person when it was not
// (Slack does not deliver a command again; h is nil before Run started).
func (a *Adapter) serveCommand(w http.ResponseWriter, r *http.Request, h bridge.Handler, form url.Values) {
	c := slackapi.SlashCommand{
		TeamID: form.Get("team_id"), TeamDomain: form.Get("team_domain"), EnterpriseID: form.Get("enterprise_id"),
		IsEnterpriseInstall: form.Get("is_enterprise_install") == "true", ChannelID: form.Get("channel_id"),
		ChannelName: form.Get("channel_name"), UserID: form.Get("user_id"), UserName: form.Get("user_name"),
		Command: form.Get("command"), Text: form.Get("text"), ResponseURL: form.Get("response_url"),
		TriggerID: form.Get("trigger_id"), APIAppID: form.Get("api_app_id"),
	}
	answer := &commandAnswer{ResponseType: "ephemeral", Text: "botbridge is starting; try again in a moment."}
	if h != nil {
		answer = a.handleCommand(r.Context(), h, c)
	}
	if answer == nil {
		w.WriteHeader(http.StatusOK)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(answer)
}

// running returns the handler once Run knows who the bot is.
func (a *Adapter) running() bridge.Handler {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.bg.Err() != nil {
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
