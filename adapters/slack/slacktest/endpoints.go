package slacktest

import (
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// serveUpload receives a file's bytes at the upload URL of
// files.getUploadURLExternal, raw or as the file part of a multipart form,
// and answers as Slack does, in plain text.
func (s *Server) serveUpload(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	data, err := readUpload(r)
	if err != nil {
		http.Error(w, "bad upload: "+err.Error(), http.StatusBadRequest)
		return
	}
	secret := strings.TrimPrefix(r.URL.Path, "/upload/v1/")
	s.mu.Lock()
	id, ok := s.uploads[secret]
	if ok {
		f := s.st.Files[id]
		f.Content, f.Uploaded = data, true
		s.st.Files[id] = f
		s.notify()
	}
	s.mu.Unlock()
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = fmt.Fprintf(w, "OK - %d", len(data))
}

func readUpload(r *http.Request) ([]byte, error) {
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if ct != "multipart/form-data" {
		return io.ReadAll(io.LimitReader(r.Body, 1<<30))
	}
	mr, err := r.MultipartReader()
	if err != nil {
		return nil, err
	}
	for {
		p, err := mr.NextPart()
		if err != nil {
			return nil, fmt.Errorf("no file part: %w", err)
		}
		if p.FileName() != "" {
			return io.ReadAll(io.LimitReader(p, 1<<30))
		}
	}
}

// serveFile serves url_private and url_private_download. Without the bot
// token Slack redirects to the sign-in page with redir set to the file's
// path, which slack-go's GetFile recognises; the fake does the same.
func (s *Server) serveFile(w http.ResponseWriter, r *http.Request) {
	rest := strings.TrimPrefix(r.URL.Path, "/files-pri/")
	teamFile, _, _ := strings.Cut(rest, "/")
	_, id, _ := strings.Cut(teamFile, "-")
	token, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")

	s.mu.Lock()
	f, ok := s.st.Files[id]
	in := s.tokens[token]
	authed := in != nil && !in.revoked && slices.Contains(in.scopes, "files:read")
	s.mu.Unlock()

	if !authed {
		http.Redirect(w, r, "/signin?redir="+url.QueryEscape(r.URL.Path), http.StatusFound)
		return
	}
	if !ok || !f.Completed {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", f.Mimetype)
	w.Header().Set("Content-Length", strconv.Itoa(len(f.Content)))
	if strings.Contains(rest, "/download/") {
		w.Header().Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": f.Name}))
	}
	_, _ = w.Write(f.Content)
}

// serveResponseURL applies a POST to a block action's response_url:
// replace_original updates the message, delete_original deletes it, anything
// else posts a new message (ephemeral to the clicking user unless
// response_type is in_channel).
func (s *Server) serveResponseURL(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	req := parseRequest(r)
	s.mu.Lock()
	ru, ok := s.responseURLs[r.URL.Path]
	call := Call{Method: "response_url", Args: req.args, JSON: req.json, Time: s.now(), Status: http.StatusOK}
	var err error
	if !ok {
		call.Status, call.Error = http.StatusNotFound, "no_such_url"
	} else if err = s.applyResponse(ru, req); err != nil {
		call.Status, call.Error = http.StatusBadRequest, err.Error()
	}
	s.st.Calls = append(s.st.Calls, call)
	s.notify()
	s.mu.Unlock()
	if call.Error != "" {
		writeJSON(w, call.Status, obj{"ok": false, "error": call.Error})
		return
	}
	writeJSON(w, http.StatusOK, obj{"ok": true})
}

// applyResponse applies a response_url request. The caller holds s.mu.
func (s *Server) applyResponse(ru responseURL, req *apiRequest) error {
	c, ok := s.channels[ru.channel]
	if !ok {
		return errCode("channel_not_found")
	}
	m := s.st.Message(ru.channel, ru.messageTS)
	if (req.args.Get("delete_original") == "true" || req.args.Get("replace_original") == "true") && (m == nil || m.Deleted) {
		return errCode("message_not_found")
	}
	if req.args.Get("delete_original") == "true" {
		m.Deleted = true
		return nil
	}
	// slack-go's response_url body always carries an empty metadata object.
	args := cloneValues(req.args)
	args.Del("metadata")
	next, err := s.botMessage(s.installFor(s.teamOf(c.ID)), c, args)
	if err != nil {
		return err
	}
	if req.args.Get("replace_original") == "true" {
		m.Text, m.Blocks, m.Attachments = next.Text, next.Blocks, next.Attachments
		m.Updates = append(m.Updates, Update{TS: s.nextTS(), Text: m.Text, Blocks: m.Blocks, Metadata: m.Metadata, Time: s.now()})
		return nil
	}
	next.ThreadTS = s.threadParent(c.ID, req.args.Get("thread_ts"))
	if req.args.Get("response_type") != "in_channel" {
		next.EphemeralTo = ru.user
	}
	s.post(next)
	return nil
}

// fileURLs returns url_private and url_private_download of a file.
func (s *Server) fileURLs(base, id, name string) (string, string) {
	p := base + "/files-pri/" + s.opts.TeamID + "-" + id + "/"
	return p + url.PathEscape(name), p + "download/" + url.PathEscape(name)
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
