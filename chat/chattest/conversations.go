package chattest

import (
	"net/http"

	"github.com/botbridge/botbridge/chat"
)

type conversationAnswer struct {
	Conversation conversationJSON `json:"conversation"`
}

func (c *call) createConversation() (any, *apiError) {
	id, hasID, e := c.body.str("id", false, 0)
	if e != nil {
		return nil, e
	}
	u, e := c.me()
	if e != nil {
		return nil, e
	}
	s := c.s
	defer s.mu.Unlock()
	if hasID {
		if e := validateFID(id); e != nil {
			return nil, e
		}
		if s.st.convs[chat.ConversationID(id)] != nil {
			return nil, errAlreadyExists("Conversation with id %s already exists", id)
		}
	} else {
		id = newID("conv")
	}
	conv := s.st.addConversation(chat.ConversationID(id), hasID, u.ID, s.stamp())
	s.changed()
	return conversationAnswer{conv.json()}, nil
}

func (c *call) getOrCreateConversation() (any, *apiError) {
	id, _, e := c.body.str("id", true, 0)
	if e != nil {
		return nil, e
	}
	u, e := c.me()
	if e != nil {
		return nil, e
	}
	s := c.s
	defer s.mu.Unlock()
	if conv := s.st.convs[chat.ConversationID(id)]; conv != nil {
		if !conv.ChosenID {
			// The service looks up chosen ids only and would create a second
			// conversation showing the same id; refuse instead.
			return nil, errAlreadyExists("Conversation with id %s already exists", id)
		}
		if conv.Owner != u.ID {
			return nil, errForbidden(msgNotOwner)
		}
		return conversationAnswer{conv.json()}, nil
	}
	if e := validateFID(id); e != nil {
		return nil, e
	}
	conv := s.st.addConversation(chat.ConversationID(id), true, u.ID, s.stamp())
	s.changed()
	return conversationAnswer{conv.json()}, nil
}

// conversation looks up the conversation of the first path parameter. Callers
// hold s.mu.
func (c *call) conversation() (*conversation, *apiError) {
	conv := c.s.st.convs[chat.ConversationID(c.params[0])]
	if conv == nil {
		return nil, errNotFound("Conversation %s not found", c.params[0])
	}
	return conv, nil
}

// ownedConversation is conversation for owner-only operations.
func (c *call) ownedConversation(u *user) (*conversation, *apiError) {
	conv, e := c.conversation()
	if e != nil {
		return nil, e
	}
	if conv.Owner != u.ID {
		return nil, errForbidden(msgNotOwner)
	}
	return conv, nil
}

// memberOf looks up a conversation the caller takes part in; an unknown
// conversation is "not a participant", as on the service.
func (c *call) memberOf(u *user, id chat.ConversationID, msg string) (*conversation, *apiError) {
	conv := c.s.st.convs[id]
	if conv == nil {
		return nil, errForbidden(msg)
	}
	if _, ok := conv.participants[u.ID]; !ok {
		return nil, errForbidden(msg)
	}
	return conv, nil
}

func (c *call) getConversation() (any, *apiError) {
	u, e := c.me()
	if e != nil {
		return nil, e
	}
	defer c.s.mu.Unlock()
	conv, e := c.conversation()
	if e != nil {
		return nil, e
	}
	if _, ok := conv.participants[u.ID]; !ok {
		return nil, errForbidden(msgNotParticipant)
	}
	return conversationAnswer{conv.json()}, nil
}

// deleteConversation deletes the conversation and its messages. Like the
// service it emits nothing and leaves open streams open.
func (c *call) deleteConversation() (any, *apiError) {
	u, e := c.me()
	if e != nil {
		return nil, e
	}
	defer c.s.mu.Unlock()
	conv, e := c.ownedConversation(u)
	if e != nil {
		return nil, e
	}
	c.s.st.deleteConversation(conv)
	c.s.changed()
	return empty{}, nil
}

func (c *call) cursor(kind string, def int64) (int64, *apiError) {
	n, err := decodeToken(kind, c.r.URL.Query().Get("nextToken"), def)
	if err != nil {
		return 0, errInvalidQuery("Invalid nextToken")
	}
	return n, nil
}

func (c *call) listConversations() (any, *apiError) {
	before, e := c.cursor("c", 1<<62)
	if e != nil {
		return nil, e
	}
	u, e := c.me()
	if e != nil {
		return nil, e
	}
	defer c.s.mu.Unlock()
	page, next := pageNewest(c.s.st.owned[u.ID], func(c *conversation) int64 { return c.Seq }, before, c.s.pageSize)
	out := make([]conversationJSON, 0, len(page))
	for _, conv := range page {
		out = append(out, conv.json())
	}
	return struct {
		Conversations []conversationJSON `json:"conversations"`
		Meta          listMeta           `json:"meta"`
	}{out, listMeta{encodeToken("c", next)}}, nil
}

// listenConversation takes an HTTP/1.1 connection over from net/http (see
// runStream); over HTTP/2 it serves the stream until it ends (serveStream).
// The stream is registered before its response head goes out, so it sees
// every signal published after the client saw the stream open.
func (c *call) listenConversation() (any, *apiError) {
	u, e := c.me()
	if e != nil {
		return nil, e
	}
	s := c.s
	conv, e := c.memberOf(u, chat.ConversationID(c.params[0]), msgNotParticipant)
	if e == nil && s.closed {
		e = &apiError{http.StatusServiceUnavailable, "Unknown", "The emulator is closing"}
	}
	if e != nil {
		s.mu.Unlock()
		return nil, e
	}
	st := &stream{user: u.ID, conv: conv.ID}
	if c.r.ProtoMajor == 1 {
		conn, _, err := http.NewResponseController(c.w).Hijack()
		if err == nil {
			st.conn = conn
		}
	}
	if st.conn == nil {
		st.woke, st.rc = make(chan struct{}, 1), http.NewResponseController(c.w)
	}
	s.hub.add(st)
	s.wg.Add(1)
	s.mu.Unlock()
	if st.conn != nil {
		go s.runStream(st)
	} else {
		s.serveStream(c.w, c.r, st)
	}
	return nil, nil
}

func (c *call) listMessages() (any, *apiError) {
	before, e := c.cursor("m", 1<<62)
	if e != nil {
		return nil, e
	}
	u, e := c.me()
	if e != nil {
		return nil, e
	}
	defer c.s.mu.Unlock()
	conv, e := c.memberOf(u, chat.ConversationID(c.params[0]), msgNotParticipant)
	if e != nil {
		return nil, e
	}
	page, next := pageNewest(conv.messages, func(m *message) int64 { return m.Seq }, before, c.s.pageSize)
	out := make([]messageJSON, 0, len(page))
	for _, m := range page {
		out = append(out, m.json())
	}
	return struct {
		Messages []messageJSON `json:"messages"`
		Meta     listMeta      `json:"meta"`
	}{out, listMeta{encodeToken("m", next)}}, nil
}

// Participants.

type participantAnswer struct {
	Participant userJSON `json:"participant"`
}

func (c *call) addParticipant() (any, *apiError) {
	id, _, e := c.body.str("userId", true, 0)
	if e != nil {
		return nil, e
	}
	u, e := c.me()
	if e != nil {
		return nil, e
	}
	s := c.s
	defer s.mu.Unlock()
	conv, e := c.ownedConversation(u)
	if e != nil {
		return nil, e
	}
	p := s.st.users[chat.UserID(id)]
	if p == nil || p.ID == s.st.botUser {
		return nil, errNotFound("User %s not found", id)
	}
	if _, ok := conv.participants[p.ID]; !ok {
		conv.participants[p.ID] = s.st.next()
		s.changed()
	}
	s.publish(conv.ID, chat.SignalParticipantAdded, participantJSON{conv.ID, p.ID})
	return participantAnswer{p.json()}, nil
}

// listParticipants lists in order of joining; the bot is not a participant.
func (c *call) listParticipants() (any, *apiError) {
	after, e := c.cursor("p", 0)
	if e != nil {
		return nil, e
	}
	u, e := c.me()
	if e != nil {
		return nil, e
	}
	s := c.s
	defer s.mu.Unlock()
	conv, e := c.memberOf(u, chat.ConversationID(c.params[0]), msgNotParticipant)
	if e != nil {
		return nil, e
	}
	page, next := pageOldest(conv.participantsInOrder(), func(p participant) int64 { return p.Seq }, after, s.pageSize)
	out := make([]userJSON, 0, len(page))
	for _, p := range page {
		if pu := s.st.users[p.ID]; pu != nil {
			out = append(out, pu.json())
		}
	}
	return struct {
		Participants []userJSON `json:"participants"`
		Meta         listMeta   `json:"meta"`
	}{out, listMeta{encodeToken("p", next)}}, nil
}

// getParticipant is owner-only, like the service (quirk 5).
func (c *call) getParticipant() (any, *apiError) {
	u, e := c.me()
	if e != nil {
		return nil, e
	}
	s := c.s
	defer s.mu.Unlock()
	conv, e := c.ownedConversation(u)
	if e != nil {
		return nil, e
	}
	id := chat.UserID(c.params[1])
	p := s.st.users[id]
	if _, ok := conv.participants[id]; !ok || p == nil {
		return nil, errNotFound("Participant %s not found in conversation %s", id, conv.ID)
	}
	return participantAnswer{p.json()}, nil
}

// removeParticipant removes the participant, ends all their streams in every
// conversation (quirk 7), then emits participant_removed to the others.
func (c *call) removeParticipant() (any, *apiError) {
	u, e := c.me()
	if e != nil {
		return nil, e
	}
	s := c.s
	defer s.mu.Unlock()
	conv, e := c.ownedConversation(u)
	if e != nil {
		return nil, e
	}
	id := chat.UserID(c.params[1])
	if id == conv.Owner {
		return nil, errInvalidPayload(msgRemoveOwner)
	}
	if _, ok := conv.participants[id]; !ok {
		return nil, errNotFound("Participant %s not found in conversation %s", id, conv.ID)
	}
	delete(conv.participants, id)
	s.hub.endUser(id, endClose)
	s.publish(conv.ID, chat.SignalParticipantRemoved, participantJSON{conv.ID, id})
	s.changed()
	return empty{}, nil
}
