package chattest_test

import (
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/botbridge/botbridge/bridge/bridgetest"
	"github.com/botbridge/botbridge/chat"
	"github.com/botbridge/botbridge/chat/chattest"
	"github.com/golang-jwt/jwt/v5"
)

// restart closes e's server and serves a new one from the same options.
func restart(t *testing.T, e *env, opts chattest.Options) *env {
	t.Helper()
	if err := e.s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	return newEnv(t, opts)
}

func TestStateRoundTrip(t *testing.T) {
	dir := t.TempDir()
	opts := chattest.Options{StatePath: filepath.Join(dir, "state.json"), Bot: chattest.EchoBot()}
	e := newEnv(t, opts)
	bot := e.s.BotUserID()
	_, alice := e.createUser("alice")
	bobID, bob := e.createUser("")
	conv := e.createConv(alice, "c1")
	gen := e.createConv(alice, "")
	e.addParticipant(alice, conv, bobID)
	st := e.listen(alice, conv)
	e.sendText(bob, conv, "hello")
	st.nextOf(t, chat.SignalMessageCreated)
	botReply(t, e, st)
	e.do("POST", "/messages", alice, map[string]any{"conversationId": conv, "payload": map[string]any{"type": "text", "text": "meta"}, "metadata": map[string]any{"k": "v"}}).ok(t, nil)
	var ev struct{ Event struct{ ID chat.EventID } }
	e.do("POST", "/events", alice, map[string]any{"conversationId": conv, "payload": map[string]any{"a": 1}}).ok(t, &ev)
	before := e.s.Messages(conv)
	var convsBefore, partsBefore []listOut
	convsBefore = e.listAll(alice, "/conversations")
	partsBefore = e.listAll(alice, "/conversations/c1/participants")

	e2 := restart(t, e, opts)
	t.Run("the bot keeps its user id", func(t *testing.T) {
		if e2.s.BotUserID() != bot {
			t.Errorf("bot %s, was %s", e2.s.BotUserID(), bot)
		}
	})
	t.Run("shared-mode keys keep working", func(t *testing.T) {
		var me struct{ User userOut }
		e2.do("GET", "/users/me", bob, nil).ok(t, &me)
		if me.User.ID != bobID {
			t.Errorf("user %+v", me.User)
		}
	})
	t.Run("messages, conversations, participants and events are back", func(t *testing.T) {
		after := e2.s.Messages(conv)
		if len(after) != len(before) {
			t.Fatalf("%d messages, were %d", len(after), len(before))
		}
		for i := range after {
			a, b := after[i], before[i]
			if a.ID != b.ID || a.UserID != b.UserID || !a.CreatedAt.Equal(b.CreatedAt) || a.Payload != b.Payload || len(a.Metadata) != len(b.Metadata) {
				t.Errorf("message %d: %+v, was %+v", i, a, b)
			}
		}
		if got := e2.listAll(alice, "/conversations"); !equalLists(got, convsBefore) {
			t.Errorf("conversations %+v, were %+v", got, convsBefore)
		}
		if got := e2.listAll(alice, "/conversations/c1/participants"); !equalLists(got, partsBefore) {
			t.Errorf("participants %+v, were %+v", got, partsBefore)
		}
		e2.do("GET", "/events/"+string(ev.Event.ID), alice, nil).ok(t, nil)
		e2.do("GET", "/conversations/"+string(gen), alice, nil).ok(t, nil)
	})
	t.Run("ids stay taken and new items sort after old ones", func(t *testing.T) {
		e2.do("POST", "/users", "", map[string]any{"id": "alice"}).apiErr(t, http.StatusConflict, "AlreadyExists", "")
		m := e2.sendText(alice, conv, "after restart")
		var list listOut
		e2.do("GET", "/conversations/c1/messages", alice, nil).ok(t, &list)
		// The echo bot may already have answered; either way the new
		// message comes before every message from before the restart.
		pos := slices.IndexFunc(list.Messages, func(o messageOut) bool { return o.ID == m.ID })
		old := slices.IndexFunc(list.Messages, func(o messageOut) bool { return o.ID == before[len(before)-1].ID })
		if pos < 0 || old < 0 || pos > old {
			t.Errorf("new message at %d, newest old one at %d", pos, old)
		}
	})
	t.Run("the file is private and no temp files are left", func(t *testing.T) {
		if err := e2.s.Close(); err != nil {
			t.Fatal(err)
		}
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) != 1 {
			t.Errorf("state dir holds %v", entries)
		}
		fi, err := os.Stat(opts.StatePath)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("state file mode %v: it holds the signing secret", fi.Mode())
		}
	})
}

func equalLists(a, b []listOut) bool {
	ids := func(ls []listOut) []string {
		var out []string
		for _, l := range ls {
			for _, c := range l.Conversations {
				out = append(out, string(c.ID))
			}
			for _, p := range l.Participants {
				out = append(out, string(p.ID)+p.CreatedAt+p.UpdatedAt)
			}
		}
		return out
	}
	return slices.Equal(ids(a), ids(b))
}

func TestStateRoundTripManualMode(t *testing.T) {
	const secret = "k"
	opts := chattest.Options{StatePath: filepath.Join(t.TempDir(), "s.json"), EncryptionKey: secret}
	e := newEnv(t, opts)
	key := signKey(t, secret, jwt.MapClaims{"id": "alice"})
	e.do("POST", "/users/get-or-create", key, map[string]any{"name": "Ada"}).ok(t, nil)
	e.createConv(key, "c1")
	e.sendText(key, "c1", "persisted")
	e2 := restart(t, e, opts)
	var me struct{ User userOut }
	e2.do("GET", "/users/me", key, nil).ok(t, &me)
	if me.User.Name != "Ada" || len(e2.s.Messages("c1")) != 1 {
		t.Errorf("after restart: user %+v, %d messages", me.User, len(e2.s.Messages("c1")))
	}
}

func TestStateFileWrittenWhileRunning(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	e := newEnv(t, chattest.Options{StatePath: path})
	e.createUser("alice")
	// The file follows changes without a Close (a demo killed with SIGKILL
	// keeps what was saved).
	bridgetest.WaitFor(t, "the state file to hold the user", func() bool {
		b, err := os.ReadFile(path)
		return err == nil && strings.Contains(string(b), `"id": "alice"`)
	})
}

func TestCorruptStateFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	if err := os.WriteFile(path, []byte(`{"version":1,`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := chattest.New(chattest.Options{StatePath: path}); err == nil {
		t.Error("New accepted a corrupt state file")
	}
}
