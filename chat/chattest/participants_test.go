package chattest_test

import (
	"io"
	"net/http"
	"slices"
	"testing"

	"github.com/botbridge/botbridge/bridge/bridgetest"
	"github.com/botbridge/botbridge/chat"
	"github.com/botbridge/botbridge/chat/chattest"
)

func TestAddParticipant(t *testing.T) {
	e := newEnv(t, chattest.Options{})
	_, alice := e.createUser("alice")
	_, bob := e.createUser("bob")
	e.createUser("carol")
	conv := e.createConv(alice, "c1")
	stream := e.listen(alice, conv)

	t.Run("adds the user and emits participant_added", func(t *testing.T) {
		var out struct{ Participant userOut }
		e.do("POST", "/conversations/c1/participants", alice, map[string]any{"userId": "bob"}).ok(t, &out)
		if out.Participant.ID != "bob" {
			t.Errorf("participant %+v", out.Participant)
		}
		var d struct{ ConversationID, ParticipantID string }
		stream.nextOf(t, chat.SignalParticipantAdded).decode(t, &d)
		if d.ConversationID != "c1" || d.ParticipantID != "bob" {
			t.Errorf("signal data %+v", d)
		}
	})
	t.Run("adding a participant again emits participant_added again", func(t *testing.T) {
		e.addParticipant(alice, "c1", "bob")
		stream.nextOf(t, chat.SignalParticipantAdded)
		pages := e.listAll(alice, "/conversations/c1/participants")
		if n := len(pages[0].Participants); n != 2 {
			t.Errorf("%d participants, want 2", n)
		}
	})
	t.Run("is for the owner only", func(t *testing.T) {
		e.do("POST", "/conversations/c1/participants", bob, map[string]any{"userId": "carol"}).
			apiErr(t, http.StatusForbidden, "Forbidden", "You are not the owner of this conversation")
	})
	t.Run("answers 404 for an unknown user or conversation", func(t *testing.T) {
		e.do("POST", "/conversations/c1/participants", alice, map[string]any{"userId": "nobody"}).apiErr(t, http.StatusNotFound, "ResourceNotFound", "")
		e.do("POST", "/conversations/nope/participants", alice, map[string]any{"userId": "bob"}).apiErr(t, http.StatusNotFound, "ResourceNotFound", "")
	})
	t.Run("requires userId", func(t *testing.T) {
		e.do("POST", "/conversations/c1/participants", alice, map[string]any{}).msgErr(t, http.StatusBadRequest, "must have required property 'userId'")
	})
}

func TestListParticipants(t *testing.T) {
	e := newEnv(t, chattest.Options{PageSize: 2, Bot: chattest.EchoBot()})
	_, alice := e.createUser("alice")
	_, bob := e.createUser("bob")
	_, dan := e.createUser("dan")
	e.createUser("carol")
	conv := e.createConv(alice, "c1")
	e.addParticipant(alice, conv, "bob")
	e.addParticipant(alice, conv, "carol")
	stream := e.listen(alice, conv)
	e.sendText(alice, conv, "hi")
	stream.nextOf(t, chat.SignalMessageCreated)
	stream.nextOf(t, chat.SignalMessageCreated) // the bot has spoken

	t.Run("lists every participant in order of joining, without the bot", func(t *testing.T) {
		var ids []chat.UserID
		for _, p := range e.listAll(bob, "/conversations/c1/participants") {
			for _, u := range p.Participants {
				ids = append(ids, u.ID)
			}
		}
		if want := []chat.UserID{"alice", "bob", "carol"}; !slices.Equal(ids, want) {
			t.Errorf("participants %v, want %v", ids, want)
		}
	})
	t.Run("refuses non-participants and unknown conversations with 403", func(t *testing.T) {
		e.do("GET", "/conversations/c1/participants", dan, nil).apiErr(t, http.StatusForbidden, "Forbidden", "You are not a participant in this conversation")
		e.do("GET", "/conversations/nope/participants", dan, nil).apiErr(t, http.StatusForbidden, "Forbidden", "")
	})
}

// TestGetParticipant covers quirk 5: getParticipant is owner-only.
func TestGetParticipant(t *testing.T) {
	e := newEnv(t, chattest.Options{})
	_, alice := e.createUser("alice")
	_, bob := e.createUser("bob")
	e.createUser("carol")
	e.createConv(alice, "c1")
	e.addParticipant(alice, "c1", "bob")

	t.Run("answers the owner", func(t *testing.T) {
		var out struct{ Participant userOut }
		e.do("GET", "/conversations/c1/participants/bob", alice, nil).ok(t, &out)
		if out.Participant.ID != "bob" {
			t.Errorf("participant %+v", out.Participant)
		}
	})
	t.Run("refuses other participants with 403", func(t *testing.T) {
		e.do("GET", "/conversations/c1/participants/alice", bob, nil).apiErr(t, http.StatusForbidden, "Forbidden", "You are not the owner of this conversation")
	})
	t.Run("answers 404 for a user who is not a participant or an unknown conversation", func(t *testing.T) {
		e.do("GET", "/conversations/c1/participants/carol", alice, nil).apiErr(t, http.StatusNotFound, "ResourceNotFound", "")
		e.do("GET", "/conversations/nope/participants/bob", alice, nil).apiErr(t, http.StatusNotFound, "ResourceNotFound", "")
	})
}

func TestRemoveParticipant(t *testing.T) {
	e := newEnv(t, chattest.Options{})
	_, alice := e.createUser("alice")
	_, bob := e.createUser("bob")
	e.createConv(alice, "c1")
	e.createConv(alice, "c2")
	e.addParticipant(alice, "c1", "bob")
	e.addParticipant(alice, "c2", "bob")

	t.Run("is for the owner only", func(t *testing.T) {
		e.do("DELETE", "/conversations/c1/participants/alice", bob, nil).apiErr(t, http.StatusForbidden, "Forbidden", "You are not the owner of this conversation")
	})
	t.Run("refuses to remove the owner", func(t *testing.T) {
		e.do("DELETE", "/conversations/c1/participants/alice", alice, nil).
			apiErr(t, http.StatusBadRequest, "InvalidPayload", "You cannot remove yourself from the conversation because you are its owner")
	})
	t.Run("closes all the user's streams, then emits participant_removed", func(t *testing.T) {
		bobC1 := e.listen(bob, "c1")
		bobC2 := e.listen(bob, "c2")
		aliceC1 := e.listen(alice, "c1")
		e.do("DELETE", "/conversations/c1/participants/bob", alice, map[string]any{}).ok(t, nil)
		for name, st := range map[string]*sse{"c1": bobC1, "c2 (another conversation)": bobC2} {
			if err := st.ended(t); err != io.EOF {
				t.Errorf("bob's stream in %s ended with %v, want a clean end", name, err)
			}
		}
		var d struct{ ConversationID, ParticipantID string }
		aliceC1.nextOf(t, chat.SignalParticipantRemoved).decode(t, &d)
		if d.ConversationID != "c1" || d.ParticipantID != "bob" {
			t.Errorf("signal %+v", d)
		}
		e.do("GET", "/conversations/c1/messages", bob, nil).apiErr(t, http.StatusForbidden, "Forbidden", "")
		e.do("GET", "/conversations/c2/messages", bob, nil).ok(t, nil)
		bridgetest.WaitFor(t, "bob's streams to be gone", func() bool { return e.s.OpenStreams() == 1 })
	})
	t.Run("answers 404 for a user who is not a participant or an unknown conversation", func(t *testing.T) {
		e.do("DELETE", "/conversations/c1/participants/bob", alice, nil).apiErr(t, http.StatusNotFound, "ResourceNotFound", "")
		e.do("DELETE", "/conversations/nope/participants/bob", alice, nil).apiErr(t, http.StatusNotFound, "ResourceNotFound", "")
	})
}
