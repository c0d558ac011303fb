package slacktest

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// obj is a JSON object of an answer.
type obj = map[string]any

// apiMethod implements one Web API method. It runs with s.mu held and returns
// the fields of an ok answer, or an *apiError.
type apiMethod func(s *Server, r *apiRequest) (obj, error)

// methods are the Web API methods the fake implements.
func methods() map[string]apiMethod {
	out := map[string]apiMethod{
		"auth.test":                    (*Server).authTest,
		"apps.connections.open":        (*Server).appsConnectionsOpen,
		"users.info":                   (*Server).usersInfo,
		"conversations.info":           (*Server).conversationsInfo,
		"conversations.members":        (*Server).conversationsMembers,
		"conversations.history":        (*Server).conversationsHistory,
		"conversations.replies":        (*Server).conversationsReplies,
		"chat.postMessage":             (*Server).chatPostMessage,
		"chat.update":                  (*Server).chatUpdate,
		"chat.delete":                  (*Server).chatDelete,
		"chat.postEphemeral":           (*Server).chatPostEphemeral,
		"chat.startStream":             (*Server).chatStartStream,
		"chat.appendStream":            (*Server).chatAppendStream,
		"chat.stopStream":              (*Server).chatStopStream,
		"reactions.add":                (*Server).reactionsAdd,
		"reactions.remove":             (*Server).reactionsRemove,
		"files.getUploadURLExternal":   (*Server).filesGetUploadURLExternal,
		"files.completeUploadExternal": (*Server).filesCompleteUploadExternal,
		"files.info":                   (*Server).filesInfo,
		"assistant.threads.setStatus":  (*Server).assistantThreadsSetStatus,
		"oauth.v2.access":              (*Server).oauthV2Access,
	}
	for name, m := range moreMethods() {
		out[name] = m
	}
	return out
}

// apiError is a Slack error answer: {"ok":false,"error":code,...}.
type apiError struct {
	code string
	// messages go to response_metadata.messages, as Slack explains
	// invalid_arguments.
	messages []string
}

func (e *apiError) Error() string { return e.code }

func errCode(code string) error { return &apiError{code: code} }

func errInvalidArguments(format string, args ...any) error {
	return &apiError{code: "invalid_arguments", messages: []string{"[ERROR] " + fmt.Sprintf(format, args...)}}
}

// apiRequest is a Web API request, whatever its encoding.
type apiRequest struct {
	args  url.Values
	token string
	json  bool
	// bad is the Slack error code for a body that could not be read.
	bad string
	// base is the URL the client reached the fake at, for URLs in answers.
	base string
	// inst is the install whose bot token the call carries (nil for
	// apps.connections.open and oauth.v2.access).
	inst *install
}

// parseRequest reads a Web API request the ways Slack accepts it: query
// arguments, a form, a multipart form, or a JSON object, with the token in the
// Authorization header or, for forms, as the token argument. As on Slack, a
// JSON body's token is only read from the header, and tokens in the query
// string are ignored.
func parseRequest(r *http.Request) *apiRequest {
	req := &apiRequest{args: url.Values{}, base: "http://" + r.Host}
	if auth, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		req.token = strings.TrimSpace(auth)
	}
	query := r.URL.Query()
	query.Del("token")
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	var body url.Values
	switch {
	case r.Method == http.MethodGet || r.Method == http.MethodHead:
	case ct == "application/json":
		req.json = true
		data, err := io.ReadAll(io.LimitReader(r.Body, 32<<20))
		if err != nil {
			req.bad = "invalid_json"
			break
		}
		if len(bytes.TrimSpace(data)) == 0 {
			break
		}
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(data, &fields); err != nil {
			req.bad = "invalid_json"
			break
		}
		for k, v := range fields {
			if k == "token" {
				continue
			}
			var s string
			if json.Unmarshal(v, &s) == nil {
				req.args.Set(k, s)
			} else {
				req.args.Set(k, string(v))
			}
		}
	case ct == "multipart/form-data":
		if err := r.ParseMultipartForm(32 << 20); err != nil {
			req.bad = "invalid_form_data"
			break
		}
		body = r.MultipartForm.Value
	default:
		if err := r.ParseForm(); err != nil {
			req.bad = "invalid_form_data"
			break
		}
		body = r.PostForm
	}
	for k, vs := range body {
		if k == "token" {
			if req.token == "" && len(vs) > 0 {
				req.token = vs[0]
			}
			continue
		}
		req.args[k] = append(req.args[k], vs...)
	}
	for k, vs := range query {
		if _, ok := req.args[k]; !ok {
			req.args[k] = vs
		}
	}
	return req
}

func (s *Server) serveAPI(w http.ResponseWriter, r *http.Request) {
	method := strings.TrimPrefix(r.URL.Path, "/api/")
	req := parseRequest(r)

	s.mu.Lock()
	call := Call{Method: method, Args: req.args, Token: req.token, JSON: req.json, Time: s.now()}
	status, body, header := s.answer(method, req)
	call.Status = status
	if code, ok := body["error"].(string); ok {
		call.Error = code
	}
	s.st.Calls = append(s.st.Calls, call)
	s.notify()
	s.mu.Unlock()

	if call.Error != "" {
		s.log.Debug("api error", logMethod, method, logErr, call.Error)
	}
	for k, vs := range header {
		w.Header()[k] = vs
	}
	writeJSON(w, status, body)
}

// answer runs a Web API call through Slack's checks in order: method, token,
// injected rate limit and failure, scope; then the method. The caller holds
// s.mu.
func (s *Server) answer(method string, req *apiRequest) (int, obj, http.Header) {
	header := http.Header{}
	fail := func(err error) (int, obj, http.Header) {
		return http.StatusOK, errorBody(err), header
	}
	impl, ok := s.methods[method]
	if !ok {
		return http.StatusOK, obj{"ok": false, "error": "unknown_method", "req_method": method}, header
	}
	if req.bad != "" {
		return fail(errCode(req.bad))
	}
	if method != "oauth.v2.access" {
		inst, err := s.checkToken(method, req.token)
		if err != nil {
			return fail(err)
		}
		req.inst = inst
	}
	scopes := s.opts.Scopes
	if req.inst != nil {
		scopes = req.inst.scopes
		header.Set("X-OAuth-Scopes", strings.Join(scopes, ","))
	}
	if rl, ok := s.rateLimits[method]; ok {
		if rl.n--; rl.n <= 0 {
			delete(s.rateLimits, method)
		} else {
			s.rateLimits[method] = rl
		}
		header.Set("Retry-After", strconv.Itoa(int(math.Ceil(rl.retryAfter.Seconds()))))
		return http.StatusTooManyRequests, obj{"ok": false, "error": "ratelimited"}, header
	}
	needed := s.neededScopes(method, req.args)
	if len(needed) > 0 {
		header.Set("X-Accepted-OAuth-Scopes", strings.Join(needed, ","))
	}
	if f, ok := s.failures[method]; ok {
		if f.n--; f.n <= 0 {
			delete(s.failures, method)
		} else {
			s.failures[method] = f
		}
		if f.code == "missing_scope" {
			return http.StatusOK, s.missingScope(needed, scopes), header
		}
		return fail(errCode(f.code))
	}
	if len(needed) > 0 && !slices.ContainsFunc(needed, func(sc string) bool { return slices.Contains(scopes, sc) }) {
		return http.StatusOK, s.missingScope(needed, scopes), header
	}
	out, err := impl(s, req)
	if err != nil {
		return fail(err)
	}
	out["ok"] = true
	return http.StatusOK, out, header
}

func errorBody(err error) obj {
	e, ok := err.(*apiError)
	if !ok {
		e = &apiError{code: "internal_error"}
	}
	body := obj{"ok": false, "error": e.code}
	if len(e.messages) > 0 {
		body["response_metadata"] = obj{"messages": e.messages}
	}
	return body
}

func (s *Server) missingScope(needed, provided []string) obj {
	n := "unknown"
	if len(needed) > 0 {
		n = needed[0]
	}
	return obj{"ok": false, "error": "missing_scope", "needed": n, "provided": strings.Join(provided, ",")}
}

// checkToken checks the token a method needs: the app token for
// apps.connections.open, a bot token of a live install for every other
// method, whose install it returns. A revoked bot token answers
// token_revoked.
func (s *Server) checkToken(method, token string) (*install, error) {
	in, isBot := s.tokens[token]
	switch {
	case token == "":
		return nil, errCode("not_authed")
	case method == "apps.connections.open" && token == s.opts.AppToken:
		return nil, nil
	case method == "apps.connections.open" && isBot:
		return nil, errCode("not_allowed_token_type")
	case method == "apps.connections.open":
		return nil, errCode("invalid_auth")
	case token == s.opts.AppToken:
		return nil, errCode("not_allowed_token_type")
	case !isBot:
		return nil, errCode("invalid_auth")
	case in.revoked:
		return nil, errCode("token_revoked")
	}
	return in, nil
}

// neededScopes returns the scopes of which a method needs one, or nil.
func (s *Server) neededScopes(method string, args url.Values) []string {
	// Conversation scopes are per kind: channels:read, im:history...
	prefix := map[ChannelType]string{Public: "channels", Private: "groups", IM: "im", MPIM: "mpim"}[s.channelType(args.Get("channel"))]
	switch method {
	case "users.info":
		return []string{"users:read"}
	case "conversations.info", "conversations.members":
		return []string{prefix + ":read"}
	case "conversations.history", "conversations.replies":
		return []string{prefix + ":history"}
	case "chat.postMessage", "chat.update", "chat.delete", "chat.postEphemeral",
		"chat.startStream", "chat.appendStream", "chat.stopStream":
		return []string{"chat:write"}
	case "assistant.threads.setStatus":
		return []string{"chat:write", "assistant:write"}
	case "assistant.threads.setSuggestedPrompts", "assistant.threads.setTitle":
		return []string{"assistant:write"}
	case "reactions.add", "reactions.remove":
		return []string{"reactions:write"}
	case "files.getUploadURLExternal", "files.completeUploadExternal":
		return []string{"files:write"}
	case "files.info":
		return []string{"files:read"}
	}
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// channelType returns the kind of a conversation, guessing from the id's
// first letter for one the fake does not know. The caller holds s.mu.
func (s *Server) channelType(id string) ChannelType {
	if c, ok := s.channels[id]; ok {
		return c.Type
	}
	switch {
	case strings.HasPrefix(id, "D"):
		return IM
	case strings.HasPrefix(id, "G"):
		return Private
	}
	return Public
}

// access is what a method does with a conversation.
type access int

const (
	accessInfo    access = iota // conversations.info, members
	accessHistory               // history, replies, reactions
	accessWrite                 // posting
)

// channelFor resolves a channel argument (an id; for posting also a name or
// the user id of a DM) and checks that the bot may use it as Slack would.
// The caller holds s.mu.
func (s *Server) channelFor(arg string, a access) (*Channel, error) {
	c, ok := s.channels[arg]
	if !ok && a == accessWrite && arg != "" {
		name := strings.TrimPrefix(arg, "#")
		for _, cand := range s.channels {
			if (cand.Type != IM && cand.Name == name) || (cand.Type == IM && cand.User == arg) {
				c, ok = cand, true
				break
			}
		}
	}
	switch {
	case !ok:
		return nil, errCode("channel_not_found")
	case !c.IsMember && c.Type != Public:
		return nil, errCode("channel_not_found") // the bot cannot see it
	case a == accessWrite && c.IsArchived:
		return nil, errCode("is_archived")
	case c.IsMember:
	case a == accessHistory:
		return nil, errCode("not_in_channel")
	case a == accessWrite && !slices.Contains(s.opts.Scopes, "chat:write.public"):
		return nil, errCode("not_in_channel")
	}
	return c, nil
}

// channelOf resolves a channel argument as channelFor does, for the install
// of the call: a conversation of a team it does not serve is not found.
// The caller holds s.mu.
func (s *Server) channelOf(r *apiRequest, arg string, a access) (*Channel, error) {
	c, err := s.channelFor(arg, a)
	if err != nil {
		return nil, err
	}
	if r.inst != nil && !r.inst.covers(s.team(s.teamOf(c.ID))) {
		return nil, errCode("channel_not_found")
	}
	return c, nil
}

// threadParent returns the ts of the thread a reply to ts joins: ts itself
// for a top-level message, its parent for a reply, and "" when there is no
// such message (Slack then posts the reply in the channel). The caller holds
// s.mu.
func (s *Server) threadParent(channel, ts string) string {
	if ts == "" {
		return ""
	}
	p := s.st.Message(channel, ts)
	if p == nil || p.Deleted || p.EphemeralTo != "" {
		return ""
	}
	if p.ThreadTS != "" {
		return p.ThreadTS
	}
	return p.TS
}

// botMessage returns the message of the bot of install in (nil: the
// default one) an argument set describes, with Slack's checks of text,
// blocks, attachments and metadata. username and icon_url are kept only
// with the chat:write.customize scope, as Slack ignores them without it.
// The caller holds s.mu.
func (s *Server) botMessage(in *install, c *Channel, args url.Values) (Message, error) {
	if in == nil {
		in = s.installs[0]
	}
	m := Message{
		Channel: c.ID,
		User:    in.botUserID,
		BotID:   in.botID,
		Text:    args.Get("text"),
	}
	if slices.Contains(in.scopes, "chat:write.customize") {
		m.Username, m.IconURL = args.Get("username"), args.Get("icon_url")
	}
	var err error
	if m.Blocks, err = s.blocksArg(args, "blocks"); err != nil {
		return Message{}, err
	}
	if m.Attachments, err = jsonArrayArg(args, "attachments", "invalid_attachments"); err != nil {
		return Message{}, err
	}
	if m.Metadata, err = metadataArg(args); err != nil {
		return Message{}, err
	}
	if m.Text == "" && isEmptyJSONArray(m.Blocks) && isEmptyJSONArray(m.Attachments) {
		return Message{}, errCode("no_text")
	}
	if utf8.RuneCountInString(m.Text) > MaxMessageText {
		return Message{}, errCode("msg_too_long")
	}
	m.UnfurlLinks = boolArg(args, "unfurl_links")
	m.UnfurlMedia = boolArg(args, "unfurl_media")
	if b := boolArg(args, "reply_broadcast"); b != nil {
		m.ReplyBroadcast = *b
	}
	return m, nil
}

// blocksArg reads a blocks argument: a JSON array of objects with a type,
// within Slack's limits (see MaxBlocks). Blocks without block_id get one.
func (s *Server) blocksArg(args url.Values, name string) (json.RawMessage, error) {
	raw, err := jsonArrayArg(args, name, "invalid_blocks")
	if err != nil || raw == nil {
		return raw, err
	}
	var blocks []struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(raw, &blocks); err != nil {
		return nil, errCode("invalid_blocks")
	}
	for _, b := range blocks {
		if b.Type == "" {
			return nil, errCode("invalid_blocks")
		}
	}
	if err := checkBlockLimits(raw); err != nil {
		return nil, err
	}
	if err := s.checkImages(raw); err != nil {
		return nil, err
	}
	return s.withBlockIDs(raw), nil
}

// checkImages refuses blocks with an image Slack cannot download (see
// RefuseImages), as Slack does.
func (s *Server) checkImages(raw json.RawMessage) error {
	if s.refuseImage == nil {
		return nil
	}
	var blocks []struct {
		Type      string `json:"type"`
		ImageURL  string `json:"image_url"`
		Accessory *struct {
			Type     string `json:"type"`
			ImageURL string `json:"image_url"`
		} `json:"accessory"`
	}
	if json.Unmarshal(raw, &blocks) != nil {
		return nil
	}
	for i, b := range blocks {
		pointer := ""
		switch {
		case b.Type == "image" && s.refuseImage(b.ImageURL):
			pointer = fmt.Sprintf("/blocks/%d/image_url", i)
		case b.Accessory != nil && b.Accessory.Type == "image" && s.refuseImage(b.Accessory.ImageURL):
			pointer = fmt.Sprintf("/blocks/%d/accessory/image_url", i)
		default:
			continue
		}
		return &apiError{code: "invalid_blocks", messages: []string{"[ERROR] downloading image failed [json-pointer:" + pointer + "]"}}
	}
	return nil
}

func jsonArrayArg(args url.Values, name, code string) (json.RawMessage, error) {
	v := strings.TrimSpace(args.Get(name))
	if v == "" || v == "null" {
		return nil, nil
	}
	var arr []json.RawMessage
	if err := json.Unmarshal([]byte(v), &arr); err != nil {
		return nil, errCode(code)
	}
	return json.RawMessage(v), nil
}

func isEmptyJSONArray(raw json.RawMessage) bool {
	var arr []json.RawMessage
	return raw == nil || json.Unmarshal(raw, &arr) != nil || len(arr) == 0
}

// metadataArg reads message metadata: {"event_type": ..., "event_payload": {...}}.
func metadataArg(args url.Values) (json.RawMessage, error) {
	if !args.Has("metadata") {
		return nil, nil
	}
	v := strings.TrimSpace(args.Get("metadata"))
	var md struct {
		EventType    string          `json:"event_type"`
		EventPayload json.RawMessage `json:"event_payload"`
	}
	if err := json.Unmarshal([]byte(v), &md); err != nil {
		return nil, errCode("invalid_metadata_format")
	}
	if md.EventType == "" || len(md.EventPayload) == 0 || md.EventPayload[0] != '{' {
		return nil, errCode("invalid_metadata_schema")
	}
	return json.RawMessage(v), nil
}

// boolArg reads a boolean argument as Slack does ("true"/"1"/"false"/"0");
// nil when absent.
func boolArg(args url.Values, name string) *bool {
	if !args.Has(name) {
		return nil
	}
	v := args.Get(name) == "true" || args.Get(name) == "1"
	return &v
}

func intArg(args url.Values, name string, def, max int) int {
	n, err := strconv.Atoi(args.Get(name))
	if err != nil || n <= 0 {
		return def
	}
	return min(n, max)
}

// page returns one page of items after the cursor, and the cursor of the
// next page ("" on the last one). Cursors are base64 of prefix:key, like
// Slack's.
func page[T any](items []T, key func(T) string, prefix, cursor string, limit int) ([]T, string, error) {
	start := 0
	if cursor != "" {
		raw, err := base64.StdEncoding.DecodeString(cursor)
		k, ok := strings.CutPrefix(string(raw), prefix+":")
		if err != nil || !ok {
			return nil, "", errCode("invalid_cursor")
		}
		start = slices.IndexFunc(items, func(it T) bool { return key(it) == k })
		if start < 0 {
			return nil, "", errCode("invalid_cursor")
		}
	}
	end := min(start+limit, len(items))
	next := ""
	if end < len(items) {
		next = base64.StdEncoding.EncodeToString([]byte(prefix + ":" + key(items[end])))
	}
	return items[start:end], next, nil
}

// tsMicros returns a message timestamp in microseconds, for comparisons.
func tsMicros(ts string) int64 {
	sec, frac, _ := strings.Cut(ts, ".")
	s, _ := strconv.ParseInt(sec, 10, 64)
	frac = (frac + "000000")[:6]
	f, _ := strconv.ParseInt(frac, 10, 64)
	return s*1e6 + f
}
