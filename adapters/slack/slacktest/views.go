package slacktest

import (
	"encoding/json"
	"fmt"
	"unicode/utf8"
)

// MaxHomeBlocks is how many blocks a Home tab may have.
const MaxHomeBlocks = 100

// Limits of the assistant thread methods.
const (
	// MaxPrompts is how many suggested prompts a thread shows.
	MaxPrompts = 4
	// MaxTitle is the length of a thread's title, in characters.
	MaxTitle = 255
)

// moreMethods are the Web API methods of App Home and of assistant threads.
func moreMethods() map[string]apiMethod {
	return map[string]apiMethod{
		"views.publish":                         (*Server).viewsPublish,
		"assistant.threads.setSuggestedPrompts": (*Server).assistantThreadsSetSuggestedPrompts,
		"assistant.threads.setTitle":            (*Server).assistantThreadsSetTitle,
	}
}

// viewsPublish publishes a user's Home tab: a view of type home with at
// most MaxHomeBlocks blocks, refused with hash_conflict when hash is not the
// current view's.
func (s *Server) viewsPublish(r *apiRequest) (obj, error) {
	user := r.args.Get("user_id")
	if user == "" {
		return nil, errInvalidArguments("missing required field: user_id")
	}
	if _, ok := s.users[user]; !ok {
		return nil, errCode("user_not_found")
	}
	var v struct {
		Type            string          `json:"type"`
		Blocks          json.RawMessage `json:"blocks"`
		PrivateMetadata string          `json:"private_metadata"`
		ExternalID      string          `json:"external_id"`
	}
	if err := json.Unmarshal([]byte(r.args.Get("view")), &v); err != nil {
		return nil, errCode("invalid_arguments")
	}
	if v.Type != "home" {
		return nil, errInvalidArguments("view type must be home")
	}
	var blocks []json.RawMessage
	if err := json.Unmarshal(v.Blocks, &blocks); err != nil {
		return nil, errCode("invalid_blocks")
	}
	if len(blocks) > MaxHomeBlocks {
		return nil, &apiError{code: "invalid_arguments", messages: []string{fmt.Sprintf("[ERROR] must provide no more than %d items [json-pointer:/view/blocks]", MaxHomeBlocks)}}
	}
	for i := 0; i < len(blocks); i += MaxBlocks { // each block within the limits of a message's
		chunk, _ := json.Marshal(blocks[i:min(i+MaxBlocks, len(blocks))])
		if err := checkBlockLimits(chunk); err != nil {
			return nil, err
		}
	}
	if s.st.Views == nil {
		s.st.Views = make(map[string]View)
	}
	prev, had := s.st.Views[user]
	if h := r.args.Get("hash"); h != "" && had && h != prev.Hash {
		return nil, errCode("hash_conflict")
	}
	s.seq++
	view := View{User: user, Token: r.token, Type: v.Type, Blocks: s.withBlockIDs(v.Blocks), PrivateMetadata: v.PrivateMetadata,
		ExternalID: v.ExternalID, Hash: fmt.Sprintf("%d.%s", s.now().Unix(), randomToken(8)), Time: s.now()}
	s.st.Views[user] = view
	return obj{"view": obj{
		"id":               fmt.Sprintf("V%010d", s.seq),
		"team_id":          r.inst.teamID,
		"type":             view.Type,
		"blocks":           view.Blocks,
		"private_metadata": view.PrivateMetadata,
		"external_id":      view.ExternalID,
		"hash":             view.Hash,
		"app_id":           s.opts.AppID,
		"bot_id":           r.inst.botID,
	}}, nil
}

// assistantThread checks the channel_id and thread_ts of an assistant
// thread method. The caller holds s.mu.
func (s *Server) assistantThread(r *apiRequest) (channel, thread string, err error) {
	channel, thread = r.args.Get("channel_id"), r.args.Get("thread_ts")
	if channel == "" {
		return "", "", errInvalidArguments("missing required field: channel_id")
	}
	if thread == "" {
		return "", "", errInvalidArguments("missing required field: thread_ts")
	}
	if _, err := s.channelOf(r, channel, accessWrite); err != nil {
		return "", "", err
	}
	return channel, thread, nil
}

func (s *Server) assistantThreadsSetSuggestedPrompts(r *apiRequest) (obj, error) {
	channel, thread, err := s.assistantThread(r)
	if err != nil {
		return nil, err
	}
	var prompts []Prompt
	if err := json.Unmarshal([]byte(r.args.Get("prompts")), &prompts); err != nil || len(prompts) == 0 {
		return nil, errInvalidArguments("missing required field: prompts")
	}
	if len(prompts) > MaxPrompts {
		return nil, errInvalidArguments("must provide no more than %d prompts", MaxPrompts)
	}
	for _, p := range prompts {
		if p.Title == "" || p.Message == "" {
			return nil, errInvalidArguments("a prompt needs a title and a message")
		}
	}
	s.st.Prompts = append(s.st.Prompts, SuggestedPrompts{Channel: channel, ThreadTS: thread, Title: r.args.Get("title"), Prompts: prompts, Time: s.now()})
	return obj{}, nil
}

func (s *Server) assistantThreadsSetTitle(r *apiRequest) (obj, error) {
	channel, thread, err := s.assistantThread(r)
	if err != nil {
		return nil, err
	}
	title := r.args.Get("title")
	if title == "" {
		return nil, errInvalidArguments("missing required field: title")
	}
	if utf8.RuneCountInString(title) > MaxTitle {
		return nil, errInvalidArguments("title must be at most %d characters", MaxTitle)
	}
	s.st.Titles = append(s.st.Titles, Title{Channel: channel, ThreadTS: thread, Title: title, Time: s.now()})
	return obj{}, nil
}
