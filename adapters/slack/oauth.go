package slack

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"strings"
	"time"

	slackapi "github.com/slack-go/slack"

	"github.com/botbridge/botbridge/bridge"
)

// The OAuth v2 install flow. InstallHandler sends a person to Slack's
// authorize page with a state: an expiry and a random nonce, signed with a
// key derived from TokenKey, also set as a cookie of the callback's path.
// CallbackHandler accepts the code only with a valid, unexpired state that
// matches the cookie (so that the install was started in the same browser,
// against login CSRF), exchanges it for a bot token (oauth.v2.access),
// asks Slack who the bot is there (auth.test), seals the token with
// AES-256-GCM under another key derived from TokenKey (the workspace's id
// as additional data, so that a sealed token cannot be moved to another
// workspace's row) and stores the workspace in Installs. Token rotation
// must be off: rotating tokens expire after 12 hours and the adapter does
// not refresh them.

// DefaultScopes returns the bot scopes an install asks for: those of the
// app manifest in the README.
func DefaultScopes() []string {
	return []string{
		"app_mentions:read", "assistant:write", "channels:history", "channels:read", "chat:write",
		"chat:write.customize", "commands", "files:read", "files:write", "groups:history", "groups:read",
		"im:history", "im:read", "mpim:history", "mpim:read", "reactions:read", "reactions:write", "users:read",
	}
}

// stateCookie carries the OAuth state from InstallHandler to
// CallbackHandler.
const stateCookie = "botbridge_slack_oauth"

// exchangeTimeout bounds the calls of one callback.
const exchangeTimeout = 30 * time.Second

// initOAuth checks the OAuth configuration and derives the keys.
func (a *Adapter) initOAuth() error {
	c := &a.cfg
	switch {
	case c.ClientSecret == "":
		return errors.New("slack: the OAuth client secret is missing")
	case len(c.TokenKey) < 32:
		return errors.New("slack: the token key must have at least 32 characters")
	case c.RedirectURL == "":
		return errors.New("slack: the OAuth redirect URL is missing")
	case c.Installs == nil:
		return errors.New("slack: several workspaces need a store for their tokens")
	}
	if _, err := url.Parse(c.RedirectURL); err != nil {
		return fmt.Errorf("slack: redirect URL: %w", err)
	}
	sealKey, err := hkdf.Key(sha256.New, []byte(c.TokenKey), nil, "botbridge slack tokens", 32)
	if err != nil {
		return fmt.Errorf("slack: token key: %w", err)
	}
	block, err := aes.NewCipher(sealKey)
	if err != nil {
		return fmt.Errorf("slack: token key: %w", err)
	}
	if a.seal, err = cipher.NewGCM(block); err != nil {
		return fmt.Errorf("slack: token key: %w", err)
	}
	if a.stateKey, err = hkdf.Key(sha256.New, []byte(c.TokenKey), nil, "botbridge slack oauth state", 32); err != nil {
		return fmt.Errorf("slack: token key: %w", err)
	}
	if c.AuthorizeURL == "" {
		u, err := url.Parse(c.APIURL)
		if err != nil {
			return fmt.Errorf("slack: api url: %w", err)
		}
		u.Path = strings.TrimSuffix(strings.TrimSuffix(u.Path, "/"), "/api") + "/oauth/v2/authorize"
		c.AuthorizeURL = u.String()
	}
	if len(c.Scopes) == 0 {
		c.Scopes = DefaultScopes()
	}
	return nil
}

// sealToken encrypts a workspace's token for the store.
func (a *Adapter) sealToken(id, token string) []byte {
	nonce := make([]byte, a.seal.NonceSize())
	rand.Read(nonce)
	return a.seal.Seal(nonce, nonce, []byte(token), []byte("slack:"+id))
}

// unsealToken decrypts what sealToken made for the workspace id.
func (a *Adapter) unsealToken(id string, sealed []byte) (string, error) {
	n := a.seal.NonceSize()
	if len(sealed) < n {
		return "", errors.New("slack: sealed token too short")
	}
	plain, err := a.seal.Open(nil, sealed[:n], sealed[n:], []byte("slack:"+id))
	if err != nil {
		return "", errors.New("slack: the token does not unseal with slack.token_key (was the key changed?)")
	}
	return string(plain), nil
}

// newState returns a signed state that expires after InstallTTL.
func (a *Adapter) newState() string {
	var b [24]byte
	binary.BigEndian.PutUint64(b[:8], uint64(a.now().Add(a.cfg.InstallTTL).Unix()))
	rand.Read(b[8:])
	body := base64.RawURLEncoding.EncodeToString(b[:])
	return body + "." + base64.RawURLEncoding.EncodeToString(a.stateMAC(body))
}

func (a *Adapter) stateMAC(body string) []byte {
	mac := hmac.New(sha256.New, a.stateKey)
	mac.Write([]byte(body))
	return mac.Sum(nil)
}

// Reasons a state is refused.
var (
	errStateMissing = errors.New("no state, or no install cookie: the install was not started from this browser")
	errStateForged  = errors.New("the state does not match the install cookie, or was not signed by this bridge")
	errStateExpired = errors.New("the install link expired")
)

// checkState checks a state of the callback against the install cookie.
func (a *Adapter) checkState(state string, cookie *http.Cookie) error {
	if state == "" || cookie == nil {
		return errStateMissing
	}
	if !hmac.Equal([]byte(state), []byte(cookie.Value)) {
		return errStateForged
	}
	body, sig, ok := strings.Cut(state, ".")
	mac, err := base64.RawURLEncoding.DecodeString(sig)
	if !ok || err != nil || !hmac.Equal(mac, a.stateMAC(body)) {
		return errStateForged
	}
	raw, err := base64.RawURLEncoding.DecodeString(body)
	if err != nil || len(raw) != 24 {
		return errStateForged
	}
	if a.now().Unix() > int64(binary.BigEndian.Uint64(raw[:8])) {
		return errStateExpired
	}
	return nil
}

// InstallHandler returns the handler of the install link (GET
// /slack/install): it sends the person to Slack's authorize page, asking
// for Scopes, with a signed state that is also set as a cookie. It answers
// 404 when several workspaces are not configured.
func (a *Adapter) InstallHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a.seal == nil {
			http.NotFound(w, r)
			return
		}
		state := a.newState()
		http.SetCookie(w, a.cookie(state, int(a.cfg.InstallTTL/time.Second)))
		q := url.Values{
			"client_id":    {a.cfg.ClientID},
			"scope":        {strings.Join(a.cfg.Scopes, ",")},
			"redirect_uri": {a.cfg.RedirectURL},
			"state":        {state},
		}
		w.Header().Set("Cache-Control", "no-store")
		http.Redirect(w, r, a.cfg.AuthorizeURL+"?"+q.Encode(), http.StatusFound)
	})
}

// cookie returns the install cookie holding state, for the callback's path
// only; maxAge < 0 deletes it.
func (a *Adapter) cookie(state string, maxAge int) *http.Cookie {
	path := "/"
	secure := false
	if u, err := url.Parse(a.cfg.RedirectURL); err == nil {
		path = nonEmpty(u.Path, "/")
		secure = u.Scheme == "https"
	}
	return &http.Cookie{Name: stateCookie, Value: state, Path: path, MaxAge: maxAge, HttpOnly: true, Secure: secure,
		SameSite: http.SameSiteLaxMode}
}

// CallbackHandler returns the handler of the OAuth redirect URL (GET
// /slack/oauth/callback): it checks the state, exchanges the code for the
// workspace's bot token, stores the workspace and serves it at once. It
// answers 400 for a bad or expired state (start again at the install
// link), 502 when Slack refuses the code or the token, 500 when the store
// fails, and 503 before Run started.
func (a *Adapter) CallbackHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a.seal == nil {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		q := r.URL.Query()
		if e := q.Get("error"); e != "" {
			page(w, http.StatusOK, "Nothing was installed", "Slack says: "+e+".")
			return
		}
		cookie, _ := r.Cookie(stateCookie)
		if err := a.checkState(q.Get("state"), cookie); err != nil {
			a.logs.Warn(a.log, "oauth-state", "install callback refused", bridge.LogErr, err, logRemote, r.RemoteAddr)
			page(w, http.StatusBadRequest, "Install link not valid", err.Error()+"; start the install again.")
			return
		}
		// The state cookie stays until the install goes ahead, so that the
		// same callback can be tried again while botbridge starts.
		if !a.started() {
			page(w, http.StatusServiceUnavailable, "Not ready", "botbridge is starting; try again in a minute.")
			return
		}
		http.SetCookie(w, a.cookie("", -1))
		ctx, cancel := context.WithTimeout(r.Context(), exchangeTimeout)
		defer cancel()
		ws, status, err := a.install(ctx, q.Get("code"))
		if err != nil {
			a.log.Error("install in a workspace failed", bridge.LogErr, err)
			page(w, status, "Install failed", err.Error())
			return
		}
		page(w, http.StatusOK, "Installed", "botbridge is installed in "+nonEmpty(ws.name, ws.id)+
			". Invite the bot to channels (/invite), or send it a direct message.")
	})
}

// install exchanges an OAuth code for a workspace and stores it. It returns
// the HTTP status of a failure.
func (a *Adapter) install(ctx context.Context, code string) (*workspace, int, error) {
	if code == "" {
		return nil, http.StatusBadRequest, errors.New("no code")
	}
	resp, err := slackapi.GetOAuthV2ResponseContext(ctx, a.cfg.HTTPClient, a.cfg.ClientID, a.cfg.ClientSecret, code,
		a.cfg.RedirectURL, slackapi.OAuthOptionAPIURL(a.cfg.APIURL))
	if err != nil {
		return nil, http.StatusBadGateway, fmt.Errorf("slack: oauth.v2.access: %w (check slack.client_id and slack.client_secret)", err)
	}
	switch {
	case resp.TokenType != "bot" || !strings.HasPrefix(resp.AccessToken, "xoxb-"):
		return nil, http.StatusBadGateway, errors.New("slack: oauth.v2.access gave no bot token: the app needs a bot user")
	case resp.RefreshToken != "" || resp.ExpiresIn > 0:
		return nil, http.StatusBadGateway, errors.New("slack: the app has token rotation on; botbridge does not refresh tokens: turn it off (OAuth & Permissions)")
	}
	id := resp.Team.ID
	name := resp.Team.Name
	if resp.IsEnterpriseInstall {
		id, name = resp.Enterprise.ID, resp.Enterprise.Name
	}
	if id == "" {
		return nil, http.StatusBadGateway, errors.New("slack: oauth.v2.access named no team")
	}
	ws := a.newWorkspace(id, resp.AccessToken)
	self, err := a.authTest(ctx, ws)
	if err != nil {
		return nil, http.StatusBadGateway, err
	}
	var scopes []string
	for sc := range strings.SplitSeq(resp.Scope, ",") {
		if sc = strings.TrimSpace(sc); sc != "" {
			scopes = append(scopes, sc)
		}
	}
	w := bridge.Workspace{Platform: Platform, ID: id, TeamID: resp.Team.ID, EnterpriseID: resp.Enterprise.ID,
		OrgWide: resp.IsEnterpriseInstall, Name: name, BotUserID: nonEmpty(self.userID, resp.BotUserID), BotID: self.botID,
		Scopes: scopes, SealedToken: a.sealToken(id, resp.AccessToken), InstalledAt: a.now()}
	if err := a.cfg.Installs.PutWorkspace(ctx, w); err != nil {
		return nil, http.StatusInternalServerError, fmt.Errorf("slack: store the workspace: %w", err)
	}
	if err := a.addWorkspace(w); err != nil {
		return nil, http.StatusInternalServerError, err
	}
	a.log.Info("the app was installed in a workspace", logTeam, id, "name", name, "org_wide", w.OrgWide, logBotUser, w.BotUserID)
	ws.name = name
	return ws, 0, nil
}

// page answers with a small HTML page.
func page(w http.ResponseWriter, status int, title, text string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	fmt.Fprintf(w, "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>%s</title></head><body><h1>%s</h1><p>%s</p></body></html>\n",
		html.EscapeString(title), html.EscapeString(title), html.EscapeString(text))
}
