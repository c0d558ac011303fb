package chattest

import (
	"github.com/botbridge/botbridge/chat"
)

type messageAnswer struct {
	Message messageJSON `json:"message"`
}

func (c *call) createMessage() (any, *apiError) {
	convID, _, e := c.body.str("conversationId", true, 0)
	if e != nil {
		return nil, e
	}
	payload, e := c.body.messagePayload()
	if e != nil {
		return nil, e
	}
	metadata, e := c.body.object("metadata", false)
	if e != nil {
		return nil, e
	}
	// Decoded before locking: the bot gets a chat.Message.
	var forBot chat.Message
	if c.s.bot != nil {
		forBot = (&message{Payload: payload, Metadata: metadata}).chat()
	}
	u, e := c.me()
	if e != nil {
		return nil, e
	}
	s := c.s
	defer s.mu.Unlock()
	conv, e := c.memberOf(u, chat.ConversationID(convID), msgNotMsgParticipant)
	if e != nil {
		return nil, e
	}
	m := s.st.addMessage(conv, u.ID, payload, metadata, s.stamp())
	j := m.json()
	s.publish(conv.ID, chat.SignalMessageCreated, messageCreatedJSON{messageJSON: j})
	if s.bot != nil {
		forBot.ID, forBot.CreatedAt, forBot.UserID, forBot.ConversationID = m.ID, m.CreatedAt, m.UserID, m.ConversationID
		s.enqueueBot(forBot)
	}
	s.changed()
	return messageAnswer{j}, nil
}

// message looks up the message of the first path parameter. Callers hold
// s.mu.
func (c *call) message() (*message, *apiError) {
	m := c.s.st.messages[chat.MessageID(c.params[0])]
	if m == nil {
		return nil, errNotFound("Message %s not found", c.params[0])
	}
	return m, nil
}

func (c *call) getMessage() (any, *apiError) {
	u, e := c.me()
	if e != nil {
		return nil, e
	}
	defer c.s.mu.Unlock()
	m, e := c.message()
	if e != nil {
		return nil, e
	}
	if _, e := c.memberOf(u, m.ConversationID, msgNotMsgParticipant); e != nil {
		return nil, e
	}
	return messageAnswer{m.json()}, nil
}

func (c *call) deleteMessage() (any, *apiError) {
	u, e := c.me()
	if e != nil {
		return nil, e
	}
	s := c.s
	defer s.mu.Unlock()
	m, e := c.message()
	if e != nil {
		return nil, e
	}
	if m.UserID != u.ID {
		return nil, errForbidden(msgNotSender)
	}
	s.st.deleteMessage(m)
	s.publish(m.ConversationID, chat.SignalMessageDeleted, messageDeletedJSON{m.ID, m.ConversationID, m.UserID})
	s.changed()
	return empty{}, nil
}

// Events.

type eventAnswer struct {
	Event eventJSON `json:"event"`
}

func (c *call) createEvent() (any, *apiError) {
	convID, _, e := c.body.str("conversationId", true, 0)
	if e != nil {
		return nil, e
	}
	payload, e := c.body.object("payload", true)
	if e != nil {
		return nil, e
	}
	if len(payload) > chat.MaxPayloadBytes {
		return nil, errTooLarge("Event payload is %d bytes, the maximum is %d", len(payload), chat.MaxPayloadBytes)
	}
	u, e := c.me()
	if e != nil {
		return nil, e
	}
	s := c.s
	defer s.mu.Unlock()
	conv, e := c.memberOf(u, chat.ConversationID(convID), msgNotParticipant)
	if e != nil {
		return nil, e
	}
	ev := &event{ID: chat.EventID(newID("evt")), ConversationID: conv.ID, UserID: u.ID, Payload: payload, CreatedAt: s.stamp()}
	s.st.events[ev.ID] = ev
	j := ev.json()
	s.publish(conv.ID, chat.SignalEventCreated, eventCreatedJSON{&j.ID, j.CreatedAt, j.Payload, j.ConversationID, j.UserID, false})
	s.changed()
	return eventAnswer{j}, nil
}

func (c *call) getEvent() (any, *apiError) {
	u, e := c.me()
	if e != nil {
		return nil, e
	}
	defer c.s.mu.Unlock()
	ev := c.s.st.events[chat.EventID(c.params[0])]
	if ev == nil {
		return nil, errNotFound("Event %s not found", c.params[0])
	}
	if _, e := c.memberOf(u, ev.ConversationID, msgNotParticipant); e != nil {
		return nil, e
	}
	return eventAnswer{ev.json()}, nil
}

// enqueueBot hands a user's message to the bot. Callers hold s.mu.
func (s *Server) enqueueBot(m chat.Message) {
	if s.bot == nil || s.closed || m.UserID == s.st.botUser {
		return
	}
	q := s.botq[m.ConversationID]
	if q == nil {
		q = &botQueue{}
		s.botq[m.ConversationID] = q
	}
	q.pending = append(q.pending, m)
	if !q.running {
		q.running = true
		s.wg.Add(1)
		go s.runBot(m.ConversationID, q)
	}
}
