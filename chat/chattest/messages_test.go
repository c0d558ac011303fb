package chattest_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/botbridge/botbridge/chat"
	"github.com/botbridge/botbridge/chat/chattest"
)

func TestCreateMessage(t *testing.T) {
	e := newEnv(t, chattest.Options{})
	_, alice := e.createUser("alice")
	_, bob := e.createUser("bob")
	_, carol := e.createUser("carol")
	conv := e.createConv(alice, "c1")
	e.addParticipant(alice, conv, "bob")
	aliceStream := e.listen(alice, conv)
	bobStream := e.listen(bob, conv)

	t.Run("stores the message and emits message_created to every stream, the sender's included", func(t *testing.T) {
		var out struct{ Message messageOut }
		e.do("POST", "/messages", alice, map[string]any{
			"conversationId": "c1", "payload": map[string]any{"type": "text", "text": "hi"},
		}).ok(t, &out)
		m := out.Message
		if !strings.HasPrefix(string(m.ID), "msg_") || m.UserID != "alice" || m.ConversationID != "c1" || !sameJSON(m.Payload, `{"type":"text","text":"hi"}`) {
			t.Errorf("message %+v", m)
		}
		checkTimestamp(t, "createdAt", m.CreatedAt)
		for name, st := range map[string]*sse{"sender": aliceStream, "other participant": bobStream} {
			s := st.nextOf(t, chat.SignalMessageCreated)
			var got messageOut
			s.decode(t, &got)
			if got.ID != m.ID || got.IsBot == nil || *got.IsBot || got.CreatedAt != m.CreatedAt {
				t.Errorf("%s: signal %s for message %+v", name, s.raw, m)
			}
			if strings.Contains(string(s.Data), "metadata") {
				t.Errorf("%s: metadata must be omitted when absent: %s", name, s.Data)
			}
		}
	})

	t.Run("keeps metadata beside the payload", func(t *testing.T) {
		var out struct{ Message messageOut }
		e.do("POST", "/messages", bob, map[string]any{
			"conversationId": "c1", "payload": map[string]any{"type": "text", "text": "with meta"},
			"metadata": map[string]any{"slack_ts": "1712.5", "n": 1, "none": nil},
		}).ok(t, &out)
		if out.Message.Metadata["slack_ts"] != "1712.5" || out.Message.Metadata["n"] != 1.0 {
			t.Errorf("metadata %v", out.Message.Metadata)
		}
		var got messageOut
		aliceStream.nextOf(t, chat.SignalMessageCreated).decode(t, &got)
		if got.Metadata["slack_ts"] != "1712.5" {
			t.Errorf("signal metadata %v", got.Metadata)
		}
		bobStream.nextOf(t, chat.SignalMessageCreated)
		var list listOut
		e.do("GET", "/conversations/c1/messages", alice, nil).ok(t, &list)
		if list.Messages[0].Metadata["slack_ts"] != "1712.5" || list.Messages[1].Metadata != nil {
			t.Errorf("listed metadata %v, %v", list.Messages[0].Metadata, list.Messages[1].Metadata)
		}
	})

	t.Run("refuses non-participants and unknown conversations with 403", func(t *testing.T) {
		body := map[string]any{"conversationId": "c1", "payload": map[string]any{"type": "text", "text": "x"}}
		e.do("POST", "/messages", carol, body).apiErr(t, http.StatusForbidden, "Forbidden", "You are not a participant in this message's conversation")
		body["conversationId"] = "nope"
		e.do("POST", "/messages", alice, body).apiErr(t, http.StatusForbidden, "Forbidden", "You are not a participant in this message's conversation")
	})

	t.Run("refuses metadata that is not an object", func(t *testing.T) {
		e.do("POST", "/messages", alice, map[string]any{
			"conversationId": "c1", "payload": map[string]any{"type": "text", "text": "x"}, "metadata": nil,
		}).msgErr(t, http.StatusBadRequest, "/metadata must be object")
	})
}

func sameJSON(a json.RawMessage, b string) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal([]byte(b), &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

// TestMessagePayloads checks request validation of payloads against the
// schema of spec §5: every valid type is stored as sent (unknown properties
// included) and each invalid one is refused with the ajv-style message.
func TestMessagePayloads(t *testing.T) {
	e := newEnv(t, chattest.Options{})
	_, key := e.createUser("alice")
	conv := e.createConv(key, "c1")
	stream := e.listen(key, conv)

	valid := []string{
		`{"type":"text","text":"hi","extra":{"kept":true}}`,
		`{"type":"markdown","markdown":"**b**"}`,
		`{"type":"image","imageUrl":"https://x/i.png"}`,
		`{"type":"audio","audioUrl":"https://x/a.mp3"}`,
		`{"type":"video","videoUrl":"https://x/v.mp4"}`,
		`{"type":"file","fileUrl":"https://x/f.pdf","title":"F"}`,
		`{"type":"location","latitude":0,"longitude":-73.5,"address":"","title":"T"}`,
		`{"type":"card","title":"C","subtitle":"S","imageUrl":"https://x/i.png","actions":[{"action":"postback","label":"L","value":"V"},{"action":"url","label":"L","value":"https://x"},{"action":"say","label":"L","value":"hi"}]}`,
		`{"type":"card","title":"C","actions":[]}`,
		`{"type":"carousel","items":[{"type":"card","title":"A","actions":[]},{"type":"card","title":"B","actions":[{"action":"say","label":"l","value":"v"}]}]}`,
		`{"type":"choice","text":"Pick","options":[{"label":"A","value":"a"}]}`,
		`{"type":"dropdown","text":"Pick","options":[]}`,
		`{"type":"bloc","items":[{"type":"text","text":"t"},{"type":"markdown","markdown":"m"},{"type":"image","imageUrl":"i"},{"type":"audio","audioUrl":"a"},{"type":"video","videoUrl":"v"},{"type":"file","fileUrl":"f"},{"type":"location","latitude":1,"longitude":2}]}`,
	}
	for _, p := range valid {
		var typ struct{ Type string }
		_ = json.Unmarshal([]byte(p), &typ)
		t.Run("accepts "+typ.Type+" "+fmt.Sprint(len(p)), func(t *testing.T) {
			var out struct{ Message messageOut }
			e.do("POST", "/messages", key, `{"conversationId":"c1","payload":`+p+`}`).ok(t, &out)
			if string(out.Message.Payload) != p {
				t.Errorf("stored %s, sent %s", out.Message.Payload, p)
			}
			stream.nextOf(t, chat.SignalMessageCreated) // validated against the schema
			decoded, err := chat.DecodePayload([]byte(p))
			if err != nil {
				t.Fatal(err)
			}
			if err := chat.ValidatePayload(decoded); err != nil {
				t.Errorf("chat.ValidatePayload disagrees: %v", err)
			}
		})
	}

	invalid := []struct{ payload, msg string }{
		{`"text"`, "/payload must be object"},
		{`{"text":"no type"}`, "/payload must have required property 'type'"},
		{`{"type":7}`, "/payload/type must be string"},
		{`{"type":"sticker","url":"x"}`, "/payload/type must be equal to one of the allowed values"},
		{`{"type":"text"}`, "/payload must have required property 'text'"},
		{`{"type":"text","text":""}`, "/payload/text must NOT have fewer than 1 characters"},
		{`{"type":"text","text":5}`, "/payload/text must be string"},
		{`{"type":"markdown","markdown":""}`, "/payload/markdown must NOT have fewer than 1 characters"},
		{`{"type":"image","imageUrl":""}`, "/payload/imageUrl must NOT have fewer than 1 characters"},
		{`{"type":"audio"}`, "/payload must have required property 'audioUrl'"},
		{`{"type":"video","videoUrl":null}`, "/payload/videoUrl must be string"},
		{`{"type":"file","fileUrl":"f","title":""}`, "/payload/title must NOT have fewer than 1 characters"},
		{`{"type":"location","latitude":"1","longitude":2}`, "/payload/latitude must be number"},
		{`{"type":"location","latitude":1}`, "/payload must have required property 'longitude'"},
		{`{"type":"location","latitude":1,"longitude":2,"address":3}`, "/payload/address must be string"},
		{`{"type":"card","title":"C"}`, "/payload must have required property 'actions'"},
		{`{"type":"card","title":"C","subtitle":"","actions":[]}`, "/payload/subtitle must NOT have fewer than 1 characters"},
		{`{"type":"card","title":"C","actions":{}}`, "/payload/actions must be array"},
		{`{"type":"card","title":"C","actions":[{"action":"call","label":"l","value":"v"}]}`, "/payload/actions/0/action must be equal to one of the allowed values"},
		{`{"type":"card","title":"C","actions":[{"action":"url","label":"","value":"v"}]}`, "/payload/actions/0/label must NOT have fewer than 1 characters"},
		{`{"type":"card","title":"C","actions":[{"action":"url","label":"l"}]}`, "/payload/actions/0 must have required property 'value'"},
		{`{"type":"carousel","items":[{"title":"A","actions":[]}]}`, "/payload/items/0 must have required property 'type'"},
		{`{"type":"carousel","items":[{"type":"image","title":"A","actions":[]}]}`, "/payload/items/0/type must be equal to one of the allowed values"},
		{`{"type":"carousel"}`, "/payload must have required property 'items'"},
		{`{"type":"choice","text":"t","options":[{"label":"a","value":""}]}`, "/payload/options/0/value must NOT have fewer than 1 characters"},
		{`{"type":"dropdown","text":"t"}`, "/payload must have required property 'options'"},
		{`{"type":"bloc","items":[{"type":"card","title":"c","actions":[]}]}`, "/payload/items/0/type must be equal to one of the allowed values"},
		{`{"type":"bloc","items":[{"type":"text","text":""}]}`, "/payload/items/0/text must NOT have fewer than 1 characters"},
		{`{"type":"bloc","items":"x"}`, "/payload/items must be array"},
	}
	for _, c := range invalid {
		t.Run("refuses "+c.payload, func(t *testing.T) {
			e.do("POST", "/messages", key, `{"conversationId":"c1","payload":`+c.payload+`}`).msgErr(t, http.StatusBadRequest, c.msg)
		})
	}
	t.Run("refuses a missing payload or conversationId", func(t *testing.T) {
		e.do("POST", "/messages", key, `{"conversationId":"c1"}`).msgErr(t, http.StatusBadRequest, "must have required property 'payload'")
		e.do("POST", "/messages", key, `{"payload":{"type":"text","text":"x"}}`).msgErr(t, http.StatusBadRequest, "must have required property 'conversationId'")
	})
	t.Run("refuses a payload over 128 KB with 413", func(t *testing.T) {
		big := strings.Repeat("x", chat.MaxPayloadBytes)
		e.do("POST", "/messages", key, map[string]any{"conversationId": "c1", "payload": map[string]any{"type": "text", "text": big}}).
			apiErr(t, http.StatusRequestEntityTooLarge, "PayloadTooLarge", "")
	})
	t.Run("refuses a body over 1 MB with 413", func(t *testing.T) {
		e.do("POST", "/messages", key, `{"x":"`+strings.Repeat("x", 1<<20)+`"}`).apiErr(t, http.StatusRequestEntityTooLarge, "PayloadTooLarge", "")
	})
	if n := len(e.s.Messages(conv)); n != len(valid) {
		t.Errorf("%d messages stored, want %d", n, len(valid))
	}
}

func TestGetMessage(t *testing.T) {
	e := newEnv(t, chattest.Options{})
	_, alice := e.createUser("alice")
	_, bob := e.createUser("bob")
	_, carol := e.createUser("carol")
	conv := e.createConv(alice, "c1")
	e.addParticipant(alice, conv, "bob")
	m := e.sendText(alice, conv, "hello")

	t.Run("answers participants with the real sender", func(t *testing.T) {
		var out struct{ Message messageOut }
		e.do("GET", "/messages/"+string(m.ID), bob, nil).ok(t, &out)
		if out.Message.ID != m.ID || out.Message.UserID != "alice" || string(out.Message.Payload) != string(m.Payload) {
			t.Errorf("got %+v, want %+v", out.Message, m)
		}
	})
	t.Run("refuses others with 403", func(t *testing.T) {
		e.do("GET", "/messages/"+string(m.ID), carol, nil).apiErr(t, http.StatusForbidden, "Forbidden", "")
	})
	t.Run("answers 404 for an unknown id", func(t *testing.T) {
		e.do("GET", "/messages/msg_nope", alice, nil).apiErr(t, http.StatusNotFound, "ResourceNotFound", "")
	})
}

func TestDeleteMessage(t *testing.T) {
	e := newEnv(t, chattest.Options{})
	_, alice := e.createUser("alice")
	_, bob := e.createUser("bob")
	conv := e.createConv(alice, "c1")
	e.addParticipant(alice, conv, "bob")
	m := e.sendText(bob, conv, "oops")
	stream := e.listen(alice, conv)

	t.Run("is for the sender only, even against the owner", func(t *testing.T) {
		e.do("DELETE", "/messages/"+string(m.ID), alice, nil).apiErr(t, http.StatusForbidden, "Forbidden", "You are not the sender of this message")
	})
	t.Run("deletes, emits message_deleted, and getMessage then answers 404", func(t *testing.T) {
		r := e.do("DELETE", "/messages/"+string(m.ID), bob, map[string]any{})
		r.ok(t, nil)
		var d struct {
			ID             chat.MessageID
			ConversationID chat.ConversationID
			UserID         chat.UserID
		}
		stream.nextOf(t, chat.SignalMessageDeleted).decode(t, &d)
		if d.ID != m.ID || d.ConversationID != conv || d.UserID != "bob" {
			t.Errorf("signal %+v", d)
		}
		e.do("GET", "/messages/"+string(m.ID), bob, nil).apiErr(t, http.StatusNotFound, "ResourceNotFound", "")
		if len(e.s.Messages(conv)) != 0 {
			t.Error("message still listed")
		}
	})
	t.Run("answers 404 for an unknown id", func(t *testing.T) {
		e.do("DELETE", "/messages/"+string(m.ID), bob, nil).apiErr(t, http.StatusNotFound, "ResourceNotFound", "")
	})
}

func TestListMessages(t *testing.T) {
	e := newEnv(t, chattest.Options{PageSize: 3})
	_, alice := e.createUser("alice")
	_, carol := e.createUser("carol")
	conv := e.createConv(alice, "c1")
	var sent []chat.MessageID
	for i := range 7 {
		sent = append(sent, e.sendText(alice, conv, fmt.Sprint(i)).ID)
	}

	t.Run("pages newest first and omits nextToken on the last page", func(t *testing.T) {
		pages := e.listAll(alice, "/conversations/c1/messages")
		var got []chat.MessageID
		var sizes []int
		for _, p := range pages {
			sizes = append(sizes, len(p.Messages))
			for _, m := range p.Messages {
				got = append(got, m.ID)
			}
		}
		want := slices.Clone(sent)
		slices.Reverse(want)
		if !slices.Equal(got, want) {
			t.Errorf("ids %v, want %v", got, want)
		}
		if !slices.Equal(sizes, []int{3, 3, 1}) {
			t.Errorf("page sizes %v", sizes)
		}
	})
	t.Run("returns an empty list for a conversation without messages", func(t *testing.T) {
		e.createConv(alice, "empty")
		r := e.do("GET", "/conversations/empty/messages", alice, nil)
		r.ok(t, nil)
		if string(r.body) != `{"messages":[],"meta":{}}` {
			t.Errorf("body %s", r.body)
		}
	})
	t.Run("refuses non-participants and unknown conversations with 403", func(t *testing.T) {
		e.do("GET", "/conversations/c1/messages", carol, nil).apiErr(t, http.StatusForbidden, "Forbidden", "You are not a participant in this conversation")
		e.do("GET", "/conversations/nope/messages", alice, nil).apiErr(t, http.StatusForbidden, "Forbidden", "You are not a participant in this conversation")
	})
	t.Run("refuses a token of another list", func(t *testing.T) {
		e.createConv(alice, "a")
		e.createConv(alice, "b")
		e.createConv(alice, "c")
		var convs listOut
		e.do("GET", "/conversations", alice, nil).ok(t, &convs)
		e.do("GET", "/conversations/c1/messages?nextToken="+*convs.Meta.NextToken, alice, nil).apiErr(t, http.StatusBadRequest, "InvalidQuery", "")
	})
}

// TestPaginationWhileInserting pages through messages while new ones arrive
// at the head of the list: no message may be returned twice or skipped.
func TestPaginationWhileInserting(t *testing.T) {
	e := newEnv(t, chattest.Options{PageSize: 4})
	_, alice := e.createUser("alice")
	conv := e.createConv(alice, "c1")
	var old []chat.MessageID
	for i := range 10 {
		old = append(old, e.sendText(alice, conv, fmt.Sprint("old ", i)).ID)
	}
	seen := map[chat.MessageID]int{}
	token := ""
	for page := 0; ; page++ {
		path := "/conversations/c1/messages"
		if token != "" {
			path += "?nextToken=" + token
		}
		var out listOut
		e.do("GET", path, alice, nil).ok(t, &out)
		for _, m := range out.Messages {
			seen[m.ID]++
		}
		// Two new messages after every page.
		e.sendText(alice, conv, fmt.Sprint("new ", page, "a"))
		e.sendText(alice, conv, fmt.Sprint("new ", page, "b"))
		if out.Meta.NextToken == nil {
			break
		}
		token = *out.Meta.NextToken
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("message %s returned %d times", id, n)
		}
	}
	for _, id := range old {
		if seen[id] != 1 {
			t.Errorf("message %s skipped", id)
		}
	}
}

func TestEvents(t *testing.T) {
	e := newEnv(t, chattest.Options{})
	_, alice := e.createUser("alice")
	_, carol := e.createUser("carol")
	conv := e.createConv(alice, "c1")
	stream := e.listen(alice, conv)

	var out struct {
		Event struct {
			ID             chat.EventID
			CreatedAt      string
			Payload        map[string]any
			ConversationID chat.ConversationID
			UserID         chat.UserID
		}
	}
	e.do("POST", "/events", alice, map[string]any{"conversationId": "c1", "payload": map[string]any{"kind": "typing", "n": 2}}).ok(t, &out)
	t.Run("createEvent stores the event and emits event_created", func(t *testing.T) {
		if !strings.HasPrefix(string(out.Event.ID), "evt_") || out.Event.Payload["kind"] != "typing" || out.Event.UserID != "alice" {
			t.Errorf("event %+v", out.Event)
		}
		checkTimestamp(t, "createdAt", out.Event.CreatedAt)
		var d struct {
			ID    *string
			IsBot bool
		}
		stream.nextOf(t, chat.SignalEventCreated).decode(t, &d)
		if d.ID == nil || *d.ID != string(out.Event.ID) || d.IsBot {
			t.Errorf("signal %+v", d)
		}
	})
	t.Run("getEvent answers participants", func(t *testing.T) {
		var got struct{ Event struct{ ID chat.EventID } }
		e.do("GET", "/events/"+string(out.Event.ID), alice, nil).ok(t, &got)
		if got.Event.ID != out.Event.ID {
			t.Errorf("got %+v", got)
		}
	})
	t.Run("both refuse non-participants with 403", func(t *testing.T) {
		e.do("GET", "/events/"+string(out.Event.ID), carol, nil).apiErr(t, http.StatusForbidden, "Forbidden", "")
		e.do("POST", "/events", carol, map[string]any{"conversationId": "c1", "payload": map[string]any{}}).apiErr(t, http.StatusForbidden, "Forbidden", "")
		e.do("POST", "/events", alice, map[string]any{"conversationId": "nope", "payload": map[string]any{}}).apiErr(t, http.StatusForbidden, "Forbidden", "")
	})
	t.Run("getEvent answers 404 for an unknown id", func(t *testing.T) {
		e.do("GET", "/events/evt_nope", alice, nil).apiErr(t, http.StatusNotFound, "ResourceNotFound", "")
	})
	t.Run("createEvent requires an object payload", func(t *testing.T) {
		e.do("POST", "/events", alice, map[string]any{"conversationId": "c1", "payload": "x"}).msgErr(t, http.StatusBadRequest, "/payload must be object")
		e.do("POST", "/events", alice, map[string]any{"conversationId": "c1"}).msgErr(t, http.StatusBadRequest, "must have required property 'payload'")
	})
}
