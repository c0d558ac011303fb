package chattest_test

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/botbridge/botbridge/chat"
	"github.com/botbridge/botbridge/chat/chattest"
)

type convOut struct {
	Conversation struct {
		ID        chat.ConversationID `json:"id"`
		CreatedAt string              `json:"createdAt"`
		UpdatedAt string              `json:"updatedAt"`
	} `json:"conversation"`
}

func TestCreateConversation(t *testing.T) {
	e := newEnv(t, chattest.Options{})
	alice, key := e.createUser("alice")

	t.Run("makes the creator owner and first participant", func(t *testing.T) {
		var out convOut
		e.do("POST", "/conversations", key, map[string]any{}).ok(t, &out)
		if !strings.HasPrefix(string(out.Conversation.ID), "conv_") {
			t.Errorf("generated id %q", out.Conversation.ID)
		}
		checkTimestamp(t, "createdAt", out.Conversation.CreatedAt)
		pages := e.listAll(key, "/conversations/"+string(out.Conversation.ID)+"/participants")
		if len(pages) != 1 || len(pages[0].Participants) != 1 || pages[0].Participants[0].ID != alice {
			t.Errorf("participants %+v, want only the creator", pages)
		}
		// Owner-only operations work for the creator.
		e.do("GET", "/conversations/"+string(out.Conversation.ID)+"/participants/alice", key, nil).ok(t, nil)
	})

	t.Run("keeps a chosen id", func(t *testing.T) {
		if id := e.createConv(key, "slack/T1/C2"); id != "slack/T1/C2" {
			t.Errorf("id %q", id)
		}
	})

	t.Run("refuses a taken id with 409", func(t *testing.T) {
		e.createConv(key, "dup")
		e.do("POST", "/conversations", key, map[string]any{"id": "dup"}).
			apiErr(t, http.StatusConflict, "AlreadyExists", "Conversation with id dup already exists")
	})

	t.Run("applies the fid rules", func(t *testing.T) {
		e.do("POST", "/conversations", key, map[string]any{"id": strings.Repeat("c", 71)}).
			apiErr(t, http.StatusBadRequest, "InvalidPayload", "Fid length exceeds the maximum allowed length of 70")
		e.do("POST", "/conversations", key, map[string]any{"id": "c:1"}).
			apiErr(t, http.StatusBadRequest, "InvalidPayload", "Fid contains invalid characters")
	})
}

func TestGetOrCreateConversation(t *testing.T) {
	e := newEnv(t, chattest.Options{})
	_, alice := e.createUser("alice")
	_, bob := e.createUser("bob")

	var first convOut
	e.do("POST", "/conversations/get-or-create", alice, map[string]any{"id": "room-1"}).ok(t, &first)
	t.Run("creates a conversation with that id", func(t *testing.T) {
		if first.Conversation.ID != "room-1" {
			t.Errorf("id %q", first.Conversation.ID)
		}
	})
	t.Run("returns it again to its owner", func(t *testing.T) {
		var again convOut
		e.do("POST", "/conversations/get-or-create", alice, map[string]any{"id": "room-1"}).ok(t, &again)
		if again != first {
			t.Errorf("second call %+v, first %+v", again, first)
		}
	})
	t.Run("refuses it to anyone else, participants included", func(t *testing.T) {
		e.do("POST", "/conversations/get-or-create", bob, map[string]any{"id": "room-1"}).
			apiErr(t, http.StatusForbidden, "Forbidden", "You are not the owner of this conversation")
		e.addParticipant(alice, "room-1", "bob")
		e.do("POST", "/conversations/get-or-create", bob, map[string]any{"id": "room-1"}).
			apiErr(t, http.StatusForbidden, "Forbidden", "You are not the owner of this conversation")
	})
	t.Run("requires an id", func(t *testing.T) {
		e.do("POST", "/conversations/get-or-create", alice, map[string]any{}).
			msgErr(t, http.StatusBadRequest, "must have required property 'id'")
	})
	t.Run("applies the fid rules", func(t *testing.T) {
		e.do("POST", "/conversations/get-or-create", alice, map[string]any{"id": "a b"}).
			apiErr(t, http.StatusBadRequest, "InvalidPayload", "Fid contains invalid characters")
	})
	t.Run("does not find a conversation by its generated id", func(t *testing.T) {
		gen := e.createConv(alice, "")
		e.do("POST", "/conversations/get-or-create", alice, map[string]any{"id": gen}).
			apiErr(t, http.StatusConflict, "AlreadyExists", "")
	})
}

func TestGetConversation(t *testing.T) {
	e := newEnv(t, chattest.Options{})
	_, alice := e.createUser("alice")
	_, bob := e.createUser("bob")
	_, carol := e.createUser("carol")
	conv := e.createConv(alice, "c1")
	e.addParticipant(alice, conv, "bob")

	t.Run("answers every participant", func(t *testing.T) {
		for _, k := range []chat.UserKey{alice, bob} {
			var out convOut
			e.do("GET", "/conversations/c1", k, nil).ok(t, &out)
			if out.Conversation.ID != conv {
				t.Errorf("got %+v", out)
			}
		}
	})
	t.Run("refuses others with 403", func(t *testing.T) {
		e.do("GET", "/conversations/c1", carol, nil).apiErr(t, http.StatusForbidden, "Forbidden", "You are not a participant in this conversation")
	})
	t.Run("answers 404 for an unknown id", func(t *testing.T) {
		e.do("GET", "/conversations/nope", alice, nil).apiErr(t, http.StatusNotFound, "ResourceNotFound", "")
	})
	t.Run("decodes escaped slashes in ids", func(t *testing.T) {
		e.createConv(alice, "a/b")
		e.do("GET", "/conversations/"+url.PathEscape("a/b"), alice, nil).ok(t, nil)
	})
}

func TestDeleteConversation(t *testing.T) {
	e := newEnv(t, chattest.Options{})
	_, alice := e.createUser("alice")
	_, bob := e.createUser("bob")
	conv := e.createConv(alice, "c1")
	e.addParticipant(alice, conv, "bob")
	m := e.sendText(alice, conv, "hello")
	bobStream := e.listen(bob, conv)

	t.Run("refuses a participant who is not the owner", func(t *testing.T) {
		e.do("DELETE", "/conversations/c1", bob, nil).apiErr(t, http.StatusForbidden, "Forbidden", "You are not the owner of this conversation")
	})
	t.Run("deletes the conversation and its messages for the owner", func(t *testing.T) {
		r := e.do("DELETE", "/conversations/c1", alice, map[string]any{})
		r.ok(t, nil)
		if string(r.body) != "{}" {
			t.Errorf("body %s", r.body)
		}
		e.do("GET", "/conversations/c1", alice, nil).apiErr(t, http.StatusNotFound, "ResourceNotFound", "")
		e.do("GET", "/messages/"+string(m.ID), alice, nil).apiErr(t, http.StatusNotFound, "ResourceNotFound", "")
		if got := e.s.Messages(conv); got != nil {
			t.Errorf("Messages after delete: %v", got)
		}
	})
	t.Run("emits nothing and leaves streams open, like the service", func(t *testing.T) {
		// Signals are queued before the answer; a frame for the deletion
		// would normally be here already.
		if n := e.s.OpenStreams(); n != 1 {
			t.Errorf("OpenStreams %d after delete, want 1", n)
		}
		select {
		case f := <-bobStream.frames:
			t.Errorf("frame after deleteConversation: %q", f.raw)
		default:
		}
	})
	t.Run("answers 404 for an unknown id", func(t *testing.T) {
		e.do("DELETE", "/conversations/c1", alice, nil).apiErr(t, http.StatusNotFound, "ResourceNotFound", "")
	})
}

func TestListConversations(t *testing.T) {
	e := newEnv(t, chattest.Options{PageSize: 2})
	_, alice := e.createUser("alice")
	_, bob := e.createUser("bob")
	for _, id := range []string{"a1", "a2", "a3"} {
		e.createConv(alice, id)
	}
	e.createConv(bob, "b1")
	e.addParticipant(bob, "b1", "alice")

	t.Run("lists only owned conversations, newest first", func(t *testing.T) {
		var ids []chat.ConversationID
		pages := e.listAll(alice, "/conversations")
		for _, p := range pages {
			for _, c := range p.Conversations {
				ids = append(ids, c.ID)
			}
		}
		if want := []chat.ConversationID{"a3", "a2", "a1"}; !slices.Equal(ids, want) {
			t.Errorf("ids %v, want %v", ids, want)
		}
		if len(pages) != 2 {
			t.Errorf("%d pages of size 2 for 3 items", len(pages))
		}
	})
	t.Run("refuses a token it did not issue", func(t *testing.T) {
		e.do("GET", "/conversations?nextToken=garbage", alice, nil).apiErr(t, http.StatusBadRequest, "InvalidQuery", "")
	})
}
