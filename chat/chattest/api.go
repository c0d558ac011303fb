package chattest

import (
	_ "embed"
	"net/http"
	"net/url"
	"strings"

	"github.com/botbridge/botbridge/chat"
	"github.com/golang-jwt/jwt/v5"
)

//go:embed openapi.json
var openAPIDoc []byte

const helloText = "Hello, Botpress User 🤖"

// route is one operation. In path, "*" matches any one segment, which is
// passed to the handler. Routes with a static segment come before the
// parameterised routes of the same shape.
type route struct {
	method string
	path   []string
	auth   bool
	handle func(*call) (any, *apiError)
}

// call is one API request being served.
type call struct {
	s      *Server
	w      http.ResponseWriter
	r      *http.Request
	params []string
	body   body
}

func (s *Server) routeTable() []route {
	r := func(method, path string, auth bool, h func(*call) (any, *apiError)) route {
		return route{method, strings.Split(path, "/"), auth, h}
	}
	return []route{
		r(http.MethodGet, "hello", false, (*call).hello),
		r(http.MethodGet, "openapi.json", false, (*call).openAPI),
		r(http.MethodPost, "users", false, (*call).createUser),
		r(http.MethodPost, "users/get-or-create", true, (*call).getOrCreateUser),
		r(http.MethodGet, "users/me", true, (*call).getUser),
		r(http.MethodPut, "users/me", true, (*call).updateUser),
		r(http.MethodDelete, "users/me", true, (*call).deleteUser),
		r(http.MethodPost, "conversations", true, (*call).createConversation),
		r(http.MethodGet, "conversations", true, (*call).listConversations),
		r(http.MethodPost, "conversations/get-or-create", true, (*call).getOrCreateConversation),
		r(http.MethodGet, "conversations/*", true, (*call).getConversation),
		r(http.MethodDelete, "conversations/*", true, (*call).deleteConversation),
		r(http.MethodGet, "conversations/*/listen", true, (*call).listenConversation),
		r(http.MethodGet, "conversations/*/messages", true, (*call).listMessages),
		r(http.MethodPost, "conversations/*/participants", true, (*call).addParticipant),
		r(http.MethodGet, "conversations/*/participants", true, (*call).listParticipants),
		r(http.MethodGet, "conversations/*/participants/*", true, (*call).getParticipant),
		r(http.MethodDelete, "conversations/*/participants/*", true, (*call).removeParticipant),
		r(http.MethodPost, "messages", true, (*call).createMessage),
		r(http.MethodGet, "messages/*", true, (*call).getMessage),
		r(http.MethodDelete, "messages/*", true, (*call).deleteMessage),
		r(http.MethodPost, "events", true, (*call).createEvent),
		r(http.MethodGet, "events/*", true, (*call).getEvent),
	}
}

// match finds the route of a request. A path that matches some route but not
// with this method is "Method doesn't exist"; both are 404 on the service.
func (s *Server) match(method string, segs []string) (route, []string, *apiError) {
	pathKnown := false
	for _, rt := range s.routes {
		if len(rt.path) != len(segs) {
			continue
		}
		var params []string
		ok := true
		for i, p := range rt.path {
			if p == "*" {
				params = append(params, segs[i])
			} else if p != segs[i] {
				ok = false
				break
			}
		}
		if !ok {
			continue
		}
		if rt.method == method {
			return rt, params, nil
		}
		pathKnown = true
	}
	if pathKnown {
		return route{}, nil, &apiError{http.StatusNotFound, "", msgMethodNotFound}
	}
	return route{}, nil, &apiError{http.StatusNotFound, "", msgRouteNotFound}
}

// splitPath splits the escaped path on "/", drops empty segments (so trailing
// and doubled slashes never matter) and decodes each segment, so that ids
// holding an escaped "/" stay one segment.
func splitPath(u *url.URL) ([]string, bool) {
	var segs []string
	for seg := range strings.SplitSeq(u.EscapedPath(), "/") {
		if seg == "" {
			continue
		}
		d, err := url.PathUnescape(seg)
		if err != nil {
			return nil, false
		}
		segs = append(segs, d)
	}
	return segs, true
}

// ServeHTTP serves the API under /{WebhookID}/.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.active.Add(1)
	defer s.requestDone()
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", "*")
	if r.Method == http.MethodOptions {
		h.Set("Access-Control-Allow-Methods", "GET, POST, PUT, DELETE, OPTIONS")
		h.Set("Access-Control-Allow-Headers", "content-type, x-user-key, accept, cache-control")
		w.WriteHeader(http.StatusOK)
		return
	}
	segs, ok := splitPath(r.URL)
	if !ok || len(segs) == 0 || segs[0] != s.webhookID {
		s.writeError(w, &apiError{http.StatusNotFound, "", msgRouteNotFound})
		return
	}
	s.requests.Add(1)
	f, fail, latency := s.injectedFailure()
	if !s.wait(r, latency) {
		s.writeFailure(w, failure{status: http.StatusServiceUnavailable})
		return
	}
	if fail {
		s.writeFailure(w, f)
		return
	}
	rt, params, e := s.match(r.Method, segs[1:])
	if e != nil {
		s.writeError(w, e)
		return
	}
	b, e := readBody(w, r)
	if e != nil {
		s.writeError(w, e)
		return
	}
	if _, ok := r.Header["X-User-Key"]; rt.auth && !ok {
		s.writeError(w, errValidation(msgMissingUserKey))
		return
	}
	v, e := rt.handle(&call{s: s, w: w, r: r, params: params, body: b})
	switch {
	case e != nil:
		s.log.Debug("request refused", logMethod, r.Method, logPath, r.URL.Path, logStatus, e.status, logMessage, e.msg)
		s.writeError(w, e)
	case v != nil:
		writeJSON(w, http.StatusOK, v)
	}
}

// requestDone ends a request; the last one lets a pending Close go on.
func (s *Server) requestDone() {
	if s.active.Add(-1) == 0 && s.closing.Load() {
		select {
		case s.idle <- struct{}{}:
		default:
		}
	}
}

// keyID verifies the x-user-key header and returns the user id it names.
func (c *call) keyID() (chat.UserID, *apiError) {
	tok, err := c.s.parser.Parse(c.r.Header.Get("X-User-Key"), func(*jwt.Token) (any, error) { return c.s.secret, nil })
	if err != nil || !tok.Valid {
		return "", errUnauthorized(msgInvalidKey)
	}
	claims, ok := tok.Claims.(jwt.MapClaims)
	if !ok {
		return "", errUnauthorized(msgInvalidKey)
	}
	id, ok := claims["id"].(string)
	if !ok || id == "" {
		return "", errUnauthorized(msgInvalidKey)
	}
	return chat.UserID(id), nil
}

// me authenticates the caller and locks the state; the caller must call
// c.s.mu.Unlock when err is nil. The bot's own user cannot be used as a
// caller.
func (c *call) me() (*user, *apiError) {
	id, e := c.keyID()
	if e != nil {
		return nil, e
	}
	c.s.mu.Lock()
	u := c.s.st.users[id]
	if u == nil || id == c.s.st.botUser {
		c.s.mu.Unlock()
		if u != nil {
			return nil, errUnauthorized(msgInvalidKey)
		}
		return nil, errNotFound("User %s not found", id)
	}
	return u, nil
}

func (s *Server) sign(id chat.UserID) (chat.UserKey, error) {
	k, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"id": string(id), "iat": s.now().Unix()}).SignedString(s.secret)
	return chat.UserKey(k), err
}

// Sign returns a user key for id signed with the emulator's secret (the
// encryption key in manual mode), as createUser or an integrator would.
func (s *Server) Sign(id chat.UserID) (chat.UserKey, error) { return s.sign(id) }

func (c *call) hello() (any, *apiError) {
	c.w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	c.w.WriteHeader(http.StatusOK)
	_, _ = c.w.Write([]byte(helloText))
	return nil, nil
}

func (c *call) openAPI() (any, *apiError) {
	c.w.Header().Set("Content-Type", "application/json")
	c.w.WriteHeader(http.StatusOK)
	_, _ = c.w.Write(openAPIDoc)
	return nil, nil
}

type empty struct{}

type listMeta struct {
	NextToken string `json:"nextToken,omitempty"`
}
