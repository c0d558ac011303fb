package chattest

import (
	"slices"

	"github.com/botbridge/botbridge/chat"
)

// Events returns the custom events users created in a conversation
// (createEvent), oldest first; nil for none. Bots are not sent them: a test
// reads them here.
func (s *Server) Events(conv chat.ConversationID) []chat.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []chat.Event
	for _, e := range s.st.events {
		if e.ConversationID == conv {
			out = append(out, chat.Event{ID: e.ID, CreatedAt: e.CreatedAt, Payload: e.Payload, ConversationID: e.ConversationID, UserID: e.UserID})
		}
	}
	slices.SortFunc(out, func(a, b chat.Event) int { return a.CreatedAt.Compare(b.CreatedAt) })
	return out
}
