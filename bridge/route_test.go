package bridge_test

import (
	"strings"
	"testing"

	"github.com/botbridge/botbridge/bridge"
)

func TestRouterMatch(t *testing.T) {
	r, err := bridge.NewRouter([]bridge.Route{
		{Bot: "sales", Platform: bridge.PlatformSlack, Rooms: []string{"#sales-*"}},
		{Bot: "support", Platform: bridge.PlatformSlack, Rooms: []string{"C0SUPPORT"}},
		{Bot: "private", DM: bridge.DMOnly},
		{Bot: "matrix", Platform: bridge.PlatformMatrix, Rooms: []string{"!abc:example.org", "#help:example.org"}},
	}, []string{"sales", "support", "private", "matrix"})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		in   bridge.Inbound
		bot  string // "" means no route
	}{
		{"room name pattern", bridge.Inbound{Room: bridge.RoomKey{Platform: bridge.PlatformSlack, Room: "C1"}, RoomName: "#sales-eu"}, "sales"},
		{"room id", bridge.Inbound{Room: bridge.RoomKey{Platform: bridge.PlatformSlack, Room: "C0SUPPORT"}}, "support"},
		{"DM on any platform", bridge.Inbound{Room: bridge.RoomKey{Platform: bridge.PlatformSlack, Room: "D9"}, DM: true}, "private"},
		{"matrix alias", bridge.Inbound{Room: bridge.RoomKey{Platform: bridge.PlatformMatrix, Room: "!zzz:example.org"}, RoomName: "#help:example.org"}, "matrix"},
		{"matrix room id", bridge.Inbound{Room: bridge.RoomKey{Platform: bridge.PlatformMatrix, Room: "!abc:example.org"}}, "matrix"},
		{"unrouted room", bridge.Inbound{Room: bridge.RoomKey{Platform: bridge.PlatformSlack, Room: "C2"}, RoomName: "#random"}, ""},
		{"platform mismatch", bridge.Inbound{Room: bridge.RoomKey{Platform: bridge.PlatformMatrix, Room: "C0SUPPORT"}}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rt, ok := r.Match(c.in)
			switch {
			case c.bot == "" && ok:
				t.Errorf("routed to %s, want no route", rt.Bot)
			case c.bot != "" && !ok:
				t.Errorf("no route, want %s", c.bot)
			case ok && rt.Bot != c.bot:
				t.Errorf("routed to %s, want %s", rt.Bot, c.bot)
			}
		})
	}
}

func TestNewRouterErrorsNameTheField(t *testing.T) {
	_, err := bridge.NewRouter([]bridge.Route{
		{Bot: "ghost"},
		{Bot: "a", Answer: "sometimes"},
		{Bot: "a", Scope: "galaxy"},
		{Bot: "a", DM: "maybe"},
		{Bot: "a", Rooms: []string{"[unclosed"}},
	}, []string{"a"})
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"routes[0].bot", "routes[1].answer", "routes[2].scope", "routes[3].dm", "routes[4].rooms"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
	if _, err := bridge.NewRouter(nil, []string{"a"}); err == nil {
		t.Error("no routes: no error")
	}
}

func TestDecide(t *testing.T) {
	slack := func(room, thread string) bridge.RoomKey {
		return bridge.RoomKey{Platform: bridge.PlatformSlack, Room: room, Thread: thread}
	}
	matrix := bridge.RoomKey{Platform: bridge.PlatformMatrix, Room: "!r:x"}
	alice := bridge.Sender{ID: "U_ALICE"}
	route := bridge.Route{Bot: "b", Answer: bridge.AnswerMention, ResetWord: "!reset"}
	cases := []struct {
		name    string
		route   bridge.Route
		in      bridge.Inbound
		engaged bool
		answer  bool
		key     bridge.ConvKey
		engage  bridge.RoomKey
		reset   bool
	}{
		{name: "top-level mention starts a thread", route: route,
			in:     bridge.Inbound{Room: slack("C1", ""), MessageID: "1.0", Sender: alice, Mentioned: true},
			answer: true, key: bridge.ConvKey{Bot: "b", Scope: bridge.ScopeThread, Room: slack("C1", "1.0")}, engage: slack("C1", "1.0")},
		{name: "unmentioned message in a channel is ignored", route: route,
			in: bridge.Inbound{Room: slack("C1", ""), MessageID: "2.0", Sender: alice}},
		{name: "unmentioned reply in an engaged thread is answered", route: route,
			in: bridge.Inbound{Room: slack("C1", "1.0"), MessageID: "3.0", Sender: alice}, engaged: true,
			answer: true, key: bridge.ConvKey{Bot: "b", Scope: bridge.ScopeThread, Room: slack("C1", "1.0")}, engage: slack("C1", "1.0")},
		{name: "unmentioned reply in another thread is ignored", route: route,
			in: bridge.Inbound{Room: slack("C1", "9.0"), MessageID: "4.0", Sender: alice}},
		{name: "DM always answered, user scope", route: route,
			in:     bridge.Inbound{Room: slack("D1", ""), MessageID: "5.0", Sender: alice, DM: true},
			answer: true, key: bridge.ConvKey{Bot: "b", Scope: bridge.ScopeUser, Room: slack("D1", ""), User: "U_ALICE"}},
		{name: "answer all", route: bridge.Route{Bot: "b", Answer: bridge.AnswerAll},
			in:     bridge.Inbound{Room: slack("C1", ""), MessageID: "6.0", Sender: alice},
			answer: true, key: bridge.ConvKey{Bot: "b", Scope: bridge.ScopeThread, Room: slack("C1", "6.0")}, engage: slack("C1", "6.0")},
		{name: "matrix rooms default to room scope", route: route,
			in:     bridge.Inbound{Room: matrix, MessageID: "$e", Sender: alice, Mentioned: true},
			answer: true, key: bridge.ConvKey{Bot: "b", Scope: bridge.ScopeRoom, Room: matrix}},
		{name: "room scope mention in a thread engages the thread", route: route,
			in:     bridge.Inbound{Room: bridge.RoomKey{Platform: bridge.PlatformMatrix, Room: "!r:x", Thread: "$root"}, MessageID: "$e2", Sender: alice, Mentioned: true},
			answer: true, key: bridge.ConvKey{Bot: "b", Scope: bridge.ScopeRoom, Room: matrix},
			engage: bridge.RoomKey{Platform: bridge.PlatformMatrix, Room: "!r:x", Thread: "$root"}},
		{name: "user scope keys by person", route: bridge.Route{Bot: "b", Answer: bridge.AnswerAll, Scope: bridge.ScopeUser},
			in:     bridge.Inbound{Room: matrix, MessageID: "$e3", Sender: alice},
			answer: true, key: bridge.ConvKey{Bot: "b", Scope: bridge.ScopeUser, Room: matrix, User: "U_ALICE"}},
		{name: "bots are ignored", route: route,
			in: bridge.Inbound{Room: slack("D1", ""), DM: true, Sender: bridge.Sender{ID: "B1", Bot: true}}},
		{name: "bots pass when allowed", route: bridge.Route{Bot: "b", AllowBots: true},
			in:     bridge.Inbound{Room: slack("D1", ""), DM: true, Sender: bridge.Sender{ID: "B1", Bot: true}},
			answer: true, key: bridge.ConvKey{Bot: "b", Scope: bridge.ScopeUser, Room: slack("D1", ""), User: "B1"}},
		{name: "user allowlist refuses others", route: bridge.Route{Bot: "b", Users: []string{"U_BOB"}},
			in: bridge.Inbound{Room: slack("D1", ""), DM: true, Sender: alice}},
		{name: "user allowlist lets its users in", route: bridge.Route{Bot: "b", Users: []string{"U_ALICE"}},
			in:     bridge.Inbound{Room: slack("D1", ""), DM: true, Sender: alice},
			answer: true, key: bridge.ConvKey{Bot: "b", Scope: bridge.ScopeUser, Room: slack("D1", ""), User: "U_ALICE"}},
		{name: "reset word", route: route,
			in:     bridge.Inbound{Room: slack("D1", ""), DM: true, Sender: alice, Text: "  !RESET "},
			answer: true, reset: true, key: bridge.ConvKey{Bot: "b", Scope: bridge.ScopeUser, Room: slack("D1", ""), User: "U_ALICE"}},
		{name: "a click is answered without a mention", route: route,
			in:     bridge.Inbound{Room: slack("C1", "7.0"), MessageID: "8.0", Sender: alice, Action: &bridge.Action{Value: "v"}},
			answer: true, key: bridge.ConvKey{Bot: "b", Scope: bridge.ScopeThread, Room: slack("C1", "7.0")}, engage: slack("C1", "7.0")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := c.route.Decide(c.in, c.engaged)
			if d.Answer != c.answer {
				t.Fatalf("answer = %v (%s), want %v", d.Answer, d.Reason, c.answer)
			}
			if !c.answer {
				if d.Reason == "" {
					t.Error("ignored without a reason")
				}
				return
			}
			if d.Key != c.key {
				t.Errorf("key = %+v, want %+v", d.Key, c.key)
			}
			if d.Engage != c.engage {
				t.Errorf("engage = %+v, want %+v", d.Engage, c.engage)
			}
			if d.Reset != c.reset {
				t.Errorf("reset = %v", d.Reset)
			}
		})
	}
}
